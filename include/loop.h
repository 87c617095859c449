/*
 * loop: the event loop. A thin wrapper over level-triggered epoll, a timer
 * heap, and "before sleep" tasks that run once after each batch of events.
 *
 * Watches and timers are embedded in their owner's struct, so registering
 * allocates nothing; the owner must unwatch and stop them before freeing
 * itself. EPOLLERR and EPOLLHUP are passed on to the callback, which learns
 * what went wrong from its next syscall.
 */
#ifndef SSE_LOOP_H
#define SSE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct loop_watch;
struct loop_timer;
struct loop_task;

typedef void loop_io_fn(struct loop *loop, struct loop_watch *w, uint32_t events);
typedef void loop_timer_fn(struct loop *loop, struct loop_timer *t);
typedef void loop_task_fn(struct loop *loop, struct loop_task *task);
typedef void loop_hook_fn(struct loop *loop, void *arg);

struct loop_watch {
    int fd;          /* read-only for the owner */
    uint32_t events; /* current epoll mask; read-only */
    loop_io_fn *fn;
};

struct loop_timer {
    uint64_t when_ms;  /* read-only */
    size_t heap_index; /* private: 0 when not armed */
    loop_timer_fn *fn;
};

struct loop_task {
    struct loop_task *next; /* private */
    bool queued;            /* private */
    loop_task_fn *fn;
};

/* Creates a loop; NULL with errno set on failure. */
struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* Registers fd with the event mask; 0 or -1 with errno. */
int loop_watch_add(struct loop *loop, struct loop_watch *w, int fd, uint32_t events,
                   loop_io_fn *fn);
/* Changes the mask; a no-op when it is unchanged. 0 or -1 with errno. */
int loop_watch_mod(struct loop *loop, struct loop_watch *w, uint32_t events);
/* Unregisters; safe to call on a watch that was never added (fd -1). */
void loop_watch_del(struct loop *loop, struct loop_watch *w);

/* Arms (or re-arms) a timer to fire once at loop_now_ms() + delay_ms. */
int loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_ms, loop_timer_fn *fn);
void loop_timer_stop(struct loop *loop, struct loop_timer *t);
static inline bool loop_timer_armed(const struct loop_timer *t)
{
    return t->heap_index != 0;
}

/* Queues a task to run once after the current batch of events (FIFO);
 * queuing an already queued task does nothing. */
void loop_task_queue(struct loop *loop, struct loop_task *task, loop_task_fn *fn);

/* Monotonic milliseconds, cached once per iteration. */
uint64_t loop_now_ms(const struct loop *loop);

/* Sets the function called at the end of every iteration, after the
 * tasks, just before the loop sleeps (NULL: none). */
void loop_set_before_sleep(struct loop *loop, loop_hook_fn *fn, void *arg);
/* Sets the function called first in every iteration, as soon as epoll_wait
 * returns, before any callback (NULL: none): with before_sleep, it brackets
 * the time the loop may hold pointers to what other threads retire. */
void loop_set_after_wake(struct loop *loop, loop_hook_fn *fn, void *arg);

/*
 * Loop lag: how long each iteration kept the loop busy, from epoll_wait's
 * return to the next epoll_wait call (callbacks, timers, tasks, the
 * before-sleep hook), like Node's event-loop delay. Histograms with fixed
 * bounds in nanoseconds: counts[i] holds iterations with a busy time
 * <= bounds_ns[i] (and > bounds_ns[i - 1]); counts[LOOP_LAG_BUCKETS] holds
 * the slower ones. Costs two clock_gettime calls per iteration.
 */
#define LOOP_LAG_BUCKETS 14
/* The recent figures cover the last one to three of these. */
#define LOOP_LAG_WINDOW_MS ((uint64_t)5000)
extern const uint64_t loop_lag_bounds_ns[LOOP_LAG_BUCKETS];
struct loop_lag_hist {
    uint64_t counts[LOOP_LAG_BUCKETS + 1];
    uint64_t iterations;
    uint64_t sum_ns;
    uint64_t max_ns;
};
struct loop_lag {
    struct loop_lag_hist total; /* since the loop started */
    /* Two alternating windows of LOOP_LAG_WINDOW_MS; cur is being filled. */
    struct loop_lag_hist window[2];
    uint64_t window_start_ms;
    unsigned cur;
};
const struct loop_lag *loop_lag(const struct loop *loop);
/* The iterations of the last LOOP_LAG_WINDOW_MS to three times that. */
void loop_lag_recent(const struct loop *loop, struct loop_lag_hist *out);
/* The q-quantile (0 < q <= 1) of the busy times in nanoseconds, estimated
 * by linear interpolation inside its bucket (as Prometheus'
 * histogram_quantile does) and never above the maximum seen; 0 when no
 * iteration has run. */
uint64_t loop_lag_quantile_ns(const struct loop_lag_hist *h, double q);

/* Runs the queued tasks now (used at shutdown, when the loop no longer runs). */
void loop_run_pending(struct loop *loop);

/* Runs until loop_stop; 0, or -1 with errno when epoll fails. A stop ends
 * one run: the loop can be run again afterwards. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

#endif
