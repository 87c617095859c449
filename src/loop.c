#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 256

struct loop {
    int epfd;
    bool stopping;
    bool in_timers; /* run_timers is calling callbacks */
    uint64_t now_ms;
    /* Binary min-heap of armed timers, 1-based so heap_index 0 means "not armed". */
    struct loop_timer **heap;
    size_t heap_len, heap_cap;
    struct loop_task *tasks_head, *tasks_tail;
    loop_hook_fn *before_sleep;
    void *before_sleep_arg;
    loop_hook_fn *after_wake;
    void *after_wake_arg;
    struct loop_lag lag;
};

/* 50 us to 1 s: a healthy iteration takes tens of microseconds; a blocking
 * call shows up in the millisecond buckets. */
const uint64_t loop_lag_bounds_ns[LOOP_LAG_BUCKETS] = {
    50000,    100000,   250000,   500000,    1000000,   2500000,   5000000,
    10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
};

/* CLOCK_MONOTONIC, not _COARSE: the coarse clock ticks every 4 ms here
 * (clock_getres), which would put nearly every iteration at 0. Through the
 * vDSO a call costs tens of nanoseconds. */
static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t monotonic_ms(void)
{
    return monotonic_ns() / 1000000u;
}

struct loop *loop_new(void)
{
    struct loop *loop = calloc(1, sizeof *loop);
    if (!loop) {
        return NULL;
    }
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        int saved = errno;
        free(loop);
        errno = saved;
        return NULL;
    }
    loop->now_ms = monotonic_ms();
    loop->lag.window_start_ms = loop->now_ms;
    return loop;
}

void loop_free(struct loop *loop)
{
    if (!loop) {
        return;
    }
    close(loop->epfd);
    free(loop->heap);
    free(loop);
}

int loop_watch_add(struct loop *loop, struct loop_watch *w, int fd, uint32_t events, loop_io_fn *fn)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    w->fd = fd;
    w->events = events;
    w->fn = fn;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        w->fd = -1;
        return -1;
    }
    return 0;
}

int loop_watch_mod(struct loop *loop, struct loop_watch *w, uint32_t events)
{
    if (w->events == events) {
        return 0;
    }
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0) {
        return -1;
    }
    w->events = events;
    return 0;
}

void loop_watch_del(struct loop *loop, struct loop_watch *w)
{
    if (w->fd < 0) {
        return;
    }
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->fd = -1;
    w->events = 0;
}

/* ---- timer heap ---- */

static void heap_set(struct loop *loop, size_t i, struct loop_timer *t)
{
    loop->heap[i] = t;
    t->heap_index = i;
}

static void heap_sift_up(struct loop *loop, size_t i)
{
    struct loop_timer *t = loop->heap[i];
    while (i > 1 && loop->heap[i / 2]->when_ms > t->when_ms) {
        heap_set(loop, i, loop->heap[i / 2]);
        i /= 2;
    }
    heap_set(loop, i, t);
}

static void heap_sift_down(struct loop *loop, size_t i)
{
    struct loop_timer *t = loop->heap[i];
    for (;;) {
        size_t c = 2 * i;
        if (c > loop->heap_len) {
            break;
        }
        if (c + 1 <= loop->heap_len && loop->heap[c + 1]->when_ms < loop->heap[c]->when_ms) {
            c++;
        }
        if (loop->heap[c]->when_ms >= t->when_ms) {
            break;
        }
        heap_set(loop, i, loop->heap[c]);
        i = c;
    }
    heap_set(loop, i, t);
}

void loop_timer_stop(struct loop *loop, struct loop_timer *t)
{
    size_t i = t->heap_index;
    if (i == 0) {
        return;
    }
    struct loop_timer *last = loop->heap[loop->heap_len--];
    t->heap_index = 0;
    if (last == t) {
        return;
    }
    heap_set(loop, i, last);
    heap_sift_up(loop, i);
    heap_sift_down(loop, last->heap_index);
}

int loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_ms, loop_timer_fn *fn)
{
    loop_timer_stop(loop, t);
    if (loop->heap_len + 1 >= loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        struct loop_timer **h = realloc(loop->heap, cap * sizeof *h);
        if (!h) {
            return -1;
        }
        loop->heap = h;
        loop->heap_cap = cap;
    }
    /* A timer re-armed from a timer callback with no delay must still wait
     * for the next iteration, or it could fire again and again right here. */
    if (delay_ms == 0 && loop->in_timers) {
        delay_ms = 1;
    }
    t->when_ms = loop->now_ms + delay_ms;
    t->fn = fn;
    loop->heap_len++;
    heap_set(loop, loop->heap_len, t);
    heap_sift_up(loop, loop->heap_len);
    return 0;
}

static void run_timers(struct loop *loop)
{
    /* Bounded: a callback that re-arms its timer puts it at least 1 ms after
     * the cached now (see loop_timer_start), so it cannot fire again here. */
    loop->in_timers = true;
    while (loop->heap_len > 0 && loop->heap[1]->when_ms <= loop->now_ms) {
        struct loop_timer *t = loop->heap[1];
        loop_timer_stop(loop, t);
        t->fn(loop, t);
    }
    loop->in_timers = false;
}

static int next_timeout(const struct loop *loop)
{
    if (loop->tasks_head) {
        return 0;
    }
    if (loop->heap_len == 0) {
        return -1;
    }
    uint64_t when = loop->heap[1]->when_ms;
    if (when <= loop->now_ms) {
        return 0;
    }
    uint64_t d = when - loop->now_ms;
    return d > 60000 ? 60000 : (int)d;
}

/* ---- tasks ---- */

void loop_task_queue(struct loop *loop, struct loop_task *task, loop_task_fn *fn)
{
    if (task->queued) {
        return;
    }
    task->fn = fn;
    task->queued = true;
    task->next = NULL;
    if (loop->tasks_tail) {
        loop->tasks_tail->next = task;
    } else {
        loop->tasks_head = task;
    }
    loop->tasks_tail = task;
}

static void run_tasks(struct loop *loop)
{
    /* Only the tasks queued before this call run now; tasks they queue go to
     * a fresh list and wait for the next iteration, so the loop always gets
     * back to epoll. A task still waiting here is marked queued, so queuing
     * it again cannot relink it. */
    struct loop_task *task = loop->tasks_head;
    loop->tasks_head = loop->tasks_tail = NULL;
    while (task) {
        struct loop_task *next = task->next;
        task->queued = false;
        task->next = NULL;
        task->fn(loop, task);
        task = next;
    }
}

void loop_run_pending(struct loop *loop)
{
    while (loop->tasks_head) {
        run_tasks(loop);
    }
}

uint64_t loop_now_ms(const struct loop *loop)
{
    return loop->now_ms;
}

void loop_set_after_wake(struct loop *loop, loop_hook_fn *fn, void *arg)
{
    loop->after_wake = fn;
    loop->after_wake_arg = arg;
}

void loop_set_before_sleep(struct loop *loop, loop_hook_fn *fn, void *arg)
{
    loop->before_sleep = fn;
    loop->before_sleep_arg = arg;
}

const struct loop_lag *loop_lag(const struct loop *loop)
{
    return &loop->lag;
}

static void hist_add(struct loop_lag_hist *h, size_t bucket, uint64_t ns)
{
    h->counts[bucket]++;
    h->iterations++;
    h->sum_ns += ns;
    if (ns > h->max_ns) {
        h->max_ns = ns;
    }
}

static void lag_record(struct loop_lag *lag, uint64_t now_ms, uint64_t ns)
{
    size_t i = 0;
    while (i < LOOP_LAG_BUCKETS && ns > loop_lag_bounds_ns[i]) {
        i++;
    }
    if (now_ms - lag->window_start_ms >= LOOP_LAG_WINDOW_MS) {
        lag->cur ^= 1u;
        memset(&lag->window[lag->cur], 0, sizeof lag->window[0]);
        /* After a long sleep the previous window is older than one window. */
        if (now_ms - lag->window_start_ms >= 2 * LOOP_LAG_WINDOW_MS) {
            memset(&lag->window[lag->cur ^ 1u], 0, sizeof lag->window[0]);
        }
        lag->window_start_ms = now_ms;
    }
    hist_add(&lag->total, i, ns);
    hist_add(&lag->window[lag->cur], i, ns);
}

void loop_lag_recent(const struct loop *loop, struct loop_lag_hist *out)
{
    const struct loop_lag *lag = &loop->lag;
    uint64_t age = loop->now_ms - lag->window_start_ms;
    memset(out, 0, sizeof *out);
    /* Windows are rolled by the iterations themselves: after a quiet spell
     * they may be older than they look. */
    for (unsigned w = 0; w < 2; w++) {
        const struct loop_lag_hist *h = &lag->window[w];
        bool fresh = w == lag->cur ? age < 2 * LOOP_LAG_WINDOW_MS : age < LOOP_LAG_WINDOW_MS;
        if (!fresh) {
            continue;
        }
        for (size_t i = 0; i <= LOOP_LAG_BUCKETS; i++) {
            out->counts[i] += h->counts[i];
        }
        out->iterations += h->iterations;
        out->sum_ns += h->sum_ns;
        out->max_ns = h->max_ns > out->max_ns ? h->max_ns : out->max_ns;
    }
}

uint64_t loop_lag_quantile_ns(const struct loop_lag_hist *lag, double q)
{
    if (lag->iterations == 0) {
        return 0;
    }
    double rank = q * (double)lag->iterations;
    uint64_t below = 0;
    for (size_t i = 0; i <= LOOP_LAG_BUCKETS; i++) {
        if ((double)(below + lag->counts[i]) >= rank && lag->counts[i] > 0) {
            double lo = i ? (double)loop_lag_bounds_ns[i - 1] : 0;
            double hi = i < LOOP_LAG_BUCKETS ? (double)loop_lag_bounds_ns[i] : (double)lag->max_ns;
            double v = lo + (hi - lo) * ((rank - (double)below) / (double)lag->counts[i]);
            return v < (double)lag->max_ns ? (uint64_t)v : lag->max_ns;
        }
        below += lag->counts[i];
    }
    return lag->max_ns;
}

void loop_stop(struct loop *loop)
{
    loop->stopping = true;
}

int loop_run(struct loop *loop)
{
    struct epoll_event events[LOOP_MAX_EVENTS];

    while (!loop->stopping) {
        int n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, next_timeout(loop));
        uint64_t woke_ns = monotonic_ns();
        loop->now_ms = woke_ns / 1000000u;
        if (loop->after_wake) {
            loop->after_wake(loop, loop->after_wake_arg);
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        for (int i = 0; i < n; i++) {
            struct loop_watch *w = events[i].data.ptr;
            /* A callback earlier in this batch may have unwatched this fd (its
             * owner is still allocated: owners free themselves from a task). */
            if (w->fd < 0) {
                continue;
            }
            w->fn(loop, w, events[i].events);
        }
        run_timers(loop);
        run_tasks(loop);
        if (loop->before_sleep) {
            loop->before_sleep(loop, loop->before_sleep_arg);
        }
        lag_record(&loop->lag, loop->now_ms, monotonic_ns() - woke_ns);
    }
    /* A stop ends this run only: a caller that drives the loop in steps (a
     * test waiting for one reply, then the next) can run it again. */
    loop->stopping = false;
    return 0;
}
