/*
 * Tests for src/redis.c against a real redis-server (the Debian package):
 * round trips, a pipeline, pub/sub, Lua, SELECT, AUTH, a restart, idle
 * pings. See redis_harness.h for how the server is run and the loop driven;
 * test_redis_fault.c has the failures a real server will not produce.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redis_harness.h"

/* --------------------------------------------------------- against Redis */

static void test_set_get(void **state)
{
    (void)state;
    struct tc c = {0};
    struct reply rep;
    tc_open(&c, shared_url, REDIS_COMMANDS, NULL);
    /* Nothing is queued before the connection is ready. */
    assert_int_equal(redis_command_str(c.r, on_reply, &rep, "PING", (char *)NULL), -1);
    assert_int_equal(errno, ENOTCONN);
    assert_true(wait_for(is_ready, &c, 5000));
    assert_int_equal(c.ready, 1);

    CALL(&c, &rep, "SET", "greeting", "hello");
    assert_int_equal(rep.type, RESP_SIMPLE);
    assert_string_equal(rep.str, "OK");
    CALL(&c, &rep, "GET", "greeting");
    assert_int_equal(rep.type, RESP_BULK);
    assert_string_equal(rep.str, "hello");
    CALL(&c, &rep, "GET", "missing");
    assert_int_equal(rep.type, RESP_BULK);
    assert_true(rep.null);
    CALL(&c, &rep, "INCRBY", "n", "41");
    assert_int_equal(rep.type, RESP_INTEGER);
    assert_int_equal(rep.integer, 41);
    CALL(&c, &rep, "NOSUCHCOMMAND");
    assert_int_equal(rep.type, RESP_ERR);
    assert_true(strncmp(rep.str, "ERR unknown command", 19) == 0);
    assert_true(redis_is_ready(c.r));

    /* Binary-safe both ways. */
    const char *argv[3] = {"SET", "bin", "a\r\n\0b"};
    size_t lens[3] = {3, 3, 5};
    memset(&rep, 0, sizeof rep);
    assert_int_equal(redis_command(c.r, 3, argv, lens, on_reply, &rep), 0);
    assert_true(wait_for(reply_done, &rep, 5000));
    CALL(&c, &rep, "GET", "bin");
    assert_int_equal(rep.len, 5);
    assert_memory_equal(rep.str, "a\r\n\0b", 5);
    assert_int_equal(c.down, 0);
    redis_free(c.r);
}

struct pipeline {
    size_t replies;
    bool in_order;
};

static void on_incr(struct redis *r, const struct resp_value *v, struct resp_reader *rest,
                    void *arg)
{
    (void)r;
    (void)rest;
    struct pipeline *p = arg;
    p->replies++;
    if (!v || v->type != RESP_INTEGER || v->integer != (int64_t)p->replies) {
        p->in_order = false;
    }
}

static bool pipeline_done(void *arg)
{
    return ((struct pipeline *)arg)->replies == 10000;
}

/* 10,000 commands queued at once: one reply each, in order. */
static void test_pipeline(void **state)
{
    (void)state;
    struct tc c = {0};
    struct pipeline p = {0, true};
    tc_open(&c, shared_url, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_ready, &c, 5000));
    uint64_t t0 = now_us();
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(redis_command_str(c.r, on_incr, &p, "INCR", "pipelined", (char *)NULL), 0);
    }
    assert_int_equal(redis_awaited(c.r), 10000);
    assert_true(wait_for(pipeline_done, &p, 10000));
    uint64_t us = now_us() - t0;
    assert_true(p.in_order);
    assert_int_equal(redis_awaited(c.r), 0);
    printf("pipeline: 10000 INCR in %llu us (%.0f replies/s)\n", (unsigned long long)us,
           us ? 1e10 / (double)us : 0.0);
    redis_free(c.r);
}

/* A full output buffer refuses a command; once written out, it takes more. */
static void test_output_bound(void **state)
{
    (void)state;
    struct tc c = {0};
    struct redis_options opt = {.max_output = 100};
    struct reply rep;
    tc_open(&c, shared_url, REDIS_COMMANDS, &opt);
    assert_true(wait_for(is_ready, &c, 5000));
    /* "*3 $3 SET $1 k $20 ..." is 47 bytes: two fit, the third does not. */
    const char *v = "01234567890123456789";
    assert_int_equal(redis_command_str(c.r, NULL, NULL, "SET", "k", v, (char *)NULL), 0);
    assert_int_equal(redis_command_str(c.r, NULL, NULL, "SET", "k", v, (char *)NULL), 0);
    assert_int_equal(redis_command_str(c.r, NULL, NULL, "SET", "k", v, (char *)NULL), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(redis_awaited(c.r), 2);
    assert_true(wait_for(nothing_awaited, &c, 5000));
    CALL(&c, &rep, "GET", "k");
    assert_string_equal(rep.str, v);
    redis_free(c.r);
}

/* One client publishes, the other, subscribed, receives. */
static void test_pubsub(void **state)
{
    (void)state;
    struct tc pub = {0}, sub = {.resubscribe = "room:a"};
    struct reply rep;
    tc_open(&pub, shared_url, REDIS_COMMANDS, NULL);
    tc_open(&sub, shared_url, REDIS_SUBSCRIBER, NULL);
    assert_true(wait_for(is_ready, &pub, 5000));
    assert_true(wait_for(is_ready, &sub, 5000));
    assert_true(wait_for(nothing_awaited, &sub, 5000));
    /* The confirmation is reported, once, for the channel asked. */
    assert_int_equal(sub.subscribed, 1);
    assert_string_equal(sub.subscribed_to, "room:a");
    /* Each mode refuses the other's calls. */
    assert_int_equal(redis_command_str(sub.r, NULL, NULL, "PING", (char *)NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(redis_subscribe(pub.r, "x", 1), -1);
    assert_int_equal(errno, EINVAL);

    const char *argv[3] = {"PUBLISH", "room:a", "hi\0\r\nthere"};
    size_t lens[3] = {7, 6, 10};
    memset(&rep, 0, sizeof rep);
    assert_int_equal(redis_command(pub.r, 3, argv, lens, on_reply, &rep), 0);
    assert_true(wait_for(reply_done, &rep, 5000));
    assert_int_equal(rep.integer, 1); /* one subscriber got it */
    assert_true(wait_for(got_message, &sub, 5000));
    assert_int_equal(sub.messages, 1);
    assert_string_equal(sub.channel, "room:a");
    assert_int_equal(sub.payload_len, 10);
    assert_memory_equal(sub.payload, "hi\0\r\nthere", 10);

    /* A channel not subscribed to delivers nothing. */
    CALL(&pub, &rep, "PUBLISH", "room:b", "x");
    assert_int_equal(rep.integer, 0);
    assert_int_equal(redis_unsubscribe(sub.r, "room:a", 6), 0);
    assert_true(wait_for(nothing_awaited, &sub, 5000));
    CALL(&pub, &rep, "PUBLISH", "room:a", "gone");
    assert_int_equal(rep.integer, 0);
    run_for(50);
    assert_int_equal(sub.messages, 1);
    redis_free(pub.r);
    redis_free(sub.r);
}

struct eval_result {
    bool done;
    size_t count;
    char key[32], arg[32];
    int64_t incr;
};

static void on_eval(struct redis *r, const struct resp_value *v, struct resp_reader *rest,
                    void *arg)
{
    (void)r;
    struct eval_result *e = arg;
    struct resp_value a, b, n;
    e->done = true;
    assert_non_null(v);
    assert_int_equal(v->type, RESP_ARRAY);
    e->count = v->count;
    assert_int_equal(resp_read(rest, &a), 0);
    assert_int_equal(resp_read(rest, &b), 0);
    assert_int_equal(resp_read(rest, &n), 0);
    snprintf(e->key, sizeof e->key, "%.*s", (int)a.len, a.str);
    snprintf(e->arg, sizeof e->arg, "%.*s", (int)b.len, b.str);
    e->incr = n.integer;
}

static bool eval_done(void *arg)
{
    return ((struct eval_result *)arg)->done;
}

/* A Lua script: the way the cluster appends and publishes atomically. */
static void test_eval(void **state)
{
    (void)state;
    struct tc c = {0};
    struct eval_result e = {0};
    tc_open(&c, shared_url, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_ready, &c, 5000));
    const char *script = "return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}";
    for (int i = 1; i <= 2; i++) {
        memset(&e, 0, sizeof e);
        assert_int_equal(
            redis_command_str(c.r, on_eval, &e, "EVAL", script, "1", "lua:n", "5", (char *)NULL),
            0);
        assert_true(wait_for(eval_done, &e, 5000));
        assert_int_equal(e.count, 3);
        assert_string_equal(e.key, "lua:n");
        assert_string_equal(e.arg, "5");
        assert_int_equal(e.incr, 5 * i);
    }
    redis_free(c.r);
}

/* db 3 is not db 0. */
static void test_select(void **state)
{
    (void)state;
    struct tc d0 = {0}, d3 = {0};
    struct reply rep;
    char url3[160];
    url_of(url3, sizeof url3, "", shared_rs.port, "/3");
    tc_open(&d0, shared_url, REDIS_COMMANDS, NULL);
    tc_open(&d3, url3, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_ready, &d0, 5000));
    assert_true(wait_for(is_ready, &d3, 5000));
    CALL(&d3, &rep, "SET", "where", "three");
    CALL(&d0, &rep, "GET", "where");
    assert_true(rep.null);
    CALL(&d3, &rep, "GET", "where");
    assert_string_equal(rep.str, "three");
    CALL(&d3, &rep, "CLIENT", "INFO");
    assert_non_null(strstr(rep.str, " db=3 "));
    redis_free(d0.r);
    redis_free(d3.r);
}

/* ------------------------------------------------------ restarts and auth */

static bool ready_twice(void *arg)
{
    struct tc *c = arg;
    return c->ready >= 2 && redis_is_ready(c->r) && redis_awaited(c->r) == 0;
}

/*
 * Redis killed: awaited replies fail, on_down says so, commands are refused;
 * retries back off instead of spinning; Redis back on the same port: the
 * clients reconnect, on_ready runs again and the subscriber, resubscribed
 * there, receives again.
 */
static void test_restart(void **state)
{
    (void)state;
    struct rserver rs = {0};
    struct tc pub = {0}, sub = {.resubscribe = "news"};
    struct redis_options opt = {.backoff_min_ms = 50, .backoff_max_ms = 400};
    struct reply rep, lost;
    char u[128];
    rs_start(&rs, NULL);
    url_of(u, sizeof u, "", rs.port, "");
    tc_open(&pub, u, REDIS_COMMANDS, &opt);
    tc_open(&sub, u, REDIS_SUBSCRIBER, &opt);
    assert_true(wait_for(is_ready, &pub, 5000));
    assert_true(wait_for(nothing_awaited, &sub, 5000));

    rs_kill(&rs, SIGKILL);
    memset(&lost, 0, sizeof lost);
    /* Sent to a dead server, or failed when it is found dead: either way the
     * callback is called once, with NULL. */
    assert_int_equal(redis_command_str(pub.r, on_reply, &lost, "PING", (char *)NULL), 0);
    assert_true(wait_for(is_down, &pub, 5000));
    assert_true(wait_for(is_down, &sub, 5000));
    assert_true(lost.done && lost.lost);
    assert_false(redis_is_ready(pub.r));
    assert_int_equal(redis_command_str(pub.r, on_reply, &rep, "PING", (char *)NULL), -1);
    assert_int_equal(errno, ENOTCONN);
    printf("restart: down because \"%s\"\n", pub.why);

    /* One second down: 50, 100, 200, 400, 400 ms... with jitter is at most
     * about a dozen attempts; without a backoff it would be thousands. */
    int before = pub.down;
    run_for(1000);
    int attempts = pub.down - before;
    printf("restart: %d connection attempts in 1 s while down\n", attempts);
    assert_true(attempts >= 2 && attempts <= 14);

    assert_true(rs_spawn(&rs, NULL));
    assert_true(wait_for(ready_twice, &pub, 5000));
    assert_true(wait_for(ready_twice, &sub, 5000));
    assert_int_equal(redis_connections(pub.r), 2);
    CALL(&pub, &rep, "PUBLISH", "news", "back");
    assert_int_equal(rep.integer, 1);
    assert_true(wait_for(got_message, &sub, 5000));
    assert_string_equal(sub.payload, "back");
    redis_free(pub.r);
    redis_free(sub.r);
    rs_stop(&rs);
}

/* A client waiting out a long backoff tries again at once when told (a
 * sibling connection found Redis back); a ready one is left alone. */
static void test_retry_now(void **state)
{
    (void)state;
    struct rserver rs = {0};
    struct tc c = {0};
    struct redis_options opt = {.backoff_min_ms = 4000, .backoff_max_ms = 4000};
    char u[128];
    rs_start(&rs, NULL);
    url_of(u, sizeof u, "", rs.port, "");
    tc_open(&c, u, REDIS_COMMANDS, &opt);
    assert_true(wait_for(is_ready, &c, 5000));
    redis_retry_now(c.r); /* ready: nothing happens */
    assert_true(redis_is_ready(c.r));
    rs_kill(&rs, SIGKILL);
    assert_true(wait_for(is_down, &c, 5000));
    assert_true(rs_spawn(&rs, NULL));
    run_for(300);
    assert_false(redis_is_ready(c.r)); /* 2 to 4 s of backoff to go */
    uint64_t t0 = now_us();
    redis_retry_now(c.r);
    assert_true(wait_for(is_ready, &c, 1000));
    printf("retry_now: ready %llu us after the call\n", (unsigned long long)(now_us() - t0));
    assert_int_equal(redis_connections(c.r), 2);
    redis_free(c.r);
    rs_stop(&rs);
}

static void test_auth(void **state)
{
    (void)state;
    struct rserver rs = {0};
    struct tc good = {0}, user = {0}, wrong = {0}, none = {0};
    struct reply rep;
    char u[160];
    rs_start(&rs, "s3cret:@/");

    url_of(u, sizeof u, ":s3cret%3A%40%2F@", rs.port, "/1");
    tc_open(&good, u, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_ready, &good, 5000));
    CALL(&good, &rep, "SET", "k", "v");
    assert_string_equal(rep.str, "OK");

    /* The ACL form, with the default user. */
    url_of(u, sizeof u, "default:s3cret%3A%40%2F@", rs.port, "");
    tc_open(&user, u, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_ready, &user, 5000));

    url_of(u, sizeof u, ":wrong@", rs.port, "");
    tc_open(&wrong, u, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_down, &wrong, 5000));
    assert_false(redis_is_ready(wrong.r));
    assert_int_equal(wrong.ready, 0);
    assert_non_null(strstr(wrong.why, "AUTH refused: WRONGPASS"));

    /* No password: connected, but Redis answers every command with NOAUTH. */
    url_of(u, sizeof u, "", rs.port, "");
    tc_open(&none, u, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_ready, &none, 5000));
    CALL(&none, &rep, "GET", "k");
    assert_int_equal(rep.type, RESP_ERR);
    assert_true(strncmp(rep.str, "NOAUTH", 6) == 0);

    redis_free(good.r);
    redis_free(user.r);
    redis_free(wrong.r);
    redis_free(none.r);
    rs_stop(&rs);
}

static long ping_calls(struct tc *c)
{
    struct reply rep;
    CALL(c, &rep, "INFO", "commandstats");
    const char *p = strstr(rep.str, "cmdstat_ping:calls=");
    return p ? strtol(p + 19, NULL, 10) : 0;
}

/* On a live server the pings are answered, in both modes: the connections
 * stay up, and the subscriber still gets what is published. */
static void test_idle_ping_alive(void **state)
{
    (void)state;
    struct tc pub = {0}, sub = {.resubscribe = "idle"};
    struct redis_options opt = {.reply_timeout_ms = 200, .idle_ping_ms = 20};
    struct reply rep;
    tc_open(&pub, shared_url, REDIS_COMMANDS, NULL);
    tc_open(&sub, shared_url, REDIS_SUBSCRIBER, &opt);
    assert_true(wait_for(is_ready, &pub, 5000));
    assert_true(wait_for(nothing_awaited, &sub, 5000));
    long before = ping_calls(&pub);
    run_for(400);
    long pings = ping_calls(&pub) - before;
    printf("idle ping: %ld pings in 400 ms at one per 20 ms idle\n", pings);
    assert_true(pings >= 5);
    assert_int_equal(sub.down, 0);
    CALL(&pub, &rep, "PUBLISH", "idle", "still here");
    assert_int_equal(rep.integer, 1);
    assert_true(wait_for(got_message, &sub, 5000));
    redis_free(pub.r);
    redis_free(sub.r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    loop = loop_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get),      cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_output_bound), cmocka_unit_test(test_pubsub),
        cmocka_unit_test(test_eval),         cmocka_unit_test(test_select),
        cmocka_unit_test(test_restart),      cmocka_unit_test(test_retry_now),
        cmocka_unit_test(test_auth),         cmocka_unit_test(test_idle_ping_alive),
    };
    int rc = cmocka_run_group_tests(tests, shared_rs_setup, shared_rs_teardown);
    loop_free(loop);
    return rc;
}
