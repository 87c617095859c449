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

#include "http.h"
#include "jwt.h"
#include "list.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct loop;
struct server;

/* Counted by a worker for its own connections; /stats and /metrics sum
 * them over the workers (server_worker_totals). */
struct worker_stats {
    uint64_t accepted;
    uint64_t closed;
    uint64_t rejected_busy; /* 503 at max-clients */
    uint64_t shed_no_fds;   /* dropped at EMFILE */
    uint64_t requests;
    uint64_t responses_by_class[6]; /* index status / 100 */
    uint64_t deliveries;            /* frames written in full to a subscriber */
    uint64_t bytes_sent;
    uint64_t lagged_dropped;
    uint64_t auth_refused; /* 401 and 403 answers of auth.c */
};

struct worker {
    struct server *srv; /* shared, process-wide */
    struct loop *loop;

    struct list conns;
    size_t nconns;
    size_t streams;
    /* Publishers whose answers are held until the fan-out (and, with
     * --fsync batch, the journal sync) of this loop iteration has run. */
    struct list held;

    /* Scratch space for the request being dispatched: one loop, one request
     * at a time, so no connection needs its own. */
    struct http_request req;
    /* The claims of the token being checked (auth.c), likewise. */
    struct jwt_claims claims;

    uint64_t rng;
    time_t date_sec;
    char date[40];
    struct worker_stats stats;
};

/* Creates the worker's loop. 0, or -1 with errno. */
int worker_init(struct worker *w, struct server *srv, uint64_t seed);
/* Frees the loop; its connections must have been closed and freed. */
void worker_release(struct worker *w);

/* A fast non-cryptographic random number (for retry jitter). */
uint32_t worker_random(struct worker *w);
/* The current IMF-fixdate for the Date header, cached per second. */
const char *worker_date(struct worker *w);

#endif
