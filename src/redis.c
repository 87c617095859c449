#include "redis.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "loop.h"

/* --------------------------------------------------------------- client */

enum redis_state { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_READY };

struct pending {
    redis_reply_fn *fn;
    void *arg;
};

struct redis {
    struct loop *loop;
    struct redis_url url;
    enum redis_mode mode;
    struct redis_options opt;
    struct redis_callbacks cb;

    enum redis_state state;
    struct loop_watch watch;
    struct loop_timer timeout; /* connect or reply timeout */
    struct loop_timer retry;   /* backoff before the next attempt */
    struct loop_timer idle;    /* idle_ping_ms without input: PING */
    unsigned attempt;          /* failed attempts since the last ready */
    uint64_t rng;
    uint64_t connections;

    struct buf out, in;
    struct resp_scanner scan;
    /* Awaited replies, a ring of cap (a power of two) entries. */
    struct pending *ring;
    size_t head, count, cap;
    size_t confirms;    /* subscriber mode: (un)subscribe confirmations awaited */
    unsigned handshake; /* AUTH / SELECT replies still awaited */
};

#define REDIS_READ_CHUNK 16384
/* Reads per wake-up: a fast stream of messages must not keep the loop from
 * everything else (the watch is level-triggered: the rest comes next time). */
#define REDIS_READS_PER_WAKE 8

static void connect_now(struct redis *r);
static void rearm_idle(struct redis *r);
static void on_io(struct loop *loop, struct loop_watch *w, uint32_t events);

static struct redis *of_watch(struct loop_watch *w)
{
    return (struct redis *)((char *)w - offsetof(struct redis, watch));
}

/* xorshift64*: jitter only, so no need for anything stronger. */
static uint64_t next_random(struct redis *r)
{
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * UINT64_C(2685821657736338717);
}

struct redis *redis_new(struct loop *loop, const struct redis_url *url, enum redis_mode mode,
                        const struct redis_options *opt, const struct redis_callbacks *cb)
{
    struct redis *r = calloc(1, sizeof *r);
    if (!r) {
        return NULL;
    }
    r->loop = loop;
    r->url = *url;
    r->mode = mode;
    if (opt) {
        r->opt = *opt;
    }
    r->opt.max_output = r->opt.max_output ? r->opt.max_output : (size_t)1 << 20;
    r->opt.reply_timeout_ms = r->opt.reply_timeout_ms ? r->opt.reply_timeout_ms : 5000;
    r->opt.backoff_min_ms = r->opt.backoff_min_ms ? r->opt.backoff_min_ms : 100;
    r->opt.backoff_max_ms = r->opt.backoff_max_ms ? r->opt.backoff_max_ms : 5000;
    bool no_limits = r->opt.limits.max_bulk == 0 && r->opt.limits.max_array == 0 &&
                     r->opt.limits.max_line == 0 && r->opt.limits.max_depth == 0;
    resp_scan_init(&r->scan, no_limits ? NULL : &r->opt.limits);
    if (cb) {
        r->cb = *cb;
    }
    r->watch.fd = -1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)r ^
             ((uint64_t)getpid() << 40);
    r->rng |= 1;
    return r;
}

void redis_free(struct redis *r)
{
    if (!r) {
        return;
    }
    if (r->watch.fd >= 0) {
        int fd = r->watch.fd;
        loop_watch_del(r->loop, &r->watch);
        close(fd);
    }
    loop_timer_stop(r->loop, &r->timeout);
    loop_timer_stop(r->loop, &r->retry);
    loop_timer_stop(r->loop, &r->idle);
    buf_free(&r->out);
    buf_free(&r->in);
    free(r->ring);
    free(r);
}

bool redis_is_ready(const struct redis *r)
{
    return r->state == ST_READY;
}

uint64_t redis_connections(const struct redis *r)
{
    return r->connections;
}

size_t redis_awaited(const struct redis *r)
{
    return r->count + r->confirms;
}

/* ---- the ring of awaited replies ---- */

static int ring_push(struct redis *r, redis_reply_fn *fn, void *arg)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct pending *p = malloc(cap * sizeof *p);
        if (!p) {
            errno = ENOMEM;
            return -1;
        }
        for (size_t i = 0; i < r->count; i++) {
            p[i] = r->ring[(r->head + i) & (r->cap - 1)];
        }
        free(r->ring);
        r->ring = p;
        r->head = 0;
        r->cap = cap;
    }
    r->ring[(r->head + r->count) & (r->cap - 1)] = (struct pending){fn, arg};
    r->count++;
    return 0;
}

static struct pending ring_pop(struct redis *r)
{
    struct pending p = r->ring[r->head];
    r->head = (r->head + 1) & (r->cap - 1);
    r->count--;
    return p;
}

/* ---- timeouts, disconnect and backoff ---- */

static void on_timeout(struct loop *loop, struct loop_timer *t);

/* While anything is awaited, no progress for reply_timeout_ms is a timeout;
 * called whenever something arrives or the first awaited thing is queued. */
static void rearm_timeout(struct redis *r)
{
    if (r->state == ST_CONNECTING || redis_awaited(r) > 0) {
        loop_timer_start(r->loop, &r->timeout, r->opt.reply_timeout_ms, on_timeout);
    } else {
        loop_timer_stop(r->loop, &r->timeout);
    }
}

static void on_retry(struct loop *loop, struct loop_timer *t)
{
    (void)loop;
    connect_now((struct redis *)((char *)t - offsetof(struct redis, retry)));
}

static void schedule_retry(struct redis *r)
{
    unsigned shift = r->attempt < 20 ? r->attempt : 20;
    uint64_t d = r->opt.backoff_min_ms << shift;
    if (d > r->opt.backoff_max_ms || d < r->opt.backoff_min_ms) {
        d = r->opt.backoff_max_ms;
    }
    uint64_t half = d / 2;
    uint64_t delay = d - half + next_random(r) % (half + 1);
    r->attempt++;
    loop_timer_start(r->loop, &r->retry, delay, on_retry);
}

/* Drops the connection: every awaited reply fails (NULL), on_down is told,
 * and the next attempt is scheduled. The input buffer's bytes stay where
 * they are (a reply being delivered may still point into them). */
static void disconnect(struct redis *r, const char *why)
{
    if (r->watch.fd >= 0) {
        int fd = r->watch.fd;
        loop_watch_del(r->loop, &r->watch);
        close(fd);
    }
    r->state = ST_IDLE;
    loop_timer_stop(r->loop, &r->timeout);
    loop_timer_stop(r->loop, &r->idle);
    r->out.len = r->out.off = 0;
    r->in.len = r->in.off = 0;
    resp_scan_reset(&r->scan);
    r->confirms = 0;
    r->handshake = 0;
    /* The state is already idle: a callback's new command is refused. */
    while (r->count > 0) {
        struct pending p = ring_pop(r);
        if (p.fn) {
            p.fn(r, NULL, NULL, p.arg);
        }
    }
    schedule_retry(r);
    if (r->cb.on_down) {
        r->cb.on_down(r, why, r->cb.arg);
    }
}

static void on_timeout(struct loop *loop, struct loop_timer *t)
{
    (void)loop;
    struct redis *r = (struct redis *)((char *)t - offsetof(struct redis, timeout));
    disconnect(r, r->state == ST_CONNECTING ? "connect timeout" : "reply timeout");
}

/* ---- output ---- */

/* Writes what the socket takes; EPOLLOUT stays armed only while bytes are
 * left. 0, or -1 when the connection was dropped. */
static int flush_out(struct redis *r)
{
    while (buf_pending(&r->out) > 0) {
        ssize_t n = write(r->watch.fd, buf_head(&r->out), buf_pending(&r->out));
        if (n > 0) {
            buf_consume(&r->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        disconnect(r, "write failed");
        return -1;
    }
    uint32_t ev = EPOLLIN | (buf_pending(&r->out) > 0 ? EPOLLOUT : 0);
    if (loop_watch_mod(r->loop, &r->watch, ev) < 0) {
        disconnect(r, "epoll_ctl failed");
        return -1;
    }
    return 0;
}

/*
 * Encodes a command into the output buffer and awaits its reply. Nothing is
 * written here: EPOLLOUT is armed and the loop writes everything queued in
 * this iteration at once, so a burst of commands costs one write.
 */
static int enqueue(struct redis *r, size_t argc, const char *const argv[], const size_t lens[],
                   redis_reply_fn *fn, void *arg, bool awaited)
{
    size_t need = resp_encode(NULL, 0, argc, argv, lens);
    if (need > r->opt.max_output - buf_pending(&r->out) ||
        buf_pending(&r->out) > r->opt.max_output) {
        errno = ENOBUFS;
        return -1;
    }
    if (buf_reserve(&r->out, need) < 0 || (awaited && ring_push(r, fn, arg) < 0)) {
        errno = ENOMEM;
        return -1;
    }
    resp_encode(r->out.data + r->out.len, need, argc, argv, lens);
    r->out.len += need;
    if (awaited && redis_awaited(r) == 1) {
        rearm_timeout(r);
    }
    if (loop_watch_mod(r->loop, &r->watch, EPOLLIN | EPOLLOUT) < 0) {
        /* Queued and awaited: the failure is reported through fn. */
        disconnect(r, "epoll_ctl failed");
    }
    return 0;
}

int redis_command(struct redis *r, size_t argc, const char *const argv[], const size_t lens[],
                  redis_reply_fn *fn, void *arg)
{
    if (r->mode != REDIS_COMMANDS || argc == 0) {
        errno = EINVAL;
        return -1;
    }
    if (r->state != ST_READY) {
        errno = ENOTCONN;
        return -1;
    }
    return enqueue(r, argc, argv, lens, fn, arg, true);
}

#define REDIS_MAX_STR_ARGS 32

int redis_command_str(struct redis *r, redis_reply_fn *fn, void *arg, ...)
{
    const char *argv[REDIS_MAX_STR_ARGS];
    size_t lens[REDIS_MAX_STR_ARGS], argc = 0;
    va_list ap;
    va_start(ap, arg);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) {
        if (argc == REDIS_MAX_STR_ARGS) {
            va_end(ap);
            errno = EINVAL;
            return -1;
        }
        argv[argc] = s;
        lens[argc++] = strlen(s);
    }
    va_end(ap);
    return redis_command(r, argc, argv, lens, fn, arg);
}

static int sub_command(struct redis *r, const char *verb, const char *channel, size_t len)
{
    if (r->mode != REDIS_SUBSCRIBER) {
        errno = EINVAL;
        return -1;
    }
    if (r->state != ST_READY) {
        errno = ENOTCONN;
        return -1;
    }
    const char *argv[2] = {verb, channel};
    size_t lens[2] = {strlen(verb), len};
    if (enqueue(r, 2, argv, lens, NULL, NULL, false) < 0) {
        return -1;
    }
    /* One confirmation per channel comes back, in order (unless enqueue
     * found the connection dead: then on_ready will subscribe again). */
    if (r->state == ST_READY && ++r->confirms == 1) {
        rearm_timeout(r);
    }
    return 0;
}

int redis_subscribe(struct redis *r, const char *channel, size_t len)
{
    return sub_command(r, "SUBSCRIBE", channel, len);
}

int redis_unsubscribe(struct redis *r, const char *channel, size_t len)
{
    return sub_command(r, "UNSUBSCRIBE", channel, len);
}

/* ---- idle pings ---- */

static void on_idle(struct loop *loop, struct loop_timer *t)
{
    (void)loop;
    struct redis *r = (struct redis *)((char *)t - offsetof(struct redis, idle));
    static const char *const argv[1] = {"PING"};
    static const size_t lens[1] = {4};
    if (r->state != ST_READY || redis_awaited(r) > 0) {
        /* Something is awaited already: the reply timeout watches. */
        rearm_idle(r);
        return;
    }
    /* Answered like any command, or in subscriber mode (as a "pong" push, or
     * +PONG with no subscription) counted like a confirmation. A full output
     * buffer is no reason to ping: the next idle period tries again. */
    if (enqueue(r, 1, argv, lens, NULL, NULL, r->mode == REDIS_COMMANDS) == 0 &&
        r->mode == REDIS_SUBSCRIBER && r->state == ST_READY && ++r->confirms == 1) {
        rearm_timeout(r);
    }
    rearm_idle(r);
}

static void rearm_idle(struct redis *r)
{
    if (r->opt.idle_ping_ms > 0 && r->watch.fd >= 0) {
        loop_timer_start(r->loop, &r->idle, r->opt.idle_ping_ms, on_idle);
    }
}

/* ---- connecting and the handshake ---- */

static void become_ready(struct redis *r)
{
    r->state = ST_READY;
    r->attempt = 0;
    r->connections++;
    rearm_timeout(r);
    rearm_idle(r);
    if (r->cb.on_ready) {
        r->cb.on_ready(r, r->cb.arg);
    }
}

/* AUTH and SELECT replies: anything but +OK drops the connection (a wrong
 * password stays wrong, but the backoff keeps the retries cheap). */
static void on_handshake(struct redis *r, const struct resp_value *v, struct resp_reader *rest,
                         void *arg)
{
    (void)rest;
    const char *what = arg;
    if (!v) {
        return;
    }
    if (!resp_str_eq(v, "OK")) {
        char why[160];
        int n = v->type == RESP_ERR && v->len < 100 ? (int)v->len : 0;
        snprintf(why, sizeof why, "%s refused: %.*s", what, n, n ? v->str : "unexpected reply");
        disconnect(r, why);
        return;
    }
    if (--r->handshake == 0) {
        become_ready(r);
    }
}

static void start_handshake(struct redis *r)
{
    char db[16];
    r->state = ST_HANDSHAKE;
    if (r->url.has_password) {
        const char *argv[3] = {"AUTH", r->url.user, r->url.password};
        size_t lens[3] = {4, strlen(r->url.user), strlen(r->url.password)};
        /* Without a user name, the one-argument form works on Redis < 6 too. */
        bool with_user = lens[1] > 0;
        if (!with_user) {
            argv[1] = argv[2];
            lens[1] = lens[2];
        }
        r->handshake++;
        if (enqueue(r, with_user ? 3 : 2, argv, lens, on_handshake, (void *)"AUTH", true) < 0) {
            disconnect(r, "out of memory");
            return;
        }
    }
    if (r->url.db != 0) {
        snprintf(db, sizeof db, "%d", r->url.db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        r->handshake++;
        if (enqueue(r, 2, argv, lens, on_handshake, (void *)"SELECT", true) < 0) {
            disconnect(r, "out of memory");
            return;
        }
    }
    if (r->handshake == 0) {
        become_ready(r);
    }
}

static void connect_now(struct redis *r)
{
    const struct sockaddr *sa = (const struct sockaddr *)&r->url.addr;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        disconnect(r, "socket failed");
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (connect(fd, sa, r->url.addr_len) < 0 && errno != EINPROGRESS) {
        close(fd);
        disconnect(r, "connect failed");
        return;
    }
    if (loop_watch_add(r->loop, &r->watch, fd, EPOLLOUT, on_io) < 0) {
        close(fd);
        disconnect(r, "epoll_ctl failed");
        return;
    }
    r->state = ST_CONNECTING;
    rearm_timeout(r);
}

void redis_start(struct redis *r)
{
    if (r->state == ST_IDLE && !loop_timer_armed(&r->retry)) {
        connect_now(r);
    }
}

/* ---- input ---- */

/* Subscriber mode: a message goes to on_message; anything else answers the
 * oldest awaited (UN)SUBSCRIBE or PING: its confirmation, an error, or a
 * pong (["pong", ""], or +PONG while subscribed to nothing). */
static void deliver_push(struct redis *r, const struct resp_value *v, struct resp_reader *rest)
{
    struct resp_value kind, ch, msg;
    bool three = v->type == RESP_ARRAY && v->count == 3 && resp_read(rest, &kind) == 0 &&
                 resp_read(rest, &ch) == 0 && ch.type == RESP_BULK && !ch.null;
    if (three && resp_str_eq(&kind, "message")) {
        if (r->cb.on_message && resp_read(rest, &msg) == 0 && msg.type == RESP_BULK && !msg.null) {
            r->cb.on_message(r, ch.str, ch.len, msg.str, msg.len, r->cb.arg);
        }
        return;
    }
    if (r->confirms > 0) {
        r->confirms--;
    }
    /* ["subscribe", channel, count]: from now on nothing published on it is
     * missed, which is when a reader may read what came before. */
    if (three && resp_str_eq(&kind, "subscribe") && r->cb.on_subscribed) {
        r->cb.on_subscribed(r, ch.str, ch.len, r->cb.arg);
    }
}

/* Hands one complete reply to whoever awaits it. 0, or -1 when the
 * connection was dropped meanwhile. */
static int deliver(struct redis *r, const char *reply, size_t len)
{
    struct resp_reader rest;
    struct resp_value v;
    resp_reader_init(&rest, reply, len);
    if (resp_read(&rest, &v) < 0) {
        disconnect(r, "malformed reply");
        return -1;
    }
    if (r->mode == REDIS_SUBSCRIBER && r->state == ST_READY) {
        deliver_push(r, &v, &rest);
    } else if (r->count > 0) {
        struct pending p = ring_pop(r);
        if (p.fn) {
            p.fn(r, &v, &rest, p.arg);
        }
    } else {
        disconnect(r, "a reply nobody asked for");
        return -1;
    }
    if (r->watch.fd < 0) {
        return -1;
    }
    rearm_timeout(r);
    return 0;
}

/* Reads what there is and delivers every complete reply. */
static void read_in(struct redis *r)
{
    for (int reads = 0; reads < REDIS_READS_PER_WAKE; reads++) {
        if (buf_reserve(&r->in, REDIS_READ_CHUNK) < 0) {
            disconnect(r, "out of memory");
            return;
        }
        ssize_t n = read(r->watch.fd, r->in.data + r->in.len, r->in.cap - r->in.len);
        if (n == 0) {
            disconnect(r, "connection closed by Redis");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                disconnect(r, "read failed");
            }
            return;
        }
        r->in.len += (size_t)n;
        if (r->state == ST_READY) {
            rearm_idle(r);
        }
        while (buf_pending(&r->in) > 0) {
            long len = resp_scan(&r->scan, buf_head(&r->in), buf_pending(&r->in));
            if (len == RESP_AGAIN) {
                break;
            }
            if (len < 0) {
                disconnect(r, "malformed reply or over the reply limits");
                return;
            }
            /* Consumed before delivery: the bytes stay in place while the
             * callback runs, and a callback that drops the connection leaves
             * nothing to consume. */
            const char *reply = buf_head(&r->in);
            buf_consume(&r->in, (size_t)len);
            resp_scan_reset(&r->scan);
            if (deliver(r, reply, (size_t)len) < 0) {
                return;
            }
        }
    }
}

static void on_connected(struct redis *r)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(r->watch.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        char why[96];
        snprintf(why, sizeof why, "connect failed: %s", strerror(err ? err : errno));
        disconnect(r, why);
        return;
    }
    if (loop_watch_mod(r->loop, &r->watch, EPOLLIN) < 0) {
        disconnect(r, "epoll_ctl failed");
        return;
    }
    start_handshake(r);
    if (r->state == ST_HANDSHAKE) {
        rearm_timeout(r); /* the handshake gets a whole timeout of its own */
    }
}

static void on_io(struct loop *loop, struct loop_watch *w, uint32_t events)
{
    (void)loop;
    struct redis *r = of_watch(w);
    if (r->state == ST_CONNECTING) {
        on_connected(r);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        read_in(r);
        if (r->watch.fd < 0) {
            return;
        }
    }
    if (buf_pending(&r->out) > 0 || (r->watch.events & EPOLLOUT)) {
        flush_out(r);
    }
}
