# shellcheck shell=bash
# Shared helpers of the deployment tests (sourced, not run).
#
#   ok NAME / bad NAME WHY / check NAME CMD...   count and print results
#   summary                                      prints "N passed, N failed", returns 1 on failure
#   need_pkg CMD PKG                             apt-get install PKG when CMD is missing (root/sudo)
#   scratch_dir VAR                              VAR=$(mktemp -d /tmp/deploy-XXXXXX), removed on exit
#   track_pid PID                                killed (TERM, then KILL) on exit
#   sse_binary                                   path of the sse-server binary to test
#   start_sse ARGS...                            sets SSE_PID and SSE_PORT (loopback, port 0)
#
# Everything is bounded: no wait below is longer than a few seconds.

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$DEPLOY_DIR/../.." && pwd)

PASSED=0
FAILED=0
_PIDS=()
_DIRS=()

ok() {
    PASSED=$((PASSED + 1))
    printf 'ok    %s\n' "$1"
}

bad() {
    FAILED=$((FAILED + 1))
    printf 'FAIL  %s: %s\n' "$1" "${2:-}"
}

# check NAME CMD...: ok when CMD succeeds.
check() {
    local name=$1
    shift
    if "$@"; then ok "$name"; else bad "$name" "command failed: $*"; fi
}

summary() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

now_ms() {
    # $EPOCHREALTIME is a bash builtin: no fork, microsecond resolution.
    local t=${EPOCHREALTIME/[.,]/}
    echo $((t / 1000))
}

# Not in a command substitution: the directory must be recorded in this shell.
scratch_dir() {
    local d
    d=$(mktemp -d /tmp/deploy-XXXXXX) || return 1
    _DIRS+=("$d")
    printf -v "$1" '%s' "$d"
}

track_pid() {
    _PIDS+=("$1")
}

# Stops every tracked process (TERM, then KILL after 2 s) and removes the
# scratch directories. Installed as the EXIT trap.
_cleanup() {
    local pid i
    for pid in "${_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${_PIDS[@]}"; do
        for ((i = 0; i < 40; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    _PIDS=()
    if [ -z "${KEEP_TMP:-}" ]; then
        for i in "${_DIRS[@]}"; do rm -rf -- "$i"; done
    else
        echo "kept: ${_DIRS[*]}" >&2
    fi
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

# Installs PKG with apt-get when command CMD is missing. Succeeds when CMD is
# there afterwards. Services the package would start are kept stopped (an
# nginx on port 80 of every interface is not something a test may leave
# behind): a temporary policy-rc.d refuses them, unless one exists already.
need_pkg() {
    local cmd=$1 pkg=$2 sudo=""
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "missing '$cmd': install it with: apt-get install -y $pkg" >&2
            return 1
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || {
        echo "missing '$cmd' and no apt-get to install $pkg" >&2
        return 1
    }
    echo "installing $pkg (for $cmd)" >&2
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy" &&
            made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only when the package is unknown to apt.
    if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        $sudo apt-get update -qq >/dev/null 2>&1
    fi
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 ||
        { $sudo apt-get update -qq >/dev/null 2>&1 &&
            $sudo apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1; }
    [ -n "$made_policy" ] && $sudo rm -f "$policy"
    command -v "$cmd" >/dev/null 2>&1
}

# The binary under test: $SSE_SERVER, else the repository's build (brought up
# to date first).
sse_binary() {
    if [ -n "${SSE_SERVER:-}" ]; then
        echo "$SSE_SERVER"
        return
    fi
    make -C "$REPO" -s build/sse-server >&2 || return 1
    echo "$REPO/build/sse-server"
}

# start_sse OUTDIR ARGS...: runs sse-server on 127.0.0.1, port 0, with the
# repository's static files; waits (≤ 5 s) for its "listening on" line.
# Sets SSE_PID and SSE_PORT. stdout/stderr go to OUTDIR/sse.{out,err}.
start_sse() {
    local dir=$1 bin i line
    shift
    bin=$(sse_binary) || return 1
    "$bin" --port 0 --bind 127.0.0.1 --static "${SSE_STATIC:-$REPO/static}" "$@" \
        >"$dir/sse.out" 2>"$dir/sse.err" &
    SSE_PID=$!
    track_pid "$SSE_PID"
    # shellcheck disable=SC2034 # for the caller
    SSE_PORT=""
    for ((i = 0; i < 500; i++)); do
        line=$(grep -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*' "$dir/sse.out" 2>/dev/null)
        if [ -n "$line" ]; then
            # shellcheck disable=SC2034 # for the caller
            SSE_PORT=${line##*:}
            return 0
        fi
        kill -0 "$SSE_PID" 2>/dev/null || break
        sleep 0.01
    done
    echo "sse-server did not start:" >&2
    cat "$dir/sse.err" >&2
    return 1
}

# check_unit_security UNIT: systemd-analyze rates the unit's sandbox at an
# exposure of 2.0 or less (ok), or says what it found (bad).
check_unit_security() {
    if systemd-analyze security --offline=true --threshold=20 "$1" >"$1.security" 2>&1; then
        ok "systemd-analyze security: $(grep -o 'exposure level.*' "$1.security" | head -n1)"
    else
        bad "systemd-analyze security: exposure ≤ 2.0" "$(tail -n 3 "$1.security")"
    fi
}
