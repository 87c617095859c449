#include "conn_internal.h"

#include "api.h"
#include "cluster.h"
#include "log.h"
#include "response.h"

#include <string.h>

/* Refuses a request the parser or the body reader rejected. After such an
 * error the rest of the input cannot be trusted to be framed as we think, so
 * nothing after it is read: the answer is sent with "Connection: close" and
 * the connection ends. Logged once, here. */
void conn_fail(struct conn *c, int status, const char *msg)
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

void conn_request_started(struct conn *c)
{
    if (!c->request_started) {
        c->request_started = true;
        c->request_start_ms = loop_now_ms(c->wk->loop);
        conn_arm_timer(c, (uint64_t)conn_cfg(c)->header_timeout_s * 1000);
    }
}

/* The request was answered (its bytes consumed): the next one is awaited,
 * or the connection drains when it was not keep-alive. */
static void conn_request_finished(struct conn *c)
{
    if (!c->keep_alive) {
        c->state = CONN_DRAIN;
        conn_arm_timer(c, (uint64_t)conn_cfg(c)->header_timeout_s * 1000);
    } else {
        conn_wait_request(c);
        if (buf_pending(&c->in) > 0) {
            conn_request_started(c);
        }
    }
}

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
    counter_add(&wk->stats.requests, 1);
    c->head_request = req->method == HTTP_HEAD;
    c->keep_alive = req->keep_alive;
    c->http10 = req->minor_version == 0;
    c->cors_origin = response_cors_origin(conn_cfg(c), req);
    const char *body = buf_head(&c->in) + c->head_len;
    size_t consumed = c->head_len + c->body_len;
    size_t out_before = buf_pending(&c->out);
    c->status = 0;

    api_handle(wk, c, req, body, c->body_len);

    if (c->state == CONN_CLOSED) {
        return;
    }
    /* A publish awaiting the store is logged when it is answered. */
    if (c->state != CONN_STREAM && c->status != 0 && log_get_level() >= LOG_INFO) {
        char target[201];
        http_redact_target(req->target, target, sizeof target);
        log_info("%.*s %s %d %zu bytes %llu ms", (int)req->method_str.len, req->method_str.ptr,
                 target, c->status, buf_pending(&c->out) - out_before + c->borrowed_len,
                 (unsigned long long)(loop_now_ms(wk->loop) - c->request_start_ms));
    }
    if (c->state == CONN_READ_HEAD || c->state == CONN_READ_BODY) {
        buf_consume(&c->in, consumed);
        conn_request_finished(c);
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
static void parse_requests(struct conn *c);

/* With --fsync batch, the publishes pipelined in what was read together
 * must share one sync, as they share one answer: under the hub lock no
 * other loop's group commit can fall between them. */
void conn_parse_requests(struct conn *c)
{
    struct server *srv = c->wk->srv;
    bool batch = srv->journal && srv->cfg.fsync_mode == FSYNC_BATCH;
    if (batch) {
        hub_lock(srv->hub);
    }
    parse_requests(c);
    if (batch) {
        hub_unlock(srv->hub);
    }
}

static void parse_requests(struct conn *c)
{
    struct worker *wk = c->wk;
    while (c->state == CONN_READ_HEAD || c->state == CONN_READ_BODY) {
        if (buf_pending(&c->out) >= OUT_HIGH_WATER || c->borrowed_len > 0 ||
            (c->wait && cluster_publishes_awaited(c) >= CLUSTER_PIPELINE_MAX)) {
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
            if (c->wait && cluster_publishes_awaited(c) > 0 && !api_publishes(&wk->req)) {
                /* Answered in order: this one waits for the store's
                 * answers to the publishes before it. */
                c->last_len = 0;
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
