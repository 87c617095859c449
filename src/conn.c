#include "conn.h"

#include "api.h"
#include "buf.h"
#include "http.h"
#include "log.h"
#include "response.h"
#include "room.h"
#include "server.h"
#include "sse.h"
#include "static_files.h"
#include "stats.h"
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Stop reading requests while this much output is pending: a client that
 * pipelines without reading answers cannot make us buffer without bound. */
#define OUT_HIGH_WATER ((size_t)64 * 1024)
/* Bytes written to one connection per wakeup, so one fast reader cannot
 * starve the others. */
#define WRITE_BUDGET_BYTES ((size_t)256 * 1024)
#define READ_CHUNK         ((size_t)16 * 1024)
#define MAX_IOV            64
/* After the last response of a closing connection: how long, and how many
 * bytes, we keep reading (and discarding) so the kernel does not answer the
 * client's unread request bytes with a RST that destroys our response. */
#define LINGER_MS    2000
#define LINGER_BYTES ((size_t)1 << 20)
/* A /ping client that does not read is closed once this much is pending. */
#define PING_MAX_PENDING 4096
/* Likewise a stats stream (a few seconds' worth of snapshots). */
#define STATS_MAX_PENDING ((size_t)64 * 1024)

enum conn_state {
    CONN_READ_HEAD,
    CONN_READ_BODY,
    CONN_STREAM,
    CONN_DRAIN,
    CONN_LINGER,
    CONN_CLOSED,
};

enum stream_kind { STREAM_NONE, STREAM_PING, STREAM_ROOM, STREAM_STATS };

struct conn {
    /* The fan-out's hot path (hub_flush -> conn_write) reads these for each
     * of possibly 10,000 subscribers per message: they come first, together,
     * so a room walk touches two or three cache lines per connection. */
    struct subscriber sub;
    struct loop_watch watch;
    enum conn_state state;
    enum stream_kind stream;
    struct worker *wk; /* the loop that owns it */
    struct buf out;
    size_t borrowed_len;
    const char *borrowed; /* static file body, after `out` */
    uint64_t last_write_ms;
    uint64_t stream_bytes;
    uint64_t stream_events;
    /* Output held back until the iteration's fan-out (conn_hold_output). */
    struct list held_node; /* in wk->held while held */

    struct loop_timer timer;
    struct loop_task free_task;
    struct list node; /* in wk->conns */

    bool request_started; /* bytes of the current request have arrived */
    bool head_request;    /* the request being answered is HEAD */
    bool keep_alive;      /* of the request being answered */
    bool http10;          /* the request being answered is HTTP/1.0 */
    bool peer_closed;     /* read returned 0 */
    bool peer_local;      /* connected from a loopback address */
    bool write_more;      /* stopped by the write budget, not by the socket */
    /* Access-Control-Allow-Origin for the answer being written: "*", one of
     * the configured origins (pointing into the config), or NULL for none. */
    const char *cors_origin;

    /* For the access log. */
    uint64_t request_start_ms;
    uint64_t stream_start_ms;
    /* Loop time at which the stream's token expires; 0: it has none. Only
     * the expiry is kept, never the token (memory per idle subscriber). */
    uint64_t token_deadline_ms;
    int status;
    /* While held: where the held answers start in `out`, and the ids of the
     * first and last message they acknowledge. */
    uint32_t held_from;
    uint64_t held_first_id, held_last_id;

    struct buf in;
    size_t last_len; /* head bytes already scanned by the parser */
    size_t head_len;
    uint64_t content_length;
    bool chunked;
    size_t body_len; /* decoded body bytes, following the head in `in` */
    struct http_chunked chunk_dec;
    size_t linger_bytes;

    struct static_files *borrowed_from; /* reference held while borrowing */
};

/* The configuration every worker shares. */
static inline const struct config *conn_cfg(const struct conn *c)
{
    return &c->wk->srv->cfg;
}

static void conn_flush(struct conn *c);
static void conn_flush_output(struct conn *c, bool parse);
static void conn_parse_requests(struct conn *c);
static void conn_on_timer(struct loop *loop, struct loop_timer *t);
static void conn_on_io(struct loop *loop, struct loop_watch *w, uint32_t events);

/* ------------------------------------------------------------ lifecycle */

static void conn_free_task(struct loop *loop, struct loop_task *task)
{
    struct conn *c = container_of(task, struct conn, free_task);
    (void)loop;
    buf_free(&c->in);
    buf_free(&c->out);
    static_files_unref(c->borrowed_from);
    free(c);
}

void conn_close(struct conn *c)
{
    struct worker *wk = c->wk;
    if (c->state == CONN_CLOSED) {
        return;
    }
    if (c->state == CONN_STREAM) {
        wk->streams--;
        log_info("stream closed: %s%s, %.3f s, %llu bytes, %llu events",
                 c->stream == STREAM_PING    ? "/ping"
                 : c->stream == STREAM_STATS ? "/stats?stream=1"
                                             : "/messages room=",
                 c->sub.room ? room_name(c->sub.room) : "",
                 (double)(loop_now_ms(wk->loop) - c->stream_start_ms) / 1000.0,
                 (unsigned long long)c->stream_bytes, (unsigned long long)c->stream_events);
    }
    c->state = CONN_CLOSED;
    room_unsubscribe(&c->sub);
    if (list_linked(&c->held_node)) {
        list_remove(&c->held_node);
    }
    loop_timer_stop(wk->loop, &c->timer);
    int fd = c->watch.fd;
    loop_watch_del(wk->loop, &c->watch);
    close(fd);
    list_remove(&c->node);
    wk->nconns--;
    wk->stats.closed++;
    loop_task_queue(wk->loop, &c->free_task, conn_free_task);
}

/* The reconnection delay a stream is told: +-20% around base, so that the
 * clients of a restarted server do not all come back in the same instant. */
static unsigned jittered_retry(struct worker *wk, unsigned base)
{
    unsigned jitter = base / 5;
    return base - jitter + (jitter ? worker_random(wk) % (2 * jitter + 1) : 0);
}

void conn_close_all(struct worker *wk)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &wk->conns)
    {
        struct conn *c = container_of(pos, struct conn, node);
        if (c->state == CONN_STREAM && room_sub_between_frames(&c->sub) &&
            buf_pending(&c->out) == 0) {
            /* Only between frames: bytes must never land inside a frame. The
             * delay is at least the usual one, spread over twice that. */
            char line[48];
            size_t n = sse_retry(line, sizeof line - 1,
                                 wk->srv->cfg.retry_ms + jittered_retry(wk, wk->srv->cfg.retry_ms));
            line[n++] = '\n';
            ssize_t w = send(c->watch.fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
        }
        conn_close(c);
    }
}

static bool output_pending(const struct conn *c)
{
    return buf_pending(&c->out) > 0 || c->borrowed_len > 0;
}

/* Computes the epoll mask from the state; the one place that decides it. */
static void conn_update_events(struct conn *c)
{
    uint32_t ev = 0;
    switch (c->state) {
    case CONN_READ_HEAD:
    case CONN_READ_BODY:
        if (!c->peer_closed && buf_pending(&c->out) < OUT_HIGH_WATER && c->borrowed_len == 0) {
            ev |= EPOLLIN | EPOLLRDHUP;
        }
        break;
    case CONN_STREAM:
        /* Kept readable so a closed EventSource is noticed at once. */
        ev |= EPOLLIN | EPOLLRDHUP;
        break;
    case CONN_LINGER:
        ev |= EPOLLIN | EPOLLRDHUP;
        break;
    case CONN_DRAIN:
    case CONN_CLOSED:
        break;
    }
    if (list_linked(&c->held_node)) {
        /* Nothing may be written until conn_release_held, which flushes. */
    } else if (output_pending(c) || c->write_more || (c->stream == STREAM_ROOM && c->sub.waiting)) {
        ev |= EPOLLOUT;
    } else if (c->state == CONN_READ_HEAD && buf_pending(&c->in) > c->last_len) {
        /* Pipelined requests are still buffered after a full round of
         * answers: come back on the next iteration (the socket is writable,
         * so level-triggered EPOLLOUT fires at once) instead of looping. */
        ev |= EPOLLOUT;
    }
    if (loop_watch_mod(c->wk->loop, &c->watch, ev) < 0) {
        conn_close(c);
    }
}

static void conn_arm_timer(struct conn *c, uint64_t ms)
{
    if (loop_timer_start(c->wk->loop, &c->timer, ms, conn_on_timer) < 0) {
        conn_close(c);
    }
}

/* Waiting for the next request: the idle keep-alive timeout applies until
 * its first byte, then the request deadline. */
static void conn_wait_request(struct conn *c)
{
    c->state = CONN_READ_HEAD;
    c->request_started = false;
    c->last_len = 0;
    c->head_len = 0;
    c->body_len = 0;
    c->chunked = false;
    conn_arm_timer(c, (uint64_t)conn_cfg(c)->keepalive_timeout_s * 1000);
}

static void conn_request_started(struct conn *c)
{
    if (!c->request_started) {
        c->request_started = true;
        c->request_start_ms = loop_now_ms(c->wk->loop);
        conn_arm_timer(c, (uint64_t)conn_cfg(c)->header_timeout_s * 1000);
    }
}

static bool peer_is_loopback(int fd)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) {
        return false;
    }
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ss;
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

bool conn_peer_is_local(const struct conn *c)
{
    return c->peer_local;
}

int conn_accept(struct worker *wk, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return -1;
    }
    c->wk = wk;
    c->watch.fd = -1;
    c->peer_local = peer_is_loopback(fd);
    c->cors_origin = config_cors_origin(&wk->srv->cfg, NULL, 0);
    list_init(&c->sub.node);
    list_init(&c->held_node);
    list_push_back(&wk->conns, &c->node);
    wk->nconns++;
    wk->stats.accepted++;
    if (loop_watch_add(wk->loop, &c->watch, fd, EPOLLIN | EPOLLRDHUP, conn_on_io) < 0) {
        list_remove(&c->node);
        wk->nconns--;
        close(fd);
        free(c);
        return -1;
    }
    /* A new connection must send a complete request within the header
     * timeout: that is what cuts off clients that connect and say nothing. */
    c->state = CONN_READ_HEAD;
    c->request_started = true;
    c->request_start_ms = loop_now_ms(wk->loop);
    conn_arm_timer(c, (uint64_t)wk->srv->cfg.header_timeout_s * 1000);
    return 0;
}

/* ------------------------------------------------------------ responses */

static void count_response(struct conn *c, int status)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) {
        c->wk->stats.responses_by_class[cls]++;
    }
}

/* How this answer ends: an event stream is close-delimited. */
static enum response_framing conn_framing(const struct conn *c)
{
    if (c->stream != STREAM_NONE) {
        return RESPONSE_STREAM;
    }
    if (!c->keep_alive) {
        return RESPONSE_CLOSE;
    }
    return c->http10 ? RESPONSE_KEEP_ALIVE_10 : RESPONSE_KEEP_ALIVE;
}

/* Appends the status line and the headers every response carries. */
static int append_head(struct conn *c, int status, const char *content_type, bool has_length,
                       size_t length, const char *extra_headers)
{
    const struct response_head h = {
        .status = status,
        .date = worker_date(c->wk),
        .cors_origin = c->cors_origin,
        .vary_origin = conn_cfg(c)->cors_origins_len != 0,
        .content_type = content_type,
        .has_length = has_length,
        .length = length,
        .extra_headers = extra_headers,
        .framing = conn_framing(c),
    };
    count_response(c, status);
    c->status = status;
    return response_head_append(&c->out, &h);
}

void conn_reply(struct conn *c, int status, const char *content_type, const char *body,
                size_t body_len, const char *extra_headers)
{
    bool no_body = status == 204 || status == 304;
    int rc =
        append_head(c, status, no_body ? NULL : content_type, !no_body, body_len, extra_headers);
    if (rc == 0 && !c->head_request && !no_body) {
        rc = buf_append(&c->out, body, body_len);
    }
    if (rc < 0) {
        conn_close(c);
    }
}

void conn_reply_file(struct conn *c, const struct static_file *f, bool not_modified)
{
    char extra[96];
    snprintf(extra, sizeof extra, "ETag: %s\r\nCache-Control: no-cache\r\n", f->etag);
    if (not_modified) {
        conn_reply(c, 304, NULL, NULL, 0, extra);
        return;
    }
    if (append_head(c, 200, f->type, true, f->len, extra) < 0) {
        conn_close(c);
        return;
    }
    if (!c->head_request && f->len > 0) {
        c->borrowed = f->data;
        c->borrowed_len = f->len;
        c->borrowed_from = static_files_ref(c->wk->srv->files);
    }
}

void conn_reply_error(struct conn *c, int status, const char *msg)
{
    char body[256];
    size_t n = response_error_body(body, sizeof body, status, msg);
    conn_reply(c, status, "application/json", body, n, NULL);
}

/* Refuses a request the parser or the body reader rejected. After such an
 * error the rest of the input cannot be trusted to be framed as we think, so
 * nothing after it is read: the answer is sent with "Connection: close" and
 * the connection ends. Logged once, here. */
static void conn_fail(struct conn *c, int status, const char *msg)
{
    /* A client can cause these at will: rate-limit the log lines. */
    static struct log_limit limit;
    if (log_limit_allow(&limit, loop_now_ms(c->wk->loop), 20)) {
        log_info("fd %d: %d %s", c->watch.fd, status, msg);
    }
    c->head_request = false;
    c->keep_alive = false;
    conn_reply_error(c, status, msg);
    if (c->state != CONN_CLOSED) {
        c->state = CONN_DRAIN;
        conn_arm_timer(c, (uint64_t)conn_cfg(c)->header_timeout_s * 1000);
    }
}

void conn_reply_publish(struct conn *c, uint64_t id, size_t clients)
{
    if (!list_linked(&c->held_node)) {
        /* Nothing is written while held, so this offset stays valid. */
        c->held_from = (uint32_t)buf_pending(&c->out);
        c->held_first_id = id;
        list_push_back(&c->wk->held, &c->held_node);
    }
    c->held_last_id = id;
    char answer[96];
    int n = snprintf(answer, sizeof answer, "{\"id\":%llu,\"clients\":%zu}\n",
                     (unsigned long long)id, clients);
    conn_reply(c, 202, "application/json", answer, (size_t)n, NULL);
}

/* The held answers claimed a durability that failed: take them back and
 * answer 503 for the first of them instead; the connection then closes,
 * since what was pipelined after it stays unanswered. */
static void conn_refuse_held(struct conn *c)
{
    if (c->borrowed_len > 0 || c->held_from > buf_pending(&c->out)) {
        conn_close(c);
        return;
    }
    c->out.len = c->out.off + c->held_from;
    c->keep_alive = false;
    c->head_request = false;
    conn_reply_error(c, 503, "cannot store the message");
    if (c->state != CONN_CLOSED) {
        c->state = CONN_DRAIN;
        conn_arm_timer(c, (uint64_t)conn_cfg(c)->header_timeout_s * 1000);
        conn_flush_output(c, false);
    }
}

void conn_release_held(struct worker *wk, uint64_t failed_from)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &wk->held)
    {
        struct conn *c = container_of(pos, struct conn, held_node);
        list_remove(&c->held_node);
        if (c->held_last_id >= failed_from) {
            log_warn("fd %d: the journal sync failed; answering 503", c->watch.fd);
            if (c->held_first_id >= failed_from) {
                conn_refuse_held(c);
            } else {
                conn_close(c);
            }
            continue;
        }
        /* Requests still buffered are read on the next iteration, not from
         * inside the after-the-batch task: a publish among them must get
         * the next fan-out and the next group commit. */
        conn_flush_output(c, false);
    }
}

/* ------------------------------------------------------------ streams */

static int stream_begin(struct conn *c, enum stream_kind kind)
{
    struct worker *wk = c->wk;
    c->stream = kind;
    if (append_head(c, 200, "text/event-stream", false, 0,
                    "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n") < 0) {
        return -1;
    }
    if (c->head_request) {
        c->keep_alive = false;
        c->state = CONN_DRAIN;
        return 1;
    }
    unsigned retry = jittered_retry(wk, wk->srv->cfg.retry_ms);
    char line[64];
    size_t n = sse_retry(line, sizeof line, retry);
    if (buf_append(&c->out, line, n) < 0 || buf_append_str(&c->out, ": ok\n\n") < 0) {
        return -1;
    }
    c->state = CONN_STREAM;
    c->stream_start_ms = loop_now_ms(wk->loop);
    wk->streams++;
    /* Pipelined bytes after a stream request can never be answered. */
    buf_free(&c->in);
    return 0;
}

void conn_stream_ping(struct conn *c)
{
    int rc = stream_begin(c, STREAM_PING);
    if (rc < 0) {
        conn_close(c);
    } else if (rc == 0) {
        conn_arm_timer(c, conn_cfg(c)->ping_ms);
    }
}

/* Queues one stats snapshot (closing a client that stopped reading); false
 * when the connection was closed. */
static bool stats_stream_send(struct conn *c)
{
    if (buf_pending(&c->out) > STATS_MAX_PENDING || stats_render_event(c->wk, &c->out) < 0) {
        conn_close(c);
        return false;
    }
    c->stream_events++;
    conn_arm_timer(c, STATS_STREAM_MS);
    return c->state != CONN_CLOSED;
}

void conn_stream_stats(struct conn *c)
{
    int rc = stream_begin(c, STREAM_STATS);
    if (rc < 0) {
        conn_close(c);
    } else if (rc == 0) {
        /* The first snapshot at once: a dashboard shows figures on load. */
        (void)stats_stream_send(c);
    }
}

void conn_stream_room(struct conn *c, struct room *room, const struct room_start *start,
                      const char *client, size_t client_len)
{
    int rc = stream_begin(c, STREAM_ROOM);
    if (rc != 0) {
        if (rc < 0) {
            conn_close(c);
        }
        return;
    }
    if (start->reset) {
        /* Tell the client that some messages are gone, with the oldest one
         * still available; its id makes a later reconnect resume from here. */
        char data[24], frame[96];
        int dn = snprintf(data, sizeof data, "%llu", (unsigned long long)start->oldest_id);
        size_t fn = sse_frame_encode(frame, start->oldest_id - 1, "reset", 5, data, (size_t)dn);
        if (buf_append(&c->out, frame, fn) < 0) {
            conn_close(c);
            return;
        }
    }
    room_subscribe(room, &c->sub, start, client, client_len);
    conn_arm_timer(c, (uint64_t)conn_cfg(c)->heartbeat_s * 1000);
}

/* The stream's next timer: the heartbeat, or the token's expiry if sooner. */
static uint64_t stream_timer_ms(const struct conn *c)
{
    uint64_t ms = (uint64_t)conn_cfg(c)->heartbeat_s * 1000;
    if (c->token_deadline_ms) {
        uint64_t now = loop_now_ms(c->wk->loop);
        uint64_t left = c->token_deadline_ms > now ? c->token_deadline_ms - now : 0;
        ms = left < ms ? left : ms;
    }
    return ms;
}

void conn_stream_expires(struct conn *c, int64_t exp)
{
    if (c->state != CONN_STREAM) {
        return;
    }
    /* The loop's clock is monotonic; exp is wall-clock seconds. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t left = exp * 1000 + (int64_t)conn_cfg(c)->jwt_leeway_s * 1000 - now_ms;
    c->token_deadline_ms = loop_now_ms(c->wk->loop) + (uint64_t)(left > 1 ? left : 1);
    conn_arm_timer(c, stream_timer_ms(c));
}

/* The stream's token expired: the page is told (an event without an id, so
 * its Last-Event-ID stays that of the last message it got), fetches a new
 * token and reconnects, losing nothing; the stream ends here. The event is
 * written without blocking, as at shutdown: a client whose socket is full
 * is closed without it and reconnects on its own. */
static void conn_token_expired(struct conn *c)
{
    static const char event[] = "event: token-expired\ndata: {\"error\":\"token expired\"}\n\n";
    /* Bytes must never land inside a frame: mid-frame, try again soon, but
     * not for ever. */
    if ((!room_sub_between_frames(&c->sub) || output_pending(c)) &&
        loop_now_ms(c->wk->loop) < c->token_deadline_ms + 5000) {
        conn_arm_timer(c, 50);
        return;
    }
    log_info("fd %d: token expired on room '%s'; closing the stream", c->watch.fd,
             c->sub.room ? room_name(c->sub.room) : "");
    if (room_sub_between_frames(&c->sub) && !output_pending(c)) {
        ssize_t w = send(c->watch.fd, event, sizeof event - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    conn_close(c);
}

/* ------------------------------------------------------------ writing */

enum write_result {
    WRITE_CLOSED = -1, /* the connection was closed */
    WRITE_BLOCKED = 0, /* the socket is full (or the output is held) */
    WRITE_DONE = 1,    /* everything owed was written */
    WRITE_BUDGET = 2,  /* the per-wakeup budget is spent; the socket takes more */
};

/* Writes what the connection owes, within the per-wakeup budget. */
static enum write_result conn_write(struct conn *c)
{
    struct worker *wk = c->wk;
    size_t budget = WRITE_BUDGET_BYTES;

    if (list_linked(&c->held_node)) {
        return WRITE_BLOCKED; /* held until the iteration's fan-out */
    }

    while (budget > 0) {
        struct iovec iov[MAX_IOV];
        size_t n = 0;
        size_t out_len = buf_pending(&c->out);
        if (out_len) {
            iov[n].iov_base = (void *)buf_head(&c->out);
            iov[n++].iov_len = out_len;
        }
        if (c->borrowed_len) {
            iov[n].iov_base = (void *)c->borrowed;
            iov[n++].iov_len = c->borrowed_len;
        }
        if (c->stream == STREAM_ROOM) {
            if (room_sub_lagged(&c->sub)) {
                log_info("fd %d: subscriber fell behind the ring of room '%s'; closing",
                         c->watch.fd, room_name(c->sub.room));
                wk->stats.lagged_dropped++;
                conn_close(c);
                return WRITE_CLOSED;
            }
            n += room_sub_iov(&c->sub, iov + n, MAX_IOV - n, budget);
        }
        if (n == 0) {
            return WRITE_DONE;
        }
        /* One buffer (the usual case: one new frame) goes out with write(2),
         * which skips copying and checking an iovec array in the kernel. */
        ssize_t w = n == 1 ? write(c->watch.fd, iov[0].iov_base, iov[0].iov_len)
                           : writev(c->watch.fd, iov, (int)n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return WRITE_BLOCKED;
            }
            conn_close(c); /* EPIPE, ECONNRESET: the client is gone */
            return WRITE_CLOSED;
        }
        size_t done = (size_t)w;
        wk->stats.bytes_sent += done;
        c->last_write_ms = loop_now_ms(wk->loop);
        budget = done >= budget ? 0 : budget - done;

        size_t k = done < out_len ? done : out_len;
        buf_consume(&c->out, k);
        done -= k;
        if (c->borrowed_len) {
            k = done < c->borrowed_len ? done : c->borrowed_len;
            c->borrowed += k;
            c->borrowed_len -= k;
            done -= k;
            if (c->borrowed_len == 0) {
                static_files_unref(c->borrowed_from);
                c->borrowed_from = NULL;
            }
        }
        c->stream_bytes += (size_t)w;
        if (done && c->stream == STREAM_ROOM) {
            /* Frames written, not cursor moves: the cursor also skips the
             * subscriber's own frames (sender exclusion). */
            size_t frames = room_sub_advance(&c->sub, done);
            wk->stats.deliveries += frames;
            c->stream_events += frames;
        }
    }
    return WRITE_BUDGET;
}

/* Writes, then decides what the connection does next. Pipelined requests
 * are answered here in bounded rounds: parse a batch, write it, repeat. */
static void conn_flush(struct conn *c)
{
    conn_flush_output(c, true);
}

/* conn_flush, optionally without parsing buffered requests: those then wait
 * for the next loop iteration (conn_update_events arms EPOLLOUT for them). */
static void conn_flush_output(struct conn *c, bool parse)
{
    enum write_result rc;
    for (int round = 0;; round++) {
        rc = conn_write(c);
        if (rc == WRITE_CLOSED) {
            return;
        }
        if (rc != WRITE_DONE || !parse || round == 8 || c->state != CONN_READ_HEAD ||
            buf_pending(&c->in) == 0) {
            break;
        }
        conn_parse_requests(c);
        if (c->state == CONN_CLOSED) {
            return;
        }
    }
    bool drained = rc == WRITE_DONE;
    /* Out of budget but writable: come back on the next iteration. */
    c->write_more = rc == WRITE_BUDGET;
    if (drained) {
        c->borrowed = NULL;
        if (c->out.cap > 4096 || c->state == CONN_STREAM) {
            /* An idle stream keeps no output buffer at all (memory per idle
             * subscriber is what a big room costs), and no connection keeps
             * a large one. */
            buf_free(&c->out);
        }
    }
    switch (c->state) {
    case CONN_STREAM:
        if (c->stream == STREAM_ROOM) {
            /* Only a socket that refused bytes makes a subscriber waiting
             * (and lets its frames be evicted); one out of budget stays live. */
            room_sub_set_waiting(&c->sub, rc == WRITE_BLOCKED);
        }
        break;
    case CONN_DRAIN:
        if (drained) {
            /* Last response sent: half-close, then discard what the client
             * still sends until it closes too (or the linger ends). */
            shutdown(c->watch.fd, SHUT_WR);
            c->state = CONN_LINGER;
            c->linger_bytes = 0;
            conn_arm_timer(c, LINGER_MS);
        }
        break;
    case CONN_READ_HEAD:
    case CONN_READ_BODY:
        if (drained && c->peer_closed && buf_pending(&c->in) == 0) {
            conn_close(c);
            return;
        }
        break;
    case CONN_LINGER:
    case CONN_CLOSED:
        break;
    }
    if (c->state != CONN_CLOSED) {
        conn_update_events(c);
    }
}

void conn_hub_ready(struct subscriber *sub, void *arg)
{
    struct conn *c = container_of(sub, struct conn, sub);
    (void)arg;
    conn_flush(c);
}

/* ------------------------------------------------------------ requests */

/* The request head is at the front of `in` and its body (if any) follows
 * it; dispatches it and drops it from `in`. */
static void conn_dispatch(struct conn *c)
{
    struct worker *wk = c->wk;
    struct http_request *req = &wk->req;
    int status;
    /* Parse the head again: while the body arrived, `in` may have moved. */
    if (http_parse_head(buf_head(&c->in), c->head_len, 0, req, &status) != (int)c->head_len) {
        conn_fail(c, 500, "internal error");
        return;
    }
    wk->stats.requests++;
    c->head_request = req->method == HTTP_HEAD;
    c->keep_alive = req->keep_alive;
    c->http10 = req->minor_version == 0;
    c->cors_origin = response_cors_origin(conn_cfg(c), req);
    const char *body = buf_head(&c->in) + c->head_len;
    size_t consumed = c->head_len + c->body_len;
    size_t out_before = buf_pending(&c->out);

    api_handle(wk, c, req, body, c->body_len);

    if (c->state == CONN_CLOSED) {
        return;
    }
    if (c->state != CONN_STREAM && log_get_level() >= LOG_INFO) {
        char target[201];
        http_redact_target(req->target, target, sizeof target);
        log_info("%.*s %s %d %zu bytes %llu ms", (int)req->method_str.len, req->method_str.ptr,
                 target, c->status, buf_pending(&c->out) - out_before + c->borrowed_len,
                 (unsigned long long)(loop_now_ms(wk->loop) - c->request_start_ms));
    }
    if (c->state == CONN_READ_HEAD || c->state == CONN_READ_BODY) {
        buf_consume(&c->in, consumed);
        if (!c->keep_alive) {
            c->state = CONN_DRAIN;
            conn_arm_timer(c, (uint64_t)wk->srv->cfg.header_timeout_s * 1000);
        } else {
            conn_wait_request(c);
            if (buf_pending(&c->in) > 0) {
                conn_request_started(c);
            }
        }
    }
}

enum body_start { BODY_NONE, BODY_PENDING, BODY_FAILED };

/* Head parsed: decides how the body is framed. */
static enum body_start conn_begin_body(struct conn *c, const struct http_request *req)
{
    struct worker *wk = c->wk;
    c->chunked = req->chunked;
    c->content_length = req->content_length;
    c->body_len = 0;
    memset(&c->chunk_dec, 0, sizeof c->chunk_dec);

    if (!req->chunked && !req->has_content_length) {
        if (req->method == HTTP_POST || req->method == HTTP_PUT || req->method == HTTP_PATCH) {
            conn_fail(c, 411, "a body needs Content-Length or chunked Transfer-Encoding");
            return BODY_FAILED;
        }
        return BODY_NONE;
    }
    if (!req->chunked && req->content_length == 0) {
        return BODY_NONE;
    }
    if (!req->chunked && req->content_length > wk->srv->cfg.max_body) {
        /* Refused from the head alone: the body is never read. */
        conn_fail(c, 413, "request body too large");
        return BODY_FAILED;
    }
    if (req->expect_continue && req->minor_version == 1) {
        if (buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n") < 0) {
            conn_close(c);
            return BODY_FAILED;
        }
    }
    c->state = CONN_READ_BODY;
    return BODY_PENDING;
}

/* Advances the body reader over what is in `in`. Returns true when the body
 * is complete. */
static bool conn_read_body(struct conn *c)
{
    size_t have = buf_pending(&c->in) - c->head_len;
    if (!c->chunked) {
        if (have < c->content_length) {
            return false;
        }
        c->body_len = (size_t)c->content_length;
        return true;
    }
    /* Chunked: decoded bytes are kept right after the head, raw bytes not yet
     * decoded follow them. */
    char *raw = (char *)buf_head(&c->in) + c->head_len + c->body_len;
    size_t raw_len = have - c->body_len;
    size_t decoded = raw_len;
    int status;
    int r = http_chunked_decode(&c->chunk_dec, raw, &decoded, conn_cfg(c)->max_body, &status);
    if (r == HTTP_PARSE_ERROR) {
        conn_fail(c, status, status == 413 ? "request body too large" : "malformed chunked body");
        return false;
    }
    size_t rest = r >= 0 ? (size_t)r : 0;
    /* Move bytes after the body (a pipelined request) next to the decoded
     * body, so `in` stays contiguous. */
    if (rest) {
        memmove(raw + decoded, raw + raw_len - rest, rest);
    }
    c->body_len += decoded;
    c->in.len = c->in.off + c->head_len + c->body_len + rest;
    return r >= 0;
}

/* Parses and dispatches buffered requests until the input is exhausted,
 * a body is incomplete, output piles up, or the connection changes state. */
static void conn_parse_requests(struct conn *c)
{
    struct worker *wk = c->wk;
    while (c->state == CONN_READ_HEAD || c->state == CONN_READ_BODY) {
        if (buf_pending(&c->out) >= OUT_HIGH_WATER || c->borrowed_len > 0) {
            break; /* answers first; the rest waits in `in` */
        }
        if (c->state == CONN_READ_HEAD) {
            size_t len = buf_pending(&c->in);
            if (len == 0) {
                break;
            }
            conn_request_started(c);
            int status = 0;
            int r = http_parse_head(buf_head(&c->in), len, c->last_len, &wk->req, &status);
            if (r == HTTP_PARSE_AGAIN) {
                c->last_len = len;
                break;
            }
            if (r == HTTP_PARSE_ERROR) {
                conn_fail(c, status,
                          status == 414   ? "request line too long"
                          : status == 431 ? "request header fields too large"
                          : status == 501 ? "transfer coding not implemented"
                          : status == 505 ? "HTTP version not supported"
                                          : "malformed request");
                break;
            }
            c->head_len = (size_t)r;
            c->last_len = 0;
            if (wk->req.method == HTTP_METHOD_UNKNOWN) {
                c->head_request = false;
                c->keep_alive = false;
                conn_fail(c, 501, "method not implemented");
                break;
            }
            enum body_start bs = conn_begin_body(c, &wk->req);
            if (bs == BODY_NONE) {
                conn_dispatch(c);
            }
        } else if (conn_read_body(c)) {
            conn_dispatch(c);
        } else {
            break;
        }
    }
}

/* ------------------------------------------------------------ reading */

static void conn_on_readable(struct conn *c)
{
    char scratch[READ_CHUNK];

    if (c->state == CONN_STREAM || c->state == CONN_LINGER) {
        /* Streams take no more input, and a lingering connection only waits
         * for the client to close: read and discard. */
        for (int i = 0; i < 4; i++) {
            ssize_t n = read(c->watch.fd, scratch, sizeof scratch);
            if (n > 0) {
                if (c->state == CONN_LINGER && (c->linger_bytes += (size_t)n) > LINGER_BYTES) {
                    conn_close(c);
                    return;
                }
                continue;
            }
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return;
            }
            conn_close(c);
            return;
        }
        return;
    }
    if (c->state != CONN_READ_HEAD && c->state != CONN_READ_BODY) {
        return;
    }
    size_t limit = HTTP_MAX_REQUEST_LINE + HTTP_MAX_HEADER_BYTES + 4096 + conn_cfg(c)->max_body;
    for (int i = 0; i < 4; i++) {
        if (buf_pending(&c->in) >= limit) {
            break; /* a full request is buffered; it is processed below */
        }
        if (buf_reserve(&c->in, READ_CHUNK) < 0) {
            conn_close(c);
            return;
        }
        size_t room = c->in.cap - c->in.len;
        ssize_t n = read(c->watch.fd, c->in.data + c->in.len, room);
        if (n > 0) {
            c->in.len += (size_t)n;
            if ((size_t)n < room) {
                break;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n < 0) {
            conn_close(c);
            return;
        }
        /* EOF: answer what was received, then close. */
        c->peer_closed = true;
        if (buf_pending(&c->in) == 0 && !output_pending(c)) {
            conn_close(c);
            return;
        }
        break;
    }
    conn_parse_requests(c);
    if (c->state == CONN_CLOSED) {
        return;
    }
    if (c->peer_closed && !output_pending(c) &&
        (c->state == CONN_READ_HEAD || c->state == CONN_READ_BODY)) {
        /* The client closed with an incomplete request: nobody to answer. */
        conn_close(c);
        return;
    }
    conn_flush(c);
}

static void conn_on_io(struct loop *loop, struct loop_watch *w, uint32_t events)
{
    struct conn *c = container_of(w, struct conn, watch);
    (void)loop;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        conn_on_readable(c);
    }
    if (c->state != CONN_CLOSED && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        conn_flush(c);
    }
}

/* ------------------------------------------------------------ timers */

static void conn_on_timer(struct loop *loop, struct loop_timer *t)
{
    struct conn *c = container_of(t, struct conn, timer);
    struct worker *wk = c->wk;
    (void)loop;

    switch (c->state) {
    case CONN_READ_HEAD:
    case CONN_READ_BODY:
        if (!c->request_started) {
            conn_close(c); /* idle keep-alive connection */
        } else if (output_pending(c)) {
            conn_close(c); /* cannot even take our answers */
        } else {
            conn_fail(c, 408, "request timeout");
            conn_flush(c);
        }
        break;
    case CONN_STREAM:
        if (c->stream == STREAM_PING) {
            if (buf_pending(&c->out) > PING_MAX_PENDING ||
                buf_append_str(&c->out, "data: pong\n\n") < 0) {
                conn_close(c);
                return;
            }
            conn_arm_timer(c, wk->srv->cfg.ping_ms);
            conn_flush(c);
        } else if (c->stream == STREAM_STATS) {
            if (stats_stream_send(c)) {
                conn_flush(c);
            }
        } else if (c->token_deadline_ms && loop_now_ms(loop) >= c->token_deadline_ms) {
            conn_token_expired(c);
        } else {
            uint64_t hb = (uint64_t)wk->srv->cfg.heartbeat_s * 1000;
            /* Only an idle, caught-up stream gets a comment: one that is
             * being written to needs none, and bytes must never be inserted
             * in the middle of a frame. */
            if (room_sub_between_frames(&c->sub) && !output_pending(c) &&
                loop_now_ms(loop) - c->last_write_ms + 50 >= hb) {
                if (buf_append_str(&c->out, ":\n") < 0) {
                    conn_close(c);
                    return;
                }
                conn_flush(c);
            }
            if (c->state != CONN_CLOSED) {
                conn_arm_timer(c, stream_timer_ms(c));
            }
        }
        break;
    case CONN_DRAIN:
    case CONN_LINGER:
        conn_close(c);
        break;
    case CONN_CLOSED:
        break;
    }
}
