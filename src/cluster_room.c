/*
 * cluster_room: the per-room sync state machine of a cluster node (see
 * include/cluster_room.h for the rules it follows).
 *
 * A few invariants the code keeps:
 *   - based implies epoch != 0: a base always belongs to a known epoch;
 *   - stale != epoch: the epoch left is never the current one;
 *   - fill == FLIGHT only while subscribed, with seq naming the request;
 *   - buf holds live messages only while fill != IDLE, in arrival order.
 */
#include "cluster_room.h"

#include <string.h>

/* A held message in buf: this header, then event, client and data. */
struct held {
    uint64_t epoch, id;
    size_t event_len, client_len, data_len;
};

void cluster_room_init(struct cluster_room *r, void *buf, size_t cap, cluster_room_fn *fn,
                       void *arg)
{
    memset(r, 0, sizeof *r);
    r->buf = buf;
    r->cap = buf ? cap : 0;
    r->fn = fn;
    r->arg = arg;
}

/* Forgets the room's state; keeps the caller's setup and the request
 * counter, so that a reply to an earlier request never matches again. */
static void forget(struct cluster_room *r)
{
    r->used = 0;
    r->epoch = r->last = r->stale = 0;
    r->fill = CLUSTER_ROOM_IDLE;
    r->subscribed = r->based = r->lost = r->again = r->progress = false;
}

void cluster_room_track(struct cluster_room *r, uint64_t epoch, uint64_t last)
{
    if (r->tracked) {
        return;
    }
    forget(r);
    r->tracked = true;
    r->epoch = epoch;
    /* An epoch's ids start at the epoch itself: a last below it holds
     * nothing of that epoch. */
    r->based = epoch != 0 && last >= epoch;
    r->last = r->based ? last : 0;
}

void cluster_room_untrack(struct cluster_room *r)
{
    if (!r->tracked) {
        return;
    }
    forget(r);
    r->tracked = false;
    r->seq++;
}

/* ------------------------------------------------------------ actions */

static void deliver(struct cluster_room *r, const struct cluster_msg *m)
{
    struct cluster_room_action a = {.kind = CLUSTER_ROOM_DELIVER, .msg = m};
    r->last = m->id;
    r->fn(&a, r->arg);
}

/* Tells the ring where the room stands: START when it held nothing,
 * RESET when what it held cannot be continued. */
static void rebase(struct cluster_room *r, uint64_t base)
{
    struct cluster_room_action a = {
        .kind = r->lost ? CLUSTER_ROOM_RESET : CLUSTER_ROOM_START,
        .epoch = r->epoch,
        .base = base,
    };
    r->lost = false;
    r->based = true;
    r->last = base;
    r->fn(&a, r->arg);
}

/* Redis holds nothing for the room: a ring that held something is reset to
 * (0, 0); one that held nothing has nothing to be told. */
static void rebase_empty(struct cluster_room *r)
{
    if (r->lost) {
        struct cluster_room_action a = {.kind = CLUSTER_ROOM_RESET};
        r->lost = false;
        r->fn(&a, r->arg);
    }
    r->based = false;
    r->last = 0;
}

/* The room's life in Redis is now `epoch` (0: none). Leaving a known epoch
 * marks it stale, and what the ring holds of it lost. */
static void set_epoch(struct cluster_room *r, uint64_t epoch)
{
    if (epoch == r->epoch) {
        return;
    }
    if (r->epoch != 0) {
        r->stale = r->epoch;
        r->lost = r->lost || r->based;
    }
    r->epoch = epoch;
    r->based = false;
    r->last = 0;
}

/* Asks for a backfill from the last id, or from the oldest retained when
 * the ring has no base: one at a time, and only once subscribed. */
static void request(struct cluster_room *r)
{
    if (r->fill == CLUSTER_ROOM_FLIGHT) {
        r->again = true;
        return;
    }
    r->fill = CLUSTER_ROOM_PENDING;
    if (!r->subscribed) {
        return;
    }
    struct cluster_room_action a = {
        .kind = CLUSTER_ROOM_BACKFILL,
        .epoch = r->epoch,
        .after = r->based ? r->last : 0,
        .seq = ++r->seq,
    };
    r->again = false;
    r->progress = false;
    if (r->fn(&a, r->arg) == 0) {
        r->fill = CLUSTER_ROOM_FLIGHT;
    }
}

/* ------------------------------------------------------------ held messages */

/* Copies m into buf; false when it does not fit. */
static bool hold(struct cluster_room *r, const struct cluster_msg *m)
{
    struct held h = {m->epoch, m->id, m->event_len, m->client_len, m->data_len};
    size_t room = r->cap - r->used;
    if (room < sizeof h || room - sizeof h < m->event_len ||
        room - sizeof h - m->event_len < m->client_len ||
        room - sizeof h - m->event_len - m->client_len < m->data_len) {
        return false;
    }
    unsigned char *p = r->buf + r->used;
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    if (m->event_len) {
        memcpy(p, m->event, m->event_len);
    }
    if (m->client_len) {
        memcpy(p + m->event_len, m->client, m->client_len);
    }
    if (m->data_len) {
        memcpy(p + m->event_len + m->client_len, m->data, m->data_len);
    }
    r->used += sizeof h + m->event_len + m->client_len + m->data_len;
    return true;
}

/* Reads the held message at *off into m (views into buf); advances *off. */
static void held_at(const struct cluster_room *r, size_t *off, struct cluster_msg *m)
{
    struct held h;
    const unsigned char *p = r->buf + *off;
    memcpy(&h, p, sizeof h);
    p += sizeof h;
    *m = (struct cluster_msg){
        .epoch = h.epoch,
        .id = h.id,
        .event = (const char *)p,
        .event_len = h.event_len,
        .client = (const char *)p + h.event_len,
        .client_len = h.client_len,
        .data = (const char *)p + h.event_len + h.client_len,
        .data_len = h.data_len,
    };
    *off += sizeof h + h.event_len + h.client_len + h.data_len;
}

/* Keeps a live message until the backfill answers. When it does not fit,
 * every held message goes (a later one applied after a hole would only
 * start another backfill) and the room reads again after this backfill. */
static enum cluster_room_verdict keep(struct cluster_room *r, const struct cluster_msg *m)
{
    if (hold(r, m)) {
        return CLUSTER_ROOM_HELD;
    }
    r->used = 0;
    if (r->fill == CLUSTER_ROOM_FLIGHT) {
        r->again = true;
    }
    return CLUSTER_ROOM_DROPPED;
}

/* ------------------------------------------------------------ live messages */

/*
 * Applies a live message while no backfill is needed; -1 when one is (m not
 * consumed: the caller asks for it). A message of another epoch never
 * changes the room's epoch by itself: it may be a late one of a life Redis
 * has already lost (it was sent before, and handled after, a read that saw
 * the next life), which no id or epoch value can tell from a new life. Only
 * a backfill, Redis at one instant, says which life is current.
 */
static int take_live(struct cluster_room *r, const struct cluster_msg *m,
                     enum cluster_room_verdict *v)
{
    if (r->stale != 0 && m->epoch == r->stale) {
        *v = CLUSTER_ROOM_STALE;
        return 0;
    }
    if (!r->based || m->epoch != r->epoch || m->id > r->last + 1) {
        return -1;
    }
    if (m->id <= r->last) {
        *v = CLUSTER_ROOM_OLD;
        return 0;
    }
    deliver(r, m);
    *v = CLUSTER_ROOM_DELIVERED;
    return 0;
}

enum cluster_room_verdict cluster_room_message(struct cluster_room *r, const struct cluster_msg *m)
{
    enum cluster_room_verdict v;
    if (!r->tracked) {
        return CLUSTER_ROOM_UNTRACKED;
    }
    if (r->fill == CLUSTER_ROOM_IDLE) {
        if (take_live(r, m, &v) == 0) {
            return v;
        }
        request(r);
        return keep(r, m);
    }
    /* A backfill is needed or on its way: what it cannot change is settled
     * now, the rest waits for it. */
    if (r->stale != 0 && m->epoch == r->stale) {
        return CLUSTER_ROOM_STALE;
    }
    if (r->based && m->epoch == r->epoch && m->id <= r->last) {
        return CLUSTER_ROOM_OLD;
    }
    if (r->fill == CLUSTER_ROOM_PENDING) {
        request(r); /* a message arrived: the link works, try again */
    }
    return keep(r, m);
}

/* Applies the held messages after a backfill, in arrival order. One that
 * needs another backfill stops it: that backfill reads it and every later
 * one, all published before it is read. */
static void drain(struct cluster_room *r)
{
    size_t off = 0;
    while (off < r->used && r->fill == CLUSTER_ROOM_IDLE) {
        struct cluster_msg m;
        enum cluster_room_verdict v;
        held_at(r, &off, &m);
        if (take_live(r, &m, &v) < 0) {
            request(r);
        }
    }
    r->used = 0;
}

/* ------------------------------------------------------------ backfill */

void cluster_room_subscribed(struct cluster_room *r)
{
    if (!r->tracked) {
        return;
    }
    r->subscribed = true;
    request(r);
}

void cluster_room_refresh(struct cluster_room *r)
{
    if (r->tracked) {
        request(r);
    }
}

void cluster_room_link_down(struct cluster_room *r)
{
    if (!r->tracked) {
        return;
    }
    if (r->fill == CLUSTER_ROOM_FLIGHT) {
        r->seq++; /* its reply, if one still comes, is not ours */
    }
    r->fill = CLUSTER_ROOM_IDLE;
    r->subscribed = r->again = false;
    r->used = 0;
}

void cluster_room_retry(struct cluster_room *r)
{
    if (r->tracked && r->fill == CLUSTER_ROOM_PENDING) {
        request(r);
    }
}

static bool answers(const struct cluster_room *r, uint32_t seq)
{
    return r->tracked && r->fill == CLUSTER_ROOM_FLIGHT && seq == r->seq;
}

void cluster_room_backfill_msg(struct cluster_room *r, uint32_t seq, const struct cluster_msg *m)
{
    if (!answers(r, seq) || (r->stale != 0 && m->epoch == r->stale)) {
        return;
    }
    set_epoch(r, m->epoch);
    if (!r->based) {
        /* A read from the oldest retained: the ring starts here. */
        rebase(r, m->id - 1);
    } else if (m->id <= r->last) {
        return;
    } else if (m->id != r->last + 1) {
        /* A reader never hands out a hole; should one come, it is a loss
         * reported, not one hidden. */
        r->lost = true;
        rebase(r, m->id - 1);
    }
    deliver(r, m);
    r->progress = true;
}

/* DONE: everything up to top was handed out. When nothing was, and the ring
 * has no base, the room has no message to give: it stands at top. */
static void fill_done(struct cluster_room *r, uint64_t epoch, uint64_t top)
{
    if (!r->based) {
        set_epoch(r, epoch);
        if (epoch == 0) {
            rebase_empty(r);
        } else {
            rebase(r, top);
        }
    }
}

/* GAP: the messages after the last id are gone (trimmed), or the room's
 * epoch is not the one asked about. Read again from the oldest retained;
 * when that read itself reports a gap (entries Redis cannot place), the
 * ring goes on after top. Returns true when a new backfill was asked. */
static bool fill_gap(struct cluster_room *r, uint64_t epoch, uint64_t top)
{
    if (epoch != r->epoch) {
        set_epoch(r, epoch);
    } else if (r->based) {
        r->based = false;
        r->lost = true;
    } else {
        fill_done(r, epoch, top);
        return false;
    }
    request(r);
    return true;
}

void cluster_room_backfill_end(struct cluster_room *r, uint32_t seq,
                               enum cluster_backfill_result res, uint64_t epoch, uint64_t top)
{
    if (!answers(r, seq)) {
        return;
    }
    r->fill = CLUSTER_ROOM_IDLE;
    if (res == CLUSTER_BACKFILL_MORE && r->progress) {
        request(r);
        return;
    }
    if (res != CLUSTER_BACKFILL_DONE && res != CLUSTER_BACKFILL_GAP) {
        /* An error, or a page that brought nothing: asking again at once
         * could loop; wait for a retry, a message or a subscription. */
        r->fill = CLUSTER_ROOM_PENDING;
        return;
    }
    if (res == CLUSTER_BACKFILL_GAP && fill_gap(r, epoch, top)) {
        return;
    }
    if (res == CLUSTER_BACKFILL_DONE) {
        fill_done(r, epoch, top);
    }
    bool again = r->again;
    r->again = false;
    drain(r);
    if (again && r->fill == CLUSTER_ROOM_IDLE) {
        request(r);
    }
}

uint64_t cluster_room_epoch(const struct cluster_room *r)
{
    return r->epoch;
}

uint64_t cluster_room_last(const struct cluster_room *r)
{
    return r->based ? r->last : 0;
}

bool cluster_room_syncing(const struct cluster_room *r)
{
    return r->fill != CLUSTER_ROOM_IDLE;
}
