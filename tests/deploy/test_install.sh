#!/usr/bin/env bash
# test_install.sh: `make install` / `make uninstall` into a scratch DESTDIR.
#
#  - make install DESTDIR=<tmp> PREFIX=/usr installs usr/bin/sse-server,
#    usr/share/sse-server/static/* (same bytes as static/),
#    usr/share/man/man1/sse-server.1 and usr/lib/systemd/system/sse-server.service,
#    and the cluster's template unit sse-server@.service beside it;
#  - the installed binary runs --version;
#  - the installed units' ExecStart names /usr/bin/sse-server and --static
#    /usr/share/sse-server/static (no /usr/local left), both present in DESTDIR;
#  - the installed binary serves the installed static files (loopback, port 0);
#  - systemd-analyze verify accepts the installed unit, with its paths and
#    MANPATH pointed into DESTDIR (so man finds the installed page);
#  - the default PREFIX is /usr/local (ExecStart unchanged from contrib/);
#  - make uninstall leaves no file behind.
# Last line: "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh"

echo "== deploy: make install"
scratch_dir T || exit 1
R=$T/root

if ! make -C "$REPO" -s install DESTDIR="$R" PREFIX=/usr >"$T/install.log" 2>&1; then
    if grep -q "No rule to make target 'install'" "$T/install.log"; then
        bad "make install" "the Makefile has no install target yet (see the proposed snippet)"
    else
        bad "make install DESTDIR=... PREFIX=/usr" "$(tail -n 5 "$T/install.log")"
    fi
    summary
    exit
fi
ok "make install DESTDIR=<tmp> PREFIX=/usr"

missing=""
for f in usr/bin/sse-server usr/share/man/man1/sse-server.1 \
    usr/lib/systemd/system/sse-server.service usr/share/sse-server/static/index.html; do
    [ -f "$R/$f" ] || missing="$missing $f"
done
if [ -z "$missing" ]; then ok "the four kinds of files are installed"; else bad "installed files" "missing:$missing"; fi
check "the binary is executable" test -x "$R/usr/bin/sse-server"
if diff -r "$REPO/static" "$R/usr/share/sse-server/static" >"$T/static.diff" 2>&1; then
    ok "usr/share/sse-server/static holds exactly static/ ($(find "$R/usr/share/sse-server/static" -type f | wc -l) files)"
else
    bad "usr/share/sse-server/static holds exactly static/" "$(head -n 5 "$T/static.diff")"
fi
check "the man page is installed unchanged" cmp -s "$REPO/docs/sse-server.1" "$R/usr/share/man/man1/sse-server.1"
modes=$(stat -c '%a %n' "$R/usr/bin/sse-server" "$R/usr/share/man/man1/sse-server.1" \
    "$R/usr/lib/systemd/system/sse-server.service" "$R/usr/share/sse-server/static/index.html" |
    sed "s|$R/||" | tr '\n' ' ')
if [ "$modes" = "755 usr/bin/sse-server 644 usr/share/man/man1/sse-server.1 644 usr/lib/systemd/system/sse-server.service 644 usr/share/sse-server/static/index.html " ]; then
    ok "modes: 755 for the binary, 644 for the rest"
else
    bad "install modes" "$modes"
fi

out=$("$R/usr/bin/sse-server" --version 2>&1)
if [[ $out =~ ^sse-server\ [0-9] ]]; then
    ok "installed binary runs --version ($out)"
else
    bad "installed binary runs --version" "$out"
fi

TEMPLATE=$R/usr/lib/systemd/system/sse-server@.service
exec_start=$(grep -E '^ExecStart=' "$TEMPLATE" 2>/dev/null)
if [ "$exec_start" = "ExecStart=/usr/bin/sse-server --static /usr/share/sse-server/static" ] &&
    [ "$(stat -c %a "$TEMPLATE")" = 644 ]; then
    ok "the cluster's template unit: $exec_start"
else
    bad "the cluster's template unit for PREFIX=/usr" "${exec_start:-not installed}"
fi

UNIT=$R/usr/lib/systemd/system/sse-server.service
exec_start=$(grep -E '^ExecStart=' "$UNIT")
if [ "$exec_start" = "ExecStart=/usr/bin/sse-server --static /usr/share/sse-server/static" ]; then
    ok "unit: $exec_start"
else
    bad "unit ExecStart for PREFIX=/usr" "${exec_start:-no ExecStart}"
fi
if grep -v '^[[:space:]]*#' "$UNIT" | grep -q '/usr/local'; then
    bad "no /usr/local left in the installed unit" "$(grep -n '/usr/local' "$UNIT" | head -n 3)"
else
    ok "no /usr/local left in the installed unit's settings"
fi
bin_path=$(sed -nE 's/^ExecStart=([^ ]+).*/\1/p' "$UNIT")
static_path=$(sed -nE 's/^ExecStart=.*--static ([^ ]+).*/\1/p' "$UNIT")
if [ -n "$bin_path" ] && [ -x "$R$bin_path" ] && [ -n "$static_path" ] && [ -d "$R$static_path" ]; then
    ok "ExecStart's binary and --static directory exist in DESTDIR"
else
    bad "ExecStart's paths exist in DESTDIR" "$R$bin_path, $R$static_path"
fi

# The installed binary with the installed static files.
if SSE_SERVER=$R/usr/bin/sse-server SSE_STATIC=$R/usr/share/sse-server/static start_sse "$T"; then
    curl -s --max-time 3 -o "$T/index.html" "http://127.0.0.1:$SSE_PORT/"
    if cmp -s "$T/index.html" "$REPO/static/index.html"; then
        ok "installed binary serves the installed index.html"
    else
        bad "installed binary serves the installed index.html" "$(head -c 200 "$T/index.html")"
    fi
    kill -TERM "$SSE_PID"
    wait "$SSE_PID"
    check "installed binary stops on SIGTERM with status 0" [ $? -eq 0 ]
else
    bad "installed binary starts" "see above"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$T/units"
    sed "s|/usr/|$R/usr/|g" "$UNIT" >"$T/units/sse-server.service"
    man_opt=()
    command -v man >/dev/null 2>&1 || man_opt=(--man=no)
    MANPATH=$R/usr/share/man systemd-analyze verify "${man_opt[@]}" "$T/units/sse-server.service" \
        >"$T/verify" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$T/verify" ]; then
        ok "systemd-analyze verify: installed unit (and its man page) without a warning"
    else
        bad "systemd-analyze verify of the installed unit" "exit $rc: $(cat "$T/verify")"
    fi
else
    echo "skip  systemd-analyze verify: not installed"
fi

# Default PREFIX.
if make -C "$REPO" -s install DESTDIR="$T/root2" >"$T/install2.log" 2>&1; then
    if cmp -s "$REPO/contrib/sse-server.service" "$T/root2/usr/local/lib/systemd/system/sse-server.service" &&
        [ -x "$T/root2/usr/local/bin/sse-server" ]; then
        ok "default PREFIX=/usr/local: usr/local/bin, unit as in contrib/"
    else
        bad "default PREFIX=/usr/local" "$(cd "$T/root2" && find . -type f | head -n 8)"
    fi
else
    bad "make install with the default PREFIX" "$(tail -n 5 "$T/install2.log")"
fi

if make -C "$REPO" -s uninstall DESTDIR="$R" PREFIX=/usr >"$T/uninstall.log" 2>&1; then
    left=$(find "$R" -type f | sed "s|$R/||")
    if [ -z "$left" ]; then
        ok "make uninstall removes every installed file"
    else
        bad "make uninstall removes every installed file" "left: $(echo "$left" | head -n 5 | tr '\n' ' ')"
    fi
else
    bad "make uninstall" "$(tail -n 5 "$T/uninstall.log")"
fi

summary
