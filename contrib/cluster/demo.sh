#!/usr/bin/env bash
# demo.sh (make cluster-demo): a three-node cluster on this machine.
#
# Starts, all on 127.0.0.1 and all in one temporary directory:
#   - redis-server (appendonly yes) on a free port,
#   - three sse-server nodes (--redis, --port 0, --threads 1),
#   - nginx with contrib/cluster/nginx.conf, its upstream pointed at the nodes,
# prints the chat page's URL through nginx and each node's own URL, and waits.
# Ctrl-C (or SIGTERM) stops everything it started, by PID, and removes the
# directory (KEEP_TMP=1 keeps it, with every log).
#
# Environment:
#   SSE_SERVER=path    the binary (default build/sse-server, built by make)
#   DEMO_SECONDS=N     stop by itself after N seconds (default: run until Ctrl-C)
#   KEEP_TMP=1         keep the temporary directory
#   NODE_ARGS="..."    more options for every node (e.g. "--log-level debug")
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${SSE_SERVER:-$ROOT/build/sse-server}
NODES=3

say() { printf '%s\n' "$*" >&2; }
die() {
    say "cluster-demo: $*"
    exit 1
}

for cmd in redis-server nginx; do
    command -v "$cmd" >/dev/null 2>&1 ||
        die "needs $cmd (Debian: apt-get install redis-server nginx)"
done
[ -x "$BIN" ] || die "no $BIN: run make first"
"$BIN" --help 2>&1 | grep -q -- '--redis' ||
    die "$BIN has no --redis option: this version cannot run as a cluster"

T=$(mktemp -d /tmp/sse-cluster-demo-XXXXXX) || die "mktemp failed"
chmod 755 "$T" # nginx workers (nobody, when started as root) work below it
PIDS=() # everything started here, stopped by these PIDs only

# Stops what was started, newest first (nginx, the nodes, then Redis, so that
# no node sees Redis go away): SIGTERM, then SIGKILL after 3 s.
cleanup() {
    local i pid n
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for ((n = 0; n < 60; n++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        say "kept $T"
    else
        rm -rf -- "$T"
    fi
    say "cluster-demo: stopped"
}
trap cleanup EXIT
# Ctrl-C is how the demo is meant to end: not an error.
trap 'exit 0' INT
trap 'exit 143' TERM

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

port_taken() {
    ! port_free "$1"
}

# Runs `check ARGS...` every 50 ms for up to 5 s while process PID lives: 0
# once it succeeds, 1 when the process died or the time ran out.
wait_ready() {
    local pid=$1
    shift
    for _ in $(seq 100); do
        "$@" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

random_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        port_free "$p" && echo "$p" && return 0
    done
    return 1
}

# --- Redis. A port is free when nothing answers on it; another program may
# take it before Redis binds, so a failed start is tried again elsewhere.
REDIS_PORT=
for _ in 1 2 3 4 5; do
    p=$(random_port) || break
    redis-server --port "$p" --bind 127.0.0.1 --dir "$T" --appendonly yes --save "" \
        --daemonize no --logfile "$T/redis.log" &
    pid=$!
    if wait_ready "$pid" port_taken "$p"; then
        REDIS_PORT=$p
        PIDS+=("$pid")
        break
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
done
[ -n "$REDIS_PORT" ] || die "redis-server did not start: $(tail -n 3 "$T/redis.log" 2>/dev/null)"
REDIS_URL=redis://127.0.0.1:$REDIS_PORT

# --- The nodes, on ports the kernel picks; each prints its own.
node_listening() {
    local line
    line=$(grep -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*' "$T/node$1.out" 2>/dev/null)
    [ -n "$line" ] && port=${line##*:}
}

NODE_PORTS=()
for ((i = 1; i <= NODES; i++)); do
    # shellcheck disable=SC2086 # NODE_ARGS is a list of options
    env -u SSE_DATA_DIR "$BIN" --port 0 --bind 127.0.0.1 --threads 1 --redis "$REDIS_URL" \
        --static "$ROOT/static" ${NODE_ARGS:-} >"$T/node$i.out" 2>"$T/node$i.log" &
    pid=$!
    PIDS+=("$pid")
    port=
    wait_ready "$pid" node_listening "$i" ||
        die "node $i did not start: $(tail -n 5 "$T/node$i.log")"
    NODE_PORTS+=("$port")
done

# --- nginx: contrib/cluster/nginx.conf with its upstream and listen lines
# rewritten, inside a minimal main configuration of its own.
write_nginx_conf() {
    local listen=$1 user=""
    awk -v listen="$listen" -v ports="${NODE_PORTS[*]}" '
        BEGIN { n = split(ports, p, " ") }
        /^[[:space:]]*server 127\.0\.0\.1:808[0-9]/ {
            if (++k <= n) sub(/127\.0\.0\.1:808[0-9]/, "127.0.0.1:" p[k])
        }
        /^[[:space:]]*listen 80;/ { sub(/listen 80;/, "listen 127.0.0.1:" listen ";") }
        { print }
    ' "$ROOT/contrib/cluster/nginx.conf" >"$T/cluster.conf"
    [ "$(id -u)" -eq 0 ] && user="user nobody nogroup;"
    cat >"$T/nginx.conf" <<EOF
daemon off;
worker_processes 1;
$user
pid $T/nginx.pid;
error_log $T/nginx-error.log info;
events { worker_connections 1024; }
http {
    access_log $T/nginx-access.log;
    client_body_temp_path $T/client_body;
    proxy_temp_path $T/proxy;
    fastcgi_temp_path $T/fastcgi;
    uwsgi_temp_path $T/uwsgi;
    scgi_temp_path $T/scgi;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    include $T/cluster.conf;
}
EOF
    [ -f /etc/nginx/mime.types ] || sed -i '/mime.types/d' "$T/nginx.conf"
}

nginx_healthy() {
    [ "$(curl -s --max-time 1 "http://127.0.0.1:$1/healthz" 2>/dev/null)" = ok ]
}

NGINX_PORT=
for _ in 1 2 3 4 5; do
    p=$(random_port) || break
    write_nginx_conf "$p"
    : >"$T/nginx-error.log"
    nginx -p "$T" -e "$T/nginx-error.log" -c "$T/nginx.conf" >"$T/nginx.out" 2>&1 &
    pid=$!
    if wait_ready "$pid" nginx_healthy "$p"; then
        NGINX_PORT=$p
        PIDS+=("$pid")
        break
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    grep -q 'Address already in use' "$T/nginx-error.log" "$T/nginx.out" || break
done
[ -n "$NGINX_PORT" ] ||
    die "nginx did not start: $(tail -n 5 "$T/nginx-error.log" "$T/nginx.out" 2>/dev/null)"

row() { printf '  %-27s %s\n' "$1" "$2"; }
echo
echo "sse-server cluster: $NODES nodes, one Redis, nginx in front (all on loopback)"
echo
row "chat page, through nginx:" "http://127.0.0.1:$NGINX_PORT/"
for ((i = 0; i < NODES; i++)); do
    row "node $((i + 1)), directly:" "http://127.0.0.1:${NODE_PORTS[i]}/"
done
row "Redis:" "$REDIS_URL (appendonly yes)"
row "files and logs:" "$T"
cat <<EOF

Open the chat page in two tabs, or the node URLs side by side: a message
posted on one node reaches the subscribers of every node. Try
  curl -N http://127.0.0.1:${NODE_PORTS[0]}/messages
  curl -H 'Content-Type: application/json' -d '{"user":"demo","text":"hello"}' \\
       http://127.0.0.1:${NODE_PORTS[$((NODES - 1))]}/message
Ctrl-C stops everything.

EOF

# Wait for Ctrl-C (or DEMO_SECONDS); a process that dies ends the demo.
start=$SECONDS
while :; do
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "process $pid exited; logs in $T (KEEP_TMP=1 keeps them)"
    done
    if [ -n "${DEMO_SECONDS:-}" ] && [ $((SECONDS - start)) -ge "$DEMO_SECONDS" ]; then
        exit 0
    fi
    sleep 0.5 &
    wait $!
done
