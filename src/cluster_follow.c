/*
 * Loop 0 follows the rooms someone on this node listens to: one SUBSCRIBE
 * per room on the subscriber connection, one cluster_room per room, reads
 * on loop 0's commands connection, and what they yield appended to the
 * room's ring under Redis's ids.
 */
#include "cluster_internal.h"

#include "hash.h"
#include "log.h"
#include "server.h"
#include "worker.h"

#include <stdlib.h>
#include <string.h>

/* A read in flight; its reply finds the entry through it. */
struct cluster_read {
    struct list node; /* in the cluster's reads */
    struct cluster_entry *e;
    uint64_t epoch, after;
    uint32_t seq;
    uint32_t number; /* the room's (room_read_sent), 0: no room */
};

static struct cluster_link *link0(struct cluster *cl)
{
    return &cl->links[0];
}

/* ------------------------------------------------------------ entries */

static struct cluster_entry **entry_slot(struct cluster *cl, const char *name, size_t len)
{
    size_t i = hash_bucket(cl->seed, name, len) & (cl->nbuckets - 1);
    struct cluster_entry **pp = &cl->buckets[i];
    while (*pp && ((*pp)->name_len != len || memcmp((*pp)->name, name, len) != 0)) {
        pp = &(*pp)->next;
    }
    return pp;
}

/* Doubles the table when it holds as many entries as buckets. */
static void entries_grow(struct cluster *cl)
{
    size_t n = cl->nbuckets * 2;
    struct cluster_entry **b = calloc(n, sizeof *b);
    if (!b) {
        return; /* longer chains, still correct */
    }
    for (size_t i = 0; i < cl->nbuckets; i++) {
        struct cluster_entry *e = cl->buckets[i];
        while (e) {
            struct cluster_entry *next = e->next;
            size_t j = hash_bucket(cl->seed, e->name, e->name_len) & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(cl->buckets);
    cl->buckets = b;
    cl->nbuckets = n;
}

static int on_action(const struct cluster_room_action *a, void *arg);

static struct cluster_entry *entry_new(struct cluster *cl, const char *name, size_t len)
{
    struct cluster_entry *e = calloc(1, sizeof *e);
    if (!e) {
        return NULL;
    }
    e->cl = cl;
    e->name_len = (uint8_t)len;
    memcpy(e->name, name, len);
    e->channel_len = cluster_proto_key(e->channel, CLUSTER_KEY_CHANNEL, name, len);
    cluster_room_init(&e->cr, e->held, sizeof e->held, on_action, e);
    if (cl->nentries >= cl->nbuckets) {
        entries_grow(cl);
    }
    struct cluster_entry **pp = entry_slot(cl, name, len);
    e->next = *pp;
    *pp = e;
    cl->nentries++;
    return e;
}

static struct cluster_entry *entry_find(struct cluster *cl, const char *name, size_t len)
{
    return *entry_slot(cl, name, len);
}

/* An entry nobody follows, with no read or SUBSCRIBE answer to come, goes. */
static void entry_release(struct cluster_entry *e)
{
    struct cluster *cl = e->cl;
    if (e->tracked || e->reads > 0 || e->subscribing > 0) {
        return;
    }
    struct cluster_entry **pp = entry_slot(cl, e->name, e->name_len);
    *pp = e->next;
    cl->nentries--;
    free(e);
}

/* ------------------------------------------------------------ the ring */

/* Runs fn on the room (hub lock held) when it is still here. */
static struct room *entry_room(struct cluster_entry *e)
{
    return hub_room_find(e->cl->srv->hub, e->name, e->name_len);
}

static void deliver(struct cluster_entry *e, const struct cluster_msg *m)
{
    struct hub *hub = e->cl->srv->hub;
    hub_lock(hub);
    struct room *room = entry_room(e);
    struct publish_result res;
    if (room && room_publish_id(room, m->id, m->event_len ? m->event : NULL, m->event_len, m->data,
                                m->data_len, m->client, m->client_len, &res) < 0) {
        /* Out of memory (or --max-memory with nothing to evict): this
         * node cannot hold the message, so its subscribers are told
         * rather than left with a hole. */
        log_error("room '%s': cannot hold message %llu from Redis; resetting its streams", e->name,
                  (unsigned long long)m->id);
        room_set_epoch(room, m->epoch, m->id, true);
    }
    hub_unlock(hub);
}

static void rebase(struct cluster_entry *e, const struct cluster_room_action *a)
{
    struct hub *hub = e->cl->srv->hub;
    bool reset = a->kind == CLUSTER_ROOM_RESET;
    if (reset) {
        log_warn("room '%s': Redis no longer holds what this node delivered; its streams are "
                 "reset",
                 e->name);
    }
    hub_lock(hub);
    struct room *room = entry_room(e);
    if (room) {
        room_set_epoch(room, a->epoch, a->base, reset);
    }
    hub_unlock(hub);
}

/* ------------------------------------------------------------ reads */

static void read_msg(const struct cluster_msg *m, void *arg)
{
    struct cluster_read *rd = arg;
    cluster_room_backfill_msg(&rd->e->cr, rd->seq, m);
}

/* The entry is in sync for the watch that asked: its room is ready, and
 * every loop with subscribers parked on it is woken. */
static void entry_check_ready(struct cluster_entry *e)
{
    struct cluster *cl = e->cl;
    if (!e->tracked || !e->confirmed || cluster_room_syncing(&e->cr)) {
        return;
    }
    bool woke = false;
    hub_lock(cl->srv->hub);
    struct room *room = entry_room(e);
    if (room && !room_ready(room) && room_watch_seq(room) == e->watch_seq) {
        room_set_ready(room, true);
        woke = true;
    }
    hub_unlock(cl->srv->hub);
    for (size_t i = 0; woke && i < cl->nlinks; i++) {
        cluster_wake(cl, i);
    }
}

static void retry_later(struct cluster *cl);

/* Read n brought all Redis had: subscribers parked for it may join. */
static void read_done(struct cluster_entry *e, uint32_t n)
{
    struct cluster *cl = e->cl;
    bool parked = false;
    hub_lock(cl->srv->hub);
    struct room *room = entry_room(e);
    if (room && n) {
        room_read_done(room, n);
        parked = room_parked(room);
    }
    hub_unlock(cl->srv->hub);
    for (size_t i = 0; parked && i < cl->nlinks; i++) {
        cluster_wake(cl, i);
    }
}

static void on_read(struct redis *r, const struct resp_value *v, struct resp_reader *rest,
                    void *arg)
{
    struct cluster_read *rd = arg;
    struct cluster_entry *e = rd->e;
    (void)r;
    list_remove(&rd->node);
    e->reads--;
    enum cluster_backfill_result res = CLUSTER_BACKFILL_ERROR;
    struct cluster_backfill out = {0};
    if (v && cluster_proto_is_noscript(v)) {
        cluster_link_reload(link0(e->cl));
    } else if (v && e->tracked) {
        res = cluster_proto_parse_backfill(v, rest, rd->epoch, rd->after, &out, read_msg, rd);
    }
    if (e->tracked) {
        cluster_room_backfill_end(&e->cr, rd->seq, res, out.epoch, out.top);
        if (res == CLUSTER_BACKFILL_ERROR) {
            retry_later(e->cl);
        }
        if (res == CLUSTER_BACKFILL_DONE) {
            read_done(e, rd->number);
        }
        entry_check_ready(e);
    }
    free(rd);
    entry_release(e);
}

static int send_read(struct cluster_entry *e, const struct cluster_room_action *a)
{
    struct cluster_link *l = link0(e->cl);
    struct cluster_args args;
    if (cluster_proto_backfill_args(&args, cluster_link_sha(l, CLUSTER_SCRIPT_READ), e->name,
                                    e->name_len, a->after, CLUSTER_READ_COUNT) < 0) {
        return -1;
    }
    struct cluster_read *rd = malloc(sizeof *rd);
    if (!rd) {
        retry_later(e->cl);
        return -1;
    }
    *rd = (struct cluster_read){.e = e, .epoch = a->epoch, .after = a->after, .seq = a->seq};
    hub_lock(e->cl->srv->hub);
    struct room *room = entry_room(e);
    rd->number = room ? room_read_sent(room) : 0;
    hub_unlock(e->cl->srv->hub);
    if (redis_command(l->cmd, args.argc, args.argv, args.lens, on_read, rd) < 0) {
        free(rd);
        retry_later(e->cl);
        return -1;
    }
    list_push_back(&e->cl->reads, &rd->node);
    e->reads++;
    return 0;
}

static int on_action(const struct cluster_room_action *a, void *arg)
{
    struct cluster_entry *e = arg;
    switch (a->kind) {
    case CLUSTER_ROOM_DELIVER:
        deliver(e, a->msg);
        return 0;
    case CLUSTER_ROOM_BACKFILL:
        return send_read(e, a);
    case CLUSTER_ROOM_START:
    case CLUSTER_ROOM_RESET:
        rebase(e, a);
        return 0;
    }
    return 0;
}

/* Reads that could not go out (not connected, a full buffer, an error
 * reply) are sent again from a timer. */
static void on_retry(struct loop *loop, struct loop_timer *t)
{
    struct cluster *cl = container_of(t, struct cluster, retry);
    (void)loop;
    cl->retry_armed = false;
    for (size_t i = 0; i < cl->nbuckets; i++) {
        for (struct cluster_entry *e = cl->buckets[i]; e; e = e->next) {
            if (e->tracked) {
                cluster_room_retry(&e->cr);
            }
        }
    }
}

static void retry_later(struct cluster *cl)
{
    if (!cl->retry_armed &&
        loop_timer_start(cl->srv->loop, &cl->retry, CLUSTER_RETRY_MS, on_retry) == 0) {
        cl->retry_armed = true;
    }
}

void cluster_follow_link_ready(struct cluster *cl)
{
    on_retry(cl->srv->loop, &cl->retry);
}

/* ------------------------------------------------------------ subscriptions */

static void entry_subscribe(struct cluster_entry *e)
{
    if (redis_is_ready(e->cl->sub) &&
        redis_subscribe(e->cl->sub, e->channel, e->channel_len) == 0) {
        e->subscribing++;
    }
}

static void on_sub_ready(struct redis *r, void *arg)
{
    struct cluster *cl = arg;
    (void)r;
    atomic_store(&cl->sub_ready, true);
    cluster_log_up(cl);
    cluster_redis_back(cl);
    for (size_t i = 0; i < cl->nbuckets; i++) {
        for (struct cluster_entry *e = cl->buckets[i]; e; e = e->next) {
            if (e->tracked) {
                entry_subscribe(e);
            }
        }
    }
}

static void on_sub_down(struct redis *r, const char *why, void *arg)
{
    struct cluster *cl = arg;
    (void)r;
    static struct log_limit limit;
    if (log_limit_allow(&limit, loop_now_ms(cl->srv->loop), 5)) {
        log_warn("redis: subscriber connection down: %s", why);
    }
    atomic_store(&cl->sub_ready, false);
    cluster_log_up(cl);
    for (size_t i = 0; i < cl->nbuckets; i++) {
        struct cluster_entry *e = cl->buckets[i];
        while (e) {
            struct cluster_entry *next = e->next;
            e->subscribing = 0;
            e->confirmed = false;
            if (e->tracked) {
                cluster_room_link_down(&e->cr);
            }
            entry_release(e);
            e = next;
        }
    }
}

static struct cluster_entry *channel_entry(struct cluster *cl, const char *channel, size_t len)
{
    size_t room_len;
    const char *room = cluster_proto_channel_room(channel, len, &room_len);
    return room ? entry_find(cl, room, room_len) : NULL;
}

static void on_subscribed(struct redis *r, const char *channel, size_t len, void *arg)
{
    struct cluster_entry *e = channel_entry(arg, channel, len);
    (void)r;
    /* After SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE the channel is surely
     * subscribed only once the last confirmation came: every one is
     * counted, whether the room is followed meanwhile or not. */
    if (!e || e->subscribing == 0 || --e->subscribing > 0) {
        return;
    }
    if (e->tracked) {
        e->confirmed = true;
        cluster_room_subscribed(&e->cr);
        entry_check_ready(e);
    } else {
        entry_release(e);
    }
}

static void on_message(struct redis *r, const char *channel, size_t channel_len,
                       const char *payload, size_t len, void *arg)
{
    struct cluster *cl = arg;
    struct cluster_entry *e = channel_entry(cl, channel, channel_len);
    struct cluster_msg m;
    (void)r;
    if (!e || !e->tracked) {
        return;
    }
    if (cluster_proto_payload_decode(payload, len, &m) < 0) {
        /* Dropped here, found missing by the next message's id. */
        static struct log_limit limit;
        if (log_limit_allow(&limit, loop_now_ms(cl->srv->loop), 5)) {
            log_warn("redis: malformed message on %.*s ignored", (int)channel_len, channel);
        }
        return;
    }
    (void)cluster_room_message(&e->cr, &m);
}

/* ------------------------------------------------------------ watch events */

static void queue_event(struct cluster *cl, struct room *room, enum cluster_event_kind kind)
{
    struct cluster_event *ev = malloc(sizeof *ev);
    if (!ev) {
        log_error("cluster: out of memory; room '%s' is not %s", room_name(room),
                  kind == CLUSTER_WATCHED     ? "followed"
                  : kind == CLUSTER_UNWATCHED ? "left"
                                              : "read again");
        return;
    }
    const char *name = room_name(room);
    ev->next = NULL;
    ev->watch_seq = room_watch_seq(room);
    ev->kind = kind;
    ev->name_len = (uint8_t)strlen(name);
    memcpy(ev->name, name, (size_t)ev->name_len + 1);
    pthread_mutex_lock(&cl->events_lock);
    bool first = cl->events == NULL;
    *cl->events_tail = ev;
    cl->events_tail = &ev->next;
    pthread_mutex_unlock(&cl->events_lock);
    if (first) {
        cluster_wake(cl, 0);
    }
}

void cluster_on_watch(void *arg, struct room *room, bool watched)
{
    queue_event(arg, room, watched ? CLUSTER_WATCHED : CLUSTER_UNWATCHED);
}

void cluster_request_read(struct cluster *cl, struct room *room)
{
    queue_event(cl, room, CLUSTER_READ);
}

static void follow(struct cluster *cl, const struct cluster_event *ev)
{
    struct cluster_entry *e = entry_find(cl, ev->name, ev->name_len);
    if (ev->kind == CLUSTER_READ) {
        if (e && e->tracked) {
            cluster_room_refresh(&e->cr);
        }
        return;
    }
    if (ev->kind == CLUSTER_UNWATCHED) {
        if (e && e->tracked) {
            e->tracked = e->confirmed = false;
            cluster_room_untrack(&e->cr);
            if (redis_is_ready(cl->sub)) {
                (void)redis_unsubscribe(cl->sub, e->channel, e->channel_len);
            }
            entry_release(e);
        }
        return;
    }
    if (!e && !(e = entry_new(cl, ev->name, ev->name_len))) {
        log_error("cluster: out of memory; room '%.*s' is not followed", (int)ev->name_len,
                  ev->name);
        return;
    }
    e->watch_seq = ev->watch_seq;
    if (e->tracked) {
        return;
    }
    /* Whatever the ring still holds is continued, not read again. */
    uint64_t epoch = 0, last = 0;
    hub_lock(cl->srv->hub);
    struct room *room = entry_room(e);
    if (room && room_frames(room) > 0 && room_epoch(room) != 0) {
        epoch = room_epoch(room);
        last = room_newest_id(room);
    }
    hub_unlock(cl->srv->hub);
    e->tracked = true;
    cluster_room_track(&e->cr, epoch, last);
    entry_subscribe(e);
}

void cluster_follow_events(struct cluster *cl)
{
    pthread_mutex_lock(&cl->events_lock);
    struct cluster_event *ev = cl->events;
    cl->events = NULL;
    cl->events_tail = &cl->events;
    pthread_mutex_unlock(&cl->events_lock);
    while (ev) {
        struct cluster_event *next = ev->next;
        follow(cl, ev);
        free(ev);
        ev = next;
    }
}

/* ------------------------------------------------------------ set-up */

int cluster_follow_init(struct cluster *cl)
{
    struct server *srv = cl->srv;
    pthread_mutex_init(&cl->events_lock, NULL);
    cl->events_tail = &cl->events;
    list_init(&cl->reads);
    cl->seed = (uint64_t)(uintptr_t)cl ^ 0x9e3779b97f4a7c15ULL;
    cl->nbuckets = 64;
    cl->buckets = calloc(cl->nbuckets, sizeof *cl->buckets);
    struct redis_options opt = {.idle_ping_ms = 5000};
    struct redis_callbacks cb = {.on_ready = on_sub_ready,
                                 .on_down = on_sub_down,
                                 .on_message = on_message,
                                 .on_subscribed = on_subscribed,
                                 .arg = cl};
    cl->sub = redis_new(srv->loop, &srv->cfg.redis, REDIS_SUBSCRIBER, &opt, &cb);
    return cl->buckets && cl->sub ? 0 : -1;
}

void cluster_follow_free(struct cluster *cl)
{
    redis_free(cl->sub);
    if (cl->retry_armed) {
        loop_timer_stop(cl->srv->loop, &cl->retry);
    }
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &cl->reads)
    {
        list_remove(pos);
        free(container_of(pos, struct cluster_read, node));
    }
    for (size_t i = 0; cl->buckets && i < cl->nbuckets; i++) {
        struct cluster_entry *e = cl->buckets[i];
        while (e) {
            struct cluster_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(cl->buckets);
    struct cluster_event *ev = cl->events;
    while (ev) {
        struct cluster_event *next = ev->next;
        free(ev);
        ev = next;
    }
    pthread_mutex_destroy(&cl->events_lock);
}
