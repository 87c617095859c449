/*
 * test_dashboard: the operator's live page and what feeds it, against the
 * real server over loopback -- GET /dashboard served from the binary itself
 * (whatever --static says), with a policy that forbids fetching anything
 * from elsewhere; the stats stream (GET /stats?stream=1: one valid JSON
 * snapshot a second that follows what happens, ended when its client goes,
 * counted against --max-clients); and the admin token (Bearer, cookie or
 * query; 401 without, 403 when wrong), alone and with --admin-local.
 */
/* The server's strict JSON validator (src/json.c, linked into every
 * integration test). */
#include "json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define TOKEN "k3y-for.tests_0"

/* ------------------------------------------------------------ helpers */

static int status_of(int port, const char *target, const char *headers)
{
    char raw[1024];
    snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: dash.test\r\n%sConnection: close\r\n\r\n",
             target, headers ? headers : "");
    struct itest_response r;
    assert_int_equal(itest_request(port, raw, &r), 0);
    int st = r.status;
    itest_response_free(&r);
    return st;
}

static void get(int port, const char *target, const char *headers, struct itest_response *r)
{
    char raw[1024];
    snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: dash.test\r\n%sConnection: close\r\n\r\n",
             target, headers ? headers : "");
    assert_int_equal(itest_request(port, raw, r), 0);
}

static uint64_t field(const char *json, const char *key)
{
    uint64_t v = 0;
    if (!itest_json_u64(json, key, &v))
        fail_msg("no number \"%s\" in %s", key, json);
    return v;
}

/* One stats event's data as a NUL-terminated copy (the caller frees it),
 * checked to be one valid JSON object with the figures the page uses. */
static char *event_json(const struct itest_sub *s, size_t i)
{
    assert_true(i < s->events.count);
    const struct ssep_event *ev = &s->events.ev[i];
    assert_int_equal(ev->type_len, 7); /* "message": onmessage gets it */
    struct json_error err = {0, NULL};
    if (!json_validate(ev->data, ev->data_len, &err))
        fail_msg("event %zu is not JSON (%s at %zu): %.*s", i, err.msg, err.offset,
                 (int)ev->data_len, ev->data);
    char *json = strndup(ev->data, ev->data_len);
    assert_non_null(json);
    assert_true(json[0] == '{');
    static const char *const numbers[] = {"uptime_seconds",
                                          "connections",
                                          "max_clients",
                                          "streams",
                                          "subscribers",
                                          "rooms",
                                          "messages_published",
                                          "deliveries",
                                          "bytes_sent",
                                          "ring_memory_bytes",
                                          "max_memory",
                                          "ring_frames",
                                          "slow_subscribers_dropped"};
    for (size_t k = 0; k < sizeof numbers / sizeof numbers[0]; k++)
        (void)field(json, numbers[k]);
    static const char *const parts[] = {
        "\"journal\":{\"enabled\":", "\"redis\":{\"enabled\":", "\"top_rooms\":[",
        "\"busy_rooms\":[", "\"rates_window_seconds\":"};
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++)
        if (!strstr(json, parts[k]))
            fail_msg("no %s in %s", parts[k], json);
    return json;
}

/* The number of open streams the server reports in plain /stats. */
static uint64_t streams_now(int port, const char *headers)
{
    struct itest_response r;
    get(port, "/stats", headers, &r);
    assert_int_equal(r.status, 200);
    uint64_t n = field(r.body, "streams");
    itest_response_free(&r);
    return n;
}

/* ------------------------------------------------------------ the page */

/* True when text contains a URL that leaves the server: a scheme or a
 * protocol-relative "//" in an attribute or a url(). */
static bool names_elsewhere(const char *text)
{
    static const char *const bad[] = {"http:",     "https:", "ws:",     "wss:",        "src=\"//",
                                      "href=\"//", "url(",   "@import", "fetch(\"http"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (strstr(text, bad[i])) {
            fprintf(stderr, "found '%s'\n", bad[i]);
            return true;
        }
    return false;
}

static void test_page_served_from_binary(void **state)
{
    (void)state;
    /* An empty static directory: the page must not depend on it. */
    char dir[] = "/tmp/dash-static-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *args[] = {"--static", dir, NULL};
    struct itest_server s = itest_server_start(args);
    assert_true(s.pid > 0);

    struct itest_response r;
    get(s.port, "/dashboard", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(itest_header_starts(&r, "Content-Type", "text/html"));
    const char *csp = itest_header_or_absent(&r, "Content-Security-Policy");
    assert_non_null(strstr(csp, "default-src 'none'"));
    assert_non_null(strstr(csp, "connect-src 'self'"));
    assert_null(strstr(csp, "unsafe-inline"));
    assert_non_null(strstr(r.body, "<canvas"));
    assert_false(names_elsewhere(r.body));
    /* No inline script or style, which the policy would block. */
    assert_null(strstr(r.body, "<script>"));
    assert_null(strstr(r.body, "<style"));
    assert_null(strstr(r.body, " style=\""));
    assert_null(strstr(r.body, " onclick="));
    /* What the page links to is served too, relative to /dashboard. */
    assert_non_null(strstr(r.body, "src=\"dashboard/app.js\""));
    assert_non_null(strstr(r.body, "href=\"dashboard/style.css\""));
    itest_response_free(&r);

    get(s.port, "/dashboard/app.js", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(itest_header_starts(&r, "Content-Type", "text/javascript"));
    assert_non_null(strstr(r.body, "stats?stream=1"));
    assert_non_null(strstr(r.body, "EventSource"));
    assert_false(names_elsewhere(r.body));
    itest_response_free(&r);

    get(s.port, "/dashboard/style.css", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(itest_header_starts(&r, "Content-Type", "text/css"));
    assert_non_null(strstr(r.body, "prefers-color-scheme: dark"));
    assert_false(names_elsewhere(r.body));
    itest_response_free(&r);

    /* Only those paths; the chat page's directory is still empty. */
    assert_int_equal(status_of(s.port, "/dashboard/", NULL), 404);
    assert_int_equal(status_of(s.port, "/dashboard/nope.js", NULL), 404);
    assert_int_equal(status_of(s.port, "/index.html", NULL), 404);
    assert_int_equal(itest_request_status(s.port,
                                          "POST /dashboard HTTP/1.1\r\nHost: a\r\n"
                                          "Content-Length: 0\r\nConnection: close\r\n\r\n",
                                          0),
                     405);
    assert_int_equal(itest_server_stop(&s), 0);
    rmdir(dir);
}

/* ------------------------------------------------------------ the stream */

static void test_stream_one_event_per_second(void **state)
{
    int port = itest_state_port(state);
    struct itest_sub sub;
    assert_int_equal(itest_sub_open(&sub, port, "/stats?stream=1", itest_timeout()), 0);
    assert_true(itest_header_starts(&sub.head, "Cache-Control", "no-cache"));
    /* The first snapshot at once, then one a second: 4 in about 3 s. */
    assert_true(itest_sub_wait(&sub, 4, itest_ms(6000)));
    assert_true(sub.event_ms[0] - sub.head_ms < 500);
    for (size_t i = 1; i < 4; i++) {
        int64_t gap = sub.event_ms[i] - sub.event_ms[i - 1];
        fprintf(stderr, "gap %zu: %lld ms\n", i, (long long)gap);
        /* The cadence is the specification: not scaled for slow builds. */
        assert_in_range(gap, 800, 1300);
    }
    double prev_up = -1;
    for (size_t i = 0; i < 4; i++) {
        char *json = event_json(&sub, i);
        /* Uptime moves on by about a second per event. */
        const char *up = strstr(json, "\"uptime_seconds\":");
        assert_non_null(up);
        double u = strtod(up + 17, NULL);
        assert_true(u > prev_up);
        prev_up = u;
        /* The stream counts itself. */
        assert_true(field(json, "streams") >= 1);
        free(json);
    }
    itest_sub_close(&sub);
}

static void test_stream_follows_traffic(void **state)
{
    int port = itest_state_port(state);
    struct itest_sub stats, subs[3];
    assert_int_equal(itest_sub_open(&stats, port, "/stats?stream=1", itest_timeout()), 0);
    assert_true(itest_sub_wait(&stats, 1, itest_timeout()));
    char *json = event_json(&stats, 0);
    assert_int_equal(field(json, "subscribers"), 0);
    assert_int_equal(field(json, "messages_published"), 0);
    free(json);

    assert_int_equal(itest_subs_open(subs, 3, port, "/messages?room=busy", itest_ms(5000)), 3);
    for (int i = 0; i < 5; i++)
        assert_int_equal(itest_post_message(port, "/message?room=busy", "{}", 2, NULL, NULL), 202);
    assert_int_equal(itest_subs_drive(subs, 3, 5, itest_ms(5000)), 3);

    /* Within two snapshots, the stream shows them, as /stats does. */
    size_t have = stats.events.count;
    assert_true(itest_sub_wait(&stats, have + 2, itest_ms(4000)));
    json = event_json(&stats, stats.events.count - 1);
    fprintf(stderr, "snapshot: %s\n", json);
    assert_int_equal(field(json, "subscribers"), 3);
    assert_int_equal(field(json, "rooms"), 1);
    assert_int_equal(field(json, "messages_published"), 5);
    assert_int_equal(field(json, "deliveries"), 15);
    assert_true(field(json, "streams") >= 4);
    assert_non_null(
        strstr(json, "\"top_rooms\":[{\"name\":\"busy\",\"subscribers\":3,\"published\":5}]"));
    free(json);

    /* The busiest rooms: messages over the last window, as a rate. */
    bool seen = false;
    for (size_t i = have; i < stats.events.count && !seen; i++) {
        json = event_json(&stats, i);
        const char *b = strstr(json, "\"busy_rooms\":[{\"name\":\"busy\",\"subscribers\":3,"
                                     "\"published\":5,\"messages_per_second\":");
        if (b) {
            double rate = strtod(strstr(b, "second\":") + 8, NULL);
            assert_true(rate > 0 && rate <= 5 / 0.5);
            seen = true;
        }
        free(json);
    }
    assert_true(seen);
    /* A window with no messages has no busy room. */
    assert_true(itest_sub_wait(&stats, stats.events.count + 2, itest_ms(4000)));
    json = event_json(&stats, stats.events.count - 1);
    assert_non_null(strstr(json, "\"busy_rooms\":[]"));
    free(json);

    for (int i = 0; i < 3; i++)
        itest_sub_close(&subs[i]);
    itest_sub_close(&stats);
}

static void test_stream_stops_when_client_goes(void **state)
{
    struct itest_server *srv = itest_state_server(state);
    int port = srv->port;
    int fds_before = itest_server_fd_count(srv);
    struct itest_sub a, b;
    assert_int_equal(itest_sub_open(&a, port, "/stats?stream=1", itest_timeout()), 0);
    assert_int_equal(itest_sub_open(&b, port, "/stats?stream=1", itest_timeout()), 0);
    assert_true(itest_sub_wait(&a, 1, itest_timeout()));
    assert_int_equal(streams_now(port, NULL), 2);

    itest_sub_close(&a); /* a FIN */
    itest_sub_abort(&b); /* a reset */
    int64_t deadline = itest_now_ms() + itest_ms(3000);
    uint64_t n;
    while ((n = streams_now(port, NULL)) != 0 && itest_now_ms() < deadline)
        itest_sleep_ms(50);
    assert_int_equal(n, 0);
    assert_true(itest_server_fd_settle(srv, fds_before, itest_ms(3000)) <= fds_before);
    /* Nothing is left writing: the server is still well. */
    assert_int_equal(status_of(port, "/healthz", NULL), 200);
}

static const char *const max2_args[] = {"--max-clients", "2", NULL};

static void test_stream_counts_against_max_clients(void **state)
{
    int port = itest_state_port(state);
    struct itest_sub a, b;
    assert_int_equal(itest_sub_open(&a, port, "/stats?stream=1", itest_timeout()), 0);
    assert_int_equal(itest_sub_open(&b, port, "/stats?stream=1", itest_timeout()), 0);
    /* Two connections are open: a third one is refused. */
    assert_int_equal(status_of(port, "/stats", NULL), 503);
    itest_sub_close(&b);
    int64_t deadline = itest_now_ms() + itest_ms(3000);
    int st;
    while ((st = status_of(port, "/stats", NULL)) == 503 && itest_now_ms() < deadline)
        itest_sleep_ms(50);
    assert_int_equal(st, 200);
    itest_sub_close(&a);
}

static void test_stream_flag_checked(void **state)
{
    int port = itest_state_port(state);
    assert_int_equal(status_of(port, "/stats?stream=yes", NULL), 400);
    assert_int_equal(status_of(port, "/stats?stream=0", NULL), 200);
    /* HEAD gets the stream's head only and the connection ends. */
    assert_int_equal(itest_request_status(port,
                                          "HEAD /stats?stream=1 HTTP/1.1\r\nHost: a\r\n"
                                          "Connection: close\r\n\r\n",
                                          ITEST_RESP_NO_BODY),
                     200);
}

static void test_stream_shows_journal(void **state)
{
    (void)state;
    char dir[] = "/tmp/dash-journal-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *args[] = {"--data-dir", dir, "--fsync", "batch", NULL};
    struct itest_server s = itest_server_start(args);
    assert_true(s.pid > 0);
    assert_int_equal(itest_post_message(s.port, NULL, "{}", 2, NULL, NULL), 202);
    struct itest_sub sub;
    assert_int_equal(itest_sub_open(&sub, s.port, "/stats?stream=1", itest_timeout()), 0);
    assert_true(itest_sub_wait(&sub, 1, itest_timeout()));
    char *json = event_json(&sub, 0);
    const char *j = strstr(json, "\"journal\":{\"enabled\":true,\"fsync\":\"batch\",");
    if (!j)
        fail_msg("no journal state in %s", json);
    assert_true(field(j, "syncs") >= 1);
    assert_int_equal(field(j, "errors"), 0);
    free(json);
    itest_sub_close(&sub);
    assert_int_equal(itest_server_stop(&s), 0);
    itest_rm_rf(dir);
}

/* ------------------------------------------------------------ access */

static const char *const token_args[] = {"--admin-token", TOKEN, NULL};

static void test_admin_token(void **state)
{
    int port = itest_state_port(state);
    static const char *const targets[] = {"/stats", "/metrics", "/dashboard"};
    for (size_t i = 0; i < 3; i++) {
        char t[128];
        const char *p = targets[i];
        /* None: 401 with a challenge. */
        struct itest_response r;
        get(port, p, NULL, &r);
        assert_int_equal(r.status, 401);
        assert_true(itest_header_starts(&r, "WWW-Authenticate", "Bearer"));
        assert_true(itest_is_json_error(&r));
        itest_response_free(&r);
        /* Wrong, each way: 403. */
        assert_int_equal(status_of(port, p, "Authorization: Bearer nope\r\n"), 403);
        assert_int_equal(status_of(port, p, "Cookie: sse_admin=nope\r\n"), 403);
        snprintf(t, sizeof t, "%s?token=nope", p);
        assert_int_equal(status_of(port, t, NULL), 403);
        /* A prefix of the token, or the token and more, is wrong too. */
        assert_int_equal(status_of(port, p, "Authorization: Bearer k3y\r\n"), 403);
        assert_int_equal(status_of(port, p, "Authorization: Bearer " TOKEN "x\r\n"), 403);
        /* Right, each way. */
        assert_int_equal(status_of(port, p, "Authorization: Bearer " TOKEN "\r\n"), 200);
        assert_int_equal(status_of(port, p, "Cookie: a=b; sse_admin=" TOKEN "; c=d\r\n"), 200);
        snprintf(t, sizeof t, "%s?token=%s", p, TOKEN);
        assert_int_equal(status_of(port, t, NULL), 200);
    }
    /* The stream too, and the page's own files need no token. */
    assert_int_equal(itest_request_status(port, "GET /stats?stream=1 HTTP/1.1\r\nHost: a\r\n\r\n",
                                          ITEST_RESP_HEAD_ONLY),
                     401);
    struct itest_sub sub;
    assert_int_equal(itest_sub_open(&sub, port, "/stats?stream=1&token=" TOKEN, itest_timeout()),
                     0);
    assert_true(itest_sub_wait(&sub, 1, itest_timeout()));
    itest_sub_close(&sub);
    assert_int_equal(status_of(port, "/dashboard/app.js", NULL), 200);
    /* The rest of the API is not behind the token. */
    assert_int_equal(status_of(port, "/healthz", NULL), 200);

    /* A token in the page's address comes back as a cookie for the stream. */
    struct itest_response r;
    get(port, "/dashboard?token=" TOKEN, NULL, &r);
    assert_int_equal(r.status, 200);
    const char *cookie = itest_header_or_absent(&r, "Set-Cookie");
    assert_non_null(strstr(cookie, "sse_admin=" TOKEN ";"));
    assert_non_null(strstr(cookie, "HttpOnly"));
    assert_non_null(strstr(cookie, "SameSite=Strict"));
    itest_response_free(&r);
    /* ... but not when it came some other way. */
    get(port, "/dashboard", "Authorization: Bearer " TOKEN "\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_null(itest_header(&r, "Set-Cookie"));
    itest_response_free(&r);
}

static void test_admin_token_file(void **state)
{
    (void)state;
    char path[] = "/tmp/dash-token-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(itest_write_file(path, "from-a-file\n", 12), 0);
    const char *args[] = {"--admin-token-file", path, NULL};
    struct itest_server s = itest_server_start(args);
    assert_true(s.pid > 0);
    assert_int_equal(status_of(s.port, "/stats", NULL), 401);
    assert_int_equal(status_of(s.port, "/stats", "Authorization: Bearer from-a-file\r\n"), 200);
    assert_int_equal(itest_server_stop(&s), 0);
    unlink(path);
}

static const char *const both_args[] = {"--admin-local", "--admin-token", TOKEN, NULL};

/* Both set: a loopback client still needs the token (behind a proxy every
 * client is loopback). */
static void test_admin_local_and_token(void **state)
{
    int port = itest_state_port(state);
    assert_int_equal(status_of(port, "/stats", NULL), 401);
    assert_int_equal(status_of(port, "/stats?token=" TOKEN, NULL), 200);
    assert_int_equal(status_of(port, "/dashboard", "Authorization: Bearer nope\r\n"), 403);
    assert_int_equal(status_of(port, "/dashboard", "Authorization: Bearer " TOKEN "\r\n"), 200);
}

int main(void)
{
    itest_init(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_served_from_binary),
        cmocka_unit_test_setup_teardown(test_stream_one_event_per_second, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_stream_follows_traffic, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_stream_stops_when_client_goes, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_prestate_setup_teardown(test_stream_counts_against_max_clients,
                                                 itest_setup_server, itest_teardown_server,
                                                 (void *)max2_args),
        cmocka_unit_test_setup_teardown(test_stream_flag_checked, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test(test_stream_shows_journal),
        cmocka_unit_test_prestate_setup_teardown(test_admin_token, itest_setup_server,
                                                 itest_teardown_server, (void *)token_args),
        cmocka_unit_test(test_admin_token_file),
        cmocka_unit_test_prestate_setup_teardown(test_admin_local_and_token, itest_setup_server,
                                                 itest_teardown_server, (void *)both_args),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed || itest_wrapper_failures() ? 1 : 0;
}
