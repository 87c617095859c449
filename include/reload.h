/*
 * reload: loads the static directory again (on SIGHUP) on a thread of its
 * own, so that reading and hashing every file -- tens of milliseconds for a
 * few megabytes -- never stalls the loop. The thread hands the new table
 * back through an eventfd; the loop then calls `done`, which swaps it in
 * and gives the old table back with reload_retire, so that freeing it (a
 * millisecond or more per 16 MiB) is done on the thread too.
 *
 * One thread runs at a time: a request during a load (a storm of SIGHUPs)
 * only marks that another load must follow, so the files served end up as
 * they are on disk after the last signal, and a storm costs at most one
 * extra load.
 */
#ifndef SSE_RELOAD_H
#define SSE_RELOAD_H

#include "loop.h"

#include <pthread.h>
#include <stdbool.h>

struct static_files;

/* Called on the loop when a load finished: `files` (owned by the callee) is
 * the new table, or NULL with the reason in `err`. */
typedef void reload_done_fn(void *arg, struct static_files *files, const char *err);

struct reload {
    struct loop_watch watch; /* the eventfd: readable when the thread is done */
    int efd;
    const char *dir; /* borrowed; outlives the reload */
    reload_done_fn *done;
    void *arg;
    bool running;                 /* a thread runs */
    bool want_load;               /* a load was requested and not started yet */
    struct static_files *retired; /* to be freed by the next thread */
    pthread_t thread;
    /* The running thread's job, and its results (written before it signals
     * the eventfd). */
    bool load;
    struct static_files *freeing;
    struct static_files *files;
    char err[320];
};

/* Sets up the eventfd and its watch; 0, or -1 with errno. */
int reload_init(struct reload *r, struct loop *loop, const char *dir, reload_done_fn *done,
                void *arg);
/* Starts a load, or marks one to follow the thread that runs. On failure to
 * start a thread, calls `done` with the reason at once. */
void reload_request(struct reload *r);
/* Takes a table that the loop no longer serves: freed on the thread when no
 * response borrows it any more, else just unreferenced (its last borrower
 * frees it, on the loop). */
void reload_retire(struct reload *r, struct static_files *old);
/* Waits for a thread that runs (at shutdown), frees what it holds, and the
 * eventfd. Safe on a reload that was never set up (efd -1). */
void reload_release(struct reload *r, struct loop *loop);

#endif
