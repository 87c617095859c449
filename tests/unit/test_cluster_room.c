/*
 * Unit tests for src/cluster_room.c, the per-room sync state machine of a
 * cluster node: each test drives one room through a story (a first sync,
 * a skip, a reconnect, a lost Redis, ...) and checks the exact actions it
 * asks for, in order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cluster_room.h"

#define E1 1000 /* an epoch: its first id */
#define E2 5000 /* a later one */

/* An action as recorded: the message's bytes copied, since its views die
 * with the call. */
struct act {
    enum cluster_room_kind kind;
    uint64_t epoch, after, base, id;
    uint32_t seq;
    char data[32];
    char event[16];
    char client[16];
};

struct rec {
    struct act acts[64];
    size_t n, read;
    int refuse; /* what BACKFILL answers: 0 sent, -1 refused */
};

static void copy_str(char *out, size_t cap, const char *s, size_t len)
{
    assert_true(len < cap);
    if (len) {
        memcpy(out, s, len);
    }
    out[len] = '\0';
}

static int record(const struct cluster_room_action *a, void *arg)
{
    struct rec *rec = arg;
    assert_true(rec->n < 64);
    struct act *x = &rec->acts[rec->n++];
    *x = (struct act){
        .kind = a->kind, .epoch = a->epoch, .after = a->after, .base = a->base, .seq = a->seq};
    if (a->kind == CLUSTER_ROOM_DELIVER) {
        x->epoch = a->msg->epoch;
        x->id = a->msg->id;
        copy_str(x->data, sizeof x->data, a->msg->data, a->msg->data_len);
        copy_str(x->event, sizeof x->event, a->msg->event, a->msg->event_len);
        copy_str(x->client, sizeof x->client, a->msg->client, a->msg->client_len);
    }
    return a->kind == CLUSTER_ROOM_BACKFILL ? rec->refuse : 0;
}

/* A message whose data is "m<id>", in a buffer of the caller's. */
struct msgbuf {
    char data[32];
    struct cluster_msg m;
};

static const struct cluster_msg *msg(struct msgbuf *b, uint64_t epoch, uint64_t id)
{
    int n = snprintf(b->data, sizeof b->data, "m%llu", (unsigned long long)id);
    b->m = (struct cluster_msg){.epoch = epoch, .id = id, .data = b->data, .data_len = (size_t)n};
    return &b->m;
}

static enum cluster_room_verdict live(struct cluster_room *r, uint64_t epoch, uint64_t id)
{
    struct msgbuf b;
    return cluster_room_message(r, msg(&b, epoch, id));
}

/* The reply to backfill seq: ids from..to of epoch, then res. */
static void reply(struct cluster_room *r, uint32_t seq, uint64_t epoch, uint64_t from, uint64_t to,
                  enum cluster_backfill_result res, uint64_t top)
{
    for (uint64_t id = from; from != 0 && id <= to; id++) {
        struct msgbuf b;
        cluster_room_backfill_msg(r, seq, msg(&b, epoch, id));
    }
    cluster_room_backfill_end(r, seq, res, epoch, top);
}

static const struct act *next(struct rec *rec)
{
    assert_true(rec->read < rec->n);
    return &rec->acts[rec->read++];
}

static void see_nothing(struct rec *rec)
{
    assert_int_equal(rec->read, rec->n);
}

static void see_deliver(struct rec *rec, uint64_t epoch, uint64_t id)
{
    const struct act *a = next(rec);
    char want[32];
    snprintf(want, sizeof want, "m%llu", (unsigned long long)id);
    assert_int_equal(a->kind, CLUSTER_ROOM_DELIVER);
    assert_int_equal(a->epoch, epoch);
    assert_int_equal(a->id, id);
    assert_string_equal(a->data, want);
}

static void see_delivers(struct rec *rec, uint64_t epoch, uint64_t from, uint64_t to)
{
    for (uint64_t id = from; id <= to; id++) {
        see_deliver(rec, epoch, id);
    }
}

/* Returns the request's seq. */
static uint32_t see_backfill(struct rec *rec, uint64_t epoch, uint64_t after)
{
    const struct act *a = next(rec);
    assert_int_equal(a->kind, CLUSTER_ROOM_BACKFILL);
    assert_int_equal(a->epoch, epoch);
    assert_int_equal(a->after, after);
    return a->seq;
}

static void see_base(struct rec *rec, enum cluster_room_kind kind, uint64_t epoch, uint64_t base)
{
    const struct act *a = next(rec);
    assert_int_equal(a->kind, kind);
    assert_int_equal(a->epoch, epoch);
    assert_int_equal(a->base, base);
}

struct fixture {
    struct cluster_room room;
    struct rec rec;
    unsigned char buf[4096];
};

static struct fixture fx;

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof fx);
    cluster_room_init(&fx.room, fx.buf, sizeof fx.buf, record, &fx.rec);
    return 0;
}

/* Tracked and synced at (epoch, top): the ring holds epoch..top. */
static void synced_at(uint64_t epoch, uint64_t top)
{
    cluster_room_track(&fx.room, 0, 0);
    cluster_room_subscribed(&fx.room);
    uint32_t seq = see_backfill(&fx.rec, 0, 0);
    reply(&fx.room, seq, epoch, epoch, top, CLUSTER_BACKFILL_DONE, top);
    see_base(&fx.rec, CLUSTER_ROOM_START, epoch, epoch - 1);
    see_delivers(&fx.rec, epoch, epoch, top);
    see_nothing(&fx.rec);
}

static void synced(uint64_t top)
{
    synced_at(E1, top);
}

/* Nothing is read before the subscription is confirmed; then the history,
 * from the oldest retained, with START at the base before it. */
static void test_first_sync(void **state)
{
    (void)state;
    cluster_room_track(&fx.room, 0, 0);
    see_nothing(&fx.rec);
    assert_int_equal(live(&fx.room, E1, E1 + 7), CLUSTER_ROOM_HELD); /* cannot: not yet */
    see_nothing(&fx.rec);
    cluster_room_link_down(&fx.room);
    cluster_room_subscribed(&fx.room);
    uint32_t seq = see_backfill(&fx.rec, 0, 0);
    /* Trimmed below E1 + 3: the ring starts there, nothing was held. */
    reply(&fx.room, seq, E1, E1 + 3, E1 + 5, CLUSTER_BACKFILL_DONE, E1 + 5);
    see_base(&fx.rec, CLUSTER_ROOM_START, E1, E1 + 2);
    see_delivers(&fx.rec, E1, E1 + 3, E1 + 5);
    see_nothing(&fx.rec);
    assert_int_equal(cluster_room_epoch(&fx.room), E1);
    assert_int_equal(cluster_room_last(&fx.room), E1 + 5);
    assert_false(cluster_room_syncing(&fx.room));
}

/* A room Redis has nothing of: no base until the first message; its epoch
 * is confirmed by a read before it starts the ring. */
static void test_empty_room(void **state)
{
    (void)state;
    cluster_room_track(&fx.room, 0, 0);
    cluster_room_subscribed(&fx.room);
    uint32_t seq = see_backfill(&fx.rec, 0, 0);
    reply(&fx.room, seq, 0, 0, 0, CLUSTER_BACKFILL_DONE, 0);
    see_nothing(&fx.rec);
    assert_int_equal(live(&fx.room, E1, E1), CLUSTER_ROOM_HELD);
    seq = see_backfill(&fx.rec, 0, 0);
    reply(&fx.room, seq, E1, E1, E1, CLUSTER_BACKFILL_DONE, E1);
    see_base(&fx.rec, CLUSTER_ROOM_START, E1, E1 - 1);
    see_deliver(&fx.rec, E1, E1);
    see_nothing(&fx.rec);
    assert_int_equal(live(&fx.room, E1, E1 + 1), CLUSTER_ROOM_DELIVERED);
    see_deliver(&fx.rec, E1, E1 + 1);
    see_nothing(&fx.rec);
}

/* A room whose stream is empty but whose hash is there stands at top. */
static void test_empty_stream(void **state)
{
    (void)state;
    cluster_room_track(&fx.room, 0, 0);
    cluster_room_subscribed(&fx.room);
    uint32_t seq = see_backfill(&fx.rec, 0, 0);
    reply(&fx.room, seq, E1, 0, 0, CLUSTER_BACKFILL_DONE, E1 + 9);
    see_base(&fx.rec, CLUSTER_ROOM_START, E1, E1 + 9);
    assert_int_equal(live(&fx.room, E1, E1 + 10), CLUSTER_ROOM_DELIVERED);
    see_deliver(&fx.rec, E1, E1 + 10);
    see_nothing(&fx.rec);
}

/* In order: delivered; again, or older: nothing. */
static void test_live_in_order_and_old(void **state)
{
    (void)state;
    synced(E1 + 2);
    assert_int_equal(live(&fx.room, E1, E1 + 3), CLUSTER_ROOM_DELIVERED);
    assert_int_equal(live(&fx.room, E1, E1 + 3), CLUSTER_ROOM_OLD);
    assert_int_equal(live(&fx.room, E1, E1), CLUSTER_ROOM_OLD);
    assert_int_equal(live(&fx.room, E1, E1 + 4), CLUSTER_ROOM_DELIVERED);
    see_delivers(&fx.rec, E1, E1 + 3, E1 + 4);
    see_nothing(&fx.rec);
}

/* A skip asks for one backfill from last; live messages meanwhile are held
 * (no second backfill), then merged after the backfill's: each id once. */
static void test_skip_backfill_merge(void **state)
{
    (void)state;
    synced(E1 + 2);
    assert_int_equal(live(&fx.room, E1, E1 + 5), CLUSTER_ROOM_HELD);
    uint32_t seq = see_backfill(&fx.rec, E1, E1 + 2);
    assert_int_equal(live(&fx.room, E1, E1 + 6), CLUSTER_ROOM_HELD);
    assert_int_equal(live(&fx.room, E1, E1 + 9), CLUSTER_ROOM_HELD); /* a skip again */
    assert_int_equal(live(&fx.room, E1, E1 + 2), CLUSTER_ROOM_OLD);
    see_nothing(&fx.rec);
    assert_true(cluster_room_syncing(&fx.room));
    /* Read when top was E1 + 7: 3..7; then the held 5, 6 are old, 9 skips. */
    reply(&fx.room, seq, E1, E1 + 3, E1 + 7, CLUSTER_BACKFILL_DONE, E1 + 7);
    see_delivers(&fx.rec, E1, E1 + 3, E1 + 7);
    seq = see_backfill(&fx.rec, E1, E1 + 7);
    see_nothing(&fx.rec);
    reply(&fx.room, seq, E1, E1 + 8, E1 + 9, CLUSTER_BACKFILL_DONE, E1 + 9);
    see_delivers(&fx.rec, E1, E1 + 8, E1 + 9);
    see_nothing(&fx.rec);
    assert_false(cluster_room_syncing(&fx.room));
}

/* Held messages are copies: the caller's bytes may change after the call. */
static void test_held_messages_are_copied(void **state)
{
    (void)state;
    synced(E1);
    assert_int_equal(live(&fx.room, E1, E1 + 2), CLUSTER_ROOM_HELD);
    uint32_t seq = see_backfill(&fx.rec, E1, E1);
    char ev[] = "chat", cl[] = "ana", data[] = "hello";
    struct cluster_msg m = {E1, E1 + 3, ev, 4, cl, 3, data, 5};
    assert_int_equal(cluster_room_message(&fx.room, &m), CLUSTER_ROOM_HELD);
    memset(ev, 'x', 4);
    memset(cl, 'x', 3);
    memset(data, 'x', 5);
    reply(&fx.room, seq, E1, E1 + 1, E1 + 2, CLUSTER_BACKFILL_DONE, E1 + 2);
    see_delivers(&fx.rec, E1, E1 + 1, E1 + 2);
    const struct act *a = next(&fx.rec);
    assert_int_equal(a->id, E1 + 3);
    assert_string_equal(a->event, "chat");
    assert_string_equal(a->client, "ana");
    assert_string_equal(a->data, "hello");
    see_nothing(&fx.rec);
}

/* A full buffer is dropped; the room reads again from its last id once the
 * backfill in flight has answered. */
static void test_buffer_overflow(void **state)
{
    (void)state;
    unsigned char small[64]; /* holds one message, not two */
    cluster_room_init(&fx.room, small, sizeof small, record, &fx.rec);
    synced(E1);
    assert_int_equal(live(&fx.room, E1, E1 + 2), CLUSTER_ROOM_HELD);
    uint32_t seq = see_backfill(&fx.rec, E1, E1);
    assert_int_equal(live(&fx.room, E1, E1 + 3), CLUSTER_ROOM_DROPPED);
    assert_int_equal(live(&fx.room, E1, E1 + 4), CLUSTER_ROOM_HELD);
    reply(&fx.room, seq, E1, E1 + 1, E1 + 2, CLUSTER_BACKFILL_DONE, E1 + 2);
    see_delivers(&fx.rec, E1, E1 + 1, E1 + 2);
    /* The held E1 + 4 skips the dropped E1 + 3: one backfill, not two. */
    seq = see_backfill(&fx.rec, E1, E1 + 2);
    see_nothing(&fx.rec);
    reply(&fx.room, seq, E1, E1 + 3, E1 + 4, CLUSTER_BACKFILL_DONE, E1 + 4);
    see_delivers(&fx.rec, E1, E1 + 3, E1 + 4);
    see_nothing(&fx.rec);
}

/* Overflow with nothing held afterwards still reads again. */
static void test_overflow_reads_again(void **state)
{
    (void)state;
    cluster_room_init(&fx.room, NULL, 0, record, &fx.rec);
    synced(E1);
    assert_int_equal(live(&fx.room, E1, E1 + 2), CLUSTER_ROOM_DROPPED);
    uint32_t seq = see_backfill(&fx.rec, E1, E1);
    assert_int_equal(live(&fx.room, E1, E1 + 3), CLUSTER_ROOM_DROPPED);
    reply(&fx.room, seq, E1, E1 + 1, E1 + 2, CLUSTER_BACKFILL_DONE, E1 + 2);
    see_delivers(&fx.rec, E1, E1 + 1, E1 + 2);
    seq = see_backfill(&fx.rec, E1, E1 + 2);
    reply(&fx.room, seq, E1, E1 + 3, E1 + 3, CLUSTER_BACKFILL_DONE, E1 + 3);
    see_deliver(&fx.rec, E1, E1 + 3);
    see_nothing(&fx.rec);
}

/* A new epoch on a live message: the read it starts reports the gap, the
 * read from the oldest the new life: RESET to just before its first id.
 * The old epoch's messages still on their way are then stale. */
static void test_epoch_change_live(void **state)
{
    (void)state;
    synced(E1 + 4);
    assert_int_equal(live(&fx.room, E2, E2), CLUSTER_ROOM_HELD);
    uint32_t seq = see_backfill(&fx.rec, E1, E1 + 4);
    reply(&fx.room, seq, E2, 0, 0, CLUSTER_BACKFILL_GAP, E2);
    seq = see_backfill(&fx.rec, E2, 0);
    assert_int_equal(live(&fx.room, E1, E1 + 5), CLUSTER_ROOM_STALE);
    see_nothing(&fx.rec);
    reply(&fx.room, seq, E2, E2, E2, CLUSTER_BACKFILL_DONE, E2);
    see_base(&fx.rec, CLUSTER_ROOM_RESET, E2, E2 - 1);
    see_deliver(&fx.rec, E2, E2);
    see_nothing(&fx.rec);
    assert_int_equal(live(&fx.room, E1, E1 + 5), CLUSTER_ROOM_STALE);
    assert_int_equal(live(&fx.room, E2, E2 + 1), CLUSTER_ROOM_DELIVERED);
    see_deliver(&fx.rec, E2, E2 + 1);
    see_nothing(&fx.rec);
}

/* A new epoch seen past its first id: read it from its oldest; the RESET
 * comes with the first message, at the base before it. Ids may go down. */
static void test_epoch_change_past_first(void **state)
{
    (void)state;
    synced(E1 + 4);
    const uint64_t low = 900; /* a node with a slower clock started it */
    assert_int_equal(live(&fx.room, low, low + 2), CLUSTER_ROOM_HELD);
    uint32_t seq = see_backfill(&fx.rec, E1, E1 + 4);
    reply(&fx.room, seq, low, 0, 0, CLUSTER_BACKFILL_GAP, low + 1);
    seq = see_backfill(&fx.rec, low, 0);
    assert_int_equal(live(&fx.room, E1, E1 + 5), CLUSTER_ROOM_STALE);
    see_nothing(&fx.rec);
    reply(&fx.room, seq, low, low, low + 1, CLUSTER_BACKFILL_DONE, low + 1);
    see_base(&fx.rec, CLUSTER_ROOM_RESET, low, low - 1);
    see_delivers(&fx.rec, low, low, low + 2); /* + 2 from the held */
    see_nothing(&fx.rec);
}

/* A gap (trimmed past last): read from the oldest retained, RESET at the
 * base before it. */
static void test_gap_trimmed(void **state)
{
    (void)state;
    synced(E1 + 2);
    assert_int_equal(live(&fx.room, E1, E1 + 60), CLUSTER_ROOM_HELD);
    uint32_t seq = see_backfill(&fx.rec, E1, E1 + 2);
    reply(&fx.room, seq, E1, 0, 0, CLUSTER_BACKFILL_GAP, E1 + 60);
    seq = see_backfill(&fx.rec, E1, 0);
    see_nothing(&fx.rec);
    reply(&fx.room, seq, E1, E1 + 50, E1 + 60, CLUSTER_BACKFILL_DONE, E1 + 60);
    see_base(&fx.rec, CLUSTER_ROOM_RESET, E1, E1 + 49);
    see_delivers(&fx.rec, E1, E1 + 50, E1 + 60);
    see_nothing(&fx.rec); /* the held E1 + 60 was old by then */
}

/* Redis restarted empty: the reconnect's backfill reports a gap, the read
 * from the oldest finds nothing: RESET to (0, 0); the next epoch STARTs. */
static void test_redis_lost_everything(void **state)
{
    (void)state;
    synced(E1 + 2);
    cluster_room_link_down(&fx.room);
    assert_int_equal(live(&fx.room, E1, E1 + 3), CLUSTER_ROOM_DELIVERED); /* still in a socket */
    see_deliver(&fx.rec, E1, E1 + 3);
    cluster_room_subscribed(&fx.room);
    uint32_t seq = see_backfill(&fx.rec, E1, E1 + 3);
    reply(&fx.room, seq, 0, 0, 0, CLUSTER_BACKFILL_GAP, 0);
    seq = see_backfill(&fx.rec, 0, 0);
    reply(&fx.room, seq, 0, 0, 0, CLUSTER_BACKFILL_DONE, 0);
    see_base(&fx.rec, CLUSTER_ROOM_RESET, 0, 0);
    see_nothing(&fx.rec);
    assert_int_equal(cluster_room_epoch(&fx.room), 0);
    assert_int_equal(live(&fx.room, E1, E1 + 4), CLUSTER_ROOM_STALE);
    assert_int_equal(live(&fx.room, E2, E2), CLUSTER_ROOM_HELD);
    seq = see_backfill(&fx.rec, 0, 0);
    reply(&fx.room, seq, E2, E2, E2, CLUSTER_BACKFILL_DONE, E2);
    see_base(&fx.rec, CLUSTER_ROOM_START, E2, E2 - 1);
    see_deliver(&fx.rec, E2, E2);
    see_nothing(&fx.rec);
}

/* A late message of a life Redis has lost, handled after a read that saw
 * the next one (it was sent before that read; it could as well be the
 * first of a life begun after it): one more read says which life is
 * current, and the late message goes nowhere. */
static void test_late_message_of_lost_life(void **state)
{
    (void)state;
    synced_at(E2, E2 + 1);
    assert_int_equal(live(&fx.room, E1, E1), CLUSTER_ROOM_HELD);
    uint32_t seq = see_backfill(&fx.rec, E2, E2 + 1);
    reply(&fx.room, seq, E2, 0, 0, CLUSTER_BACKFILL_DONE, E2 + 1);
    seq = see_backfill(&fx.rec, E2, E2 + 1);
    reply(&fx.room, seq, E2, 0, 0, CLUSTER_BACKFILL_DONE, E2 + 1);
    see_nothing(&fx.rec);
    assert_false(cluster_room_syncing(&fx.room));
    assert_int_equal(cluster_room_epoch(&fx.room), E2);
    assert_int_equal(live(&fx.room, E2, E2 + 2), CLUSTER_ROOM_DELIVERED);
    see_deliver(&fx.rec, E2, E2 + 2);
    see_nothing(&fx.rec);
}

/* A reply to a request made before the connection went is ignored; the
 * resubscription reads from the last id. */
static void test_reconnect_forgets_flight(void **state)
{
    (void)state;
    synced(E1 + 2);
    assert_int_equal(live(&fx.room, E1, E1 + 5), CLUSTER_ROOM_HELD);
    uint32_t old = see_backfill(&fx.rec, E1, E1 + 2);
    cluster_room_link_down(&fx.room);
    reply(&fx.room, old, E1, E1 + 3, E1 + 5, CLUSTER_BACKFILL_DONE, E1 + 5);
    cluster_room_backfill_end(&fx.room, old, CLUSTER_BACKFILL_ERROR, 0, 0);
    see_nothing(&fx.rec);
    assert_false(cluster_room_syncing(&fx.room));
    cluster_room_subscribed(&fx.room);
    uint32_t seq = see_backfill(&fx.rec, E1, E1 + 2);
    assert_int_not_equal(seq, old);
    reply(&fx.room, seq, E1, E1 + 3, E1 + 6, CLUSTER_BACKFILL_DONE, E1 + 6);
    see_delivers(&fx.rec, E1, E1 + 3, E1 + 6);
    see_nothing(&fx.rec);
}

/* Subscribed again while a backfill is in flight (the read may predate the
 * new subscription): one more backfill after it, not two at once. */
static void test_resubscribe_in_flight(void **state)
{
    (void)state;
    cluster_room_track(&fx.room, 0, 0);
    cluster_room_subscribed(&fx.room);
    uint32_t seq = see_backfill(&fx.rec, 0, 0);
    cluster_room_subscribed(&fx.room);
    see_nothing(&fx.rec);
    reply(&fx.room, seq, E1, E1, E1 + 1, CLUSTER_BACKFILL_DONE, E1 + 1);
    see_base(&fx.rec, CLUSTER_ROOM_START, E1, E1 - 1);
    see_delivers(&fx.rec, E1, E1, E1 + 1);
    seq = see_backfill(&fx.rec, E1, E1 + 1);
    reply(&fx.room, seq, E1, E1 + 2, E1 + 2, CLUSTER_BACKFILL_DONE, E1 + 2);
    see_deliver(&fx.rec, E1, E1 + 2);
    see_nothing(&fx.rec);
}

/* A refresh reads from the last id even when the room believes it is in
 * sync (a client holds a newer id than the ring: the node may be behind);
 * during a read it asks for one more after it; before the subscription it
 * waits for it; untracked it does nothing. */
static void test_refresh_reads_now_or_after(void **state)
{
    (void)state;
    cluster_room_refresh(&fx.room);
    see_nothing(&fx.rec);
    cluster_room_track(&fx.room, 0, 0);
    cluster_room_refresh(&fx.room);
    see_nothing(&fx.rec); /* not subscribed yet */
    cluster_room_subscribed(&fx.room);
    uint32_t seq = see_backfill(&fx.rec, 0, 0);
    reply(&fx.room, seq, E1, E1, E1 + 1, CLUSTER_BACKFILL_DONE, E1 + 1);
    see_base(&fx.rec, CLUSTER_ROOM_START, E1, E1 - 1);
    see_delivers(&fx.rec, E1, E1, E1 + 1);
    see_nothing(&fx.rec);

    cluster_room_refresh(&fx.room);
    seq = see_backfill(&fx.rec, E1, E1 + 1);
    assert_true(cluster_room_syncing(&fx.room));
    cluster_room_refresh(&fx.room);
    see_nothing(&fx.rec); /* one at a time */
    reply(&fx.room, seq, E1, E1 + 2, E1 + 3, CLUSTER_BACKFILL_DONE, E1 + 3);
    see_delivers(&fx.rec, E1, E1 + 2, E1 + 3);
    seq = see_backfill(&fx.rec, E1, E1 + 3);
    reply(&fx.room, seq, E1, 0, 0, CLUSTER_BACKFILL_DONE, E1 + 3);
    see_nothing(&fx.rec);
    assert_false(cluster_room_syncing(&fx.room));
}

/* Paged: MORE asks for the next page from the last id handed out. */
static void test_pages(void **state)
{
    (void)state;
    synced(E1);
    assert_int_equal(live(&fx.room, E1, E1 + 9), CLUSTER_ROOM_HELD);
    uint32_t seq = see_backfill(&fx.rec, E1, E1);
    reply(&fx.room, seq, E1, E1 + 1, E1 + 4, CLUSTER_BACKFILL_MORE, E1 + 9);
    see_delivers(&fx.rec, E1, E1 + 1, E1 + 4);
    seq = see_backfill(&fx.rec, E1, E1 + 4);
    reply(&fx.room, seq, E1, E1 + 5, E1 + 8, CLUSTER_BACKFILL_DONE, E1 + 8);
    see_delivers(&fx.rec, E1, E1 + 5, E1 + 9);
    see_nothing(&fx.rec);
}

/* An error is not asked again at once (that could spin): a retry, a live
 * message or a subscription asks again. A refused send likewise. */
static void test_error_and_retry(void **state)
{
    (void)state;
    synced(E1);
    assert_int_equal(live(&fx.room, E1, E1 + 2), CLUSTER_ROOM_HELD);
    uint32_t seq = see_backfill(&fx.rec, E1, E1);
    cluster_room_backfill_end(&fx.room, seq, CLUSTER_BACKFILL_ERROR, 0, 0);
    see_nothing(&fx.rec);
    assert_true(cluster_room_syncing(&fx.room));
    fx.rec.refuse = -1;
    cluster_room_retry(&fx.room);
    see_backfill(&fx.rec, E1, E1); /* refused */
    fx.rec.refuse = 0;
    assert_int_equal(live(&fx.room, E1, E1 + 3), CLUSTER_ROOM_HELD);
    seq = see_backfill(&fx.rec, E1, E1);
    cluster_room_retry(&fx.room); /* in flight: nothing */
    see_nothing(&fx.rec);
    /* A MORE that brought nothing is treated like an error. */
    cluster_room_backfill_end(&fx.room, seq, CLUSTER_BACKFILL_MORE, E1, E1 + 3);
    see_nothing(&fx.rec);
    cluster_room_retry(&fx.room);
    seq = see_backfill(&fx.rec, E1, E1);
    reply(&fx.room, seq, E1, E1 + 1, E1 + 3, CLUSTER_BACKFILL_DONE, E1 + 3);
    see_delivers(&fx.rec, E1, E1 + 1, E1 + 3);
    see_nothing(&fx.rec);
    assert_false(cluster_room_syncing(&fx.room));
    cluster_room_retry(&fx.room); /* nothing needed */
    see_nothing(&fx.rec);
}

/* Untracked: messages and late replies do nothing; tracked again from
 * nothing it reads everything and STARTs; tracked again from what the ring
 * holds it reads from there, without a START. */
static void test_untrack_and_track_again(void **state)
{
    (void)state;
    synced(E1 + 2);
    assert_int_equal(live(&fx.room, E1, E1 + 5), CLUSTER_ROOM_HELD);
    uint32_t old = see_backfill(&fx.rec, E1, E1 + 2);
    cluster_room_untrack(&fx.room);
    assert_int_equal(live(&fx.room, E1, E1 + 3), CLUSTER_ROOM_UNTRACKED);
    cluster_room_subscribed(&fx.room);
    cluster_room_retry(&fx.room);
    cluster_room_link_down(&fx.room);
    reply(&fx.room, old, E1, E1 + 3, E1 + 5, CLUSTER_BACKFILL_DONE, E1 + 5);
    see_nothing(&fx.rec);
    assert_int_equal(cluster_room_epoch(&fx.room), 0);

    cluster_room_track(&fx.room, E1, E1 + 2);
    cluster_room_track(&fx.room, 0, 0); /* already tracked: no effect */
    cluster_room_subscribed(&fx.room);
    uint32_t seq = see_backfill(&fx.rec, E1, E1 + 2);
    reply(&fx.room, old, E1, E1 + 3, E1 + 5, CLUSTER_BACKFILL_DONE, E1 + 5);
    see_nothing(&fx.rec); /* the old request's reply, again */
    reply(&fx.room, seq, E1, E1 + 3, E1 + 5, CLUSTER_BACKFILL_DONE, E1 + 5);
    see_delivers(&fx.rec, E1, E1 + 3, E1 + 5);
    see_nothing(&fx.rec);

    cluster_room_untrack(&fx.room);
    cluster_room_track(&fx.room, 0, 0);
    cluster_room_subscribed(&fx.room);
    seq = see_backfill(&fx.rec, 0, 0);
    reply(&fx.room, seq, E1, E1, E1, CLUSTER_BACKFILL_MORE, E1 + 5);
    see_base(&fx.rec, CLUSTER_ROOM_START, E1, E1 - 1);
    see_deliver(&fx.rec, E1, E1);
    see_backfill(&fx.rec, E1, E1);
    see_nothing(&fx.rec);
}

/* A ring tracked again from an epoch Redis no longer has: RESET, since it
 * held something. */
static void test_track_from_lost_epoch(void **state)
{
    (void)state;
    cluster_room_track(&fx.room, E1, E1 + 2);
    cluster_room_subscribed(&fx.room);
    uint32_t seq = see_backfill(&fx.rec, E1, E1 + 2);
    reply(&fx.room, seq, E2, 0, 0, CLUSTER_BACKFILL_GAP, E2 + 1);
    seq = see_backfill(&fx.rec, E2, 0);
    reply(&fx.room, seq, E2, E2, E2 + 1, CLUSTER_BACKFILL_DONE, E2 + 1);
    see_base(&fx.rec, CLUSTER_ROOM_RESET, E2, E2 - 1);
    see_delivers(&fx.rec, E2, E2, E2 + 1);
    see_nothing(&fx.rec);
}

/* A read from the oldest that still reports a gap (entries Redis cannot
 * place): no endless rereading, the ring goes on after top. */
static void test_gap_from_oldest_ends(void **state)
{
    (void)state;
    synced(E1 + 2);
    assert_int_equal(live(&fx.room, E1, E1 + 9), CLUSTER_ROOM_HELD);
    uint32_t seq = see_backfill(&fx.rec, E1, E1 + 2);
    reply(&fx.room, seq, E1, 0, 0, CLUSTER_BACKFILL_GAP, E1 + 8);
    seq = see_backfill(&fx.rec, E1, 0);
    reply(&fx.room, seq, E1, 0, 0, CLUSTER_BACKFILL_GAP, E1 + 8);
    see_base(&fx.rec, CLUSTER_ROOM_RESET, E1, E1 + 8);
    see_deliver(&fx.rec, E1, E1 + 9); /* the held one follows on */
    see_nothing(&fx.rec);
}

/* A backfill message with a hole (a reader should never send one) is
 * reported as a RESET, not hidden. */
static void test_backfill_hole_is_reset(void **state)
{
    (void)state;
    synced(E1 + 2);
    assert_int_equal(live(&fx.room, E1, E1 + 9), CLUSTER_ROOM_HELD);
    uint32_t seq = see_backfill(&fx.rec, E1, E1 + 2);
    reply(&fx.room, seq, E1, E1 + 5, E1 + 9, CLUSTER_BACKFILL_DONE, E1 + 9);
    see_base(&fx.rec, CLUSTER_ROOM_RESET, E1, E1 + 4);
    see_delivers(&fx.rec, E1, E1 + 5, E1 + 9);
    see_nothing(&fx.rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_first_sync, setup),
        cmocka_unit_test_setup(test_empty_room, setup),
        cmocka_unit_test_setup(test_empty_stream, setup),
        cmocka_unit_test_setup(test_live_in_order_and_old, setup),
        cmocka_unit_test_setup(test_skip_backfill_merge, setup),
        cmocka_unit_test_setup(test_held_messages_are_copied, setup),
        cmocka_unit_test_setup(test_buffer_overflow, setup),
        cmocka_unit_test_setup(test_overflow_reads_again, setup),
        cmocka_unit_test_setup(test_epoch_change_live, setup),
        cmocka_unit_test_setup(test_epoch_change_past_first, setup),
        cmocka_unit_test_setup(test_gap_trimmed, setup),
        cmocka_unit_test_setup(test_redis_lost_everything, setup),
        cmocka_unit_test_setup(test_late_message_of_lost_life, setup),
        cmocka_unit_test_setup(test_reconnect_forgets_flight, setup),
        cmocka_unit_test_setup(test_resubscribe_in_flight, setup),
        cmocka_unit_test_setup(test_refresh_reads_now_or_after, setup),
        cmocka_unit_test_setup(test_pages, setup),
        cmocka_unit_test_setup(test_error_and_retry, setup),
        cmocka_unit_test_setup(test_untrack_and_track_again, setup),
        cmocka_unit_test_setup(test_track_from_lost_epoch, setup),
        cmocka_unit_test_setup(test_gap_from_oldest_ends, setup),
        cmocka_unit_test_setup(test_backfill_hole_is_reset, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
