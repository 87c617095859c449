/*
 * Unit tests for response formatting and the CORS rule (src/response.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "http.h"
#include "response.h"

#define DATE "Fri, 04 Dec 2026 14:00:00 GMT"

/* The head as a NUL-terminated string (the buffer holds no NUL). */
static char *head_text(const struct response_head *h)
{
    struct buf b = {0};
    assert_int_equal(response_head_append(&b, h), 0);
    char *s = calloc(1, buf_pending(&b) + 1);
    assert_non_null(s);
    memcpy(s, buf_head(&b), buf_pending(&b));
    buf_free(&b);
    return s;
}

static void test_head_keep_alive(void **state)
{
    (void)state;
    struct response_head h = {.status = 200,
                              .date = DATE,
                              .cors_origin = "*",
                              .content_type = "text/plain",
                              .has_length = true,
                              .length = 5,
                              .extra_headers = "ETag: \"x\"\r\n",
                              .framing = RESPONSE_KEEP_ALIVE};
    char *s = head_text(&h);
    assert_string_equal(s, "HTTP/1.1 200 OK\r\n"
                           "Date: " DATE "\r\n"
                           "Server: sse-server\r\n"
                           "Access-Control-Allow-Origin: *\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: 5\r\n"
                           "ETag: \"x\"\r\n"
                           "\r\n");
    free(s);
}

/* Each framing gets its Connection header, or none; Vary only when asked. */
static void test_head_framing(void **state)
{
    (void)state;
    struct response_head h = {.status = 404, .date = DATE, .vary_origin = true};
    const struct {
        enum response_framing f;
        const char *want; /* NULL: no Connection header at all */
    } cases[] = {{RESPONSE_KEEP_ALIVE, NULL},
                 {RESPONSE_KEEP_ALIVE_10, "Connection: keep-alive\r\n"},
                 {RESPONSE_CLOSE, "Connection: close\r\n"},
                 {RESPONSE_STREAM, NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h.framing = cases[i].f;
        char *s = head_text(&h);
        assert_non_null(strstr(s, "HTTP/1.1 404 Not Found\r\n"));
        assert_non_null(strstr(s, "Vary: Origin\r\n"));
        assert_null(strstr(s, "Access-Control-Allow-Origin"));
        assert_null(strstr(s, "Content-Length"));
        if (cases[i].want) {
            assert_non_null(strstr(s, cases[i].want));
        } else {
            assert_null(strstr(s, "Connection:"));
        }
        free(s);
    }
}

static void test_error_body(void **state)
{
    (void)state;
    char body[64];
    size_t n = response_error_body(body, sizeof body, 404, "not found");
    assert_int_equal(n, strlen("{\"error\":\"not found\"}\n"));
    assert_memory_equal(body, "{\"error\":\"not found\"}\n", n);
    /* A message that does not fit gives way to the reason phrase. */
    char longmsg[100];
    memset(longmsg, 'a', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    n = response_error_body(body, sizeof body, 503, longmsg);
    assert_int_equal(n, strlen("{\"error\":\"Service Unavailable\"}\n"));
    assert_memory_equal(body, "{\"error\":\"Service Unavailable\"}\n", n);
}

static void parse_config(struct config *cfg, const char *origin)
{
    char prog[] = "sse-server", flag[] = "--cors-origin", value[128];
    snprintf(value, sizeof value, "%s", origin ? origin : "");
    char *argv[] = {prog, flag, value, NULL};
    assert_int_equal(config_parse(cfg, origin ? 3 : 1, argv), CONFIG_RUN);
}

static void parse_request(struct http_request *req, const char *text)
{
    int status = 0;
    assert_int_equal(http_parse_head(text, strlen(text), 0, req, &status), (int)strlen(text));
}

static void test_cors_origin(void **state)
{
    (void)state;
    struct config any, some;
    struct http_request req;
    parse_config(&any, NULL);
    parse_config(&some, "https://a.example, https://b.example");
    parse_request(&req, "GET / HTTP/1.1\r\nHost: x\r\nOrigin: https://b.example\r\n\r\n");
    assert_string_equal(response_cors_origin(&any, &req), "*");
    assert_string_equal(response_cors_origin(&some, &req), "https://b.example");
    parse_request(&req, "GET / HTTP/1.1\r\nHost: x\r\nOrigin: https://c.example\r\n\r\n");
    assert_null(response_cors_origin(&some, &req));
    parse_request(&req, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_null(response_cors_origin(&some, &req));
}

/* Refused before its request arrived: the one configured origin, else none
 * (several) or "*" (no --cors-origin). */
static void test_busy(void **state)
{
    (void)state;
    struct config any, one, two;
    parse_config(&any, NULL);
    parse_config(&one, "https://a.example");
    parse_config(&two, "https://a.example,https://b.example");
    assert_string_equal(response_busy_origin(&any, NULL), "*");
    assert_string_equal(response_busy_origin(&one, NULL), "https://a.example");
    assert_null(response_busy_origin(&two, NULL));

    char out[512];
    size_t n = response_busy(out, sizeof out, &one, "https://a.example");
    assert_true(n > 0 && n < sizeof out);
    out[n] = '\0';
    assert_non_null(strstr(out, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(out, "Access-Control-Allow-Origin: https://a.example\r\n"));
    assert_non_null(strstr(out, "Vary: Origin\r\n"));
    assert_non_null(strstr(out, "\r\n\r\n{\"error\":\"too many clients\"}\n"));
    assert_int_equal(response_busy(out, 64, &one, NULL), 0); /* does not fit */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_keep_alive),
        cmocka_unit_test(test_head_framing),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_cors_origin),
        cmocka_unit_test(test_busy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
