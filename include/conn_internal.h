/*
 * conn_internal: the connection struct and the helpers its three source
 * files share -- conn.c (life cycle, responses, the hold policy, writing,
 * reading, timers), conn_request.c (request framing and dispatch) and
 * conn_stream.c (event streams, heartbeats, token expiry, the shutdown
 * retry). Nothing outside those files includes it: other modules see only
 * conn.h.
 */
#ifndef SSE_CONN_INTERNAL_H
#define SSE_CONN_INTERNAL_H

#include "buf.h"
#include "config.h"
#include "conn.h"
#include "http.h"
#include "list.h"
#include "loop.h"
#include "room.h"
#include "server.h"
#include "worker.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Stop reading requests while this much output is pending: a client that
 * pipelines without reading answers cannot make us buffer without bound. */
#define OUT_HIGH_WATER ((size_t)64 * 1024)

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
    /* What it waits for in a cluster (cluster.c): its publishes' replies,
     * oldest first, or (a parked subscriber) its room's first read. */
    struct cluster_wait *wait;

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
    bool chunked;         /* the request body is chunked */
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

/* ---- conn.c ---- */

/* True while answers (buffered or a borrowed file body) are unsent. */
bool conn_output_pending(const struct conn *c);
/* (Re)arms the connection's one timer; closes it when that fails. */
void conn_arm_timer(struct conn *c, uint64_t ms);
/* Appends the status line and the headers every response carries (see
 * response.h); counts the answer. 0, or -1 on ENOMEM. */
int conn_append_head(struct conn *c, int status, const char *content_type, bool has_length,
                     size_t length, const char *extra_headers);
/* Writes, then decides what the connection does next; with `parse`,
 * pipelined requests are answered in bounded rounds. conn_flush parses. */
void conn_flush_output(struct conn *c, bool parse);

/* ---- conn_request.c ---- */

/* Parses and dispatches buffered requests until the input is exhausted, a
 * body is incomplete, output piles up, or the connection changes state. */
void conn_parse_requests(struct conn *c);
/* Refuses a request the parser or the body reader rejected, then closes. */
void conn_fail(struct conn *c, int status, const char *msg);
/* The first byte of a request arrived: its deadline starts. */
void conn_request_started(struct conn *c);

/* ---- conn_stream.c ---- */

/* The timer of a stream fired: a ping, a stats snapshot, a heartbeat or
 * the token's expiry. */
void conn_stream_on_timer(struct conn *c);

#endif
