#!/usr/bin/env bash
# Three nodes over one Redis against one node: the same subscribers, the same
# messages, one table (make bench-cluster).
#
#   bench/cluster.sh                  9,000 subscribers, 1,000 messages of 100 B
#   QUICK=1 bench/cluster.sh          900 subscribers, 100 messages
#   SUBS=3000 MESSAGES=500 bench/cluster.sh
#   PIPELINES="1" bench/cluster.sh    one POST in flight only
#   SETUPS="redis1 redis3" bench/cluster.sh   leave out the node without Redis
#
# Setups (SETUPS, in this order by default):
#   alone    one node without --redis: the single-node server as it was, for
#            reference (its own history, no Redis on the publish path)
#   redis1   one node with --redis: all SUBS subscribers on it
#   redis3   three nodes with --redis, SUBS/3 subscribers on each
# each at every publishing mode in PIPELINES ("1 32": one POST in flight,
# then 32 pipelined on one keep-alive connection). The publisher always
# posts to the first node; its messages reach the other nodes through Redis.
#
# Every run starts a fresh redis-server (on a free loopback port, in a
# temporary directory, appendonly yes with appendfsync everysec unless
# REDIS_ARGS says otherwise) and fresh nodes (--threads 1 each, --port 0), runs
# bench/loadgen once and stops them all by PID. bench/loadgen spreads the
# subscribers over the nodes (--sub-ports), checks that every subscriber got
# every accepted message once and in order, and measures:
#   deliveries/s      events received by all subscribers / (first POST to last delivery)
#   p99 latency       POST written to event parsed, over every delivery
#   nodes CPU/deliv   utime+stime of all the nodes while publishing / deliveries
#   Redis CPU/msg     utime+stime of redis-server while publishing (/proc/PID/stat,
#                     before and after) / accepted messages; and the same from the
#                     scheduler's nanosecond count (/proc/PID/task/*/schedstat)
# /proc/PID/stat counts CPU in 10 ms ticks, so that column is exact only to
# 10 ms / messages (10 µs at 1,000 messages). And an idle Redis is not free
# (its 10 Hz timer, the AOF's fsync every second, the nodes' pings: about 1.5
# ms a second here), which at tens of messages a second is tens of µs per
# message. So the last column is Redis's CPU by the scheduler's nanosecond
# count, less its idle rate (measured for IDLE_S seconds, default 2, with the
# nodes connected, before the subscribers come) times the publishing time.
#
# Environment: SUBS, MESSAGES, BYTES (100), PIPELINES, SETUPS, QUICK, IDLE_S, TIMEOUT
# (loadgen deadline per run, 120 s), REDIS_ARGS, SSE_SERVER (a binary instead
# of make's), BENCH_OUT (build/bench-cluster). Loopback only; bounded: each
# run ends by its deadline, and every process is stopped by its PID.
set -euo pipefail
BENCH_OUT=${BENCH_OUT:-$(cd "$(dirname "$0")/.." && pwd)/build/bench-cluster}
# shellcheck disable=SC2034 # read by lib.sh
NOPIN=1 # nodes, Redis and the load generator share the cores (said in the table's header)
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
    SUBS=${SUBS:-900}
    MESSAGES=${MESSAGES:-100}
else
    SUBS=${SUBS:-9000}
    MESSAGES=${MESSAGES:-1000}
fi
BYTES=${BYTES:-100}
PIPELINES=${PIPELINES:-1 32}
SETUPS=${SETUPS:-alone redis1 redis3}
RUN_TIMEOUT=${TIMEOUT:-120}
IDLE_S=${IDLE_S:-2}
NODES_MAX=3
read -r -a REDIS_EXTRA <<<"${REDIS_ARGS:---appendonly yes --appendfsync everysec}"

if [ $((SUBS % NODES_MAX)) -ne 0 ]; then
    log "SUBS=$SUBS: must divide by $NODES_MAX, so that every node gets as many"
    exit 2
fi

PIDS=()      # every process this run started, stopped by PID
REDIS_PID=
REDIS_PORT=
NODE_PIDS=()
NODE_PORTS=()
TMP=

stop_all() {
    local i pid n
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for ((n = 0; n < 50; n++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    NODE_PIDS=()
    NODE_PORTS=()
    REDIS_PID=
    if [ -n "$TMP" ]; then
        rm -rf -- "$TMP"
        TMP=
    fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# redis_start: a fresh redis-server in $TMP on a free port (tried up to 5
# times: another program may take a port between the look and the bind).
redis_start() {
    local p pid
    for _ in 1 2 3 4 5; do
        p=$((20000 + RANDOM % 40000))
        port_free "$p" || continue
        redis-server --port "$p" --bind 127.0.0.1 --dir "$TMP" --save "" --daemonize no \
            --logfile "$TMP/redis.log" "${REDIS_EXTRA[@]}" &
        pid=$!
        for _ in $(seq 100); do
            if [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ]; then
                REDIS_PID=$pid
                REDIS_PORT=$p
                PIDS+=("$pid")
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    log "redis-server did not start: $(tail -n 3 "$TMP/redis.log" 2>/dev/null)"
    return 1
}

# sched_s PID: CPU seconds of every thread of PID, from schedstat (ns).
sched_s() {
    awk '{ ns += $1 } END { printf "%.6f", ns / 1e9 }' /proc/"$1"/task/*/schedstat
}

# node_start I [ARGS...]: one node on a port the kernel picks.
node_start() {
    local i=$1 pid port="" line
    shift
    env -u SSE_THREADS -u SSE_REDIS -u SSE_DATA_DIR "$BENCH_OUT/sse-server" --port 0 \
        --bind 127.0.0.1 --threads 1 --log-level warn --max-clients $((SUBS + 1000)) "$@" \
        >"$TMP/node$i.out" 2>"$TMP/node$i.err" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        line=$(grep -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*' "$TMP/node$i.out" 2>/dev/null || true)
        if [ -n "$line" ]; then
            port=${line##*:}
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        log "node $i did not start: $(tail -n 5 "$TMP/node$i.err")"
        return 1
    fi
    NODE_PIDS+=("$pid")
    NODE_PORTS+=("$port")
}

# run_setup SETUP PIPELINE: one run; appends its loadgen line to $RESULTS.
run_setup() {
    local setup=$1 pipe=$2 nodes=1 redis=0 i line rc=0 label
    case $setup in
    alone) ;;
    redis1) redis=1 ;;
    redis3)
        redis=1
        nodes=3
        ;;
    *)
        log "unknown setup $setup (alone, redis1, redis3)"
        exit 2
        ;;
    esac
    label="$setup/p$pipe"
    TMP=$(mktemp -d /tmp/bench-cluster-XXXXXX)
    log "== $label: $nodes node(s) x $((SUBS / nodes)) subscribers, Redis: $([ "$redis" = 1 ] && echo yes || echo no)"
    local args=()
    if [ "$redis" = 1 ]; then
        redis_start || { stop_all; return 1; }
        args=(--redis "redis://127.0.0.1:$REDIS_PORT")
    fi
    for ((i = 1; i <= nodes; i++)); do
        node_start "$i" ${args[@]+"${args[@]}"} || { stop_all; return 1; }
    done
    local ports pids lg=()
    ports=$(IFS=,; echo "${NODE_PORTS[*]}")
    pids=$(IFS=,; echo "${NODE_PIDS[*]}")
    local idle_rate=0 a b
    if [ "$redis" = 1 ]; then
        lg=(--redis-pid "$REDIS_PID")
        sleep 0.5 # the nodes' handshakes
        a=$(sched_s "$REDIS_PID")
        sleep "$IDLE_S"
        b=$(sched_s "$REDIS_PID")
        idle_rate=$(awk -v a="$a" -v b="$b" -v t="$IDLE_S" 'BEGIN { printf "%.6f", (b - a) / t }')
    fi
    line=$("$BENCH_OUT/loadgen" --port "${NODE_PORTS[0]}" --sub-ports "$ports" \
        --server-pid "$pids" ${lg[@]+"${lg[@]}"} --subs "$SUBS" --messages "$MESSAGES" \
        --bytes "$BYTES" --pipeline "$pipe" --timeout "$RUN_TIMEOUT" --label "$label" \
        --json 2>"$BENCH_OUT/$setup-p$pipe.loadgen.err") || rc=$?
    for ((i = 1; i <= nodes; i++)); do
        cp "$TMP/node$i.err" "$BENCH_OUT/$setup-p$pipe.node$i.err" 2>/dev/null || true
    done
    if [ "$redis" = 1 ]; then
        cp "$TMP/redis.log" "$BENCH_OUT/$setup-p$pipe.redis.log" 2>/dev/null || true
        # Redis's own account of its time per command, to set beside the table's.
        redis-cli -p "$REDIS_PORT" info commandstats >"$BENCH_OUT/$setup-p$pipe.redis-commandstats.txt" \
            2>/dev/null || true
    fi
    stop_all
    if [ -z "$line" ]; then
        log "loadgen failed (exit $rc): $(tail -n 5 "$BENCH_OUT/$setup-p$pipe.loadgen.err")"
        line="{\"label\":\"$label\",\"status\":\"error\"}"
    fi
    line="${line%\}},\"nodes\":$nodes,\"redis\":$redis,\"redis_idle_cpu_per_s\":$idle_rate}"
    echo "$line" >>"$RESULTS"
    log "   $(summary_line "$line")$([ "$redis" = 1 ] && echo ", redis $(jget redis_sched_us_per_msg "$line") us/msg, idle $idle_rate s/s")"
}

print_cluster_table() {
    awk -f "$BENCH_ROOT/bench/json_field.awk" -f "$BENCH_ROOT/bench/cluster_table.awk" "$1"
}

# ---------------------------------------------------------------- main
for cmd in redis-server redis-cli; do
    command -v "$cmd" >/dev/null 2>&1 || {
        log "needs $cmd (Debian: apt-get install redis-server)"
        exit 2
    }
done
mkdir -p "$BENCH_OUT"
if [ -n "${SSE_SERVER:-}" ]; then
    cp "$SSE_SERVER" "$BENCH_OUT/sse-server"
else
    log "== make build/sse-server"
    make -C "$BENCH_ROOT" -s build/sse-server >&2
    # A private copy: a rebuild during the run does not change what runs.
    cp "$BENCH_ROOT/build/sse-server" "$BENCH_OUT/sse-server"
fi
if [[ " $SETUPS " == *" redis"* ]] && ! "$BENCH_OUT/sse-server" --help 2>&1 | grep -q -- '--redis'; then
    log "this sse-server has no --redis option: only SETUPS=alone can run"
    exit 2
fi
log "== cc bench/loadgen.c"
# shellcheck disable=SC2086
$CC $BENCH_CFLAGS -pthread -o "$BENCH_OUT/loadgen" "$BENCH_ROOT/bench/loadgen.c"
# Both ends of every stream are on this machine.
ulimit -n "$(ulimit -Hn)"

STAMP=$(date -u +%Y%m%d-%H%M%S)
RESULTS=$BENCH_OUT/results-$STAMP.jsonl
: >"$RESULTS"
fail=0
for pipe in $PIPELINES; do
    for setup in $SETUPS; do
        run_setup "$setup" "$pipe" || fail=1
    done
done

model=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*: *//' || true)
{
    echo "Machine: $NCPU CPUs${model:+ ($model)}, $(redis-server --version | grep -o 'v=[0-9.]*'); nothing pinned: the nodes (--threads 1 each), redis-server and the load generator share every core."
    echo "$SUBS subscribers in one room, $MESSAGES messages of $BYTES B, published to the first node; Redis: ${REDIS_EXTRA[*]}."
    echo
    print_cluster_table "$RESULTS"
} | tee "${RESULTS%.jsonl}.md"
log "results: $RESULTS"
if grep -q '"status":"\(fail\|error\|timeout\)"' "$RESULTS"; then
    fail=1
fi
exit "$fail"
