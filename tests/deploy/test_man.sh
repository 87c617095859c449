#!/usr/bin/env bash
# test_man.sh: docs/sse-server.1 renders without a warning and cannot drift
# from the binary.
#
#  - `man --warnings -l docs/sse-server.1` writes nothing to stderr (man-db is
#    installed when missing);
#  - the required sections are there;
#  - the options documented in OPTIONS (the .TP entries) are exactly the
#    options of `sse-server --help`, each entry names the option's variable
#    as --help does, each states the default --help shows ("default X"), and
#    ENVIRONMENT lists every variable;
#  - the --threads entry shows "N|auto" and the range --help states;
#  - every endpoint of --help is in ENDPOINTS;
#  - the version in .TH is the binary's.
# Last line: "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh"

PAGE=$REPO/docs/sse-server.1
echo "== deploy: man page"
scratch_dir T || exit 1

if [ ! -f "$PAGE" ]; then
    bad "docs/sse-server.1 exists" "missing"
    summary
    exit
fi

if need_pkg man man-db; then
    man --warnings -l "$PAGE" >"$T/rendered" 2>"$T/warnings"
    rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$T/warnings" ] && [ -s "$T/rendered" ]; then
        ok "man --warnings -l docs/sse-server.1: no warning"
    else
        bad "man --warnings -l docs/sse-server.1" "exit $rc: $(head -n 5 "$T/warnings")"
    fi
    # Rendered wide, each entry's text is on one line: what the default check reads.
    MANWIDTH=1000 LC_ALL=C man -l "$PAGE" >"$T/wide" 2>/dev/null
    if grep -q 'sse-server - Server-Sent Events broadcast server' "$T/rendered"; then
        ok "the page renders its NAME line"
    else
        bad "the page renders its NAME line" "$(head -n 8 "$T/rendered")"
    fi
else
    bad "man available" "not installed and cannot install man-db"
fi

# The source with \- as -, font escapes removed: what the tests below read.
sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\(aq/'"'"'/g' -e 's/\\(dq/"/g' "$PAGE" >"$T/src"

missing=""
for s in NAME SYNOPSIS DESCRIPTION OPTIONS ENDPOINTS SIGNALS ENVIRONMENT "EXIT STATUS" FILES \
    EXAMPLES "SEE ALSO"; do
    grep -qx "\.SH \"\?$s\"\?" "$T/src" || missing="$missing [$s]"
done
if [ -z "$missing" ]; then ok "all 11 sections present"; else bad "sections" "missing:$missing"; fi

# section NAME: the source lines of one section.
section() {
    awk -v s="$1" '/^\.SH /{ on = ($0 == ".SH " s || $0 == ".SH \"" s "\"") ; next } on' "$T/src"
}

BIN=$(sse_binary) || {
    bad "sse-server builds" "make failed"
    summary
    exit
}
"$BIN" --help >"$T/help" || bad "sse-server --help" "exit $?"

# Options of --help, and their variables.
grep -oE '^  --[a-z-]+' "$T/help" | sed 's/^ *//' | sort -u >"$T/help-opts"
# Option entries of the page: the tag line after each .TP in OPTIONS.
section OPTIONS | awk 'prev == ".TP" { print } { prev = $0 }' |
    grep -oE -- '--[a-z-]+' | sort -u >"$T/man-opts"
not_in_man=$(comm -23 "$T/help-opts" "$T/man-opts" | tr '\n' ' ')
not_in_help=$(comm -13 "$T/help-opts" "$T/man-opts" | tr '\n' ' ')
n=$(wc -l <"$T/help-opts")
if [ "$n" -gt 5 ] && [ -z "$not_in_man" ]; then
    ok "each of the $n options of --help has an entry in OPTIONS"
else
    bad "every option of --help in OPTIONS" "missing: ${not_in_man:-(none parsed from --help)}"
fi
if [ -z "$not_in_help" ]; then
    ok "OPTIONS documents no option that --help lacks"
else
    bad "OPTIONS documents only real options" "not in --help: $not_in_help"
fi

# Each entry names the same variable as --help.
section OPTIONS >"$T/options"
wrong=""
while read -r opt var; do
    entry=$(awk -v o="$opt" '
        /^\.TP/ { if (on) exit; tag = 1; next }
        tag { tag = 0; if (index($0, o " ") || $0 ~ (o "$") || index($0, o "\"")) on = 1 }
        on' "$T/options")
    grep -q "\<$var\>" <<<"$entry" || wrong="$wrong $opt($var)"
done < <(sed -nE 's/^  (--[a-z-]+).*\[(SSE_[A-Z_]+)\]$/\1 \2/p' "$T/help")
nv=$(grep -cE '\[SSE_[A-Z_]+\]$' "$T/help")
if [ "$nv" -gt 5 ] && [ -z "$wrong" ]; then
    ok "each option entry names its variable as --help does ($nv)"
else
    bad "option entries name their variables" "wrong or missing:${wrong:- (no variable parsed from --help)}"
fi
# Each entry states the default --help shows: "(default X)" there, "default X"
# followed by a space or punctuation in the rendered entry.
wrong_def=""
nd=0
while IFS=$'\t' read -r opt def; do
    nd=$((nd + 1))
    body=$(awk -v o="$opt" '/^       --/ { on = ($1 == o); next } on' "$T/wide" 2>/dev/null |
        tr -s ' \t\n' '   ')
    case "$body" in
    *"default $def"[.\ \(\;,]*) ;;
    *) wrong_def="$wrong_def $opt($def)" ;;
    esac
done < <(sed -nE 's/^  (--[a-z-]+) .*\(default (.*)\) \[SSE_[A-Z_]+\]$/\1\t\2/p' "$T/help")
if [ "$nd" -gt 5 ] && [ "$nd" -eq "$nv" ] && [ -z "$wrong_def" ]; then
    ok "each option entry states the default --help shows ($nd)"
else
    bad "option entries state the defaults of --help" \
        "$nd of $nv defaults parsed from --help; wrong or missing:${wrong_def:- (none)}"
fi
env_missing=""
for v in $(grep -oE '\[SSE_[A-Z_]+\]$' "$T/help" | tr -d '[]'); do
    section ENVIRONMENT | grep -q "\<$v\>" || env_missing="$env_missing $v"
done
if [ -z "$env_missing" ]; then
    ok "ENVIRONMENT lists every variable"
else
    bad "ENVIRONMENT lists every variable" "missing:$env_missing"
fi

# --threads takes a number or "auto": the page's tag shows both as --help's
# metavar does, and its entry states the range --help states.
help_threads=$(grep -E '^  --threads ' "$T/help")
range=$(grep -oE '[0-9]+ to [0-9]+' <<<"$help_threads")
man_threads=$(awk '/^       --threads/ { on = 1; print; next } /^       --/ { on = 0 } on' "$T/wide" |
    tr -s ' \t\n' '   ')
if [[ "$help_threads" == "  --threads N|auto "* ]] && [ -n "$range" ] &&
    [[ "$man_threads" == *"--threads N|auto "*"$range"* ]]; then
    ok "the --threads entry shows N|auto and the range of --help ($range)"
else
    bad "the --threads entry shows N|auto and the range of --help" \
        "help: ${help_threads:-(none)}; page: ${man_threads:-(none)}"
fi

# Endpoints of --help ("  GET  /messages ...").
ep_missing=""
while read -r method path; do
    section ENDPOINTS | grep -qE "^\.BR? \"?$method $path( |\"|$)" || ep_missing="$ep_missing $method $path;"
done < <(sed -nE 's/^  (GET|POST|HEAD|OPTIONS) +(\/[a-z]*).*/\1 \2/p' "$T/help")
if [ -z "$ep_missing" ]; then
    ok "every endpoint of --help is in ENDPOINTS"
else
    bad "every endpoint of --help in ENDPOINTS" "missing:$ep_missing"
fi

version=$("$BIN" --version | awk '{ print $2 }')
if grep -q "^\.TH .*\"sse-server $version\"" "$T/src"; then
    ok "the .TH line carries the binary's version ($version)"
else
    bad "the .TH line carries the binary's version" "$(grep '^\.TH' "$T/src") vs $version"
fi

summary
