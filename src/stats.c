#include "stats.h"

#include "buf.h"
#include "log.h"
#include "room.h"
#include "server.h"

#include <string.h>

#ifndef SSE_VERSION
#define SSE_VERSION "dev"
#endif

struct room_figure {
    const char *name;
    size_t subscribers;
};

struct snapshot {
    size_t rooms;
    size_t subscribers;
    size_t frames;
    size_t ring_bytes;
    struct room_figure top[STATS_TOP_ROOMS];
    size_t ntop;
    size_t other_subscribers;
    size_t other_rooms;
};

/* Keeps the STATS_TOP_ROOMS rooms with the most subscribers (ties: by name,
 * so the output is stable), summing the rest into "other". */
static void take_room(const struct room *room, void *arg)
{
    struct snapshot *s = arg;
    struct room_figure f = {room_name(room), room_subscribers(room)};
    s->rooms++;
    s->subscribers += f.subscribers;
    s->frames += room_frames(room);
    s->ring_bytes += room_bytes(room);

    size_t i = s->ntop;
    while (i > 0 && (s->top[i - 1].subscribers < f.subscribers ||
                     (s->top[i - 1].subscribers == f.subscribers &&
                      strcmp(s->top[i - 1].name, f.name) > 0))) {
        i--;
    }
    if (i >= STATS_TOP_ROOMS) {
        s->other_subscribers += f.subscribers;
        s->other_rooms++;
        return;
    }
    if (s->ntop == STATS_TOP_ROOMS) {
        s->other_subscribers += s->top[STATS_TOP_ROOMS - 1].subscribers;
        s->other_rooms++;
        s->ntop--;
    }
    memmove(&s->top[i + 1], &s->top[i], (s->ntop - i) * sizeof s->top[0]);
    s->top[i] = f;
    s->ntop++;
}

static void snapshot_take(struct server *srv, struct snapshot *s)
{
    memset(s, 0, sizeof *s);
    hub_foreach_room(srv->hub, take_room, s);
}

static double uptime_seconds(struct server *srv)
{
    return (double)(loop_now_ms(srv->loop) - srv->started_ms) / 1000.0;
}

int stats_render_json(struct server *srv, const char *room, size_t room_len, struct buf *out)
{
    struct snapshot s;
    snapshot_take(srv, &s);
    const struct server_stats *st = &srv->stats;
    size_t clients = s.subscribers;
    const struct room *r = NULL;
    if (room_len) {
        r = hub_room_find(srv->hub, room, room_len);
        clients = r ? room_subscribers(r) : 0;
    }
    int rc = buf_printf(out,
                        "{\"version\":\"%s\",\"uptime_seconds\":%.3f,\"connections\":%zu,"
                        "\"streams\":%zu,\"clients\":%zu,\"subscribers\":%zu,\"rooms\":%zu,"
                        "\"last_id\":%llu,\"messages_published\":%llu,\"deliveries\":%llu,"
                        "\"bytes_sent\":%llu,\"slow_subscribers_dropped\":%llu,"
                        "\"connections_accepted\":%llu,\"connections_rejected\":%llu,"
                        "\"ring_frames\":%zu,\"ring_bytes\":%zu,\"ring_memory_bytes\":%zu,"
                        "\"max_memory\":%zu",
                        SSE_VERSION, uptime_seconds(srv), srv->nconns, srv->streams, clients,
                        s.subscribers, s.rooms, (unsigned long long)hub_last_id(srv->hub),
                        (unsigned long long)st->published, (unsigned long long)st->deliveries,
                        (unsigned long long)st->bytes_sent, (unsigned long long)st->lagged_dropped,
                        (unsigned long long)st->accepted,
                        (unsigned long long)st->rejected_busy + (unsigned long long)st->shed_no_fds,
                        s.frames, s.ring_bytes, hub_memory(srv->hub), hub_max_memory(srv->hub));
    if (rc == 0 && room_len) {
        rc = buf_printf(out, ",\"room\":{\"name\":\"%.*s\",\"subscribers\":%zu,\"frames\":%zu}",
                        (int)room_len, room, r ? room_subscribers(r) : 0, r ? room_frames(r) : 0);
    }
    /* loop_lag_ms is a number (the recent p99) so that a dashboard can
     * chart it; the maximum is since start, so that no stall goes unseen. */
    struct loop_lag_hist recent;
    loop_lag_recent(srv->loop, &recent);
    const struct loop_lag_hist *total = &loop_lag(srv->loop)->total;
    if (rc == 0) {
        rc = buf_printf(out,
                        ",\"log_lines_dropped\":%llu,\"loop_lag_ms\":%.3f,\"loop_lag_max_ms\":%.3f,"
                        "\"loop_iterations\":%llu",
                        (unsigned long long)log_lines_dropped(),
                        (double)loop_lag_quantile_ns(&recent, 0.99) / 1e6,
                        (double)total->max_ns / 1e6, (unsigned long long)total->iterations);
    }
    if (rc == 0) {
        rc = buf_append_str(out, ",\"top_rooms\":[");
    }
    for (size_t i = 0; rc == 0 && i < s.ntop; i++) {
        rc = buf_printf(out, "%s{\"name\":\"%s\",\"subscribers\":%zu}", i ? "," : "", s.top[i].name,
                        s.top[i].subscribers);
    }
    if (rc == 0) {
        rc = buf_append_str(out, "]}\n");
    }
    return rc;
}

struct metric {
    const char *name;
    const char *type;
    const char *help;
};

static int metric_head(struct buf *out, const struct metric *m)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, m->type);
}

static int metric_u64(struct buf *out, const struct metric *m, unsigned long long v)
{
    int rc = metric_head(out, m);
    return rc ? rc : buf_printf(out, "%s %llu\n", m->name, v);
}

/* The loop-lag histogram, cumulative as Prometheus wants it. */
static int render_loop_lag(struct server *srv, struct buf *out)
{
    const struct loop_lag_hist *lag = &loop_lag(srv->loop)->total;
    const char *name = "sse_loop_iteration_seconds";
    int rc = metric_head(out, &(struct metric){name, "histogram",
                                               "Time each event-loop iteration kept the loop busy "
                                               "(from waking up to sleeping again)."});
    uint64_t cumulative = 0;
    for (size_t i = 0; rc == 0 && i < LOOP_LAG_BUCKETS; i++) {
        cumulative += lag->counts[i];
        rc = buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name,
                        (double)loop_lag_bounds_ns[i] / 1e9, (unsigned long long)cumulative);
    }
    rc = rc ? rc
            : buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n", name,
                         (unsigned long long)lag->iterations, name, (double)lag->sum_ns / 1e9, name,
                         (unsigned long long)lag->iterations);
    return rc;
}

int stats_render_prometheus(struct server *srv, struct buf *out)
{
    struct snapshot s;
    snapshot_take(srv, &s);
    const struct server_stats *st = &srv->stats;
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

    int rc = metric_head(out, &(struct metric){"sse_build_info", "gauge",
                                               "Build information; the value is always 1."});
    rc = rc ? rc : buf_printf(out, "sse_build_info{version=\"%s\"} 1\n", SSE_VERSION);
    rc = rc ? rc
            : metric_head(out, &(struct metric){"sse_uptime_seconds", "gauge",
                                                "Seconds since the server started."});
    rc = rc ? rc : buf_printf(out, "sse_uptime_seconds %.3f\n", uptime_seconds(srv));

    const struct {
        struct metric m;
        unsigned long long v;
    } plain[] = {
        {{"sse_connections", "gauge", "Open client connections."}, srv->nconns},
        {{"sse_streams", "gauge", "Open event streams (/messages and /ping)."}, srv->streams},
        {{"sse_rooms", "gauge", "Rooms in memory."}, s.rooms},
        {{"sse_ring_frames", "gauge", "Encoded messages retained in the rooms' rings."}, s.frames},
        {{"sse_ring_bytes", "gauge", "Bytes of encoded messages retained in the rooms' rings."},
         s.ring_bytes},
        {{"sse_ring_memory_bytes", "gauge",
          "Memory held by all rooms' rings (frames, headers, slots), capped by --max-memory."},
         hub_memory(srv->hub)},
        {{"sse_max_memory_bytes", "gauge", "The --max-memory cap on all rings together."},
         hub_max_memory(srv->hub)},
        {{"sse_last_message_id", "gauge", "Id of the newest message."}, hub_last_id(srv->hub)},
        {{"sse_connections_accepted_total", "counter", "Connections accepted."}, st->accepted},
        {{"sse_connections_closed_total", "counter", "Connections closed."}, st->closed},
        {{"sse_connections_rejected_total", "counter",
          "Connections refused at --max-clients or shed when out of file descriptors."},
         (unsigned long long)st->rejected_busy + (unsigned long long)st->shed_no_fds},
        {{"sse_messages_published_total", "counter", "Messages accepted by POST /message."},
         st->published},
        {{"sse_deliveries_total", "counter", "Messages written in full to a subscriber."},
         st->deliveries},
        {{"sse_bytes_sent_total", "counter", "Bytes written to clients."}, st->bytes_sent},
        {{"sse_slow_subscribers_dropped_total", "counter",
          "Subscribers closed because they fell behind their room's ring."},
         st->lagged_dropped},
        {{"sse_http_requests_total", "counter", "HTTP requests dispatched."}, st->requests},
        {{"sse_log_lines_dropped_total", "counter",
          "Log lines dropped because the log output (a pipe or socket) was not keeping up."},
         log_lines_dropped()},
    };
    for (size_t i = 0; rc == 0 && i < sizeof plain / sizeof plain[0]; i++) {
        rc = metric_u64(out, &plain[i].m, plain[i].v);
    }

    rc = rc ? rc
            : metric_head(out, &(struct metric){"sse_http_responses_total", "counter",
                                                "HTTP responses by status class."});
    for (int i = 0; rc == 0 && i < 5; i++) {
        rc = buf_printf(out, "sse_http_responses_total{class=\"%s\"} %llu\n", classes[i],
                        (unsigned long long)st->responses_by_class[i + 1]);
    }

    rc = rc ? rc
            : metric_head(out, &(struct metric){"sse_subscribers", "gauge",
                                                "Subscribers per room: the busiest rooms by name, "
                                                "the others summed as room ~other."});
    for (size_t i = 0; rc == 0 && i < s.ntop; i++) {
        rc = buf_printf(out, "sse_subscribers{room=\"%s\"} %zu\n", s.top[i].name,
                        s.top[i].subscribers);
    }
    if (rc == 0 && s.other_rooms) {
        /* '~' cannot appear in a room name, so this label never clashes. */
        rc = buf_printf(out, "sse_subscribers{room=\"~other\"} %zu\n", s.other_subscribers);
    }
    return rc ? rc : render_loop_lag(srv, out);
}
