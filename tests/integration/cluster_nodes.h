/*
 * cluster_nodes: what test_cluster.c builds its tests from: one
 * redis-server (redis_harness.h) and NODES sse-server nodes given it with
 * --redis (itest.h), publishing to them, and clients that keep every event
 * they got over all their connections, so that one can resume elsewhere and
 * still be checked whole.
 *
 * Messages are posted as {"n":k}; a client's events keep that k. Every
 * failure shows what it saw (the request, the answer, the events, the
 * nodes' logs) before it fails the running cmocka test.
 */
#ifndef SSE_CLUSTER_NODES_H
#define SSE_CLUSTER_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "itest.h"
#include "redis_harness.h"

enum { NODES = 3, MAX_GOT = 512, WARM_N = 1000 };

extern struct rserver rs;               /* the one redis-server */
extern char rurl[128];                  /* its URL, as the nodes got it */
extern struct itest_server node[NODES]; /* .pid 0 once a test killed one */

/* ---------------------------------------------------------------- fixtures */

/* One redis-server (durable: appendonly yes, appendfsync always) and NODES
 * nodes using it, each with a heartbeat every second: 0, or -1 with nothing
 * left running. */
int cluster_up(bool durable);
/* Frees the test's clients, stops the nodes still running (-1 unless each
 * exits with 0) and Redis. */
int cluster_down(void);
/* cmocka set-ups (cluster_up(false / true)) and teardown (cluster_down). */
int setup_cluster(void **state);
int setup_durable(void **state);
int teardown_cluster(void **state);

/* -------------------------------------------------------------- publishing */

/* POSTs {"n":k} to /message?query on node i; the status (-1: no answer) and,
 * when there was one, the answer in *r (the caller frees it). */
int post_raw(int i, const char *query, long k, struct itest_response *r);
/* post_raw that must be answered 202 {"id":N,"clients":M}: returns N (and
 * M). Otherwise shows the request, the answer and the node's log, and
 * fails. */
uint64_t post_ok(int i, const char *query, long k, long *clients);
/* GET path on node i: the status, or -1; the body goes to body (cut to cap). */
int get_path(int i, const char *path, char *body, size_t cap);
/* Polls /healthz on node i until it answers `want`; true if it did in time. */
bool wait_health(int i, int want, int timeout_ms);
/* Fails unless node i's /metrics has the line `line`. */
void expect_metric(int i, const char *line);

/* ------------------------------------------------------------- subscribers */

/* One event a client got. */
struct got {
    uint64_t id;
    long n; /* the posted {"n":k}, LONG_MIN when the data is something else */
    char type[16];
    char data[24];
};

/* A client: its current connection and what it got over all of them. */
struct client {
    struct itest_sub sub; /* the current connection */
    size_t taken;         /* its events already copied into ev */
    size_t n;
    struct got ev[MAX_GOT];
};

/* n clients, zeroed and closed, owned by the cluster: cluster_down closes
 * and frees them, even after a failed test (one set per test). */
struct client *clients_new(size_t n);
/* Subscribes c (zeroed first) to target on node i; fails unless the stream's
 * head comes. */
void client_open(struct client *c, int i, const char *target);
/* Ends c's connection and opens another to target on node i, resuming with
 * Last-Event-ID: the last id it got. */
void client_resume(struct client *c, int i, const char *target);
/* Copies the current connection's new events into c->ev. */
void client_harvest(struct client *c);
/* Reads c until it got an event with an id >= id (0: any event); false when
 * its stream closed or timeout_ms passed first. */
bool client_wait_id(struct client *c, uint64_t id, int timeout_ms);
/* client_wait_id for each of cs[0..n), failing the test (with what each got
 * and the nodes' logs) when one did not get that far. */
void clients_wait_id(struct client *cs, size_t n, uint64_t id, const char *what);

/*
 * A subscriber's head may come before its node follows the room in Redis,
 * and what is posted in between is history for it, not a live message. So a
 * test first posts {"n":WARM_N...} to room from node 0 until every client
 * of cs got one live, then waits until all have the last. Returns its id
 * (the test's own messages come after it); *posted (unless NULL) counts the
 * posts.
 */
uint64_t warm_up(struct client *cs, size_t n, const char *room, size_t *posted);

/* ----------------------------------------------------------------- checks */

/* A message as posted: its id, its n, its type, whether alice sent it. */
struct msg {
    uint64_t id;
    long n;
    const char *type;
    bool alice;
};

/* The index of c's first event with an id above `after`. */
size_t after_id(const struct client *c, uint64_t after);
/* Fails unless c's events after id `after` are exactly m[0..count), minus
 * alice's when skip_alice (showing every event c got). */
void expect_msgs(const struct client *c, uint64_t after, const struct msg *m, size_t count,
                 bool skip_alice, const char *what);

#endif
