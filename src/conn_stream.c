#include "conn_internal.h"

#include "log.h"
#include "sse.h"
#include "stats.h"

#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

/* A /ping client that does not read is closed once this much is pending. */
#define PING_MAX_PENDING 4096
/* Likewise a stats stream (a few seconds' worth of snapshots). */
#define STATS_MAX_PENDING ((size_t)64 * 1024)

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

static int stream_begin(struct conn *c, enum stream_kind kind)
{
    struct worker *wk = c->wk;
    c->stream = kind;
    if (conn_append_head(c, 200, "text/event-stream", false, 0,
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
    counter_add(&wk->streams, 1);
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

bool conn_stream_join(struct conn *c, struct room *room, const struct room_start *start,
                      const char *client, size_t client_len)
{
    if (start->reset) {
        /* Tell the client that some messages are gone, with the oldest one
         * still available; its id makes a later reconnect resume from here. */
        char data[24], frame[96];
        int dn = snprintf(data, sizeof data, "%llu", (unsigned long long)start->oldest_id);
        size_t fn = sse_frame_encode(frame, start->oldest_id - 1, "reset", 5, data, (size_t)dn);
        if (buf_append(&c->out, frame, fn) < 0) {
            conn_close(c);
            return false;
        }
    }
    room_subscribe(room, &c->sub, start, client, client_len);
    return true;
}

int conn_stream_park(struct conn *c)
{
    int rc = stream_begin(c, STREAM_ROOM);
    if (rc != 0) {
        if (rc < 0) {
            conn_close(c);
        }
        return -1;
    }
    conn_arm_timer(c, (uint64_t)conn_cfg(c)->heartbeat_s * 1000);
    return c->state == CONN_STREAM ? 0 : -1;
}

void conn_stream_room(struct conn *c, struct room *room, const struct room_start *start,
                      const char *client, size_t client_len)
{
    if (conn_stream_park(c) == 0) {
        (void)conn_stream_join(c, room, start, client, client_len);
    }
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
    if ((!room_sub_between_frames(&c->sub) || conn_output_pending(c)) &&
        loop_now_ms(c->wk->loop) < c->token_deadline_ms + 5000) {
        conn_arm_timer(c, 50);
        return;
    }
    log_info("fd %d: token expired on room '%s'; closing the stream", c->watch.fd,
             c->sub.room ? room_name(c->sub.room) : "");
    if (room_sub_between_frames(&c->sub) && !conn_output_pending(c)) {
        ssize_t w = send(c->watch.fd, event, sizeof event - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    conn_close(c);
}

void conn_stream_on_timer(struct conn *c)
{
    struct worker *wk = c->wk;
    struct loop *loop = wk->loop;
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
        if (room_sub_between_frames(&c->sub) && !conn_output_pending(c) &&
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
}
