#!/usr/bin/env bash
# Loop lag under workload 1: the sse_loop_iteration_seconds histogram's p99
# and max (from /stats) and the iterations slower than 1 ms and 5 ms, for
#
#   plain        workload 1, default options
#   sighup       the same with a storm of SIGHUPs (static files reloaded)
#   hup-idle     the storm alone, no load: what a reload costs the loop
#   journal      workload 1 with --data-dir, --segment-bytes 64k and --fsync
#                never: a segment rotation every few hundred messages,
#                retention (on its thread) behind it
#   rotate-idle  one subscriber, 2,000 messages one at a time, --segment-bytes
#                4k --fsync never: a rotation every ~25 messages, little else
#   rotate-batch the same with the default --fsync batch, whose group-commit
#                fdatasync runs on the loop by design
#
# Workload 1 iterations are long on their own (one write per subscriber per
# message: 1,000 writes in an iteration), so the idle cases are the ones
# that show what a reload or a rotation adds.
#
#   bench/loop_lag.sh                 QUICK-sized workload 1 (1,000 subscribers)
#   FULL=1 bench/loop_lag.sh          full-sized (10,000 subscribers)
#   HUPS=20 STATIC_MB=16 CASES="plain sighup" bench/loop_lag.sh
#
# STATIC_MB (default 16) sizes a generated static directory used in every
# case, so that a reload has real work to do (the bundled one is 32 KiB).
# SSE_SERVER=path measures another binary. Each server is started by this
# script and killed by its PID; everything stops by itself (loadgen has a
# deadline). Results also go to build/bench/loop-lag-*.txt.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

[ "${FULL:-0}" = 1 ] || QUICK=1
SERVERS=sse-server
HUPS=${HUPS:-20}
STATIC_MB=${STATIC_MB:-16}
CASES=${CASES:-plain sighup hup-idle journal rotate-idle rotate-batch}

bench_build

# A static directory of STATIC_MB MiB in 64 files.
make_static() {
    local dir=$BENCH_OUT/lag-static i
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$BENCH_ROOT"/static/* "$dir"/
    for i in $(seq 64); do
        head -c $((STATIC_MB * 1024 * 16)) /dev/urandom >"$dir/blob$i.bin"
    done
    echo "$dir"
}
STATIC_DIR=$(make_static)

# start_server CASE LOGBASE: like lib.sh's server_start, with the case's options.
start_server() {
    local extra=() base=$2
    case $1 in
    journal) extra=(--data-dir "$BENCH_OUT/lag-data" --segment-bytes 64k --fsync never) ;;
    rotate-idle) extra=(--data-dir "$BENCH_OUT/lag-data" --segment-bytes 4k --fsync never) ;;
    rotate-batch) extra=(--data-dir "$BENCH_OUT/lag-data" --segment-bytes 4k) ;;
    esac
    rm -rf "$BENCH_OUT/lag-data" "$base.out" "$base.err"
    SRV_NAME=sse-server
    local targs=()
    if [ "$HAS_THREADS" = 1 ]; then
        targs=(--threads "${THREADS:-1}") # one loop unless asked: the figures are per loop
    fi
    ${PIN_SRV[@]+"${PIN_SRV[@]}"} "$BENCH_OUT/sse-server" --port 0 --bind 127.0.0.1 ${targs[@]+"${targs[@]}"} \
        --log-level warn --static "$STATIC_DIR" ${extra[@]+"${extra[@]}"} \
        >"$base.out" 2>"$base.err" &
    SRV_PID=$!
    SRV_STAT_PID=$SRV_PID
    wait_listen_line "$base.out"
}

# The SIGHUP storm: HUPS signals spread over about two seconds.
hup_storm() {
    local i
    sleep 0.5
    for i in $(seq "$HUPS"); do
        kill -HUP "$SRV_PID" 2>/dev/null || return 0
        sleep 0.1
    done
}

# One line of figures from /stats and /metrics.
lag_figures() {
    local stats metrics max
    stats=$(curl -s "http://127.0.0.1:$SRV_PORT/stats")
    metrics=$(curl -s "http://127.0.0.1:$SRV_PORT/metrics")
    max=$(jget loop_lag_max_ms "$stats")
    if [ "$max" = - ]; then
        # The first version with the histogram had "loop_lag_ms":{"p99":..,"max":..}.
        max=$(printf '%s' "$stats" | grep -o '"loop_lag_ms":{[^}]*}' | grep -o '"max":[0-9.]*' | cut -d: -f2)
    fi
    printf '%s\n' "$metrics" | awk -v max="${max:-0}" '
        function bucket(le) { return le == "+Inf" ? 1e300 : le + 0 }
        /^sse_loop_iteration_seconds_bucket\{le="0.001"\}/ { le1 = $2 }
        /^sse_loop_iteration_seconds_bucket\{le="0.005"\}/ { le5 = $2 }
        /^sse_loop_iteration_seconds_bucket/ {
            split($1, q, "\""); nb++; bound[nb] = bucket(q[2]); cum[nb] = $2
        }
        /^sse_loop_iteration_seconds_count/ { n = $2 }
        END {
            # p99 over the whole run from the cumulative buckets, interpolated
            # inside its bucket as histogram_quantile does.
            rank = 0.99 * n; lo = 0; below = 0; p99 = 0
            for (i = 1; i <= nb; i++) {
                if (cum[i] >= rank && cum[i] > below) {
                    hi = bound[i] < 1e300 ? bound[i] : max / 1000
                    p99 = lo + (hi - lo) * (rank - below) / (cum[i] - below)
                    break
                }
                lo = bound[i]; below = cum[i]
            }
            if (p99 * 1000 > max) p99 = max / 1000
            printf "iterations %d, p99 %.3f ms, max %s ms, > 1 ms: %d, > 5 ms: %d", n, p99 * 1000, max, n - le1, n - le5
        }'
}

OUTFILE=$BENCH_OUT/loop-lag-$(date +%Y%m%d-%H%M%S).txt
for c in $CASES; do
    base=$BENCH_OUT/lag-$c
    log "== workload 1, case $c"
    start_server "$c" "$base"
    hup_pid=
    if [ "$c" = sighup ] || [ "$c" = hup-idle ]; then
        hup_storm &
        hup_pid=$!
    fi
    line=
    case $c in
    hup-idle) wait "$hup_pid" && sleep 0.5 ;;
    rotate-*) args=(--subs 1 --messages 2000 --bytes 100 --pipeline 1) ;;
    *) read -r -a args <<<"$(workload_args 1)" ;;
    esac
    if [ "$c" != hup-idle ]; then
        line=$(${PIN_LG[@]+"${PIN_LG[@]}"} "$BENCH_OUT/loadgen" --port "$SRV_PORT" \
            --server-pid "$SRV_STAT_PID" --timeout "$TIMEOUT" --label "W1/$c" \
            "${args[@]}" --json 2>"$base.loadgen.err") || true
    fi
    if [ -n "$hup_pid" ]; then
        wait "$hup_pid" || true
    fi
    load=
    [ -z "$line" ] || load="; $(summary_line "$line" | sed 's/^[^:]*: //; s/, lost.*//')"
    printf '%-12s %s%s\n' "$c" "$(lag_figures)" "$load" | tee -a "$OUTFILE"
    server_stop
done
rm -rf "$BENCH_OUT/lag-data" "$STATIC_DIR"
log "results: $OUTFILE"
