/*
 * Unit tests for rooms, their rings of encoded frames and their subscribers
 * (src/room.c).
 *
 * Subscribers are driven the way a connection drives them: room_sub_iov,
 * copy some of those bytes into a sink (a simulated socket that may accept
 * any prefix), room_sub_advance by what was "written". The sink is then
 * compared byte for byte with the frames the test expects, which it builds
 * itself with snprintf rather than with the encoder under test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "room.h"

/* ---------------------------------------------------------------- helpers */

#define S(lit) (lit), (sizeof(lit) - 1)

static uint64_t rng_state = 0x2545F4914F6CDD1Du;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* What the hub's callbacks saw. */
struct calls {
    size_t ready;
    struct subscriber *ready_subs[64];
    size_t schedule;
    bool unsubscribe_in_ready; /* the ready callback closes the subscriber */
};

static struct calls calls;

static void on_ready(struct subscriber *sub, void *arg)
{
    assert_ptr_equal(arg, &calls);
    if (calls.ready < sizeof calls.ready_subs / sizeof calls.ready_subs[0]) {
        calls.ready_subs[calls.ready] = sub;
    }
    calls.ready++;
    if (calls.unsubscribe_in_ready) {
        room_unsubscribe(sub);
    }
}

static void on_schedule(void *arg, unsigned part)
{
    assert_ptr_equal(arg, &calls);
    assert_int_equal(part, 0);
    calls.schedule++;
}

static bool was_ready(const struct subscriber *sub)
{
    for (size_t i = 0; i < calls.ready && i < 64; i++) {
        if (calls.ready_subs[i] == sub) {
            return true;
        }
    }
    return false;
}

static struct hub *make_hub(unsigned history, size_t history_bytes, unsigned max_rooms,
                            uint64_t first_id)
{
    memset(&calls, 0, sizeof calls);
    struct hub_limits lim = {
        .history = history, .history_bytes = history_bytes, .max_rooms = max_rooms};
    struct hub *hub = hub_new(&lim, first_id, on_ready, on_schedule, &calls);
    assert_non_null(hub);
    return hub;
}

static struct hub *default_hub(uint64_t first_id)
{
    return make_hub(1000, 1u << 20, 1000, first_id);
}

static struct room *room_of(struct hub *hub, const char *name)
{
    struct room *r = hub_room(hub, name, strlen(name));
    assert_non_null(r);
    return r;
}

/* Publishes and returns the id. */
static uint64_t pub_full(struct room *r, const char *event, const char *data, size_t data_len,
                         const char *client)
{
    struct publish_result res = {0, 0};
    int rc = room_publish(r, event, event ? strlen(event) : 0, data, data_len, client,
                          client ? strlen(client) : 0, &res);
    assert_int_equal(rc, 0);
    return res.id;
}

static uint64_t pub(struct room *r, const char *data)
{
    return pub_full(r, NULL, data, strlen(data), NULL);
}

/* A growable byte string. */
struct bytes {
    char *p;
    size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* The frame the room should have encoded for a single-line payload. */
static void expect_frame(struct bytes *b, uint64_t id, const char *event, const char *data)
{
    char tmp[4096];
    int n;
    if (event) {
        n = snprintf(tmp, sizeof tmp, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)id,
                     event, data);
    } else {
        n = snprintf(tmp, sizeof tmp, "id: %llu\ndata: %s\n\n", (unsigned long long)id, data);
    }
    assert_true(n > 0 && (size_t)n < sizeof tmp);
    bytes_add(b, tmp, (size_t)n);
}

static size_t frame_len(uint64_t id, const char *event, const char *data)
{
    struct bytes b = {0};
    expect_frame(&b, id, event, data);
    size_t n = b.len;
    bytes_free(&b);
    return n;
}

/*
 * Writes what the subscriber is owed into out, at most `chunk` bytes per
 * round (0: all that is offered) with at most max_iov iovecs per call, and
 * checks the room_sub_iov contract on each call. Returns the rounds taken.
 */
static size_t drain(struct subscriber *sub, struct bytes *out, size_t chunk, size_t max_iov)
{
    struct iovec iov[64];
    size_t max_bytes = chunk ? chunk : SIZE_MAX;
    assert_true(max_iov >= 1 && max_iov <= 64);
    for (size_t rounds = 0; rounds < 1000000; rounds++) {
        size_t n = room_sub_iov(sub, iov, max_iov, max_bytes);
        if (n == 0) {
            return rounds;
        }
        assert_true(n <= max_iov);
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            assert_true(iov[i].iov_len > 0);
            total += iov[i].iov_len;
        }
        /* It stops once max_bytes are covered: only the last may cross it. */
        assert_true(total - iov[n - 1].iov_len < max_bytes);
        size_t want = chunk && chunk < total ? chunk : total;
        size_t left = want;
        for (size_t i = 0; i < n && left > 0; i++) {
            size_t c = iov[i].iov_len < left ? iov[i].iov_len : left;
            bytes_add(out, iov[i].iov_base, c);
            left -= c;
        }
        room_sub_advance(sub, want);
    }
    fail_msg("subscriber never caught up");
    return 0;
}

/* Everything owed to sub, in one go. */
static void drain_all(struct subscriber *sub, struct bytes *out)
{
    drain(sub, out, 0, 64);
}

static void assert_bytes_equal(const struct bytes *got, const struct bytes *want)
{
    if (got->len != want->len || (want->len && memcmp(got->p, want->p, want->len) != 0)) {
        fail_msg("stream mismatch:\n--- got (%zu bytes)\n%.*s\n--- want (%zu bytes)\n%.*s",
                 got->len, (int)(got->len > 2000 ? 2000 : got->len), got->p ? got->p : "",
                 want->len, (int)(want->len > 2000 ? 2000 : want->len), want->p ? want->p : "");
    }
}

/* The id of the first frame owed to sub, or 0 when it is caught up. */
static uint64_t first_owed_id(struct subscriber *sub)
{
    struct iovec iov[1];
    if (room_sub_iov(sub, iov, 1, SIZE_MAX) == 0) {
        return 0;
    }
    const char *p = iov[0].iov_base;
    assert_true(iov[0].iov_len > 4 && memcmp(p, "id: ", 4) == 0);
    return strtoull(p + 4, NULL, 10);
}

/* ---------------------------------------------------------------- hub */

/* With deferred commit (--fsync batch), nothing published is handed to any
 * subscriber, live or replaying, before hub_commit; then all of it is. */
static void test_deferred_commit(void **state)
{
    (void)state;
    struct hub *hub = default_hub(100);
    struct room *r = room_of(hub, "a");
    uint64_t before = pub(r, "{\"n\":0}");

    hub_set_deferred_commit(hub, true);
    struct subscriber live, replay;
    memset(&live, 0, sizeof live);
    memset(&replay, 0, sizeof replay);
    struct room_start st = room_start_live(r);
    room_subscribe(r, &live, &st, NULL, 0);
    st = room_start_after(r, before - 1);
    room_subscribe(r, &replay, &st, NULL, 0);
    assert_int_equal(first_owed_id(&replay), before); /* committed: visible */
    struct bytes b = {0};
    drain_all(&replay, &b);
    bytes_free(&b);

    uint64_t a1 = pub(r, "{\"n\":1}");
    uint64_t a2 = pub(r, "{\"n\":2}");
    assert_int_equal(a2, a1 + 1);
    assert_int_equal(first_owed_id(&live), 0);
    assert_int_equal(first_owed_id(&replay), 0);
    struct room_start late = room_start_history(r, 10);
    struct subscriber newcomer;
    memset(&newcomer, 0, sizeof newcomer);
    room_subscribe(r, &newcomer, &late, NULL, 0);
    assert_int_equal(first_owed_id(&newcomer), before); /* stops before a1 */
    drain_all(&newcomer, &b);
    bytes_free(&b);
    assert_int_equal(first_owed_id(&newcomer), 0);

    hub_commit(hub);
    assert_int_equal(first_owed_id(&live), a1);
    assert_int_equal(first_owed_id(&replay), a1);
    assert_int_equal(first_owed_id(&newcomer), a1);

    /* Back to immediate visibility. */
    hub_set_deferred_commit(hub, false);
    drain_all(&live, &b);
    bytes_free(&b);
    uint64_t a3 = pub(r, "{\"n\":3}");
    assert_int_equal(first_owed_id(&live), a3);

    room_unsubscribe(&live);
    room_unsubscribe(&replay);
    room_unsubscribe(&newcomer);
    hub_free(hub);
}

static void test_hub_new_free(void **state)
{
    (void)state;
    struct hub *hub = make_hub(10, 1000, 10, 500);
    assert_int_equal(hub_room_count(hub), 0);
    assert_int_equal(hub_last_id(hub), 499);
    hub_free(hub);

    /* first_id 0 is read as 1: ids start at 1 and 0 means "none". */
    hub = make_hub(10, 1000, 10, 0);
    assert_int_equal(hub_last_id(hub), 0);
    assert_int_equal(pub(room_of(hub, "a"), "x"), 1);
    assert_int_equal(hub_last_id(hub), 1);
    hub_free(hub);

    /* history 0 is clamped to 1 rather than keeping nothing. */
    hub = make_hub(0, 1000, 10, 1);
    struct room *r = room_of(hub, "a");
    pub(r, "x");
    pub(r, "y");
    assert_int_equal(room_frames(r), 1);
    hub_free(hub);

    hub_free(NULL);
}

static void test_room_name_valid(void **state)
{
    (void)state;
    char max[ROOM_NAME_MAX + 2];
    memset(max, 'a', sizeof max);

    assert_true(room_name_valid(S("a")));
    assert_true(room_name_valid(S("lobby")));
    assert_true(room_name_valid(S("AZaz09._-")));
    assert_true(room_name_valid(S("...")));
    assert_true(room_name_valid(S("-")));
    assert_true(room_name_valid(max, ROOM_NAME_MAX));

    assert_false(room_name_valid(S("")));
    assert_false(room_name_valid(max, ROOM_NAME_MAX + 1));
    assert_false(room_name_valid(S("a b")));
    assert_false(room_name_valid(S("a/b")));
    assert_false(room_name_valid(S("a%20")));
    assert_false(room_name_valid(S("caf\xc3\xa9")));
    assert_false(room_name_valid(S("a\nb")));
    assert_false(room_name_valid("a\0b", 3));
    assert_false(room_name_valid(S("a+b")));
    assert_false(room_name_valid(S("a~")));
    assert_false(room_name_valid(S("[x]")));
    /* Only the first len bytes count. */
    assert_true(room_name_valid("ab cd", 2));
}

static void test_hub_room_create_find(void **state)
{
    (void)state;
    struct hub *hub = default_hub(1);

    struct room *a = hub_room(hub, S("a"));
    assert_non_null(a);
    assert_int_equal(hub_room_count(hub), 1);
    assert_ptr_equal(hub_room(hub, S("a")), a);
    assert_int_equal(hub_room_count(hub), 1);
    assert_string_equal(room_name(a), "a");
    assert_int_equal(room_frames(a), 0);
    assert_int_equal(room_bytes(a), 0);
    assert_int_equal(room_subscribers(a), 0);

    struct room *ab = hub_room(hub, S("ab"));
    struct room *b = hub_room(hub, S("b"));
    struct room *def = hub_room(hub, "", 0);
    assert_non_null(ab);
    assert_non_null(b);
    assert_non_null(def);
    assert_true(ab != a && b != a && b != ab && def != a && def != ab && def != b);
    assert_string_equal(room_name(def), "");
    assert_ptr_equal(hub_room(hub, "", 0), def);
    assert_ptr_equal(hub_room(hub, "abc", 2), ab); /* by length, not by NUL */
    assert_int_equal(hub_room_count(hub), 4);

    /* Enough rooms to make the hash table grow; each keeps a frame so it
     * outlives the flushes, and every one is found again afterwards. */
    enum { N = 600 };
    struct room **rooms = calloc(N, sizeof *rooms);
    assert_non_null(rooms);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "room-%d", i);
        rooms[i] = room_of(hub, name);
        pub(rooms[i], name);
        if (i % 100 == 0) {
            hub_flush(hub);
        }
    }
    hub_flush(hub);
    assert_int_equal(hub_room_count(hub), N); /* a, ab, b and "" had no frames: freed */
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "room-%d", i);
        assert_ptr_equal(hub_room(hub, name, strlen(name)), rooms[i]);
        assert_string_equal(room_name(rooms[i]), name);
        assert_int_equal(room_frames(rooms[i]), 1);
    }
    assert_int_equal(hub_room_count(hub), N);
    free(rooms);
    hub_free(hub);
}

static void count_room(const struct room *room, void *arg)
{
    size_t *seen = arg;
    if (strcmp(room_name(room), "a") == 0) {
        seen[0]++;
    } else if (strcmp(room_name(room), "b") == 0) {
        seen[1]++;
    } else if (strcmp(room_name(room), "") == 0) {
        seen[2]++;
    } else {
        seen[3]++;
    }
}

static void test_hub_room_find_foreach(void **state)
{
    (void)state;
    struct hub *hub = default_hub(1);
    assert_null(hub_room_find(hub, S("a")));
    assert_int_equal(hub_room_count(hub), 0); /* finding creates nothing */
    struct room *a = room_of(hub, "a");
    struct room *b = room_of(hub, "b");
    struct room *d = hub_room(hub, "", 0);
    assert_non_null(d);
    assert_ptr_equal(hub_room_find(hub, S("a")), a);
    assert_ptr_equal(hub_room_find(hub, S("b")), b);
    assert_ptr_equal(hub_room_find(hub, "", 0), d);
    assert_null(hub_room_find(hub, S("c")));
    assert_null(hub_room_find(hub, S("ab")));

    size_t seen[4] = {0};
    hub_foreach_room(hub, count_room, seen);
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
    assert_int_equal(seen[2], 1);
    assert_int_equal(seen[3], 0);

    pub(a, "keep");
    hub_flush(hub); /* b and "" had nothing: freed */
    assert_ptr_equal(hub_room_find(hub, S("a")), a);
    assert_null(hub_room_find(hub, S("b")));
    assert_null(hub_room_find(hub, "", 0));
    memset(seen, 0, sizeof seen);
    hub_foreach_room(hub, count_room, seen);
    assert_int_equal(seen[0] + seen[1] + seen[2] + seen[3], 1);
    assert_int_equal(seen[0], 1);
    hub_free(hub);
}

/* ---------------------------------------------------------------- publishing */

static void test_publish_ids(void **state)
{
    (void)state;
    struct hub *hub = default_hub(42);
    struct room *a = room_of(hub, "a");
    struct room *b = room_of(hub, "b");

    struct publish_result res = {0, 99};
    assert_int_equal(room_publish(a, NULL, 0, S("1"), NULL, 0, &res), 0);
    assert_int_equal(res.id, 42);
    assert_int_equal(res.recipients, 0);
    assert_int_equal(pub(b, "2"), 43);
    assert_int_equal(pub(a, "3"), 44);
    assert_int_equal(pub(b, "4"), 45);
    assert_int_equal(hub_last_id(hub), 45);
    assert_int_equal(room_frames(a), 2);
    assert_int_equal(room_frames(b), 2);
    assert_int_equal(room_bytes(a), frame_len(42, NULL, "1") + frame_len(44, NULL, "3"));
    hub_free(hub);
}

/* Published counts per room, and the part since the last mark (what the
 * stats stream turns into messages per second). */
static void test_published_counts(void **state)
{
    (void)state;
    struct hub *hub = make_hub(2, 1u << 20, 1000, 1);
    hub_set_deferred_commit(hub, true);
    struct room *a = room_of(hub, "a");
    struct room *b = room_of(hub, "b");
    assert_int_equal(room_published(a), 0);
    for (int i = 0; i < 5; i++) {
        pub(a, "x");
    }
    pub(b, "y");
    /* Counted whatever the ring keeps (history 2 here). */
    assert_int_equal(room_published(a), 5);
    assert_int_equal(room_frames(a), 2);
    assert_int_equal(room_published_recent(a), 5);
    assert_int_equal(room_published_recent(b), 1);
    hub_mark_published(hub);
    assert_int_equal(room_published_recent(a), 0);
    assert_int_equal(room_published_recent(b), 0);
    uint64_t first = pub(a, "z");
    pub(a, "z");
    assert_int_equal(room_published(a), 7);
    assert_int_equal(room_published_recent(a), 2);
    /* Messages taken back after a failed sync were never published. */
    assert_int_equal(hub_cancel_from(hub, first), 2);
    assert_int_equal(room_published(a), 5);
    assert_int_equal(room_published_recent(a), 0);
    hub_commit(hub);
    hub_flush(hub);
    hub_free(hub);
}

static void test_frame_bytes(void **state)
{
    (void)state;
    struct hub *hub = default_hub(7);
    struct room *r = room_of(hub, "r");
    pub(r, "hello");
    pub_full(r, "update", S("{\"a\":1}"), NULL);
    pub_full(r, NULL, S("two\nlines"), NULL);
    pub_full(r, NULL, "", 0, NULL);
    pub_full(r, NULL, S("crlf\r\nand cr\rend\n"), NULL);

    struct subscriber sub = {0};
    struct room_start st = room_start_history(r, 100);
    assert_false(st.reset);
    room_subscribe(r, &sub, &st, NULL, 0);

    struct iovec iov[8];
    size_t n = room_sub_iov(&sub, iov, 8, SIZE_MAX);
    assert_int_equal(n, 5);
    static const char *const want[] = {
        "id: 7\ndata: hello\n\n",
        "id: 8\nevent: update\ndata: {\"a\":1}\n\n",
        "id: 9\ndata: two\ndata: lines\n\n",
        "id: 10\ndata: \n\n",
        "id: 11\ndata: crlf\ndata: and cr\ndata: end\ndata: \n\n",
    };
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(iov[i].iov_len, strlen(want[i]));
        assert_memory_equal(iov[i].iov_base, want[i], iov[i].iov_len);
        total += iov[i].iov_len;
    }
    assert_int_equal(room_bytes(r), total);
    assert_int_equal(room_frames(r), 5);

    room_unsubscribe(&sub);
    hub_free(hub);
}

static void test_ring_evict_by_count(void **state)
{
    (void)state;
    struct hub *hub = make_hub(3, 1u << 20, 10, 1);
    struct room *r = room_of(hub, "r");
    for (int i = 1; i <= 10; i++) {
        char data[16];
        snprintf(data, sizeof data, "m%d", i);
        pub(r, data);
        assert_int_equal(room_frames(r), i < 3 ? i : 3);
    }
    assert_int_equal(room_bytes(r), frame_len(8, NULL, "m8") + frame_len(9, NULL, "m9") +
                                        frame_len(10, NULL, "m10"));

    struct subscriber sub = {0};
    struct room_start st = room_start_history(r, 1000);
    room_subscribe(r, &sub, &st, NULL, 0);
    struct bytes got = {0}, want = {0};
    drain_all(&sub, &got);
    expect_frame(&want, 8, NULL, "m8");
    expect_frame(&want, 9, NULL, "m9");
    expect_frame(&want, 10, NULL, "m10");
    assert_bytes_equal(&got, &want);
    room_unsubscribe(&sub);
    bytes_free(&got);
    bytes_free(&want);
    hub_free(hub);
}

static void test_ring_evict_by_bytes(void **state)
{
    (void)state;
    /* Ids 10..99 keep every small frame at exactly 25 bytes. */
    const size_t small = frame_len(10, NULL, "0123456789");
    assert_int_equal(small, 25);
    struct hub *hub = make_hub(1000, 80, 10, 10);
    struct room *r = room_of(hub, "r");

    for (int i = 0; i < 5; i++) {
        pub(r, "0123456789");
        assert_true(room_bytes(r) <= 80);
    }
    assert_int_equal(room_frames(r), 3);
    assert_int_equal(room_bytes(r), 75);

    /* Frames that fill the cap exactly all stay. */
    struct hub *exact = make_hub(1000, 75, 10, 10);
    struct room *x = room_of(exact, "x");
    for (int i = 0; i < 4; i++) {
        pub(x, "0123456789");
        assert_int_equal(room_frames(x), i < 3 ? i + 1 : 3);
    }
    assert_int_equal(room_bytes(x), 75);
    hub_free(exact);

    /* A frame larger than the cap evicts everything else but is kept. */
    char big[301];
    memset(big, 'B', 300);
    big[300] = '\0';
    uint64_t big_id = pub(r, big);
    assert_int_equal(room_frames(r), 1);
    assert_int_equal(room_bytes(r), frame_len(big_id, NULL, big));

    struct subscriber sub = {0};
    struct room_start st = room_start_history(r, 10);
    room_subscribe(r, &sub, &st, NULL, 0);
    struct bytes got = {0}, want = {0};
    drain_all(&sub, &got);
    expect_frame(&want, big_id, NULL, big);
    assert_bytes_equal(&got, &want);

    /* Once the flush has seen the subscriber caught up, the next small
     * frame pushes the big one out. */
    hub_flush(hub);
    uint64_t id = pub(r, "0123456789");
    assert_int_equal(room_frames(r), 1);
    assert_int_equal(room_bytes(r), 25);
    pub(r, "0123456789");
    assert_int_equal(room_frames(r), 2);
    assert_int_equal(room_bytes(r), 50);

    bytes_free(&got);
    bytes_free(&want);
    drain_all(&sub, &got);
    expect_frame(&want, id, NULL, "0123456789");
    expect_frame(&want, id + 1, NULL, "0123456789");
    assert_bytes_equal(&got, &want);

    room_unsubscribe(&sub);
    bytes_free(&got);
    bytes_free(&want);
    hub_free(hub);
}

/* ---------------------------------------------------------------- cursors */

/* Publishes a varied set of frames into r and returns the expected stream. */
static void publish_sample(struct room *r, struct bytes *want)
{
    static const char *const events[] = {NULL, "chat", NULL, "x", NULL, NULL, "long-event-name"};
    for (int i = 0; i < 14; i++) {
        char data[200];
        size_t len = (size_t)(i * 13) % 150;
        for (size_t k = 0; k < len; k++) {
            data[k] = (char)('a' + (k + (size_t)i) % 26);
        }
        data[len] = '\0';
        const char *ev = events[i % 7];
        uint64_t id = pub_full(r, ev, data, len, NULL);
        expect_frame(want, id, ev, data);
    }
}

static void test_sub_partial_writes(void **state)
{
    (void)state;
    static const size_t chunks[] = {1, 2, 3, 7, 13, 24, 25, 26, 99, 1000, 0};
    static const size_t iovs[] = {1, 2, 5, 64};
    struct hub *hub = default_hub(1);
    struct room *r = room_of(hub, "r");
    struct bytes want = {0};
    publish_sample(r, &want);

    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        for (size_t v = 0; v < sizeof iovs / sizeof iovs[0]; v++) {
            struct subscriber sub = {0};
            struct room_start st = room_start_history(r, 1000);
            room_subscribe(r, &sub, &st, NULL, 0);
            struct bytes got = {0};
            size_t rounds = drain(&sub, &got, chunks[c], iovs[v]);
            assert_bytes_equal(&got, &want);
            if (chunks[c] == 1) {
                assert_int_equal(rounds, want.len); /* one byte per round */
            }
            assert_false(room_sub_lagged(&sub));
            assert_int_equal(first_owed_id(&sub), 0);
            room_unsubscribe(&sub);
            bytes_free(&got);
        }
    }

    /* Random chunk sizes, one subscriber. */
    for (int trial = 0; trial < 20; trial++) {
        struct subscriber sub = {0};
        struct room_start st = room_start_history(r, 1000);
        room_subscribe(r, &sub, &st, NULL, 0);
        struct bytes got = {0};
        for (;;) {
            struct iovec iov[64];
            size_t n = room_sub_iov(&sub, iov, 1 + rng() % 64, SIZE_MAX);
            if (n == 0) {
                break;
            }
            size_t total = 0;
            for (size_t i = 0; i < n; i++) {
                total += iov[i].iov_len;
            }
            size_t wrote = 1 + rng() % total;
            size_t left = wrote;
            for (size_t i = 0; i < n && left; i++) {
                size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
                bytes_add(&got, iov[i].iov_base, k);
                left -= k;
            }
            room_sub_advance(&sub, wrote);
        }
        assert_bytes_equal(&got, &want);
        room_unsubscribe(&sub);
        bytes_free(&got);
    }

    bytes_free(&want);
    hub_free(hub);
}

static void test_sub_advance_past_end(void **state)
{
    (void)state;
    struct hub *hub = default_hub(1);
    struct room *r = room_of(hub, "r");
    struct subscriber sub = {0};
    struct room_start st = room_start_live(r);
    room_subscribe(r, &sub, &st, NULL, 0);

    struct iovec iov[4];
    assert_int_equal(room_sub_iov(&sub, iov, 4, SIZE_MAX), 0);
    room_sub_advance(&sub, 0);
    pub(r, "a");
    pub(r, "b");
    size_t total = frame_len(1, NULL, "a") + frame_len(2, NULL, "b");
    /* Advancing by more than is owed stops at the head. */
    room_sub_advance(&sub, total + 50);
    assert_int_equal(room_sub_iov(&sub, iov, 4, SIZE_MAX), 0);
    pub(r, "c");
    struct bytes got = {0}, want = {0};
    drain_all(&sub, &got);
    expect_frame(&want, 3, NULL, "c");
    assert_bytes_equal(&got, &want);

    room_unsubscribe(&sub);
    bytes_free(&got);
    bytes_free(&want);
    hub_free(hub);
}

static void test_sub_iov_max_bytes(void **state)
{
    (void)state;
    struct hub *hub = default_hub(10);
    struct room *r = room_of(hub, "r");
    for (int i = 0; i < 6; i++) {
        pub(r, "0123456789"); /* 25 bytes each */
    }
    struct subscriber sub = {0};
    struct room_start st = room_start_history(r, 6);
    room_subscribe(r, &sub, &st, NULL, 0);

    struct iovec iov[8];
    assert_int_equal(room_sub_iov(&sub, iov, 8, 1), 1);
    assert_int_equal(room_sub_iov(&sub, iov, 8, 25), 1);
    assert_int_equal(room_sub_iov(&sub, iov, 8, 26), 2);
    assert_int_equal(room_sub_iov(&sub, iov, 8, 50), 2);
    assert_int_equal(room_sub_iov(&sub, iov, 8, 51), 3);
    assert_int_equal(room_sub_iov(&sub, iov, 3, SIZE_MAX), 3);
    assert_int_equal(room_sub_iov(&sub, iov, 8, SIZE_MAX), 6);

    /* Mid-frame: the first iovec is the rest of the current frame. */
    room_sub_advance(&sub, 30);
    size_t n = room_sub_iov(&sub, iov, 8, SIZE_MAX);
    assert_int_equal(n, 5);
    assert_int_equal(iov[0].iov_len, 20);
    assert_memory_equal(iov[0].iov_base, "1\ndata: ", 8);
    assert_memory_equal((const char *)iov[0].iov_base + 8, "0123456789\n\n", 12);
    assert_int_equal(iov[1].iov_len, 25);
    assert_memory_equal(iov[1].iov_base, "id: 12\n", 7);

    room_unsubscribe(&sub);
    hub_free(hub);
}

static void test_sub_wraparound(void **state)
{
    (void)state;
    /* history 5 keeps the slot array at 8 entries, so 600 frames wrap it
     * 75 times while the subscriber consumes as it goes. */
    enum { HISTORY = 5 };
    struct hub *hub = make_hub(HISTORY, 1u << 20, 10, 1);
    struct room *r = room_of(hub, "r");
    struct subscriber sub = {0};
    struct room_start st = room_start_live(r);
    room_subscribe(r, &sub, &st, NULL, 0);
    /* As if its socket were full: it holds no frame back from eviction. */
    room_sub_set_waiting(&sub, true);

    struct bytes got = {0}, want = {0};
    size_t lens[HISTORY] = {0}; /* retained frame lengths, by id % HISTORY */
    size_t published = 0;
    while (published < 600) {
        size_t batch = 1 + rng() % (HISTORY - 1);
        for (size_t k = 0; k < batch; k++) {
            char data[64];
            size_t len = rng() % 48;
            for (size_t i = 0; i < len; i++) {
                data[i] = (char)('A' + rng() % 26);
            }
            data[len] = '\0';
            uint64_t id = pub(r, data);
            expect_frame(&want, id, NULL, data);
            lens[id % HISTORY] = frame_len(id, NULL, data);
            published++;
        }
        size_t retained = published < HISTORY ? published : HISTORY;
        assert_int_equal(room_frames(r), retained);
        size_t bytes = 0;
        for (size_t i = 0; i < HISTORY; i++) {
            bytes += lens[i];
        }
        assert_int_equal(room_bytes(r), bytes);
        assert_false(room_sub_lagged(&sub));
        drain(&sub, &got, 1 + rng() % 40, 1 + rng() % 8);
    }
    assert_bytes_equal(&got, &want);
    room_unsubscribe(&sub);
    bytes_free(&got);
    bytes_free(&want);
    hub_free(hub);
}

static void test_sub_survives_slot_growth(void **state)
{
    (void)state;
    /* A subscriber half-way through the first frame while the slot array
     * grows 8 -> 16 -> 32 -> 64 entries. */
    struct hub *hub = make_hub(100, 1u << 20, 10, 1);
    struct room *r = room_of(hub, "r");
    struct subscriber sub = {0};
    struct room_start st = room_start_live(r);
    room_subscribe(r, &sub, &st, NULL, 0);
    struct bytes got = {0}, want = {0};

    expect_frame(&want, pub(r, "first frame"), NULL, "first frame");
    struct iovec iov[1];
    assert_int_equal(room_sub_iov(&sub, iov, 1, SIZE_MAX), 1);
    bytes_add(&got, iov[0].iov_base, 9);
    room_sub_advance(&sub, 9);
    for (int i = 0; i < 50; i++) {
        char data[16];
        snprintf(data, sizeof data, "n%d", i);
        expect_frame(&want, pub(r, data), NULL, data);
    }
    drain(&sub, &got, 17, 4);
    assert_bytes_equal(&got, &want);
    room_unsubscribe(&sub);
    bytes_free(&got);
    bytes_free(&want);
    hub_free(hub);
}

static void test_sub_lagged(void **state)
{
    (void)state;
    struct hub *hub = make_hub(2, 1u << 20, 10, 1);
    struct room *r = room_of(hub, "r");
    struct subscriber slow = {0}, fast = {0};
    struct room_start st = room_start_live(r);
    room_subscribe(r, &slow, &st, NULL, 0);
    room_subscribe(r, &fast, &st, NULL, 0);
    assert_int_equal(room_subscribers(r), 2);

    pub(r, "one");
    /* slow writes 3 bytes of frame 1, then stops reading. */
    struct iovec iov[4];
    assert_true(room_sub_iov(&slow, iov, 4, SIZE_MAX) > 0);
    room_sub_advance(&slow, 3);
    room_sub_set_waiting(&slow, true); /* its socket is full */
    assert_false(room_sub_lagged(&slow));

    struct bytes got = {0};
    pub(r, "two");
    drain_all(&fast, &got);
    hub_flush(hub);                       /* sees fast caught up */
    assert_false(room_sub_lagged(&slow)); /* frame 1 is still retained */
    pub(r, "three");                      /* evicts frame 1 */
    drain_all(&fast, &got);
    assert_true(room_sub_lagged(&slow));
    assert_false(room_sub_lagged(&fast));
    assert_int_equal(room_sub_iov(&slow, iov, 4, SIZE_MAX), 0);

    struct bytes want = {0};
    expect_frame(&want, 1, NULL, "one");
    expect_frame(&want, 2, NULL, "two");
    expect_frame(&want, 3, NULL, "three");
    assert_bytes_equal(&got, &want);

    /* A zeroed, never subscribed subscriber is neither lagged nor owed. */
    struct subscriber none = {0};
    assert_false(room_sub_lagged(&none));
    assert_int_equal(room_sub_iov(&none, iov, 4, SIZE_MAX), 0);

    room_unsubscribe(&slow);
    room_unsubscribe(&fast);
    assert_int_equal(room_subscribers(r), 0);
    bytes_free(&got);
    bytes_free(&want);
    hub_free(hub);
}

/* ---------------------------------------------------------------- starts */

static void test_start_live_history(void **state)
{
    (void)state;
    struct hub *hub = make_hub(4, 1u << 20, 10, 1);
    struct room *r = room_of(hub, "r");
    for (int i = 0; i < 6; i++) {
        pub(r, "x"); /* retains 3..6 */
    }

    struct subscriber s = {0};
    struct room_start st = room_start_live(r);
    assert_false(st.reset);
    room_subscribe(r, &s, &st, NULL, 0);
    assert_int_equal(first_owed_id(&s), 0);
    pub(r, "live"); /* 7; retains 4..7 */
    assert_int_equal(first_owed_id(&s), 7);
    room_unsubscribe(&s);

    static const struct {
        uint64_t n, first;
    } cases[] = {{0, 0}, {1, 7}, {2, 6}, {4, 4}, {5, 4}, {1000, 4}, {UINT64_MAX, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct subscriber sub = {0};
        st = room_start_history(r, cases[i].n);
        assert_false(st.reset);
        room_subscribe(r, &sub, &st, NULL, 0);
        assert_int_equal(first_owed_id(&sub), cases[i].first);
        struct bytes got = {0};
        drain_all(&sub, &got);
        size_t want_frames = cases[i].n < 4 ? (size_t)cases[i].n : 4;
        size_t frames = 0;
        for (size_t k = 0; k + 4 <= got.len; k++) {
            frames += memcmp(got.p + k, "id: ", 4) == 0;
        }
        assert_int_equal(frames, want_frames);
        room_unsubscribe(&sub);
        bytes_free(&got);
    }
    hub_free(hub);
}

/* Subscribes after last_id and returns the start, with the first owed id. */
static struct room_start start_after(struct room *r, uint64_t last_id, uint64_t *first)
{
    struct subscriber sub = {0};
    struct room_start st = room_start_after(r, last_id);
    room_subscribe(r, &sub, &st, NULL, 0);
    *first = first_owed_id(&sub);
    room_unsubscribe(&sub);
    return st;
}

static void test_start_after(void **state)
{
    (void)state;
    struct hub *hub = make_hub(3, 1u << 20, 10, 1);
    struct room *a = room_of(hub, "a");
    struct room *b = room_of(hub, "b");
    pub(a, "1");
    pub(b, "2");
    pub(a, "3");
    pub(b, "4");
    pub(a, "5"); /* a: 1 3 5; b: 2 4; next id 6 */

    uint64_t first;
    struct room_start st;

    st = start_after(a, 3, &first); /* exact id in the ring */
    assert_false(st.reset);
    assert_int_equal(first, 5);
    st = start_after(a, 1, &first);
    assert_false(st.reset);
    assert_int_equal(first, 3);
    st = start_after(a, 2, &first); /* another room's id: the next greater one */
    assert_false(st.reset);
    assert_int_equal(first, 3);
    st = start_after(a, 4, &first);
    assert_false(st.reset);
    assert_int_equal(first, 5);
    st = start_after(a, 0, &first); /* first_id - 1: nothing missed */
    assert_false(st.reset);
    assert_int_equal(first, 1);
    st = start_after(a, 5, &first); /* the last id: caught up */
    assert_false(st.reset);
    assert_int_equal(first, 0);

    /* Never issued here. */
    st = start_after(a, 6, &first);
    assert_true(st.reset);
    assert_int_equal(st.oldest_id, 1);
    st = start_after(a, UINT64_MAX, &first);
    assert_true(st.reset);
    assert_int_equal(st.oldest_id, 1);

    /* Evict: a keeps 5 6 7 and lost 1 and 3. */
    pub(a, "6");
    pub(a, "7");
    assert_int_equal(room_frames(a), 3);
    st = start_after(a, 3, &first); /* saw the last evicted frame */
    assert_false(st.reset);
    assert_int_equal(first, 5);
    st = start_after(a, 4, &first); /* between the evicted and the oldest */
    assert_false(st.reset);
    assert_int_equal(first, 5);
    st = start_after(a, 6, &first);
    assert_false(st.reset);
    assert_int_equal(first, 7);
    st = start_after(a, 2, &first); /* frame 3 is gone */
    assert_true(st.reset);
    assert_int_equal(st.oldest_id, 5);
    assert_int_equal(first, 5); /* a reset still replays what is retained */
    st = start_after(a, 0, &first);
    assert_true(st.reset);
    assert_int_equal(st.oldest_id, 5);

    /* Nothing retained: oldest_id is the next id. */
    struct room *c = room_of(hub, "c");
    st = start_after(c, 7, &first);
    assert_false(st.reset);
    assert_int_equal(first, 0);
    st = start_after(c, 3, &first); /* other rooms' ids: c missed nothing */
    assert_false(st.reset);
    st = start_after(c, 8, &first);
    assert_true(st.reset);
    assert_int_equal(st.oldest_id, 8);
    assert_int_equal(first, 0);
    hub_free(hub);
}

static void test_start_after_first_id(void **state)
{
    (void)state;
    /* A hub whose ids start at 100: ids below 99 belong to an earlier
     * process whose history is gone. */
    struct hub *hub = make_hub(10, 1u << 20, 10, 100);
    struct room *r = room_of(hub, "r");
    uint64_t first;
    struct room_start st;

    st = start_after(r, 98, &first);
    assert_true(st.reset);
    assert_int_equal(st.oldest_id, 100);
    st = start_after(r, 99, &first);
    assert_false(st.reset);
    st = start_after(r, 100, &first);
    assert_true(st.reset); /* not issued yet */
    assert_int_equal(st.oldest_id, 100);

    pub(r, "a");
    pub(r, "b");
    st = start_after(r, 99, &first);
    assert_false(st.reset);
    assert_int_equal(first, 100);
    st = start_after(r, 5, &first);
    assert_true(st.reset);
    assert_int_equal(st.oldest_id, 100);
    assert_int_equal(first, 100);
    hub_free(hub);
}

static void test_start_stale(void **state)
{
    (void)state;
    /* A start computed before more frames were published (and older ones
     * evicted) joins at the oldest retained frame, not behind the ring. */
    struct hub *hub = make_hub(3, 1u << 20, 10, 1);
    struct room *r = room_of(hub, "r");
    pub(r, "1");
    pub(r, "2");
    struct room_start st = room_start_history(r, 10);
    struct room_start st_after = room_start_after(r, 0);
    pub(r, "3");
    pub(r, "4");
    pub(r, "5"); /* ring 3 4 5 */
    struct subscriber s = {0}, t = {0};
    room_subscribe(r, &s, &st, NULL, 0);
    room_subscribe(r, &t, &st_after, NULL, 0);
    assert_false(room_sub_lagged(&s));
    assert_false(room_sub_lagged(&t));
    struct bytes got = {0}, want = {0};
    drain_all(&s, &got);
    expect_frame(&want, 3, NULL, "3");
    expect_frame(&want, 4, NULL, "4");
    expect_frame(&want, 5, NULL, "5");
    assert_bytes_equal(&got, &want);
    assert_int_equal(first_owed_id(&t), 3);
    room_unsubscribe(&s);
    room_unsubscribe(&t);
    bytes_free(&got);
    bytes_free(&want);
    hub_free(hub);
}

/* ---------------------------------------------------------------- exclusion */

static void test_sender_exclusion(void **state)
{
    (void)state;
    struct hub *hub = default_hub(1);
    struct room *r = room_of(hub, "r");
    struct subscriber sa = {0}, sb = {0}, sn = {0}, sab = {0};
    struct room_start st = room_start_live(r);
    room_subscribe(r, &sa, &st, S("a"));
    room_subscribe(r, &sb, &st, S("b"));
    room_subscribe(r, &sn, &st, NULL, 0);
    room_subscribe(r, &sab, &st, S("ab"));

    struct bytes all = {0}, not_a = {0}, not_b = {0}, not_ab = {0};
    static const struct {
        const char *client, *data;
        size_t recipients;
    } msgs[] = {
        {"a", "from a 1", 3}, {"a", "from a 2", 3}, {NULL, "anon", 4},    {"b", "from b", 3},
        {"ab", "from ab", 3}, {"c", "from c", 4},   {"a", "from a 3", 3},
    };
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        struct publish_result res;
        const char *cl = msgs[i].client;
        assert_int_equal(room_publish(r, NULL, 0, msgs[i].data, strlen(msgs[i].data), cl,
                                      cl ? strlen(cl) : 0, &res),
                         0);
        assert_int_equal(res.recipients, msgs[i].recipients);
        expect_frame(&all, res.id, NULL, msgs[i].data);
        if (!cl || strcmp(cl, "a") != 0) {
            expect_frame(&not_a, res.id, NULL, msgs[i].data);
        }
        if (!cl || strcmp(cl, "b") != 0) {
            expect_frame(&not_b, res.id, NULL, msgs[i].data);
        }
        if (!cl || strcmp(cl, "ab") != 0) {
            expect_frame(&not_ab, res.id, NULL, msgs[i].data);
        }
    }

    /* The first frame owed to "a" is the anonymous one, not its own. */
    assert_int_equal(first_owed_id(&sa), 3);
    assert_int_equal(first_owed_id(&sb), 1);

    struct bytes got = {0};
    drain(&sa, &got, 1, 1); /* byte by byte across skipped frames */
    assert_bytes_equal(&got, &not_a);
    bytes_free(&got);
    drain(&sb, &got, 11, 3);
    assert_bytes_equal(&got, &not_b);
    bytes_free(&got);
    drain_all(&sn, &got);
    assert_bytes_equal(&got, &all);
    bytes_free(&got);
    drain(&sab, &got, 5, 64);
    assert_bytes_equal(&got, &not_ab);
    bytes_free(&got);

    /* Only an own frame pending: nothing owed, and no ready call. */
    hub_flush(hub);
    memset(&calls, 0, sizeof calls);
    pub_full(r, NULL, S("own"), "a");
    struct iovec iov[2];
    assert_int_equal(room_sub_iov(&sa, iov, 2, SIZE_MAX), 0);
    hub_flush(hub);
    assert_int_equal(calls.ready, 3);
    assert_false(was_ready(&sa));
    assert_true(was_ready(&sb) && was_ready(&sn) && was_ready(&sab));
    /* ...and "a" then gets the next frame from someone else. */
    uint64_t id = pub(r, "other");
    assert_int_equal(first_owed_id(&sa), id);

    room_unsubscribe(&sa);
    room_unsubscribe(&sb);
    room_unsubscribe(&sn);
    room_unsubscribe(&sab);
    bytes_free(&all);
    bytes_free(&not_a);
    bytes_free(&not_b);
    bytes_free(&not_ab);
    hub_free(hub);
}

static void test_sender_exclusion_history(void **state)
{
    (void)state;
    /* A replay skips the subscriber's own frames too. */
    struct hub *hub = default_hub(1);
    struct room *r = room_of(hub, "r");
    pub_full(r, NULL, S("mine"), "me");
    pub_full(r, NULL, S("theirs"), "you");
    pub_full(r, NULL, S("mine again"), "me");

    struct subscriber s = {0};
    struct room_start st = room_start_history(r, 10);
    room_subscribe(r, &s, &st, S("me"));
    struct bytes got = {0}, want = {0};
    drain(&s, &got, 4, 2);
    expect_frame(&want, 2, NULL, "theirs");
    assert_bytes_equal(&got, &want);
    room_unsubscribe(&s);
    bytes_free(&got);
    bytes_free(&want);
    hub_free(hub);
}

/* room_sub_advance counts the frames written in full, never the own frames
 * it skips past: those are not deliveries. */
static void test_advance_counts_written(void **state)
{
    (void)state;
    struct hub *hub = default_hub(1);
    struct room *r = room_of(hub, "r");
    struct subscriber s = {0};
    struct room_start st = room_start_live(r);
    room_subscribe(r, &s, &st, S("me"));
    uint64_t a = pub_full(r, NULL, S("theirs"), "you");
    pub_full(r, NULL, S("mine"), "me");
    pub_full(r, NULL, S("mine again"), "me");
    uint64_t b = pub_full(r, NULL, S("theirs again"), NULL);
    pub_full(r, NULL, S("mine at the end"), "me");

    struct iovec iov[8];
    assert_int_equal(room_sub_iov(&s, iov, 8, SIZE_MAX), 2);
    size_t la = frame_len(a, NULL, "theirs"), lb = frame_len(b, NULL, "theirs again");
    assert_int_equal(room_sub_advance(&s, 1), 0);      /* part of a frame */
    assert_int_equal(room_sub_advance(&s, la - 1), 1); /* its end, then two own skipped */
    assert_int_equal(room_sub_advance(&s, lb), 1);     /* one more, then one own skipped */
    assert_int_equal(room_sub_iov(&s, iov, 8, SIZE_MAX), 0);
    assert_int_equal(room_sub_advance(&s, 0), 0);
    room_unsubscribe(&s);
    hub_free(hub);
}

/* ---------------------------------------------------------------- flush */

static void test_flush_ready(void **state)
{
    (void)state;
    struct hub *hub = make_hub(3, 1u << 20, 10, 1);
    struct room *r = room_of(hub, "r");
    struct subscriber live = {0}, waiting = {0};
    struct room_start st = room_start_live(r);
    room_subscribe(r, &live, &st, NULL, 0);
    room_subscribe(r, &waiting, &st, NULL, 0);
    room_sub_set_waiting(&waiting, true);
    assert_true(waiting.waiting);
    assert_int_equal(hub_flush(hub), 0); /* nothing owed */
    assert_int_equal(calls.ready, 0);

    /* Two messages in one iteration: one ready call for the live one. */
    pub(r, "1");
    pub(r, "2");
    assert_int_equal(hub_flush(hub), 1);
    assert_int_equal(calls.ready, 1);
    assert_ptr_equal(calls.ready_subs[0], &live);

    /* Nothing new: no calls, even though both still owe bytes. */
    calls.ready = 0;
    assert_int_equal(hub_flush(hub), 0);

    /* A caught-up subscriber is not called; one still owing bytes is. */
    struct bytes got = {0};
    drain_all(&live, &got);
    struct subscriber other = {0};
    st = room_start_live(r);
    room_subscribe(r, &other, &st, NULL, 0); /* live, at the head */
    assert_int_equal(hub_flush(hub), 0);
    pub(r, "3");
    assert_int_equal(hub_flush(hub), 2);
    assert_true(was_ready(&live) && was_ready(&other));
    assert_false(was_ready(&waiting));

    /* Back from waiting: the next publish reaches it. */
    calls.ready = 0;
    drain_all(&waiting, &got);
    room_sub_set_waiting(&waiting, false);
    assert_false(waiting.waiting);
    pub(r, "4");
    assert_int_equal(hub_flush(hub), 3);

    /* A waiting subscriber that falls out of the ring is called anyway. */
    calls.ready = 0;
    drain_all(&live, &got);
    drain_all(&other, &got);
    drain_all(&waiting, &got);
    room_sub_set_waiting(&waiting, true);
    room_sub_set_waiting(&waiting, true); /* unchanged: no-op */
    pub(r, "5");
    assert_int_equal(hub_flush(hub), 2); /* live, other */
    assert_false(was_ready(&waiting));
    /* Frame 5 stays while a live subscriber is owed it: only once they
     * were written to can it go. */
    drain_all(&live, &got);
    drain_all(&other, &got);
    pub(r, "6");
    assert_int_equal(hub_flush(hub), 2); /* live, other */
    calls.ready = 0;
    pub(r, "7");
    pub(r, "8"); /* ring 6 7 8: frame 5 is gone */
    assert_true(room_sub_lagged(&waiting));
    assert_int_equal(hub_flush(hub), 3);
    assert_true(was_ready(&waiting));

    room_unsubscribe(&live);
    room_unsubscribe(&waiting);
    room_unsubscribe(&other);
    bytes_free(&got);
    hub_free(hub);
}

static void test_flush_replay_subscribe(void **state)
{
    (void)state;
    struct hub *hub = default_hub(1);
    struct room *r = room_of(hub, "r");
    pub(r, "a");
    hub_flush(hub);
    calls.ready = 0;

    /* Subscribing with a replay owed makes the flush hand it over. */
    struct subscriber s = {0};
    struct room_start st = room_start_history(r, 1);
    room_subscribe(r, &s, &st, NULL, 0);
    assert_int_equal(hub_flush(hub), 1);
    assert_ptr_equal(calls.ready_subs[0], &s);

    /* Subscribing live owes nothing: no call. */
    struct subscriber t = {0};
    st = room_start_live(r);
    room_subscribe(r, &t, &st, NULL, 0);
    calls.ready = 0;
    assert_int_equal(hub_flush(hub), 0);

    room_unsubscribe(&s);
    room_unsubscribe(&t);
    hub_free(hub);
}

static void test_flush_frees_rooms(void **state)
{
    (void)state;
    struct hub *hub = default_hub(1);

    /* A room nobody used is freed at the flush. */
    room_of(hub, "unused");
    assert_int_equal(hub_room_count(hub), 1);
    hub_flush(hub);
    assert_int_equal(hub_room_count(hub), 0);

    /* A room with frames stays. */
    struct room *kept = room_of(hub, "kept");
    pub(kept, "x");
    hub_flush(hub);
    hub_flush(hub);
    assert_int_equal(hub_room_count(hub), 1);
    assert_ptr_equal(hub_room(hub, S("kept")), kept);

    /* A room with a subscriber stays until it leaves. */
    struct room *sr = room_of(hub, "subscribed");
    struct subscriber s = {0};
    struct room_start st = room_start_live(sr);
    room_subscribe(sr, &s, &st, NULL, 0);
    hub_flush(hub);
    hub_flush(hub);
    assert_int_equal(hub_room_count(hub), 2);
    assert_ptr_equal(hub_room(hub, S("subscribed")), sr);
    room_unsubscribe(&s);
    room_unsubscribe(&s); /* a second time: no-op */
    assert_int_equal(hub_room_count(hub), 2);
    hub_flush(hub);
    assert_int_equal(hub_room_count(hub), 1);

    /* A subscriber of a room with frames leaving does not free it. */
    st = room_start_live(kept);
    room_subscribe(kept, &s, &st, NULL, 0);
    room_unsubscribe(&s);
    hub_flush(hub);
    assert_int_equal(hub_room_count(hub), 1);
    assert_int_equal(room_frames(kept), 1);

    /* A zeroed subscriber that never joined: unsubscribe is a no-op. */
    struct subscriber z = {0};
    room_unsubscribe(&z);
    hub_free(hub);
}

static void test_flush_ready_closes(void **state)
{
    (void)state;
    /* The ready callback may close the subscriber it is handed. */
    struct hub *hub = default_hub(1);
    struct room *r = room_of(hub, "r");
    struct room *e = room_of(hub, "empty");
    struct subscriber subs[5];
    memset(subs, 0, sizeof subs);
    struct room_start st = room_start_live(r);
    for (int i = 0; i < 5; i++) {
        room_subscribe(r, &subs[i], &st, NULL, 0);
    }
    room_sub_set_waiting(&subs[2], true);
    struct subscriber es = {0};
    st = room_start_live(e);
    room_subscribe(e, &es, &st, NULL, 0);
    pub(r, "x");
    calls.unsubscribe_in_ready = true;
    assert_int_equal(hub_flush(hub), 4);
    assert_int_equal(room_subscribers(r), 1);
    assert_int_equal(hub_room_count(hub), 2);
    room_unsubscribe(&subs[2]);
    room_unsubscribe(&es);
    hub_flush(hub);
    assert_int_equal(hub_room_count(hub), 1); /* "empty" is gone, "r" has a frame */
    hub_free(hub);
}

static void test_schedule_callback(void **state)
{
    (void)state;
    struct hub *hub = default_hub(1);
    assert_int_equal(calls.schedule, 0);
    struct room *r = room_of(hub, "r");
    assert_int_equal(calls.schedule, 1); /* a new room must be checked */
    pub(r, "a");
    pub(r, "b");
    room_of(hub, "r");
    assert_int_equal(calls.schedule, 1); /* once until the flush */
    hub_flush(hub);
    assert_int_equal(calls.schedule, 1);
    hub_flush(hub);
    assert_int_equal(calls.schedule, 1);
    pub(r, "c");
    /* Nobody to write to: the publish itself kept the ring in bounds. */
    assert_int_equal(calls.schedule, 1);
    struct room *q = room_of(hub, "q");
    assert_int_equal(calls.schedule, 2);
    pub(q, "d");
    assert_int_equal(calls.schedule, 2);
    struct subscriber sub = {0};
    struct room_start live = room_start_live(r);
    room_subscribe(r, &sub, &live, NULL, 0);
    hub_flush(hub);
    pub(r, "e");
    assert_int_equal(calls.schedule, 3); /* a subscriber to write to */
    hub_flush(hub);
    room_unsubscribe(&sub);
    hub_flush(hub);

    /* A replay subscription schedules; a live one does not. */
    struct subscriber s = {0}, t = {0};
    struct room_start st = room_start_live(r);
    room_subscribe(r, &s, &st, NULL, 0);
    assert_int_equal(calls.schedule, 3);
    st = room_start_history(r, 2);
    room_subscribe(r, &t, &st, NULL, 0);
    assert_int_equal(calls.schedule, 4);
    hub_flush(hub);
    room_unsubscribe(&s);
    room_unsubscribe(&t);

    /* A hub without a schedule callback works too. */
    struct hub_limits lim = {.history = 4, .history_bytes = 4096, .max_rooms = 4};
    struct hub *h2 = hub_new(&lim, 1, on_ready, NULL, &calls);
    assert_non_null(h2);
    pub(room_of(h2, "x"), "y");
    hub_flush(h2);
    hub_free(h2);
    hub_free(hub);
}

/* ---------------------------------------------------------------- max_rooms */

static void test_max_rooms_lru(void **state)
{
    (void)state;
    struct hub *hub = make_hub(10, 1u << 20, 3, 1);
    struct room *a = room_of(hub, "a");
    pub(a, "a1"); /* 1 */
    struct room *b = room_of(hub, "b");
    pub(b, "b1"); /* 2 */
    struct room *c = room_of(hub, "c");
    pub(c, "c1"); /* 3 */
    hub_flush(hub);
    pub(a, "a2"); /* 4: a is now the most recently used */
    hub_flush(hub);
    assert_int_equal(hub_room_count(hub), 3);

    /* d evicts b, the least recently used. */
    struct room *d = room_of(hub, "d");
    assert_int_equal(hub_room_count(hub), 3);
    assert_null(hub_room_find(hub, S("b")));
    assert_ptr_equal(hub_room(hub, S("a")), a);
    assert_ptr_equal(hub_room(hub, S("c")), c);
    assert_int_equal(room_frames(a), 2);
    assert_int_equal(room_frames(c), 1);
    pub(d, "d1"); /* 5 */
    hub_flush(hub);

    /* b comes back empty (its history went with it) and evicts c. */
    struct room *b2 = room_of(hub, "b");
    assert_int_equal(room_frames(b2), 0);
    assert_null(hub_room_find(hub, S("c")));
    assert_int_equal(hub_room_count(hub), 3);
    assert_ptr_equal(hub_room(hub, S("a")), a);
    assert_ptr_equal(hub_room(hub, S("d")), d);

    /* The new b cannot vouch for ids up to what the old rooms held. */
    uint64_t first;
    struct room_start st = start_after(b2, 1, &first);
    assert_true(st.reset);
    st = start_after(b2, 3, &first); /* c1 was the newest evicted id */
    assert_false(st.reset);
    hub_free(hub);
}

static void test_max_rooms_subscribed_not_evicted(void **state)
{
    (void)state;
    struct hub *hub = make_hub(10, 1u << 20, 2, 1);
    struct room *a = room_of(hub, "a");
    struct room *b = room_of(hub, "b");
    struct subscriber sa = {0}, sb = {0};
    struct room_start st = room_start_live(a);
    room_subscribe(a, &sa, &st, NULL, 0);
    st = room_start_live(b);
    room_subscribe(b, &sb, &st, NULL, 0);
    hub_flush(hub);
    assert_int_equal(hub_room_count(hub), 2);

    assert_null(hub_room(hub, S("c")));
    assert_int_equal(hub_room_count(hub), 2);
    assert_ptr_equal(hub_room(hub, S("a")), a); /* existing rooms are still found */

    /* Once b's subscriber leaves (b keeps a frame), b can be evicted. */
    pub(b, "x");
    room_unsubscribe(&sb);
    hub_flush(hub);
    assert_int_equal(hub_room_count(hub), 2);
    struct room *c = hub_room(hub, S("c"));
    assert_non_null(c);
    assert_int_equal(hub_room_count(hub), 2);
    assert_ptr_equal(hub_room(hub, S("a")), a);
    assert_int_equal(room_subscribers(a), 1);

    room_unsubscribe(&sa);
    hub_free(hub);
}

static void test_max_rooms_current_iteration(void **state)
{
    (void)state;
    /* A room handed out in this iteration lives until the flush, so it is
     * not evicted for another one. */
    struct hub *hub = make_hub(10, 1u << 20, 1, 1);
    struct room *a = room_of(hub, "a");
    assert_null(hub_room(hub, S("b")));
    assert_ptr_equal(hub_room(hub, S("a")), a);
    hub_flush(hub); /* a had nothing: freed */
    assert_int_equal(hub_room_count(hub), 0);
    struct room *b = room_of(hub, "b");
    pub(b, "x");
    hub_flush(hub);
    struct room *c = room_of(hub, "c"); /* evicts b */
    assert_int_equal(hub_room_count(hub), 1);
    assert_ptr_equal(hub_room(hub, S("c")), c);
    hub_free(hub);
}

/* A subscriber whose socket takes everything gets a burst of more than a
 * ring's worth of messages published in one iteration; one whose socket
 * refused bytes falls out; the ring is trimmed back once they were written. */
static void test_burst_keeps_live_subscribers(void **state)
{
    (void)state;
    struct hub *hub = make_hub(5, 1u << 20, 10, 1);
    struct room *r = room_of(hub, "r");
    struct subscriber live = {0}, full = {0};
    struct room_start st = room_start_live(r);
    room_subscribe(r, &live, &st, NULL, 0);
    room_subscribe(r, &full, &st, NULL, 0);
    room_sub_set_waiting(&full, true);
    hub_flush(hub);

    struct bytes got = {0}, want = {0};
    for (int i = 0; i < 8; i++) {
        char data[16];
        snprintf(data, sizeof data, "m%d", i);
        expect_frame(&want, pub(r, data), NULL, data);
    }
    /* Nothing the live subscriber is owed was evicted... */
    assert_int_equal(room_frames(r), 8);
    assert_false(room_sub_lagged(&live));
    /* ...and the flush writes it all (the ready callback, done here). */
    drain_all(&live, &got);
    assert_bytes_equal(&got, &want);
    calls.ready = 0;
    assert_int_equal(hub_flush(hub), 1); /* full, lagged: live owes nothing */
    assert_int_equal(room_frames(r), 5);
    assert_true(room_sub_lagged(&full));
    assert_false(room_sub_lagged(&live));

    room_unsubscribe(&live);
    room_unsubscribe(&full);
    bytes_free(&got);
    bytes_free(&want);
    hub_free(hub);
}

static struct hub *make_capped_hub(size_t max_memory)
{
    memset(&calls, 0, sizeof calls);
    struct hub_limits lim = {
        .history = 1000, .history_bytes = 1u << 20, .max_rooms = 100, .max_memory = max_memory};
    struct hub *hub = hub_new(&lim, 1, on_ready, on_schedule, &calls);
    assert_non_null(hub);
    return hub;
}

/* Over max_memory the least recently used rooms lose their oldest frames
 * first; a resume that needed them is reset; the newest stay. */
static void test_max_memory_evicts_lru(void **state)
{
    (void)state;
    char data[1001];
    memset(data, 'x', 1000);
    data[1000] = '\0';
    struct hub *hub = make_capped_hub(12000);
    struct room *a = room_of(hub, "a"), *b = room_of(hub, "b");
    uint64_t a_first = pub(a, data);
    for (int i = 0; i < 7; i++) {
        pub(a, data);
    }
    uint64_t b_first = pub(b, data);
    for (int i = 0; i < 7; i++) {
        pub(b, data);
    }
    assert_true(hub_memory(hub) <= 12000);
    assert_int_equal(hub_max_memory(hub), 12000);
    /* a was used least recently: it lost frames, b lost none. */
    assert_true(room_frames(a) < 8);
    assert_int_equal(room_frames(b), 8);
    uint64_t first;
    struct room_start st = start_after(a, a_first, &first);
    assert_true(st.reset);
    st = start_after(b, b_first, &first);
    assert_false(st.reset);
    /* Much more traffic in b: a is emptied entirely before b loses any
     * newest frame, and every publish fits. */
    uint64_t last = 0;
    for (int i = 0; i < 50; i++) {
        last = pub(b, data);
    }
    assert_true(hub_memory(hub) <= 12000);
    assert_int_equal(room_frames(a), 0);
    assert_true(room_frames(b) > 0);
    st = start_after(b, last - 1, &first);
    assert_false(st.reset);
    assert_int_equal(first, last);
    hub_flush(hub);
    hub_free(hub);
}

/* Frames a live subscriber is owed are not evicted for memory: when
 * nothing else can go, the publish is refused with ENOBUFS. */
static void test_max_memory_refuses_when_all_protected(void **state)
{
    (void)state;
    char data[1001];
    memset(data, 'y', 1000);
    data[1000] = '\0';
    struct hub *hub = make_capped_hub(5000);
    struct room *r = room_of(hub, "r");
    struct subscriber sub = {0};
    struct room_start st = room_start_live(r);
    room_subscribe(r, &sub, &st, NULL, 0);
    int published = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        struct publish_result res;
        if (room_publish(r, NULL, 0, data, 1000, NULL, 0, &res) == 0) {
            published++;
        } else {
            assert_int_equal(errno, ENOBUFS);
            refused++;
        }
    }
    assert_true(published >= 3);
    assert_true(refused > 0);
    assert_true(hub_memory(hub) <= 5000);
    assert_false(room_sub_lagged(&sub));
    /* Once it was written to, there is room again. */
    struct bytes got = {0};
    drain_all(&sub, &got);
    hub_flush(hub);
    pub(r, "after");
    room_unsubscribe(&sub);
    bytes_free(&got);
    hub_free(hub);
}

/* Messages whose journal sync failed are dropped before anyone sees them;
 * cursors pointing past the new head are pulled back. */
static void test_cancel_from(void **state)
{
    (void)state;
    struct hub *hub = make_hub(10, 1u << 20, 10, 1);
    hub_set_deferred_commit(hub, true);
    struct room *a = room_of(hub, "a");
    pub(a, "a1");
    hub_commit(hub);
    hub_flush(hub);
    struct room *b = room_of(hub, "b");
    uint64_t failed = pub(a, "a2");
    pub(b, "b1");
    struct subscriber late = {0};
    struct room_start st = room_start_live(a); /* at the head, past a2 */
    room_subscribe(a, &late, &st, NULL, 0);
    assert_int_equal(hub_cancel_from(hub, failed), 2);
    assert_int_equal(room_frames(a), 1);
    assert_int_equal(room_frames(b), 0);
    hub_commit(hub);
    uint64_t next = pub(a, "a3");
    assert_true(next > failed + 1); /* ids are not reused */
    hub_commit(hub);
    struct bytes got = {0}, want = {0};
    drain_all(&late, &got);
    expect_frame(&want, next, NULL, "a3");
    assert_bytes_equal(&got, &want);
    room_unsubscribe(&late);
    bytes_free(&got);
    bytes_free(&want);
    hub_flush(hub);
    hub_free(hub);
}

/* A corrupt journal stretch: resumes from before it are reset in every
 * room, also in rooms made later. */
static void test_mark_lost(void **state)
{
    (void)state;
    struct hub *hub = make_hub(10, 1u << 20, 10, 1);
    struct room *a = room_of(hub, "a");
    pub(a, "1");
    pub(a, "2");
    pub(a, "3");
    hub_mark_lost(hub, 2);
    uint64_t first;
    assert_true(start_after(a, 1, &first).reset);
    assert_false(start_after(a, 2, &first).reset);
    struct room *n = room_of(hub, "new");
    assert_true(start_after(n, 1, &first).reset);
    hub_flush(hub);
    hub_free(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hub_new_free),
        cmocka_unit_test(test_room_name_valid),
        cmocka_unit_test(test_hub_room_create_find),
        cmocka_unit_test(test_hub_room_find_foreach),
        cmocka_unit_test(test_publish_ids),
        cmocka_unit_test(test_published_counts),
        cmocka_unit_test(test_frame_bytes),
        cmocka_unit_test(test_ring_evict_by_count),
        cmocka_unit_test(test_ring_evict_by_bytes),
        cmocka_unit_test(test_sub_partial_writes),
        cmocka_unit_test(test_sub_advance_past_end),
        cmocka_unit_test(test_sub_iov_max_bytes),
        cmocka_unit_test(test_sub_wraparound),
        cmocka_unit_test(test_sub_survives_slot_growth),
        cmocka_unit_test(test_sub_lagged),
        cmocka_unit_test(test_start_live_history),
        cmocka_unit_test(test_start_after),
        cmocka_unit_test(test_start_after_first_id),
        cmocka_unit_test(test_start_stale),
        cmocka_unit_test(test_sender_exclusion),
        cmocka_unit_test(test_sender_exclusion_history),
        cmocka_unit_test(test_advance_counts_written),
        cmocka_unit_test(test_flush_ready),
        cmocka_unit_test(test_flush_replay_subscribe),
        cmocka_unit_test(test_flush_frees_rooms),
        cmocka_unit_test(test_flush_ready_closes),
        cmocka_unit_test(test_schedule_callback),
        cmocka_unit_test(test_max_rooms_lru),
        cmocka_unit_test(test_max_rooms_subscribed_not_evicted),
        cmocka_unit_test(test_max_rooms_current_iteration),
        cmocka_unit_test(test_deferred_commit),
        cmocka_unit_test(test_burst_keeps_live_subscribers),
        cmocka_unit_test(test_max_memory_evicts_lru),
        cmocka_unit_test(test_max_memory_refuses_when_all_protected),
        cmocka_unit_test(test_cancel_from),
        cmocka_unit_test(test_mark_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
