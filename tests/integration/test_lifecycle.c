/*
 * test_lifecycle: connection churn and process lifecycle of the real server --
 * 1000 connect/disconnect cycles of several kinds leave no fd behind, clients
 * that go away are dropped at once, SIGTERM and SIGINT end it cleanly; and
 * the harness's $ITEST_THREADS reaches the servers it starts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define CYCLES 1000

/* POSTs until the server reports `want` subscribers or time runs out. */
static long clients_settle(int port, long want, int timeout_ms)
{
    int64_t deadline = itest_now_ms() + timeout_ms;
    long clients = -1;
    do {
        if (itest_post_message(port, NULL, "0", 1, NULL, &clients) != 202)
            return -1;
        if (clients == want)
            break;
        itest_sleep_ms(20);
    } while (itest_now_ms() < deadline);
    return clients;
}

/* One connect/disconnect cycle of kind k; asserts what it must. */
static void cycle(int port, int k)
{
    switch (k) {
    case 0: { /* plain connect, then close */
        int fd = itest_connect(port);
        assert_true(fd >= 0);
        close(fd);
        break;
    }
    case 1: { /* a GET answered, then close */
        struct itest_conn c;
        struct itest_response r;
        assert_int_equal(itest_conn_open(&c, port), 0);
        assert_true(itest_conn_send(&c, "GET /nonexistent HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
        assert_int_equal(r.status, 404);
        itest_response_free(&r);
        itest_conn_close(&c);
        break;
    }
    case 2: { /* a /messages subscriber, reset abruptly */
        struct itest_sub s;
        assert_int_equal(itest_sub_open(&s, port, "/messages", itest_timeout()), 0);
        itest_sub_abort(&s);
        break;
    }
    case 3: { /* half a request, then close */
        int fd = itest_connect(port);
        assert_true(fd >= 0);
        assert_true(itest_send_str(fd, "GET /nonexis"));
        close(fd);
        break;
    }
    case 4: { /* half a body, then reset */
        int fd = itest_connect(port);
        assert_true(fd >= 0);
        assert_true(itest_send_str(fd, "POST /message HTTP/1.1\r\nHost: x\r\n"
                                       "Content-Length: 100\r\n\r\n{\"a\":"));
        itest_close_rst(fd);
        break;
    }
    default: { /* a /ping listener closed normally after its first bytes */
        struct itest_sub s;
        assert_int_equal(itest_sub_open(&s, port, "/ping", itest_timeout()), 0);
        itest_sub_close(&s);
        break;
    }
    }
}

/* ------------------------------------------------------------------ tests */

static void test_churn_leaves_no_fds(void **state)
{
    struct itest_server *srv = *state;
    int port = srv->port;

    /* Warm up every path once, so lazily created fds are in the baseline. */
    for (int k = 0; k < 6; k++)
        cycle(port, k);
    assert_int_equal(clients_settle(port, 0, itest_ms(3000)), 0);
    itest_sleep_ms(200);
    int baseline = itest_server_fd_settle(srv, 0, 0);
    assert_true(baseline > 0);
    long rss0 = itest_server_rss_kb(srv);

    int64_t t0 = itest_now_ms();
    for (int i = 0; i < CYCLES; i++)
        cycle(port, i % 6);
    int64_t t1 = itest_now_ms();

    int after = itest_server_fd_settle(srv, baseline, itest_ms(3000));
    long rss1 = itest_server_rss_kb(srv);
    fprintf(stderr, "%d cycles in %lld ms; fds %d -> %d; VmRSS %ld -> %ld KiB\n", CYCLES,
            (long long)(t1 - t0), baseline, after, rss0, rss1);
    assert_true(after <= baseline);

    /* Still answering, and no subscriber survived. */
    assert_int_equal(itest_request_status(port, "OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n", 0), 204);
    assert_int_equal(clients_settle(port, 0, itest_ms(1000)), 0);
    assert_true(itest_server_running(srv));
}

static void test_departures_are_noticed(void **state)
{
    struct itest_server *srv = *state;
    int port = srv->port;
    enum { N = 50 };
    struct itest_sub subs[N];

    int baseline = itest_server_fd_count(srv);
    assert_int_equal(itest_subs_open(subs, N, port, "/messages", itest_timeout()), N);
    assert_true(itest_server_fd_count(srv) >= baseline + N);
    long clients = -1;
    assert_int_equal(itest_post_message(port, NULL, "1", 1, NULL, &clients), 202);
    assert_int_equal(clients, N);

    /* Half leave with a FIN, half with a RST. */
    for (int i = 0; i < N; i++) {
        if (i % 2)
            itest_sub_close(&subs[i]);
        else
            itest_sub_abort(&subs[i]);
    }
    int64_t t0 = itest_now_ms();
    assert_int_equal(clients_settle(port, 0, itest_ms(1000)), 0);
    int after = itest_server_fd_settle(srv, baseline, itest_ms(1000));
    fprintf(stderr, "%d subscribers gone after %lld ms; fds %d -> %d\n", N,
            (long long)(itest_now_ms() - t0), baseline, after);
    assert_true(after <= baseline);
}

static bool pred_closed(const struct itest_sub *s, void *arg)
{
    (void)arg;
    return s->state == ITEST_SUB_CLOSED;
}

/* Signal a busy server: it exits 0, closes its streams, prints nothing more. */
static void signal_test(struct itest_server *srv, int sig)
{
    int port = srv->port;
    struct itest_sub msg, ping;
    struct itest_conn idle;
    assert_int_equal(itest_sub_open(&msg, port, "/messages", itest_timeout()), 0);
    assert_int_equal(itest_sub_open(&ping, port, "/ping", itest_timeout()), 0);
    assert_int_equal(itest_conn_open(&idle, port), 0);
    assert_int_equal(itest_post_message(port, NULL, "{\"bye\":1}", 9, NULL, NULL), 202);
    assert_true(itest_sub_wait(&msg, 1, itest_timeout()));

    int64_t t0 = itest_now_ms();
    int status = itest_server_signal(srv, sig, itest_ms(10000));
    fprintf(stderr, "exit status %d after signal %d, %lld ms\n", status, sig,
            (long long)(itest_now_ms() - t0));
    assert_int_equal(status, 0);
    assert_int_equal(srv->stdout_tail_len, 0);

    /* Every connection was closed. */
    assert_true(itest_sub_wait_until(&msg, pred_closed, NULL, itest_timeout()));
    assert_true(itest_sub_wait_until(&ping, pred_closed, NULL, itest_timeout()));
    assert_true(itest_conn_wait_close(&idle, itest_timeout()));
    itest_sub_close(&msg);
    itest_sub_close(&ping);
    itest_conn_close(&idle);

    /* Nothing listens on the port any more. */
    int fd = itest_connect(port);
    if (fd >= 0)
        close(fd);
    assert_true(fd < 0);
}

static void test_sigterm(void **state)
{
    signal_test(*state, SIGTERM);
}

static void test_sigint(void **state)
{
    signal_test(*state, SIGINT);
}

static void test_idle_sigterm(void **state)
{
    /* A server that never saw a client exits 0 too. */
    struct itest_server *srv = *state;
    assert_int_equal(itest_server_signal(srv, SIGTERM, itest_ms(10000)), 0);
    assert_int_equal(srv->stdout_tail_len, 0);
}

static void test_ids_not_reused_across_restarts(void **state)
{
    (void)state;
    uint64_t first = 0, last = 0, next = 0;
    struct itest_server a = itest_server_start(NULL);
    assert_true(a.pid > 0);
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, a.port), 0);
    for (int i = 0; i < 20; i++) {
        uint64_t id;
        assert_int_equal(itest_post_message_conn(&c, NULL, "[]", 2, &id, NULL), 202);
        if (i == 0)
            first = id;
        else
            assert_int_equal(id, last + 1);
        last = id;
    }
    itest_conn_close(&c);
    assert_int_equal(itest_server_stop(&a), 0);

    /* Restarted at once, the new server continues above the old ids. */
    struct itest_server b = itest_server_start(NULL);
    assert_true(b.pid > 0);
    assert_int_equal(itest_post_message(b.port, NULL, "[]", 2, &next, NULL), 202);
    fprintf(stderr, "ids %" PRIu64 "..%" PRIu64 ", after restart %" PRIu64 "\n", first, last, next);
    assert_true(first > 1);
    assert_true(next > last);
    assert_int_equal(itest_server_stop(&b), 0);
}

/*
 * The value of the last "--threads" in the running server's command line
 * (/proc/PID/cmdline), "" when it has none, and how many it has: what
 * $ITEST_THREADS made of the arguments.
 */
static int cmdline_threads(const struct itest_server *srv, char *value, size_t cap)
{
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)srv->pid);
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    int count = 0;
    value[0] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
        if (strcmp(buf + i, "--threads") == 0 && i + 10 < n) {
            snprintf(value, cap, "%s", buf + i + 10);
            count++;
        } else if (strncmp(buf + i, "--threads=", 10) == 0) {
            snprintf(value, cap, "%s", buf + i + 10);
            count++;
        }
    }
    return count;
}

/* Starts a server with args, checks its --threads, stops it. */
static void expect_threads(const char *const *args, int want_count, const char *want)
{
    struct itest_server srv = itest_server_start(args);
    assert_true(srv.pid > 0);
    char value[32];
    int count = cmdline_threads(&srv, value, sizeof value);
    assert_int_equal(itest_server_stop(&srv), 0);
    assert_int_equal(count, want_count);
    assert_string_equal(value, want);
}

/* $ITEST_THREADS reaches every server, unless the test set --threads. */
static void test_itest_threads(void **state)
{
    (void)state;
    char saved[32] = "";
    const char *e = getenv("ITEST_THREADS");
    bool had = e != NULL;
    if (had)
        snprintf(saved, sizeof saved, "%s", e);

    setenv("ITEST_THREADS", "3", 1);
    expect_threads(NULL, 1, "3");
    expect_threads((const char *const[]){"--history", "5", NULL}, 1, "3");
    expect_threads((const char *const[]){"--threads", "2", NULL}, 1, "2");
    expect_threads((const char *const[]){"--threads=1", NULL}, 1, "1");
    setenv("ITEST_THREADS", "auto", 1);
    expect_threads(NULL, 1, "auto");
    unsetenv("ITEST_THREADS");
    expect_threads(NULL, 0, "");

    if (had)
        setenv("ITEST_THREADS", saved, 1);
}

int main(void)
{
    itest_init(300);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_churn_leaves_no_fds, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_departures_are_noticed, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_sigterm, itest_setup_server, itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_sigint, itest_setup_server, itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_idle_sigterm, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test(test_ids_not_reused_across_restarts),
        cmocka_unit_test(test_itest_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
