/*
 * Unit tests for a hub shared by several event loops ("parts", see the
 * Threads paragraph of include/room.h), driven from one thread: the part
 * is switched with hub_bind_part, as each loop's thread binds its own.
 * What is checked: a publish wakes exactly the parts with subscribers in
 * the room; a part's flush writes only its own subscribers; eviction stops
 * at the lowest floor of all parts (the burst rule across loops); a room
 * is freed only when no part still has it queued; the flush targets that
 * hold a publisher's answer until every loop has written its message; and
 * what a cluster will need: ids given from outside, watching rooms with
 * subscribers, a reset that reaches every loop's subscribers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "room.h"

#define PARTS 3

struct seen {
    size_t schedule[PARTS];
    size_t ready;
    struct subscriber *last_ready;
    size_t frames; /* written by on_ready */
};

static struct seen seen;

static size_t drain(struct subscriber *s);

/* As a connection whose socket takes everything: writes what it is owed,
 * unless it is waiting (its socket is full). */
static void on_ready(struct subscriber *sub, void *arg)
{
    (void)arg;
    seen.ready++;
    seen.last_ready = sub;
    if (!sub->waiting) {
        seen.frames += drain(sub);
    }
}

static void on_schedule(void *arg, unsigned part)
{
    (void)arg;
    assert_true(part < PARTS);
    seen.schedule[part]++;
}

static struct hub *make_hub(unsigned history)
{
    memset(&seen, 0, sizeof seen);
    struct hub_limits lim = {
        .history = history, .history_bytes = 1u << 20, .max_rooms = 16, .parts = PARTS};
    struct hub *hub = hub_new(&lim, 1000, on_ready, on_schedule, NULL);
    assert_non_null(hub);
    assert_int_equal(hub_parts(hub), PARTS);
    return hub;
}

static void subscribe_live(struct hub *hub, unsigned part, const char *room, struct subscriber *s)
{
    hub_bind_part(part);
    struct room *r = hub_room(hub, room, strlen(room));
    assert_non_null(r);
    struct room_start st = room_start_live(r);
    room_subscribe(r, s, &st, NULL, 0);
}

static uint64_t publish(struct hub *hub, const char *room, const char *data)
{
    struct room *r = hub_room(hub, room, strlen(room));
    assert_non_null(r);
    struct publish_result res;
    assert_int_equal(room_publish(r, NULL, 0, data, strlen(data), NULL, 0, &res), 0);
    return res.id;
}

/* Writes everything the subscriber is owed (an endless socket). */
static size_t drain(struct subscriber *s)
{
    struct iovec iov[16];
    size_t frames = 0, n;
    while ((n = room_sub_iov(s, iov, 16, 1u << 20)) > 0) {
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++) {
            bytes += iov[i].iov_len;
        }
        frames += room_sub_advance(s, bytes);
    }
    return frames;
}

static void flush_part(struct hub *hub, unsigned part)
{
    hub_bind_part(part);
    hub_flush(hub);
}

static void test_publish_wakes_only_parts_with_subscribers(void **state)
{
    (void)state;
    struct hub *hub = make_hub(8);
    struct subscriber a = {0}, b = {0};
    subscribe_live(hub, 0, "r", &a);
    subscribe_live(hub, 2, "r", &b);
    flush_part(hub, 0); /* the new room's check */
    memset(&seen, 0, sizeof seen);

    hub_bind_part(1); /* a publisher on the loop without subscribers */
    publish(hub, "r", "m1");
    publish(hub, "r", "m2");
    assert_int_equal(seen.schedule[0], 1);
    assert_int_equal(seen.schedule[1], 0);
    assert_int_equal(seen.schedule[2], 1); /* once until that part flushes */

    flush_part(hub, 2); /* writes b only */
    assert_int_equal(seen.ready, 1);
    assert_ptr_equal(seen.last_ready, &b);
    assert_int_equal(seen.frames, 2);
    flush_part(hub, 0);
    assert_int_equal(seen.ready, 2);
    assert_ptr_equal(seen.last_ready, &a);
    assert_int_equal(seen.frames, 4);

    hub_bind_part(0);
    room_unsubscribe(&a);
    hub_bind_part(2);
    room_unsubscribe(&b);
    hub_free(hub);
}

/* A subscriber on one loop that has not been flushed yet holds the ring
 * for it, however long the burst; once its loop wrote it, the ring goes
 * back to its history. */
static void test_eviction_stops_at_every_parts_floor(void **state)
{
    (void)state;
    struct hub *hub = make_hub(2);
    struct subscriber a = {0}, b = {0};
    subscribe_live(hub, 0, "r", &a);
    subscribe_live(hub, 1, "r", &b);
    hub_bind_part(0);
    for (int i = 0; i < 10; i++) {
        publish(hub, "r", "burst");
    }
    struct room *r = hub_room_find(hub, "r", 1);
    assert_int_equal(room_frames(r), 10); /* both loops still owe all ten */

    seen.frames = 0;
    flush_part(hub, 0);
    assert_int_equal(seen.frames, 10);    /* a written */
    assert_int_equal(room_frames(r), 10); /* part 1 has not written b yet */

    flush_part(hub, 1); /* writes b, then its floor is at the head: trimmed */
    assert_int_equal(seen.frames, 20);
    assert_int_equal(room_frames(r), 2);
    assert_false(room_sub_lagged(&a));
    assert_false(room_sub_lagged(&b));

    hub_bind_part(0);
    room_unsubscribe(&a);
    hub_bind_part(1);
    room_unsubscribe(&b);
    hub_free(hub);
}

/* A waiting subscriber on another loop may fall out of the ring; that
 * loop is woken so that its flush closes it. */
static void test_waiting_subscriber_elsewhere_is_woken_when_it_lags(void **state)
{
    (void)state;
    struct hub *hub = make_hub(2);
    struct subscriber a = {0}, b = {0};
    subscribe_live(hub, 0, "r", &a);
    subscribe_live(hub, 1, "r", &b);
    hub_bind_part(1);
    room_sub_set_waiting(&b, true); /* its socket is full */
    flush_part(hub, 1);
    memset(&seen, 0, sizeof seen);
    hub_bind_part(0);
    for (int i = 0; i < 5; i++) {
        publish(hub, "r", "x");
    }
    seen.frames = 0;
    flush_part(hub, 0); /* writes a, then trims past b */
    assert_int_equal(seen.frames, 5);
    assert_true(room_sub_lagged(&b));
    assert_false(room_sub_was_reset(&b)); /* fell behind: not a reset */
    assert_int_equal(seen.schedule[1], 1);
    size_t before = seen.ready;
    flush_part(hub, 1);
    assert_int_equal(seen.ready, before + 1);
    assert_ptr_equal(seen.last_ready, &b);

    hub_bind_part(0);
    room_unsubscribe(&a);
    hub_bind_part(1);
    room_unsubscribe(&b);
    hub_free(hub);
}

/* A room queued on a part stays until that part's flush, even when
 * another part would otherwise free it. */
static void test_room_freed_only_when_no_part_has_it_queued(void **state)
{
    (void)state;
    struct hub *hub = make_hub(2);
    struct subscriber a = {0};
    subscribe_live(hub, 1, "gone", &a);
    hub_bind_part(1);
    room_unsubscribe(&a); /* no frames, no subscribers: to be freed */
    hub_bind_part(0);
    assert_non_null(hub_room(hub, "other", 5)); /* queued on part 0 */
    flush_part(hub, 0);
    assert_non_null(hub_room_find(hub, "gone", 4)); /* still queued on part 1 */
    flush_part(hub, 1);
    assert_null(hub_room_find(hub, "gone", 4));
    assert_null(hub_room_find(hub, "other", 5));
    hub_free(hub);
}

/* The publisher's answer waits for every part that had the room queued,
 * and only for those. */
static void test_flush_targets(void **state)
{
    (void)state;
    struct hub *hub = make_hub(8);
    struct subscriber a = {0}, b = {0};
    subscribe_live(hub, 0, "r", &a);
    subscribe_live(hub, 2, "r", &b);
    flush_part(hub, 0);
    flush_part(hub, 1);
    flush_part(hub, 2);

    hub_bind_part(0);
    publish(hub, "r", "m");
    uint64_t targets[PARTS];
    hub_flush_targets(hub, targets);
    assert_false(hub_flushes_done(hub, targets, 0));
    seen.frames = 0;
    flush_part(hub, 0);
    assert_int_equal(seen.frames, 1);
    assert_false(hub_flushes_done(hub, targets, 0)); /* part 2 has not written b */
    memset(seen.schedule, 0, sizeof seen.schedule);
    flush_part(hub, 2);
    assert_int_equal(seen.frames, 2);
    assert_int_equal(seen.schedule[0], 1); /* part 0 registered: woken */
    assert_true(hub_flushes_done(hub, targets, 0));
    /* Part 1 had nothing queued: it was never waited for. */

    hub_bind_part(0);
    room_unsubscribe(&a);
    hub_bind_part(2);
    room_unsubscribe(&b);
    hub_free(hub);
}

/* Ids from a cluster's store: each above what the room holds, else refused. */
static void test_publish_with_given_ids(void **state)
{
    (void)state;
    struct hub *hub = make_hub(8);
    hub_bind_part(0);
    struct room *r = hub_room(hub, "r", 1);
    assert_non_null(r);
    struct publish_result res;
    assert_int_equal(room_publish_id(r, 5000, NULL, 0, "a", 1, NULL, 0, &res), 0);
    assert_int_equal(res.id, 5000);
    assert_int_equal(room_publish_id(r, 5000, NULL, 0, "b", 1, NULL, 0, &res), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(room_publish_id(r, 4999, NULL, 0, "b", 1, NULL, 0, &res), -1);
    assert_int_equal(room_publish_id(r, 5002, NULL, 0, "c", 1, NULL, 0, &res), 0);
    assert_int_equal(room_frames(r), 2);
    assert_true(hub_next_id(hub) > 5002); /* the hub's own ids stay above */
    assert_int_equal(publish(hub, "r", "d") > 5002, 1);
    flush_part(hub, 0);
    hub_free(hub);
}

static size_t watched, unwatched;

static void on_watch(void *arg, struct room *room, bool on)
{
    (void)arg;
    assert_non_null(room);
    if (on) {
        watched++;
    } else {
        unwatched++;
    }
}

/* A room is watched from its first subscriber on any loop to its last. */
static void test_watch_first_and_last_subscriber(void **state)
{
    (void)state;
    struct hub *hub = make_hub(8);
    watched = unwatched = 0;
    hub_set_watch(hub, on_watch, NULL);
    struct subscriber a = {0}, b = {0};
    subscribe_live(hub, 0, "r", &a);
    assert_int_equal(watched, 1);
    subscribe_live(hub, 2, "r", &b);
    assert_int_equal(watched, 1);
    hub_bind_part(0);
    room_unsubscribe(&a);
    assert_int_equal(unwatched, 0);
    hub_bind_part(2);
    room_unsubscribe(&b);
    assert_int_equal(unwatched, 1);
    flush_part(hub, 0);
    flush_part(hub, 2);
    hub_free(hub);
}

/* After a reset every subscriber, caught up or not, on every loop, is
 * handed to its loop as lagged; a resume from before gets a reset; a new
 * subscriber follows the new messages. */
static void test_reset_closes_every_subscriber(void **state)
{
    (void)state;
    struct hub *hub = make_hub(8);
    struct subscriber a = {0}, b = {0};
    subscribe_live(hub, 0, "r", &a);
    subscribe_live(hub, 1, "r", &b);
    hub_bind_part(0);
    uint64_t old = publish(hub, "r", "m");
    flush_part(hub, 0);
    flush_part(hub, 1);
    assert_int_equal(seen.frames, 2); /* both caught up */
    assert_false(room_sub_lagged(&a));

    hub_bind_part(0);
    struct room *r = hub_room_find(hub, "r", 1);
    memset(seen.schedule, 0, sizeof seen.schedule);
    room_reset(r);
    assert_int_equal(room_frames(r), 0);
    assert_int_equal(seen.schedule[0], 1);
    assert_int_equal(seen.schedule[1], 1);
    assert_true(room_sub_lagged(&a));
    assert_true(room_sub_lagged(&b));
    assert_true(room_sub_was_reset(&a));
    assert_true(room_sub_was_reset(&b));
    size_t before = seen.ready;
    flush_part(hub, 0);
    flush_part(hub, 1);
    assert_int_equal(seen.ready, before + 2); /* each loop closes its own */

    struct room_start st = room_start_after(r, old);
    assert_true(st.reset);
    struct subscriber c = {0};
    subscribe_live(hub, 2, "r", &c);
    assert_false(room_sub_lagged(&c));
    hub_bind_part(0);
    publish(hub, "r", "new");
    seen.frames = 0;
    flush_part(hub, 2);
    assert_int_equal(seen.frames, 1);

    hub_bind_part(0);
    room_unsubscribe(&a);
    hub_bind_part(1);
    room_unsubscribe(&b);
    hub_bind_part(2);
    room_unsubscribe(&c);
    hub_free(hub);
}

/* A parked connection watches and keeps a room like a subscriber: the
 * watch turns on with the first of either and off with the last; each
 * watch has its own sequence number; the room is not freed while parked;
 * readiness lasts only while it is watched. */
static void test_parked_connection_watches_and_keeps_the_room(void **state)
{
    (void)state;
    struct hub *hub = make_hub(8);
    watched = unwatched = 0;
    hub_set_watch(hub, on_watch, NULL);
    hub_bind_part(1);
    struct room *r = hub_room(hub, "p", 1);
    uint32_t seq = room_watch_seq(r);
    room_park(r);
    assert_int_equal(watched, 1);
    assert_int_equal(room_watch_seq(r), seq + 1);
    assert_false(room_ready(r));
    room_set_ready(r, true);
    flush_part(hub, 0);
    flush_part(hub, 1);
    assert_ptr_equal(hub_room_find(hub, "p", 1), r); /* kept while parked */

    struct subscriber a = {0};
    subscribe_live(hub, 0, "p", &a); /* joins: still one watch */
    hub_bind_part(1);
    room_unpark(r);
    assert_int_equal(watched, 1);
    assert_int_equal(unwatched, 0);
    assert_true(room_ready(r));
    hub_bind_part(0);
    room_unsubscribe(&a);
    assert_int_equal(unwatched, 1);
    assert_false(room_ready(r)); /* a new watch must read the room again */
    flush_part(hub, 0);
    assert_null(hub_room_find(hub, "p", 1)); /* nothing keeps it now */

    hub_bind_part(2);
    r = hub_room(hub, "p", 1);
    room_park(r);
    assert_int_equal(watched, 2);
    room_unpark(r);
    assert_int_equal(unwatched, 2);
    flush_part(hub, 2);
    assert_null(hub_room_find(hub, "p", 1));
    hub_free(hub);
}

/* A room's ids come from a store's epoch: a resume from the base continues,
 * one from below it is reset, whatever the hub's own ids are; a reset
 * rebase drops the frames and loses every id known before. */
static void test_epoch_and_base_decide_resumes(void **state)
{
    (void)state;
    struct hub *hub = make_hub(8); /* the hub's own ids start at 1000 */
    hub_bind_part(0);
    struct room *r = hub_room(hub, "e", 1);
    room_set_epoch(r, 500, 520, false);
    assert_int_equal(room_epoch(r), 500);
    struct publish_result res;
    assert_int_equal(room_publish_id(r, 521, NULL, 0, "a", 1, NULL, 0, &res), 0);
    assert_int_equal(room_publish_id(r, 522, NULL, 0, "b", 1, NULL, 0, &res), 0);
    assert_int_equal(room_newest_id(r), 522);
    struct room_want want = {.resume = true, .last_id = 520};
    struct room_start st = room_start_want(r, &want);
    assert_false(st.reset);
    assert_int_equal(st.cursor, room_start_after(r, 520).cursor);
    want.last_id = 519;
    assert_true(room_start_want(r, &want).reset);
    want = (struct room_want){.history = 1};
    st = room_start_want(r, &want);
    assert_int_equal(st.cursor, room_start_history(r, 1).cursor);

    room_set_epoch(r, 9000, 9000, true);
    assert_int_equal(room_frames(r), 0);
    assert_int_equal(room_epoch(r), 9000);
    want = (struct room_want){.resume = true, .last_id = 522};
    assert_true(room_start_want(r, &want).reset);
    want.last_id = 9000;
    assert_false(room_start_want(r, &want).reset);
    flush_part(hub, 0);
    hub_free(hub);
}

/* Reads are numbered as they are sent; a finished one moves reads_done
 * forward only; a resume known to be past the room gets a reset with
 * everything retained. */
static void test_read_tickets_and_lost_resume(void **state)
{
    (void)state;
    struct hub *hub = make_hub(8);
    hub_bind_part(0);
    struct room *r = hub_room(hub, "t", 1);
    assert_int_equal(room_reads_sent(r), 0);
    uint32_t ticket = room_reads_sent(r);
    uint32_t a = room_read_sent(r), b = room_read_sent(r);
    assert_true(a > ticket && b > a);
    room_read_done(r, b);
    room_read_done(r, a); /* an older one finishing later changes nothing */
    assert_int_equal(room_reads_done(r), b);
    assert_false(room_parked(r));
    room_park(r);
    assert_true(room_parked(r));
    room_unpark(r);

    room_set_epoch(r, 100, 99, false);
    struct publish_result res;
    assert_int_equal(room_publish_id(r, 100, NULL, 0, "a", 1, NULL, 0, &res), 0);
    assert_int_equal(room_publish_id(r, 101, NULL, 0, "b", 1, NULL, 0, &res), 0);
    struct room_start st = room_start_lost(r);
    assert_true(st.reset);
    assert_int_equal(st.oldest_id, 100);
    assert_int_equal(st.cursor, room_start_history(r, 8).cursor);
    flush_part(hub, 0);
    hub_free(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_wakes_only_parts_with_subscribers),
        cmocka_unit_test(test_eviction_stops_at_every_parts_floor),
        cmocka_unit_test(test_waiting_subscriber_elsewhere_is_woken_when_it_lags),
        cmocka_unit_test(test_room_freed_only_when_no_part_has_it_queued),
        cmocka_unit_test(test_flush_targets),
        cmocka_unit_test(test_publish_with_given_ids),
        cmocka_unit_test(test_watch_first_and_last_subscriber),
        cmocka_unit_test(test_reset_closes_every_subscriber),
        cmocka_unit_test(test_parked_connection_watches_and_keeps_the_room),
        cmocka_unit_test(test_epoch_and_base_decide_resumes),
        cmocka_unit_test(test_read_tickets_and_lost_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
