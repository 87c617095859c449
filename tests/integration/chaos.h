/*
 * chaos: the subscribers of test_cluster_chaos and the check of what they
 * hold (chaos_client.c). Each client is what an EventSource is: one stream
 * at a time, and when it ends another, to any node, resuming with the last
 * id it got; its history spans all of them. The check compares every
 * client's history with the publisher's record of its POSTs. Redis, the
 * nodes, the publisher and the poll loop are in test_cluster_chaos.c.
 */
#ifndef SSE_TESTS_CHAOS_H
#define SSE_TESTS_CHAOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "itest.h"

#define CHAOS_ROOMS    3
#define CHAOS_CLIENTS  300
#define CHAOS_ROOM_FMT "chaos%u" /* client i is in room i % CHAOS_ROOMS */

/* One POST of the publisher: posts[seq], whose body was {"seq":seq}. */
struct chaos_post {
    uint64_t id;   /* the 202's id */
    int64_t at_ms; /* when its answer came (or did not) */
    int status;    /* the HTTP status, -1: no answer (its node died) */
    int port;      /* the node it went to */
    unsigned room;
};

/* A message as a client got it. */
struct chaos_got {
    uint64_t id;
    uint32_t seq;
    uint32_t conn; /* which of the client's connections brought it */
};

/* One of a client's connections, for a failure's report. */
struct chaos_conn {
    int64_t at_ms, end_ms;
    uint64_t from_id; /* the Last-Event-ID it sent */
    int node, port;
    unsigned gen; /* the node's start it went to */
    char end[64]; /* how it ended ("" while open) */
};

struct chaos_client {
    unsigned room;
    struct itest_sub sub;
    bool open;        /* sub holds a connection */
    int64_t retry_ms; /* while not open: when to connect again */
    uint64_t last_id; /* what an EventSource would send as Last-Event-ID */
    struct chaos_got *got;
    size_t n_got, cap_got;
    struct chaos_conn *conns;
    size_t n_conns, cap_conns;
    unsigned resets, bad_events, failed;
    char first_odd[160]; /* the first reset or unparsable event */
};

/* The test's start (itest_now_ms): times in reports are ms after it. */
extern int64_t chaos_t0;

/* Opens a stream for c to port (node `node`, its start `gen`) resuming
 * after c->last_id; its events are added to c's history. False when out of
 * memory (nothing opened). */
bool chaos_client_open(struct chaos_client *c, int port, int node, unsigned gen, int64_t now);
/* After I/O: true when c's stream ended (closed, failed, or no head within
 * 10 s); it is then closed, recorded, and c is no longer open. */
bool chaos_client_ended(struct chaos_client *c, int64_t now);
/* Closes c's stream, if open, and frees its history. */
void chaos_client_free(struct chaos_client *c);
/* Prints c's connections and what each brought, to stderr. */
void chaos_client_print(const struct chaos_client *c, size_t index);

/*
 * Checks clients[0..CHAOS_CLIENTS) against posts[0..n_posts): each must
 * hold every acknowledged (202) message of its room exactly once, with its
 * 202's id, ids strictly increasing, nothing of another room, no reset, no
 * unparsable event; unacknowledged ones at most once. Prints the problems
 * (the first few of each client) and a summary to stderr, with the
 * connections of the first three failing clients. Returns how many failed.
 */
size_t chaos_check(const struct chaos_client *clients, const struct chaos_post *posts,
                   size_t n_posts);

#endif
