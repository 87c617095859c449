#include "inbox.h"

#include "list.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void on_inbox(struct loop *loop, struct loop_watch *w, uint32_t events)
{
    (void)loop;
    (void)events;
    inbox_drain(container_of(w, struct inbox, watch));
}

int inbox_init(struct inbox *in, struct loop *loop, inbox_fn *fn, void *arg)
{
    in->head = NULL;
    in->tail = &in->head;
    in->fn = fn;
    in->arg = arg;
    in->delivered = in->drains = 0;
    in->watch.fd = -1;
    in->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (in->efd < 0) {
        return -1;
    }
    int err = pthread_mutex_init(&in->lock, NULL);
    if (err != 0 || loop_watch_add(loop, &in->watch, in->efd, EPOLLIN, on_inbox) < 0) {
        int saved = err ? err : errno;
        if (err == 0) {
            pthread_mutex_destroy(&in->lock);
        }
        close(in->efd);
        in->efd = -1;
        errno = saved;
        return -1;
    }
    return 0;
}

void inbox_release(struct inbox *in, struct loop *loop)
{
    if (in->efd < 0) {
        return;
    }
    inbox_drain(in);
    loop_watch_del(loop, &in->watch);
    close(in->efd);
    in->efd = -1;
    pthread_mutex_destroy(&in->lock);
}

bool inbox_push_list(struct inbox *in, struct inbox_item *first, struct inbox_item *last)
{
    last->next = NULL;
    pthread_mutex_lock(&in->lock);
    bool was_empty = in->head == NULL;
    *in->tail = first;
    in->tail = &last->next;
    pthread_mutex_unlock(&in->lock);
    if (was_empty) {
        /* Outside the lock: the owner takes whatever is queued when it
         * wakes, so a write that lands after it already took this item only
         * costs one empty drain, never a lost item. The counter cannot
         * overflow: the owner reads it back to zero on every wake-up. */
        uint64_t one = 1;
        ssize_t n = write(in->efd, &one, sizeof one);
        (void)n;
    }
    return was_empty;
}

size_t inbox_drain(struct inbox *in)
{
    uint64_t count;
    /* Read first, take second: a push after the read finds the list either
     * still holding what we are about to take (no write needed) or empty
     * again after our take (it writes, and we come back). */
    ssize_t n = read(in->efd, &count, sizeof count);
    (void)n;
    pthread_mutex_lock(&in->lock);
    struct inbox_item *item = in->head;
    in->head = NULL;
    in->tail = &in->head;
    pthread_mutex_unlock(&in->lock);
    size_t handed = 0;
    while (item) {
        struct inbox_item *next = item->next; /* fn may reuse the item */
        in->fn(item, in->arg);
        item = next;
        handed++;
    }
    in->delivered += handed;
    in->drains += handed > 0;
    return handed;
}
