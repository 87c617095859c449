/*
 * Unit tests for the SSE frame encoder (src/sse.c) and for the reference
 * event-stream parser (tests/unit/sse_parse.c) that the other tests rely on.
 *
 * Build: link with tests/unit/sse_parse.c and src/sse.c, -lcmocka.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "sse_parse.h"

/* ---------------------------------------------------------------- helpers */

#define GUARD_LEN  16
#define GUARD_BYTE 0xA5

/* Deterministic PRNG (xorshift64) so failures reproduce. */
static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/*
 * Encodes into a buffer of exactly sse_frame_size bytes followed by guard
 * bytes, and checks that encode writes exactly that many bytes and nothing
 * past them. Returns the malloc'd frame (caller frees) and its length.
 */
static char *encode(uint64_t id, const char *ev, size_t ev_len, const char *data, size_t data_len,
                    size_t *out_len)
{
    size_t size = sse_frame_size(id, ev, ev_len, data, data_len);
    unsigned char *buf = malloc(size + GUARD_LEN);
    assert_non_null(buf);
    memset(buf, GUARD_BYTE, size + GUARD_LEN);

    size_t n = sse_frame_encode((char *)buf, id, ev, ev_len, data, data_len);
    assert_int_equal(n, size);
    for (size_t i = 0; i < GUARD_LEN; i++)
        assert_int_equal(buf[size + i], GUARD_BYTE);
    *out_len = n;
    return (char *)buf;
}

/* What EventSource reports as data: every CRLF, CR and LF becomes LF. */
static char *normalise(const char *s, size_t len, size_t *out_len)
{
    char *out = malloc(len + 1);
    size_t n = 0;

    assert_non_null(out);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r') {
            out[n++] = '\n';
            if (i + 1 < len && s[i + 1] == '\n')
                i++;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/* Asserts that ev has exactly these fields. */
static void assert_event(const struct ssep_event *ev, const char *type, const char *data,
                         size_t data_len, const char *id)
{
    assert_int_equal(ev->type_len, strlen(type));
    assert_memory_equal(ev->type, type, ev->type_len);
    assert_int_equal(ev->data_len, data_len);
    if (data_len > 0)
        assert_memory_equal(ev->data, data, data_len);
    assert_int_equal(ev->data[data_len], '\0');
    assert_int_equal(ev->id_len, strlen(id));
    assert_memory_equal(ev->id, id, ev->id_len);
}

/* Encodes, parses back, and checks the browser would see exactly the payload. */
static void round_trip(uint64_t id, const char *ev, size_t ev_len, const char *data,
                       size_t data_len)
{
    size_t frame_len, want_len;
    char *frame = encode(id, ev, ev_len, data, data_len, &frame_len);
    char *want = normalise(data, data_len, &want_len);
    char want_id[32];
    char want_type[SSE_MAX_EVENT_TYPE + 1];
    struct ssep_list evs;

    snprintf(want_id, sizeof(want_id), "%llu", (unsigned long long)id);
    if (ev != NULL && ev_len > 0) {
        memcpy(want_type, ev, ev_len);
        want_type[ev_len] = '\0';
    } else {
        strcpy(want_type, "message");
    }

    /* The encoder never emits CR, and the only blank line is the last one. */
    assert_null(memchr(frame, '\r', frame_len));
    assert_true(frame_len >= 2);
    assert_memory_equal(frame + frame_len - 2, "\n\n", 2);
    assert_null(memmem(frame, frame_len - 1, "\n\n", 2));

    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(frame, frame_len, &evs), 0);
    assert_int_equal(evs.count, 1);
    assert_event(&evs.ev[0], want_type, want, want_len, want_id);
    ssep_list_free(&evs);
    free(want);
    free(frame);
}

/* Everything observable about one parse of a stream. */
struct parse_result {
    struct ssep_list evs;
    size_t comments;
    int has_retry;
    uint64_t retry_ms;
    char last_id[64];
};

/* Parses `s` in chunks of the given sizes (cycled; 0 = whole stream). */
static void parse_chunked(const char *s, size_t len, const size_t *chunks, size_t nchunks,
                          struct parse_result *r)
{
    struct ssep_parser p;
    size_t off = 0, k = 0;

    memset(r, 0, sizeof(*r));
    ssep_list_init(&r->evs);
    ssep_init(&p, ssep_list_add, &r->evs);
    while (off < len) {
        size_t n = nchunks > 0 && chunks[k % nchunks] > 0 ? chunks[k % nchunks] : len;
        if (n > len - off)
            n = len - off;
        assert_int_equal(ssep_feed(&p, s + off, n), 0);
        off += n;
        k++;
    }
    assert_false(r->evs.failed);
    assert_int_equal(p.events, r->evs.count);
    r->comments = p.comments;
    r->has_retry = p.has_retry;
    r->retry_ms = p.retry_ms;
    size_t id_len;
    const char *id = ssep_last_event_id(&p, &id_len);
    assert_true(id_len < sizeof(r->last_id));
    memcpy(r->last_id, id, id_len + 1);
    ssep_free(&p);
}

static void assert_same_result(const struct parse_result *a, const struct parse_result *b)
{
    assert_int_equal(a->evs.count, b->evs.count);
    for (size_t i = 0; i < a->evs.count; i++) {
        const struct ssep_event *x = &a->evs.ev[i], *y = &b->evs.ev[i];
        assert_int_equal(x->type_len, y->type_len);
        assert_memory_equal(x->type, y->type, x->type_len);
        assert_int_equal(x->data_len, y->data_len);
        assert_memory_equal(x->data, y->data, x->data_len + 1);
        assert_int_equal(x->id_len, y->id_len);
        assert_memory_equal(x->id, y->id, x->id_len);
    }
    assert_int_equal(a->comments, b->comments);
    assert_int_equal(a->has_retry, b->has_retry);
    assert_int_equal(a->retry_ms, b->retry_ms);
    assert_string_equal(a->last_id, b->last_id);
}

/* Length of a string literal, counting embedded NULs. */
#define S(lit) lit, (sizeof(lit) - 1)

/* ---------------------------------------------------------------- encoder */

struct frame_vector {
    uint64_t id;
    const char *event; /* NULL: none */
    size_t event_len;
    const char *data;
    size_t data_len;
    const char *want;
    size_t want_len;
};

static void test_frame_vectors(void **state)
{
    (void)state;
    static const struct frame_vector v[] = {
        {1, NULL, 0, S("hello"), S("id: 1\ndata: hello\n\n")},
        {1, NULL, 0, S("a\nb"), S("id: 1\ndata: a\ndata: b\n\n")},
        {1, NULL, 0, S("a\rb"), S("id: 1\ndata: a\ndata: b\n\n")},
        {1, NULL, 0, S("a\r\nb"), S("id: 1\ndata: a\ndata: b\n\n")},
        {1, NULL, 0, S("a\nb\rc\r\nd"), S("id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n")},
        {1, NULL, 0, S("\r\r"), S("id: 1\ndata: \ndata: \ndata: \n\n")},
        {1, NULL, 0, S("\n\n"), S("id: 1\ndata: \ndata: \ndata: \n\n")},
        {1, NULL, 0, S("\r\n\n"), S("id: 1\ndata: \ndata: \ndata: \n\n")},
        /* LF then CR is two breaks, not one. */
        {1, NULL, 0, S("\n\r"), S("id: 1\ndata: \ndata: \ndata: \n\n")},
        {1, NULL, 0, S("\r\n\r\n"), S("id: 1\ndata: \ndata: \ndata: \n\n")},
        {1, NULL, 0, S("\r"), S("id: 1\ndata: \ndata: \n\n")},
        {1, NULL, 0, S("\n"), S("id: 1\ndata: \ndata: \n\n")},
        {1, NULL, 0, S("\r\n"), S("id: 1\ndata: \ndata: \n\n")},
        {1, NULL, 0, S("\nabc"), S("id: 1\ndata: \ndata: abc\n\n")},
        {1, NULL, 0, S("abc\n"), S("id: 1\ndata: abc\ndata: \n\n")},
        {1, NULL, 0, S("abc\r\n"), S("id: 1\ndata: abc\ndata: \n\n")},
        {1, NULL, 0, S("abc\r"), S("id: 1\ndata: abc\ndata: \n\n")},
        {1, NULL, 0, S(""), S("id: 1\ndata: \n\n")},
        /* The parser strips exactly one space, so a leading one survives. */
        {1, NULL, 0, S(" lead"), S("id: 1\ndata:  lead\n\n")},
        {1, NULL, 0, S(":colon"), S("id: 1\ndata: :colon\n\n")},
        {1, NULL, 0, S("a\0b"), S("id: 1\ndata: a\0b\n\n")},
        {1, NULL, 0, S("\0"), S("id: 1\ndata: \0\n\n")},
        /* U+2028 / U+2029 are not SSE line breaks. */
        {1, NULL, 0, S("x\xE2\x80\xA8y\xE2\x80\xA9z"),
         S("id: 1\ndata: x\xE2\x80\xA8y\xE2\x80\xA9z\n\n")},
        /* A payload cannot inject fields or end the frame early. */
        {1, NULL, 0, S("x\n\nid: 9\nevent: e"),
         S("id: 1\ndata: x\ndata: \ndata: id: 9\ndata: event: e\n\n")},
        {42, S("update"), S("x"), S("id: 42\nevent: update\ndata: x\n\n")},
        {42, S("update"), S("a\r\nb\n"), S("id: 42\nevent: update\ndata: a\ndata: b\ndata: \n\n")},
        {42, S("update"), S(""), S("id: 42\nevent: update\ndata: \n\n")},
        /* A non-NULL type of length 0 means "no event line". */
        {42, "update", 0, S("x"), S("id: 42\ndata: x\n\n")},
        {0, NULL, 0, S("x"), S("id: 0\ndata: x\n\n")},
        {9, NULL, 0, S("x"), S("id: 9\ndata: x\n\n")},
        {10, NULL, 0, S("x"), S("id: 10\ndata: x\n\n")},
        {UINT64_MAX, NULL, 0, S("x"), S("id: 18446744073709551615\ndata: x\n\n")},
        {UINT64_MAX, S("e"), S("x"), S("id: 18446744073709551615\nevent: e\ndata: x\n\n")},
        {(uint64_t)1 << 63, NULL, 0, S("x"), S("id: 9223372036854775808\ndata: x\n\n")},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n;
        char *out = encode(v[i].id, v[i].event, v[i].event_len, v[i].data, v[i].data_len, &n);
        if (n != v[i].want_len || memcmp(out, v[i].want, n) != 0)
            print_error("frame vector %zu differs\n", i);
        assert_int_equal(n, v[i].want_len);
        assert_memory_equal(out, v[i].want, n);
        free(out);
    }

    /* NULL data with length 0 is an empty payload. */
    size_t n;
    char *out = encode(7, NULL, 0, NULL, 0, &n);
    assert_int_equal(n, strlen("id: 7\ndata: \n\n"));
    assert_memory_equal(out, "id: 7\ndata: \n\n", n);
    free(out);
}

static void test_frame_long_payload(void **state)
{
    (void)state;
    const size_t len = (size_t)1 << 20;
    char *data = malloc(len);
    assert_non_null(data);

    /* 1 MiB without breaks: one data line, byte for byte. */
    for (size_t i = 0; i < len; i++)
        data[i] = (char)('a' + i % 26);
    size_t n;
    char *out = encode(123, S("big"), data, len, &n);
    const char *head = "id: 123\nevent: big\ndata: ";
    size_t head_len = strlen(head);
    assert_int_equal(n, head_len + len + 2);
    assert_memory_equal(out, head, head_len);
    assert_memory_equal(out + head_len, data, len);
    assert_memory_equal(out + head_len + len, "\n\n", 2);
    free(out);
    round_trip(123, S("big"), data, len);

    /* 1 MiB made only of LFs: the worst case, one data line per byte. */
    memset(data, '\n', len);
    out = encode(1, NULL, 0, data, len, &n);
    assert_int_equal(n, strlen("id: 1\n") + (len + 1) * strlen("data: \n") + 1);
    free(out);
    round_trip(1, NULL, 0, data, len);

    /* 1 MiB of mixed lines and break styles. */
    for (size_t i = 0; i < len; i++) {
        uint64_t r = rng() % 100;
        data[i] = r < 3 ? '\n' : r < 5 ? '\r' : r < 6 ? '\0' : (char)('A' + r % 26);
    }
    round_trip(UINT64_MAX, NULL, 0, data, len);
    free(data);
}

static void test_frame_round_trip(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
    } payloads[] = {
        {S("")},
        {S("hello")},
        {S("a\nb")},
        {S("a\rb")},
        {S("a\r\nb")},
        {S("\r\r")},
        {S("\n\n")},
        {S("\r\n\n")},
        {S("\n\r")},
        {S("\r\n\r\n")},
        {S("\nlead")},
        {S("trail\n")},
        {S("trail\r")},
        {S("trail\r\n")},
        {S(" space")},
        {S("  two spaces")},
        {S(":colon")},
        {S(": comment-like\n\n")},
        {S("data: nested\n\nid: 5\nretry: 1\nevent: x\n\n")},
        {S("a\0b")},
        {S("\0\0\r\0\n")},
        {S("\xE2\x80\xA8\xE2\x80\xA9")},
        {S("\357\273\277bom")},
        {S("{\"json\": [1, 2, 3]}")},
    };
    static const struct {
        const char *s;
        size_t len;
    } types[] = {
        {NULL, 0},
        {S("message")},
        {S("update")},
        {S("x")},
        {S(" leading-space")},
        {S("a:b")},
        {S("\xC3\xBC")},
        {S("0123456789012345678901234567890123456789012345678901234567890123")},
    };
    static const uint64_t ids[] = {0, 1, 42, 1000000, UINT64_MAX};

    for (size_t p = 0; p < sizeof(payloads) / sizeof(payloads[0]); p++)
        for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
            for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                if (types[t].s != NULL)
                    assert_true(sse_event_type_valid(types[t].s, types[t].len));
                round_trip(ids[i], types[t].s, types[t].len, payloads[p].s, payloads[p].len);
            }

    /* Random payloads over an alphabet rich in breaks and odd bytes. */
    static const char alphabet[] = {'a', 'b', ' ', ':', '\r', '\n', '\0', '\xE2', '\x80', '\xA8'};
    char buf[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(rng() % sizeof(buf));
        for (size_t i = 0; i < len; i++)
            buf[i] = alphabet[rng() % sizeof(alphabet)];
        size_t t = (size_t)(rng() % (sizeof(types) / sizeof(types[0])));
        round_trip(rng(), types[t].s, types[t].len, buf, len);
    }
}

/* Many frames back to back, with comments and retry in between, read in
 * arbitrary pieces: the way a subscriber actually receives them. */
static void test_frame_stream(void **state)
{
    (void)state;
    enum { N = 200 };
    char *stream = NULL;
    size_t len = 0;
    char payloads[N][24];
    size_t plens[N];

    for (int i = 0; i < N; i++) {
        size_t n;
        int pl = snprintf(payloads[i], sizeof(payloads[i]), "p%d%s", i,
                          i % 3 == 0   ? "\r\nx"
                          : i % 3 == 1 ? "\n"
                                       : "");
        plens[i] = (size_t)pl;
        char *f =
            encode((uint64_t)i + 1, i % 2 ? "odd" : NULL, i % 2 ? 3 : 0, payloads[i], plens[i], &n);
        char extra[64];
        size_t extra_len = 0;
        if (i % 10 == 0)
            extra_len = sse_comment(extra, sizeof(extra), "keep\nalive");
        else if (i % 10 == 5)
            extra_len = sse_retry(extra, sizeof(extra), (unsigned)i * 100);
        stream = realloc(stream, len + n + extra_len);
        assert_non_null(stream);
        memcpy(stream + len, f, n);
        memcpy(stream + len + n, extra, extra_len);
        len += n + extra_len;
        free(f);
    }

    static const size_t whole[] = {0}, bytes[] = {1}, odd[] = {7, 1, 300, 2, 13};
    struct parse_result a, b, c;
    parse_chunked(stream, len, whole, 1, &a);
    parse_chunked(stream, len, bytes, 1, &b);
    parse_chunked(stream, len, odd, 5, &c);
    assert_same_result(&a, &b);
    assert_same_result(&a, &c);

    assert_int_equal(a.evs.count, N);
    assert_int_equal(a.comments, N / 10);
    assert_true(a.has_retry);
    assert_int_equal(a.retry_ms, 19500);
    assert_string_equal(a.last_id, "200");
    for (int i = 0; i < N; i++) {
        size_t want_len;
        char *want = normalise(payloads[i], plens[i], &want_len);
        char id[16];
        snprintf(id, sizeof(id), "%d", i + 1);
        assert_event(&a.evs.ev[i], i % 2 ? "odd" : "message", want, want_len, id);
        free(want);
    }
    ssep_list_free(&a.evs);
    ssep_list_free(&b.evs);
    ssep_list_free(&c.evs);
    free(stream);
}

static void test_event_type_valid(void **state)
{
    (void)state;
    char max[SSE_MAX_EVENT_TYPE + 1];
    memset(max, 'a', sizeof(max));

    assert_true(sse_event_type_valid(S("a")));
    assert_true(sse_event_type_valid(S("message")));
    assert_true(sse_event_type_valid(S("update-1.2_x")));
    assert_true(sse_event_type_valid(S("with space")));
    assert_true(sse_event_type_valid(S(" leading")));
    assert_true(sse_event_type_valid(S(":colon")));
    assert_true(sse_event_type_valid(S("~!@#$%^&*()")));
    assert_true(sse_event_type_valid(S("\xC3\xBC\xE2\x82\xAC"))); /* UTF-8 */
    assert_true(sse_event_type_valid(max, SSE_MAX_EVENT_TYPE));
    /* Only the first len bytes count. */
    assert_true(sse_event_type_valid("abc\n", 3));

    assert_false(sse_event_type_valid(NULL, 0));
    assert_false(sse_event_type_valid(NULL, 5));
    assert_false(sse_event_type_valid("", 0));
    assert_false(sse_event_type_valid("abc", 0));
    assert_false(sse_event_type_valid(max, SSE_MAX_EVENT_TYPE + 1));
    assert_false(sse_event_type_valid(S("a\nb")));
    assert_false(sse_event_type_valid(S("a\rb")));
    assert_false(sse_event_type_valid(S("a\r\n")));
    assert_false(sse_event_type_valid(S("a\0b")));
    assert_false(sse_event_type_valid(S("\0")));
    assert_false(sse_event_type_valid(S("tab\there")));
    assert_false(sse_event_type_valid(S("\x01")));
    assert_false(sse_event_type_valid(S("x\x1f")));
    assert_false(sse_event_type_valid(S("del\x7f")));
    assert_false(sse_event_type_valid(S("\x1b[31m")));
    /* Every control byte is rejected, every other byte accepted. */
    for (int c = 0; c < 256; c++) {
        char ch = (char)c;
        assert_int_equal(sse_event_type_valid(&ch, 1), !(c < 0x20 || c == 0x7f));
    }
}

/* on_comment callback recording the last comment text. */
static void save_comment(void *ctx, const char *text, size_t len)
{
    char *dst = ctx;
    assert_true(len < 128);
    assert_int_equal(text[len], '\0');
    memcpy(dst, text, len + 1);
}

static void test_comment(void **state)
{
    (void)state;
    char out[128];
    size_t n;

    n = sse_comment(out, sizeof(out), "ping");
    assert_int_equal(n, 7);
    assert_memory_equal(out, ": ping\n", n);

    n = sse_comment(out, sizeof(out), "");
    assert_int_equal(n, 3);
    assert_memory_equal(out, ": \n", n);

    n = sse_comment(out, sizeof(out), NULL);
    assert_int_equal(n, 3);
    assert_memory_equal(out, ": \n", n);

    n = sse_comment(out, sizeof(out), "a\nb\rc\r\nd\n\n");
    assert_int_equal(n, strlen(": a b c  d  \n"));
    assert_memory_equal(out, ": a b c  d  \n", n);

    /* Exact fit, one byte short (out untouched), no room at all. */
    memset(out, 'Z', sizeof(out));
    assert_int_equal(sse_comment(out, 7, "ping"), 7);
    memset(out, 'Z', sizeof(out));
    assert_int_equal(sse_comment(out, 6, "ping"), 0);
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(out[i], 'Z');
    assert_int_equal(sse_comment(out, 2, ""), 0);
    assert_int_equal(sse_comment(out, 3, ""), 3);
    assert_int_equal(sse_comment(NULL, 0, "x"), 0);

    /* A comment is a comment to the parser, whatever its text. */
    static const char *const texts[] = {"keepalive", "", "x\n\ndata: evil\n\n", "\r", ":"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct ssep_parser p;
        char seen[128] = "unset";
        n = sse_comment(out, sizeof(out), texts[i]);
        assert_int_equal(n, strlen(texts[i]) + 3);
        assert_int_equal(out[n - 1], '\n');
        assert_null(memchr(out, '\r', n));
        assert_ptr_equal(memchr(out, '\n', n), out + n - 1);

        ssep_init(&p, NULL, NULL);
        p.on_comment = save_comment;
        p.comment_ctx = seen;
        assert_int_equal(ssep_feed(&p, out, n), 0);
        assert_int_equal(p.comments, 1);
        assert_int_equal(p.events, 0);
        assert_int_equal(seen[0], ' ');
        assert_int_equal(strlen(seen), strlen(texts[i]) + 1);
        ssep_free(&p);
    }
}

static void test_retry(void **state)
{
    (void)state;
    static const struct {
        unsigned ms;
        const char *want;
    } v[] = {
        {0, "retry: 0\n"},
        {7, "retry: 7\n"},
        {3000, "retry: 3000\n"},
        {UINT_MAX, "retry: 4294967295\n"},
    };
    char out[64];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t want_len = strlen(v[i].want);
        assert_int_equal(sse_retry(out, sizeof(out), v[i].ms), want_len);
        assert_memory_equal(out, v[i].want, want_len);
        assert_int_equal(sse_retry(out, want_len, v[i].ms), want_len);
        memset(out, 'Z', sizeof(out));
        assert_int_equal(sse_retry(out, want_len - 1, v[i].ms), 0);
        assert_int_equal(out[0], 'Z');

        struct ssep_parser p;
        ssep_init(&p, NULL, NULL);
        assert_int_equal(sse_retry(out, sizeof(out), v[i].ms), want_len);
        assert_int_equal(ssep_feed(&p, out, want_len), 0);
        assert_true(p.has_retry);
        assert_int_equal(p.retry_ms, v[i].ms);
        assert_int_equal(p.events, 0);
        ssep_free(&p);
    }
    assert_int_equal(sse_retry(NULL, 0, 1), 0);
    assert_int_equal(sse_retry(out, 0, 1), 0);
}

/* ---------------------------------------------------------------- parser */

static void test_parser_spec_examples(void **state)
{
    (void)state;
    struct ssep_list evs;

    /* The stock-ticker example: three data lines, one event. */
    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(S("data: YHOO\ndata: +2\ndata: 10\n\n"), &evs), 0);
    assert_int_equal(evs.count, 1);
    assert_event(&evs.ev[0], "message", S("YHOO\n+2\n10"), "");
    ssep_list_free(&evs);

    /* Comment, id set then cleared, leading space kept after the first,
     * and a final event without its blank line never fires. */
    static const char ex2[] = ": test stream\n"
                              "\n"
                              "data: first event\n"
                              "id: 1\n"
                              "\n"
                              "data:second event\n"
                              "id\n"
                              "\n"
                              "data:  third event\n";
    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(S(ex2), &evs), 0);
    assert_int_equal(evs.count, 2);
    assert_event(&evs.ev[0], "message", S("first event"), "1");
    assert_event(&evs.ev[1], "message", S("second event"), "");
    ssep_list_free(&evs);

    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(S("data:  third event\n\n"), &evs), 0);
    assert_int_equal(evs.count, 1);
    assert_event(&evs.ev[0], "message", S(" third event"), "");
    ssep_list_free(&evs);

    /* "data" alone appends an empty line; the last block is incomplete. */
    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(S("data\n\ndata\ndata\n\ndata:"), &evs), 0);
    assert_int_equal(evs.count, 2);
    assert_event(&evs.ev[0], "message", S(""), "");
    assert_event(&evs.ev[1], "message", S("\n"), "");
    ssep_list_free(&evs);

    /* With and without the space: identical. */
    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(S("data:test\n\ndata: test\n\n"), &evs), 0);
    assert_int_equal(evs.count, 2);
    assert_event(&evs.ev[0], "message", S("test"), "");
    assert_event(&evs.ev[1], "message", S("test"), "");
    ssep_list_free(&evs);
}

static void test_parser_fields(void **state)
{
    (void)state;
    struct ssep_list evs;
    struct ssep_parser p;

    /* Unknown fields, wrong case, a space before the colon: all ignored. */
    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(S("foo: bar\nData: x\ndata : y\nEVENT: e\ndata: ok\n\n"), &evs),
                     0);
    assert_int_equal(evs.count, 1);
    assert_event(&evs.ev[0], "message", S("ok"), "");
    ssep_list_free(&evs);

    /* Event type applies to one event; an empty value means "message";
     * a colon in the value is kept. */
    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(S("event: a:b\ndata: 1\n\n"
                                      "data: 2\n\n"
                                      "event: x\nevent\ndata: 3\n\n"
                                      "event: gone\n\n"
                                      "data: 4\n\n"),
                                    &evs),
                     0);
    assert_int_equal(evs.count, 4);
    assert_event(&evs.ev[0], "a:b", S("1"), "");
    assert_event(&evs.ev[1], "message", S("2"), "");
    assert_event(&evs.ev[2], "message", S("3"), "");
    assert_event(&evs.ev[3], "message", S("4"), "");
    ssep_list_free(&evs);

    /* The id persists; one containing NUL is ignored; "id" alone clears it;
     * a blank line with no data still commits the id. */
    ssep_list_init(&evs);
    ssep_init(&p, ssep_list_add, &evs);
    assert_int_equal(ssep_feed(&p, S("id: 5\ndata: a\n\ndata: b\n\n"
                                     "id: x\0y\ndata: c\n\n"
                                     "id\ndata: d\n\n"
                                     "id: 9\n\n")),
                     0);
    assert_int_equal(evs.count, 4);
    assert_event(&evs.ev[0], "message", S("a"), "5");
    assert_event(&evs.ev[1], "message", S("b"), "5");
    assert_event(&evs.ev[2], "message", S("c"), "5");
    assert_event(&evs.ev[3], "message", S("d"), "");
    size_t id_len;
    assert_string_equal(ssep_last_event_id(&p, &id_len), "9");
    assert_int_equal(id_len, 1);
    /* Set but not yet committed by a blank line: not the last event ID yet. */
    assert_int_equal(ssep_feed(&p, S("id: 10\n")), 0);
    assert_string_equal(ssep_last_event_id(&p, NULL), "9");
    assert_int_equal(ssep_feed(&p, S("\n")), 0);
    assert_string_equal(ssep_last_event_id(&p, NULL), "10");
    assert_int_equal(p.events, 4);
    ssep_free(&p);
    ssep_list_free(&evs);

    /* Retry: digits only, at least one, saturating. */
    static const struct {
        const char *line;
        int has;
        uint64_t ms;
    } r[] = {
        {"retry: 1500\n", 1, 1500},
        {"retry:0\n", 1, 0},
        {"retry: 007\n", 1, 7},
        {"retry: 15a\n", 0, 0},
        {"retry: -1\n", 0, 0},
        {"retry: +1\n", 0, 0},
        {"retry: 1.5\n", 0, 0},
        {"retry:\n", 0, 0},
        {"retry\n", 0, 0},
        {"retry:  100\n", 0, 0}, /* " 100" after the one stripped space */
        {"retry: 18446744073709551615\n", 1, UINT64_MAX},
        {"retry: 99999999999999999999999\n", 1, UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
        ssep_init(&p, NULL, NULL);
        assert_int_equal(ssep_feed(&p, r[i].line, strlen(r[i].line)), 0);
        assert_int_equal(p.has_retry, r[i].has);
        assert_int_equal(p.retry_ms, r[i].ms);
        ssep_free(&p);
    }
    /* An invalid retry leaves the previous value alone. */
    ssep_init(&p, NULL, NULL);
    assert_int_equal(ssep_feed(&p, S("retry: 20\nretry: x\n")), 0);
    assert_int_equal(p.retry_ms, 20);
    ssep_free(&p);

    /* Comments: counted, passed on without the colon, never events. */
    char seen[128] = "";
    ssep_init(&p, NULL, NULL);
    p.on_comment = save_comment;
    p.comment_ctx = seen;
    assert_int_equal(ssep_feed(&p, S(":\n: a\n:data: x\n\n:no-space")), 0);
    assert_int_equal(p.comments, 3);
    assert_string_equal(seen, "data: x");
    assert_int_equal(ssep_feed(&p, S("\r")), 0);
    assert_int_equal(p.comments, 4);
    assert_string_equal(seen, "no-space");
    assert_int_equal(p.events, 0);
    ssep_free(&p);

    /* NUL bytes in data are kept; the event is still NUL-terminated. */
    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(S("data: a\0b\ndata:\0\n\n"), &evs), 0);
    assert_int_equal(evs.count, 1);
    assert_event(&evs.ev[0], "message", S("a\0b\n\0"), "");
    ssep_list_free(&evs);

    /* An incomplete line or event at the end is never dispatched. */
    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(S("data: a\n\ndata: b\n"), &evs), 0);
    assert_int_equal(evs.count, 1);
    ssep_list_free(&evs);
    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(S("data: a\n\ndata: b"), &evs), 0);
    assert_int_equal(evs.count, 1);
    ssep_list_free(&evs);

    /* A 1 MiB line. */
    size_t big = (size_t)1 << 20;
    char *s = malloc(big + 8);
    assert_non_null(s);
    memcpy(s, "data:", 5);
    memset(s + 5, 'q', big);
    memcpy(s + 5 + big, "\n\n", 2);
    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(s, big + 7, &evs), 0);
    assert_int_equal(evs.count, 1);
    assert_int_equal(evs.ev[0].data_len, big);
    assert_memory_equal(evs.ev[0].data, s + 5, big);
    ssep_list_free(&evs);
    free(s);
}

/* Rewrites every "\n" of an LF-only stream as `eol`. */
static char *with_eol(const char *s, const char *eol, size_t *out_len)
{
    size_t len = strlen(s), eol_len = strlen(eol), n = 0;
    char *out = malloc(len * eol_len + 1);

    assert_non_null(out);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n') {
            memcpy(out + n, eol, eol_len);
            n += eol_len;
        } else {
            out[n++] = s[i];
        }
    }
    *out_len = n;
    return out;
}

static void test_parser_line_endings(void **state)
{
    (void)state;
    static const char base[] = ": hello\n"
                               "retry: 250\n"
                               "id: 1\nevent: e\ndata: a\ndata\ndata: b\n\n"
                               "\n\n"
                               "data: c\n\n"
                               "id: 2\n\n"
                               "data: tail\n";
    static const size_t whole[] = {0}, bytes[] = {1};
    struct parse_result ref;
    size_t n;

    parse_chunked(base, strlen(base), whole, 1, &ref);
    assert_int_equal(ref.evs.count, 2);
    assert_event(&ref.evs.ev[0], "e", S("a\n\nb"), "1");
    assert_event(&ref.evs.ev[1], "message", S("c"), "1");
    assert_int_equal(ref.comments, 1);
    assert_int_equal(ref.retry_ms, 250);
    assert_string_equal(ref.last_id, "2");

    static const char *const eols[] = {"\n", "\r", "\r\n"};
    for (size_t e = 0; e < 3; e++) {
        char *s = with_eol(base, eols[e], &n);
        struct parse_result a, b;
        parse_chunked(s, n, whole, 1, &a);
        parse_chunked(s, n, bytes, 1, &b);
        assert_same_result(&ref, &a);
        assert_same_result(&ref, &b);
        ssep_list_free(&a.evs);
        ssep_list_free(&b.evs);
        free(s);
    }

    /* Mixed endings in one stream, and CR CR / LF CR as two breaks. */
    static const char mixed[] = "data: a\r\ndata: b\rdata: c\n\r"
                                "data: d\r\r"
                                "data: e\n\r\n";
    struct ssep_list evs;
    ssep_list_init(&evs);
    assert_int_equal(ssep_parse_all(S(mixed), &evs), 0);
    assert_int_equal(evs.count, 3);
    assert_event(&evs.ev[0], "message", S("a\nb\nc"), "");
    assert_event(&evs.ev[1], "message", S("d"), "");
    assert_event(&evs.ev[2], "message", S("e"), "");
    ssep_list_free(&evs);

    /* CRLF split across two feeds is one break, not a blank line. */
    struct ssep_parser p;
    ssep_list_init(&evs);
    ssep_init(&p, ssep_list_add, &evs);
    assert_int_equal(ssep_feed(&p, S("data: a\r")), 0);
    assert_int_equal(ssep_feed(&p, S("\ndata: b\r")), 0);
    assert_int_equal(ssep_feed(&p, S("\n")), 0);
    assert_int_equal(p.events, 0);
    assert_int_equal(ssep_feed(&p, S("\r")), 0);
    assert_int_equal(ssep_feed(&p, S("\n")), 0);
    assert_int_equal(p.events, 1);
    assert_event(&evs.ev[0], "message", S("a\nb"), "");
    ssep_free(&p);
    ssep_list_free(&evs);
    ssep_list_free(&ref.evs);
}

static void test_parser_chunking(void **state)
{
    (void)state;
    static const char stream[] = "\xEF\xBB\xBF: start\r\n"
                                 "retry: 1000\r"
                                 "id: 1\nevent: one\ndata: a\r\ndata:b\r\n\r\n"
                                 "data: x\0y\r\rid: 2\n\n"
                                 "data\n\ndata\ndata\n\n"
                                 ":c\r:d\n"
                                 "event: two\r\ndata:  spaced \r\n\n"
                                 "id: z\0\n\n"
                                 "data: \xE2\x80\xA8\n\n"
                                 "data: incomplete";
    const size_t len = sizeof(stream) - 1;
    static const size_t whole[] = {0}, bytes[] = {1}, twos[] = {2}, threes[] = {3},
                        odd[] = {5, 1, 1, 9, 2, 17};
    struct parse_result ref, r;

    parse_chunked(stream, len, whole, 1, &ref);
    assert_int_equal(ref.evs.count, 6);
    assert_event(&ref.evs.ev[0], "one", S("a\nb"), "1");
    assert_event(&ref.evs.ev[1], "message", S("x\0y"), "1");
    assert_event(&ref.evs.ev[2], "message", S(""), "2");
    assert_event(&ref.evs.ev[3], "message", S("\n"), "2");
    assert_event(&ref.evs.ev[4], "two", S(" spaced "), "2");
    assert_event(&ref.evs.ev[5], "message", S("\xE2\x80\xA8"), "2");
    assert_int_equal(ref.comments, 3);
    assert_int_equal(ref.retry_ms, 1000);
    assert_string_equal(ref.last_id, "2");

    const size_t *patterns[] = {bytes, twos, threes, odd};
    const size_t npat[] = {1, 1, 1, 6};
    for (size_t i = 0; i < 4; i++) {
        parse_chunked(stream, len, patterns[i], npat[i], &r);
        assert_same_result(&ref, &r);
        ssep_list_free(&r.evs);
    }

    /* Every split into two pieces. */
    for (size_t cut = 1; cut < len; cut++) {
        size_t two[] = {cut, len};
        parse_chunked(stream, len, two, 2, &r);
        assert_same_result(&ref, &r);
        ssep_list_free(&r.evs);
    }

    /* Random piece sizes. */
    for (int iter = 0; iter < 200; iter++) {
        size_t sizes[8];
        for (size_t k = 0; k < 8; k++)
            sizes[k] = 1 + (size_t)(rng() % 12);
        parse_chunked(stream, len, sizes, 8, &r);
        assert_same_result(&ref, &r);
        ssep_list_free(&r.evs);
    }
    ssep_list_free(&ref.evs);
}

static void test_parser_bom(void **state)
{
    (void)state;
    static const size_t whole[] = {0}, bytes[] = {1};
    static const struct {
        const char *s;
        size_t len;
        size_t events;
        size_t comments;
        char first; /* first data byte of the first event */
    } v[] = {
        /* One leading BOM is skipped. */
        {S("\357\273\277data: x\n\n"), 1, 0, 'x'},
        {S("\xEF\xBB\xBF:c\n"), 0, 1, 0},
        {S("\xEF\xBB\xBF"), 0, 0, 0},
        /* Only one: a second BOM is part of the first field name. */
        {S("\357\273\277\357\273\277data: x\n\n"), 0, 0, 0},
        {S("\xEF\xBB\xBF\xEF\xBB\xBF:c\n"), 0, 0, 0},
        /* A partial BOM is content, not skipped. */
        {S("\xEF:c\n"), 0, 0, 0},
        {S("\xEF\xBB:c\n"), 0, 0, 0},
        {S("\xEF\xBB\n:c\n"), 0, 1, 0},
        {S("\xEF\n:c\n"), 0, 1, 0},
        {S("\xBB\xBF:c\n"), 0, 0, 0},
        /* Not at the start of the stream: not skipped. */
        {S("data: a\n\n\357\273\277data: b\n\n"), 1, 0, 'a'},
        {S("\n\xEF\xBB\xBF:c\n"), 0, 0, 0},
        /* A stream can begin with a blank line or a plain line too. */
        {S("\ndata: x\n\n"), 1, 0, 'x'},
        {S(":c\n"), 0, 1, 0},
    };

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct parse_result a, b;
        parse_chunked(v[i].s, v[i].len, whole, 1, &a);
        parse_chunked(v[i].s, v[i].len, bytes, 1, &b);
        if (a.evs.count != v[i].events || a.comments != v[i].comments)
            print_error("BOM vector %zu: %zu events, %zu comments\n", i, a.evs.count, a.comments);
        assert_int_equal(a.evs.count, v[i].events);
        assert_int_equal(a.comments, v[i].comments);
        assert_same_result(&a, &b);
        if (a.evs.count > 0)
            assert_int_equal(a.evs.ev[0].data[0], v[i].first);
        ssep_list_free(&a.evs);
        ssep_list_free(&b.evs);
    }

    /* The BOM split over feeds of 1 and 2 bytes. */
    struct ssep_list evs;
    struct ssep_parser p;
    ssep_list_init(&evs);
    ssep_init(&p, ssep_list_add, &evs);
    assert_int_equal(ssep_feed(&p, "\xEF", 1), 0);
    assert_int_equal(ssep_feed(&p, S("\273\277da")), 0);
    assert_int_equal(ssep_feed(&p, S("ta: y\n\n")), 0);
    assert_int_equal(evs.count, 1);
    assert_event(&evs.ev[0], "message", S("y"), "");
    ssep_free(&p);
    ssep_list_free(&evs);

    /* Empty feeds change nothing, including before the BOM decision. */
    ssep_list_init(&evs);
    ssep_init(&p, ssep_list_add, &evs);
    assert_int_equal(ssep_feed(&p, "", 0), 0);
    assert_int_equal(ssep_feed(&p, "\xEF\xBB", 2), 0);
    assert_int_equal(ssep_feed(&p, NULL, 0), 0);
    assert_int_equal(ssep_feed(&p, S("\277data: z\n\n")), 0);
    assert_int_equal(evs.count, 1);
    assert_event(&evs.ev[0], "message", S("z"), "");
    ssep_free(&p);
    ssep_list_free(&evs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_vectors),
        cmocka_unit_test(test_frame_long_payload),
        cmocka_unit_test(test_frame_round_trip),
        cmocka_unit_test(test_frame_stream),
        cmocka_unit_test(test_event_type_valid),
        cmocka_unit_test(test_comment),
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_parser_spec_examples),
        cmocka_unit_test(test_parser_fields),
        cmocka_unit_test(test_parser_line_endings),
        cmocka_unit_test(test_parser_chunking),
        cmocka_unit_test(test_parser_bom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
