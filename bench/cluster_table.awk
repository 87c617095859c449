# cluster_table.awk: bench/cluster.sh's results (one JSON line per run) as
# one markdown table. Needs bench/json_field.awk loaded first.
function us(ns) { return ns == "-" ? ns : sprintf("%.2f", ns / 1000) }
BEGIN {
    print "| setup | nodes x subscribers | publishing | deliveries/s | p50 µs | p99 µs | POST answer p50 µs | lost/dup/ooo | nodes CPU µs/delivery | Redis CPU s | Redis CPU µs/message | same, net of idle | status |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
}
{
    split(get($0, "label"), lp, "/")
    n = get($0, "nodes"); subs = get($0, "subs")
    per = (n != "-" && subs != "-" && n + 0 > 0) ? n " x " int(subs / n) : "-"
    pipe = substr(lp[2], 2)
    mode = pipe == "1" ? "one POST in flight" : pipe " pipelined"
    dps = get($0, "deliv_per_s"); if (dps != "-") dps = sprintf("%d", dps)
    redis = get($0, "redis") == "1"
    rcpu = redis ? get($0, "redis_cpu_s") : "-"
    rmsg = redis ? get($0, "redis_us_per_msg") : "-"
    acc = get($0, "accepted") + 0
    rsched = "-"
    if (redis && acc > 0 && get($0, "redis_sched_s") != "-")
        rsched = sprintf("%.2f", (get($0, "redis_sched_s") - get($0, "redis_idle_cpu_per_s") * get($0, "redis_window_s")) * 1e6 / acc)
    printf "| %s | %s | %s | %s | %s | %s | %s | %s/%s/%s | %s | %s | %s | %s | %s |\n", \
        lp[1], per, mode, dps, get($0, "lat_p50_us"), get($0, "lat_p99_us"), \
        get($0, "ack_p50_us"), get($0, "lost"), get($0, "dup"), get($0, "ooo"), \
        us(get($0, "srv_ns_per_delivery")), rcpu, rmsg, rsched, get($0, "status")
}
