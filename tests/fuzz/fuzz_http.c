/*
 * libFuzzer target for src/http.c.
 *
 * The input is treated as bytes arriving on a connection:
 *   - http_parse_head runs on it whole, then incrementally (two reads split
 *     at a few points, and one byte per read for small inputs) with the
 *     proper last_len; every way of feeding must give the same answer, and
 *     an answer given for a prefix must be the answer for the whole input.
 *   - Each prefix handed to the parser is a fresh allocation of exactly its
 *     length, so ASan catches a read past `len`, not just past the input.
 *   - Accepted requests are checked for invariants (views inside the head,
 *     trimmed values, framing consistent with the headers).
 *   - When the head says chunked, the bytes after it go through the chunked
 *     decoder, whole and in pieces, which must agree. The decoder also runs
 *     on the raw input so that it gets fuzzed without a valid head.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Byte-per-read feeding allocates once per byte: keep it to small inputs. */
#define BYTEWISE_MAX 768

static void check_view(struct http_str v, const char *base, size_t len)
{
    CHECK(v.ptr != NULL);
    CHECK(v.ptr >= base);
    CHECK(v.len <= len);
    CHECK((size_t)(v.ptr - base) <= len - v.len);
}

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool token_ok(struct http_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (!is_tchar((unsigned char)s.ptr[i]))
            return false;
    }
    return true;
}

/* Invariants of an accepted head buf[0..n). */
static void check_request(const struct http_request *req, const char *buf, size_t n)
{
    CHECK(n >= 2 && buf[n - 1] == '\n');
    CHECK(memchr(buf, '\0', n) == NULL);
    check_view(req->method_str, buf, n);
    check_view(req->target, buf, n);
    /* path and query are parts of the target (an empty absolute-form path
     * is the "/" of its "//"). */
    check_view(req->path, req->target.ptr, req->target.len);
    check_view(req->query, req->target.ptr, req->target.len);
    CHECK(token_ok(req->method_str));
    CHECK(req->target.len > 0);
    for (size_t i = 0; i < req->target.len; i++) {
        unsigned char c = (unsigned char)req->target.ptr[i];
        CHECK(c > 0x20 && c < 0x7F && c != '#');
    }
    CHECK(req->minor_version == 0 || req->minor_version == 1);
    CHECK(req->num_headers <= HTTP_MAX_HEADERS);

    unsigned hosts = 0, cls = 0, tes = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        check_view(h->name, buf, n);
        check_view(h->value, buf, n);
        CHECK(token_ok(h->name));
        if (h->value.len > 0) {
            CHECK(h->value.ptr[0] != ' ' && h->value.ptr[0] != '\t');
            CHECK(h->value.ptr[h->value.len - 1] != ' ' && h->value.ptr[h->value.len - 1] != '\t');
        }
        for (size_t k = 0; k < h->value.len; k++) {
            unsigned char c = (unsigned char)h->value.ptr[k];
            CHECK(c == '\t' || (c >= 0x20 && c != 0x7F));
        }
        hosts += http_str_eq_nocase(h->name, "host");
        cls += http_str_eq_nocase(h->name, "content-length");
        tes += http_str_eq_nocase(h->name, "transfer-encoding");
    }
    CHECK(hosts <= 1);
    CHECK(req->minor_version == 0 || hosts == 1);
    CHECK(cls == (req->has_content_length ? 1u : 0u));
    CHECK(tes == (req->chunked ? 1u : 0u));
    CHECK(!(req->chunked && req->has_content_length));
    CHECK(!req->chunked || req->minor_version == 1);
    CHECK(req->has_content_length || req->content_length == 0);
    CHECK(req->content_length < (UINT64_C(1) << 53));
    if (req->num_headers > 0) {
        const struct http_str *v = http_request_header(req, "host");
        CHECK((v != NULL) == (hosts == 1));
    }
}

struct outcome {
    int r;
    int status;
    const char *base;
    struct http_request req;
};

static int parse(const char *buf, size_t len, size_t last_len, struct outcome *o)
{
    o->status = 0;
    o->base = buf;
    o->r = http_parse_head(buf, len, last_len, &o->req, &o->status);
    CHECK(o->r == HTTP_PARSE_AGAIN || o->r == HTTP_PARSE_ERROR ||
          (o->r > 0 && (size_t)o->r <= len));
    if (o->r == HTTP_PARSE_ERROR) {
        CHECK(o->status == 400 || o->status == 414 || o->status == 431 || o->status == 501 ||
              o->status == 505);
    }
    if (o->r > 0)
        check_request(&o->req, buf, (size_t)o->r);
    return o->r;
}

static bool same_view(struct http_str a, const char *base_a, struct http_str b, const char *base_b)
{
    return a.len == b.len && a.ptr - base_a == b.ptr - base_b;
}

/* Two outcomes for the same bytes (possibly in different buffers) agree. */
static void check_same(const struct outcome *a, const struct outcome *b)
{
    CHECK(a->r == b->r);
    if (a->r == HTTP_PARSE_ERROR)
        CHECK(a->status == b->status);
    if (a->r <= 0)
        return;
    const struct http_request *x = &a->req, *y = &b->req;
    CHECK(x->method == y->method);
    CHECK(same_view(x->method_str, a->base, y->method_str, b->base));
    CHECK(same_view(x->target, a->base, y->target, b->base));
    CHECK(same_view(x->path, a->base, y->path, b->base));
    CHECK(same_view(x->query, a->base, y->query, b->base));
    CHECK(x->minor_version == y->minor_version);
    CHECK(x->keep_alive == y->keep_alive);
    CHECK(x->chunked == y->chunked);
    CHECK(x->has_content_length == y->has_content_length);
    CHECK(x->content_length == y->content_length);
    CHECK(x->expect_continue == y->expect_continue);
    CHECK(x->num_headers == y->num_headers);
    for (size_t i = 0; i < x->num_headers; i++) {
        CHECK(same_view(x->headers[i].name, a->base, y->headers[i].name, b->base));
        CHECK(same_view(x->headers[i].value, a->base, y->headers[i].value, b->base));
    }
}

/*
 * Two reads: the first k bytes (in their own exact-size buffer), then all of
 * them with last_len = k. A decision taken at k must be the whole answer.
 */
static void check_split(const uint8_t *data, size_t size, size_t k, const struct outcome *whole,
                        struct outcome *tmp)
{
    char *first = copy_exact(data, k);
    if (parse(first, k, 0, tmp) != HTTP_PARSE_AGAIN) {
        check_same(whole, tmp);
        free(first);
        return;
    }
    free(first);
    char *all = copy_exact(data, size);
    parse(all, size, k, tmp);
    check_same(whole, tmp);
    free(all);
}

/* One byte per read, each prefix in its own exact-size buffer. */
static void check_bytewise(const uint8_t *data, size_t size, const struct outcome *whole,
                           struct outcome *tmp)
{
    size_t prev = 0;

    for (size_t k = 1; k <= size; k++) {
        char *p = copy_exact(data, k);
        int r = parse(p, k, prev, tmp);
        if (r != HTTP_PARSE_AGAIN || k == size) {
            check_same(whole, tmp);
            free(p);
            return;
        }
        free(p);
        prev = k;
    }
}

/* Growing reads of varying sizes over one buffer (cheap for any size). */
static void check_growing(const uint8_t *data, size_t size, const struct outcome *whole,
                          struct outcome *tmp)
{
    char *all = copy_exact(data, size);
    size_t prev = 0, k = 0;

    for (size_t i = 0; k < size; i++) {
        k += 1 + (size_t)(data[i % size] & 0x3F);
        if (k > size)
            k = size;
        if (parse(all, k, prev, tmp) != HTTP_PARSE_AGAIN || k == size) {
            check_same(whole, tmp);
            break;
        }
        prev = k;
    }
    free(all);
}

/* ------------------------------------------------------------- chunked */

struct decoded {
    int r;
    int status;
    size_t after; /* input bytes after the body, when r >= 0 */
    size_t len;
    char *body;
};

static void decode_whole(const uint8_t *in, size_t n, uint64_t max_body, struct decoded *out)
{
    struct http_chunked dec = {0};
    char *buf = copy_exact(in, n);
    size_t len = n;

    out->status = 0;
    out->r = http_chunked_decode(&dec, buf, &len, max_body, &out->status);
    CHECK(len <= n);
    CHECK(dec.total <= max_body);
    CHECK(out->r == HTTP_PARSE_AGAIN || out->r == HTTP_PARSE_ERROR || out->r >= 0);
    if (out->r == HTTP_PARSE_ERROR)
        CHECK(out->status == 400 || out->status == 413);
    else
        CHECK(dec.total == len);
    if (out->r >= 0) {
        size_t after = (size_t)out->r;
        CHECK(after <= n - len);
        /* Left unmoved at the end of the input. */
        CHECK(memcmp(buf + n - after, in + n - after, after) == 0);
        out->after = after;
    }
    if (out->r == HTTP_PARSE_AGAIN) {
        /* Not finished: more input is welcome, nothing was held back. */
        size_t zero = 0;
        int st = 0;
        CHECK(http_chunked_decode(&dec, buf, &zero, max_body, &st) == HTTP_PARSE_AGAIN);
        CHECK(zero == 0);
    }
    out->len = len;
    out->body = buf;
}

/* Feeds `in` in pieces whose sizes come from `sizes`; appends the output. */
static void decode_pieces(const uint8_t *in, size_t n, uint64_t max_body, const uint8_t *sizes,
                          size_t nsizes, struct decoded *out)
{
    struct http_chunked dec = {0};
    char *body = malloc(n ? n : 1);
    size_t off = 0, w = 0;

    CHECK(body != NULL);
    out->r = HTTP_PARSE_AGAIN;
    out->status = 0;
    for (size_t i = 0; off < n && out->r == HTTP_PARSE_AGAIN; i++) {
        size_t k = nsizes ? 1 + (size_t)(sizes[i % nsizes] & 0x1F) : 1;
        if (k > n - off)
            k = n - off;
        char *piece = copy_exact(in + off, k);
        size_t len = k;
        out->r = http_chunked_decode(&dec, piece, &len, max_body, &out->status);
        CHECK(len <= k);
        memcpy(body + w, piece, len);
        w += len;
        off += k;
        if (out->r >= 0) {
            CHECK((size_t)out->r <= k - len);
            out->after = (size_t)out->r + (n - off);
        }
        free(piece);
    }
    out->len = w;
    out->body = body;
}

static void check_chunked(const uint8_t *in, size_t n, uint64_t max_body, const uint8_t *sizes,
                          size_t nsizes)
{
    struct decoded whole, parts;

    decode_whole(in, n, max_body, &whole);
    decode_pieces(in, n, max_body, sizes, nsizes, &parts);
    CHECK(whole.r == HTTP_PARSE_ERROR ? parts.r == HTTP_PARSE_ERROR
                                      : (whole.r >= 0) == (parts.r >= 0));
    if (whole.r == HTTP_PARSE_ERROR)
        CHECK(whole.status == parts.status);
    if (whole.r >= 0)
        CHECK(whole.after == parts.after);
    CHECK(whole.len == parts.len);
    CHECK(whole.len == 0 || memcmp(whole.body, parts.body, whole.len) == 0);
    free(whole.body);
    free(parts.body);

    /* One byte at a time as well, for small inputs. */
    if (n <= BYTEWISE_MAX) {
        decode_whole(in, n, max_body, &whole);
        decode_pieces(in, n, max_body, NULL, 0, &parts);
        CHECK(whole.r == parts.r || (whole.r >= 0 && parts.r >= 0));
        if (whole.r >= 0)
            CHECK(whole.after == parts.after);
        CHECK(whole.len == parts.len);
        free(whole.body);
        free(parts.body);
    }
}

/* ------------------------------------------------------------- helpers */

static void check_helpers(const uint8_t *data, size_t size)
{
    char *src = copy_exact(data, size);
    char *out = malloc(size ? size : 1);
    CHECK(out != NULL);

    long n = http_percent_decode(src, size, out, size);
    CHECK(n == -1 || (n >= 0 && (size_t)n <= size));

    struct http_str q = {src, size};
    char val[64];
    long v = http_query_param(q, "a", val, sizeof(val));
    CHECK(v >= -2 && v <= (long)sizeof(val));
    free(src);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct outcome whole, tmp;

    char *buf = copy_exact(data, size);
    parse(buf, size, 0, &whole);

    if (size > 0) {
        size_t splits[] = {size / 2, size / 3, (size * 2) / 3, size - 1, data[0] % size};
        for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
            if (splits[i] > 0)
                check_split(data, size, splits[i], &whole, &tmp);
        }
        check_growing(data, size, &whole, &tmp);
        if (size <= BYTEWISE_MAX)
            check_bytewise(data, size, &whole, &tmp);
    }

    if (whole.r > 0) {
        /* The head alone, exactly, is the same request. */
        parse(buf, (size_t)whole.r, 0, &tmp);
        check_same(&whole, &tmp);
        if (whole.req.chunked) {
            const uint8_t *body = data + whole.r;
            size_t blen = size - (size_t)whole.r;
            check_chunked(body, blen, 1 << 20, data, size);
            check_chunked(body, blen, blen / 4, data + 1, size - 1);
        }
    }
    free(buf);

    /* The decoder on its own, and the string helpers. */
    check_chunked(data, size, 1 << 16, data, size);
    check_chunked(data, size, size / 3, data, size);
    check_helpers(data, size);
    return 0;
}
