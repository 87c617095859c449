/*
 * Unit tests for src/http.c: request-head parser, chunked decoder and the
 * small string helpers.
 *
 * Every input is copied so that its last byte is the last byte of a page and
 * the next page is PROT_NONE: reading one byte past `len` crashes the test
 * instead of passing by luck. Incremental tests place every prefix that way
 * too, so an over-read past a prefix is caught as well.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http.h"

#include "guarded.h"

/* A literal and its length, NULs included. */
#define RAW(s) s, sizeof(s) - 1

/* ---------------------------------------------------------------- helpers */

static void assert_view(struct http_str v, const char *expected)
{
    size_t n = strlen(expected);
    if (v.len != n)
        fail_msg("view \"%.*s\" (len %zu), expected \"%s\"", (int)v.len, v.ptr, v.len, expected);
    if (n > 0)
        assert_memory_equal(v.ptr, expected, n);
}

static void assert_inside(struct http_str v, const char *buf, size_t len)
{
    assert_non_null(v.ptr);
    assert_true(v.ptr >= buf);
    assert_true(v.len <= len);
    assert_true((size_t)(v.ptr - buf) <= len - v.len);
}

/*
 * Feeds raw[0..n) one more byte per call, as a server reading one byte at a
 * time would (last_len = the previous len), each prefix placed before the
 * guard page. Returns the first result that is not AGAIN (or AGAIN) and the
 * length at which it came in *at.
 */
static int feed_bytewise(struct guarded *g, const char *raw, size_t n, struct http_request *req,
                         int *status, size_t *at)
{
    size_t prev = 0;

    for (size_t k = 1; k <= n; k++) {
        char *p = guarded_put(g, raw, k);
        int r = http_parse_head(p, k, prev, req, status);
        if (r != HTTP_PARSE_AGAIN) {
            *at = k;
            return r;
        }
        prev = k;
    }
    *at = n;
    return HTTP_PARSE_AGAIN;
}

static struct http_request req_storage;

/* ------------------------------------------------------ valid request table */

struct hdr {
    const char *name;
    const char *value;
};

struct valid_case {
    const char *raw;
    enum http_method method;
    const char *method_str;
    const char *target;
    const char *path;
    const char *query;
    int minor;
    bool keep_alive;
    bool chunked;
    bool has_cl;
    uint64_t cl;
    bool expect;
    size_t num_headers;
    struct hdr h[7];
};

static const struct valid_case valid_cases[] = {
    {"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "example.com"}}},
    {"GET /events?channel=news&since=42 HTTP/1.1\r\nHost: localhost:8080\r\n"
     "Accept: text/event-stream\r\nLast-Event-ID: 17\r\n\r\n",
     HTTP_GET,
     "GET",
     "/events?channel=news&since=42",
     "/events",
     "channel=news&since=42",
     1,
     true,
     false,
     false,
     0,
     false,
     3,
     {{"Host", "localhost:8080"}, {"Accept", "text/event-stream"}, {"Last-Event-ID", "17"}}},
    /* OWS trimmed both sides; inner whitespace, obs-text, '#' kept. */
    {"GET /a HTTP/1.1\r\nHost:x\r\nX-A: \t spaced  \tvalue \t\r\nX-Empty:\r\nX-Blank: \t \r\n"
     "X-Obs: caf\xc3\xa9\r\nReferer: http://h/p?q#f\r\n"
     "X!#$%&'*+-.^_`|~09aZ: tchars\r\n\r\n",
     HTTP_GET,
     "GET",
     "/a",
     "/a",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     7,
     {{"Host", "x"},
      {"X-A", "spaced  \tvalue"},
      {"X-Empty", ""},
      {"X-Blank", ""},
      {"X-Obs", "caf\xc3\xa9"},
      {"Referer", "http://h/p?q#f"},
      {"X!#$%&'*+-.^_`|~09aZ", "tchars"}}},
    /* HTTP/1.0: no Host needed, no keep-alive by default. */
    {"GET /old HTTP/1.0\r\n\r\n",
     HTTP_GET,
     "GET",
     "/old",
     "/old",
     "",
     0,
     false,
     false,
     false,
     0,
     false,
     0,
     {{NULL, NULL}}},
    {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     0,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Connection", "Keep-Alive"}}},
    {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     0,
     false,
     false,
     false,
     0,
     false,
     1,
     {{"Connection", "keep-alive, close"}}},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     1,
     false,
     false,
     false,
     0,
     false,
     2,
     {{"Host", "a"}, {"Connection", "close"}}},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, ,CLOSE \r\n\r\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     1,
     false,
     false,
     false,
     0,
     false,
     2,
     {{"Host", "a"}, {"Connection", "Upgrade, ,CLOSE"}}},
    /* Tokens are whole list elements: "closed" is not "close". */
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed, xclose\r\n\r\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     2,
     {{"Host", "a"}, {"Connection", "closed, xclose"}}},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     1,
     false,
     false,
     false,
     0,
     false,
     3,
     {{"Host", "a"}, {"Connection", "keep-alive"}, {"Connection", "close"}}},
    {"POST /publish HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
     "Content-Length: 42\r\n\r\n",
     HTTP_POST,
     "POST",
     "/publish",
     "/publish",
     "",
     1,
     true,
     false,
     true,
     42,
     false,
     3,
     {{"Host", "a"}, {"Content-Type", "application/json"}, {"Content-Length", "42"}}},
    {"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 0007\r\n\r\n",
     HTTP_POST,
     "POST",
     "/",
     "/",
     "",
     1,
     true,
     false,
     true,
     7,
     false,
     2,
     {{"Host", "a"}, {"content-length", "0007"}}},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
     HTTP_POST,
     "POST",
     "/",
     "/",
     "",
     1,
     true,
     false,
     true,
     0,
     false,
     2,
     {{"Host", "a"}, {"Content-Length", "0"}}},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9007199254740991\r\n\r\n",
     HTTP_POST,
     "POST",
     "/",
     "/",
     "",
     1,
     true,
     false,
     true,
     UINT64_C(9007199254740991),
     false,
     2,
     {{"Host", "a"}, {"Content-Length", "9007199254740991"}}},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked \r\n\r\n",
     HTTP_POST,
     "POST",
     "/",
     "/",
     "",
     1,
     true,
     true,
     false,
     0,
     false,
     2,
     {{"Host", "a"}, {"Transfer-Encoding", "Chunked"}}},
    {"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n",
     HTTP_PUT,
     "PUT",
     "/x",
     "/x",
     "",
     1,
     true,
     false,
     true,
     5,
     true,
     3,
     {{"Host", "a"}, {"Content-Length", "5"}, {"Expect", "100-Continue"}}},
    {"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\n\r\n",
     HTTP_PUT,
     "PUT",
     "/x",
     "/x",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     2,
     {{"Host", "a"}, {"Expect", "something-else"}}},
    {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
     HTTP_OPTIONS,
     "OPTIONS",
     "*",
     "*",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "a"}}},
    /* absolute-form: path and query come from the URI. */
    {"GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n",
     HTTP_GET,
     "GET",
     "http://example.com/a/b?c=d",
     "/a/b",
     "c=d",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "example.com"}}},
    {"GET HTTPS://Example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n",
     HTTP_GET,
     "GET",
     "HTTPS://Example.com:443",
     "/",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "x"}}},
    {"GET http://h?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
     HTTP_GET,
     "GET",
     "http://h?x=1",
     "/",
     "x=1",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "h"}}},
    /* authority-form for CONNECT: no path, no query. */
    {"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
     HTTP_CONNECT,
     "CONNECT",
     "example.com:443",
     "",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "example.com:443"}}},
    {"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
     HTTP_CONNECT,
     "CONNECT",
     "[::1]:8443",
     "",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "[::1]:8443"}}},
    /* Unknown but valid methods are not an error; names are case-sensitive. */
    {"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n",
     HTTP_METHOD_UNKNOWN,
     "BREW",
     "/pot",
     "/pot",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "a"}}},
    {"get / HTTP/1.1\r\nHost: a\r\n\r\n",
     HTTP_METHOD_UNKNOWN,
     "get",
     "/",
     "/",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "a"}}},
    {"M-!#$%&'*+.^_`|~ / HTTP/1.1\r\nHost: a\r\n\r\n",
     HTTP_METHOD_UNKNOWN,
     "M-!#$%&'*+.^_`|~",
     "/",
     "/",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "a"}}},
    /* Empty lines before the request line are skipped (up to four). */
    {"\r\n\n\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "a"}}},
    /* Bare LF line ends, alone and mixed with CRLF. */
    {"GET /lf HTTP/1.1\nHost: a\n\n",
     HTTP_GET,
     "GET",
     "/lf",
     "/lf",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "a"}}},
    {"GET / HTTP/1.1\r\nHost: a\n\r\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "a"}}},
    {"GET / HTTP/1.1\nHost: a\r\n\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "a"}}},
    {"HEAD / HTTP/1.0\n\n",
     HTTP_HEAD,
     "HEAD",
     "/",
     "/",
     "",
     0,
     false,
     false,
     false,
     0,
     false,
     0,
     {{NULL, NULL}}},
    /* An empty Host is valid (RFC 9112 section 3.2), as is an IP literal. */
    {"GET / HTTP/1.1\r\nHost:\r\n\r\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", ""}}},
    {"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
     HTTP_GET,
     "GET",
     "/",
     "/",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "[::1]:8080"}}},
    {"GET /p?a=1?b=/c HTTP/1.1\r\nHost: a\r\n\r\n",
     HTTP_GET,
     "GET",
     "/p?a=1?b=/c",
     "/p",
     "a=1?b=/c",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "a"}}},
    {"GET /? HTTP/1.1\r\nHost: a\r\n\r\n",
     HTTP_GET,
     "GET",
     "/?",
     "/",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "a"}}},
    {"GET /%41%zz/[x]{y}|^`\"<>\\ HTTP/1.1\r\nHost: a\r\n\r\n",
     HTTP_GET,
     "GET",
     "/%41%zz/[x]{y}|^`\"<>\\",
     "/%41%zz/[x]{y}|^`\"<>\\",
     "",
     1,
     true,
     false,
     false,
     0,
     false,
     1,
     {{"Host", "a"}}},
    {"DELETE /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
     HTTP_DELETE,
     "DELETE",
     "/x",
     "/x",
     "",
     1,
     false,
     true,
     false,
     0,
     false,
     3,
     {{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Connection", "close"}}},
};

static void check_valid(const struct valid_case *c, const struct http_request *req, const char *buf,
                        size_t len)
{
    assert_int_equal(req->method, c->method);
    assert_view(req->method_str, c->method_str);
    assert_view(req->target, c->target);
    assert_view(req->path, c->path);
    assert_view(req->query, c->query);
    assert_int_equal(req->minor_version, c->minor);
    assert_int_equal(req->keep_alive, c->keep_alive);
    assert_int_equal(req->chunked, c->chunked);
    assert_int_equal(req->has_content_length, c->has_cl);
    assert_true(req->content_length == c->cl);
    assert_int_equal(req->expect_continue, c->expect);
    assert_int_equal(req->num_headers, c->num_headers);
    for (size_t i = 0; i < c->num_headers; i++) {
        assert_view(req->headers[i].name, c->h[i].name);
        assert_view(req->headers[i].value, c->h[i].value);
        assert_inside(req->headers[i].name, buf, len);
        assert_inside(req->headers[i].value, buf, len);
    }
    assert_inside(req->method_str, buf, len);
    assert_inside(req->target, buf, len);
    assert_inside(req->path, buf, len);
    assert_inside(req->query, buf, len);
}

static void test_valid_requests(void **state)
{
    (void)state;
    struct guarded g;
    guarded_init(&g, 4096);

    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        const struct valid_case *c = &valid_cases[i];
        size_t n = strlen(c->raw);
        char *p = guarded_put(&g, c->raw, n);
        int status = 0;
        int r = http_parse_head(p, n, 0, &req_storage, &status);
        if (r != (int)n)
            fail_msg("case %zu: got %d (status %d), expected %zu", i, r, status, n);
        check_valid(c, &req_storage, p, n);
    }
    guarded_free(&g);
}

/*
 * For every valid request and every split point: each strict prefix is
 * AGAIN, with last_len 0 and with last_len = the previous length; resuming
 * from any split gives the full result.
 */
static void test_valid_split_points(void **state)
{
    (void)state;
    struct guarded g;
    guarded_init(&g, 4096);

    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        const struct valid_case *c = &valid_cases[i];
        size_t n = strlen(c->raw);
        int status = 0;

        for (size_t k = 1; k < n; k++) {
            char *p = guarded_put(&g, c->raw, k);
            if (http_parse_head(p, k, 0, &req_storage, &status) != HTTP_PARSE_AGAIN)
                fail_msg("case %zu: prefix %zu not AGAIN", i, k);
            if (http_parse_head(p, k, k - 1, &req_storage, &status) != HTTP_PARSE_AGAIN)
                fail_msg("case %zu: prefix %zu (last_len %zu) not AGAIN", i, k, k - 1);
        }

        size_t at = 0;
        int r = feed_bytewise(&g, c->raw, n, &req_storage, &status, &at);
        assert_int_equal(r, (int)n);
        assert_int_equal(at, n);
        check_valid(c, &req_storage, g.base + g.cap - n, n);

        /* Two reads: the first k bytes, then the rest. */
        char *p = guarded_put(&g, c->raw, n);
        for (size_t k = 1; k < n; k++) {
            assert_int_equal(http_parse_head(p, k, 0, &req_storage, &status), HTTP_PARSE_AGAIN);
            r = http_parse_head(p, n, k, &req_storage, &status);
            if (r != (int)n)
                fail_msg("case %zu: resume at %zu gave %d", i, k, r);
            check_valid(c, &req_storage, p, n);
        }
    }
    guarded_free(&g);
}

static void test_methods(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        enum http_method method;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_GET},
        {"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_HEAD},
        {"POST / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_POST},
        {"PUT / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_PUT},
        {"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_DELETE},
        {"PATCH / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_PATCH},
        {"OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_OPTIONS},
        {"CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_CONNECT},
        {"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_TRACE},
        {"Get / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_METHOD_UNKNOWN},
        {"GETS / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_METHOD_UNKNOWN},
        {"GE / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_METHOD_UNKNOWN},
        {"PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_METHOD_UNKNOWN},
    };
    struct guarded g;
    guarded_init(&g, 4096);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].raw);
        char *p = guarded_put(&g, cases[i].raw, n);
        int status = 0;
        assert_int_equal(http_parse_head(p, n, 0, &req_storage, &status), (int)n);
        assert_int_equal(req_storage.method, cases[i].method);
        assert_int_equal(req_storage.method_str.len, strcspn(cases[i].raw, " "));
    }
    guarded_free(&g);
}

/* ---------------------------------------------------- invalid request table */

struct invalid_case {
    const char *name;
    const char *raw;
    size_t len;
    int status;
};

#define H11 "GET / HTTP/1.1\r\nHost: a\r\n"
#define P11 "POST / HTTP/1.1\r\nHost: a\r\n"

static const struct invalid_case invalid_cases[] = {
    /* Request smuggling: ambiguous or invalid framing. */
    {"CL+TE", RAW(P11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE+CL", RAW(P11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400},
    {"CL+TE gzip", RAW(P11 "Content-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n"), 400},
    {"CL+CL identical", RAW(P11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), 400},
    {"CL+CL different", RAW(P11 "Content-Length: 5\r\ncontent-length: 6\r\n\r\n"), 400},
    {"CL list", RAW(P11 "Content-Length: 1,1\r\n\r\n"), 400},
    {"CL list spaced", RAW(P11 "Content-Length: 1, 1\r\n\r\n"), 400},
    {"CL negative", RAW(P11 "Content-Length: -1\r\n\r\n"), 400},
    {"CL plus", RAW(P11 "Content-Length: +5\r\n\r\n"), 400},
    {"CL hex", RAW(P11 "Content-Length: 0x10\r\n\r\n"), 400},
    {"CL empty", RAW(P11 "Content-Length:\r\n\r\n"), 400},
    {"CL inner space", RAW(P11 "Content-Length: 1 2\r\n\r\n"), 400},
    {"CL 2^53", RAW(P11 "Content-Length: 9007199254740992\r\n\r\n"), 400},
    {"CL 2^64", RAW(P11 "Content-Length: 18446744073709551616\r\n\r\n"), 400},
    {"CL huge", RAW(P11 "Content-Length: 999999999999999999999999999999\r\n\r\n"), 400},
    {"CL space before colon", RAW(P11 "Content-Length : 5\r\n\r\n"), 400},
    {"TE gzip", RAW(P11 "Transfer-Encoding: gzip\r\n\r\n"), 501},
    {"TE gzip, chunked", RAW(P11 "Transfer-Encoding: gzip, chunked\r\n\r\n"), 501},
    {"TE chunked, chunked", RAW(P11 "Transfer-Encoding: chunked, chunked\r\n\r\n"), 501},
    {"TE identity", RAW(P11 "Transfer-Encoding: identity\r\n\r\n"), 501},
    {"TE chunked with params", RAW(P11 "Transfer-Encoding: chunked;a=b\r\n\r\n"), 501},
    {"TE xchunked", RAW(P11 "Transfer-Encoding: xchunked\r\n\r\n"), 501},
    {"TE empty", RAW(P11 "Transfer-Encoding:\r\n\r\n"), 400},
    {"TE twice", RAW(P11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE in HTTP/1.0", RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE space before colon", RAW(P11 "Transfer-Encoding : chunked\r\n\r\n"), 400},
    /* Field syntax. */
    {"obs-fold SP", RAW(H11 "X-A: b\r\n c\r\n\r\n"), 400},
    {"obs-fold HTAB", RAW(H11 "X-A: b\r\n\tc\r\n\r\n"), 400},
    {"whitespace before first field", RAW("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400},
    {"whitespace-only line", RAW(H11 "   \r\n\r\n"), 400},
    {"space before colon", RAW("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400},
    {"tab before colon", RAW("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), 400},
    {"empty field name", RAW(H11 ": a\r\n\r\n"), 400},
    {"no colon", RAW(H11 "X-A b\r\n\r\n"), 400},
    {"paren in name", RAW(H11 "X(A): b\r\n\r\n"), 400},
    {"at in name", RAW(H11 "X@A: b\r\n\r\n"), 400},
    {"quote in name", RAW(H11 "X\"A: b\r\n\r\n"), 400},
    {"obs-text in name", RAW(H11 "X\xc3\xa9: b\r\n\r\n"), 400},
    {"slash in name", RAW(H11 "X/A: b\r\n\r\n"), 400},
    {"CTL in value", RAW(H11 "X-A: a\x01z\r\n\r\n"), 400},
    {"ESC in value", RAW(H11 "X-A: \x1b[0m\r\n\r\n"), 400},
    {"DEL in value", RAW(H11 "X-A: a\x7fz\r\n\r\n"), 400},
    {"VT in value", RAW(H11 "X-A: a\vz\r\n\r\n"), 400},
    {"FF before colon", RAW(H11 "X-A\f: z\r\n\r\n"), 400},
    /* Bare CR and NUL. */
    {"bare CR in value", RAW(H11 "X-A: a\rb\r\n\r\n"), 400},
    {"bare CR line end", RAW(H11 "X-A: a\r\r\n\r\n"), 400},
    {"bare CR line ends only", RAW("GET / HTTP/1.1\rHost: a\r\r"), 400},
    {"bare CR before end", RAW(H11 "\r\r\n"), 400},
    {"bare CR in request line", RAW("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"bare CR after version", RAW("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n"), 400},
    {"NUL in method", RAW("G\0T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"NUL in target", RAW("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"NUL in version", RAW("GET / HTTP/1.1\0\r\nHost: a\r\n\r\n"), 400},
    {"NUL in field name", RAW(H11 "X\0A: b\r\n\r\n"), 400},
    {"NUL in field value", RAW(H11 "X-A: b\0c\r\n\r\n"), 400},
    {"NUL at start", RAW("\0GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    /* Request line. */
    {"HTTP/1.10", RAW("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400},
    {"HTTP/2.0", RAW("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/3.0", RAW("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/1.2", RAW("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/0.9 explicit", RAW("GET / HTTP/0.9\r\n\r\n"), 505},
    {"HTTP/0.9 style", RAW("GET /\r\n\r\n"), 400},
    {"HTTP/2 preface", RAW("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505},
    {"lowercase version", RAW("GET / http/1.1\r\nHost: a\r\n\r\n"), 400},
    {"version no minor", RAW("GET / HTTP/1\r\nHost: a\r\n\r\n"), 400},
    {"version 11", RAW("GET / HTTP/11\r\nHost: a\r\n\r\n"), 400},
    {"version letters", RAW("GET / HTTP/a.b\r\nHost: a\r\n\r\n"), 400},
    {"version two digits major", RAW("GET / HTTP/10.1\r\nHost: a\r\n\r\n"), 400},
    {"trailing SP", RAW("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400},
    {"double SP after method", RAW("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"double SP after target", RAW("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"leading SP", RAW(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"HTAB separator", RAW("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"HTAB in target", RAW("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"SP in target", RAW("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"paren in method", RAW("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"slash in method", RAW("GET/ / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"only method", RAW("GET\r\n\r\n"), 400},
    {"fragment", RAW("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"DEL in target", RAW("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"raw UTF-8 in target", RAW("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"relative target", RAW("GET index.html HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"asterisk with GET", RAW("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"asterisk plus", RAW("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"ftp scheme", RAW("GET ftp://h/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"empty authority", RAW("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"userinfo", RAW("GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"single slash scheme", RAW("GET http:/h HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"authority-form with GET", RAW("GET example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT origin-form", RAW("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT no port", RAW("CONNECT h HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT empty port", RAW("CONNECT h: HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT empty host", RAW("CONNECT :443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT bad port", RAW("CONNECT h:44x HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT userinfo", RAW("CONNECT u@h:1 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    /* Host. */
    {"HTTP/1.1 without Host", RAW("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), 400},
    {"HTTP/1.1 no fields", RAW("GET / HTTP/1.1\r\n\r\n"), 400},
    {"two Hosts", RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400},
    {"two Hosts in 1.0", RAW("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 400},
    {"Host with space", RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400},
    {"Host with slash", RAW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400},
    {"Host with userinfo", RAW("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n"), 400},
    {"Host with obs-text", RAW("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n"), 400},
    /* Leading empty lines. */
    {"five leading CRLF", RAW("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"leading bare CR", RAW("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"leading CR CR", RAW("\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"leading SP line", RAW(" \r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
};

static void test_invalid_requests(void **state)
{
    (void)state;
    struct guarded g;
    guarded_init(&g, 4096);

    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
        const struct invalid_case *c = &invalid_cases[i];
        char *p = guarded_put(&g, c->raw, c->len);
        int status = 0;
        int r = http_parse_head(p, c->len, 0, &req_storage, &status);
        if (r != HTTP_PARSE_ERROR || status != c->status)
            fail_msg("%s: got %d status %d, expected status %d", c->name, r, status, c->status);
    }
    guarded_free(&g);
}

/*
 * The same inputs fed one byte at a time give the same answer, and no
 * prefix is ever accepted as a request.
 */
static void test_invalid_incremental(void **state)
{
    (void)state;
    struct guarded g;
    guarded_init(&g, 4096);

    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
        const struct invalid_case *c = &invalid_cases[i];
        int status = 0;
        size_t at = 0;
        int r = feed_bytewise(&g, c->raw, c->len, &req_storage, &status, &at);
        if (r != HTTP_PARSE_ERROR || status != c->status)
            fail_msg("%s: bytewise got %d status %d at %zu, expected status %d", c->name, r, status,
                     at, c->status);
        /* Whatever prefix decided it decides it alone, too. */
        char *p = guarded_put(&g, c->raw, at);
        status = 0;
        assert_int_equal(http_parse_head(p, at, 0, &req_storage, &status), HTTP_PARSE_ERROR);
        assert_int_equal(status, c->status);
    }
    guarded_free(&g);
}

/* A last_len larger than len cannot be from a previous call: ignored. */
static void test_bogus_last_len(void **state)
{
    (void)state;
    static const char raw[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t n = sizeof(raw) - 1;
    struct guarded g;
    int status = 0;
    guarded_init(&g, 4096);
    char *p = guarded_put(&g, raw, n);

    assert_int_equal(http_parse_head(p, n, n + 100, &req_storage, &status), (int)n);
    assert_view(req_storage.path, "/x");
    assert_int_equal(http_parse_head(p, 10, SIZE_MAX, &req_storage, &status), HTTP_PARSE_AGAIN);
    guarded_free(&g);
}

/* Hopeless input is refused as soon as it arrives, not when the head ends. */
static void test_early_rejection(void **state)
{
    (void)state;
    static const struct invalid_case cases[] = {
        {"NUL in method", RAW("G\0"), 400},
        {"CTL in request line", RAW("GET /\x01"), 400},
        {"bare CR in request line", RAW("GET /\rx"), 400},
        {"HTTP/0.9", RAW("GET /\r\n"), 400},
        {"HTTP/2 preface line", RAW("PRI * HTTP/2.0\r\n"), 505},
        {"bad version", RAW("GET / HTTP/1.x\n"), 400},
        {"NUL in field", RAW(H11 "X: \0"), 400},
        {"bare CR in field", RAW(H11 "X: a\rb"), 400},
        {"obs-fold", RAW(H11 "X: a\r\n "), 400},
        {"DEL in field", RAW(H11 "X\x7f"), 400},
        {"DEL in target", RAW("GET /\x7f"), 400},
        {"obs-text in target", RAW("GET /\x80"), 400},
        {"HTAB in request line", RAW("GET\t"), 400},
    };
    struct guarded g;
    guarded_init(&g, 4096);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *p = guarded_put(&g, cases[i].raw, cases[i].len);
        int status = 0;
        int r = http_parse_head(p, cases[i].len, 0, &req_storage, &status);
        if (r != HTTP_PARSE_ERROR || status != cases[i].status)
            fail_msg("%s: got %d status %d", cases[i].name, r, status);
    }

    /* A trailing CR may still be the start of a CRLF. */
    static const char *const pending[] = {"\r", "\r\n\r", "GET / HTTP/1.1\r", H11 "\r",
                                          H11 "X: y\r"};
    for (size_t i = 0; i < sizeof(pending) / sizeof(pending[0]); i++) {
        size_t n = strlen(pending[i]);
        char *p = guarded_put(&g, pending[i], n);
        int status = 0;
        assert_int_equal(http_parse_head(p, n, 0, &req_storage, &status), HTTP_PARSE_AGAIN);
        assert_int_equal(http_parse_head(p, n, n - 1, &req_storage, &status), HTTP_PARSE_AGAIN);
    }
    guarded_free(&g);
}

/* ------------------------------------------------------------------ limits */

static char big[64 * 1024];

/* "GET /aaa... HTTP/1.1" with exactly `line_len` bytes, then `rest`. */
static size_t build_long_line(size_t line_len, const char *rest)
{
    size_t n = 0;
    memcpy(big, "GET /", 5);
    n = 5;
    size_t pad = line_len - 5 - 9;
    memset(big + n, 'a', pad);
    n += pad;
    memcpy(big + n, " HTTP/1.1", 9);
    n += 9;
    size_t r = strlen(rest);
    memcpy(big + n, rest, r);
    return n + r;
}

/* Parses big[0..n) whole, then one byte at a time (prefixes share one buffer). */
static int parse_big(struct guarded *g, size_t n, int *status, int *bytewise_status)
{
    char *p = guarded_put(g, big, n);
    int r = http_parse_head(p, n, 0, &req_storage, status);
    int rb = HTTP_PARSE_AGAIN;
    size_t prev = 0;

    for (size_t k = 1; k <= n && rb == HTTP_PARSE_AGAIN; k++) {
        rb = http_parse_head(p, k, prev, &req_storage, bytewise_status);
        prev = k;
    }
    assert_int_equal(rb, r);
    if (r > 0) {
        /* Re-parse whole so req_storage describes the complete request. */
        assert_int_equal(http_parse_head(p, n, 0, &req_storage, status), r);
    }
    return r;
}

static void test_request_line_limit(void **state)
{
    (void)state;
    struct guarded g;
    int status = 0, bstatus = 0;
    guarded_init(&g, sizeof(big));

    /* Exactly at the limit, with CRLF and with a bare LF. */
    size_t n = build_long_line(HTTP_MAX_REQUEST_LINE, "\r\nHost: a\r\n\r\n");
    assert_int_equal(parse_big(&g, n, &status, &bstatus), (int)n);
    assert_int_equal(req_storage.target.len, HTTP_MAX_REQUEST_LINE - 4 - 9);
    n = build_long_line(HTTP_MAX_REQUEST_LINE, "\nHost: a\n\n");
    assert_int_equal(parse_big(&g, n, &status, &bstatus), (int)n);

    /* One byte over: 414, whole or byte by byte. */
    n = build_long_line(HTTP_MAX_REQUEST_LINE + 1, "\r\nHost: a\r\n\r\n");
    assert_int_equal(parse_big(&g, n, &status, &bstatus), HTTP_PARSE_ERROR);
    assert_int_equal(status, 414);
    assert_int_equal(bstatus, 414);

    /* Incomplete: at the limit it may still end; past it, 414 right away. */
    n = build_long_line(HTTP_MAX_REQUEST_LINE, "");
    char *p = guarded_put(&g, big, n);
    assert_int_equal(http_parse_head(p, n, 0, &req_storage, &status), HTTP_PARSE_AGAIN);
    n = build_long_line(HTTP_MAX_REQUEST_LINE, "\r");
    p = guarded_put(&g, big, n);
    assert_int_equal(http_parse_head(p, n, 0, &req_storage, &status), HTTP_PARSE_AGAIN);
    n = build_long_line(HTTP_MAX_REQUEST_LINE + 1, "");
    p = guarded_put(&g, big, n);
    status = 0;
    assert_int_equal(http_parse_head(p, n, 0, &req_storage, &status), HTTP_PARSE_ERROR);
    assert_int_equal(status, 414);
    memset(big, 'A', 20000); /* no SP, no line end: still 414, not 400 */
    p = guarded_put(&g, big, 20000);
    status = 0;
    assert_int_equal(http_parse_head(p, 20000, 0, &req_storage, &status), HTTP_PARSE_ERROR);
    assert_int_equal(status, 414);
    status = 0;
    assert_int_equal(http_parse_head(p, 20000, 19999, &req_storage, &status), HTTP_PARSE_ERROR);
    assert_int_equal(status, 414);
    guarded_free(&g);
}

/* Request line, then `fields` header lines "X-NNN: v", then pad to make the
 * header section exactly `section` bytes (0: no padding field). */
static size_t build_headers(unsigned fields, size_t section, bool complete)
{
    static const char line[] = "GET / HTTP/1.1\r\nHost: a\r\n";
    size_t n = sizeof(line) - 1;
    memcpy(big, line, n);
    for (unsigned i = 0; i < fields; i++)
        n += (size_t)sprintf(big + n, "X-%03u: v\r\n", i);
    if (section > 0) {
        size_t hs = 16;                    /* strlen("GET / HTTP/1.1\r\n") */
        size_t used = n - hs + 2;          /* the final CRLF included */
        size_t value = section - used - 5; /* "P: " value "\r\n" */
        memcpy(big + n, "P: ", 3);
        memset(big + n + 3, 'p', value);
        n += 3 + value;
        memcpy(big + n, "\r\n", 2);
        n += 2;
    }
    if (complete) {
        memcpy(big + n, "\r\n", 2);
        n += 2;
    }
    return n;
}

static void test_header_limits(void **state)
{
    (void)state;
    struct guarded g;
    int status = 0, bstatus = 0;
    guarded_init(&g, sizeof(big));

    /* The header section (after the request line, final CRLF included). */
    size_t n = build_headers(0, HTTP_MAX_HEADER_BYTES, true);
    assert_int_equal(n - 16, HTTP_MAX_HEADER_BYTES);
    assert_int_equal(parse_big(&g, n, &status, &bstatus), (int)n);
    assert_int_equal(req_storage.num_headers, 2);

    n = build_headers(0, HTTP_MAX_HEADER_BYTES + 1, true);
    assert_int_equal(parse_big(&g, n, &status, &bstatus), HTTP_PARSE_ERROR);
    assert_int_equal(status, 431);
    assert_int_equal(bstatus, 431);

    /* Incomplete but already too long: 431 without waiting for the end. */
    n = build_headers(0, HTTP_MAX_HEADER_BYTES, false);
    char *p = guarded_put(&g, big, n);
    assert_int_equal(http_parse_head(p, n, 0, &req_storage, &status), HTTP_PARSE_AGAIN);
    memset(big + n, 'x', 100);
    p = guarded_put(&g, big, n + 100);
    status = 0;
    assert_int_equal(http_parse_head(p, n + 100, n, &req_storage, &status), HTTP_PARSE_ERROR);
    assert_int_equal(status, 431);

    /* Field count: 100 is fine, 101 is not. */
    n = build_headers(HTTP_MAX_HEADERS - 1, 0, true);
    assert_int_equal(parse_big(&g, n, &status, &bstatus), (int)n);
    assert_int_equal(req_storage.num_headers, HTTP_MAX_HEADERS);
    assert_view(req_storage.headers[HTTP_MAX_HEADERS - 1].name, "X-098");
    n = build_headers(HTTP_MAX_HEADERS, 0, true);
    assert_int_equal(parse_big(&g, n, &status, &bstatus), HTTP_PARSE_ERROR);
    assert_int_equal(status, 431);
    assert_int_equal(bstatus, 431);
    guarded_free(&g);
}

/* ---------------------------------------------------------------- pipelining */

static void test_pipelined(void **state)
{
    (void)state;
    static const char raw[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                              "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                              "\r\nGET /c?d HTTP/1.0\r\n\r\n"
                              "GET /d HTTP/1.1\r\nHost";
    size_t n = sizeof(raw) - 1;
    struct guarded g;
    int status = 0;
    guarded_init(&g, 4096);
    char *p = guarded_put(&g, raw, n);

    int r = http_parse_head(p, n, 0, &req_storage, &status);
    assert_int_equal(r, 28);
    assert_view(req_storage.path, "/a");
    size_t off = (size_t)r;

    r = http_parse_head(p + off, n - off, 0, &req_storage, &status);
    assert_true(r > 0);
    assert_int_equal(req_storage.method, HTTP_POST);
    assert_view(req_storage.path, "/b");
    assert_true(req_storage.has_content_length && req_storage.content_length == 3);
    off += (size_t)r;
    assert_memory_equal(p + off, "abc", 3);
    off += 3;

    /* The CRLF an old client sends after a body is skipped. */
    r = http_parse_head(p + off, n - off, 0, &req_storage, &status);
    assert_true(r > 0);
    assert_int_equal(req_storage.minor_version, 0);
    assert_view(req_storage.path, "/c");
    assert_view(req_storage.query, "d");
    assert_false(req_storage.keep_alive);
    off += (size_t)r;

    /* The last one is incomplete. */
    assert_int_equal(http_parse_head(p + off, n - off, 0, &req_storage, &status), HTTP_PARSE_AGAIN);

    /* A good request followed by garbage: the first parses, the rest fails. */
    static const char bad[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1 x\r\n\r\n";
    p = guarded_put(&g, bad, sizeof(bad) - 1);
    r = http_parse_head(p, sizeof(bad) - 1, 0, &req_storage, &status);
    assert_int_equal(r, 27);
    status = 0;
    assert_int_equal(http_parse_head(p + r, sizeof(bad) - 1 - (size_t)r, 0, &req_storage, &status),
                     HTTP_PARSE_ERROR);
    assert_int_equal(status, 400);
    guarded_free(&g);
}

static void test_header_lookup(void **state)
{
    (void)state;
    static const char raw[] = "GET / HTTP/1.1\r\nHost: h\r\nX-Dup: one\r\nx-dup: two\r\n"
                              "Last-Event-ID:  42 \r\n\r\n";
    int status = 0;
    assert_int_equal(http_parse_head(raw, sizeof(raw) - 1, 0, &req_storage, &status),
                     (int)sizeof(raw) - 1);

    const struct http_str *v = http_request_header(&req_storage, "last-event-id");
    assert_non_null(v);
    assert_view(*v, "42");
    v = http_request_header(&req_storage, "X-DUP");
    assert_non_null(v);
    assert_view(*v, "one"); /* the first one */
    assert_null(http_request_header(&req_storage, "X-Du"));
    assert_null(http_request_header(&req_storage, "X-Dupe"));
    assert_null(http_request_header(&req_storage, ""));

    struct http_str s = {"Keep-Alive", 10};
    assert_true(http_str_eq_nocase(s, "keep-alive"));
    assert_true(http_str_eq_nocase(s, "KEEP-ALIVE"));
    assert_false(http_str_eq_nocase(s, "keep-aliv"));
    assert_false(http_str_eq_nocase(s, "keep-alivee"));
    assert_false(http_str_eq_nocase(s, "keep_alive"));
    struct http_str empty = {"", 0};
    assert_true(http_str_eq_nocase(empty, ""));
    assert_false(http_str_eq_nocase(empty, "a"));
    /* Only ASCII letters fold: '@' (0x40) and '`' (0x60) are different. */
    struct http_str at = {"@", 1};
    assert_false(http_str_eq_nocase(at, "`"));
    struct http_str hi = {"\xc9", 1};
    assert_false(http_str_eq_nocase(hi, "\xe9"));
}

/* ------------------------------------------------------------------ chunked */

/* Decodes raw whole (in a guarded buffer); the body goes to out. */
static int chunked_whole(struct guarded *g, const char *raw, size_t n, uint64_t max_body, char *out,
                         size_t *out_len, int *status, const char **after)
{
    struct http_chunked dec = {0};
    char *p = guarded_put(g, raw, n);
    size_t len = n;
    int r = http_chunked_decode(&dec, p, &len, max_body, status);

    assert_true(len <= n);
    memcpy(out, p, len);
    *out_len = len;
    if (r >= 0) {
        assert_true((size_t)r <= n - len);
        *after = p + n - (size_t)r;
        /* The bytes after the body are still the original ones. */
        assert_memory_equal(*after, raw + n - (size_t)r, (size_t)r);
    }
    return r;
}

/*
 * Decodes raw in pieces of `step` bytes (each piece before a guard page),
 * appending the decoded bytes; returns the result and, when done, the
 * number of input bytes after the body.
 */
static int chunked_pieces(struct guarded *g, const char *raw, size_t n, size_t step,
                          uint64_t max_body, char *out, size_t *out_len, int *status)
{
    struct http_chunked dec = {0};
    size_t off = 0, w = 0;

    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        char *p = guarded_put(g, raw + off, k);
        size_t len = k;
        int r = http_chunked_decode(&dec, p, &len, max_body, status);
        assert_true(len <= k);
        memcpy(out + w, p, len);
        w += len;
        off += k;
        if (r != HTTP_PARSE_AGAIN) {
            *out_len = w;
            if (r >= 0) {
                assert_true((size_t)r <= k - len);
                return (int)(n - off) + r;
            }
            return r;
        }
    }
    *out_len = w;
    return HTTP_PARSE_AGAIN;
}

struct chunked_case {
    const char *raw;
    size_t len;
    const char *body;
    size_t body_len;
    size_t after;
};

static const struct chunked_case chunked_cases[] = {
    {RAW("5\r\nhello\r\n0\r\n\r\n"), RAW("hello"), 0},
    {RAW("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), RAW("hello world"), 0},
    {RAW("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n"), RAW("0123456789abcdefghij"), 0},
    {RAW("0005\r\nhello\r\n000\r\n\r\n"), RAW("hello"), 0},
    {RAW("0000000000000005\r\nhello\r\n0\r\n\r\n"), RAW("hello"), 0},
    {RAW("0\r\n\r\n"), RAW(""), 0},
    {RAW("5;foo=bar\r\nhello\r\n0;last\r\n\r\n"), RAW("hello"), 0},
    {RAW("5 ; a = b ;c; d=\"q \\\" ;x\\\\\" \t;e\r\nhello\r\n0\r\n\r\n"), RAW("hello"), 0},
    {RAW("5;a=\"caf\xc3\xa9\"\r\nhello\r\n0\r\n\r\n"), RAW("hello"), 0},
    {RAW("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Empty:\r\nX-Obs: \xff\t \r\n\r\n"), RAW("hello"),
     0},
    /* Data is opaque: CRLF, NUL and high bytes inside a chunk. */
    {RAW("6\r\n\r\n\0x\xff\n\r\n0\r\n\r\n"), RAW("\r\n\0x\xff\n"), 0},
    /* Bytes after the body belong to the next request. */
    {RAW("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), RAW("hello"), 16},
    {RAW("1\r\nx\r\n0\r\nT: 1\r\n\r\n\r\n"), RAW("x"), 2},
};

static void test_chunked_valid(void **state)
{
    (void)state;
    struct guarded g;
    char out[256];
    size_t out_len;
    int status;
    const char *after;
    guarded_init(&g, 4096);

    for (size_t i = 0; i < sizeof(chunked_cases) / sizeof(chunked_cases[0]); i++) {
        const struct chunked_case *c = &chunked_cases[i];
        status = 0;
        int r = chunked_whole(&g, c->raw, c->len, 1 << 20, out, &out_len, &status, &after);
        if (r != (int)c->after)
            fail_msg("case %zu: whole gave %d (status %d)", i, r, status);
        assert_int_equal(out_len, c->body_len);
        assert_memory_equal(out, c->body, c->body_len);

        /* Byte at a time and every other piece size give the same result. */
        for (size_t step = 1; step <= c->len; step++) {
            r = chunked_pieces(&g, c->raw, c->len, step, 1 << 20, out, &out_len, &status);
            if (r != (int)c->after)
                fail_msg("case %zu step %zu: gave %d (status %d)", i, step, r, status);
            assert_int_equal(out_len, c->body_len);
            assert_memory_equal(out, c->body, c->body_len);
        }

        /* The exact body size is within the limit. */
        r = chunked_whole(&g, c->raw, c->len, c->body_len, out, &out_len, &status, &after);
        assert_int_equal(r, (int)c->after);
    }
    guarded_free(&g);
}

struct chunked_bad {
    const char *name;
    const char *raw;
    size_t len;
    uint64_t max_body;
    int status;
};

static const struct chunked_bad chunked_bad_cases[] = {
    {"empty size", RAW("\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"plus sign", RAW("+5\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"leading space", RAW(" 5\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"leading tab", RAW("\t5\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"minus", RAW("-1\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"0x prefix", RAW("0x5\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"not hex", RAW("g\r\n"), 1 << 20, 400},
    {"trailing space", RAW("5 \r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"17 digits", RAW("00000000000000005\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"overflow", RAW("10000000000000000\r\n"), UINT64_MAX, 400},
    {"bare LF after size", RAW("5\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"bare CR after size", RAW("5\rhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"data too long", RAW("5\r\nhelloX\r\n0\r\n\r\n"), 1 << 20, 400},
    {"bare LF after data", RAW("5\r\nhello\n0\r\n\r\n"), 1 << 20, 400},
    {"CR CR after data", RAW("5\r\nhello\r\r\n0\r\n\r\n"), 1 << 20, 400},
    {"LF LF after data", RAW("5\r\nhello\n\n0\r\n\r\n"), 1 << 20, 400},
    {"no CRLF after last data", RAW("5\r\nhello0\r\n\r\n"), 1 << 20, 400},
    {"ext without name", RAW("5;\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext empty name", RAW("5;=x\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext empty value", RAW("5;a=\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext value with space", RAW("5;a=b c\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext name then space", RAW("5;a \r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext unterminated quote", RAW("5;a=\"x\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext after quote", RAW("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext CTL", RAW("5;a\x01\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext NUL in quote", RAW("5;a=\"\0\"\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext DEL in quote", RAW("5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext DEL after backslash", RAW("5;a=\"\\\x7f\"\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext bare LF", RAW("5;a=b\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"ext bad token char", RAW("5;a(b)\r\nhello\r\n0\r\n\r\n"), 1 << 20, 400},
    {"trailer obs-fold", RAW("0\r\n X: y\r\n\r\n"), 1 << 20, 400},
    {"trailer space before colon", RAW("0\r\nX : y\r\n\r\n"), 1 << 20, 400},
    {"trailer no colon", RAW("0\r\nXy\r\n\r\n"), 1 << 20, 400},
    {"trailer bare LF", RAW("0\r\nX: y\n\r\n"), 1 << 20, 400},
    {"trailer CTL", RAW("0\r\nX: \x01\r\n\r\n"), 1 << 20, 400},
    {"trailer NUL", RAW("0\r\nX: \0\r\n\r\n"), 1 << 20, 400},
    {"trailer DEL", RAW("0\r\nX: a\x7f\r\n\r\n"), 1 << 20, 400},
    {"trailer empty name", RAW("0\r\n: v\r\n\r\n"), 1 << 20, 400},
    {"final bare LF", RAW("0\r\n\n"), 1 << 20, 400},
    {"final CR CR", RAW("0\r\n\r\r"), 1 << 20, 400},
    {"over max_body", RAW("5\r\nhello\r\n0\r\n\r\n"), 4, 413},
    {"over max_body across chunks", RAW("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"), 5, 413},
    {"huge chunk announced", RAW("ffffffffffffffff\r\n"), 1 << 20, 413},
    {"nothing allowed", RAW("1\r\nx\r\n0\r\n\r\n"), 0, 413},
};

static void test_chunked_invalid(void **state)
{
    (void)state;
    struct guarded g;
    char out[256];
    size_t out_len;
    int status;
    const char *after;
    guarded_init(&g, 4096);

    for (size_t i = 0; i < sizeof(chunked_bad_cases) / sizeof(chunked_bad_cases[0]); i++) {
        const struct chunked_bad *c = &chunked_bad_cases[i];
        status = 0;
        int r = chunked_whole(&g, c->raw, c->len, c->max_body, out, &out_len, &status, &after);
        if (r != HTTP_PARSE_ERROR || status != c->status)
            fail_msg("%s: whole gave %d status %d", c->name, r, status);
        for (size_t step = 1; step <= c->len; step++) {
            status = 0;
            r = chunked_pieces(&g, c->raw, c->len, step, c->max_body, out, &out_len, &status);
            if (r != HTTP_PARSE_ERROR || status != c->status)
                fail_msg("%s step %zu: gave %d status %d", c->name, step, r, status);
        }
    }
    guarded_free(&g);
}

/* Appends a size line "5;" + ext of `ext_len` bytes + CRLF + a whole body. */
static size_t build_ext(char *buf, size_t ext_len)
{
    size_t n = 0;
    buf[n++] = '5';
    buf[n++] = ';';
    memset(buf + n, 'e', ext_len);
    n += ext_len;
    static const char rest[] = "\r\nhello\r\n0\r\n\r\n";
    memcpy(buf + n, rest, sizeof(rest) - 1);
    return n + sizeof(rest) - 1;
}

static void test_chunked_limits(void **state)
{
    (void)state;
    struct guarded g;
    static char out[64 * 1024];
    size_t out_len;
    int status = 0;
    const char *after;
    guarded_init(&g, sizeof(big));

    /* A size line of exactly 4096 bytes is fine; 4097 is not. */
    size_t n = build_ext(big, 4096 - 2);
    assert_int_equal(chunked_whole(&g, big, n, 100, out, &out_len, &status, &after), 0);
    assert_int_equal(out_len, 5);
    n = build_ext(big, 4096 - 1);
    assert_int_equal(chunked_whole(&g, big, n, 100, out, &out_len, &status, &after),
                     HTTP_PARSE_ERROR);
    assert_int_equal(status, 400);
    status = 0;
    assert_int_equal(chunked_pieces(&g, big, n, 1, 100, out, &out_len, &status), HTTP_PARSE_ERROR);
    assert_int_equal(status, 400);

    /* A trailer line over 4096 bytes. */
    n = (size_t)sprintf(big, "0\r\nX: ");
    memset(big + n, 'v', 4096);
    n += 4096;
    memcpy(big + n, "\r\n\r\n", 4);
    n += 4;
    status = 0;
    assert_int_equal(chunked_whole(&g, big, n, 100, out, &out_len, &status, &after),
                     HTTP_PARSE_ERROR);
    assert_int_equal(status, 400);

    /* Short trailer lines adding up to more than one line's limit are fine. */
    n = (size_t)sprintf(big, "0\r\n");
    while (n < 3 * 4096)
        n += (size_t)sprintf(big + n, "T: %060d\r\n", 0);
    memcpy(big + n, "\r\nZ", 3);
    n += 3;
    assert_int_equal(chunked_whole(&g, big, n, 100, out, &out_len, &status, &after), 1);
    assert_int_equal(out_len, 0);

    /* Many short trailer lines: the section as a whole is limited. */
    n = (size_t)sprintf(big, "0\r\n");
    while (n < HTTP_MAX_HEADER_BYTES + 100)
        n += (size_t)sprintf(big + n, "T: v\r\n");
    memcpy(big + n, "\r\n", 2);
    n += 2;
    status = 0;
    assert_int_equal(chunked_whole(&g, big, n, 100, out, &out_len, &status, &after),
                     HTTP_PARSE_ERROR);
    assert_int_equal(status, 400);

    /* A large body in many chunks, exactly at max_body. */
    n = 0;
    size_t body = 0;
    for (unsigned i = 1; i <= 200; i++) {
        n += (size_t)sprintf(big + n, "%x\r\n", i);
        memset(big + n, (int)('a' + i % 26), i);
        n += i;
        body += i;
        memcpy(big + n, "\r\n", 2);
        n += 2;
    }
    memcpy(big + n, "0\r\n\r\n", 5);
    n += 5;
    assert_int_equal(chunked_whole(&g, big, n, body, out, &out_len, &status, &after), 0);
    assert_int_equal(out_len, body);
    assert_int_equal(out[0], 'b');
    assert_int_equal(out[body - 1], 'a' + 200 % 26);
    status = 0;
    assert_int_equal(chunked_whole(&g, big, n, body - 1, out, &out_len, &status, &after),
                     HTTP_PARSE_ERROR);
    assert_int_equal(status, 413);
    assert_int_equal(chunked_pieces(&g, big, n, 7, body, out, &out_len, &status), 0);
    assert_int_equal(out_len, body);
    guarded_free(&g);
}

/* After the end or an error, the decoder keeps its answer. */
static void test_chunked_final_states(void **state)
{
    (void)state;
    struct http_chunked dec = {0};
    char buf[64];
    size_t len;
    int status = 0;

    memcpy(buf, "3\r\nabc\r\n0\r\n\r\nXY", 15);
    len = 15;
    assert_int_equal(http_chunked_decode(&dec, buf, &len, 100, &status), 2);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "abc", 3);
    assert_memory_equal(buf + 13, "XY", 2);
    assert_true(dec.total == 3);

    /* Done: everything given now is after the body. */
    memcpy(buf, "more", 4);
    len = 4;
    assert_int_equal(http_chunked_decode(&dec, buf, &len, 100, &status), 4);
    assert_int_equal(len, 0);

    /* An empty call while not finished is simply AGAIN. */
    struct http_chunked d2 = {0};
    len = 0;
    assert_int_equal(http_chunked_decode(&d2, buf, &len, 100, &status), HTTP_PARSE_AGAIN);
    assert_int_equal(len, 0);

    /* Errors stick, with their status. */
    memcpy(buf, "z", 1);
    len = 1;
    assert_int_equal(http_chunked_decode(&d2, buf, &len, 100, &status), HTTP_PARSE_ERROR);
    assert_int_equal(status, 400);
    memcpy(buf, "0\r\n\r\n", 5);
    len = 5;
    status = 0;
    assert_int_equal(http_chunked_decode(&d2, buf, &len, 100, &status), HTTP_PARSE_ERROR);
    assert_int_equal(status, 400);

    struct http_chunked d3 = {0};
    memcpy(buf, "10\r\n", 4);
    len = 4;
    assert_int_equal(http_chunked_decode(&d3, buf, &len, 15, &status), HTTP_PARSE_ERROR);
    assert_int_equal(status, 413);
    len = 0;
    status = 0;
    assert_int_equal(http_chunked_decode(&d3, buf, &len, 15, &status), HTTP_PARSE_ERROR);
    assert_int_equal(status, 413);
}

/* ---------------------------------------------------------- string helpers */

static void test_percent_decode(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out; /* NULL: malformed */
        long len;
    } cases[] = {
        {"", "", 0},           {"abc", "abc", 3},
        {"%41%42c", "ABc", 3}, {"%4a%4A", "JJ", 2},
        {"a+b", "a+b", 3},     {"%25", "%", 1},
        {"%2525", "%25", 3},   {"%e2%82%ac", "\xe2\x82\xac", 3},
        {"%00x", "\0x", 2},    {"%", NULL, -1},
        {"a%", NULL, -1},      {"%4", NULL, -1},
        {"%zz", NULL, -1},     {"%g1", NULL, -1},
        {"%1g", NULL, -1},     {"%+1", NULL, -1},
    };
    char out[32];
    struct guarded g;
    guarded_init(&g, 4096);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].in);
        char *p = guarded_put(&g, cases[i].in, n);
        long r = http_percent_decode(p, n, out, sizeof(out));
        assert_int_equal(r, cases[i].len);
        if (cases[i].out && r > 0)
            assert_memory_equal(out, cases[i].out, (size_t)r);
    }

    /* In place, and a too-small output buffer. */
    char buf[] = "/a%2Fb%20c";
    assert_int_equal(http_percent_decode(buf, strlen(buf), buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "/a/b c", 6);
    assert_int_equal(http_percent_decode("abcd", 4, out, 3), -1);
    assert_int_equal(http_percent_decode("%41bc", 5, out, 3), 3);
    /* An escape cut by len is malformed, whatever follows in memory. */
    assert_int_equal(http_percent_decode("%41", 2, out, sizeof(out)), -1);
    assert_int_equal(http_percent_decode("a%41", 3, out, sizeof(out)), -1);
    guarded_free(&g);
}

static void test_query_param(void **state)
{
    (void)state;
    static const struct {
        const char *query;
        const char *name;
        long ret;
        const char *value;
    } cases[] = {
        {"a=1&b=2", "a", 1, "1"},
        {"a=1&b=2", "b", 1, "2"},
        {"a=1&a=2", "a", 1, "1"},
        {"a=1&b=2", "c", -1, NULL},
        {"", "a", -1, NULL},
        {"a", "a", 0, ""},
        {"a=", "a", 0, ""},
        {"a=&b", "b", 0, ""},
        {"x=a+b%20c", "x", 5, "a b c"},
        {"x=%E2%82%AC", "x", 3, "\xe2\x82\xac"},
        {"x=1=2", "x", 3, "1=2"},
        {"x=%zz", "x", -2, NULL},
        {"x=%2", "x", -2, NULL},
        {"my%20key=v", "my key", 1, "v"},
        {"my+key=v", "my key", 1, "v"},
        {"%zz=1&b=2", "b", 1, "2"},
        {"&&a=1&", "a", 1, "1"},
        {"ab=1&a=2", "a", 1, "2"},
        {"a=1", "ab", -1, NULL},
        {"channel=news&since=42", "since", 2, "42"},
        {"x=0123456789abcdefg", "x", -2, NULL}, /* longer than out_cap (16) */
        {"x=0123456789abcdef", "x", 16, "0123456789abcdef"},
        {"x=01234567%2089abcdef", "x", -2, NULL},
    };
    char out[16];
    struct guarded g;
    guarded_init(&g, 4096);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].query);
        struct http_str q = {guarded_put(&g, cases[i].query, n), n};
        long r = http_query_param(q, cases[i].name, out, sizeof(out));
        if (r != cases[i].ret)
            fail_msg("case %zu (%s / %s): got %ld", i, cases[i].query, cases[i].name, r);
        if (cases[i].value && r > 0)
            assert_memory_equal(out, cases[i].value, (size_t)r);
    }

    /* A query view taken from a parsed request. */
    static const char raw[] = "GET /events?channel=a%2Fb&x HTTP/1.1\r\nHost: h\r\n\r\n";
    int status = 0;
    assert_int_equal(http_parse_head(raw, sizeof(raw) - 1, 0, &req_storage, &status),
                     (int)sizeof(raw) - 1);
    assert_int_equal(http_query_param(req_storage.query, "channel", out, sizeof(out)), 3);
    assert_memory_equal(out, "a/b", 3);
    assert_int_equal(http_query_param(req_storage.query, "x", out, sizeof(out)), 0);
    assert_int_equal(http_query_param(req_storage.query, "y", out, sizeof(out)), -1);

    /* The view's length bounds everything, escapes included. */
    struct http_str cut = {"a=%41&b=1", 4};
    assert_int_equal(http_query_param(cut, "a", out, sizeof(out)), -2);
    struct http_str cut_name = {"a%41=1", 3};
    assert_int_equal(http_query_param(cut_name, "aA", out, sizeof(out)), -1);
    guarded_free(&g);
}

static void test_status_reason(void **state)
{
    (void)state;
    assert_string_equal(http_status_reason(200), "OK");
    assert_string_equal(http_status_reason(204), "No Content");
    assert_string_equal(http_status_reason(400), "Bad Request");
    assert_string_equal(http_status_reason(404), "Not Found");
    assert_string_equal(http_status_reason(413), "Content Too Large");
    assert_string_equal(http_status_reason(414), "URI Too Long");
    assert_string_equal(http_status_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_reason(501), "Not Implemented");
    assert_string_equal(http_status_reason(505), "HTTP Version Not Supported");
    assert_string_equal(http_status_reason(0), "Unknown");
    assert_string_equal(http_status_reason(-1), "Unknown");
    assert_string_equal(http_status_reason(299), "Unknown");
    assert_string_equal(http_status_reason(999), "Unknown");
    /* Every status the parser can produce has a real reason phrase. */
    static const int produced[] = {400, 413, 414, 431, 501, 505};
    for (size_t i = 0; i < sizeof(produced) / sizeof(produced[0]); i++)
        assert_string_not_equal(http_status_reason(produced[i]), "Unknown");
}

/* A token in the query never reaches a log line: its value is masked
 * wherever it is, however its name is spelled, and the cut keeps nothing
 * of it. */
static void check_redact(const char *target, size_t cap, const char *want)
{
    char out[512];
    struct http_str t = {target, strlen(target)};
    size_t n = http_redact_target(t, out, cap);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

static void test_redact_target(void **state)
{
    (void)state;
    check_redact("/messages?room=a&token=abc.def.ghi", 512, "/messages?room=a&token=REDACTED");
    check_redact("/messages?token=abc&room=a", 512, "/messages?token=REDACTED&room=a");
    check_redact("/messages?%74oken=abc&token=x", 512, "/messages?%74oken=REDACTED&token=REDACTED");
    check_redact("/messages?tokens=abc&mytoken=b", 512, "/messages?tokens=abc&mytoken=b");
    check_redact("/messages?token", 512, "/messages?token");
    check_redact("/messages", 512, "/messages");
    check_redact("/x?token=secretsecret", 12, "/x?token=RE");
    check_redact("/x?a=1&&token=s", 512, "/x?a=1&&token=REDACTED");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_requests),
        cmocka_unit_test(test_valid_split_points),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_invalid_requests),
        cmocka_unit_test(test_invalid_incremental),
        cmocka_unit_test(test_early_rejection),
        cmocka_unit_test(test_bogus_last_len),
        cmocka_unit_test(test_request_line_limit),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_header_lookup),
        cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_invalid),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_chunked_final_states),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_query_param),
        cmocka_unit_test(test_status_reason),
        cmocka_unit_test(test_redact_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
