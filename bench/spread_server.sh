#!/usr/bin/env bash
# spread_server: how evenly sse-server spreads long-lived connections over
# its event loops. For each T in $SPREAD_THREADS (default "2 4 8 16") it
# starts the server with --threads T on a loopback port, opens
# $SPREAD_CONNS event streams (default 10,000) with bench/spread_client.c,
# reads /stats and prints one line of the table; then the client closes its
# streams and the server is stopped (by its PID).
#
# The acceptor hands each connection to the loop with the fewest open ones,
# so the expected answer is an exact split; compare bench/spread.c, which
# measured what the kernel's SO_REUSEPORT spread would have given instead.
#
# Environment:
#   SPREAD_THREADS="2 4 8 16"  the --threads values
#   SPREAD_CONNS=10000         streams per run
#   SSE_SERVER=path            use this binary instead of building with make
#   BENCH_OUT=dir              where the client and the logs go (build/bench)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_OUT=${BENCH_OUT:-$ROOT/build/bench}
THREADS=${SPREAD_THREADS:-2 4 8 16}
CONNS=${SPREAD_CONNS:-10000}
CC=${CC:-cc}
mkdir -p "$BENCH_OUT"

# Both ends of every stream are on this machine: the server and the client
# each need a descriptor per stream.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((CONNS + 256)) ]; then
    echo "spread_server: the descriptor limit $(ulimit -n) is too low for $CONNS streams" >&2
    exit 2
fi

if [ -z "${SSE_SERVER:-}" ]; then
    make -C "$ROOT" build/sse-server >&2
    SSE_SERVER=$ROOT/build/sse-server
fi
$CC -std=c17 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$BENCH_OUT/spread_client" \
    "$ROOT/bench/spread_client.c"

SRV_PID=
stop_server() {
    if [ -n "$SRV_PID" ]; then
        kill -TERM "$SRV_PID" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
        SRV_PID=
    fi
}
trap stop_server EXIT

# Starts the server with --threads $1; sets SRV_PID and SRV_PORT.
start_server() {
    local out=$BENCH_OUT/spread-t$1.out
    : >"$out"
    "$SSE_SERVER" --port 0 --bind 127.0.0.1 --threads "$1" --max-clients $((CONNS + 100)) \
        >"$out" 2>"$BENCH_OUT/spread-t$1.log" &
    SRV_PID=$!
    local line='' tries
    for ((tries = 0; tries < 100; tries++)); do
        line=$(grep -m1 'listening on http://' "$out" 2>/dev/null || true)
        [ -n "$line" ] && break
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if [ -z "$line" ]; then
        echo "spread_server: the server did not start; its log:" >&2
        cat "$BENCH_OUT/spread-t$1.log" >&2
        exit 1
    fi
    SRV_PORT=${line##*:}
}

echo "$CONNS streams over loopback; figures from /stats (which counts its own request)"
printf '%7s %11s %7s %7s %9s %8s\n' threads connections min max average busiest%
for t in $THREADS; do
    start_server "$t"
    "$BENCH_OUT/spread_client" "$SRV_PORT" "$CONNS"
    stop_server
done
