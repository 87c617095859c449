/*
 * Tests for src/cluster_proto.c against a real redis-server: the append and
 * read scripts as Redis runs them, through the project's own client
 * (src/redis.c). Concurrent appends get strictly increasing, gap-free ids; a
 * subscriber gets payloads that decode to exactly what was appended, in id
 * order, the same bytes the C encoder makes; backfill returns exactly what
 * follows an id, in pages, and reports trimmed history, a lost room and a
 * new epoch as gaps; EVALSHA falls back to EVAL after SCRIPT FLUSH; 64 KiB
 * and NUL/CR/LF data round-trip. See redis_harness.h for the server and loop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_proto.h"
#include "redis_harness.h"

/* The publishing node's clock, as the single-node server's first id. */
static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------ a node */

/* A commands connection with both scripts loaded. */
struct node {
    struct tc c;
    char sha_append[41], sha_read[41];
    int loaded;
};

static void on_load(struct redis *r, const struct resp_value *v, struct resp_reader *rest,
                    void *arg)
{
    (void)r;
    (void)rest;
    char *sha = arg;
    assert_int_equal(cluster_proto_parse_load_reply(v, sha), 0);
}

static bool loaded(void *arg)
{
    struct node *n = arg;
    return n->sha_append[0] && n->sha_read[0];
}

static void node_open(struct node *n)
{
    struct cluster_args a;
    memset(n, 0, sizeof *n);
    tc_open(&n->c, shared_url, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_ready, &n->c, 5000));
    cluster_proto_load_args(&a, CLUSTER_SCRIPT_APPEND);
    assert_int_equal(redis_command(n->c.r, a.argc, a.argv, a.lens, on_load, n->sha_append), 0);
    cluster_proto_load_args(&a, CLUSTER_SCRIPT_READ);
    assert_int_equal(redis_command(n->c.r, a.argc, a.argv, a.lens, on_load, n->sha_read), 0);
    assert_true(wait_for(loaded, n, 5000));
}

/* Replies to appends, in the order they were sent on one connection. */
struct appends {
    size_t sent, done, failed, noscript;
    uint64_t ids[2048], epoch;
};

static void on_append(struct redis *r, const struct resp_value *v, struct resp_reader *rest,
                      void *arg)
{
    (void)r;
    struct appends *ap = arg;
    uint64_t id, epoch;
    if (cluster_proto_is_noscript(v)) {
        ap->noscript++;
    }
    if (cluster_proto_parse_append_reply(v, rest, &id, &epoch) < 0) {
        ap->failed++;
    } else {
        assert_true(ap->done < sizeof ap->ids / sizeof *ap->ids);
        ap->ids[ap->done] = id;
        ap->epoch = epoch;
    }
    ap->done++;
}

static bool appends_done(void *arg)
{
    struct appends *ap = arg;
    return ap->done == ap->sent;
}

static void append_async(struct node *n, const char *sha, const struct cluster_append *m,
                         struct appends *ap)
{
    struct cluster_args a;
    assert_int_equal(cluster_proto_append_args(&a, sha, m), 0);
    assert_int_equal(redis_command(n->c.r, a.argc, a.argv, a.lens, on_append, ap), 0);
    ap->sent++;
}

/* Appends one message and waits: its id (and the epoch), 0 on failure. */
static uint64_t append(struct node *n, const char *sha, const struct cluster_append *m,
                       uint64_t *epoch)
{
    struct appends ap = {0};
    append_async(n, sha, m, &ap);
    assert_true(wait_for(appends_done, &ap, 5000));
    if (epoch) {
        *epoch = ap.epoch;
    }
    return ap.failed ? 0 : ap.ids[0];
}

static struct cluster_append msg(const char *room, const char *data, size_t len)
{
    struct cluster_append m = {.room = room,
                               .room_len = strlen(room),
                               .time_base = wall_us(),
                               .history = 1000,
                               .data = data,
                               .data_len = len};
    return m;
}

/* ------------------------------------------------------------ backfill */

struct backfill {
    bool done;
    uint64_t epoch, after; /* what the caller holds */
    enum cluster_backfill_result res;
    struct cluster_backfill b;
    size_t n;
    uint64_t ids[2048];
    /* When set, every message's data must equal it. */
    const char *data;
    size_t data_len;
    size_t data_bad;
};

static void on_backfill_msg(const struct cluster_msg *m, void *arg)
{
    struct backfill *bf = arg;
    assert_true(bf->n < sizeof bf->ids / sizeof *bf->ids);
    bf->ids[bf->n++] = m->id;
    if (bf->data && (m->data_len != bf->data_len || memcmp(m->data, bf->data, m->data_len) != 0)) {
        bf->data_bad++;
    }
}

static void on_backfill(struct redis *r, const struct resp_value *v, struct resp_reader *rest,
                        void *arg)
{
    (void)r;
    struct backfill *bf = arg;
    bf->done = true;
    bf->res =
        cluster_proto_parse_backfill(v, rest, bf->epoch, bf->after, &bf->b, on_backfill_msg, bf);
}

static bool backfill_done(void *arg)
{
    return ((struct backfill *)arg)->done;
}

/* One read script round trip; bf->n accumulates over calls. */
static enum cluster_backfill_result backfill(struct node *n, const char *sha, const char *room,
                                             struct backfill *bf, uint64_t count)
{
    struct cluster_args a;
    bf->done = false;
    assert_int_equal(cluster_proto_backfill_args(&a, sha, room, strlen(room), bf->after, count), 0);
    assert_int_equal(redis_command(n->c.r, a.argc, a.argv, a.lens, on_backfill, bf), 0);
    assert_true(wait_for(backfill_done, bf, 5000));
    return bf->res;
}

/* ------------------------------------------------------------ subscriber */

struct sub {
    struct redis *r;
    const char *channel;
    size_t n, bad;
    uint64_t ids[2048], epoch;
    char clients[2048];   /* first byte of each message's client id */
    char small[2048][32]; /* each message's data, when shorter than 32 bytes */
    char *last;           /* the last payload's data, copied */
    size_t last_len;
    size_t not_canonical; /* payloads the C encoder would not write as is */
};

static void sub_ready(struct redis *r, void *arg)
{
    struct sub *s = arg;
    assert_int_equal(redis_subscribe(r, s->channel, strlen(s->channel)), 0);
}

static void sub_down(struct redis *r, const char *why, void *arg)
{
    (void)r;
    (void)arg;
    fail_msg("subscriber down: %s", why);
}

static void sub_message(struct redis *r, const char *ch, size_t chlen, const char *p, size_t plen,
                        void *arg)
{
    (void)r;
    struct sub *s = arg;
    struct cluster_msg m;
    size_t room_len;
    if (!cluster_proto_channel_room(ch, chlen, &room_len) ||
        cluster_proto_payload_decode(p, plen, &m) < 0) {
        s->bad++;
        return;
    }
    /* The Lua script and the C encoder write the same bytes. */
    char *again = malloc(plen);
    assert_non_null(again);
    if (cluster_proto_payload_encode(again, plen, &m) != plen || memcmp(again, p, plen) != 0) {
        s->not_canonical++;
    }
    free(again);
    assert_true(s->n < sizeof s->ids / sizeof *s->ids);
    s->clients[s->n] = m.client_len ? m.client[0] : '-';
    if (m.data_len < sizeof s->small[0]) {
        memcpy(s->small[s->n], m.data, m.data_len);
        s->small[s->n][m.data_len] = '\0';
    }
    s->ids[s->n++] = m.id;
    s->epoch = m.epoch;
    free(s->last);
    s->last = malloc(m.data_len + 1);
    assert_non_null(s->last);
    memcpy(s->last, m.data, m.data_len);
    s->last_len = m.data_len;
}

static void sub_open(struct sub *s, const char *channel)
{
    struct redis_url u;
    char err[256];
    struct redis_callbacks cb = {
        .on_ready = sub_ready, .on_down = sub_down, .on_message = sub_message, .arg = s};
    memset(s, 0, sizeof *s);
    s->channel = channel;
    assert_int_equal(redis_url_parse(shared_url, &u, err, sizeof err), 0);
    s->r = redis_new(loop, &u, REDIS_SUBSCRIBER, NULL, &cb);
    assert_non_null(s->r);
    redis_start(s->r);
}

static bool sub_subscribed(void *arg)
{
    struct sub *s = arg;
    return redis_is_ready(s->r) && redis_awaited(s->r) == 0;
}

struct sub_wait {
    struct sub *s;
    size_t n;
};

static bool sub_has(void *arg)
{
    struct sub_wait *w = arg;
    return w->s->n >= w->n;
}

static void sub_close(struct sub *s)
{
    redis_free(s->r);
    free(s->last);
}

/* ------------------------------------------------------------ tests */

enum { EACH = 500 }; /* messages from each of the two racing nodes */

static int race_data(char *out, size_t cap, char from, int i)
{
    return snprintf(out, cap, "{\"from\":\"%c\",\"n\":%d}", from, i);
}

/* Each node's ids increase; together they cover epoch..epoch+999. */
static void check_race_ids(const struct appends *pa, const struct appends *pb)
{
    static bool seen[2 * EACH];
    uint64_t epoch = pa->epoch;
    memset(seen, 0, sizeof seen);
    assert_int_equal(pa->failed + pb->failed, 0);
    assert_int_equal(pa->epoch, pb->epoch);
    for (int i = 0; i < EACH; i++) {
        if (i > 0) {
            assert_true(pa->ids[i] > pa->ids[i - 1]);
            assert_true(pb->ids[i] > pb->ids[i - 1]);
        }
        uint64_t ka = pa->ids[i] - epoch, kb = pb->ids[i] - epoch;
        assert_true(ka < 2 * EACH && kb < 2 * EACH && !seen[ka] && !seen[kb]);
        seen[ka] = seen[kb] = true;
    }
}

/* All 1000 in id order, each what its node appended, with its client id. */
static void check_race_delivery(struct sub *s, const struct appends *pa, const struct appends *pb)
{
    uint64_t epoch = pa->epoch;
    struct sub_wait w = {s, 2 * EACH};
    assert_true(wait_for(sub_has, &w, 10000));
    run_for(50);
    assert_int_equal(s->n, 2 * EACH);
    assert_int_equal(s->bad, 0);
    assert_int_equal(s->not_canonical, 0);
    assert_int_equal(s->epoch, epoch);
    for (size_t i = 0; i < s->n; i++) {
        assert_true(s->ids[i] == epoch + i);
    }
    for (int i = 0; i < EACH; i++) {
        char want[32];
        uint64_t ka = pa->ids[i] - epoch, kb = pb->ids[i] - epoch;
        assert_int_equal(s->clients[ka], 'a');
        assert_int_equal(s->clients[kb], 'b');
        race_data(want, sizeof want, 'a', i);
        assert_string_equal(s->small[ka], want);
        race_data(want, sizeof want, 'b', i);
        assert_string_equal(s->small[kb], want);
    }
}

/* Backfill after k = epoch + 399: exactly the 600 that follow, in pages. */
static void check_race_backfill(struct node *a, struct node *b, uint64_t epoch)
{
    static struct backfill bf;
    memset(&bf, 0, sizeof bf);
    bf.epoch = epoch;
    bf.after = epoch + 399;
    int pages = 0;
    enum cluster_backfill_result r;
    while ((r = backfill(a, a->sha_read, "race", &bf, 128)) == CLUSTER_BACKFILL_MORE) {
        bf.after = bf.b.last;
        pages++;
    }
    assert_int_equal(r, CLUSTER_BACKFILL_DONE);
    assert_int_equal(pages, 4); /* 128 * 4 + 88 */
    assert_int_equal(bf.n, 600);
    for (size_t i = 0; i < bf.n; i++) {
        assert_true(bf.ids[i] == epoch + 400 + i);
    }
    assert_true(bf.b.top == epoch + 999 && bf.b.last == bf.b.top);
    /* Caught up: nothing more, no gap. */
    memset(&bf, 0, sizeof bf);
    bf.epoch = epoch;
    bf.after = epoch + 999;
    assert_int_equal(backfill(b, b->sha_read, "race", &bf, 128), CLUSTER_BACKFILL_DONE);
    assert_int_equal(bf.n, 0);
    /* An id never issued here is a gap. */
    bf.after = epoch + 1000;
    assert_int_equal(backfill(b, b->sha_read, "race", &bf, 128), CLUSTER_BACKFILL_GAP);
}

/*
 * Two nodes append to one room at once, 500 each, pipelined and interleaved:
 * the 1000 ids are epoch..epoch+999, each node's strictly increasing; the
 * subscriber gets all 1000 in id order, each from the node that sent it,
 * with its data; then backfill after id k returns exactly k+1..top, in
 * pages of 128.
 */
static void test_concurrent_appends(void **state)
{
    (void)state;
    struct node a, b;
    static struct sub s;
    static struct appends pa, pb;
    node_open(&a);
    node_open(&b);
    sub_open(&s, "sse:{race}");
    assert_true(wait_for(sub_subscribed, &s, 5000));
    memset(&pa, 0, sizeof pa);
    memset(&pb, 0, sizeof pb);
    uint64_t t0 = now_us();
    for (int i = 0; i < EACH; i++) {
        char da[32], db[32];
        struct cluster_append ma = msg("race", da, (size_t)race_data(da, sizeof da, 'a', i));
        struct cluster_append mb = msg("race", db, (size_t)race_data(db, sizeof db, 'b', i));
        ma.client = "a-node";
        ma.client_len = 6;
        mb.client = "b-node";
        mb.client_len = 6;
        append_async(&a, a.sha_append, &ma, &pa);
        append_async(&b, b.sha_append, &mb, &pb);
    }
    assert_true(wait_for(appends_done, &pa, 10000));
    assert_true(wait_for(appends_done, &pb, 10000));
    uint64_t us = now_us() - t0;
    printf("append: %d scripts from two connections in %llu us (%.0f/s)\n", 2 * EACH,
           (unsigned long long)us, us ? 2e6 * EACH / (double)us : 0.0);
    check_race_ids(&pa, &pb);
    check_race_delivery(&s, &pa, &pb);
    check_race_backfill(&a, &b, pa.epoch);
    sub_close(&s);
    redis_free(a.c.r);
    redis_free(b.c.r);
}

/* With MAXLEN ~ 10, 600 appends leave a short stream: a backfill from
 * before what is kept is a gap, one from within it is complete. */
static void test_trim_gap(void **state)
{
    (void)state;
    struct node n;
    struct reply rep;
    struct appends ap = {0};
    node_open(&n);
    for (int i = 0; i < 600; i++) {
        struct cluster_append m = msg("trim", "{}", 2);
        m.history = 10;
        append_async(&n, n.sha_append, &m, &ap);
    }
    assert_true(wait_for(appends_done, &ap, 10000));
    assert_int_equal(ap.failed, 0);
    uint64_t epoch = ap.epoch, top = ap.ids[599];
    assert_true(top == epoch + 599);
    CALL(&n.c, &rep, "XLEN", "sse:{trim}:s");
    printf("trim: MAXLEN ~ 10 kept %lld of 600 entries\n", (long long)rep.integer);
    assert_true(rep.integer >= 10 && rep.integer < 600);
    long long kept = rep.integer;

    static struct backfill bf;
    memset(&bf, 0, sizeof bf);
    bf.epoch = epoch;
    bf.after = epoch; /* the first message: long trimmed */
    assert_int_equal(backfill(&n, n.sha_read, "trim", &bf, 100), CLUSTER_BACKFILL_GAP);
    assert_int_equal(bf.n, 0);
    /* From the oldest kept: complete. */
    bf.after = top - (uint64_t)kept;
    assert_int_equal(backfill(&n, n.sha_read, "trim", &bf, 1000), CLUSTER_BACKFILL_DONE);
    assert_int_equal(bf.n, (size_t)kept);
    assert_true(bf.ids[0] == bf.after + 1 && bf.ids[bf.n - 1] == top);
    /* One before that is gone. */
    memset(&bf, 0, sizeof bf);
    bf.epoch = epoch;
    bf.after = top - (uint64_t)kept - 1;
    assert_int_equal(backfill(&n, n.sha_read, "trim", &bf, 1000), CLUSTER_BACKFILL_GAP);
    /* No id at all: whatever is kept, no gap. */
    memset(&bf, 0, sizeof bf);
    assert_int_equal(backfill(&n, n.sha_read, "trim", &bf, 1000), CLUSTER_BACKFILL_DONE);
    assert_int_equal(bf.n, (size_t)kept);
    redis_free(n.c.r);
}

/*
 * Redis loses everything (FLUSHALL): the next append starts a new epoch at
 * its time base, and a node holding the old epoch sees a gap whatever id it
 * asks after; so does one that lost only the hash, or half of it, whose
 * stale stream is dropped rather than continued. A node whose clock is far
 * behind cannot start an epoch below Redis's clock.
 */
static void test_new_epoch(void **state)
{
    (void)state;
    struct node n;
    struct reply rep;
    struct sub s;
    uint64_t e1, e2, e3, e4;
    node_open(&n);
    sub_open(&s, "sse:{epoch}");
    assert_true(wait_for(sub_subscribed, &s, 5000));
    struct cluster_append m = msg("epoch", "one", 3);
    uint64_t first = append(&n, n.sha_append, &m, &e1);
    /* Redis's clock, read after ours, may be a little later. */
    assert_true(e1 >= m.time_base && e1 < m.time_base + 1000000 && first == e1);
    m.time_base = wall_us() + 5000000; /* ignored: the room has an epoch */
    assert_int_equal(append(&n, n.sha_append, &m, &e1), first + 1);
    assert_int_equal(e1, first);

    CALL(&n.c, &rep, "FLUSHALL");
    m = msg("epoch", "two", 3);
    m.time_base += 5000000; /* a node ahead of Redis: its clock is taken */
    uint64_t id = append(&n, n.sha_append, &m, &e2);
    assert_true(e2 == m.time_base && id == e2 && e2 > first + 1);
    struct sub_wait w = {&s, 3};
    assert_true(wait_for(sub_has, &w, 5000));
    assert_int_equal(s.epoch, e2);
    assert_true(s.ids[2] == e2 && s.last_len == 3 && memcmp(s.last, "two", 3) == 0);

    static struct backfill bf;
    memset(&bf, 0, sizeof bf);
    bf.epoch = e1;
    bf.after = first + 1;
    assert_int_equal(backfill(&n, n.sha_read, "epoch", &bf, 100), CLUSTER_BACKFILL_GAP);
    /* The same id from a node that never knew the epoch: below it, a gap. */
    bf.epoch = 0;
    assert_int_equal(backfill(&n, n.sha_read, "epoch", &bf, 100), CLUSTER_BACKFILL_GAP);
    /* A node already in the new epoch is fine. */
    bf.epoch = e2;
    bf.after = e2;
    assert_int_equal(backfill(&n, n.sha_read, "epoch", &bf, 100), CLUSTER_BACKFILL_DONE);

    /* Only the hash lost (evicted, say), from a node whose clock says 1970:
     * a new epoch from Redis's clock, the old stream gone. */
    CALL(&n.c, &rep, "DEL", "sse:{epoch}:m");
    m = msg("epoch", "three", 5);
    uint64_t before = m.time_base;
    m.time_base = 1;
    id = append(&n, n.sha_append, &m, &e3);
    assert_true(e3 >= before && e3 < before + 1000000 && id == e3 && e3 != e2);
    CALL(&n.c, &rep, "XLEN", "sse:{epoch}:s");
    assert_int_equal(rep.integer, 1);
    /* Half a hash is no hash. */
    CALL(&n.c, &rep, "HDEL", "sse:{epoch}:m", "top");
    m = msg("epoch", "four", 4);
    m.time_base = e3 + 10000000;
    id = append(&n, n.sha_append, &m, &e4);
    assert_true(e4 == m.time_base && id == e4);
    CALL(&n.c, &rep, "XLEN", "sse:{epoch}:s");
    assert_int_equal(rep.integer, 1);

    /* A room Redis never had: a gap for an id, nothing for none. */
    memset(&bf, 0, sizeof bf);
    bf.after = e3;
    assert_int_equal(backfill(&n, n.sha_read, "nosuchroom", &bf, 100), CLUSTER_BACKFILL_GAP);
    bf.after = 0;
    assert_int_equal(backfill(&n, n.sha_read, "nosuchroom", &bf, 100), CLUSTER_BACKFILL_DONE);
    assert_true(bf.n == 0 && bf.b.epoch == 0);
    sub_close(&s);
    redis_free(n.c.r);
}

/* SCRIPT FLUSH (or a restarted Redis): EVALSHA answers NOSCRIPT, EVAL does
 * the same work, and the ids go on. */
static void test_noscript_fallback(void **state)
{
    (void)state;
    struct node n;
    struct reply rep;
    struct appends ap = {0};
    uint64_t epoch;
    node_open(&n);
    struct cluster_append m = msg("flush", "x", 1);
    uint64_t id = append(&n, n.sha_append, &m, &epoch);
    assert_true(id != 0);
    CALL(&n.c, &rep, "SCRIPT", "FLUSH");

    append_async(&n, n.sha_append, &m, &ap);
    assert_true(wait_for(appends_done, &ap, 5000));
    assert_int_equal(ap.noscript, 1);
    assert_int_equal(ap.failed, 1);
    /* Nothing was appended by the refused call. */
    assert_int_equal(append(&n, NULL, &m, &epoch), id + 1);
    static struct backfill bf;
    memset(&bf, 0, sizeof bf);
    bf.epoch = epoch;
    bf.after = id;
    assert_int_equal(backfill(&n, n.sha_read, "flush", &bf, 10), CLUSTER_BACKFILL_ERROR);
    assert_int_equal(backfill(&n, NULL, "flush", &bf, 10), CLUSTER_BACKFILL_DONE);
    assert_true(bf.n == 1 && bf.ids[0] == id + 1);

    /* Loading again gives the same SHA1: it names the source. */
    char before[41];
    memcpy(before, n.sha_append, sizeof before);
    redis_free(n.c.r);
    node_open(&n);
    assert_string_equal(n.sha_append, before);
    assert_int_equal(append(&n, n.sha_append, &m, &epoch), id + 2);
    redis_free(n.c.r);
}

/* 64 KiB of every byte value, and a short one of NUL, CR and LF, through
 * PUB/SUB and the stream; the expiry is set on both keys when asked for. */
static void test_binary_data(void **state)
{
    (void)state;
    struct node n;
    struct sub s;
    struct reply rep;
    uint64_t epoch;
    size_t big = 64 * 1024;
    char *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++) {
        data[i] = (char)(i * 31 + 7);
    }
    node_open(&n);
    sub_open(&s, "sse:{bin}");
    assert_true(wait_for(sub_subscribed, &s, 5000));

    struct cluster_append m = msg("bin", data, big);
    m.event = "blob";
    m.event_len = 4;
    uint64_t id = append(&n, n.sha_append, &m, &epoch);
    assert_true(id != 0);
    struct sub_wait w = {&s, 1};
    assert_true(wait_for(sub_has, &w, 5000));
    assert_int_equal(s.last_len, big);
    assert_memory_equal(s.last, data, big);
    assert_int_equal(s.not_canonical, 0);

    static struct backfill bf;
    memset(&bf, 0, sizeof bf);
    bf.epoch = epoch;
    bf.after = id - 1;
    bf.data = data;
    bf.data_len = big;
    /* id - 1 is below the epoch of this new room: a gap. From no id: it. */
    assert_int_equal(backfill(&n, n.sha_read, "bin", &bf, 10), CLUSTER_BACKFILL_GAP);
    bf.after = 0;
    assert_int_equal(backfill(&n, n.sha_read, "bin", &bf, 10), CLUSTER_BACKFILL_DONE);
    assert_true(bf.n == 1 && bf.data_bad == 0);

    const char odd[] = "\0\r\n\r\0\n\0";
    m = msg("bin", odd, sizeof odd);
    m.ttl_s = 100;
    assert_int_equal(append(&n, n.sha_append, &m, &epoch), id + 1);
    w.n = 2;
    assert_true(wait_for(sub_has, &w, 5000));
    assert_int_equal(s.last_len, sizeof odd);
    assert_memory_equal(s.last, odd, sizeof odd);
    memset(&bf, 0, sizeof bf);
    bf.epoch = epoch;
    bf.after = id;
    bf.data = odd;
    bf.data_len = sizeof odd;
    assert_int_equal(backfill(&n, n.sha_read, "bin", &bf, 10), CLUSTER_BACKFILL_DONE);
    assert_true(bf.n == 1 && bf.data_bad == 0);
    CALL(&n.c, &rep, "TTL", "sse:{bin}:s");
    assert_true(rep.integer > 90 && rep.integer <= 100);
    CALL(&n.c, &rep, "TTL", "sse:{bin}:m");
    assert_true(rep.integer > 90 && rep.integer <= 100);
    /* ttl 0: no expiry set. */
    m = msg("nottl", "x", 1);
    assert_true(append(&n, n.sha_append, &m, &epoch) != 0);
    CALL(&n.c, &rep, "TTL", "sse:{nottl}:s");
    assert_int_equal(rep.integer, -1);
    CALL(&n.c, &rep, "TTL", "sse:{nottl}:m");
    assert_int_equal(rep.integer, -1);
    sub_close(&s);
    free(data);
    redis_free(n.c.r);
}

/* Ids near 2^53 stay exact through Lua: the scripts never turn them into
 * doubles and back. */
static void test_large_ids(void **state)
{
    (void)state;
    struct node n;
    uint64_t epoch;
    node_open(&n);
    struct cluster_append m = msg("big", "x", 1);
    m.time_base = CLUSTER_ID_MAX - 3;
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(append(&n, n.sha_append, &m, &epoch), CLUSTER_ID_MAX - 3 + i);
        assert_int_equal(epoch, CLUSTER_ID_MAX - 3);
    }
    static struct backfill bf;
    memset(&bf, 0, sizeof bf);
    bf.epoch = epoch;
    bf.after = epoch;
    assert_int_equal(backfill(&n, n.sha_read, "big", &bf, 10), CLUSTER_BACKFILL_DONE);
    assert_true(bf.n == 2 && bf.ids[1] == CLUSTER_ID_MAX - 1);
    redis_free(n.c.r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    loop = loop_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_appends), cmocka_unit_test(test_trim_gap),
        cmocka_unit_test(test_new_epoch),          cmocka_unit_test(test_noscript_fallback),
        cmocka_unit_test(test_binary_data),        cmocka_unit_test(test_large_ids),
    };
    int rc = cmocka_run_group_tests(tests, shared_rs_setup, shared_rs_teardown);
    loop_free(loop);
    return rc;
}
