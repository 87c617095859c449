#include "qsbr.h"

#include <errno.h>
#include <stdlib.h>

int qsbr_init(struct qsbr *q, size_t nreaders)
{
    atomic_init(&q->epoch, 1);
    q->nreaders = nreaders;
    q->readers =
        aligned_alloc(alignof(struct qsbr_reader), (nreaders ? nreaders : 1) * sizeof *q->readers);
    if (!q->readers) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < nreaders; i++) {
        atomic_init(&q->readers[i].seen, QSBR_OFFLINE);
    }
    pthread_mutex_init(&q->lock, NULL);
    q->retired = NULL;
    q->retired_tail = &q->retired;
    atomic_init(&q->pending, 0);
    return 0;
}

static void free_list(struct qsbr_node *n)
{
    while (n) {
        struct qsbr_node *next = n->next;
        n->fn(n);
        n = next;
    }
}

void qsbr_destroy(struct qsbr *q)
{
    if (!q->readers) {
        return;
    }
    free_list(q->retired);
    q->retired = NULL;
    q->retired_tail = &q->retired;
    pthread_mutex_destroy(&q->lock);
    free(q->readers);
    q->readers = NULL;
}

void qsbr_online(struct qsbr *q, size_t i)
{
    /* Sequentially consistent, like the writers' unlinking stores: once this
     * store is visible, the reader's later loads see every unlink that came
     * before the epoch it read, and a reclaimer that saw it offline freed
     * only what those loads can no longer reach. */
    atomic_store(&q->readers[i].seen, atomic_load(&q->epoch));
}

void qsbr_offline(struct qsbr *q, size_t i)
{
    atomic_store(&q->readers[i].seen, QSBR_OFFLINE);
}

void qsbr_retire(struct qsbr *q, struct qsbr_node *node, qsbr_free_fn *fn)
{
    node->fn = fn;
    node->next = NULL;
    pthread_mutex_lock(&q->lock);
    /* A reader that announces a later epoch started its iteration after
     * this unlink and cannot have found the node. */
    node->epoch = atomic_fetch_add(&q->epoch, 1);
    *q->retired_tail = node;
    q->retired_tail = &node->next;
    atomic_fetch_add_explicit(&q->pending, 1, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
}

/* The oldest epoch a reader may still be in. */
static uint64_t oldest_seen(const struct qsbr *q)
{
    uint64_t min = QSBR_OFFLINE;
    for (size_t i = 0; i < q->nreaders; i++) {
        uint64_t s = atomic_load(&q->readers[i].seen);
        if (s < min) {
            min = s;
        }
    }
    return min;
}

size_t qsbr_reclaim(struct qsbr *q)
{
    struct qsbr_node *done = NULL, **tail = &done;
    size_t n = 0;
    if (atomic_load_explicit(&q->pending, memory_order_relaxed) == 0) {
        return 0; /* a retire seen late waits for the next reclaim */
    }
    pthread_mutex_lock(&q->lock);
    if (q->retired) {
        uint64_t min = oldest_seen(q);
        /* Retired in epoch order: stop at the first one still in reach. */
        while (q->retired && q->retired->epoch < min) {
            struct qsbr_node *node = q->retired;
            q->retired = node->next;
            *tail = node;
            tail = &node->next;
            n++;
        }
        if (!q->retired) {
            q->retired_tail = &q->retired;
        }
        atomic_fetch_sub_explicit(&q->pending, n, memory_order_relaxed);
    }
    *tail = NULL;
    pthread_mutex_unlock(&q->lock);
    free_list(done);
    return n;
}
