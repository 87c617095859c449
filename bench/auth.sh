#!/usr/bin/env bash
# What private rooms cost: token verification per token, and 10,000
# subscribers connecting without tokens (a public room) and with one token
# each (a private room), in one run against one server.
#
#   bench/auth.sh            (make bench-auth)
#   SUBS=1000 bench/auth.sh  fewer subscribers
#   THREADS=2 bench/auth.sh  the server with 2 event loops (default 1)
#
# Loopback only; the server is started here and killed by its PID; each
# step is bounded (auth_bench gives up after 60 s).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/build/bench-auth
SUBS=${SUBS:-10000}
VERIFY=${VERIFY:-200000}
mkdir -p "$OUT"

make -C "$ROOT" -s build/sse-server >&2
cc -std=c17 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
    -Wmissing-prototypes -I"$ROOT/include" -o "$OUT/auth_bench" "$ROOT/bench/auth_bench.c" \
    $(ls "$ROOT"/build/src/*.o | grep -v '/main\.o$') "$ROOT/build/gen/dashboard_files.o" -pthread
cp "$ROOT/build/sse-server" "$OUT/sse-server"

printf 'bench-key:%s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$OUT/keys"
ulimit -n "$(ulimit -Hn)"

SRV_PID=
cleanup() { if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

"$OUT/sse-server" --port 0 --bind 127.0.0.1 --threads "${THREADS:-1}" --log-level warn --max-clients $((SUBS * 2 + 100)) \
    --jwt-key-file "$OUT/keys" --private-rooms 'priv-*' > "$OUT/server.out" 2> "$OUT/server.log" &
SRV_PID=$!
for _ in $(seq 100); do grep -q listening "$OUT/server.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(grep -o '[0-9]*$' "$OUT/server.out")

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$SRV_PID/status"; }

"$OUT/auth_bench" verify "$VERIFY"

# One set of streams: held open (stdin) while the server's memory is read.
run_subs() {
    local room=$1 keys=${2:-} before after
    before=$(rss_kb)
    exec 3> >("$OUT/auth_bench" subs "$PORT" "$SUBS" "$room" $keys > "$OUT/subs.txt")
    for _ in $(seq 600); do [ -s "$OUT/subs.txt" ] && break; sleep 0.1; done
    sleep 1
    after=$(rss_kb)
    cat "$OUT/subs.txt"
    echo "    server RSS +$(( (after - before) )) KiB, $(( (after - before) * 1024 / SUBS )) B per subscriber"
    exec 3>&-
    sleep 2 # the streams close; let the server settle
}
run_subs pub-1
run_subs priv-1 "$OUT/keys"
