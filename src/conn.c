#include "conn.h"
#include "conn_internal.h"

#include "cluster.h"

#include "buf.h"
#include "http.h"
#include "log.h"
#include "response.h"
#include "room.h"
#include "server.h"
#include "static_files.h"
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
#include <unistd.h>

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
        counter_sub(&wk->streams, 1);
        log_info("stream closed: %s%s, %.3f s, %llu bytes, %llu events",
                 c->stream == STREAM_PING    ? "/ping"
                 : c->stream == STREAM_STATS ? "/stats?stream=1"
                                             : "/messages room=",
                 c->sub.room ? room_name(c->sub.room) : "",
                 (double)(loop_now_ms(wk->loop) - c->stream_start_ms) / 1000.0,
                 (unsigned long long)c->stream_bytes, (unsigned long long)c->stream_events);
    }
    c->state = CONN_CLOSED;
    if (c->wait) {
        cluster_cancel(c);
    }
    room_unsubscribe(&c->sub);
    if (list_linked(&c->held_node)) {
        list_remove(&c->held_node);
    }
    loop_timer_stop(wk->loop, &c->timer);
    int fd = c->watch.fd;
    loop_watch_del(wk->loop, &c->watch);
    close(fd);
    list_remove(&c->node);
    counter_sub(&wk->nconns, 1);
    counter_add(&wk->stats.closed, 1);
    atomic_fetch_sub(&wk->srv->connections, 1);
    loop_task_queue(wk->loop, &c->free_task, conn_free_task);
}

bool conn_output_pending(const struct conn *c)
{
    size_t slot;
    if (c->wait && cluster_output_limit(c, &slot)) {
        return true;
    }
    return buf_pending(&c->out) > 0 || c->borrowed_len > 0;
}

/* Computes the epoll mask from the state; the one place that decides it. */
static void conn_update_events(struct conn *c)
{
    uint32_t ev = 0;
    size_t slot;
    bool awaiting = c->wait && cluster_output_limit(c, &slot);
    switch (c->state) {
    case CONN_READ_HEAD:
    case CONN_READ_BODY:
        /* While publishes await the store, what is buffered waits too. */
        if (!c->peer_closed && buf_pending(&c->out) < OUT_HIGH_WATER && c->borrowed_len == 0 &&
            !(awaiting && buf_pending(&c->in) > 0)) {
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
    } else if (awaiting && slot == 0) {
        /* Nothing may be written before the store's answer, which flushes. */
    } else if (conn_output_pending(c) || c->write_more ||
               (c->stream == STREAM_ROOM && c->sub.waiting)) {
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

void conn_arm_timer(struct conn *c, uint64_t ms)
{
    if (loop_timer_start(c->wk->loop, &c->timer, ms, conn_on_timer) < 0) {
        conn_close(c);
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
        atomic_fetch_sub(&wk->srv->connections, 1);
        counter_add(&wk->stats.closed, 1);
        return -1;
    }
    c->wk = wk;
    c->watch.fd = -1;
    c->peer_local = peer_is_loopback(fd);
    c->cors_origin = config_cors_origin(&wk->srv->cfg, NULL, 0);
    list_init(&c->sub.node);
    list_init(&c->held_node);
    list_push_back(&wk->conns, &c->node);
    counter_add(&wk->nconns, 1);
    counter_add(&wk->stats.accepted, 1);
    if (loop_watch_add(wk->loop, &c->watch, fd, EPOLLIN | EPOLLRDHUP, conn_on_io) < 0) {
        list_remove(&c->node);
        counter_sub(&wk->nconns, 1);
        counter_add(&wk->stats.closed, 1);
        atomic_fetch_sub(&wk->srv->connections, 1);
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
        counter_add(&c->wk->stats.responses_by_class[cls], 1);
    }
}

void conn_answer_form(const struct conn *c, struct conn_answer_form *f)
{
    f->keep_alive = c->keep_alive;
    f->http10 = c->http10;
    f->cors_origin = c->cors_origin;
    f->request_start_ms = c->request_start_ms;
}

/* Appends to b the status line and the headers of an answer to a request
 * read as f (an event stream is close-delimited); counts the answer. */
static int append_head_as(struct conn *c, struct buf *b, const struct conn_answer_form *f,
                          int status, const char *content_type, bool has_length, size_t length,
                          const char *extra_headers)
{
    const struct response_head h = {
        .status = status,
        .date = worker_date(c->wk),
        .cors_origin = f->cors_origin,
        .vary_origin = conn_cfg(c)->cors_origins_len != 0,
        .content_type = content_type,
        .has_length = has_length,
        .length = length,
        .extra_headers = extra_headers,
        .framing = c->stream != STREAM_NONE ? RESPONSE_STREAM
                   : !f->keep_alive         ? RESPONSE_CLOSE
                   : f->http10              ? RESPONSE_KEEP_ALIVE_10
                                            : RESPONSE_KEEP_ALIVE,
    };
    count_response(c, status);
    return response_head_append(b, &h);
}

/* Appends the status line and the headers every response carries. */
int conn_append_head(struct conn *c, int status, const char *content_type, bool has_length,
                     size_t length, const char *extra_headers)
{
    struct conn_answer_form f;
    conn_answer_form(c, &f);
    c->status = status;
    return append_head_as(c, &c->out, &f, status, content_type, has_length, length, extra_headers);
}

void conn_reply(struct conn *c, int status, const char *content_type, const char *body,
                size_t body_len, const char *extra_headers)
{
    bool no_body = status == 204 || status == 304;
    int rc = conn_append_head(c, status, no_body ? NULL : content_type, !no_body, body_len,
                              extra_headers);
    if (rc == 0 && !c->head_request && !no_body) {
        rc = buf_append(&c->out, body, body_len);
    }
    if (rc < 0) {
        conn_close(c);
    }
}

void conn_reply_file(struct conn *c, struct static_files *table, const struct static_file *f,
                     bool not_modified)
{
    char extra[96];
    snprintf(extra, sizeof extra, "ETag: %s\r\nCache-Control: no-cache\r\n", f->etag);
    if (not_modified) {
        conn_reply(c, 304, NULL, NULL, 0, extra);
        return;
    }
    if (conn_append_head(c, 200, f->type, true, f->len, extra) < 0) {
        conn_close(c);
        return;
    }
    if (!c->head_request && f->len > 0) {
        c->borrowed = f->data;
        c->borrowed_len = f->len;
        c->borrowed_from = static_files_ref(table);
    }
}

void conn_reply_error(struct conn *c, int status, const char *msg)
{
    char body[256];
    size_t n = response_error_body(body, sizeof body, status, msg);
    conn_reply(c, status, "application/json", body, n, NULL);
}

/* The body of a publish's 202 (out holds at least 64 bytes). */
static size_t accepted_body(char *out, size_t cap, uint64_t id, size_t clients)
{
    return (size_t)snprintf(out, cap, "{\"id\":%llu,\"clients\":%zu}\n", (unsigned long long)id,
                            clients);
}

static void reply_accepted(struct conn *c, uint64_t id, size_t clients)
{
    char answer[96];
    size_t n = accepted_body(answer, sizeof answer, id, clients);
    conn_reply(c, 202, "application/json", answer, n, NULL);
}

struct cluster_wait *conn_cluster_wait(const struct conn *c)
{
    return c->wait;
}

void conn_set_cluster_wait(struct conn *c, struct cluster_wait *w)
{
    c->wait = w;
}

size_t conn_output_len(const struct conn *c)
{
    return buf_pending(&c->out);
}

/* Builds the answer in a buffer of its own, as its request asked. */
static int build_publish_answer(struct conn *c, const struct conn_answer_form *f, struct buf *b,
                                uint64_t id, size_t clients, const char *msg)
{
    char body[256];
    size_t n = id ? accepted_body(body, sizeof body, id, clients)
                  : response_error_body(body, sizeof body, 503, msg);
    int status = id ? 202 : 503;
    if (append_head_as(c, b, f, status, "application/json", true, n,
                       id ? NULL : "Retry-After: 1\r\n") < 0 ||
        buf_append(b, body, n) < 0) {
        return -1;
    }
    log_info("POST /message %d (stored in Redis) %llu ms", status,
             (unsigned long long)(loop_now_ms(c->wk->loop) - f->request_start_ms));
    return 0;
}

size_t conn_publish_answered(struct conn *c, const struct conn_answer_form *f, size_t pos,
                             uint64_t id, size_t clients, const char *msg)
{
    struct buf b = {0};
    size_t len = 0;
    size_t pending = buf_pending(&c->out);
    if (pos > pending || build_publish_answer(c, f, &b, id, clients, msg) < 0 ||
        buf_reserve(&c->out, buf_pending(&b)) < 0) {
        buf_free(&b);
        conn_close(c);
        return 0;
    }
    len = buf_pending(&b);
    /* Into its place: after what was answered before it, before what was
     * answered after it. */
    char *at = c->out.data + c->out.off + pos;
    memmove(at + len, at, pending - pos);
    memcpy(at, buf_head(&b), len);
    c->out.len += len;
    buf_free(&b);
    return len;
}

void conn_reply_publish(struct conn *c, uint64_t id, size_t clients)
{
    if (!list_linked(&c->held_node)) {
        /* Nothing is written while held, so this offset stays valid. */
        c->held_from = (uint32_t)buf_pending(&c->out);
        c->held_first_id = id;
        list_push_back(&c->wk->held, &c->held_node);
        server_hold_publisher(c->wk);
    }
    c->held_last_id = id;
    reply_accepted(c, id, clients);
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

void conn_release_held(struct list *held, conn_failed_fn *failed, void *arg)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, held)
    {
        struct conn *c = container_of(pos, struct conn, held_node);
        list_remove(&c->held_node);
        enum conn_failed f =
            failed ? failed(arg, c->held_first_id, c->held_last_id) : CONN_FAILED_NONE;
        if (f != CONN_FAILED_NONE) {
            log_warn("fd %d: the journal sync failed; answering 503", c->watch.fd);
            if (f == CONN_FAILED_FIRST) {
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

/* ------------------------------------------------------------ writing */

enum write_result {
    WRITE_CLOSED = -1, /* the connection was closed */
    WRITE_BLOCKED = 0, /* the socket is full (or the output is held) */
    WRITE_DONE = 1,    /* everything owed was written */
    WRITE_BUDGET = 2,  /* the per-wakeup budget is spent; the socket takes more */
};

/* Takes `done` written bytes off what was offered, in its order: the
 * output buffer (out_len bytes of it), the borrowed file body, the frames. */
static void conn_written(struct conn *c, size_t done, size_t out_len)
{
    struct worker *wk = c->wk;
    counter_add(&wk->stats.bytes_sent, done);
    c->last_write_ms = loop_now_ms(wk->loop);
    c->stream_bytes += done;
    size_t k = done < out_len ? done : out_len;
    buf_consume(&c->out, k);
    if (c->wait) {
        cluster_output_consumed(c, k);
    }
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
    if (done && c->stream == STREAM_ROOM) {
        /* Frames written, not cursor moves: the cursor also skips the
         * subscriber's own frames (sender exclusion). */
        size_t frames = room_sub_advance(&c->sub, done);
        counter_add(&wk->stats.deliveries, frames);
        c->stream_events += frames;
    }
}

/* A subscriber owed frames that are gone: it fell behind, or its room was
 * reset. Closed; its reconnect with Last-Event-ID is told what is gone. */
static void conn_close_lagged(struct conn *c)
{
    if (room_sub_was_reset(&c->sub)) {
        log_info("fd %d: room '%s' was reset; closing its stream", c->watch.fd,
                 room_name(c->sub.room));
    } else {
        log_info("fd %d: subscriber fell behind the ring of room '%s'; closing", c->watch.fd,
                 room_name(c->sub.room));
        counter_add(&c->wk->stats.lagged_dropped, 1);
    }
    conn_close(c);
}

/* Writes what the connection owes, within the per-wakeup budget. */
static enum write_result conn_write(struct conn *c)
{
    size_t budget = WRITE_BUDGET_BYTES;

    if (list_linked(&c->held_node)) {
        return WRITE_BLOCKED; /* held until the iteration's fan-out */
    }

    while (budget > 0) {
        struct iovec iov[MAX_IOV];
        size_t n = 0;
        size_t out_len = buf_pending(&c->out), slot;
        if (c->wait && cluster_output_limit(c, &slot)) {
            /* Answers pipelined after a publish that awaits the store go
             * out only after its answer (a publisher pipelines nothing
             * else meanwhile: no file body, no stream). */
            if (slot == 0) {
                return WRITE_BLOCKED;
            }
            out_len = out_len < slot ? out_len : slot;
        }
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
                conn_close_lagged(c);
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
        budget = done >= budget ? 0 : budget - done;
        conn_written(c, done, out_len);
    }
    return WRITE_BUDGET;
}

/* Writes, then decides what the connection does next. Pipelined requests
 * are answered here in bounded rounds: parse a batch, write it, repeat. */
void conn_flush(struct conn *c)
{
    conn_flush_output(c, true);
}

/* conn_flush, optionally without parsing buffered requests: those then wait
 * for the next loop iteration (conn_update_events arms EPOLLOUT for them). */
void conn_flush_output(struct conn *c, bool parse)
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

/* ------------------------------------------------------------ reading */

/* A stream takes no more input, and a lingering connection only waits for
 * the client to close: read and discard (bounded per wakeup). */
static void conn_discard_input(struct conn *c)
{
    char scratch[READ_CHUNK];
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
}

/* Reads request bytes into `in` (at most four reads, never past one full
 * request's worth). Returns -1 when the connection was closed. */
static int conn_read_input(struct conn *c)
{
    size_t limit = HTTP_MAX_REQUEST_LINE + HTTP_MAX_HEADER_BYTES + 4096 + conn_cfg(c)->max_body;
    for (int i = 0; i < 4; i++) {
        if (buf_pending(&c->in) >= limit) {
            break; /* a full request is buffered; it is processed next */
        }
        if (buf_reserve(&c->in, READ_CHUNK) < 0) {
            conn_close(c);
            return -1;
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
            return -1;
        }
        /* EOF: answer what was received, then close. */
        c->peer_closed = true;
        if (buf_pending(&c->in) == 0 && !conn_output_pending(c)) {
            conn_close(c);
            return -1;
        }
        break;
    }
    return 0;
}

static void conn_on_readable(struct conn *c)
{
    if (c->state == CONN_STREAM || c->state == CONN_LINGER) {
        conn_discard_input(c);
        return;
    }
    if (c->state != CONN_READ_HEAD && c->state != CONN_READ_BODY) {
        return;
    }
    if (conn_read_input(c) < 0) {
        return;
    }
    conn_parse_requests(c);
    if (c->state == CONN_CLOSED) {
        return;
    }
    if (c->peer_closed && !conn_output_pending(c) &&
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
    (void)loop;

    switch (c->state) {
    case CONN_READ_HEAD:
    case CONN_READ_BODY:
        if (!c->request_started) {
            conn_close(c); /* idle keep-alive connection */
        } else if (conn_output_pending(c)) {
            conn_close(c); /* cannot even take our answers */
        } else {
            conn_fail(c, 408, "request timeout");
            conn_flush(c);
        }
        break;
    case CONN_STREAM:
        conn_stream_on_timer(c);
        break;
    case CONN_DRAIN:
    case CONN_LINGER:
        conn_close(c);
        break;
    case CONN_CLOSED:
        break;
    }
}
