/*
 * test_static: static files of the real server, from a temporary directory
 * made for the test -- content types, lengths, ETag / If-None-Match, HEAD,
 * and that nothing outside the directory is ever reachable (dot segments,
 * encoded dots and slashes, NUL bytes, symlinks pointing out).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "itest.h"

#define SECRET "TOP-SECRET-7f3a9c"

static struct itest_server srv;
static char base[64]; /* the temporary tree */
static char www[128]; /* base/www: the static dir */

static const char index_html[] = "<!doctype html>\n<title>itest</title>\n<p>index page</p>\n";
static const char a_css[] = "body { color: #123456; }\n";
static const char b_js[] = "console.log('b');\n";
static const char pic_svg[] =
    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\"/>\n";
static const char img_png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
static const char data_json[] = "{\"k\":[1,2]}\n";
static const char blob[] = "\0\x01\x02 binary \xff";
static const char x_file[] = "X-FILE-CONTENT\n";

static struct {
    const char *path; /* relative to www */
    const char *data;
    size_t len;
    const char *type; /* expected Content-Type */
} files[] = {
#define F(p, d, t)                                                                                 \
    {                                                                                              \
        p, d, sizeof d - 1, t                                                                      \
    }
    F("index.html", index_html, "text/html; charset=utf-8"),
    F("a.css", a_css, "text/css"),
    F("sub/b.js", b_js, "text/javascript"),
    F("pic.svg", pic_svg, "image/svg+xml"),
    F("img.png", img_png, "image/png"),
    F("data.json", data_json, "application/json"),
    F("blob.unknownext", blob, "application/octet-stream"),
    F("x", x_file, "application/octet-stream"),
#undef F
};

static int make_tree(void)
{
    char p[256], t[256];
    snprintf(base, sizeof base, "/tmp/itest-static-XXXXXX");
    if (!mkdtemp(base))
        return -1;
    snprintf(www, sizeof www, "%s/www", base);
    snprintf(p, sizeof p, "%s/sub", www);
    if (mkdir(www, 0755) != 0 || mkdir(p, 0755) != 0)
        return -1;
    snprintf(p, sizeof p, "%s/outside", base);
    if (mkdir(p, 0755) != 0)
        return -1;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", www, files[i].path);
        if (itest_write_file(p, files[i].data, files[i].len) != 0)
            return -1;
    }
    /* Secrets beside the static dir, and symlinks inside it pointing out. */
    snprintf(p, sizeof p, "%s/secret.txt", base);
    if (itest_write_file(p, SECRET "\n", sizeof SECRET) != 0)
        return -1;
    snprintf(p, sizeof p, "%s/outside/o.txt", base);
    if (itest_write_file(p, SECRET "-dir\n", sizeof SECRET + 4) != 0)
        return -1;
    snprintf(t, sizeof t, "%s/secret.txt", base);
    snprintf(p, sizeof p, "%s/link.txt", www);
    if (symlink(t, p) != 0)
        return -1;
    snprintf(p, sizeof p, "%s/sub/rel-link.txt", www);
    if (symlink("../../secret.txt", p) != 0)
        return -1;
    snprintf(t, sizeof t, "%s/outside", base);
    snprintf(p, sizeof p, "%s/linkdir", www);
    if (symlink(t, p) != 0)
        return -1;
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    if (make_tree() != 0) {
        fprintf(stderr, "cannot build the static tree in %s\n", base);
        return -1;
    }
    const char *args[] = {"--static", www, NULL};
    srv = itest_server_start(args);
    return srv.pid > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    int st = itest_server_stop(&srv);
    if (base[0])
        itest_rm_rf(base);
    return st == 0 ? 0 : -1;
}

static void get(const char *target, const char *method, struct itest_response *r)
{
    char raw[512];
    snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, target);
    assert_int_equal(itest_request(srv.port, raw, r), 0);
}

/* Asserts a full 200 answer for files[i]; returns nothing, fills r. */
static void check_file(const struct itest_response *r, size_t i)
{
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", files[i].len);
    if (r->status != 200)
        fprintf(stderr, "/%s: status %d\n", files[i].path, r->status);
    assert_int_equal(r->status, 200);
    assert_string_equal(itest_header_or_absent(r, "Access-Control-Allow-Origin"), "*");
    if (!itest_header_starts(r, "Content-Type", files[i].type))
        fprintf(stderr, "/%s: Content-Type \"%s\", expected \"%s\"\n", files[i].path,
                itest_header_or_absent(r, "Content-Type"), files[i].type);
    assert_true(itest_header_starts(r, "Content-Type", files[i].type));
    assert_string_equal(itest_header_or_absent(r, "Content-Length"), cl);
    assert_non_null(itest_header(r, "ETag"));
    assert_true(strlen(itest_header(r, "ETag")) >= 2);
}

/* ------------------------------------------------------------------ tests */

static void test_index(void **state)
{
    (void)state;
    struct itest_response r;
    get("/", "GET", &r);
    check_file(&r, 0);
    assert_string_equal(itest_header_or_absent(&r, "Content-Type"), "text/html; charset=utf-8");
    assert_int_equal(r.body_len, sizeof index_html - 1);
    assert_memory_equal(r.body, index_html, sizeof index_html - 1);
    itest_response_free(&r);
}

static void test_types_and_content(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char target[128];
        snprintf(target, sizeof target, "/%s", files[i].path);
        struct itest_response r;
        get(target, "GET", &r);
        check_file(&r, i);
        assert_int_equal(r.body_len, files[i].len);
        assert_memory_equal(r.body, files[i].data, files[i].len);
        itest_response_free(&r);
    }
}

static void test_etag(void **state)
{
    (void)state;
    struct itest_conn c;
    struct itest_response r;
    char etag[256], raw[512];
    assert_int_equal(itest_conn_open(&c, srv.port), 0);

    assert_true(itest_conn_send(&c, "GET /a.css HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    check_file(&r, 1);
    snprintf(etag, sizeof etag, "%s", itest_header(&r, "ETag"));
    itest_response_free(&r);

    /* The same ETag twice in a row. */
    assert_true(itest_conn_send(&c, "GET /a.css HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_string_equal(itest_header_or_absent(&r, "ETag"), etag);
    itest_response_free(&r);

    /* Conditional request: 304, no body. */
    snprintf(raw, sizeof raw, "GET /a.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n", etag);
    assert_true(itest_conn_send(&c, raw));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(itest_header_or_absent(&r, "Access-Control-Allow-Origin"), "*");
    itest_response_free(&r);
    /* No stray body bytes follow the 304. */
    assert_int_equal(itest_conn_fill(&c, 300), -1);
    assert_int_equal(c.len, 0);

    /* Another file's ETag does not match. */
    assert_true(itest_conn_send(&c, "GET /sub/b.js HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    check_file(&r, 2);
    assert_string_not_equal(itest_header_or_absent(&r, "ETag"), etag);
    itest_response_free(&r);
    snprintf(raw, sizeof raw, "GET /sub/b.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n",
             etag);
    assert_true(itest_conn_send(&c, raw));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, b_js, sizeof b_js - 1);
    itest_response_free(&r);

    /* A made-up ETag gets the full file. */
    assert_true(itest_conn_send(&c, "GET /a.css HTTP/1.1\r\nHost: x\r\n"
                                    "If-None-Match: \"no-such-etag\"\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, sizeof a_css - 1);
    itest_response_free(&r);
    itest_conn_close(&c);
}

static void test_head(void **state)
{
    (void)state;
    static const size_t which[] = {0, 4, 1};
    static const char *const targets[] = {"/", "/img.png", "/a.css"};
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, srv.port), 0);
    for (size_t k = 0; k < 3; k++) {
        struct itest_response g, h;
        get(targets[k], "GET", &g);
        char raw[256];
        snprintf(raw, sizeof raw, "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n", targets[k]);
        assert_true(itest_conn_send(&c, raw));
        assert_int_equal(itest_read_response(&c, &h, ITEST_RESP_NO_BODY, itest_timeout()), 0);
        check_file(&h, which[k]);
        assert_string_equal(itest_header_or_absent(&h, "Content-Type"),
                            itest_header_or_absent(&g, "Content-Type"));
        assert_string_equal(itest_header_or_absent(&h, "Content-Length"),
                            itest_header_or_absent(&g, "Content-Length"));
        assert_string_equal(itest_header_or_absent(&h, "ETag"), itest_header_or_absent(&g, "ETag"));
        /* No body follows the HEAD answer. */
        assert_int_equal(itest_conn_fill(&c, 300), -1);
        if (c.len)
            fprintf(stderr, "bytes after the HEAD answer: %.100s\n", c.buf);
        assert_int_equal(c.len, 0);
        itest_response_free(&g);
        itest_response_free(&h);
    }
    itest_conn_close(&c);
}

static void test_no_escape(void **state)
{
    (void)state;
    static const char *const targets[] = {
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/..%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/%2e%2e%2fetc%2fpasswd",
        "/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/../../../../../../etc/passwd",
        "/a/../../secret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/./../secret.txt",
        "/%252e%252e/secret.txt",
        "/..\\secret.txt",
        "/..%5csecret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/x%00.html",
        "/x%00",
        "/link.txt",
        "/sub/rel-link.txt",
        "/linkdir/o.txt",
        "/linkdir/../secret.txt",
        "/secret.txt",
        "/outside/o.txt",
    };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        struct itest_response r;
        get(targets[i], "GET", &r);
        bool leaked = r.body && (strstr(r.body, SECRET) || strstr(r.body, "root:"));
        if (leaked || (r.status != 404 && r.status != 400))
            fprintf(stderr, "%s -> %d: %.200s\n", targets[i], r.status, r.body ? r.body : "");
        assert_false(leaked);
        assert_true(r.status == 404 || r.status == 400);
        itest_response_free(&r);
    }
    /* The file the NUL-byte requests aimed at does exist. */
    struct itest_response r;
    get("/x", "GET", &r);
    check_file(&r, 7);
    itest_response_free(&r);
}

int main(void)
{
    itest_init(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index),     cmocka_unit_test(test_types_and_content),
        cmocka_unit_test(test_etag),      cmocka_unit_test(test_head),
        cmocka_unit_test(test_no_escape),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
