/*
 * Integration tests of a cluster node's HTTP side against a real Redis
 * (cluster_nodes.h): publishes pipelined on one connection go to Redis
 * together and are answered in request order, whatever is pipelined
 * between them; a PUB/SUB connection Redis drops is a reconnect that
 * loses nothing; --redis-ttl reaches Redis's keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cluster_nodes.h"

static char *post_request(char *out, size_t cap, const char *body, const char *extra)
{
    snprintf(out, cap,
             "POST /message?room=pipe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n%s\r\n%s",
             strlen(body), extra, body);
    return out;
}

/* Ten publishes, a malformed one and a GET in one write: the valid
 * publishes all reach Redis (their ids increase in request order), every
 * answer comes in its request's place -- 202s, the 400, the GET's 200 --
 * and "Connection: close" on the last closes after its answer. */
static void test_pipelined_publishes_in_order(void **state)
{
    (void)state;
    static const int want[] = {202, 202, 202, 202, 202, 400, 200, 202, 202, 202, 202};
    enum { N = sizeof want / sizeof want[0] };
    char all[8192] = "", one[512];
    for (int i = 0; i < N; i++) {
        char body[32];
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        if (want[i] == 400) {
            post_request(one, sizeof one, "{bad", "");
        } else if (want[i] == 200) {
            snprintf(one, sizeof one, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        } else {
            post_request(one, sizeof one, body, i == N - 1 ? "Connection: close\r\n" : "");
        }
        strcat(all, one);
    }
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, node[0].port), 0);
    assert_true(itest_conn_send(&c, all));
    uint64_t last = 0;
    for (int i = 0; i < N; i++) {
        struct itest_response r;
        assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
        if (r.status != want[i]) {
            itest_show_response("out of order", &r, 200);
            fail_msg("answer %d: %d, want %d", i, r.status, want[i]);
        }
        if (r.status == 202) {
            uint64_t id = 0;
            assert_true(itest_json_u64(r.body, "id", &id));
            assert_true(id > last);
            last = id;
        }
        if (i == N - 1) {
            assert_true(itest_header_has_token(&r, "connection", "close"));
        }
        itest_response_free(&r);
    }
    assert_true(itest_conn_wait_close(&c, itest_timeout()));
    itest_conn_close(&c);
    /* The nine it published count in its figures, as on one node. */
    expect_metric(0, "sse_messages_published_total 9");
}

/* Redis drops the node's PUB/SUB connection (as it drops a reader past its
 * output-buffer limit): messages posted meanwhile still reach the node's
 * subscriber, once and in order. */
static void test_pubsub_dropped_by_redis(void **state)
{
    (void)state;
    struct client *c = clients_new(1);
    client_open(&c[0], 1, "/messages?room=k");
    uint64_t after = warm_up(c, 1, "k", NULL);
    struct tc rc = {0};
    struct reply rep;
    tc_open(&rc, rurl, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_ready, &rc, 5000));
    CALL(&rc, &rep, "CLIENT", "KILL", "TYPE", "pubsub");
    /* Node 1's subscriber: the only node following a channel. */
    assert_int_equal(rep.integer, 1);
    redis_free(rc.r);
    struct msg m[3];
    for (long k = 0; k < 3; k++) {
        m[k] = (struct msg){post_ok(0, "room=k", k, NULL), k, "message", false};
    }
    clients_wait_id(c, 1, m[2].id, "after Redis dropped the PUB/SUB connections");
    expect_msgs(&c[0], after, m, 3, false, "messages posted while it reconnected");
    /* Back, and the node says so to its dashboard. */
    char body[16384];
    assert_true(wait_health(1, 200, itest_timeout()));
    assert_int_equal(get_path(1, "/stats", body, sizeof body), 200);
    assert_non_null(strstr(body, "\"redis\":{\"enabled\":true,\"up\":true}"));
}

/* --redis-ttl: each append sets the expiry of the room's stream and hash. */
static void test_redis_ttl(void **state)
{
    (void)state;
    const char *const args[] = {"--redis", rurl, "--redis-ttl", "120", NULL};
    struct itest_server s = itest_server_start(args);
    assert_true(s.pid > 0);
    assert_int_equal(itest_post_message(s.port, "/message?room=ttl", "{}", 2, NULL, NULL), 202);
    struct tc rc = {0};
    struct reply rep;
    tc_open(&rc, rurl, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_ready, &rc, 5000));
    CALL(&rc, &rep, "TTL", "sse:{ttl}:s");
    assert_true(rep.integer > 100 && rep.integer <= 120);
    CALL(&rc, &rep, "TTL", "sse:{ttl}:m");
    assert_true(rep.integer > 100 && rep.integer <= 120);
    redis_free(rc.r);
    assert_int_equal(itest_server_stop(&s), 0);
}

int main(void)
{
    itest_init(120);
    loop = loop_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipelined_publishes_in_order, setup_cluster,
                                        teardown_cluster),
        cmocka_unit_test_setup_teardown(test_pubsub_dropped_by_redis, setup_cluster,
                                        teardown_cluster),
        cmocka_unit_test_setup_teardown(test_redis_ttl, setup_cluster, teardown_cluster),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    loop_free(loop);
    return rc;
}
