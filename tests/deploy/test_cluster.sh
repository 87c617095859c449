#!/usr/bin/env bash
# test_cluster.sh: contrib/cluster/ (nginx in front of three nodes, the
# template unit) and `make cluster-demo` (contrib/cluster/demo.sh).
#
#  1. nginx.conf: the settings event streams need (least_conn over three
#     nodes, proxy_buffering off, HTTP/1.1 keep-alive upstream, long read
#     timeout, gzip off on the streams), and `nginx -t` accepts it.
#  2. sse-server@.service: the sandbox settings of contrib/sse-server.service,
#     a per-instance EnvironmentFile, no StateDirectory; every SSE_* variable
#     in the unit and in node.env.example known to `sse-server --help`;
#     `systemd-analyze verify` on an instance, and its exposure at most 2.0.
#  3. The demo (when sse-server has --redis): run with DEMO_SECONDS, it prints
#     a URL through nginx and three node URLs; a stream through nginx and one
#     on each node all get a message posted to the last node, through nginx
#     uncompressed though the client asks for gzip; a stream moved to another
#     node with its Last-Event-ID gets exactly the messages it missed; SIGINT
#     stops it, leaving no port open and no temporary directory.
# Loopback only; every process is stopped by PID. Last line: "N passed, N failed".
set -u
. "$(dirname "$0")/lib.sh"

echo "== deploy: cluster (contrib/cluster, make cluster-demo)"
C=$REPO/contrib/cluster
scratch_dir T || exit 1
chmod 755 "$T"

BIN=$(sse_binary) || {
    bad "sse-server builds" "make failed"
    summary
    exit
}
"$BIN" --help >"$T/help" 2>&1

# ---------------------------------------------------------------- 1. nginx.conf
grep -v '^[[:space:]]*#' "$C/nginx.conf" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' >"$T/nginx.active"
missing=""
for re in 'least_conn;' 'server 127\.0\.0\.1:8081 .*;' 'server 127\.0\.0\.1:8082 .*;' \
    'server 127\.0\.0\.1:8083 .*;' 'keepalive [0-9]+;' 'proxy_http_version 1\.1;' \
    'proxy_set_header Connection "";' 'proxy_buffering off;' 'proxy_cache off;' 'gzip off;' \
    'proxy_read_timeout 1h;' 'listen 80;'; do
    grep -Eqx -- "$re" "$T/nginx.active" || missing="$missing $re"
done
if [ -z "$missing" ]; then
    ok "cluster nginx.conf has the settings streams need"
else
    bad "cluster nginx.conf has the settings streams need" "missing:$missing"
fi

if need_pkg nginx nginx; then
    sed 's/listen 80;/listen 127.0.0.1:1;/' "$C/nginx.conf" >"$T/cluster.conf"
    cat >"$T/nginx-t.conf" <<EOF
pid $T/nginx-t.pid;
error_log $T/nginx-t.err;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $T/cb; proxy_temp_path $T/px; fastcgi_temp_path $T/fc;
    uwsgi_temp_path $T/uw; scgi_temp_path $T/sc;
    include $T/cluster.conf;
}
EOF
    # Port 1 would need root to bind: -t only parses here when it is refused.
    if nginx -t -q -p "$T" -e "$T/nginx-t.err" -c "$T/nginx-t.conf" >"$T/nginx-t.log" 2>&1 ||
        grep -q 'Permission denied' "$T/nginx-t.log"; then
        ok "nginx -t accepts contrib/cluster/nginx.conf"
    else
        bad "nginx -t accepts contrib/cluster/nginx.conf" "$(cat "$T/nginx-t.log")"
    fi
else
    echo "skip  nginx -t: nginx not available"
fi

# ---------------------------------------------------------------- 2. the unit
UNIT=$C/sse-server@.service
grep -v '^[[:space:]]*[#;]' "$UNIT" | sed 's/[[:space:]]*$//' >"$T/unit.active"
# The sandbox lines of the single-node unit, all present here too.
grep -E '^(DynamicUser|NoNewPrivileges|CapabilityBoundingSet|AmbientCapabilities|Protect[A-Za-z]+|Private[A-Za-z]+|Restrict[A-Za-z]+|LockPersonality|MemoryDenyWriteExecute|RemoveIPC|UMask|SystemCall[A-Za-z]+|LimitNOFILE)=' \
    "$REPO/contrib/sse-server.service" >"$T/sandbox"
missing=$(grep -Fvx -f "$T/unit.active" "$T/sandbox" | tr '\n' ' ')
if [ -z "$missing" ]; then
    ok "template unit has the sandbox of contrib/sse-server.service ($(wc -l <"$T/sandbox") settings)"
else
    bad "template unit has the sandbox of contrib/sse-server.service" "missing: $missing"
fi
check "template unit reads /etc/sse-server/%i.env (required)" \
    grep -qx 'EnvironmentFile=/etc/sse-server/%i.env' "$T/unit.active"
if grep -q '^StateDirectory=' "$T/unit.active"; then
    bad "template unit has no StateDirectory (--data-dir is refused with --redis)" "it has one"
else
    ok "template unit has no StateDirectory (--data-dir is refused with --redis)"
fi
unknown=""
for v in $(grep -ohE 'SSE_[A-Z_]+' "$UNIT" "$C/node.env.example" | sort -u); do
    grep -q "\[$v\]" "$T/help" || unknown="$unknown $v"
done
if [ -z "$unknown" ]; then
    ok "every SSE_* variable in the unit and node.env.example is an option of --help"
else
    bad "SSE_* variables of the unit and node.env.example exist" "unknown:$unknown"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
    P=$T/prefix
    mkdir -p "$P/bin" "$P/share/sse-server/static" "$P/etc"
    cp "$BIN" "$P/bin/sse-server"
    grep -v '^#' "$C/node.env.example" | grep . >"$P/etc/a.env"
    # An instance of the template, its paths in the scratch prefix.
    sed "s|/usr/local|$P|g; s|/etc/sse-server/|$P/etc/|" "$UNIT" >"$T/sse-server@a.service"
    systemd-analyze verify --man=no "$T/sse-server@a.service" >"$T/verify" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$T/verify" ]; then
        ok "systemd-analyze verify sse-server@a: no warning"
    else
        bad "systemd-analyze verify sse-server@a" "exit $rc: $(cat "$T/verify")"
    fi
    check_unit_security "$T/sse-server@a.service"
else
    echo "skip  systemd-analyze: not installed"
fi

# ---------------------------------------------------------------- 3. the demo
if ! grep -q -- '--redis' "$T/help"; then
    echo "skip  make cluster-demo: this sse-server has no --redis"
    summary
    exit
fi
if ! command -v redis-server >/dev/null 2>&1 || ! command -v nginx >/dev/null 2>&1; then
    echo "skip  make cluster-demo: needs redis-server and nginx"
    summary
    exit
fi

# setsid: the demo in a process group of its own, as a terminal would run it,
# so that the SIGINT below reaches it like a Ctrl-C reaches make. A background
# command of a script starts with SIGINT ignored, which a shell cannot trap:
# env puts back the default first.
DEMO_SECONDS=60 SSE_SERVER=$BIN setsid env --default-signal=INT bash "$C/demo.sh" \
    >"$T/demo.out" 2>"$T/demo.err" &
DEMO_PID=$!
track_pid "$DEMO_PID"
for ((i = 0; i < 200; i++)); do
    grep -q 'Ctrl-C stops everything' "$T/demo.out" 2>/dev/null && break
    kill -0 "$DEMO_PID" 2>/dev/null || break
    sleep 0.05
done
N=$(grep -o 'through nginx: *http://127\.0\.0\.1:[0-9]*' "$T/demo.out" | grep -o 'http://.*')
mapfile -t NODE_URLS < <(grep -o 'directly: *http://127\.0\.0\.1:[0-9]*/' "$T/demo.out" | grep -o 'http://.*')
DEMO_DIR=$(grep -o '/tmp/sse-cluster-demo-[A-Za-z0-9]*' "$T/demo.out" | head -n1)
if [ -n "$N" ] && [ "${#NODE_URLS[@]}" = 3 ]; then
    ok "demo prints the URL through nginx and three node URLs"
else
    bad "demo starts and prints its URLs" "$(cat "$T/demo.out" "$T/demo.err" | tail -n 10)"
    summary
    exit
fi

code=$(curl -s --max-time 5 -o "$T/page" -w '%{http_code}' "$N/")
if [ "$code" = 200 ] && grep -qi '<html' "$T/page"; then
    ok "the chat page through nginx: 200"
else
    bad "the chat page through nginx" "status $code"
fi

# Four streams: one through nginx (asking for gzip), one on each node.
room=demo$RANDOM
curl -sN --compressed --max-time 20 -D "$T/via.head" -o "$T/via.out" \
    "$N/messages?room=$room" &
track_pid $!
for k in 0 1 2; do
    curl -sN --max-time 20 -o "$T/node$k.out" "${NODE_URLS[k]}messages?room=$room" &
    track_pid $!
done
for ((i = 0; i < 200; i++)); do
    n=0
    for f in via node0 node1 node2; do grep -q '^: ok' "$T/$f.out" 2>/dev/null && n=$((n + 1)); done
    [ "$n" = 4 ] && break
    sleep 0.02
done

post() { # URL TEXT: prints the id of the 202 answer
    curl -s --max-time 5 -H 'Content-Type: application/json' \
        --data "{\"user\":\"deploy\",\"text\":\"$2\"}" "$1message?room=$room" |
        grep -o '"id":[0-9]*' | cut -d: -f2
}
ID1=$(post "${NODE_URLS[2]}" first-$RANDOM)
ID2=$(post "$N/" second-$RANDOM)
got=0
for ((i = 0; i < 250; i++)); do
    got=0
    for f in via node0 node1 node2; do
        grep -q "^id: $ID2\$" "$T/$f.out" 2>/dev/null && grep -q "^id: $ID1\$" "$T/$f.out" &&
            got=$((got + 1))
    done
    [ "$got" = 4 ] && break
    sleep 0.02
done
if [ -n "$ID1" ] && [ -n "$ID2" ] && [ "$got" = 4 ]; then
    ok "two messages (on node 3, through nginx) reach streams on all three nodes and through nginx"
else
    bad "messages reach every node" "ids '$ID1' '$ID2', $got of 4 streams have both"
fi
tr -d '\r' <"$T/via.head" >"$T/via.head.txt"
if grep -qi '^content-type: text/event-stream' "$T/via.head.txt" &&
    ! grep -qi '^content-encoding' "$T/via.head.txt"; then
    ok "the stream through nginx is text/event-stream, not compressed (the client accepts gzip)"
else
    bad "the stream through nginx is uncompressed text/event-stream" "$(cat "$T/via.head.txt")"
fi

# Resume on another node: from ID1, the client has missed ID2 and a third.
ID3=$(post "${NODE_URLS[0]}" third-$RANDOM)
curl -sN --max-time 5 -H "Last-Event-ID: $ID1" -o "$T/resume.out" "${NODE_URLS[1]}messages?room=$room" &
track_pid $!
for ((i = 0; i < 150; i++)); do
    grep -q "^id: $ID3\$" "$T/resume.out" 2>/dev/null && break
    sleep 0.02
done
ids=$(grep '^id: ' "$T/resume.out" 2>/dev/null | cut -d' ' -f2 | tr '\n' ' ')
if [ -n "$ID3" ] && [ "$ids" = "$ID2 $ID3 " ]; then
    ok "Last-Event-ID on another node replays exactly the two missed messages ($ids)"
else
    bad "resume on another node" "ids '$ids', wanted '$ID2 $ID3 '"
fi

# Stop it like Ctrl-C does: SIGINT to its process group.
ports=()
for u in "$N" "${NODE_URLS[@]}" "$(grep -o 'redis://127\.0\.0\.1:[0-9]*' "$T/demo.out")"; do
    u=${u##*:}
    ports+=("${u%/}")
done
kill -INT -- "-$DEMO_PID" 2>/dev/null
for ((i = 0; i < 200; i++)); do
    kill -0 "$DEMO_PID" 2>/dev/null || break
    sleep 0.05
done
if kill -0 "$DEMO_PID" 2>/dev/null; then
    bad "SIGINT stops the demo" "still running after 10 s"
else
    ok "SIGINT stops the demo ($(tail -n 1 "$T/demo.err"))"
fi
open=""
for p in "${ports[@]}"; do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && open="$open $p"
done
if [ -z "$open" ] && [ -n "$DEMO_DIR" ] && [ ! -e "$DEMO_DIR" ]; then
    ok "nothing left: nginx, node and Redis ports closed, $DEMO_DIR removed"
else
    bad "nothing left after the demo" "open ports:${open:- none}; dir ${DEMO_DIR:-?}"
fi

summary
