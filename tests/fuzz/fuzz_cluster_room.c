/*
 * libFuzzer target for src/cluster_room.c.
 *
 * The input is a script of events around one room on one node: messages
 * published to a simulated Redis (its epoch, top and oldest retained id, a
 * history limit that trims), live messages reaching the node in order,
 * backfill requests read at one moment and answered at a later one (paged,
 * with the verdicts cluster_proto's reader gives), errors, connections lost
 * and regained, Redis restarting empty, the room untracked and tracked
 * again. The node's actions drive a model of its local ring, and each is
 * checked as it happens:
 *   - a DELIVER is the ring's last id + 1, of its epoch, with the bytes
 *     that were published under that id;
 *   - a START comes only to a ring that holds nothing, a RESET only when
 *     what the ring holds can no longer be continued from Redis; the base
 *     of either skips only messages that are gone;
 *   - a BACKFILL goes out only once subscribed, and never while another is
 *     in flight.
 * At the end the link is brought up and every reply and live message
 * handed over until the room is quiet, which must happen within a bound:
 * the ring then holds the room up to Redis's top, in its current epoch.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_room.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define QMAX     64  /* live messages queued for the node; past it Redis drops it */
#define EPOCHS   512 /* epochs one run can start */
#define DATA_MAX 64

struct sim {
    /* Redis */
    uint64_t epoch, top, lo; /* epoch 0: no data; lo > top: stream empty */
    uint64_t history;
    uint64_t tops[EPOCHS], epochs[EPOCHS]; /* every epoch started, its top */
    size_t nepochs;
    uint64_t hi_next, lo_next; /* the next epochs from a fast and a slow clock */
    /* the node's connection and subscription */
    bool link, tracked, sub;
    struct {
        uint64_t epoch, id;
    } q[QMAX], late[QMAX]; /* late: an old life's, still on their way */
    size_t qn, nlate;
    /* the backfill in flight, and its reply once read */
    bool req, read;
    uint32_t seq, old_seq;
    uint64_t ask_epoch, ask_after;
    enum cluster_backfill_result res;
    uint64_t r_epoch, r_top, r_from, r_to; /* messages r_from..r_to, r_from 0: none */
    uint64_t count;                        /* page size */
    bool refuse;
    /* the local ring as the actions built it */
    bool held; /* it has a base */
    uint64_t ring_epoch, ring_last;
    uint64_t left[EPOCHS]; /* the epochs the ring has left since it was started */
    size_t nleft;
    struct cluster_room room;
    unsigned char buf[1024];
};

/* The bytes published as (epoch, id): checkable wherever they show up. */
static size_t content(uint64_t epoch, uint64_t id, char *out, const char **event, size_t *event_len,
                      const char **client, size_t *client_len)
{
    size_t n = (size_t)(id % DATA_MAX);
    for (size_t i = 0; i < n; i++) {
        out[i] = (char)((epoch + id * 7 + i) & 0xff);
    }
    *event = id % 3 == 0 ? "tick" : "";
    *event_len = strlen(*event);
    *client = id % 5 == 0 ? "ana" : "";
    *client_len = strlen(*client);
    return n;
}

struct msgbuf {
    char data[DATA_MAX];
    struct cluster_msg m;
};

static const struct cluster_msg *make(struct msgbuf *b, uint64_t epoch, uint64_t id)
{
    b->m.epoch = epoch;
    b->m.id = id;
    b->m.data = b->data;
    b->m.data_len =
        content(epoch, id, b->data, &b->m.event, &b->m.event_len, &b->m.client, &b->m.client_len);
    return &b->m;
}

static uint64_t epoch_top(const struct sim *s, uint64_t epoch)
{
    for (size_t i = 0; i < s->nepochs; i++) {
        if (s->epochs[i] == epoch) {
            return s->tops[i];
        }
    }
    return 0;
}

/* Message (epoch, id) can no longer be read from Redis. */
static bool gone(const struct sim *s, uint64_t epoch, uint64_t id)
{
    return epoch != s->epoch || id < s->lo;
}

static void check_deliver(struct sim *s, const struct cluster_msg *m)
{
    struct msgbuf want;
    CHECK(s->tracked && s->held);
    CHECK(m->epoch == s->ring_epoch && m->id == s->ring_last + 1);
    CHECK(m->id >= m->epoch && m->id <= epoch_top(s, m->epoch));
    make(&want, m->epoch, m->id);
    CHECK(m->data_len == want.m.data_len && memcmp(m->data, want.data, m->data_len) == 0);
    CHECK(m->event_len == want.m.event_len && memcmp(m->event, want.m.event, m->event_len) == 0);
    CHECK(m->client_len == want.m.client_len &&
          memcmp(m->client, want.m.client, m->client_len) == 0);
    s->ring_last = m->id;
}

static void check_base(struct sim *s, const struct cluster_room_action *a)
{
    CHECK(s->tracked);
    if (a->kind == CLUSTER_ROOM_START) {
        CHECK(!s->held);
    } else {
        /* What the ring holds cannot be continued. */
        CHECK(s->held && gone(s, s->ring_epoch, s->ring_last + 1));
    }
    if (a->epoch == 0) {
        CHECK(a->kind == CLUSTER_ROOM_RESET && a->base == 0);
        CHECK(s->nleft < EPOCHS);
        s->left[s->nleft++] = s->ring_epoch;
        s->held = false;
        s->ring_epoch = s->ring_last = 0;
        return;
    }
    /* Never back to a life the ring has left. */
    if (s->held && a->epoch != s->ring_epoch) {
        CHECK(s->nleft < EPOCHS);
        s->left[s->nleft++] = s->ring_epoch;
    }
    for (size_t i = 0; i < s->nleft; i++) {
        CHECK(a->epoch != s->left[i]);
    }
    /* Only messages that are gone are skipped. */
    CHECK(a->base + 1 >= a->epoch && a->base <= epoch_top(s, a->epoch));
    CHECK(a->base + 1 == a->epoch || gone(s, a->epoch, a->base));
    s->held = true;
    s->ring_epoch = a->epoch;
    s->ring_last = a->base;
}

static int on_action(const struct cluster_room_action *a, void *arg)
{
    struct sim *s = arg;
    switch (a->kind) {
    case CLUSTER_ROOM_DELIVER:
        check_deliver(s, a->msg);
        return 0;
    case CLUSTER_ROOM_START:
    case CLUSTER_ROOM_RESET:
        check_base(s, a);
        return 0;
    case CLUSTER_ROOM_BACKFILL:
        CHECK(s->tracked && s->sub && s->link && !s->req);
        if (s->refuse) {
            return -1;
        }
        s->req = true;
        s->read = false;
        s->seq = a->seq;
        s->ask_epoch = a->epoch;
        s->ask_after = a->after;
        return 0;
    }
    CHECK(!"unknown action");
    return -1;
}

/* ------------------------------------------------------------ Redis */

static void new_epoch(struct sim *s, bool slow)
{
    CHECK(s->nepochs < EPOCHS);
    uint64_t e = slow ? s->lo_next : s->hi_next;
    if (slow) {
        s->lo_next -= 1000;
    } else {
        s->hi_next += 1000;
    }
    s->epoch = s->top = s->lo = e;
    s->epochs[s->nepochs] = e;
    s->tops[s->nepochs++] = e;
}

static void link_down(struct sim *s)
{
    s->link = s->sub = false;
    s->qn = 0;
    if (s->req) {
        s->old_seq = s->seq;
    }
    s->req = s->read = false;
    cluster_room_link_down(&s->room);
}

static void publish(struct sim *s, bool slow)
{
    if (s->epoch == 0) {
        new_epoch(s, slow);
    } else {
        s->top++;
        s->tops[s->nepochs - 1] = s->top;
    }
    if (s->top - s->lo + 1 > s->history) {
        s->lo = s->top - s->history + 1;
    }
    if (!s->sub) {
        return;
    }
    if (s->qn == QMAX) {
        link_down(s); /* Redis drops a subscriber that does not keep up */
        return;
    }
    s->q[s->qn].epoch = s->epoch;
    s->q[s->qn++].id = s->top;
}

/* The read script's verdict, as cluster_proto_parse_backfill judges it. */
static void backfill_read(struct sim *s)
{
    uint64_t after = s->ask_after, from;
    s->read = true;
    s->r_epoch = s->epoch;
    s->r_top = s->top;
    s->r_from = 0;
    s->res = CLUSTER_BACKFILL_GAP;
    if (s->epoch == 0) {
        s->res = after == 0 ? CLUSTER_BACKFILL_DONE : CLUSTER_BACKFILL_GAP;
        return;
    }
    if (s->ask_epoch != 0 && s->ask_epoch != s->epoch) {
        return;
    }
    if (after == 0) {
        from = s->lo;
    } else if (after < s->epoch || after > s->top) {
        return;
    } else if (after == s->top) {
        s->res = CLUSTER_BACKFILL_DONE;
        return;
    } else if (s->lo > after + 1) {
        return;
    } else {
        from = after + 1;
    }
    if (from > s->top) {
        s->res = CLUSTER_BACKFILL_DONE;
        return;
    }
    s->r_from = from;
    s->r_to = s->top - from + 1 > s->count ? from + s->count - 1 : s->top;
    s->res = s->r_to == s->top ? CLUSTER_BACKFILL_DONE : CLUSTER_BACKFILL_MORE;
}

static void backfill_reply(struct sim *s)
{
    uint32_t seq = s->seq;
    s->req = s->read = false; /* the end may ask for the next one */
    for (uint64_t id = s->r_from; s->r_from != 0 && id <= s->r_to; id++) {
        struct msgbuf b;
        cluster_room_backfill_msg(&s->room, seq, make(&b, s->r_epoch, id));
    }
    cluster_room_backfill_end(&s->room, seq, s->res, s->r_epoch, s->r_top);
}

static void deliver_live(struct sim *s, size_t n)
{
    size_t i = 0;
    for (; i < n && i < s->qn; i++) {
        struct msgbuf b;
        enum cluster_room_verdict v =
            cluster_room_message(&s->room, make(&b, s->q[i].epoch, s->q[i].id));
        CHECK((v == CLUSTER_ROOM_UNTRACKED) == !s->tracked);
    }
    memmove(s->q, s->q + i, (s->qn - i) * sizeof s->q[0]);
    s->qn -= i;
}

/* Messages of the life Redis lost, arriving out of every order: they may
 * be delivered while the room has not yet seen the new life, never after. */
static void deliver_late(struct sim *s)
{
    for (size_t i = 0; i < s->nlate; i++) {
        struct msgbuf b;
        cluster_room_message(&s->room, make(&b, s->late[i].epoch, s->late[i].id));
    }
    s->nlate = 0;
}

static void track(struct sim *s, bool resume)
{
    if (s->tracked) {
        return;
    }
    if (!resume || !s->held || s->ring_last < s->ring_epoch) {
        s->held = false;
        s->ring_epoch = s->ring_last = 0;
        s->nleft = 0;
    }
    s->tracked = true;
    s->sub = false;
    cluster_room_track(&s->room, s->ring_epoch, s->ring_last);
}

static void untrack(struct sim *s)
{
    if (s->req) {
        s->old_seq = s->seq;
    }
    s->tracked = s->sub = s->req = s->read = false;
    s->nlate = 0;
    cluster_room_untrack(&s->room);
}

/* ------------------------------------------------------------ the script */

static void step(struct sim *s, uint8_t op, uint8_t arg)
{
    switch (op % 16) {
    case 0:
    case 1:
        for (unsigned i = 0; i <= arg % 4u; i++) {
            publish(s, arg & 0x80);
        }
        break;
    case 2:
    case 3:
        if (op & 0x40) {
            deliver_late(s);
        } else {
            deliver_live(s, 1 + arg % 8u);
        }
        break;
    case 4:
        if (s->req && !s->read) {
            backfill_read(s);
        }
        break;
    case 5:
        if (s->read) {
            backfill_reply(s);
        }
        break;
    case 6:
        if (s->req) {
            s->req = s->read = false;
            cluster_room_backfill_end(&s->room, s->seq, CLUSTER_BACKFILL_ERROR, 0, 0);
        }
        break;
    case 7:
        if (s->link) {
            link_down(s);
        }
        break;
    case 8:
        s->link = true;
        break;
    case 9:
        if (s->link && s->tracked && !s->sub) {
            s->sub = true;
            cluster_room_subscribed(&s->room);
        }
        break;
    case 10: /* Redis restarts with nothing */
        s->epoch = s->top = s->lo = 0;
        memcpy(s->late, s->q, s->qn * sizeof s->q[0]);
        s->nlate = s->qn;
        if (s->link) {
            link_down(s);
        }
        break;
    case 11: /* trimmed (MAXLEN ~, or an expiry of the stream alone) */
        if (s->epoch != 0 && s->lo <= s->top) {
            s->lo += 1 + arg % (s->top - s->lo + 1);
        }
        break;
    case 12:
        if (s->tracked) {
            untrack(s);
        } else {
            track(s, arg & 1);
        }
        break;
    case 13: /* a reply to a request the room has forgotten */
        cluster_room_backfill_end(&s->room, s->old_seq, CLUSTER_BACKFILL_ERROR, 0, 0);
        cluster_room_backfill_end(&s->room, s->old_seq, CLUSTER_BACKFILL_DONE, s->epoch, s->top);
        break;
    case 14:
        cluster_room_retry(&s->room);
        break;
    case 15:
        s->count = 1 + arg % 8u;
        s->refuse = arg & 0x80;
        break;
    }
}

/* Everything handed over until the room is quiet; it must get there. */
static void settle(struct sim *s)
{
    s->refuse = false;
    track(s, true);
    s->link = true;
    if (!s->sub) {
        s->sub = true;
        cluster_room_subscribed(&s->room);
    }
    int rounds = 0;
    for (; rounds < 10000; rounds++) {
        if (s->qn) {
            deliver_live(s, s->qn);
        } else if (s->req) {
            backfill_read(s);
            backfill_reply(s);
        } else if (cluster_room_syncing(&s->room)) {
            cluster_room_retry(&s->room);
        } else {
            break;
        }
    }
    CHECK(rounds < 10000);
    if (s->epoch != 0) {
        CHECK(s->held && s->ring_epoch == s->epoch && s->ring_last == s->top);
        CHECK(cluster_room_epoch(&s->room) == s->epoch && cluster_room_last(&s->room) == s->top);
    } else {
        CHECK(!s->held);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sim s;
    static const size_t caps[4] = {0, 64, 200, sizeof s.buf};
    if (size < 1) {
        return 0;
    }
    memset(&s, 0, sizeof s);
    s.history = 1 + data[0] % 16u;
    s.count = 1 + (data[0] >> 4) % 8u;
    s.hi_next = 1000000;
    s.lo_next = 999000 - 1000;
    cluster_room_init(&s.room, s.buf, caps[(data[0] >> 6) & 3], on_action, &s);
    s.link = true;
    track(&s, false);
    for (size_t i = 1; i + 1 < size && s.nepochs < EPOCHS; i += 2) {
        step(&s, data[i], data[i + 1]);
    }
    settle(&s);
    return 0;
}
