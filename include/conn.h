/*
 * conn: one client connection's life.
 *
 *   READ_HEAD -> READ_BODY -> (response queued) -> READ_HEAD ...  keep-alive
 *        \-> STREAM (event stream until the client goes)
 *   any error -> DRAIN (last response) -> LINGER -> closed
 *
 * A connection owns its fd, its buffers and its place in a room. It is
 * freed from a loop task after the current batch of events, so no event
 * still queued in that batch can reach freed memory. The code is in conn.c,
 * conn_request.c and conn_stream.c; conn_internal.h is what they share.
 */
#ifndef SSE_CONN_H
#define SSE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;
struct conn;
struct list;
struct static_files;
struct room;
struct room_start;
struct static_file;
struct subscriber;

/* Takes ownership of an accepted fd. 0, or -1 (fd closed) on ENOMEM. */
int conn_accept(struct worker *wk, int fd);

/* Closes at once: unwatches, leaves the room, stops timers, closes the fd;
 * the memory is freed after the current batch of events. */
void conn_close(struct conn *c);

/* At shutdown: tells every event stream to reconnect later (a final
 * `retry:` with jitter, written without blocking, best effort), then closes
 * every connection. */
void conn_close_all(struct worker *wk);

/* The hub's `ready` callback: a subscriber owes bytes, write them. */
void conn_hub_ready(struct subscriber *sub, void *arg);

/* ---- for request handlers (api.c), while a request is being dispatched ---- */

/*
 * Queues a complete response. The body is copied; for a HEAD request only
 * the headers are sent. extra_headers, when not NULL, is zero or more
 * complete "Name: value\r\n" lines.
 */
void conn_reply(struct conn *c, int status, const char *content_type, const char *body,
                size_t body_len, const char *extra_headers);

/* Queues a static file response; the body is borrowed from the table, which
 * outlives every connection. Answers 304 when If-None-Match matches. */
void conn_reply_file(struct conn *c, struct static_files *table, const struct static_file *f,
                     bool not_modified);

/* Queues an error response with a JSON body {"error": msg}; statuses that
 * leave the connection in an unknown state also close it after writing. */
void conn_reply_error(struct conn *c, int status, const char *msg);

/* True when the client connects from a loopback address. */
bool conn_peer_is_local(const struct conn *c);

/*
 * Answers a publish with 202 {"id":id,"clients":clients}, and holds
 * everything queued on the connection from then on until conn_release_held:
 * a publisher learns "202" only once its message was handed to every
 * caught-up subscriber of its own loop (the other loops write it at the
 * same time, from the same frame), and, with --fsync batch, is on disk. Requests
 * pipelined behind it are still read and answered into the held output, so
 * they share the same fan-out and the same fdatasync.
 */
void conn_reply_publish(struct conn *c, uint64_t id, size_t clients);

/* ---- in a cluster (cluster.h) ---- */

/* Writes what c owes and goes on with what it pipelined. */
void conn_flush(struct conn *c);

struct cluster_wait;
/* What c waits for in the cluster, or NULL; set by cluster.c alone. */
struct cluster_wait *conn_cluster_wait(const struct conn *c);
void conn_set_cluster_wait(struct conn *c, struct cluster_wait *w);
/* What a request's answer depends on, kept while a publish awaits the
 * store, since c may read other requests meanwhile. */
struct conn_answer_form {
    bool keep_alive, http10;
    const char *cors_origin;
    uint64_t request_start_ms;
};
void conn_answer_form(const struct conn *c, struct conn_answer_form *f);
/* Bytes of c's answers not written yet: where the answer to a publish sent
 * now belongs. */
size_t conn_output_len(const struct conn *c);
/* The store answered a publish read with form f: 202 with the message's id,
 * or (id 0) 503 with Retry-After and msg, inserted pos bytes into what c
 * has not written yet. Returns the bytes inserted; 0 when c was closed
 * (out of memory). The caller flushes. */
size_t conn_publish_answered(struct conn *c, const struct conn_answer_form *f, size_t pos,
                             uint64_t id, size_t clients, const char *msg);
/* A parked subscriber's room is ready: it joins (hub lock held; the stream
 * has begun). Its bytes go out with the next flush. False when c was
 * closed instead (out of memory). */
bool conn_stream_join(struct conn *c, struct room *room, const struct room_start *start,
                      const char *client, size_t client_len);
/* The stream of a subscriber about to be parked: begun, heartbeats on. 0,
 * or -1 when c is not streaming (closed, or a HEAD request answered). */
int conn_stream_park(struct conn *c);

/* Whether journal records of the messages a connection published, ids
 * first..last (other loops' ids may lie between), were cut off by a failed
 * sync: none, the first one, or a later one only. */
enum conn_failed { CONN_FAILED_NONE, CONN_FAILED_FIRST, CONN_FAILED_LATER };
typedef enum conn_failed conn_failed_fn(void *arg, uint64_t first, uint64_t last);

/*
 * After the sync and every loop's fan-out: writes the answers of every
 * connection in `held` (linked by held_node). Messages for which `failed` says so were not made
 * durable (a failed journal sync; failed NULL when none can have failed): a connection whose first
 * held message is among them gets, in place of its held answers, one 503 and is closed; one with a
 * later held message among them is closed without an answer, since its later answers would claim
 * what failed.
 */
void conn_release_held(struct list *held, conn_failed_fn *failed, void *arg);

/* Turns the connection into a /ping stream. */
void conn_stream_ping(struct conn *c);

/* Turns the connection into a stream of stats snapshots, one at once and
 * then one every STATS_STREAM_MS (GET /stats?stream=1). */
void conn_stream_stats(struct conn *c);

/* Turns the connection into a room's event stream from `start`. */
void conn_stream_room(struct conn *c, struct room *room, const struct room_start *start,
                      const char *client, size_t client_len);

/* The room stream's token expires at `exp` (seconds since the epoch, plus
 * --jwt-leeway): then the stream gets `event: token-expired` and ends. */
void conn_stream_expires(struct conn *c, int64_t exp);

#endif
