#include "reload.h"

#include "list.h"
#include "static_files.h"
#include "thread.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void *reload_thread(void *arg)
{
    struct reload *r = arg;
    /* The loop handed this table over with its last reference. */
    static_files_unref(r->freeing);
    r->freeing = NULL;
    r->files = NULL;
    r->err[0] = 0;
    if (r->load) {
        /* At start a missing directory means "no static files"; on a reload
         * it more likely means a deploy is swapping it: keep the old ones. */
        if (access(r->dir, R_OK | X_OK) < 0) {
            char eb[96];
            snprintf(r->err, sizeof r->err, "%s: %s", r->dir, strerror_r(errno, eb, sizeof eb));
        } else {
            r->files = static_files_load(r->dir, r->err, sizeof r->err);
        }
    }
    /* The write publishes the results: the loop reads the eventfd, then
     * joins the thread, before it looks at them. */
    uint64_t one = 1;
    ssize_t n = write(r->efd, &one, sizeof one);
    (void)n;
    return NULL;
}

/* Starts a thread if there is work and none runs. */
static void reload_kick(struct reload *r)
{
    if (r->running || (!r->want_load && !r->retired)) {
        return;
    }
    r->load = r->want_load;
    r->freeing = r->retired;
    int rc = thread_start(&r->thread, reload_thread, r);
    if (rc != 0) {
        char eb[96];
        r->freeing = NULL; /* still r->retired: the next thread frees it */
        r->want_load = false;
        if (r->load) {
            snprintf(r->err, sizeof r->err, "cannot start a thread: %s",
                     strerror_r(rc, eb, sizeof eb));
            r->done(r->arg, NULL, r->err);
        }
        return;
    }
    r->want_load = false;
    r->retired = NULL;
    r->running = true;
}

static void on_reload_done(struct loop *loop, struct loop_watch *w, uint32_t events)
{
    struct reload *r = container_of(w, struct reload, watch);
    uint64_t count;
    (void)loop;
    (void)events;
    if (read(r->efd, &count, sizeof count) != (ssize_t)sizeof count || !r->running) {
        return;
    }
    /* The thread has written its results and is returning: the join waits
     * for nothing more than its exit. */
    pthread_join(r->thread, NULL);
    r->running = false;
    if (r->load) {
        struct static_files *files = r->files;
        r->files = NULL;
        r->done(r->arg, files, r->err);
    }
    reload_kick(r);
}

int reload_init(struct reload *r, struct loop *loop, const char *dir, reload_done_fn *done,
                void *arg)
{
    memset(r, 0, sizeof *r);
    r->watch.fd = -1;
    r->dir = dir;
    r->done = done;
    r->arg = arg;
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0) {
        return -1;
    }
    if (loop_watch_add(loop, &r->watch, r->efd, EPOLLIN, on_reload_done) < 0) {
        int e = errno;
        close(r->efd);
        r->efd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

void reload_request(struct reload *r)
{
    r->want_load = true;
    reload_kick(r);
}

void reload_retire(struct reload *r, struct static_files *old)
{
    if (!old || static_files_shared(old) || r->retired) {
        static_files_unref(old);
        return;
    }
    r->retired = old;
    reload_kick(r);
}

void reload_release(struct reload *r, struct loop *loop)
{
    if (r->running) {
        pthread_join(r->thread, NULL); /* at shutdown, waiting is fine */
        static_files_unref(r->files);
        r->files = NULL;
        r->running = false;
    }
    static_files_unref(r->retired);
    r->retired = NULL;
    loop_watch_del(loop, &r->watch);
    if (r->efd >= 0) {
        close(r->efd);
        r->efd = -1;
    }
}
