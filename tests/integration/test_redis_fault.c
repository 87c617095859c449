/*
 * Tests for src/redis.c against a fake server in this process, for what a
 * real Redis will not do on demand: never answer, send garbage, answer what
 * was not asked, hang up, or not listen at all.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "redis_harness.h"

/* A listener in this process; what it does with a connection is set per test. */
struct fake {
    int lfd, cfd, port;
    struct loop_watch w;
    const char *send; /* written once accepted (NULL: nothing) */
    bool hang_up;     /* closed once accepted */
};

static void fake_accept(struct loop *l, struct loop_watch *w, uint32_t events)
{
    (void)l;
    (void)events;
    struct fake *f = (struct fake *)((char *)w - offsetof(struct fake, w));
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) {
        return;
    }
    if (f->send) {
        assert_true(write(fd, f->send, strlen(f->send)) == (ssize_t)strlen(f->send));
    }
    if (f->hang_up) {
        close(fd);
        return;
    }
    if (f->cfd >= 0) {
        close(f->cfd);
    }
    f->cfd = fd;
}

static void fake_open(struct fake *f, bool accept_them)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    f->cfd = -1;
    f->w.fd = -1;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    /* Not accepting still completes the TCP handshake (the backlog): a
     * server that is connected but never answers. */
    if (accept_them) {
        assert_int_equal(loop_watch_add(loop, &f->w, f->lfd, EPOLLIN, fake_accept), 0);
    }
}

static void fake_close(struct fake *f)
{
    loop_watch_del(loop, &f->w);
    close(f->lfd);
    if (f->cfd >= 0) {
        close(f->cfd);
    }
}

/* A server that never answers: the reply times out, the callback gets NULL
 * and the connection is dropped and tried again. */
static void test_reply_timeout(void **state)
{
    (void)state;
    struct fake f = {0};
    struct tc c = {0};
    struct reply rep = {0};
    struct redis_options opt = {.reply_timeout_ms = 200, .backoff_min_ms = 1000};
    char u[128];
    fake_open(&f, false);
    url_of(u, sizeof u, "", f.port, "");
    tc_open(&c, u, REDIS_COMMANDS, &opt);
    assert_true(wait_for(is_ready, &c, 5000));
    uint64_t t0 = now_us();
    assert_int_equal(redis_command_str(c.r, on_reply, &rep, "PING", (char *)NULL), 0);
    assert_true(wait_for(reply_done, &rep, 5000));
    uint64_t ms = (now_us() - t0) / 1000;
    assert_true(rep.lost);
    assert_int_equal(c.down, 1);
    assert_string_equal(c.why, "reply timeout");
    printf("reply timeout: fired after %llu ms (set to 200)\n", (unsigned long long)ms);
    assert_true(ms >= 190 && ms < 1000);
    redis_free(c.r);
    fake_close(&f);
}

/* Garbage, an unasked reply, a hang-up: each drops the connection. */
static void test_bad_server(void **state)
{
    (void)state;
    static const struct {
        const char *send;
        bool hang_up;
        const char *why;
    } cases[] = {
        {"%1\r\n", false, "malformed reply or over the reply limits"},
        {"+OK\r\n", false, "a reply nobody asked for"},
        {NULL, true, "connection closed by Redis"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fake f = {.send = cases[i].send, .hang_up = cases[i].hang_up};
        struct tc c = {0};
        char u[128];
        struct redis_options opt = {.backoff_min_ms = 5000};
        fake_open(&f, true);
        url_of(u, sizeof u, "", f.port, "");
        tc_open(&c, u, REDIS_COMMANDS, &opt);
        assert_true(wait_for(is_down, &c, 5000));
        assert_string_equal(c.why, cases[i].why);
        redis_free(c.r);
        fake_close(&f);
    }
}

/* Nobody listening: a refused connect is a failed attempt, retried. */
static void test_refused(void **state)
{
    (void)state;
    struct tc c = {0};
    char u[128];
    struct redis_options opt = {.backoff_min_ms = 20, .backoff_max_ms = 40};
    url_of(u, sizeof u, "", free_port(), "");
    tc_open(&c, u, REDIS_COMMANDS, &opt);
    assert_true(wait_for(is_down, &c, 5000));
    assert_non_null(strstr(c.why, "connect failed"));
    run_for(300);
    assert_true(c.down >= 3);
    assert_int_equal(c.ready, 0);
    redis_free(c.r);
}

/* An idle subscriber on a server that went silent: the idle PING is not
 * answered, and that is a reply timeout like any other. */
static void test_idle_ping_silent(void **state)
{
    (void)state;
    struct fake f = {0};
    struct tc c = {0};
    struct redis_options opt = {
        .reply_timeout_ms = 100, .idle_ping_ms = 100, .backoff_min_ms = 5000};
    char u[128];
    fake_open(&f, false);
    url_of(u, sizeof u, "", f.port, "");
    tc_open(&c, u, REDIS_SUBSCRIBER, &opt);
    assert_true(wait_for(is_ready, &c, 5000));
    uint64_t t0 = now_us();
    assert_true(wait_for(is_down, &c, 5000));
    uint64_t ms = (now_us() - t0) / 1000;
    assert_string_equal(c.why, "reply timeout");
    printf("idle ping: a silent server found dead after %llu ms (100 + 100)\n",
           (unsigned long long)ms);
    assert_true(ms >= 190 && ms < 1000);
    redis_free(c.r);
    fake_close(&f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    loop = loop_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_timeout),
        cmocka_unit_test(test_bad_server),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_idle_ping_silent),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    loop_free(loop);
    return rc;
}
