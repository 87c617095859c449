/*
 * What the Redis client's tests share: a real redis-server on a free
 * loopback port, the event loop driven until a condition holds, and a client
 * whose callbacks record what happened (see redis_harness.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_harness.h"

struct loop *loop; /* the tests' one loop, made by main */

/* ------------------------------------------------------------ redis-server */

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts redis-server on s->port (a free one when 0); false when it exited
 * (the port was taken meanwhile). */
bool rs_spawn(struct rserver *s, const char *password)
{
    char port[16], log[96];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(log, sizeof log, "%s/redis.log", s->dir);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        /* It dies with the test, even one the watchdog ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        const char *argv[20] = {"redis-server", "--port",      port, "--bind",
                                "127.0.0.1",    "--save",      "",   "--dir",
                                s->dir,         "--daemonize", "no", "--appendonly"};
        size_t argc = 12;
        argv[argc++] = s->durable ? "yes" : "no";
        if (s->durable) {
            argv[argc++] = "--appendfsync";
            argv[argc++] = "always";
        }
        if (password) {
            argv[argc++] = "--requirepass";
            argv[argc++] = password;
        }
        /* execvp does not write to its arguments. */
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return false;
        }
        if (port_open(s->port)) {
            return true;
        }
        sleep_ms(10);
    }
    fail_msg("redis-server did not start on port %d (see %s)", s->port, log);
    return false;
}

void rs_start(struct rserver *s, const char *password)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/test_redis.XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    for (int tries = 0; tries < 5; tries++) {
        s->port = free_port();
        if (rs_spawn(s, password)) {
            return;
        }
    }
    fail_msg("redis-server would not start (is it installed? make test-deps installs it)");
}

void rs_start_durable(struct rserver *s)
{
    s->durable = true;
    rs_start(s, NULL);
}

void rs_kill(struct rserver *s, int sig)
{
    if (s->pid > 0) {
        kill(s->pid, sig);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

void rs_restart(struct rserver *s)
{
    assert_true(s->pid == 0);
    if (!rs_spawn(s, NULL)) {
        fail_msg("redis-server could not start again on port %d (taken meanwhile?)", s->port);
    }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void rs_stop(struct rserver *s)
{
    rs_kill(s, SIGKILL);
    /* A durable server leaves its append-only directory behind as well. */
    if (s->dir[0]) {
        nftw(s->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    }
}

/* ------------------------------------------------------------ loop driving */

struct waiter {
    bool (*cond)(void *arg);
    void *arg;
};

static void check_cond(struct loop *l, void *arg)
{
    struct waiter *w = arg;
    if (w->cond(w->arg)) {
        loop_stop(l);
    }
}

static void deadline_fn(struct loop *l, struct loop_timer *t)
{
    (void)t;
    loop_stop(l);
}

/* Runs the loop until cond(arg) or ms pass; returns cond(arg). */
bool wait_for(bool (*cond)(void *), void *arg, uint64_t ms)
{
    struct waiter w = {cond, arg};
    struct loop_timer deadline = {0};
    if (cond(arg)) {
        return true;
    }
    loop_set_before_sleep(loop, check_cond, &w);
    loop_timer_start(loop, &deadline, ms, deadline_fn);
    assert_int_equal(loop_run(loop), 0);
    loop_timer_stop(loop, &deadline);
    loop_set_before_sleep(loop, NULL, NULL);
    return cond(arg);
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

void run_for(uint64_t ms)
{
    wait_for(never, NULL, ms);
}

/* ------------------------------------------------------------ client side */

static void tc_ready(struct redis *r, void *arg)
{
    struct tc *c = arg;
    c->ready++;
    if (c->resubscribe) {
        assert_int_equal(redis_subscribe(r, c->resubscribe, strlen(c->resubscribe)), 0);
    }
}

static void tc_down(struct redis *r, const char *why, void *arg)
{
    (void)r;
    struct tc *c = arg;
    c->down++;
    snprintf(c->why, sizeof c->why, "%s", why);
}

static void tc_message(struct redis *r, const char *ch, size_t chlen, const char *p, size_t plen,
                       void *arg)
{
    (void)r;
    struct tc *c = arg;
    c->messages++;
    snprintf(c->channel, sizeof c->channel, "%.*s", (int)chlen, ch);
    assert_true(plen <= sizeof c->payload);
    memcpy(c->payload, p, plen);
    c->payload_len = plen;
}

static void tc_subscribed(struct redis *r, const char *channel, size_t len, void *arg)
{
    (void)r;
    struct tc *c = arg;
    c->subscribed++;
    snprintf(c->subscribed_to, sizeof c->subscribed_to, "%.*s", (int)len, channel);
}

void tc_open(struct tc *c, const char *url, enum redis_mode mode, const struct redis_options *opt)
{
    struct redis_url u;
    char err[256];
    struct redis_callbacks cb = {.on_ready = tc_ready,
                                 .on_down = tc_down,
                                 .on_message = tc_message,
                                 .on_subscribed = tc_subscribed,
                                 .arg = c};
    assert_int_equal(redis_url_parse(url, &u, err, sizeof err), 0);
    c->r = redis_new(loop, &u, mode, opt, &cb);
    assert_non_null(c->r);
    redis_start(c->r);
}

bool is_ready(void *arg)
{
    return redis_is_ready(((struct tc *)arg)->r);
}

bool nothing_awaited(void *arg)
{
    return redis_awaited(((struct tc *)arg)->r) == 0;
}

void url_of(char *out, size_t cap, const char *auth, int port, const char *db)
{
    snprintf(out, cap, "redis://%s127.0.0.1:%d%s", auth, port, db);
}

void on_reply(struct redis *r, const struct resp_value *v, struct resp_reader *rest, void *arg)
{
    (void)r;
    (void)rest;
    struct reply *out = arg;
    out->done = true;
    if (!v) {
        out->lost = true;
        return;
    }
    out->type = v->type;
    out->null = v->null;
    out->integer = v->integer;
    out->count = v->count;
    out->len = v->len < sizeof out->str ? v->len : sizeof out->str - 1;
    if (v->str) {
        memcpy(out->str, v->str, out->len);
    }
    out->str[out->len] = '\0';
}

bool reply_done(void *arg)
{
    return ((struct reply *)arg)->done;
}

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

bool got_message(void *arg)
{
    return ((struct tc *)arg)->messages > 0;
}

bool is_down(void *arg)
{
    return ((struct tc *)arg)->down > 0;
}

struct rserver shared_rs;
char shared_url[128];

int shared_rs_setup(void **state)
{
    (void)state;
    rs_start(&shared_rs, NULL);
    url_of(shared_url, sizeof shared_url, "", shared_rs.port, "");
    return 0;
}

int shared_rs_teardown(void **state)
{
    (void)state;
    rs_stop(&shared_rs);
    return 0;
}
