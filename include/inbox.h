/*
 * inbox: how one thread hands work to an event loop on another. A FIFO of
 * items under a mutex, and an eventfd the owning loop watches. A sender
 * writes the eventfd only when its push turned the inbox from empty to
 * non-empty, and the owner takes the whole list at once each time it wakes:
 * however many items arrive during one iteration of the owner's loop, they
 * cost one wake-up, one lock on the owner's side and one per push on the
 * sender's (a batch push takes it once for the batch).
 *
 * Items are embedded in the sender's own structures (no allocation here);
 * the owner's `fn` takes each one over, in the order they were pushed.
 */
#ifndef SSE_INBOX_H
#define SSE_INBOX_H

#include "loop.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct inbox_item {
    struct inbox_item *next; /* private */
};

/* Called on the owner's loop for each item taken, oldest first. */
typedef void inbox_fn(struct inbox_item *item, void *arg);

struct inbox {
    pthread_mutex_t lock;
    struct inbox_item *head; /* under lock */
    struct inbox_item **tail;
    int efd;
    struct loop_watch watch;
    inbox_fn *fn;
    void *arg;
    /* Owner's side only: items handed to fn, and the drains that found the
     * inbox non-empty (what the wake-ups cost). */
    uint64_t delivered;
    uint64_t drains;
};

/* Sets up the eventfd and its watch on the owner's loop; 0, or -1 with errno. */
int inbox_init(struct inbox *in, struct loop *loop, inbox_fn *fn, void *arg);
/* Unwatches and closes the eventfd; items still queued are handed to fn
 * first, so nothing pushed is lost. Safe on an inbox never set up (efd -1). */
void inbox_release(struct inbox *in, struct loop *loop);

/* From any thread: appends the items first..last (linked through `next`,
 * last->next ignored) in one go. Returns true when it woke the owner. */
bool inbox_push_list(struct inbox *in, struct inbox_item *first, struct inbox_item *last);
static inline bool inbox_push(struct inbox *in, struct inbox_item *item)
{
    return inbox_push_list(in, item, item);
}

/* On the owner's loop: takes every queued item and hands each to fn.
 * Returns the number handed over. The eventfd's callback runs this. */
size_t inbox_drain(struct inbox *in);

#endif
