/*
 * qsbr: quiescent-state-based reclamation. Memory that event loops read
 * without a lock (a room's frames and slot array, the static file table,
 * the token keys) is not freed when it is unlinked, but retired: freed once
 * every loop has passed a quiescent point since, that is, has finished the
 * loop iteration in which it could have picked up a pointer to it.
 *
 * A loop announces a quiescent point at the top of each iteration
 * (qsbr_online, after epoll_wait returns) and goes offline while it sleeps
 * (qsbr_offline): a sleeping loop holds no pointer and never delays a free.
 * Readers pay one store per iteration, nothing per object they read; a
 * writer pays one lock per retire, and frees in batches (qsbr_reclaim).
 *
 * Why not reference counts: a frame is read by every subscriber of its room
 * on every loop; counting readers would cost an atomic operation per
 * subscriber per message, the very cost the ring design avoids.
 */
#ifndef SSE_QSBR_H
#define SSE_QSBR_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct qsbr_node;
typedef void qsbr_free_fn(struct qsbr_node *node);

/* Embedded in what is retired. */
struct qsbr_node {
    struct qsbr_node *next;
    uint64_t epoch;
    qsbr_free_fn *fn;
};

/* One per reader (event loop), on its own cache line. */
struct qsbr_reader {
    alignas(64) _Atomic uint64_t seen; /* QSBR_OFFLINE while it sleeps */
};

#define QSBR_OFFLINE UINT64_MAX

struct qsbr {
    _Atomic uint64_t epoch;
    struct qsbr_reader *readers;
    size_t nreaders;
    pthread_mutex_t lock; /* the retired list */
    struct qsbr_node *retired;
    struct qsbr_node **retired_tail;
    /* Retired, not yet freed: changed under the lock, read without it so
     * that a reclaim with nothing retired (most loop iterations) takes no
     * lock shared by every loop. */
    atomic_size_t pending;
};

/* 0, or -1 with errno ENOMEM. Every reader starts offline. */
int qsbr_init(struct qsbr *q, size_t nreaders);
/* Frees everything retired: no reader may run any more. */
void qsbr_destroy(struct qsbr *q);

/* Reader i: a quiescent point; from here it may read shared pointers. */
void qsbr_online(struct qsbr *q, size_t i);
/* Reader i holds no shared pointer until its next qsbr_online. */
void qsbr_offline(struct qsbr *q, size_t i);

/* From any thread, after `node`'s object was unlinked from everything
 * readers can reach: `fn` frees it once no reader can still hold it. */
void qsbr_retire(struct qsbr *q, struct qsbr_node *node, qsbr_free_fn *fn);
/* Frees what no reader can hold any more; returns how many. */
size_t qsbr_reclaim(struct qsbr *q);

#endif
