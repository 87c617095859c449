#include "cluster_internal.h"

#include "conn.h"
#include "log.h"
#include "response.h"
#include "server.h"
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a connection waits for: its publish's reply, or its room's read. */
enum wait_kind { WAIT_PUBLISH, WAIT_PARKED };

struct cluster_wait {
    struct list node; /* in its link's parked or publishing list */
    struct cluster_link *link;
    struct conn *conn; /* publish: NULL once the connection closed */
    enum wait_kind kind;
    /* Publish: the connection's next one, where its answer goes in the
     * connection's output, and how the request wanted it. */
    struct cluster_wait *next;
    size_t pos;
    struct conn_answer_form form;
    struct room *room; /* parked: kept alive by room_park */
    struct room_want want;
    uint32_t ticket;  /* parked: the room's reads_sent when it came */
    uint8_t name_len; /* publish: the room, for the 202's local count */
    uint8_t client_len;
    char name[ROOM_NAME_MAX + 1];
    char client[ROOM_CLIENT_MAX];
};

bool cluster_redis_up(const struct cluster *cl)
{
    return atomic_load_explicit(&cl->sub_ready, memory_order_relaxed) &&
           atomic_load_explicit(&cl->links_ready, memory_order_relaxed) == cl->nlinks;
}

void cluster_log_up(struct cluster *cl)
{
    bool up = redis_is_ready(cl->sub) && redis_is_ready(cl->links[0].cmd);
    if (up != cl->said_up) {
        cl->said_up = up;
        if (up) {
            log_info("redis: reachable; publishing and following rooms");
        } else {
            log_warn("redis: unreachable; POST /message answers 503 until it is back");
        }
    }
}

void cluster_redis_back(struct cluster *cl)
{
    /* Redis is back: no other connection need wait out its backoff. */
    redis_retry_now(cl->sub);
    redis_retry_now(cl->links[0].cmd);
    for (size_t i = 1; i < cl->nlinks; i++) {
        cluster_wake(cl, i);
    }
}

void cluster_wake(struct cluster *cl, size_t i)
{
    struct worker *w = &cl->srv->workers[i];
    if (!atomic_exchange(&w->cluster_wake_queued, true)) {
        inbox_push(&w->inbox, &w->cluster_wake);
    }
}

/* ------------------------------------------------------------ scripts */

const char *cluster_link_sha(const struct cluster_link *l, enum cluster_script which)
{
    return l->sha[which][0] ? l->sha[which] : NULL;
}

static void on_script_loaded(struct redis *r, const struct resp_value *v, struct resp_reader *rest,
                             void *arg)
{
    char *sha = arg;
    (void)r;
    (void)rest;
    if (v && cluster_proto_parse_load_reply(v, sha) < 0) {
        sha[0] = '\0';
        log_warn("redis: SCRIPT LOAD refused; sending scripts whole (EVAL)");
    }
}

void cluster_link_reload(struct cluster_link *l)
{
    for (int i = 0; i < 2; i++) {
        struct cluster_args a;
        l->sha[i][0] = '\0';
        cluster_proto_load_args(&a, (enum cluster_script)i);
        /* Not ready or full: EVAL meanwhile, and on_ready loads them. */
        (void)redis_command(l->cmd, a.argc, a.argv, a.lens, on_script_loaded, l->sha[i]);
    }
}

static void on_link_ready(struct redis *r, void *arg)
{
    struct cluster_link *l = arg;
    (void)r;
    cluster_link_reload(l);
    if (!l->ready) {
        l->ready = true;
        atomic_fetch_add(&l->cl->links_ready, 1);
    }
    if (l->wk->index == 0) {
        cluster_log_up(l->cl);
        cluster_follow_link_ready(l->cl);
        cluster_redis_back(l->cl);
    }
}

static void on_link_down(struct redis *r, const char *why, void *arg)
{
    struct cluster_link *l = arg;
    (void)r;
    /* A restarted Redis has no scripts: EVAL until they are loaded again. */
    l->sha[0][0] = l->sha[1][0] = '\0';
    if (l->ready) {
        l->ready = false;
        atomic_fetch_sub(&l->cl->links_ready, 1);
    }
    if (l->wk->index == 0) {
        static struct log_limit limit;
        if (log_limit_allow(&limit, loop_now_ms(l->wk->loop), 5)) {
            log_warn("redis: commands connection down: %s", why);
        }
        cluster_log_up(l->cl);
    }
}

/* ------------------------------------------------------------ publishing */

static uint64_t wall_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void reply_unavailable(struct conn *c, const char *msg)
{
    char body[256];
    size_t n = response_error_body(body, sizeof body, 503, msg);
    conn_reply(c, 503, "application/json", body, n, "Retry-After: 1\r\n");
}

/* A message Redis accepted from this node: counted as published here (the
 * counter's writers take the hub lock), and the room's subscribers on this
 * node, the 202's "clients". */
static size_t count_accepted(struct cluster *cl, const char *name, size_t len)
{
    struct hub *hub = cl->srv->hub;
    hub_lock(hub);
    counter_add(&cl->srv->stats.published, 1);
    struct room *room = hub_room_find(hub, name, len);
    size_t n = room ? room_subscribers(room) : 0;
    hub_unlock(hub);
    return n;
}

/* The append script's reply: the id for the 202, or why not. */
static void on_appended(struct redis *r, const struct resp_value *v, struct resp_reader *rest,
                        void *arg)
{
    struct cluster_wait *w = arg;
    struct cluster_link *l = w->link;
    struct conn *c = w->conn;
    (void)r;
    list_remove(&w->node);
    uint64_t id = 0, epoch = 0;
    const char *why = "lost the connection to Redis: the message may or may not be stored";
    if (v && cluster_proto_is_noscript(v)) {
        cluster_link_reload(l);
        why = "Redis restarted and lost its scripts: try again";
    } else if (v && cluster_proto_parse_append_reply(v, rest, &id, &epoch) < 0) {
        id = 0;
        why = "Redis refused the message";
        static struct log_limit limit;
        if (log_limit_allow(&limit, loop_now_ms(l->wk->loop), 5)) {
            log_error("redis: append refused: %.*s", v->type == RESP_ERR ? (int)v->len : 0,
                      v->type == RESP_ERR ? v->str : "");
        }
    }
    /* Published even when its publisher has gone meanwhile. */
    size_t clients = id ? count_accepted(l->cl, w->name, w->name_len) : 0;
    if (c) {
        /* Replies come in order: this is the connection's oldest. */
        conn_set_cluster_wait(c, w->next);
        size_t len = conn_publish_answered(c, &w->form, w->pos, id, clients, why);
        if (len > 0) {
            for (struct cluster_wait *n = w->next; n; n = n->next) {
                n->pos += len;
            }
            conn_flush(c);
        }
    }
    free(w);
}

bool cluster_output_limit(const struct conn *c, size_t *limit)
{
    const struct cluster_wait *w = conn_cluster_wait(c);
    if (!w || w->kind != WAIT_PUBLISH) {
        return false;
    }
    *limit = w->pos;
    return true;
}

void cluster_output_consumed(struct conn *c, size_t n)
{
    for (struct cluster_wait *w = conn_cluster_wait(c); w && w->kind == WAIT_PUBLISH; w = w->next) {
        w->pos -= n < w->pos ? n : w->pos;
    }
}

size_t cluster_publishes_awaited(const struct conn *c)
{
    size_t n = 0;
    for (const struct cluster_wait *w = conn_cluster_wait(c); w && w->kind == WAIT_PUBLISH;
         w = w->next) {
        n++;
    }
    return n;
}

int cluster_publish(struct worker *wk, struct conn *c, const struct cluster_message *m)
{
    struct cluster *cl = wk->srv->cluster;
    struct cluster_link *l = &cl->links[wk->index];
    const char *why = "Redis is unreachable";
    if (!redis_is_ready(l->cmd)) {
        goto refuse;
    }
    struct cluster_append ap = {
        .room = m->room,
        .room_len = m->room_len,
        .time_base = wall_clock_us(),
        .history = wk->srv->cfg.history,
        .ttl_s = wk->srv->cfg.redis_ttl_s,
        .event = m->event,
        .event_len = m->event_len,
        .client = m->client,
        .client_len = m->client_len,
        .data = m->data,
        .data_len = m->data_len,
    };
    struct cluster_args a;
    if (cluster_proto_append_args(&a, cluster_link_sha(l, CLUSTER_SCRIPT_APPEND), &ap) < 0) {
        conn_reply_error(c, 400, "the message cannot be stored");
        return -1;
    }
    struct cluster_wait *w = calloc(1, sizeof *w);
    if (!w) {
        why = "out of memory";
        goto refuse;
    }
    w->kind = WAIT_PUBLISH;
    w->link = l;
    w->conn = c;
    w->pos = conn_output_len(c);
    conn_answer_form(c, &w->form);
    w->name_len = (uint8_t)m->room_len;
    memcpy(w->name, m->room, m->room_len);
    if (redis_command(l->cmd, a.argc, a.argv, a.lens, on_appended, w) < 0) {
        why = errno == ENOBUFS ? "too many messages on their way to Redis" : "Redis is unreachable";
        free(w);
        goto refuse;
    }
    list_push_back(&l->publishing, &w->node);
    struct cluster_wait *last = conn_cluster_wait(c);
    if (!last) {
        conn_set_cluster_wait(c, w);
    } else {
        while (last->next) {
            last = last->next;
        }
        last->next = w;
    }
    return 0;
refuse:
    reply_unavailable(c, why);
    return -1;
}

/* ------------------------------------------------------------ parked subscribers */

int cluster_park(struct worker *wk, struct conn *c, struct room *room, const struct room_want *want,
                 const char *client, size_t client_len)
{
    struct cluster_wait *w = calloc(1, sizeof *w);
    if (!w) {
        return -1;
    }
    w->kind = WAIT_PARKED;
    w->link = &wk->srv->cluster->links[wk->index];
    w->conn = c;
    w->room = room;
    w->want = *want;
    w->client_len = (uint8_t)(client_len < ROOM_CLIENT_MAX ? client_len : ROOM_CLIENT_MAX);
    memcpy(w->client, client, w->client_len);
    room_park(room);
    w->ticket = room_reads_sent(room);
    if (want->resume && want->last_id > room_newest_id(room)) {
        /* It holds what this node has not seen yet (the node is behind
         * Redis), or an id Redis never issued: only a read tells. */
        cluster_request_read(w->link->cl, room);
    }
    list_push_back(&w->link->parked, &w->node);
    conn_set_cluster_wait(c, w);
    return 0;
}

void cluster_cancel(struct conn *c)
{
    struct cluster_wait *w = conn_cluster_wait(c);
    conn_set_cluster_wait(c, NULL);
    if (w->kind == WAIT_PUBLISH) {
        /* Each is freed by its reply, which must still come. */
        for (; w; w = w->next) {
            w->conn = NULL;
        }
        return;
    }
    list_remove(&w->node);
    struct hub *hub = w->link->cl->srv->hub;
    hub_lock(hub);
    room_unpark(w->room);
    hub_unlock(hub);
    free(w);
}

/* The parked subscribers of wk whose room is ready join it, then their
 * streams are flushed (outside the hub lock). */
static void join_ready(struct cluster *cl, struct worker *wk)
{
    struct cluster_link *l = &cl->links[wk->index];
    if (list_empty(&l->parked)) {
        return;
    }
    struct list joined, *pos, *tmp;
    list_init(&joined);
    hub_lock(cl->srv->hub);
    list_for_each_safe(pos, tmp, &l->parked)
    {
        struct cluster_wait *w = container_of(pos, struct cluster_wait, node);
        /* A resume past the ring waits for a read made after it came: then
         * the ring has it, or it was never the room's. */
        bool ahead = w->want.resume && w->want.last_id > room_newest_id(w->room);
        if (!room_ready(w->room) || (ahead && room_reads_done(w->room) <= w->ticket)) {
            continue;
        }
        list_remove(&w->node);
        conn_set_cluster_wait(w->conn, NULL);
        struct room_start start =
            ahead ? room_start_lost(w->room) : room_start_want(w->room, &w->want);
        /* Joined before unparked: the room stays watched throughout. */
        bool open = conn_stream_join(w->conn, w->room, &start, w->client, w->client_len);
        room_unpark(w->room);
        if (open) {
            list_push_back(&joined, &w->node);
        } else {
            free(w);
        }
    }
    hub_unlock(cl->srv->hub);
    list_for_each_safe(pos, tmp, &joined)
    {
        struct cluster_wait *w = container_of(pos, struct cluster_wait, node);
        conn_flush(w->conn);
        free(w);
    }
}

void cluster_on_wake(struct worker *wk)
{
    struct cluster *cl = wk->srv->cluster;
    atomic_store(&wk->cluster_wake_queued, false);
    if (wk->index == 0) {
        cluster_follow_events(cl);
    } else if (!redis_is_ready(cl->links[wk->index].cmd)) {
        redis_retry_now(cl->links[wk->index].cmd);
    }
    join_ready(cl, wk);
}

/* ------------------------------------------------------------ set-up */

int cluster_init(struct server *srv)
{
    struct cluster *cl = calloc(1, sizeof *cl);
    if (!cl) {
        goto nomem;
    }
    srv->cluster = cl;
    cl->srv = srv;
    cl->links = calloc(srv->nworkers, sizeof *cl->links);
    if (!cl->links) {
        goto nomem;
    }
    cl->nlinks = srv->nworkers;
    for (size_t i = 0; i < cl->nlinks; i++) {
        struct cluster_link *l = &cl->links[i];
        struct redis_options opt = {.idle_ping_ms = 5000};
        struct redis_callbacks cb = {.on_ready = on_link_ready, .on_down = on_link_down, .arg = l};
        l->cl = cl;
        l->wk = &srv->workers[i];
        list_init(&l->parked);
        list_init(&l->publishing);
        l->cmd = redis_new(l->wk->loop, &srv->cfg.redis, REDIS_COMMANDS, &opt, &cb);
        if (!l->cmd) {
            goto nomem;
        }
    }
    if (cluster_follow_init(cl) < 0) {
        goto nomem;
    }
    hub_set_watch(srv->hub, cluster_on_watch, cl);
    return 0;
nomem:
    log_error("cluster: out of memory");
    return -1;
}

void cluster_start(struct cluster *cl)
{
    for (size_t i = 0; i < cl->nlinks; i++) {
        redis_start(cl->links[i].cmd);
    }
    redis_start(cl->sub);
}

void cluster_free(struct cluster *cl)
{
    if (!cl) {
        return;
    }
    hub_set_watch(cl->srv->hub, NULL, NULL);
    cluster_follow_free(cl);
    for (size_t i = 0; cl->links && i < cl->nlinks; i++) {
        struct cluster_link *l = &cl->links[i];
        redis_free(l->cmd); /* drops the awaited replies without a call */
        struct list *pos, *tmp;
        list_for_each_safe(pos, tmp, &l->publishing)
        {
            free(container_of(pos, struct cluster_wait, node));
        }
    }
    free(cl->links);
    cl->srv->cluster = NULL;
    free(cl);
}
