/*
 * test_admin: who may see the admin endpoints -- the token found in the
 * Authorization header, the sse_admin cookie or ?token=, compared whole;
 * --admin-local on its own and together with a token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "config.h"
#include "http.h"

static struct http_request req;
static char head[2048];

/* Parses "GET target" with the given header lines into `req`. */
static const struct http_request *request(const char *target, const char *headers)
{
    int n = snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: a\r\n%s\r\n", target,
                     headers ? headers : "");
    int status = 0;
    assert_int_equal(http_parse_head(head, (size_t)n, 0, &req, &status), n);
    return &req;
}

static struct config with(const char *token, int local)
{
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.admin_token, sizeof cfg.admin_token, "%s", token);
    cfg.admin_local = local;
    return cfg;
}

static void test_open_without_options(void **state)
{
    (void)state;
    struct config cfg = with("", 0);
    enum auth_source via = AUTH_QUERY;
    assert_int_equal(admin_check(&cfg, false, request("/stats", NULL), &via), ADMIN_ALLOWED);
    assert_int_equal(via, AUTH_NONE);
    /* A token sent anyway changes nothing. */
    assert_int_equal(admin_check(&cfg, false, request("/stats?token=x", NULL), NULL),
                     ADMIN_ALLOWED);
}

static void test_local_only(void **state)
{
    (void)state;
    struct config cfg = with("", 1);
    assert_int_equal(admin_check(&cfg, true, request("/stats", NULL), NULL), ADMIN_ALLOWED);
    assert_int_equal(admin_check(&cfg, false, request("/stats", NULL), NULL), ADMIN_NOT_LOCAL);
}

static void test_token_sources(void **state)
{
    (void)state;
    struct config cfg = with("t0k", 0);
    enum auth_source via;
    assert_int_equal(admin_check(&cfg, true, request("/stats", NULL), &via), ADMIN_NO_TOKEN);
    assert_int_equal(
        admin_check(&cfg, false, request("/stats", "Authorization: Bearer t0k\r\n"), &via),
        ADMIN_ALLOWED);
    assert_int_equal(via, AUTH_BEARER);
    assert_int_equal(
        admin_check(&cfg, false, request("/stats", "authorization: bearer   t0k\r\n"), &via),
        ADMIN_ALLOWED);
    assert_int_equal(
        admin_check(&cfg, false, request("/stats", "Cookie: x=1; sse_admin=t0k\r\n"), &via),
        ADMIN_ALLOWED);
    assert_int_equal(via, AUTH_COOKIE);
    /* A cookie in a second Cookie field is found too. */
    assert_int_equal(admin_check(&cfg, false,
                                 request("/stats", "Cookie: x=1\r\nCookie: sse_admin=t0k\r\n"),
                                 &via),
                     ADMIN_ALLOWED);
    assert_int_equal(admin_check(&cfg, false, request("/stats?room=a&token=t0k", NULL), &via),
                     ADMIN_ALLOWED);
    assert_int_equal(via, AUTH_QUERY);
    assert_int_equal(admin_check(&cfg, false, request("/stats?token=t%30k", NULL), &via),
                     ADMIN_ALLOWED);
}

static void test_token_refused(void **state)
{
    (void)state;
    struct config cfg = with("t0k", 0);
    static const char *const bad_headers[] = {
        "Authorization: Bearer t0",  "Authorization: Bearer t0kk",
        "Authorization: Bearer T0K", "Cookie: sse_admin=t0",
        "Cookie: sse_admin=",        "Cookie: xsse_admin=t0k; sse_admin=no"};
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        char h[128];
        snprintf(h, sizeof h, "%s\r\n", bad_headers[i]);
        assert_int_equal(admin_check(&cfg, false, request("/stats", h), NULL), ADMIN_BAD_TOKEN);
    }
    /* A cookie of another name is no token at all. */
    assert_int_equal(admin_check(&cfg, false, request("/stats", "Cookie: other=t0k\r\n"), NULL),
                     ADMIN_NO_TOKEN);
    /* An empty Bearer (trailing blanks are not part of a field value), or
     * Basic, is no token given. */
    assert_int_equal(
        admin_check(&cfg, false, request("/stats", "Authorization: Bearer \r\n"), NULL),
        ADMIN_NO_TOKEN);
    assert_int_equal(
        admin_check(&cfg, false, request("/stats", "Authorization: Basic dDBrOg==\r\n"), NULL),
        ADMIN_NO_TOKEN);
    assert_int_equal(admin_check(&cfg, false, request("/stats?token=", NULL), NULL),
                     ADMIN_BAD_TOKEN);
    assert_int_equal(admin_check(&cfg, false, request("/stats?token=%zz", NULL), NULL),
                     ADMIN_BAD_TOKEN);
}

static void test_local_and_token(void **state)
{
    (void)state;
    struct config cfg = with("t0k", 1);
    /* Remote: hidden, token or not. */
    assert_int_equal(admin_check(&cfg, false, request("/stats?token=t0k", NULL), NULL),
                     ADMIN_NOT_LOCAL);
    /* Local: still needs the token. */
    assert_int_equal(admin_check(&cfg, true, request("/stats", NULL), NULL), ADMIN_NO_TOKEN);
    assert_int_equal(admin_check(&cfg, true, request("/stats?token=t0k", NULL), NULL),
                     ADMIN_ALLOWED);
}

static void test_equal_and_cookie_safe(void **state)
{
    (void)state;
    assert_true(auth_token_equal("abc", 3, "abc", 3));
    assert_false(auth_token_equal("abd", 3, "abc", 3));
    assert_false(auth_token_equal("ab", 2, "abc", 3));
    assert_false(auth_token_equal("abcabc", 6, "abc", 3));
    assert_false(auth_token_equal("", 0, "", 0));
    assert_true(admin_token_cookie_safe("Ab0-._~!#$%&'()*+/:<=>?@[]^`{|}"));
    assert_false(admin_token_cookie_safe(""));
    assert_false(admin_token_cookie_safe("a b"));
    assert_false(admin_token_cookie_safe("a;b"));
    assert_false(admin_token_cookie_safe("a,b"));
    assert_false(admin_token_cookie_safe("a\"b"));
    assert_false(admin_token_cookie_safe("a\\b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_without_options), cmocka_unit_test(test_local_only),
        cmocka_unit_test(test_token_sources),        cmocka_unit_test(test_token_refused),
        cmocka_unit_test(test_local_and_token),      cmocka_unit_test(test_equal_and_cookie_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
