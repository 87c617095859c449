# sse-server at several loop counts (--threads), from the result lines of
# bench/run.sh with THREADS="1 2 ..." (labels W<n>/sse-server-t<T>, field
# srv_threads). Called by threads_table in bench/lib.sh:
#
#   awk -v layout=wide|long -v strict=0|1 -v ncpu=N -f bench/json_field.awk -f bench/threads.awk RESULTS
#
# wide: one row per workload, the counts side by side (bench/run.sh).
# long: one row per workload and count (bench/scale.sh).
# Both give, for every count after the first, its CPU per delivery over the
# first count's: the cost of running more loops, and whether it is within
# 10% (see verdict). Exit 1 with strict=1 when a ratio is clearly above 1.10.

function fmt_int(v) { return v == "-" ? v : sprintf("%d", v + 0) }
# Nanoseconds as µs: 3 decimals under 1 µs (pipelined workloads), else 2.
function us(ns) {
    if (ns == "-" || ns + 0 == 0) return "-"
    return sprintf(ns + 0 < 1000 ? "%.3f" : "%.2f", ns / 1000)
}
function ratio(a, b) {
    if (a == "-" || b == "-" || a + 0 == 0 || b + 0 == 0) return "-"
    return sprintf("%.2f", a / b)
}
# A CPU figure from under 0.5 s of server CPU: /proc counts in 10 ms ticks,
# so the ratio of two such figures carries the error of a tick in each.
function coarse(l) { return get(l, "srv_cpu_s") != "-" && get(l, "srv_cpu_s") + 0 < 0.5 }
# The error of ratio R of a's CPU over b's: 0, or a tick in each when either
# is coarse.
function cpu_err(r, a, b) {
    if (r == "-" || !(coarse(a) || coarse(b))) return 0
    return r * (0.01 / get(a, "srv_cpu_s") + 0.01 / get(b, "srv_cpu_s"))
}
function cpu_cell(r, err) {
    if (err == 0) return r
    ncoarse++
    return r " ±" sprintf("%.2f", err)
}
# Within 10%: R at most 1.10, tick error included ("unclear" when the error
# straddles 1.10); lower is better, so a count that costs less passes too.
function verdict(r, err) {
    if (r == "-") return "-"
    if (r - err > 1.10) return "**no**"
    if (r + err > 1.10) return "unclear"
    return r + 0 < 0.90 ? "yes (lower)" : "yes"
}
function loss(l) {
    if (get(l, "deliveries") == "-") return "-"
    return get(l, "deliveries") "/" get(l, "expected")
}
# The median run of (w, t) by deliveries/s, as in the main table.
function median(w, t,    n, i, j, key, x, idx) {
    n = nrun[w, t]
    for (i = 1; i <= n; i++) {
        idx[i] = i
        key[i] = get(runs[w, t, i], "deliv_per_s") + 0
    }
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && key[idx[j - 1]] > key[idx[j]]; j--) {
            x = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = x
        }
    return runs[w, t, idx[int((n + 1) / 2)]]
}
# The worst status of (w, t)'s runs.
function worst(w, t,    k, st) {
    st = "ok"
    for (k = 1; k <= nrun[w, t]; k++)
        if (get(runs[w, t, k], "status") != "ok") st = get(runs[w, t, k], "status")
    return st
}

{
    label = get($0, "label")
    if (label !~ /^W[0-9]+\/sse-server(-t[0-9]+)?$/) next
    if (get($0, "idle_s") + 0 > 0) { idle[substr(label, 2, index(label, "/") - 2)] = 1; next }
    w = substr(label, 2, index(label, "/") - 2)
    t = get($0, "srv_threads"); if (t == "-") t = 1
    runs[w, t, ++nrun[w, t]] = $0
    if (!(w in seen_w)) { seen_w[w] = 1; ws[++nw] = w }
    if (!(t in seen_t)) { seen_t[t] = 1; ts[++nt] = t }
}

function wide(    i, j, w, h, sep, cells, r, e, v, l, b) {
    printf "sse-server at %d loop counts side by side (median runs); CPU per delivery of each count over t%s's, within 10%% when at most 1.10:\n\n", nt, ts[1]
    h = "| workload"; sep = "|---"
    for (j = 1; j <= nt; j++) { h = h " | deliveries/s t" ts[j]; sep = sep "|---" }
    for (j = 1; j <= nt; j++) { h = h " | p99 µs t" ts[j]; sep = sep "|---" }
    for (j = 1; j <= nt; j++) { h = h " | CPU µs/delivery t" ts[j]; sep = sep "|---" }
    for (j = 2; j <= nt; j++) { h = h " | CPU t" ts[j] "/t" ts[1] " | within 10%"; sep = sep "|---|---" }
    for (j = 1; j <= nt; j++) { h = h " | delivered/expected t" ts[j]; sep = sep "|---" }
    print h " |"; print sep "|"
    for (i = 1; i <= nw; i++) {
        w = ws[i]; cells = "| " w
        for (j = 1; j <= nt; j++) l[j] = ((w, ts[j]) in nrun) ? median(w, ts[j]) : ""
        for (j = 1; j <= nt; j++) cells = cells " | " fmt_int(get(l[j], "deliv_per_s"))
        for (j = 1; j <= nt; j++) cells = cells " | " get(l[j], "lat_p99_us")
        for (j = 1; j <= nt; j++) cells = cells " | " us(get(l[j], "srv_ns_per_delivery"))
        for (j = 2; j <= nt; j++) {
            r = ratio(get(l[j], "srv_ns_per_delivery"), get(l[1], "srv_ns_per_delivery"))
            e = cpu_err(r, l[j], l[1]); v = verdict(r, e)
            cells = cells " | " cpu_cell(r, e) " | " v
            if (v == "**no**") missed++
            said[i, j] = r == "-" ? "no figure" : r "x" (e ? sprintf(" ±%.2f", e) : "") ", " (v == "**no**" ? "no" : v)
        }
        for (j = 1; j <= nt; j++) {
            b = loss(l[j])
            if (l[j] != "" && worst(w, ts[j]) != "ok") b = b " " worst(w, ts[j])
            cells = cells " | " b
        }
        print cells " |"
    }
    for (j = 2; j <= nt; j++) {
        printf "\nCPU per delivery at %d threads within 10%% of %d thread%s:", ts[j], ts[1], (ts[1] == 1 ? "" : "s")
        for (i = 1; i <= nw; i++) printf "%s workload %s %s", (i > 1 ? ";" : ""), ws[i], said[i, j]
        print "."
    }
}

function long(    i, j, w, l, f, tl, r, e, v) {
    printf "sse-server by loop count (median runs); deliveries/s and CPU per delivery over t%s's, within 10%% when at most 1.10:\n\n", ts[1]
    print "| workload | threads | deliveries/s | vs t" ts[1] " | p99 µs | CPU µs/delivery | CPU vs t" ts[1] " | within 10% | delivered/expected | server CPU s | loadgen CPU s | status |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= nw; i++) {
        w = ws[i]
        f = ((w, ts[1]) in nrun) ? median(w, ts[1]) : ""
        for (j = 1; j <= nt; j++) {
            if (!((w, ts[j]) in nrun)) continue
            l = median(w, ts[j])
            tl = ts[j] (ncpu != "" && ts[j] + 0 > ncpu + 0 ? " (> " ncpu " CPUs)" : "")
            r = j == 1 ? "1.00" : ratio(get(l, "srv_ns_per_delivery"), get(f, "srv_ns_per_delivery"))
            e = j == 1 ? 0 : cpu_err(r, l, f); v = verdict(r, e)
            if (j > 1 && v == "**no**") missed++
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", w, tl,
                fmt_int(get(l, "deliv_per_s")),
                j == 1 ? "1.00" : ratio(get(l, "deliv_per_s"), get(f, "deliv_per_s")),
                get(l, "lat_p99_us"), us(get(l, "srv_ns_per_delivery")), cpu_cell(r, e),
                j == 1 ? "-" : v, loss(l), get(l, "srv_cpu_s"), get(l, "lg_cpu_s"),
                worst(w, ts[j])
        }
    }
}

END {
    if (nw == 0) { print "(no sse-server runs with deliveries to compare)"; exit 0 }
    if (layout == "long") long(); else wide()
    if (ncoarse)
        print "\n±: one of the two runs used under 0.5 s of server CPU, which /proc counts in 10 ms ticks; the ± is one tick in each."
    for (w in idle) {
        print "\nIdle workloads (4) are in the table above only: they have no deliveries to compare."
        break
    }
    if (strict && missed) exit 1
}
