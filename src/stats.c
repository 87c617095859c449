#include "stats.h"

#include "auth.h"
#include "buf.h"
#include "log.h"
#include "room.h"
#include "server.h"

#include "cluster.h"
#include "journal.h"

#include <stdbool.h>
#include <string.h>

#ifndef SSE_VERSION
#define SSE_VERSION "dev"
#endif

struct room_figure {
    const char *name;
    size_t subscribers;
    uint64_t published;
    uint64_t recent; /* published since the last hub_mark_published */
};

/* The STATS_TOP_ROOMS rooms first by some order, best first. */
struct top_rooms {
    struct room_figure top[STATS_TOP_ROOMS];
    size_t n;
    size_t other_subscribers; /* of the rooms left out */
    size_t other_rooms;
};

struct snapshot {
    const struct server *srv;
    bool hide_private; /* the admin endpoints are open to anyone */
    size_t rooms;
    size_t subscribers;
    size_t frames;
    size_t ring_bytes;
    struct top_rooms by_subscribers;
    struct top_rooms by_recent; /* rooms with recent messages only */
};

typedef bool ranks_before(const struct room_figure *a, const struct room_figure *b);

/* Ties go by name, so the output is stable. */
static bool more_subscribers(const struct room_figure *a, const struct room_figure *b)
{
    return a->subscribers > b->subscribers ||
           (a->subscribers == b->subscribers && strcmp(a->name, b->name) < 0);
}

static bool more_recent(const struct room_figure *a, const struct room_figure *b)
{
    return a->recent > b->recent || (a->recent == b->recent && strcmp(a->name, b->name) < 0);
}

/* Keeps f if it ranks among the first STATS_TOP_ROOMS, summing the rest. */
static void top_offer(struct top_rooms *t, const struct room_figure *f, ranks_before *before)
{
    size_t i = t->n;
    while (i > 0 && before(f, &t->top[i - 1])) {
        i--;
    }
    if (i >= STATS_TOP_ROOMS) {
        t->other_subscribers += f->subscribers;
        t->other_rooms++;
        return;
    }
    if (t->n == STATS_TOP_ROOMS) {
        t->other_subscribers += t->top[STATS_TOP_ROOMS - 1].subscribers;
        t->other_rooms++;
        t->n--;
    }
    memmove(&t->top[i + 1], &t->top[i], (t->n - i) * sizeof t->top[0]);
    t->top[i] = *f;
    t->n++;
}

static void take_room(const struct room *room, void *arg)
{
    struct snapshot *s = arg;
    struct room_figure f = {room_name(room), room_subscribers(room), room_published(room),
                            room_published_recent(room)};
    s->rooms++;
    s->subscribers += f.subscribers;
    s->frames += room_frames(room);
    s->ring_bytes += room_bytes(room);
    if (s->hide_private && auth_room_private(s->srv, f.name, strlen(f.name))) {
        /* A private room's name (a user id, say) is not everyone's to read. */
        s->by_subscribers.other_subscribers += f.subscribers;
        s->by_subscribers.other_rooms++;
        return;
    }
    top_offer(&s->by_subscribers, &f, more_subscribers);
    if (f.recent) {
        top_offer(&s->by_recent, &f, more_recent);
    }
}

/* Private rooms are named only where the admin endpoints are guarded. */
static bool stats_hide_private(const struct server *srv)
{
    return !srv->cfg.admin_local && !srv->cfg.admin_token[0];
}

static void snapshot_take(struct server *srv, struct snapshot *s)
{
    memset(s, 0, sizeof *s);
    s->srv = srv;
    s->hide_private = stats_hide_private(srv);
    hub_foreach_room(srv->hub, take_room, s);
}

static double uptime_seconds(const struct worker *wk)
{
    return (double)(loop_now_ms(wk->loop) - wk->srv->started_ms) / 1000.0;
}

/* What the workers counted, summed. */
struct totals {
    struct worker_stats st;
    size_t nconns;
    size_t streams;
};

static void totals_take(const struct server *srv, struct totals *t)
{
    server_worker_totals(srv, &t->st, &t->nconns, &t->streams);
}

static int render_rooms(struct buf *out, const char *key, const struct top_rooms *t,
                        double window_s)
{
    int rc = buf_printf(out, ",\"%s\":[", key);
    for (size_t i = 0; rc == 0 && i < t->n; i++) {
        const struct room_figure *f = &t->top[i];
        rc = buf_printf(out, "%s{\"name\":\"%s\",\"subscribers\":%zu,\"published\":%llu",
                        i ? "," : "", f->name, f->subscribers, (unsigned long long)f->published);
        if (rc == 0 && window_s > 0) {
            rc = buf_printf(out, ",\"messages_per_second\":%.2f", (double)f->recent / window_s);
        }
        rc = rc ? rc : buf_append_str(out, "}");
    }
    return rc ? rc : buf_append_str(out, "]");
}

static int render_journal(struct server *srv, struct buf *out)
{
    static const char *const modes[] = {
        [FSYNC_BATCH] = "batch", [FSYNC_ALWAYS] = "always", [FSYNC_NEVER] = "never"};
    const struct server_stats *st = &srv->stats;
    if (!srv->journal) {
        return buf_append_str(out, ",\"journal\":{\"enabled\":false}");
    }
    return buf_printf(out,
                      ",\"journal\":{\"enabled\":true,\"fsync\":\"%s\",\"syncs\":%llu,"
                      "\"errors\":%llu}",
                      modes[srv->cfg.fsync_mode], (unsigned long long)st->journal_syncs,
                      (unsigned long long)st->journal_errors);
}

/* A cluster node: whether Redis is reachable (and whether there is one). */
static int render_redis(struct server *srv, struct buf *out)
{
    if (!srv->cluster) {
        return buf_append_str(out, ",\"redis\":{\"enabled\":false}");
    }
    return buf_printf(out, ",\"redis\":{\"enabled\":true,\"up\":%s}",
                      cluster_redis_up(srv->cluster) ? "true" : "false");
}

/* How the load is spread: the number of loops, then each one's figures. */
/* Every loop's lag histograms as one (each as of its last iteration; the
 * answering loop's own, fresh). */
static void lag_take(struct server *srv, struct loop_lag_hist *total, struct loop_lag_hist *recent)
{
    memset(total, 0, sizeof *total);
    memset(recent, 0, sizeof *recent);
    for (size_t i = 0; i < srv->nworkers; i++) {
        worker_lag_read(&srv->workers[i], total, recent);
    }
}

static int render_threads(struct server *srv, struct buf *out)
{
    int rc = buf_printf(out, ",\"threads\":%zu,\"per_thread\":[", srv->nworkers);
    for (size_t i = 0; rc == 0 && i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        struct loop_lag_hist total = {0}, recent = {0};
        worker_lag_read(w, &total, &recent);
        rc = buf_printf(out,
                        "%s{\"connections\":%zu,\"streams\":%zu,\"accepted\":%llu,"
                        "\"deliveries\":%llu,\"loop_lag_ms\":%.3f}",
                        i ? "," : "", (size_t)counter_get(&w->nconns),
                        (size_t)counter_get(&w->streams),
                        (unsigned long long)counter_get(&w->stats.accepted),
                        (unsigned long long)counter_get(&w->stats.deliveries),
                        (double)loop_lag_quantile_ns(&recent, 0.99) / 1e6);
    }
    return rc ? rc : buf_append_str(out, "]");
}

/* The document without its final newline. window_s > 0 (the stream) adds
 * the busiest rooms by messages over that many seconds. */
static int render_json(struct worker *wk, const char *room, size_t room_len, double window_s,
                       struct buf *out)
{
    struct server *srv = wk->srv;
    struct snapshot s;
    snapshot_take(srv, &s);
    struct totals t;
    totals_take(srv, &t);
    const struct worker_stats *st = &t.st;
    size_t clients = s.subscribers;
    const struct room *r = NULL;
    if (room_len) {
        r = hub_room_find(srv->hub, room, room_len);
        if (s.hide_private && auth_room_private(srv, room, room_len)) {
            r = NULL;
        }
        clients = r ? room_subscribers(r) : 0;
    }
    int rc = buf_printf(out,
                        "{\"version\":\"%s\",\"uptime_seconds\":%.3f,\"connections\":%zu,"
                        "\"max_clients\":%zu,"
                        "\"streams\":%zu,\"clients\":%zu,\"subscribers\":%zu,\"rooms\":%zu,"
                        "\"last_id\":%llu,\"messages_published\":%llu,\"deliveries\":%llu,"
                        "\"bytes_sent\":%llu,\"slow_subscribers_dropped\":%llu,"
                        "\"connections_accepted\":%llu,\"connections_rejected\":%llu,"
                        "\"ring_frames\":%zu,\"ring_bytes\":%zu,\"ring_memory_bytes\":%zu,"
                        "\"max_memory\":%zu",
                        SSE_VERSION, uptime_seconds(wk), t.nconns, srv->max_clients, t.streams,
                        clients, s.subscribers, s.rooms, (unsigned long long)hub_last_id(srv->hub),
                        (unsigned long long)srv->stats.published,
                        (unsigned long long)st->deliveries, (unsigned long long)st->bytes_sent,
                        (unsigned long long)st->lagged_dropped, (unsigned long long)st->accepted,
                        (unsigned long long)st->rejected_busy + (unsigned long long)st->shed_no_fds,
                        s.frames, s.ring_bytes, hub_memory(srv->hub), hub_max_memory(srv->hub));
    rc = rc ? rc : render_journal(srv, out);
    rc = rc ? rc : render_redis(srv, out);
    if (rc == 0) {
        rc = buf_printf(out, ",\"auth_refused\":%llu", (unsigned long long)st->auth_refused);
    }
    if (rc == 0 && room_len) {
        rc = buf_printf(out, ",\"room\":{\"name\":\"%.*s\",\"subscribers\":%zu,\"frames\":%zu}",
                        (int)room_len, room, r ? room_subscribers(r) : 0, r ? room_frames(r) : 0);
    }
    /* loop_lag_ms is a number (the recent p99, over every loop's
     * iterations) so that a dashboard can chart it; the maximum is since
     * start, so that no stall goes unseen. */
    struct loop_lag_hist total, recent;
    lag_take(srv, &total, &recent);
    if (rc == 0) {
        rc = buf_printf(out,
                        ",\"log_lines_dropped\":%llu,\"loop_lag_ms\":%.3f,\"loop_lag_max_ms\":%.3f,"
                        "\"loop_iterations\":%llu",
                        (unsigned long long)log_lines_dropped(),
                        (double)loop_lag_quantile_ns(&recent, 0.99) / 1e6,
                        (double)total.max_ns / 1e6, (unsigned long long)total.iterations);
    }
    rc = rc ? rc : render_threads(srv, out);
    rc = rc ? rc : render_rooms(out, "top_rooms", &s.by_subscribers, 0);
    if (rc == 0 && window_s > 0) {
        rc = buf_printf(out, ",\"rates_window_seconds\":%.3f", window_s);
        rc = rc ? rc : render_rooms(out, "busy_rooms", &s.by_recent, window_s);
    }
    return rc ? rc : buf_append_str(out, "}");
}

/* The renderers read the hub, the journal's counters and every loop's
 * counters: under the hub lock, so that the rooms hold still. */
int stats_render_json(struct worker *wk, const char *room, size_t room_len, struct buf *out)
{
    hub_lock(wk->srv->hub);
    int rc = render_json(wk, room, room_len, 0, out);
    hub_unlock(wk->srv->hub);
    return rc ? rc : buf_append_str(out, "\n");
}

int stats_render_event(struct worker *wk, struct buf *out)
{
    struct server *srv = wk->srv;
    uint64_t now = loop_now_ms(wk->loop);
    hub_lock(srv->hub);
    /* The rooms' recent counts cover the time since the last mark; a stream
     * renders them as rates over that window and renews the mark once a
     * second at most, so several dashboards share one window. */
    uint64_t since = srv->stats_mark_ms ? srv->stats_mark_ms : srv->started_ms;
    double window_s = (double)(now > since ? now - since : 1) / 1000.0;
    int rc = buf_append_str(out, "data: ");
    rc = rc ? rc : render_json(wk, NULL, 0, window_s, out);
    rc = rc ? rc : buf_append_str(out, "\n\n");
    if (now - since >= STATS_STREAM_MS) {
        hub_mark_published(srv->hub);
        srv->stats_mark_ms = now;
    }
    hub_unlock(srv->hub);
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
    struct loop_lag_hist total, recent;
    lag_take(srv, &total, &recent);
    const struct loop_lag_hist *lag = &total;
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

/* Each loop's open connections, labelled by its index. */
static int render_thread_metrics(const struct server *srv, struct buf *out)
{
    int rc = metric_u64(out, &(struct metric){"sse_threads", "gauge", "Event-loop threads."},
                        srv->nworkers);
    rc = rc ? rc
            : metric_head(out, &(struct metric){"sse_thread_connections", "gauge",
                                                "Open client connections per event-loop thread."});
    for (size_t i = 0; rc == 0 && i < srv->nworkers; i++) {
        rc = buf_printf(out, "sse_thread_connections{thread=\"%zu\"} %zu\n", i,
                        (size_t)counter_get(&srv->workers[i].nconns));
    }
    return rc;
}

static int render_response_classes(struct buf *out, const struct worker_stats *st)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    int rc = metric_head(out, &(struct metric){"sse_http_responses_total", "counter",
                                               "HTTP responses by status class."});
    for (int i = 0; rc == 0 && i < 5; i++) {
        rc = buf_printf(out, "sse_http_responses_total{class=\"%s\"} %llu\n", classes[i],
                        (unsigned long long)st->responses_by_class[i + 1]);
    }
    return rc;
}

/* Subscribers of the busiest rooms by name; the rest summed, so a client
 * creating rooms cannot blow up the metric's cardinality. */
static int render_room_metrics(struct buf *out, const struct snapshot *s)
{
    int rc = metric_head(out, &(struct metric){"sse_subscribers", "gauge",
                                               "Subscribers per room: the busiest rooms by name, "
                                               "the others summed as room ~other."});
    for (size_t i = 0; rc == 0 && i < s->by_subscribers.n; i++) {
        rc = buf_printf(out, "sse_subscribers{room=\"%s\"} %zu\n", s->by_subscribers.top[i].name,
                        s->by_subscribers.top[i].subscribers);
    }
    if (rc == 0 && s->by_subscribers.other_rooms) {
        /* '~' cannot appear in a room name, so this label never clashes. */
        rc = buf_printf(out, "sse_subscribers{room=\"~other\"} %zu\n",
                        s->by_subscribers.other_subscribers);
    }
    return rc;
}

static int render_prometheus(struct worker *wk, struct buf *out);

int stats_render_prometheus(struct worker *wk, struct buf *out)
{
    hub_lock(wk->srv->hub);
    int rc = render_prometheus(wk, out);
    hub_unlock(wk->srv->hub);
    return rc;
}

static int render_prometheus(struct worker *wk, struct buf *out)
{
    struct server *srv = wk->srv;
    struct snapshot s;
    snapshot_take(srv, &s);
    struct totals t;
    totals_take(srv, &t);
    const struct worker_stats *st = &t.st;
    int rc = metric_head(out, &(struct metric){"sse_build_info", "gauge",
                                               "Build information; the value is always 1."});
    rc = rc ? rc : buf_printf(out, "sse_build_info{version=\"%s\"} 1\n", SSE_VERSION);
    rc = rc ? rc
            : metric_head(out, &(struct metric){"sse_uptime_seconds", "gauge",
                                                "Seconds since the server started."});
    rc = rc ? rc : buf_printf(out, "sse_uptime_seconds %.3f\n", uptime_seconds(wk));

    const struct {
        struct metric m;
        unsigned long long v;
    } plain[] = {
        {{"sse_connections", "gauge", "Open client connections."}, t.nconns},
        {{"sse_streams", "gauge", "Open event streams (/messages and /ping)."}, t.streams},
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
         srv->stats.published},
        {{"sse_deliveries_total", "counter", "Messages written in full to a subscriber."},
         st->deliveries},
        {{"sse_bytes_sent_total", "counter", "Bytes written to clients."}, st->bytes_sent},
        {{"sse_slow_subscribers_dropped_total", "counter",
          "Subscribers closed because they fell behind their room's ring."},
         st->lagged_dropped},
        {{"sse_http_requests_total", "counter", "HTTP requests dispatched."}, st->requests},
        {{"sse_auth_refused_total", "counter",
          "Subscribes and publishes refused for a missing, invalid or too narrow token."},
         st->auth_refused},
        {{"sse_log_lines_dropped_total", "counter",
          "Log lines dropped because the log output (a pipe or socket) was not keeping up."},
         log_lines_dropped()},
    };
    for (size_t i = 0; rc == 0 && i < sizeof plain / sizeof plain[0]; i++) {
        rc = metric_u64(out, &plain[i].m, plain[i].v);
    }
    if (rc == 0 && srv->cluster) {
        rc = metric_u64(out,
                        &(struct metric){"sse_redis_up", "gauge",
                                         "1 while Redis (--redis) is reachable, else 0."},
                        cluster_redis_up(srv->cluster));
    }

    rc = rc ? rc : render_thread_metrics(srv, out);
    rc = rc ? rc : render_response_classes(out, st);
    rc = rc ? rc : render_room_metrics(out, &s);
    return rc ? rc : render_loop_lag(srv, out);
}
