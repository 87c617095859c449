#!/usr/bin/env bash
# passes.sh: runs the integration test binaries once per value of
# ITEST_THREADS (see tests/integration/itest.h), the passes side by side.
#
#   tests/integration/passes.sh LOGDIR "1 4" BIN...
#
# Every server a pass starts gets `--threads N` (its tests use ephemeral
# ports and their own scratch files, so passes cannot collide). Each pass
# writes to LOGDIR/integration-threads-N.log; when all have ended their logs
# are shown one after the other, each line prefixed "[threads=N] " so a
# failure names its pass, and a summary says how each pass ended. Within a
# pass every binary runs even when an earlier one fails. Exit status: 0 when
# every pass passed, else 1.
#
# The environment (SSE_SERVER, SSE_STATIC, ITEST_TIMEOUT_SCALE, sanitizer
# options...) is passed through to each binary.
set -u

if [ $# -lt 3 ]; then
    echo "usage: $0 LOGDIR \"N...\" BIN..." >&2
    exit 2
fi
logdir=$1
passes=$2
shift 2
mkdir -p "$logdir" || exit 1

# One pass: every binary with ITEST_THREADS=$1, in order.
run_pass() {
    local n=$1 fail=0 t
    shift
    for t in "$@"; do
        echo "== $t (ITEST_THREADS=$n)"
        ITEST_THREADS=$n "$t" || {
            fail=1
            echo "== $t (ITEST_THREADS=$n): FAILED"
        }
    done
    return $fail
}

declare -A pid
start=$SECONDS
for n in $passes; do
    run_pass "$n" "$@" >"$logdir/integration-threads-$n.log" 2>&1 &
    pid[$n]=$!
done
# Stopped by hand (Ctrl-C) or by make: the passes stop too.
trap 'kill "${pid[@]}" 2>/dev/null; exit 130' INT TERM

declare -A status
for n in $passes; do
    wait "${pid[$n]}"
    status[$n]=$?
done
trap - INT TERM

failed=0
for n in $passes; do
    sed "s/^/[threads=$n] /" "$logdir/integration-threads-$n.log"
done
for n in $passes; do
    if [ "${status[$n]}" -eq 0 ]; then
        echo "integration pass ITEST_THREADS=$n: passed ($logdir/integration-threads-$n.log)"
    else
        failed=1
        echo "integration pass ITEST_THREADS=$n: FAILED (status ${status[$n]}; failing binaries:" \
            "$(sed -n 's/^== \(.*\) (ITEST_THREADS=.*): FAILED$/\1/p' \
                "$logdir/integration-threads-$n.log" | tr '\n' ' '))"
    fi
done
echo "integration: ITEST_THREADS=$(echo $passes | tr " " ",") in $((SECONDS - start)) s"
exit $failed
