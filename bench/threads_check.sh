#!/usr/bin/env bash
# Checks bench/threads.awk on made-up result lines before a run trusts it:
# each case's verdict on "CPU per delivery within 10% of the first count",
# the tick error, both layouts, and STRICT=1's exit status. Run by
# bench_build (bench/lib.sh); exits 1 at the first wrong answer.
set -euo pipefail
AWK_DIR="$(cd "$(dirname "$0")" && pwd)"
fails=0

# res W T CPU_S NS_PER_DELIVERY [STATUS]: one result line of sse-server-tT.
res() {
    printf '{"label":"W%s/sse-server-t%s","status":"%s","deliv_per_s":%d,"lat_p99_us":1000.0,' \
        "$1" "$2" "${5:-ok}" $((100000 * $2))
    printf '"srv_cpu_s":%s,"srv_ns_per_delivery":%s,"deliveries":100,"expected":100,"srv_threads":%s}\n' \
        "$3" "$4" "$2"
}

# expect NAME WANT GOT: GOT must contain WANT.
expect() {
    if [[ $3 != *"$2"* ]]; then
        printf 'threads_check: %s: no "%s" in:\n%s\n' "$1" "$2" "$3" >&2
        fails=$((fails + 1))
    fi
}

# table LAYOUT STRICT [NCPU]
table() { awk -v layout="$1" -v strict="$2" -v ncpu="${3:-2}" -f "$AWK_DIR/json_field.awk" -f "$AWK_DIR/threads.awk"; }

# Workload 1: 4% more CPU at 2 loops (within); 2: 20% more over 50 s of CPU
# (clearly not); 3: 20% more from 0.05 s (the ticks straddle 1.10);
# 5: 20% less (within, lower).
lines=$(
    res 1 1 50.00 5000
    res 1 2 52.00 5200
    res 2 1 50.00 5000
    res 2 2 60.00 6000
    res 3 1 0.05 500
    res 3 2 0.06 600
    res 5 1 10.00 10000
    res 5 2 8.00 8000 fail
)
out=$(table wide 0 <<<"$lines")
expect "within" "| 1.04 | yes |" "$out"
expect "over" "| 1.20 | **no** |" "$out"
expect "coarse" "| 1.20 ±0.44 | unclear |" "$out"
expect "lower" "| 0.80 | yes (lower) |" "$out"
expect "µs, 3 decimals under 1 µs" "| 0.500 | 0.600 |" "$out"
expect "µs, 2 decimals above" "| 10.00 | 8.00 |" "$out"
expect "loss column" "| 100/100 | 100/100 fail |" "$out"
expect "summary" "workload 1 1.04x, yes; workload 2 1.20x, no;" "$out"

out=$(table long 0 1 <<<"$lines")
expect "long, more loops than CPUs" "| 1 | 2 (> 1 CPUs) |" "$out"
expect "long ratio" "| 2 | 2 (> 1 CPUs) | 200000 | 2.00 | 1000.0 | 6.00 | 1.20 | **no** |" "$out"
expect "long first" "| 1 | 1 | 100000 | 1.00 | 1000.0 | 5.00 | 1.00 | - |" "$out"

rc=0
table wide 1 <<<"$lines" >/dev/null || rc=$?
expect "strict fails on a clear miss" "1" "$rc"
rc=0
table wide 1 <<<"$(res 1 1 50.00 5000; res 1 2 52.00 5200)" >/dev/null || rc=$?
expect "strict passes when within" "0" "$rc"

if [ "$fails" -gt 0 ]; then
    exit 1
fi
echo "threads_check: bench/threads.awk gives the expected verdicts"
