# shellcheck shell=bash
# Shared by bench/run.sh and bench/peers/*.sh: build, start and stop servers,
# run the standard workloads with bench/loadgen, print the tables.
#
# Environment:
#   QUICK=1          smoke run: about 1/10 of the subscribers and messages
#   WORKLOADS="..."  which standard workloads (1..5) to run
#   SERVERS="..."    which servers (sse-server, baseline, or a peer's name)
#   SSE_SERVER=path  use this binary instead of building with make
#   TIMEOUT=S        loadgen deadline per run (default 240, QUICK 60)
#   DURATION=S       publishing time cap for workload 3 (default 60, QUICK 15)
#   NOPIN=1          do not pin the server and the load generator to cores
#   LOADGEN_THREADS=T  event loops in the load generator (loadgen --threads;
#                    default 1): more than one helps only when the load
#                    generator has that many cores (NOPIN=1, or a bigger box)
#   BENCH_OUT=dir    where binaries, logs and results go (build/bench)
#   STRICT=1         exit non-zero when a target is missed, too
#   RUNS=N           run each workload N times per server, interleaved
#                    (A B A B ...); the tables show the median run
#   PROFILE=1        sample the server with perf (cpu-clock) during each run;
#                    top symbols in build/bench/wN-SERVER.perf.txt
#   CHARTS_DIR=dir   also write the SVG charts there (e.g. docs/bench); they
#                    always go next to the tables, in results-*-charts/
#   THREADS="..."    sse-server's event loops (--threads), one count or a list
#                    ("1 2"): with a list every workload runs at every count
#                    and a table compares them (bench/threads.awk). Default 1
#                    (then --threads is passed only if the server knows it)
#   THREADS_ONLY=1   print only that comparison (bench/scale.sh)

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_OUT=${BENCH_OUT:-$BENCH_ROOT/build/bench}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    TIMEOUT=${TIMEOUT:-60}
    DURATION=${DURATION:-15}
else
    TIMEOUT=${TIMEOUT:-240}
    DURATION=${DURATION:-60}
fi
CC=${CC:-cc}
BENCH_CFLAGS="-std=c17 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
-Wmissing-prototypes -Wpointer-arith -Wformat=2 -Wvla -Wwrite-strings"

SRV_PID=      # the process we started (killed by this PID only)
SRV_STAT_PID= # the process whose /proc numbers are measured
SRV_PORT=
SRV_NAME=
RESULTS=

log() { printf '%s\n' "$*" >&2; }

bench_cleanup() {
    if [ -n "$SRV_PID" ]; then
        server_stop
    fi
}

THREADS=${THREADS:-1}
NCPU=$(nproc 2>/dev/null || echo 1)
for _t in $THREADS; do
    if ! [[ $_t =~ ^[1-9][0-9]{0,3}$ ]]; then
        log "THREADS=\"$THREADS\": loop counts are whole numbers from 1"
        exit 2
    fi
done

# The largest count in $THREADS.
threads_max() {
    local t m=1
    for t in $THREADS; do
        [ "$t" -gt "$m" ] && m=$t
    done
    echo "$m"
}

# The CPUs this shell may run on (taskset's list, e.g. "0-3,8"), one a line:
# a container's cpuset need not start at 0.
cpu_ids() {
    local list part
    list=$(taskset -pc $$ 2>/dev/null) || return 0
    list=${list##*: }
    for part in ${list//,/ }; do
        if [[ $part == *-* ]]; then
            seq "${part%-*}" "${part#*-}"
        else
            echo "$part"
        fi
    done
}

# Pinning is decided once, for the largest thread count M, so that every count
# of a run is placed the same way. With more than M CPUs the server's T loops
# get the first T of them and the load generator the ones from the (M+1)th on
# (LOADGEN_THREADS of them at most); otherwise nothing is pinned and the server
# and the load generator share every CPU. With THREADS=1 on 2 cores that is
# the server on core 0 and the load generator on core 1.
CPUS=()
if [ "${NOPIN:-0}" != 1 ] && command -v taskset >/dev/null 2>&1; then
    mapfile -t CPUS < <(cpu_ids)
fi
PIN_MODE=shared
if [ "${#CPUS[@]}" -gt "$(threads_max)" ]; then
    PIN_MODE=pinned
fi

# cpu_list FIRST COUNT: CPUS[FIRST..FIRST+COUNT-1] as "a,b,c" (single CPUs,
# not ranges: a cpuset may have holes).
cpu_list() {
    local IFS=,
    echo "${CPUS[*]:$1:$2}"
}

# pin_for T: sets PIN_SRV and PIN_LG for a server with T loops.
PIN_SRV=()
PIN_LG=()
pin_for() {
    PIN_SRV=()
    PIN_LG=()
    [ "$PIN_MODE" = pinned ] || return 0
    local m last
    m=$(threads_max)
    last=$((m + ${LOADGEN_THREADS:-1} - 1))
    [ "$last" -lt "${#CPUS[@]}" ] || last=$((${#CPUS[@]} - 1))
    PIN_SRV=(taskset -c "$(cpu_list 0 "$1")")
    PIN_LG=(taskset -c "$(cpu_list "$m" $((last - m + 1)))")
}
pin_for 1

# The placement, for the tables' header.
pin_note() {
    local m
    m=$(threads_max)
    if [ "$PIN_MODE" = pinned ]; then
        pin_for 1
        local lg=${PIN_LG[2]}
        if [ "$m" = 1 ]; then
            echo "server on core ${PIN_SRV[2]}, loadgen on core $lg"
        else
            pin_for "$m"
            echo "server's T loops on the first T of cores ${PIN_SRV[2]}, loadgen on core(s) $lg"
        fi
        pin_for 1
    elif [ "${NOPIN:-0}" = 1 ]; then
        echo "not pinned (NOPIN=1): server and loadgen share all $NCPU cores"
    elif [ "${#CPUS[@]}" = 0 ]; then
        echo "not pinned (no taskset): server and loadgen share all $NCPU cores"
    else
        echo "not pinned: $m server loops and the loadgen need $((m + 1)) cores, so server and loadgen share all $NCPU"
    fi
}

bench_build() {
    mkdir -p "$BENCH_OUT"
    if [[ " ${SERVERS:-sse-server} " != *" sse-server "* ]]; then
        : # sse-server is not part of this run
    elif [ -n "${SSE_SERVER:-}" ]; then
        if [ ! "$SSE_SERVER" -ef "$BENCH_OUT/sse-server" ]; then
            cp "$SSE_SERVER" "$BENCH_OUT/sse-server"
        fi
    else
        log "== make sse-server"
        make -C "$BENCH_ROOT" sse-server >&2
        # A private copy: a rebuild during the run does not change what runs.
        cp "$BENCH_ROOT/sse-server" "$BENCH_OUT/sse-server"
    fi
    threads_check
    log "== cc bench/*.c"
    # shellcheck disable=SC2086
    $CC $BENCH_CFLAGS -pthread -o "$BENCH_OUT/loadgen" "$BENCH_ROOT/bench/loadgen.c"
    # shellcheck disable=SC2086
    $CC $BENCH_CFLAGS -o "$BENCH_OUT/baseline" "$BENCH_ROOT/bench/baseline.c"
    # shellcheck disable=SC2086
    $CC $BENCH_CFLAGS -I"$BENCH_ROOT/tests/unit" -o "$BENCH_OUT/parser_check" \
        "$BENCH_ROOT/bench/parser_check.c" "$BENCH_ROOT/tests/unit/sse_parse.c"
    "$BENCH_OUT/parser_check" 20000 >&2
    bash "$BENCH_ROOT/bench/threads_check.sh" >&2
}

# Whether the server takes --threads (HAS_THREADS=1). A server without it
# runs THREADS=1 only: the flag is then left out.
HAS_THREADS=0
threads_check() {
    local t
    if [[ " ${SERVERS:-sse-server} " != *" sse-server "* ]]; then
        return 0
    fi
    if "$BENCH_OUT/sse-server" --help 2>&1 | grep -q -- '--threads'; then
        HAS_THREADS=1
        return 0
    fi
    for t in $THREADS; do
        if [ "$t" != 1 ]; then
            log "THREADS=\"$THREADS\": this sse-server has no --threads option"
            exit 2
        fi
    done
}

# The label's server part: NAME, or NAME-tT when THREADS is a list.
srv_label() {
    if [ "$1" = sse-server ] && [ "$(echo "$THREADS" | wc -w)" -gt 1 ]; then
        echo "$1-t$2"
    else
        echo "$1"
    fi
}

# Waits for "... listening on http://HOST:PORT" in $1; sets SRV_PORT.
wait_listen_line() {
    local file=$1 line
    for _ in $(seq 100); do
        line=$(grep -m1 'listening on http://' "$file" 2>/dev/null || true)
        if [ -n "$line" ]; then
            SRV_PORT=${line##*:}
            return 0
        fi
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    log "server did not start; its output:"
    cat "$file" "${file%.out}.err" >&2 2>/dev/null || true
    return 1
}

# server_start NAME LOGBASE [T]: starts a fresh server (sse-server with T
# loops, default 1), sets SRV_PID, SRV_PORT.
server_start() {
    SRV_NAME=$1
    local base=$2 t=${3:-1}
    local targs=()
    if [ "$HAS_THREADS" = 1 ]; then
        targs=(--threads "$t")
    fi
    pin_for "$t"
    # Removed here, not just truncated by the child's redirection: the child
    # may not have run yet when the start line is looked for.
    rm -f "$base.out" "$base.err"
    SRV_PORT=
    case $SRV_NAME in
    sse-server)
        # SSE_THREADS is unset so that the count is the one in the table.
        env -u SSE_THREADS ${PIN_SRV[@]+"${PIN_SRV[@]}"} "$BENCH_OUT/sse-server" --port 0 \
            --bind 127.0.0.1 --log-level warn ${targs[@]+"${targs[@]}"} >"$base.out" \
            2>"$base.err" &
        SRV_PID=$!
        ;;
    baseline)
        ${PIN_SRV[@]+"${PIN_SRV[@]}"} "$BENCH_OUT/baseline" --port 0 >"$base.out" 2>"$base.err" &
        SRV_PID=$!
        ;;
    *)
        "server_start_$SRV_NAME" "$base" # defined by a peer script
        return
        ;;
    esac
    SRV_STAT_PID=$SRV_PID
    wait_listen_line "$base.out"
}

server_stop() {
    if [ -z "$SRV_PID" ]; then
        return 0
    fi
    case $SRV_NAME in
    sse-server | baseline) ;;
    *)
        if declare -F "server_stop_$SRV_NAME" >/dev/null; then
            "server_stop_$SRV_NAME"
            SRV_PID=
            return 0
        fi
        ;;
    esac
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=
}

# The loadgen arguments of workload $1.
workload_args() {
    if [ "$QUICK" = 1 ]; then
        case $1 in
        1) echo "--subs 1000 --messages 100 --bytes 100 --pipeline 1" ;;
        2) echo "--subs 1000 --messages 100 --bytes 100 --pipeline 32" ;;
        3) echo "--subs 100 --messages 10000 --bytes 100 --pipeline 32 --duration $DURATION" ;;
        4) echo "--subs 1000 --idle 2" ;;
        5) echo "--subs 10 --messages 100 --bytes 65536 --pipeline 1" ;;
        6) echo "--subs 1000 --messages 50 --bytes 100 --rate 10" ;;
        esac
    else
        case $1 in
        1) echo "--subs 10000 --messages 1000 --bytes 100 --pipeline 1" ;;
        2) echo "--subs 10000 --messages 1000 --bytes 100 --pipeline 32" ;;
        3) echo "--subs 1000 --messages 100000 --bytes 100 --pipeline 32 --duration $DURATION" ;;
        4) echo "--subs 10000 --idle 10" ;;
        5) echo "--subs 100 --messages 1000 --bytes 65536 --pipeline 1" ;;
        6) echo "--subs 10000 --messages 200 --bytes 100 --rate 5" ;;
        esac
    fi
}

workload_title() {
    case $1 in
    1) echo "fan-out, 1 post in flight" ;;
    2) echo "fan-out, pipeline 32" ;;
    3) echo "sustained, pipeline 32" ;;
    4) echo "idle subscribers" ;;
    5) echo "64 KiB messages" ;;
    6) echo "fixed rate, latency at equal load" ;;
    esac
}

# run_one WORKLOAD SERVER [T]: one fresh server (with T loops), one loadgen
# run, one result line, to which the loop count is added as "srv_threads".
run_one() {
    local w=$1 name=$2 t=${3:-1} rc=0 line label
    label=$(srv_label "$name" "$t")
    local base="$BENCH_OUT/w$w-$label"
    # shellcheck disable=SC2207
    local args=($(workload_args "$w"))
    log "== workload $w ($(workload_title "$w")) on $label: ${args[*]}"
    if ! server_start "$name" "$base" "$t"; then
        echo "{\"label\":\"W$w/$label\",\"status\":\"error\",\"srv_threads\":$t}" >>"$RESULTS"
        server_stop
        return 0
    fi
    local perf_pid=
    if [ "${PROFILE:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
        # Software clock sampling works in VMs without hardware counters.
        perf record -q -e cpu-clock -F 999 -g -p "$SRV_STAT_PID" -o "$base.perf.data" \
            >/dev/null 2>"$base.perf.err" &
        perf_pid=$!
    fi
    line=$(${PIN_LG[@]+"${PIN_LG[@]}"} "$BENCH_OUT/loadgen" --port "$SRV_PORT" \
        --server-pid "$SRV_STAT_PID" --timeout "$TIMEOUT" --label "W$w/$label" \
        --threads "${LOADGEN_THREADS:-1}" "${args[@]}" --json 2>"$base.loadgen.err") || rc=$?
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        perf report -i "$base.perf.data" --stdio --no-children --sort dso,sym 2>/dev/null |
            grep -v '^$' | grep -E '^ +[0-9.]+%' | head -n 40 >"$base.perf.txt" || true
        log "   profile: $base.perf.txt"
    fi
    server_stop
    if [ -z "$line" ]; then
        log "loadgen failed (exit $rc):"
        cat "$base.loadgen.err" >&2
        line="{\"label\":\"W$w/$label\",\"status\":\"error\"}"
    fi
    line="${line%\}},\"srv_threads\":$t}"
    echo "$line" >>"$RESULTS"
    log "   $(summary_line "$line")"
}

# jget KEY JSON-LINE: a value of loadgen's flat one-line JSON.
jget() {
    local v
    v=$(printf '%s' "$2" | grep -o "\"$1\":[^,}]*" | head -n1)
    v=${v#*:}
    v=${v//\"/}
    printf '%s' "${v:--}"
}

summary_line() {
    local l=$1
    printf '%s %s: %s deliveries/s, p50 %s us, p99 %s us, lost %s dup %s ooo %s, dropped %s, server cpu %s s, rss/sub %s B' \
        "$(jget label "$l")" "$(jget status "$l")" "$(jget deliv_per_s "$l")" \
        "$(jget lat_p50_us "$l")" "$(jget lat_p99_us "$l")" "$(jget lost "$l")" \
        "$(jget dup "$l")" "$(jget ooo "$l")" "$(jget dropped "$l")" "$(jget srv_cpu_s "$l")" \
        "$(jget rss_per_sub_b "$l")"
}

# The markdown tables, from the result lines in $1.
print_tables() {
    local file=$1
    awk -v quick="$QUICK" -v strict="${STRICT:-0}" '
    function get(line, key,    m, v) {
        if (match(line, "\"" key "\":[^,}]*")) {
            v = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
            gsub(/"/, "", v)
            return v
        }
        return "-"
    }
    function ratio(a, b) {
        if (a == "-" || b == "-" || b + 0 == 0) return "-"
        return sprintf("%.2f", a / b)
    }
    function fmt_int(v) { return v == "-" ? v : sprintf("%d", v + 0) }
    {
        label = get($0, "label"); split(label, lw, "/")
        w = substr(lw[1], 2); s = lw[2]
        k = ++nrun[w, s]
        runs[w, s, k] = $0
        if (!(w in seen_w)) { seen_w[w] = 1; ws[++nw] = w }
        if (!(s in seen_s)) { seen_s[s] = 1; ss[++ns] = s }
    }
    # The median run of (w, s): by deliveries/s, or by RSS/sub when idle.
    function median(w, s,    n, i, j, key, t, idx) {
        n = nrun[w, s]
        for (i = 1; i <= n; i++) {
            idx[i] = i
            key[i] = get(runs[w, s, i], "idle_s") + 0 > 0 ? get(runs[w, s, i], "rss_per_sub_b") + 0 \
                                                        : get(runs[w, s, i], "deliv_per_s") + 0
        }
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && key[idx[j - 1]] > key[idx[j]]; j--) {
                t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t
            }
        return runs[w, s, idx[int((n + 1) / 2)]]
    }
    END {
        for (i = 1; i <= nw; i++) for (j = 1; j <= ns; j++)
            if (((ws[i], ss[j]) in nrun)) line[ws[i], ss[j]] = median(ws[i], ss[j])
        if (nrun[ws[1], ss[1]] > 1) {
            print "Each row is the median of " nrun[ws[1], ss[1]] " runs (by deliveries/s; idle: by RSS/sub); status is the worst of them."
            print ""
        }
        print "| workload | server | subs | posts | deliveries/s | p50 us | p99 us | max us | lost/dup/ooo | dropped | server CPU s | server ns/delivery | RSS/sub B | loadgen CPU s | status |"
        print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        for (i = 1; i <= nw; i++) for (j = 1; j <= ns; j++) {
            w = ws[i]; s = ss[j]
            if (!((w, s) in line)) continue
            l = line[w, s]
            idle = get(l, "idle_s") + 0 > 0
            posts = idle ? "idle " get(l, "idle_s") " s" : get(l, "published")
            if (!idle && get(l, "truncated") == "1") posts = posts " of " get(l, "messages")
            if (!idle && get(l, "pipeline") != "-" && get(l, "pipeline") != "1") posts = posts " (p" get(l, "pipeline") ")"
            if (!idle && get(l, "rate") + 0 > 0) posts = posts " (" get(l, "rate") "/s)"
            if (idle) {
                dps = "-"; p50 = "-"; p99 = "-"; mx = "-"; ldo = "-"; npd = "-"
            } else {
                dps = fmt_int(get(l, "deliv_per_s")); p50 = get(l, "lat_p50_us")
                p99 = get(l, "lat_p99_us"); mx = get(l, "lat_max_us")
                ldo = get(l, "lost") "/" get(l, "dup") "/" get(l, "ooo")
                if (get(l, "corrupt") + 0 > 0) ldo = ldo " corrupt " get(l, "corrupt")
                npd = get(l, "srv_ns_per_delivery")
            }
            st = get(l, "status")
            for (k = 1; k <= nrun[w, s]; k++)
                if (get(runs[w, s, k], "status") != "ok") st = get(runs[w, s, k], "status")
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", \
                w, s, get(l, "subs"), posts, dps, p50, p99, mx, ldo, get(l, "dropped"), \
                get(l, "srv_cpu_s"), npd, get(l, "rss_per_sub_b"), get(l, "lg_cpu_s"), st
        }
        if (!seen_s["baseline"]) exit 0
        print ""
        print "Ratios to the baseline measured in the same run (deliveries/s: higher is better; p99, CPU per delivery, RSS: lower is better):"
        print ""
        print "| workload | server | deliveries/s | p99 latency | server ns/delivery | RSS/sub | target | met |"
        print "|---|---|---|---|---|---|---|---|"
        missed = 0
        for (i = 1; i <= nw; i++) for (j = 1; j <= ns; j++) {
            w = ws[i]; s = ss[j]
            if (s == "baseline" || !((w, s) in line)) continue
            l = line[w, s]; b = ((w, "baseline") in line) ? line[w, "baseline"] : ""
            worst_ok = 1
            for (k = 1; k <= nrun[w, s]; k++)
                if (get(runs[w, s, k], "status") != "ok") worst_ok = 0
            rd = ratio(get(l, "deliv_per_s"), get(b, "deliv_per_s"))
            rp = ratio(get(l, "lat_p99_us"), get(b, "lat_p99_us"))
            rc = ratio(get(l, "srv_ns_per_delivery"), get(b, "srv_ns_per_delivery"))
            rr = ratio(get(l, "rss_per_sub_b"), get(b, "rss_per_sub_b"))
            target = "zero lost/dup/ooo"; ok = worst_ok
            # Every loop count of sse-server (sse-server-tN) has its targets.
            srv = s; if (srv ~ /^sse-server-t[0-9]+$/) srv = "sse-server"
            if (srv == "sse-server" && w == 1) {
                target = "deliveries >= 0.9x, p99 <= 1.2x"
                ok = ok && rd != "-" && rd + 0 >= 0.9 && rp != "-" && rp + 0 <= 1.2
            } else if (srv == "sse-server" && w == 2) {
                target = "deliveries >= 2x"
                ok = ok && rd != "-" && rd + 0 >= 2
            } else if (srv == "sse-server" && w == 4) {
                target = "RSS <= 1024 B/subscriber"
                ok = ok && get(l, "rss_per_sub_b") != "-" && get(l, "rss_per_sub_b") + 0 <= 1024
            }
            if (get(l, "idle_s") + 0 > 0) { rd = "-"; rp = "-"; rc = "-" }
            if (!ok) missed++
            printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", w, s, rd, rp, rc, rr, target, ok ? "yes" : "**no**"
        }
        if (strict && missed) exit 1
    }' "$file"
}

# threads_table wide|long RESULTS: sse-server at each loop count of the run
# (bench/threads.awk); exit 1 with STRICT=1 when CPU per delivery grew by
# more than 10% over the first count.
threads_table() {
    awk -v layout="$1" -v strict="${STRICT:-0}" -v ncpu="$NCPU" \
        -f "$BENCH_ROOT/bench/json_field.awk" -f "$BENCH_ROOT/bench/threads.awk" "$2"
}

# Exit status for a results file: 1 when a run of a server other than the
# baseline was not "ok" (lost, duplicated, out-of-order, dropped, error).
results_status() {
    local rc=0 l
    while IFS= read -r l; do
        case $(jget label "$l") in
        */baseline) ;;
        *) [ "$(jget status "$l")" = ok ] || rc=1 ;;
        esac
    done <"$1"
    return $rc
}

# bench_charts RESULTS: the SVG charts (bench/charts.py) next to the tables,
# and in $CHARTS_DIR when set. Without python3 the run still succeeds.
bench_charts() {
    local note dir quick=
    # Not "$([ ... ] && echo ...)" in the assignment: its status would be the
    # assignment's, and set -e would end a full run here, before the charts.
    if [ "$QUICK" = 1 ]; then
        quick=', QUICK=1 (1/10 load)'
    fi
    note="$(date -u '+%Y-%m-%d') UTC, $NCPU cores$quick, median run"
    if ! command -v python3 >/dev/null 2>&1; then
        log "python3 not found: no charts"
        return 0
    fi
    for dir in "${1%.jsonl}-charts" ${CHARTS_DIR:+"$CHARTS_DIR"}; do
        python3 "$BENCH_ROOT/bench/charts.py" "$1" "$dir" "$note" >&2 || log "charts failed"
    done
}

# bench_main: runs $WORKLOADS x $SERVERS and prints the tables.
bench_main() {
    mkdir -p "$BENCH_OUT"
    RESULTS="$BENCH_OUT/results-$(date +%Y%m%d-%H%M%S).jsonl"
    : >"$RESULTS"
    local w s t
    for w in $WORKLOADS; do
        for _ in $(seq "${RUNS:-1}"); do
            for s in $SERVERS; do
                if [ "$s" != sse-server ]; then
                    run_one "$w" "$s" # one loop whatever THREADS says
                    continue
                fi
                for t in $THREADS; do
                    run_one "$w" "$s" "$t"
                done
            done
        done
    done
    local md="${RESULTS%.jsonl}.md" prc=0
    # Written whole, then shown: a missed target (STRICT=1) still gets the
    # charts and the summary below.
    {
        echo "Benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU cores$([ "$QUICK" = 1 ] && echo ', QUICK=1'), sse-server loops ${THREADS// //}, $(pin_note)"
        echo
        if [ -n "${BENCH_PREAMBLE:-}" ]; then
            printf '%s\n\n' "$BENCH_PREAMBLE"
        fi
        if [ "${THREADS_ONLY:-0}" = 1 ]; then
            threads_table "${THREADS_LAYOUT:-wide}" "$RESULTS" || prc=1
        else
            print_tables "$RESULTS" || prc=1
            if [ "$(echo "$THREADS" | wc -w)" -gt 1 ] && [[ " $SERVERS " == *" sse-server "* ]]; then
                echo
                threads_table "${THREADS_LAYOUT:-wide}" "$RESULTS" || prc=1
            fi
        fi
    } >"$md"
    cat "$md"
    bench_charts "$RESULTS"
    log ""
    log "results: $RESULTS, $md"
    results_status "$RESULTS" || return 1
    return "$prc"
}
