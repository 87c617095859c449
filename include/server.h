/*
 * server: the process-wide state -- the configuration, the hub of rooms, the
 * journal, the static files, the token keys, the global limits and
 * counters, the listener and the signals -- and the workers, each an event
 * loop with its own connections (worker.h), that serve it.
 */
#ifndef SSE_SERVER_H
#define SSE_SERVER_H

#include "config.h"
#include "counter.h"
#include "loop.h"
#include "reload.h"
#include "worker.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

struct cluster;
struct hub;
struct journal;
struct keyring;
struct static_files;

/* Counted for the whole process (the hub and the journal are shared);
 * what each loop counts for its own connections is in struct worker_stats. */
struct server_stats {
    counter_t published; /* written under the hub lock */
    counter_t journal_errors;
    counter_t journal_syncs;
};

/* Ids whose journal records a failed sync cut off: their publishers, on
 * whatever loop, are answered 503 (under the hub lock). */
#define FAILED_RANGES 16
struct id_range {
    uint64_t from, to; /* [from, to) */
};

struct server {
    struct config cfg;
    struct hub *hub;
    /* Read by every loop without a lock, swapped by a reload: the old one is
     * retired through the hub's qsbr (its frames' reclamation domain). */
    _Atomic(struct static_files *) files;
    struct journal *journal;        /* NULL without --data-dir; under the hub lock */
    _Atomic(struct keyring *) keys; /* NULL without --jwt-key-file */
    struct cluster *cluster;        /* NULL without --redis */
    size_t max_clients;             /* over all workers */
    /* Connections accepted and not yet closed, over all workers: the
     * acceptor counts a connection before handing it to its loop. */
    atomic_size_t connections;

    /* The loops. The first runs on the main thread and also carries the
     * listener (it hands accepted connections out), the signals, the
     * reload and the log's watch. */
    struct worker *workers;
    size_t nworkers;
    struct loop *loop; /* workers[0].loop */

    struct id_range failed[FAILED_RANGES];
    unsigned failed_next;
    bool stopping; /* the other loops were told to stop (main thread) */

    int listen_fd;
    int spare_fd;
    int port;
    struct loop_watch listen_watch;
    struct loop_timer accept_timer; /* retries accept after EMFILE */
    bool accept_paused;

    int signal_fd;
    struct loop_watch signal_watch;
    struct reload reload; /* SIGHUP: the static files, loaded on a thread */

    /* The log's pipe or socket while log lines are buffered (fd -1 when
     * they go straight to stderr); EPOLLOUT is watched only while bytes are
     * pending and the last write found the pipe full. */
    struct loop_watch log_watch;
    bool log_blocked;

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

/* A publisher's answer is held on w: its after-the-iteration task must run. */
void server_hold_publisher(struct worker *w);

/* The workers' counters summed, and their open connections and streams. */
void server_worker_totals(const struct server *srv, struct worker_stats *sum, size_t *nconns,
                          size_t *streams);

#endif
