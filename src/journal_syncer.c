#include "journal_syncer.h"
#include "thread.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

/* Rotations queued at most; a journal that rotates faster than its disk
 * syncs falls back to syncing on the loop. */
#define SYNCER_QUEUE 8

struct journal_syncer {
    int dirfd;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int fds[SYNCER_QUEUE]; /* ring: fds[head], ... n of them */
    unsigned head, n;
    bool stopping;
    unsigned errors; /* under lock, like everything above */
    int last_errno;
};

static void *syncer_thread(void *arg)
{
    struct journal_syncer *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->n == 0 && !s->stopping) {
            pthread_cond_wait(&s->wake, &s->lock);
        }
        if (s->n == 0) {
            break; /* stopping, and everything queued is done */
        }
        int fd = s->fds[s->head];
        s->head = (s->head + 1) % SYNCER_QUEUE;
        s->n--;
        pthread_mutex_unlock(&s->lock);
        int err = fdatasync(fd) != 0 ? errno : 0;
        close(fd);
        if (err == 0 && fsync(s->dirfd) != 0) {
            err = errno;
        }
        pthread_mutex_lock(&s->lock);
        if (err) {
            s->errors++;
            s->last_errno = err;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

struct journal_syncer *syncer_new(int dirfd)
{
    struct journal_syncer *s = calloc(1, sizeof *s);
    if (!s) {
        return NULL;
    }
    s->dirfd = dirfd;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    /* The journal opens before the server blocks SIGTERM and friends for
     * its signalfd: see thread.h. */
    int rc = thread_start(&s->thread, syncer_thread, s);
    if (rc != 0) {
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        free(s);
        errno = rc;
        return NULL;
    }
    return s;
}

bool syncer_submit(struct journal_syncer *s, int fd)
{
    pthread_mutex_lock(&s->lock);
    bool queued = s->n < SYNCER_QUEUE;
    if (queued) {
        s->fds[(s->head + s->n) % SYNCER_QUEUE] = fd;
        s->n++;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
    return queued;
}

unsigned syncer_take_errors(struct journal_syncer *s, int *err)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->errors;
    *err = s->last_errno;
    s->errors = 0;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void syncer_free(struct journal_syncer *s)
{
    if (!s) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL); /* at close: waiting for the disk is fine */
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
