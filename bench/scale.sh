#!/usr/bin/env bash
# Scaling with the number of event loops: sse-server alone at --threads 1, 2,
# 4, 8 and 16, one table, on whatever machine this runs on.
#
#   bench/scale.sh                          workload 1, full size
#   QUICK=1 bench/scale.sh                  about 1/10 of the load
#   SCALE_THREADS="1 2 4" bench/scale.sh    other loop counts
#   WORKLOADS="1 3" bench/scale.sh          other workloads (1, 2, 3, 5, 6)
#
# The table has one row per workload and loop count: deliveries/s and their
# ratio to the first count, p99 latency, server CPU per delivery and its
# ratio to the first count (within 10%?), delivered/expected, the server's
# and the load generator's CPU. The machine's CPU count is printed first, and
# a warning for every count above it: such loops share cores, so that row
# measures contention, not scaling.
#
# Placement (bench/lib.sh): with more CPUs than the largest count M, the
# server's T loops are pinned to the first T CPUs and the load generator to
# the CPUs after the first M; otherwise nothing is pinned. The load generator
# gets LOADGEN_THREADS event loops: by default as many as the largest count
# when there are CPUs for them beside the server's (the load generator spends
# about as much CPU per delivery as the server), else half the CPUs.
# The other variables of bench/lib.sh (RUNS, TIMEOUT, BENCH_OUT, STRICT,
# SSE_SERVER, ...) apply. Results go to build/bench/results-*.jsonl and .md.
set -euo pipefail
THREADS=${SCALE_THREADS:-1 2 4 8 16}
WORKLOADS=${WORKLOADS:-1}
SERVERS=sse-server
THREADS_LAYOUT=long
THREADS_ONLY=1

ncpu=$(nproc 2>/dev/null || echo 1)
max=1
for t in $THREADS; do
    [ "$t" -gt "$max" ] && max=$t
done
if [ -z "${LOADGEN_THREADS:-}" ]; then
    if [ "$ncpu" -gt "$max" ]; then
        LOADGEN_THREADS=$((ncpu - max < max ? ncpu - max : max))
    else
        LOADGEN_THREADS=$((ncpu / 2 > 1 ? ncpu / 2 : 1))
    fi
fi
[ "$LOADGEN_THREADS" -le 64 ] || LOADGEN_THREADS=64 # loadgen's MAX_THREADS

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

model=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*: *//' || true)
BENCH_PREAMBLE="Machine: $ncpu CPUs${model:+ ($model)}; loops ${THREADS// //}; load generator: $LOADGEN_THREADS event loop(s)."
for t in $THREADS; do
    if [ "$t" -gt "$ncpu" ]; then
        w="warning: --threads $t is more than the $ncpu CPUs: its loops share cores, so that row measures contention, not scaling"
        BENCH_PREAMBLE+=$'\n'"$w"
    fi
done
log "$BENCH_PREAMBLE"

bench_build
bench_main
