/*
 * server: owns everything one event loop serves -- the listener, the
 * connections, the hub of rooms, the static files -- and runs the loop.
 */
#ifndef SSE_SERVER_H
#define SSE_SERVER_H

#include "config.h"
#include "http.h"
#include "jwt.h"
#include "list.h"
#include "loop.h"
#include "reload.h"

#include <stdint.h>
#include <time.h>

struct hub;
struct journal;
struct keyring;
struct static_files;

struct server_stats {
    uint64_t accepted;
    uint64_t closed;
    uint64_t rejected_busy; /* 503 at max-clients */
    uint64_t shed_no_fds;   /* dropped at EMFILE */
    uint64_t requests;
    uint64_t responses_by_class[6]; /* index status / 100 */
    uint64_t published;
    uint64_t deliveries; /* frames written in full to a subscriber */
    uint64_t bytes_sent;
    uint64_t lagged_dropped;
    uint64_t journal_errors;
    uint64_t journal_syncs;
    uint64_t auth_refused; /* 401 and 403 answers of auth.c */
};

struct server {
    struct config cfg;
    struct loop *loop;
    struct hub *hub;
    struct static_files *files;

    int listen_fd;
    int spare_fd;
    int port;
    struct loop_watch listen_watch;
    struct loop_timer accept_timer; /* retries accept after EMFILE */
    bool accept_paused;

    int signal_fd;
    struct loop_watch signal_watch;
    struct reload reload; /* SIGHUP: the static files, loaded on a thread */

    struct loop_task hub_task;

    /* The log's pipe or socket while log lines are buffered (fd -1 when
     * they go straight to stderr); EPOLLOUT is watched only while bytes are
     * pending and the last write found the pipe full. */
    struct loop_watch log_watch;
    bool log_blocked;

    struct journal *journal; /* NULL without --data-dir */
    struct keyring *keys;    /* NULL without --jwt-key-file */
    /* The claims of the token being checked (auth.c): one request at a time. */
    struct jwt_claims claims;
    /* Publishers whose answers are held until the fan-out (and, with
     * --fsync batch, the journal sync) of this loop iteration has run. */
    struct list held;

    struct list conns;
    size_t nconns;
    size_t max_clients;
    size_t streams;

    /* Scratch space for the request being dispatched: one loop, one request
     * at a time, so no connection needs its own. */
    struct http_request req;

    uint64_t rng;
    time_t date_sec;
    char date[40];
    uint64_t started_ms;
    uint64_t stats_mark_ms; /* when the stats stream last renewed its rate window */
    struct server_stats stats;
};

/* Opens the listener, loads the static files, prints the listening line.
 * 0, or -1 after logging why. */
int server_init(struct server *srv, const struct config *cfg);
/* Serves until SIGINT or SIGTERM. 0 on a clean stop, -1 on a loop failure. */
int server_run(struct server *srv);
void server_release(struct server *srv);

/* A fast non-cryptographic random number (for retry jitter). */
uint32_t server_random(struct server *srv);
/* The current IMF-fixdate for the Date header, cached per second. */
const char *server_date(struct server *srv);

#endif
