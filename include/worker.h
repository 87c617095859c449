/*
 * worker: what one event loop owns and nobody else touches -- the loop, its
 * connections, the publishers held until the fan-out, the request scratch
 * space, the retry-jitter generator, the Date header cache and its own
 * counters. The process-wide state every worker reads (config, hub,
 * journal, static files, token keys, global limits) is the server's
 * (server.h); a worker reaches it through `srv`.
 */
#ifndef SSE_WORKER_H
#define SSE_WORKER_H

#include "counter.h"
#include "http.h"
#include "inbox.h"
#include "jwt.h"
#include "list.h"
#include "loop.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct held_batch;
struct loop;
struct server;

/* Counted by a worker for its own connections; /stats and /metrics sum
 * them over the workers (server_worker_totals). */
struct worker_stats {
    counter_t accepted;
    counter_t closed;
    counter_t rejected_busy; /* 503 at max-clients */
    counter_t shed_no_fds;   /* dropped at EMFILE */
    counter_t requests;
    counter_t responses_by_class[6]; /* index status / 100 */
    counter_t deliveries;            /* frames written in full to a subscriber */
    counter_t bytes_sent;
    counter_t lagged_dropped;
    counter_t auth_refused; /* 401 and 403 answers of auth.c */
};

struct worker {
    struct server *srv; /* shared, process-wide */
    struct loop *loop;
    unsigned index; /* its part of the hub (room.h) and its qsbr reader */
    pthread_t thread;
    bool thread_started;
    /* What other threads hand this loop: accepted connections, a wake-up
     * for the hub's fan-out, the stop. */
    struct inbox inbox;
    struct loop_task hub_task;
    atomic_bool hub_wake_queued; /* hub_wake is in the inbox */
    struct inbox_item hub_wake;
    struct inbox_item stop;
    atomic_bool cluster_wake_queued; /* cluster_wake is in the inbox */
    struct inbox_item cluster_wake;
    /* Connections the acceptor handed this loop (the acceptor's alone). */
    uint64_t handed;

    struct list conns;
    counter_t nconns; /* read by other loops: the acceptor, the stats */
    counter_t streams;
    /* Publishers whose answers are held until the fan-out (and, with
     * --fsync batch, the journal sync) of this loop iteration has run; then
     * in a batch that waits for every other loop's fan-out (server.c). */
    struct list held;
    struct held_batch *batches; /* oldest first */
    struct held_batch **batches_tail;

    /* Scratch space for the request being dispatched: one loop, one request
     * at a time, so no connection needs its own. */
    struct http_request req;
    /* The claims of the token being checked (auth.c), likewise. */
    struct jwt_claims claims;

    /* The loop's lag histograms as of its last iteration, copied by the
     * loop itself so that /stats on any loop can add them up. */
    pthread_mutex_t lag_lock;
    struct loop_lag_hist lag_total, lag_recent;

    uint64_t rng;
    time_t date_sec;
    char date[40];
    struct worker_stats stats;
};

/* Creates the worker's loop. 0, or -1 with errno. */
int worker_init(struct worker *w, struct server *srv, uint64_t seed);
/* Frees the loop; its connections must have been closed and freed. */
void worker_release(struct worker *w);

/* On the worker's loop: copies its lag histograms for other loops. */
void worker_lag_publish(struct worker *w);
/* Any thread: adds the worker's last copied histograms to total and recent. */
void worker_lag_read(struct worker *w, struct loop_lag_hist *total, struct loop_lag_hist *recent);

/* A fast non-cryptographic random number (for retry jitter). */
uint32_t worker_random(struct worker *w);
/* The current IMF-fixdate for the Date header, cached per second. */
const char *worker_date(struct worker *w);

#endif
