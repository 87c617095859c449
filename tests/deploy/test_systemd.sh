#!/usr/bin/env bash
# test_systemd.sh: checks of contrib/sse-server.service.
#
#  1. Static checks (always): every required key with its value, ExecStart
#     with the install layout's paths, every SSE_* variable in it (commented
#     ones too) known to `sse-server --help`, and the active Environment=
#     values accepted by the binary.
#  2. `systemd-analyze verify` (when systemd-analyze exists; it works without
#     systemd running, e.g. in a container): the unit with its paths pointed
#     at a scratch prefix holding the built binary, and MANPATH at
#     docs/ so the Documentation=man:sse-server(1) check finds the page. Any
#     output (unknown key, bad value) fails.
#  3. `systemd-analyze security --offline=true`: overall exposure at most 2.0.
#  4. The sandbox against the real binary: sse-server runs under strace with a
#     workload (streams, /ping, publish, static files, stats, SIGHUP reload,
#     --data-dir, a restart, SIGTERM with a stream open); every system call it
#     makes must be in SystemCallFilter=@system-service (expanded by
#     systemd-analyze), every socket family in RestrictAddressFamilies=, no
#     writable+executable mapping (MemoryDenyWriteExecute=), and SIGTERM must
#     stop it with status 0 within TimeoutStopSec=5.
# What cannot be checked without a running systemd: that the unit starts under
# DynamicUser= with the sandbox applied.
set -u
. "$(dirname "$0")/lib.sh"

UNIT=$REPO/contrib/sse-server.service
echo "== deploy: systemd unit"
scratch_dir T || exit 1

if [ ! -f "$UNIT" ]; then
    bad "contrib/sse-server.service exists" "missing"
    summary
    exit
fi

# ---------------------------------------------------------------- 1. keys
# Each line: a regex an active line of the unit must match in full.
# shellcheck disable=SC2016 # $MAINPID is literal
required=(
    'Type=(simple|exec)'
    'ExecStart=/usr/local/bin/sse-server --static /usr/local/share/sse-server/static'
    'ExecReload=/bin/kill -HUP \$MAINPID'
    'KillSignal=SIGTERM'
    'TimeoutStopSec=5'
    'Restart=on-failure'
    'DynamicUser=yes'
    'NoNewPrivileges=yes'
    'ProtectSystem=strict'
    'ProtectHome=yes'
    'PrivateTmp=yes'
    'PrivateDevices=yes'
    'ProtectKernelTunables=yes'
    'ProtectKernelModules=yes'
    'ProtectKernelLogs=yes'
    'ProtectControlGroups=yes'
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX'
    'RestrictNamespaces=yes'
    'LockPersonality=yes'
    'MemoryDenyWriteExecute=yes'
    'SystemCallArchitectures=native'
    'SystemCallFilter=@system-service'
    'LimitNOFILE=1048576'
    'StateDirectory=sse-server'
    'Environment=SSE_[A-Z_]+=.*'
    'WantedBy=multi-user.target'
)
grep -v '^[[:space:]]*[#;]' "$UNIT" | sed 's/[[:space:]]*$//' >"$T/active"
missing=""
for re in "${required[@]}"; do
    grep -Eqx -- "$re" "$T/active" || missing="$missing
    $re"
done
if [ -z "$missing" ]; then
    ok "unit has all ${#required[@]} required settings"
else
    bad "unit has the required settings" "missing:$missing"
fi
for section in Unit Service Install; do
    check "unit has a [$section] section" grep -qx "\[$section\]" "$UNIT"
done

BIN=$(sse_binary) || {
    bad "sse-server builds" "make failed"
    summary
    exit
}
"$BIN" --help >"$T/help" 2>&1
unknown=""
for v in $(grep -oE 'SSE_[A-Z_]+' "$UNIT" | sort -u | tr '\n' ' '); do
    grep -q "\[$v\]" "$T/help" || unknown="$unknown $v"
done
if [ -z "$unknown" ]; then
    ok "every SSE_* variable in the unit is an option of sse-server --help"
else
    bad "SSE_* variables in the unit exist" "unknown:$unknown"
fi
# The active Environment= values, as the binary parses them (it reads the
# environment before it looks at --version).
envs=()
while IFS= read -r line; do
    envs+=("${line#Environment=}")
done < <(grep -E '^Environment=SSE_' "$T/active")
if env "${envs[@]}" "$BIN" --version >"$T/env.out" 2>&1; then
    ok "sse-server accepts the unit's Environment= values (${#envs[@]})"
else
    bad "sse-server accepts the unit's Environment= values" "$(cat "$T/env.out")"
fi

# ---------------------------------------------------------------- 2, 3. systemd-analyze
P=$T/prefix
mkdir -p "$P/bin" "$P/share/sse-server/static" "$T/man/man1"
cp "$BIN" "$P/bin/sse-server"
cp "$REPO/docs/sse-server.1" "$T/man/man1/" 2>/dev/null
sed "s|/usr/local|$P|g" "$UNIT" >"$T/sse-server.service"
if command -v systemd-analyze >/dev/null 2>&1; then
    if command -v man >/dev/null 2>&1 && [ -f "$T/man/man1/sse-server.1" ]; then
        man_opt=()
    else
        man_opt=(--man=no)
        echo "note: no man or no docs/sse-server.1: verify runs with --man=no"
    fi
    MANPATH=$T/man systemd-analyze verify "${man_opt[@]}" "$T/sse-server.service" >"$T/verify" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$T/verify" ]; then
        ok "systemd-analyze verify: no warning"
    else
        bad "systemd-analyze verify" "exit $rc: $(cat "$T/verify")"
    fi
    check_unit_security "$T/sse-server.service"
else
    echo "skip  systemd-analyze verify/security: systemd-analyze not installed"
fi

# ---------------------------------------------------------------- 4. sandbox vs binary
if ! need_pkg strace strace; then
    echo "skip  system calls under strace: strace not available"
    summary
    exit
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "skip  system call filter: systemd-analyze not installed"
    summary
    exit
fi

# All system calls of a group, nested groups expanded.
expand_group() {
    systemd-analyze syscall-filter "$1" 2>/dev/null | tail -n +2 | sed 's/^[[:space:]]*//' |
        grep -v -e '^#' -e '^$' | while read -r s; do
        case $s in
        @*) expand_group "$s" ;;
        *) echo "$s" ;;
        esac
    done
}
expand_group @system-service | sort -u >"$T/allowed"

# run_traced NAME ARGS...: starts sse-server under strace (output T/NAME.strace),
# sets SPID (the server) and TPID (strace) and SSE_PORT.
run_traced() {
    local name=$1 i line
    shift
    strace -f -qq -o "$T/$name.strace" "$BIN" --port 0 --bind 127.0.0.1 \
        --static "$REPO/static" "$@" >"$T/$name.out" 2>"$T/$name.err" &
    TPID=$!
    track_pid "$TPID"
    SPID=""
    SSE_PORT=""
    for ((i = 0; i < 500; i++)); do
        line=$(grep -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*' "$T/$name.out" 2>/dev/null)
        if [ -n "$line" ]; then
            SSE_PORT=${line##*:}
            SPID=$(pgrep -P "$TPID" | head -n1)
            [ -n "$SPID" ] && track_pid "$SPID" && return 0
        fi
        kill -0 "$TPID" 2>/dev/null || break
        sleep 0.02
    done
    cat "$T/$name.err" >&2
    return 1
}

# stop_traced: SIGTERM to the server; succeeds when it exits 0 within 5 s
# (TimeoutStopSec=5). Sets STOP_MSG. (Not in a command substitution: strace
# must be waited for by this shell, its parent.)
stop_traced() {
    local start i status
    start=$(now_ms)
    kill -TERM "$SPID" 2>/dev/null
    for ((i = 0; i < 250; i++)); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.02
    done
    if kill -0 "$SPID" 2>/dev/null; then
        STOP_MSG="still running after 5 s"
        return 1
    fi
    wait "$TPID" 2>/dev/null # strace exits with the tracee's status
    status=$?
    STOP_MSG="$(($(now_ms) - start)) ms, status $status"
    [ "$status" -eq 0 ]
}

mkdir -p "$T/data"
if run_traced run1 --data-dir "$T/data" --ping-ms 200 --heartbeat 1; then
    U="http://127.0.0.1:$SSE_PORT"
    curl -sN --max-time 10 -o "$T/stream.out" "$U/messages" &
    track_pid $!
    curl -sN --max-time 1 -o /dev/null "$U/ping"
    for k in 1 2 3; do
        curl -s --max-time 3 -o /dev/null -H 'Content-Type: application/json' \
            --data "{\"text\":\"m$k\"}" "$U/message?room=r$k"
    done
    curl -s --max-time 3 -o /dev/null --data '{"bad":' -H 'Content-Type: application/json' "$U/message"
    for path in / /index.html /healthz /stats /metrics /nope; do
        curl -s --max-time 3 -o /dev/null "$U$path"
    done
    kill -HUP "$SPID"
    sleep 0.3
    curl -s --max-time 3 -o /dev/null "$U/"
    sleep 1.2 # a heartbeat on the open stream
    if stop_traced; then
        ok "SIGTERM with a stream open stops it within TimeoutStopSec=5 ($STOP_MSG)"
    else
        bad "SIGTERM stops it within TimeoutStopSec=5" "$STOP_MSG"
    fi
    # Second start: replays the journal of the first.
    if run_traced run2 --data-dir "$T/data"; then
        curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$SSE_PORT/messages?room=r1&history=5"
        stop_traced || bad "second start stops cleanly" "$STOP_MSG"
    fi

    cat "$T"/run*.strace >"$T/all.strace"
    sed -nE 's/^[0-9]+ +([a-z_0-9]+)\(.*/\1/p' "$T/all.strace" | sort -u >"$T/used"
    outside=$(comm -23 "$T/used" "$T/allowed" | tr '\n' ' ')
    if [ "$(wc -l <"$T/used")" -gt 20 ] && [ -z "$outside" ]; then
        ok "all $(wc -l <"$T/used") system calls it made are in @system-service"
    else
        bad "system calls within SystemCallFilter=@system-service" "outside: ${outside:-(no trace)}"
    fi
    families=$(grep -oE 'socket\(AF_[A-Z0-9]+' "$T/all.strace" | sed 's/socket(//' | sort -u | tr '\n' ' ')
    if ! tr ' ' '\n' <<<"$families" | grep -qvxE 'AF_INET|AF_INET6|AF_UNIX|'; then
        ok "socket families used ($families) within RestrictAddressFamilies="
    else
        bad "socket families within RestrictAddressFamilies=" "$families"
    fi
    if grep -E '^[0-9]+ +(mmap|mprotect|pkey_mprotect)\(' "$T/all.strace" |
        grep 'PROT_WRITE' | grep -q 'PROT_EXEC'; then
        bad "no writable and executable mapping (MemoryDenyWriteExecute=)" \
            "$(grep -E 'PROT_WRITE.*PROT_EXEC|PROT_EXEC.*PROT_WRITE' "$T/all.strace" | head -n 2)"
    else
        ok "no writable and executable mapping (MemoryDenyWriteExecute=)"
    fi
else
    bad "sse-server starts under strace" "$(tail -n 3 "$T/run1.err")"
fi

summary
