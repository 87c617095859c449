/*
 * test_http: the HTTP/1.1 layer of the real server over loopback sockets --
 * start line, CORS and OPTIONS, every error status, keep-alive, pipelining,
 * slow clients, HTTP/1.0, chunked bodies, Expect: 100-continue, --max-body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

static struct itest_server srv;

static int group_setup(void **state)
{
    (void)state;
    srv = itest_server_start(NULL);
    return srv.pid > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return itest_server_stop(&srv) == 0 ? 0 : -1;
}

/* Sends raw on a fresh connection; asserts the answer has `status` and CORS. */
static void request_expect(const char *raw, int status, struct itest_response *r)
{
    assert_int_equal(itest_request(srv.port, raw, r), 0);
    if (r->status != status) {
        fprintf(stderr, "request: %.200s\n", raw);
        itest_show_response("unexpected status", r, 300);
    }
    assert_int_equal(r->status, status);
    assert_string_equal(itest_header_or_absent(r, "Access-Control-Allow-Origin"), "*");
}

/* Asserts r is an error response: JSON {"error":...}; and, when must_close,
 * "Connection: close" and the connection really closed. */
static void check_error(const struct itest_response *r, bool must_close)
{
    if (!itest_header_starts(r, "Content-Type", "application/json") || !itest_is_json_error(r))
        itest_show_response("not a JSON error", r, 300);
    assert_true(itest_header_starts(r, "Content-Type", "application/json"));
    assert_true(itest_is_json_error(r));
    if (must_close) {
        if (!itest_header_has_token(r, "Connection", "close"))
            itest_show_response("no Connection: close", r, 300);
        assert_true(itest_header_has_token(r, "Connection", "close"));
        assert_true(r->closed);
    }
}

static void error_expect(const char *raw, int status, bool must_close)
{
    struct itest_response r;
    request_expect(raw, status, &r);
    check_error(&r, must_close);
    itest_response_free(&r);
}

/* ------------------------------------------------------------------ tests */

static void test_start_line(void **state)
{
    (void)state;
    char want[128];
    assert_true(srv.port > 0 && srv.port < 65536);
    snprintf(want, sizeof want, "sse-server listening on http://127.0.0.1:%d", srv.port);
    assert_string_equal(srv.first_line, want);
    int fd = itest_connect(srv.port);
    assert_true(fd >= 0);
    assert_true(itest_send_str(fd, "OPTIONS / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    char buf[64];
    ssize_t n = itest_recv_deadline(fd, buf, sizeof buf - 1, itest_timeout());
    assert_true(n >= 12);
    buf[n] = 0;
    assert_memory_equal(buf, "HTTP/1.1 204", 12);
    close(fd);
}

static void test_cors_everywhere(void **state)
{
    (void)state;
    static const char *const raws[] = {
        "GET /nonexistent HTTP/1.1\r\nHost: x\r\n\r\n",
        "OPTIONS /message HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
        "PUT /message HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "POST /message HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{,",
        "BREW / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        "this is not http\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++) {
        struct itest_response r;
        assert_int_equal(itest_request(srv.port, raws[i], &r), 0);
        if (strcmp(itest_header_or_absent(&r, "Access-Control-Allow-Origin"), "*") != 0) {
            fprintf(stderr, "request: %s\n", raws[i]);
            itest_show_response("no CORS", &r, 300);
        }
        assert_string_equal(itest_header_or_absent(&r, "Access-Control-Allow-Origin"), "*");
        assert_int_equal(itest_header_count(&r, "Access-Control-Allow-Origin"), 1);
        itest_response_free(&r);
    }
    /* The streams too. */
    static const char *const streams[] = {"/ping", "/messages"};
    for (size_t i = 0; i < 2; i++) {
        struct itest_sub s;
        assert_int_equal(itest_sub_open(&s, srv.port, streams[i], itest_timeout()), 0);
        assert_string_equal(itest_header_or_absent(&s.head, "Access-Control-Allow-Origin"), "*");
        itest_sub_close(&s);
    }
}

static void test_options(void **state)
{
    (void)state;
    static const char *const targets[] = {"/", "/message", "/messages", "/ping",
                                          "/nonexistent/deep?x=1"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char raw[256];
        snprintf(raw, sizeof raw,
                 "OPTIONS %s HTTP/1.1\r\nHost: x\r\nOrigin: http://example.com\r\n"
                 "Access-Control-Request-Method: POST\r\n"
                 "Access-Control-Request-Headers: content-type, last-event-id\r\n\r\n",
                 targets[i]);
        struct itest_response r;
        request_expect(raw, 204, &r);
        assert_int_equal(r.body_len, 0);
        const char *cl = itest_header(&r, "Content-Length");
        assert_true(cl == NULL || strcmp(cl, "0") == 0);
        if (!itest_header_has_token(&r, "Access-Control-Allow-Methods", "GET") ||
            !itest_header_has_token(&r, "Access-Control-Allow-Methods", "POST") ||
            !itest_header_has_token(&r, "Access-Control-Allow-Methods", "OPTIONS") ||
            !itest_header_has_token(&r, "Access-Control-Allow-Headers", "Content-Type") ||
            !itest_header_has_token(&r, "Access-Control-Allow-Headers", "Last-Event-ID"))
            itest_show_response("OPTIONS", &r, 300);
        assert_true(itest_header_has_token(&r, "Access-Control-Allow-Methods", "GET"));
        assert_true(itest_header_has_token(&r, "Access-Control-Allow-Methods", "POST"));
        assert_true(itest_header_has_token(&r, "Access-Control-Allow-Methods", "OPTIONS"));
        assert_true(itest_header_has_token(&r, "Access-Control-Allow-Headers", "Content-Type"));
        assert_true(itest_header_has_token(&r, "Access-Control-Allow-Headers", "Last-Event-ID"));
        itest_response_free(&r);
    }
}

static void test_404(void **state)
{
    (void)state;
    error_expect("GET /nonexistent HTTP/1.1\r\nHost: x\r\n\r\n", 404, false);
    error_expect("GET /nonexistent/deep/path.txt HTTP/1.1\r\nHost: x\r\n\r\n", 404, false);
    error_expect("GET /messagesX HTTP/1.1\r\nHost: x\r\n\r\n", 404, false);
    error_expect("GET /pingpong HTTP/1.1\r\nHost: x\r\n\r\n", 404, false);
}

static void test_405(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        const char *allowed;
    } cases[] = {
        {"PUT /message HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "POST"},
        {"GET /message HTTP/1.1\r\nHost: x\r\n\r\n", "POST"},
        {"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "GET"},
        {"DELETE /messages HTTP/1.1\r\nHost: x\r\n\r\n", "GET"},
        {"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", "GET"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct itest_response r;
        request_expect(cases[i].raw, 405, &r);
        check_error(&r, false);
        if (!itest_header_has_token(&r, "Allow", cases[i].allowed))
            itest_show_response("Allow", &r, 300);
        assert_true(itest_header_has_token(&r, "Allow", cases[i].allowed));
        itest_response_free(&r);
    }
}

static void test_501(void **state)
{
    (void)state;
    error_expect("BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501, true);
    error_expect("BREW /message HTTP/1.1\r\nHost: x\r\n\r\n", 501, true);
}

static void test_505(void **state)
{
    (void)state;
    error_expect("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, true);
    error_expect("GET /ping HTTP/3.0\r\nHost: x\r\n\r\n", 505, true);
}

static void test_400(void **state)
{
    (void)state;
    static const char *const raws[] = {
        /* garbage request line */
        "this is not http\r\n\r\n",
        "\x01\x02\x03\r\n\r\n",
        /* HTTP/1.1 without Host */
        "GET /nonexistent HTTP/1.1\r\n\r\n",
        /* whitespace between field name and colon */
        "GET /nonexistent HTTP/1.1\r\nHost : x\r\n\r\n",
        /* bare CR inside a field value */
        "GET /nonexistent HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
        /* bare CR in the request line */
        "GET /nonexistent\r HTTP/1.1\r\nHost: x\r\n\r\n",
        /* Content-Length together with Transfer-Encoding (smuggling) */
        "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        /* two different Content-Lengths */
        "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        /* a Content-Length that is not a number */
        "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n{}",
    };
    for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++) {
        struct itest_response r;
        assert_int_equal(itest_request(srv.port, raws[i], &r), 0);
        if (r.status != 400) {
            fprintf(stderr, "case %zu: %s\n", i, raws[i]);
            itest_show_response("expected 400", &r, 300);
        }
        assert_int_equal(r.status, 400);
        assert_string_equal(itest_header_or_absent(&r, "Access-Control-Allow-Origin"), "*");
        check_error(&r, true);
        itest_response_free(&r);
    }
}

static void test_411(void **state)
{
    (void)state;
    error_expect("POST /message HTTP/1.1\r\nHost: x\r\n\r\n", 411, false);
}

static void test_414_431(void **state)
{
    (void)state;
    size_t n = 9000;
    char *raw = malloc(n + 100);
    assert_non_null(raw);
    strcpy(raw, "GET /");
    memset(raw + 5, 'a', n);
    strcpy(raw + 5 + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    error_expect(raw, 414, true);
    free(raw);

    /* One header field of 20 KB. */
    n = 20000;
    raw = malloc(n + 100);
    assert_non_null(raw);
    strcpy(raw, "GET /nonexistent HTTP/1.1\r\nHost: x\r\nX-Big: ");
    size_t at = strlen(raw);
    memset(raw + at, 'b', n);
    strcpy(raw + at + n, "\r\n\r\n");
    error_expect(raw, 431, true);
    free(raw);

    /* 200 small header fields. */
    raw = malloc(200 * 32 + 100);
    assert_non_null(raw);
    at = (size_t)sprintf(raw, "GET /nonexistent HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 200; i++)
        at += (size_t)sprintf(raw + at, "X-H%d: v\r\n", i);
    strcpy(raw + at, "\r\n");
    error_expect(raw, 431, true);
    free(raw);
}

static void test_keep_alive(void **state)
{
    (void)state;
    struct itest_conn c;
    struct itest_response r;
    assert_int_equal(itest_conn_open(&c, srv.port), 0);

    assert_true(itest_conn_send(&c, "GET /nonexistent HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 404);
    assert_false(itest_header_has_token(&r, "Connection", "close"));
    itest_response_free(&r);

    assert_true(itest_conn_send(&c, "OPTIONS /message HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 204);
    assert_false(itest_header_has_token(&r, "Connection", "close"));
    itest_response_free(&r);

    uint64_t id = 0;
    long clients = -1;
    assert_int_equal(itest_post_message_conn(&c, NULL, "{\"k\":1}", 7, &id, &clients), 202);
    assert_int_equal(clients, 0);

    /* Connection: close: answered, then closed, nothing more. */
    assert_true(
        itest_conn_send(&c, "GET /nonexistent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 404);
    assert_true(itest_header_has_token(&r, "Connection", "close"));
    itest_response_free(&r);
    assert_true(itest_conn_wait_close(&c, itest_timeout()));
    assert_int_equal(c.len, 0);
    itest_conn_close(&c);
}

static void test_pipelining(void **state)
{
    (void)state;
    struct itest_conn c;
    struct itest_response r;
    assert_int_equal(itest_conn_open(&c, srv.port), 0);
    /* Five requests in one write. */
    assert_true(itest_conn_send(&c,
                                "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n"
                                "{\"seq\":1}"
                                "OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n"
                                "GET /nonexistent1 HTTP/1.1\r\nHost: x\r\n\r\n"
                                "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n"
                                "{\"seq\":2}"
                                "PUT /message HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
    static const int want[] = {202, 204, 404, 202, 405};
    uint64_t ids[2] = {0, 0};
    int nid = 0;
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
        if (r.status != want[i])
            itest_show_response("pipelined response out of order", &r, 300);
        assert_int_equal(r.status, want[i]);
        if (r.status == 202)
            assert_true(itest_json_u64(r.body, "id", &ids[nid++]));
        itest_response_free(&r);
    }
    /* The two POSTs were handled in order. */
    assert_int_equal(ids[1], ids[0] + 1);
    /* Nothing else arrived, and the connection is still usable. */
    assert_int_equal(c.len, 0);
    assert_true(itest_conn_send(&c, "OPTIONS /ping HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 204);
    itest_response_free(&r);
    itest_conn_close(&c);
}

static void test_pipelined_after_error(void **state)
{
    (void)state;
    static const struct {
        const char *bad;
        int status;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
        {"garbage\r\n\r\n", 400},
        {"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 501},
        {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char raw[512];
        snprintf(raw, sizeof raw,
                 "%sOPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
                 cases[i].bad);
        struct itest_conn c;
        struct itest_response r;
        assert_int_equal(itest_conn_open(&c, srv.port), 0);
        assert_true(itest_conn_send(&c, raw));
        assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
        assert_int_equal(r.status, cases[i].status);
        assert_true(itest_header_has_token(&r, "Connection", "close"));
        itest_response_free(&r);
        assert_true(itest_conn_wait_close(&c, itest_timeout()));
        if (c.len)
            fprintf(stderr, "after the error the server sent: %.300s\n", c.buf);
        assert_int_equal(c.len, 0);
        itest_conn_close(&c);
    }
}

static void test_byte_at_a_time(void **state)
{
    (void)state;
    static const char raw[] = "POST /message HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Content-Type: application/json\r\nContent-Length: 15\r\n\r\n"
                              "{\"slow\":[1,2]}\n";
    struct itest_conn c;
    struct itest_response r;
    assert_int_equal(itest_conn_open(&c, srv.port), 0);
    assert_true(itest_send_slowly(c.fd, raw, sizeof raw - 1, 1, 1));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 202);
    itest_response_free(&r);

    static const char get[] = "GET /nonexistent HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_true(itest_send_slowly(c.fd, get, sizeof get - 1, 1, 1));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 404);
    itest_response_free(&r);
    itest_conn_close(&c);
}

static void test_http10(void **state)
{
    (void)state;
    struct itest_conn c;
    struct itest_response r;

    /* Without keep-alive: answered, then closed. No Host needed in 1.0. */
    assert_int_equal(itest_conn_open(&c, srv.port), 0);
    assert_true(itest_conn_send(&c, "OPTIONS / HTTP/1.0\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 204);
    itest_response_free(&r);
    assert_true(itest_conn_wait_close(&c, itest_timeout()));
    assert_int_equal(c.len, 0);
    itest_conn_close(&c);

    assert_int_equal(itest_conn_open(&c, srv.port), 0);
    assert_true(itest_conn_send(&c, "GET /nonexistent HTTP/1.0\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 404);
    itest_response_free(&r);
    assert_true(itest_conn_wait_close(&c, itest_timeout()));
    itest_conn_close(&c);

    /* With keep-alive: stays open for the next request. */
    assert_int_equal(itest_conn_open(&c, srv.port), 0);
    assert_true(itest_conn_send(&c, "GET /nonexistent HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 404);
    assert_false(itest_header_has_token(&r, "Connection", "close"));
    itest_response_free(&r);
    assert_true(itest_conn_send(&c, "POST /message HTTP/1.0\r\nConnection: keep-alive\r\n"
                                    "Content-Length: 4\r\n\r\n[10]"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 202);
    itest_response_free(&r);
    itest_conn_close(&c);
}

static void test_chunked_post(void **state)
{
    (void)state;
    static const char body[] = "{\"chunked\":\"yes\",\"list\":[1,2,3],\"n\":1234567}";
    struct itest_sub s;
    assert_int_equal(itest_sub_open(&s, srv.port, "/messages", itest_timeout()), 0);

    struct itest_conn c;
    struct itest_response r;
    assert_int_equal(itest_conn_open(&c, srv.port), 0);
    assert_true(itest_conn_send(&c, "POST /message HTTP/1.1\r\nHost: x\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n"));
    /* Chunks of 7 bytes, hex sizes, sent in separate writes. */
    size_t len = sizeof body - 1;
    for (size_t off = 0; off < len; off += 7) {
        size_t n = len - off < 7 ? len - off : 7;
        char chunk[64];
        int cl = snprintf(chunk, sizeof chunk, "%zX\r\n%.*s\r\n", n, (int)n, body + off);
        assert_true(itest_conn_sendn(&c, chunk, (size_t)cl));
        itest_sleep_ms(2);
    }
    assert_true(itest_conn_send(&c, "0\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 202);
    uint64_t id = 0, clients = 0;
    assert_true(itest_json_u64(r.body, "id", &id));
    assert_true(itest_json_u64(r.body, "clients", &clients));
    assert_int_equal(clients, 1);
    itest_response_free(&r);

    /* A second, single-chunk message with a trailer on the same connection. */
    assert_true(itest_conn_send(&c, "POST /message HTTP/1.1\r\nHost: x\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n"
                                    "a\r\n[\"second\"]\r\n0\r\nX-Trailer: 1\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 202);
    itest_response_free(&r);
    itest_conn_close(&c);

    assert_true(itest_sub_wait(&s, 2, itest_timeout()));
    assert_int_equal(s.events.count, 2);
    assert_int_equal(s.events.ev[0].data_len, len);
    assert_memory_equal(s.events.ev[0].data, body, len);
    char idstr[32];
    snprintf(idstr, sizeof idstr, "%" PRIu64, id);
    assert_string_equal(s.events.ev[0].id, idstr);
    assert_string_equal(s.events.ev[1].data, "[\"second\"]");
    itest_sub_close(&s);
}

static void test_expect_continue(void **state)
{
    (void)state;
    struct itest_conn c;
    struct itest_response r;
    assert_int_equal(itest_conn_open(&c, srv.port), 0);
    assert_true(itest_conn_send(&c, "POST /message HTTP/1.1\r\nHost: x\r\n"
                                    "Expect: 100-continue\r\nContent-Length: 11\r\n\r\n"));
    /* The interim answer comes before we send the body. */
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    if (r.status != 100)
        itest_show_response("expected 100 Continue", &r, 300);
    assert_int_equal(r.status, 100);
    assert_int_equal(r.minor_version, 1);
    itest_response_free(&r);
    assert_true(itest_conn_send(&c, "{\"cont\":1}\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 202);
    itest_response_free(&r);
    itest_conn_close(&c);
}

static void test_max_body(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-body", "1024", NULL};
    struct itest_server small = itest_server_start(args);
    assert_true(small.pid > 0);

    /* Content-Length over the limit: 413 without the body being sent. */
    struct itest_conn c;
    struct itest_response r;
    assert_int_equal(itest_conn_open(&c, small.port), 0);
    assert_true(itest_conn_send(&c, "POST /message HTTP/1.1\r\nHost: x\r\n"
                                    "Content-Length: 2000\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 413);
    check_error(&r, false);
    assert_true(itest_header_has_token(&r, "Connection", "close"));
    itest_response_free(&r);
    assert_true(itest_conn_wait_close(&c, itest_timeout()));
    assert_int_equal(c.len, 0);
    itest_conn_close(&c);

    /* Same with Expect: 100-continue: 413 and no 100. */
    assert_int_equal(itest_conn_open(&c, small.port), 0);
    assert_true(itest_conn_send(&c, "POST /message HTTP/1.1\r\nHost: x\r\n"
                                    "Expect: 100-continue\r\nContent-Length: 1025\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 413);
    itest_response_free(&r);
    itest_conn_close(&c);

    /* A chunked body growing over the limit. */
    char *big = malloc(4096);
    assert_non_null(big);
    int n = snprintf(big, 4096,
                     "POST /message HTTP/1.1\r\nHost: x\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n400\r\n\"");
    memset(big + n, 'x', 1022);
    n += 1022;
    n += snprintf(big + n, 4096 - (size_t)n, "\"\r\n400\r\n");
    memset(big + n, ' ', 1024);
    n += 1024;
    n += snprintf(big + n, 4096 - (size_t)n, "\r\n0\r\n\r\n");
    struct itest_response r2;
    assert_int_equal(itest_request_n(small.port, big, (size_t)n, 0, &r2), 0);
    assert_int_equal(r2.status, 413);
    check_error(&r2, true);
    itest_response_free(&r2);

    /* Exactly the limit is fine: a 1024-byte JSON string. */
    char *body = malloc(1024);
    assert_non_null(body);
    body[0] = '"';
    memset(body + 1, 'y', 1022);
    body[1023] = '"';
    long clients = -1;
    assert_int_equal(itest_post_message(small.port, NULL, body, 1024, NULL, &clients), 202);
    assert_int_equal(clients, 0);
    free(body);
    free(big);

    assert_int_equal(itest_server_stop(&small), 0);
}

static void test_stdout_single_line(void **state)
{
    (void)state;
    /* After all the traffic above, the server printed nothing more on stdout
     * (its logs go to stderr). */
    itest_sleep_ms(100);
    char extra[512];
    size_t n = itest_server_stdout_extra(&srv, extra, sizeof extra);
    if (n)
        fprintf(stderr, "extra stdout: %s\n", extra);
    assert_int_equal(n, 0);
    assert_true(itest_server_running(&srv));
}

int main(void)
{
    itest_init(180);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_line),
        cmocka_unit_test(test_cors_everywhere),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_404),
        cmocka_unit_test(test_405),
        cmocka_unit_test(test_501),
        cmocka_unit_test(test_505),
        cmocka_unit_test(test_400),
        cmocka_unit_test(test_411),
        cmocka_unit_test(test_414_431),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_pipelined_after_error),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_chunked_post),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_max_body),
        cmocka_unit_test(test_stdout_single_line),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
