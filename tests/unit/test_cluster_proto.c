/*
 * Unit tests for src/cluster_proto.c: key names, the payload format (exact
 * bytes, round trips, every malformed form refused, every cut refused, each
 * input ending at a guard page), the script commands, and the judgement of
 * append and read replies built here as Redis would send them.
 * tests/integration/test_cluster_proto.c runs the scripts in a real Redis.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_proto.h"
#include "guarded.h"

/* ------------------------------------------------------------ names */

static void test_keys(void **state)
{
    (void)state;
    char k[CLUSTER_KEY_MAX + 1];
    assert_int_equal(cluster_proto_key(k, CLUSTER_KEY_STREAM, "chat", 4), 12);
    assert_string_equal(k, "sse:{chat}:s");
    assert_int_equal(cluster_proto_key(k, CLUSTER_KEY_META, "chat", 4), 12);
    assert_string_equal(k, "sse:{chat}:m");
    assert_int_equal(cluster_proto_key(k, CLUSTER_KEY_CHANNEL, "chat", 4), 10);
    assert_string_equal(k, "sse:{chat}");

    char room[ROOM_NAME_MAX + 1];
    memset(room, 'r', sizeof room);
    assert_int_equal(cluster_proto_key(k, CLUSTER_KEY_STREAM, room, ROOM_NAME_MAX),
                     CLUSTER_KEY_MAX);
    assert_int_equal(strlen(k), CLUSTER_KEY_MAX);
    /* Room names are what room_name_valid takes, so no brace or colon can
     * move the hash tag. */
    assert_int_equal(cluster_proto_key(k, CLUSTER_KEY_STREAM, room, ROOM_NAME_MAX + 1), 0);
    assert_int_equal(cluster_proto_key(k, CLUSTER_KEY_STREAM, "", 0), 0);
    assert_int_equal(cluster_proto_key(k, CLUSTER_KEY_META, "a}b", 3), 0);
    assert_int_equal(cluster_proto_key(k, CLUSTER_KEY_META, "a:b", 3), 0);

    size_t len = 0;
    const char *r = cluster_proto_channel_room("sse:{chat.1}", 12, &len);
    assert_non_null(r);
    assert_int_equal(len, 6);
    assert_memory_equal(r, "chat.1", 6);
    const char *bad[] = {"sse:{}",    "sse:{chat", "sse:chat}", "sse:{chat}:s",
                         "ss:{chat}", "sse:{a b}", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_null(cluster_proto_channel_room(bad[i], strlen(bad[i]), &len));
    }
}

/* ------------------------------------------------------------ payload */

#define EPOCH UINT64_C(1733333333333333)

static void test_payload_bytes(void **state)
{
    (void)state;
    struct cluster_msg m = {EPOCH, EPOCH + 5, "chat", 4, "bob", 3, "{\"a\":1}", 7};
    const char want[] = "\x01"
                        "1733333333333333:1733333333333338:4:3:7:chat"
                        "bob{\"a\":1}";
    char out[128];
    size_t n = cluster_proto_payload_size(&m);
    assert_int_equal(n, sizeof want - 1);
    assert_true(n <= CLUSTER_PAYLOAD_OVERHEAD + 4 + 3 + 7);
    /* Too small: the size, nothing written. */
    memset(out, 'x', sizeof out);
    assert_int_equal(cluster_proto_payload_encode(out, n - 1, &m), n);
    assert_int_equal(out[0], 'x');
    assert_int_equal(cluster_proto_payload_encode(out, sizeof out, &m), n);
    assert_memory_equal(out, want, n);

    /* No event, no client, no data. */
    struct cluster_msg e = {1, 1, NULL, 0, NULL, 0, NULL, 0};
    assert_int_equal(cluster_proto_payload_encode(out, sizeof out, &e), 11);
    assert_memory_equal(out,
                        "\x01"
                        "1:1:0:0:0:",
                        11);
}

static void check_round_trip(const struct cluster_msg *m)
{
    struct guarded g;
    struct cluster_msg d;
    size_t n = cluster_proto_payload_size(m);
    char *buf = malloc(n);
    assert_non_null(buf);
    assert_int_equal(cluster_proto_payload_encode(buf, n, m), n);
    guarded_init(&g, n);
    const char *p = guarded_put(&g, buf, n);
    assert_int_equal(cluster_proto_payload_decode(p, n, &d), 0);
    assert_true(d.epoch == m->epoch && d.id == m->id);
    assert_int_equal(d.event_len, m->event_len);
    assert_int_equal(d.client_len, m->client_len);
    assert_int_equal(d.data_len, m->data_len);
    assert_true(m->event_len == 0 || memcmp(d.event, m->event, m->event_len) == 0);
    assert_true(m->client_len == 0 || memcmp(d.client, m->client, m->client_len) == 0);
    assert_true(m->data_len == 0 || memcmp(d.data, m->data, m->data_len) == 0);
    /* Views into the payload, not copies. */
    assert_true(d.data >= p && d.data + d.data_len == p + n);
    /* Every cut, and one byte more, is refused. */
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(cluster_proto_payload_decode(guarded_put(&g, buf, k), k, &d), -1);
    }
    guarded_free(&g);
    char *longer = malloc(n + 1);
    assert_non_null(longer);
    memcpy(longer, buf, n);
    longer[n] = 'x';
    assert_int_equal(cluster_proto_payload_decode(longer, n + 1, &d), -1);
    free(longer);
    free(buf);
}

static void test_payload_round_trip(void **state)
{
    (void)state;
    char ev[SSE_MAX_EVENT_TYPE], cl[ROOM_CLIENT_MAX];
    memset(ev, 'e', sizeof ev);
    memset(cl, 'c', sizeof cl);
    struct cluster_msg bin = {1, 2, "x y", 3, "me", 2, "a\0b\r\nc\rd\n\0", 11};
    check_round_trip(&bin);
    struct cluster_msg longest = {
        CLUSTER_ID_MAX, CLUSTER_ID_MAX, ev, sizeof ev, cl, sizeof cl, "", 0};
    check_round_trip(&longest);
    struct cluster_msg none = {7, 9, NULL, 0, NULL, 0, NULL, 0};
    check_round_trip(&none);

    /* 64 KiB of every byte value. */
    size_t big = 64 * 1024;
    char *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++) {
        data[i] = (char)(i * 7);
    }
    struct cluster_msg large = {EPOCH, EPOCH + 100000, "m", 1, NULL, 0, data, big};
    check_round_trip(&large);
    free(data);
}

static void test_payload_encode_refuses(void **state)
{
    (void)state;
    char out[256];
    char ev[SSE_MAX_EVENT_TYPE + 1];
    memset(ev, 'e', sizeof ev);
    const struct cluster_msg bad[] = {
        {0, 1, NULL, 0, NULL, 0, NULL, 0},                           /* epoch 0 */
        {5, 4, NULL, 0, NULL, 0, NULL, 0},                           /* id below the epoch */
        {1, CLUSTER_ID_MAX + 1, NULL, 0, NULL, 0, NULL, 0},          /* 2^53 */
        {1, 1, ev, sizeof ev, NULL, 0, NULL, 0},                     /* event of 65 */
        {1, 1, "a\nb", 3, NULL, 0, NULL, 0},                         /* event with LF */
        {1, 1, NULL, 0, "a b", 3, NULL, 0},                          /* client with space */
        {1, 1, NULL, 0, NULL, 0, "x", (size_t)CLUSTER_DATA_MAX + 1}, /* too much data */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(cluster_proto_payload_encode(out, sizeof out, &bad[i]), 0);
    }
}

struct vec {
    const char *s;
    size_t len;
};
#define V(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof lit - 1                                                                        \
    }

static void test_payload_decode_refuses(void **state)
{
    (void)state;
    const struct vec bad[] = {
        V(""),
        V("\x02"
          "1:1:0:0:0:"), /* version 2 */
        V("1:1:0:0:0:"), /* no version byte */
        V("\x01"
          "01:1:0:0:0:"), /* leading zero */
        V("\x01"
          "0:0:0:0:0:"), /* epoch 0 */
        V("\x01"
          "+1:1:0:0:0:"),
        V("\x01"
          "-1:1:0:0:0:"),
        V("\x01"
          " 1:1:0:0:0:"),
        V("\x01"
          "1:1:0:0:00:"),
        V("\x01"
          "9007199254740992:9007199254740992:0:0:0:"), /* 2^53 */
        V("\x01"
          "00000000000000000001:1:0:0:0:"),
        V("\x01"
          "5:4:0:0:0:"), /* id below the epoch */
        V("\x01"
          "1:1:65:0:0:" /* event of 65 */
          "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"),
        V("\x01"
          "1:1:0:65:0:"
          "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"),
        V("\x01"
          "1:1:0:0:67108865:"),
        V("\x01"
          "1:1:3:0:0:a\nb"), /* event with LF */
        V("\x01"
          "1:1:0:3:0:a/b"), /* client with '/' */
        V("\x01"
          "1:1:0:0:2:abc"), /* a byte more than said */
        V("\x01"
          "1:1:0:0:4:abc"), /* a byte less */
        V("\x01"
          "1:1:0:0"),
        V("\x01"
          "1:1:0:0:1"),
        V("\x01"
          "1;1:0:0:0:"),
        V("\x01"
          "1:1:0:0:0:0:"),
    };
    struct guarded g;
    struct cluster_msg m = {.id = 42};
    guarded_init(&g, 4096);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *p = guarded_put(&g, bad[i].s, bad[i].len);
        if (cluster_proto_payload_decode(p, bad[i].len, &m) != -1) {
            fail_msg("accepted bad payload #%zu", i);
        }
        assert_int_equal(m.id, 42); /* untouched */
    }
    guarded_free(&g);
}

/* ------------------------------------------------------------ replies */

/* A reply as Redis would send it, scanned; v and rest as redis.c gives them. */
struct parsed {
    char buf[8192];
    struct resp_value v;
    struct resp_reader rest;
};

static void parse(struct parsed *p, const char *reply, size_t len)
{
    struct resp_scanner s;
    assert_true(len <= sizeof p->buf);
    memcpy(p->buf, reply, len);
    resp_scan_init(&s, NULL);
    assert_int_equal(resp_scan(&s, p->buf, len), (long)len);
    resp_reader_init(&p->rest, p->buf, len);
    assert_int_equal(resp_read(&p->rest, &p->v), 0);
}

static size_t bulk(char *out, size_t cap, const char *s)
{
    if (!s) {
        return (size_t)snprintf(out, cap, "$-1\r\n");
    }
    return (size_t)snprintf(out, cap, "$%zu\r\n%s\r\n", strlen(s), s);
}

static void test_append_reply(void **state)
{
    (void)state;
    struct parsed p;
    uint64_t id = 0, epoch = 0;
    const char ok[] = "*2\r\n$16\r\n1733333333333338\r\n$16\r\n1733333333333333\r\n";
    parse(&p, ok, sizeof ok - 1);
    assert_int_equal(cluster_proto_parse_append_reply(&p.v, &p.rest, &id, &epoch), 0);
    assert_true(id == EPOCH + 5 && epoch == EPOCH);
    const char ints[] = "*2\r\n:9\r\n:3\r\n";
    parse(&p, ints, sizeof ints - 1);
    assert_int_equal(cluster_proto_parse_append_reply(&p.v, &p.rest, &id, &epoch), 0);
    assert_true(id == 9 && epoch == 3);

    const struct vec bad[] = {
        V("-ERR something\r\n"),
        V("-NOSCRIPT No matching script.\r\n"),
        V("*2\r\n$1\r\n3\r\n$1\r\n9\r\n"), /* top below epoch */
        V("*2\r\n$2\r\n09\r\n$1\r\n3\r\n"),
        V("*2\r\n$16\r\n9007199254740992\r\n$1\r\n3\r\n"),
        V("*2\r\n$1\r\n0\r\n$1\r\n0\r\n"),
        V("*2\r\n$-1\r\n$1\r\n3\r\n"),
        V("*3\r\n$1\r\n9\r\n$1\r\n3\r\n$1\r\n3\r\n"),
        V("*1\r\n$1\r\n9\r\n"),
        V("$1\r\n9\r\n"),
        V("*-1\r\n"),
        V("*2\r\n:-1\r\n:3\r\n"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        parse(&p, bad[i].s, bad[i].len);
        id = epoch = 77;
        if (cluster_proto_parse_append_reply(&p.v, &p.rest, &id, &epoch) != -1) {
            fail_msg("accepted bad append reply #%zu", i);
        }
        assert_true(id == 77 && epoch == 77);
    }
    assert_int_equal(cluster_proto_parse_append_reply(NULL, NULL, &id, &epoch), -1);
    parse(&p, bad[1].s, bad[1].len);
    assert_true(cluster_proto_is_noscript(&p.v));
    parse(&p, bad[0].s, bad[0].len);
    assert_false(cluster_proto_is_noscript(&p.v));
    assert_false(cluster_proto_is_noscript(NULL));
}

static void test_load_reply(void **state)
{
    (void)state;
    struct parsed p;
    char sha[41];
    const char ok[] = "$40\r\n0123456789abcdef0123456789abcdef01234567\r\n";
    parse(&p, ok, sizeof ok - 1);
    assert_int_equal(cluster_proto_parse_load_reply(&p.v, sha), 0);
    assert_string_equal(sha, "0123456789abcdef0123456789abcdef01234567");
    const struct vec bad[] = {
        V("$40\r\n0123456789ABCDEF0123456789abcdef01234567\r\n"),
        V("$39\r\n0123456789abcdef0123456789abcdef0123456\r\n"),
        V("-ERR no\r\n"),
        V("$-1\r\n"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        parse(&p, bad[i].s, bad[i].len);
        assert_int_equal(cluster_proto_parse_load_reply(&p.v, sha), -1);
    }
}

/* ------------------------------------------------------------ commands */

static void assert_arg(const struct cluster_args *a, size_t i, const char *s, size_t len)
{
    assert_true(i < a->argc);
    assert_int_equal(a->lens[i], len);
    assert_memory_equal(a->argv[i], s, len);
}
#define ARG(a, i, lit) assert_arg(a, i, lit, sizeof lit - 1)

static void test_append_args(void **state)
{
    (void)state;
    struct cluster_args a;
    const char sha[] = "0123456789abcdef0123456789abcdef01234567";
    struct cluster_append m = {"chat", 4, EPOCH, 1000, 0, "ev", 2, NULL, 0, "x\0y", 3};
    assert_int_equal(cluster_proto_append_args(&a, sha, &m), 0);
    assert_int_equal(a.argc, 12);
    ARG(&a, 0, "EVALSHA");
    assert_arg(&a, 1, sha, 40);
    ARG(&a, 2, "2");
    ARG(&a, 3, "sse:{chat}:s");
    ARG(&a, 4, "sse:{chat}:m");
    ARG(&a, 5, "1733333333333333");
    ARG(&a, 6, "1000");
    ARG(&a, 7, "0");
    ARG(&a, 8, "sse:{chat}");
    ARG(&a, 9, "ev");
    ARG(&a, 10, "");
    ARG(&a, 11, "x\0y");

    assert_int_equal(cluster_proto_append_args(&a, NULL, &m), 0);
    ARG(&a, 0, "EVAL");
    assert_string_equal(a.argv[1], cluster_proto_script(CLUSTER_SCRIPT_APPEND));

    struct cluster_append bad[6];
    for (int i = 0; i < 6; i++) {
        bad[i] = m;
    }
    bad[0].room_len = 0;
    bad[1].time_base = 0;
    bad[2].time_base = CLUSTER_ID_MAX + 1;
    bad[3].history = 0;
    bad[4].event = "a\rb";
    bad[4].event_len = 3;
    bad[5].client = "a b";
    bad[5].client_len = 3;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(cluster_proto_append_args(&a, sha, &bad[i]), -1);
        assert_int_equal(a.argc, 0);
    }

    cluster_proto_load_args(&a, CLUSTER_SCRIPT_READ);
    assert_int_equal(a.argc, 3);
    ARG(&a, 0, "SCRIPT");
    ARG(&a, 1, "LOAD");
    assert_string_equal(a.argv[2], cluster_proto_script(CLUSTER_SCRIPT_READ));
}

static void test_backfill_args(void **state)
{
    (void)state;
    struct cluster_args a;
    assert_int_equal(cluster_proto_backfill_args(&a, NULL, "r", 1, EPOCH + 7, 100), 0);
    assert_int_equal(a.argc, 7);
    ARG(&a, 0, "EVAL");
    ARG(&a, 3, "sse:{r}:s");
    ARG(&a, 4, "sse:{r}:m");
    ARG(&a, 5, "(1733333333333340-0");
    ARG(&a, 6, "100");
    assert_int_equal(cluster_proto_backfill_args(&a, "s", "r", 1, 0, 1), 0);
    ARG(&a, 0, "EVALSHA");
    ARG(&a, 5, "-");
    ARG(&a, 6, "1");
    assert_int_equal(cluster_proto_backfill_args(&a, NULL, "r", 1, 5, 0), -1);
    assert_int_equal(cluster_proto_backfill_args(&a, NULL, "r r", 3, 5, 1), -1);
}

/* ------------------------------------------------------------ backfill */

/* Builds a read script reply: epoch, top (NULL: null) and entries given as
 * "<id>" strings, each with the fields e, c, d of a fixed message (or the
 * raw entry text when it starts with '*'). */
static size_t backfill_reply(char *out, size_t cap, const char *epoch, const char *top,
                             const char *const *ids, size_t n)
{
    size_t at = (size_t)snprintf(out, cap, "*3\r\n");
    at += bulk(out + at, cap - at, epoch);
    at += bulk(out + at, cap - at, top);
    at += (size_t)snprintf(out + at, cap - at, "*%zu\r\n", n);
    for (size_t i = 0; i < n; i++) {
        if (ids[i][0] == '*') {
            at += (size_t)snprintf(out + at, cap - at, "%s", ids[i]);
            continue;
        }
        char id[32];
        snprintf(id, sizeof id, "%s-0", ids[i]);
        at += (size_t)snprintf(out + at, cap - at, "*2\r\n");
        at += bulk(out + at, cap - at, id);
        /* memcpy: the data holds a NUL. */
        static const char fields[] = "*6\r\n$1\r\ne\r\n$2\r\nev\r\n$1\r\nc\r\n$0\r\n\r\n"
                                     "$1\r\nd\r\n$5\r\na\r\nb\0\r\n";
        assert_true(at + sizeof fields <= cap);
        memcpy(out + at, fields, sizeof fields - 1);
        at += sizeof fields - 1;
    }
    assert_true(at < cap);
    return at;
}

struct got {
    size_t n;
    uint64_t ids[16];
    uint64_t epoch;
    bool data_ok;
};

static void on_msg(const struct cluster_msg *m, void *arg)
{
    struct got *g = arg;
    assert_true(g->n < 16);
    g->ids[g->n++] = m->id;
    g->epoch = m->epoch;
    g->data_ok = m->data_len == 5 && memcmp(m->data, "a\r\nb\0", 5) == 0 && m->event_len == 2 &&
                 memcmp(m->event, "ev", 2) == 0 && m->client_len == 0;
}

static enum cluster_backfill_result judge(const char *epoch, const char *top,
                                          const char *const *ids, size_t n, uint64_t caller_epoch,
                                          uint64_t after, struct got *g, struct cluster_backfill *b)
{
    char buf[4096];
    struct parsed p;
    size_t len = backfill_reply(buf, sizeof buf, epoch, top, ids, n);
    parse(&p, buf, len);
    memset(g, 0, sizeof *g);
    return cluster_proto_parse_backfill(&p.v, &p.rest, caller_epoch, after, b, on_msg, g);
}

static void test_backfill_in_order(void **state)
{
    (void)state;
    struct got g;
    struct cluster_backfill b;
    const char *ids[] = {"102", "103", "104"};
    /* After 101: 102..104, the top. */
    assert_int_equal(judge("100", "104", ids, 3, 100, 101, &g, &b), CLUSTER_BACKFILL_DONE);
    assert_int_equal(g.n, 3);
    assert_true(g.ids[0] == 102 && g.ids[1] == 103 && g.ids[2] == 104);
    assert_true(g.data_ok);
    assert_int_equal(g.epoch, 100);
    assert_true(b.epoch == 100 && b.top == 104 && b.last == 104 && b.messages == 3);
    /* A caller that knows no epoch yet gets the room's. */
    assert_int_equal(judge("100", "104", ids, 3, 0, 101, &g, &b), CLUSTER_BACKFILL_DONE);
    /* The top is further: a COUNT's worth, ask again after 104. */
    assert_int_equal(judge("100", "110", ids, 3, 100, 101, &g, &b), CLUSTER_BACKFILL_MORE);
    assert_int_equal(g.n, 3);
    assert_int_equal(b.last, 104);
    /* Nothing missed. */
    assert_int_equal(judge("100", "104", NULL, 0, 100, 104, &g, &b), CLUSTER_BACKFILL_DONE);
    assert_true(g.n == 0 && b.last == 104 && b.messages == 0);
    /* No id: whatever is kept. */
    assert_int_equal(judge("100", "104", ids, 3, 0, 0, &g, &b), CLUSTER_BACKFILL_DONE);
    assert_int_equal(g.n, 3);
    assert_int_equal(judge("100", "105", ids, 3, 0, 0, &g, &b), CLUSTER_BACKFILL_MORE);
    /* No room in Redis and no id: nothing, no gap. */
    assert_int_equal(judge(NULL, NULL, NULL, 0, 0, 0, &g, &b), CLUSTER_BACKFILL_DONE);
    assert_true(b.epoch == 0 && b.top == 0 && g.n == 0);
    /* The first message of an epoch. */
    const char *first[] = {"100"};
    assert_int_equal(judge("100", "100", first, 1, 0, 0, &g, &b), CLUSTER_BACKFILL_DONE);
    assert_int_equal(g.ids[0], 100);
}

static void test_backfill_gaps(void **state)
{
    (void)state;
    struct got g;
    struct cluster_backfill b;
    const char *ids[] = {"102", "103", "104"};
    const char *skip[] = {"102", "104"};
    struct {
        const char *epoch, *top;
        const char *const *ids;
        size_t n;
        uint64_t caller_epoch, after;
    } gaps[] = {
        {"100", "104", ids, 3, 100, 100},  /* 101 was trimmed */
        {"100", "104", NULL, 0, 100, 101}, /* the stream is gone, the top is not */
        {"100", "104", ids, 3, 99, 101},   /* another epoch */
        {"100", "104", ids, 3, 0, 99},     /* an id from before the epoch */
        {"100", "104", NULL, 0, 0, 105},   /* an id never issued */
        {NULL, NULL, NULL, 0, 100, 101},   /* Redis lost the room */
        {NULL, NULL, NULL, 0, 0, 101},
        {NULL, NULL, ids, 3, 0, 0},        /* a stream without its hash */
        {"100", "104", skip, 2, 100, 101}, /* an id skipped */
    };
    for (size_t i = 0; i < sizeof gaps / sizeof *gaps; i++) {
        enum cluster_backfill_result r = judge(gaps[i].epoch, gaps[i].top, gaps[i].ids, gaps[i].n,
                                               gaps[i].caller_epoch, gaps[i].after, &g, &b);
        if (r != CLUSTER_BACKFILL_GAP || g.n != 0) {
            fail_msg("case %zu: %d with %zu messages, not a gap", i, (int)r, g.n);
        }
    }
}

static void test_backfill_malformed(void **state)
{
    (void)state;
    struct got g;
    struct cluster_backfill b;
    /* A good first entry, then a bad one: nothing is handed out. */
    const char *bad_entries[] = {
        "*2\r\n$5\r\n103-1\r\n*6\r\n$1\r\ne\r\n$0\r\n\r\n$1\r\nc\r\n$0\r\n\r\n$1\r\nd\r\n$"
        "0\r\n\r\n",
        "*2\r\n$5\r\n103-0\r\n*4\r\n$1\r\ne\r\n$0\r\n\r\n$1\r\nc\r\n$0\r\n\r\n",
        "*2\r\n$5\r\n103-0\r\n*6\r\n$1\r\nd\r\n$0\r\n\r\n$1\r\nc\r\n$0\r\n\r\n$1\r\ne\r\n$"
        "0\r\n\r\n",
        "*2\r\n$5\r\n103-0\r\n*6\r\n$1\r\ne\r\n$1\r\n\n\r\n$1\r\nc\r\n$0\r\n\r\n$1\r\nd\r\n$"
        "0\r\n\r\n",
        "*2\r\n$5\r\n103-0\r\n*6\r\n$1\r\ne\r\n$0\r\n\r\n$1\r\nc\r\n$1\r\n:\r\n$1\r\nd\r\n$"
        "0\r\n\r\n",
        "*2\r\n$5\r\n103-0\r\n*6\r\n$1\r\ne\r\n$0\r\n\r\n$1\r\nc\r\n$0\r\n\r\n$1\r\nd\r\n$-1\r\n",
        "*2\r\n$6\r\n0103-0\r\n*6\r\n$1\r\ne\r\n$0\r\n\r\n$1\r\nc\r\n$0\r\n\r\n$1\r\nd\r\n$"
        "0\r\n\r\n",
        "*1\r\n$5\r\n103-0\r\n",
        "$5\r\n103-0\r\n",
    };
    for (size_t i = 0; i < sizeof bad_entries / sizeof *bad_entries; i++) {
        const char *ids[] = {"102", bad_entries[i]};
        if (judge("100", "104", ids, 2, 100, 101, &g, &b) != CLUSTER_BACKFILL_ERROR || g.n != 0) {
            fail_msg("accepted bad entry #%zu", i);
        }
    }
    /* Entries the hash could not have made, or a hash half there. */
    const char *ids[] = {"102", "103", "104"};
    assert_int_equal(judge("100", "103", ids, 3, 100, 101, &g, &b), CLUSTER_BACKFILL_ERROR);
    assert_int_equal(judge("103", "104", ids, 3, 103, 103, &g, &b), CLUSTER_BACKFILL_ERROR);
    assert_int_equal(judge("100", "101", ids, 3, 100, 101, &g, &b), CLUSTER_BACKFILL_ERROR);
    assert_int_equal(judge("100", NULL, NULL, 0, 100, 101, &g, &b), CLUSTER_BACKFILL_ERROR);
    assert_int_equal(judge("105", "104", NULL, 0, 0, 0, &g, &b), CLUSTER_BACKFILL_ERROR);
    assert_int_equal(g.n, 0);

    struct parsed p;
    const struct vec bad[] = {V("-ERR x\r\n"), V("*2\r\n$1\r\n1\r\n$1\r\n1\r\n"),
                              V("*3\r\n$1\r\n1\r\n$1\r\n1\r\n$1\r\n1\r\n"),
                              V("*3\r\n$1\r\n1\r\n$1\r\n1\r\n*-1\r\n")};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        parse(&p, bad[i].s, bad[i].len);
        assert_int_equal(cluster_proto_parse_backfill(&p.v, &p.rest, 0, 0, &b, on_msg, &g),
                         CLUSTER_BACKFILL_ERROR);
    }
    assert_int_equal(cluster_proto_parse_backfill(NULL, NULL, 0, 0, &b, on_msg, &g),
                     CLUSTER_BACKFILL_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_payload_bytes),
        cmocka_unit_test(test_payload_round_trip),
        cmocka_unit_test(test_payload_encode_refuses),
        cmocka_unit_test(test_payload_decode_refuses),
        cmocka_unit_test(test_append_reply),
        cmocka_unit_test(test_load_reply),
        cmocka_unit_test(test_append_args),
        cmocka_unit_test(test_backfill_args),
        cmocka_unit_test(test_backfill_in_order),
        cmocka_unit_test(test_backfill_gaps),
        cmocka_unit_test(test_backfill_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
