/*
 * Unit tests for the event loop (src/loop.c): fd watches over pipes and
 * eventfds, the timer heap, tasks that run after each batch, the
 * before-sleep hook and the loop-lag histogram.
 *
 * Every test builds its own loop and runs it once; a test whose loop never
 * stops is killed by the alarm set in main.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

/* ---------------------------------------------------------------- helpers */

static uint64_t rng_state = 0x853C49E6748FEA9Bu;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int make_eventfd(uint64_t value)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert_true(fd >= 0);
    if (value) {
        assert_int_equal(write(fd, &value, sizeof value), sizeof value);
    }
    return fd;
}

static void drain_eventfd(int fd)
{
    uint64_t v;
    (void)!read(fd, &v, sizeof v);
}

static struct loop *new_loop(void)
{
    struct loop *loop = loop_new();
    assert_non_null(loop);
    return loop;
}

/* A timer that stops the loop: the safety net for tests that wait for
 * something not to happen. */
static void stop_timer_fn(struct loop *loop, struct loop_timer *t)
{
    (void)t;
    loop_stop(loop);
}

/* A watch with a log of its calls. */
struct watch_rec {
    struct loop_watch w;
    int calls;
    uint32_t last_events;
    uint64_t order;          /* global sequence number of the last call */
    bool stop;               /* loop_stop on the first call */
    bool drain;              /* read the eventfd on each call */
    struct loop_watch *del;  /* unwatch this one on the first call */
    struct loop_task *queue; /* queue this task on each call (twice) */
    loop_task_fn *queue_fn;
};

static uint64_t seq;

static void watch_fn(struct loop *loop, struct loop_watch *w, uint32_t events)
{
    struct watch_rec *r = (struct watch_rec *)(void *)w;
    r->calls++;
    r->last_events = events;
    r->order = ++seq;
    if (r->drain) {
        drain_eventfd(w->fd);
    }
    if (r->del && r->calls == 1) {
        loop_watch_del(loop, r->del);
    }
    if (r->queue) {
        loop_task_queue(loop, r->queue, r->queue_fn);
        loop_task_queue(loop, r->queue, r->queue_fn);
    }
    if (r->stop) {
        loop_stop(loop);
    }
}

/* ---------------------------------------------------------------- basics */

static void test_new_free(void **state)
{
    (void)state;
    uint64_t before = mono_ms();
    struct loop *loop = new_loop();
    uint64_t now = loop_now_ms(loop);
    assert_true(now >= before && now <= mono_ms());
    loop_free(loop);
    loop_free(NULL);
}

static void test_stop_before_run(void **state)
{
    (void)state;
    struct loop *loop = new_loop();
    loop_stop(loop);
    assert_int_equal(loop_run(loop), 0); /* returns without blocking */
    loop_free(loop);
}

/* A stop ends one run: the next run waits for events again (here a timer)
 * instead of returning at once. */
static void test_run_again_after_stop(void **state)
{
    (void)state;
    struct loop *loop = new_loop();
    struct loop_timer t = {0};
    loop_stop(loop);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(loop_timer_start(loop, &t, 20, stop_timer_fn), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_false(loop_timer_armed(&t)); /* it returned because the timer fired */
    loop_free(loop);
}

/* ---------------------------------------------------------------- watches */

static void test_watch_pipe(void **state)
{
    (void)state;
    struct loop *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct watch_rec r = {.stop = true};
    assert_int_equal(loop_watch_add(loop, &r.w, p[0], EPOLLIN, watch_fn), 0);
    assert_int_equal(r.w.fd, p[0]);
    assert_int_equal(r.w.events, EPOLLIN);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(r.calls, 1);
    assert_true(r.last_events & EPOLLIN);
    loop_watch_del(loop, &r.w);
    assert_int_equal(r.w.fd, -1);
    close(p[0]);
    close(p[1]);
    loop_free(loop);
}

struct level_rec {
    struct loop_watch w;
    int calls;
};

static void level_fn(struct loop *loop, struct loop_watch *w, uint32_t events)
{
    struct level_rec *r = (struct level_rec *)(void *)w;
    assert_true(events & EPOLLIN);
    if (++r->calls == 3) {
        drain_eventfd(w->fd);
        loop_stop(loop);
    }
}

static void test_watch_eventfd_level_triggered(void **state)
{
    (void)state;
    /* Not reading the eventfd makes it fire again on the next iteration. */
    struct loop *loop = new_loop();
    int fd = make_eventfd(1);
    struct level_rec r = {.calls = 0};
    assert_int_equal(loop_watch_add(loop, &r.w, fd, EPOLLIN, level_fn), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(r.calls, 3);
    loop_watch_del(loop, &r.w);
    close(fd);
    loop_free(loop);
}

struct mod_test {
    struct loop_timer timer;
    struct watch_rec *rec;
    int calls_at_timer;
};

static void mod_timer_fn(struct loop *loop, struct loop_timer *t)
{
    struct mod_test *m = (struct mod_test *)(void *)t;
    m->calls_at_timer = m->rec->calls;
    /* The write end of a pipe is writable: EPOLLOUT fires at once. */
    assert_int_equal(loop_watch_mod(loop, &m->rec->w, EPOLLOUT), 0);
    assert_int_equal(m->rec->w.events, EPOLLOUT);
}

static void test_watch_mod(void **state)
{
    (void)state;
    struct loop *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct watch_rec r = {.stop = true};
    /* The write end never becomes readable: no calls until the mask changes. */
    assert_int_equal(loop_watch_add(loop, &r.w, p[1], EPOLLIN, watch_fn), 0);
    assert_int_equal(loop_watch_mod(loop, &r.w, EPOLLIN), 0); /* unchanged: no-op */
    struct mod_test m = {.rec = &r, .calls_at_timer = -1};
    assert_int_equal(loop_timer_start(loop, &m.timer, 20, mod_timer_fn), 0);
    struct loop_timer guard = {0};
    assert_int_equal(loop_timer_start(loop, &guard, 5000, stop_timer_fn), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(m.calls_at_timer, 0);
    assert_int_equal(r.calls, 1);
    assert_true(r.last_events & EPOLLOUT);
    assert_false(r.last_events & EPOLLIN);

    /* Back to EPOLLIN, and a failing mod leaves the mask alone. */
    assert_int_equal(loop_watch_mod(loop, &r.w, EPOLLIN), 0);
    assert_int_equal(r.w.events, EPOLLIN);
    loop_watch_del(loop, &r.w);
    errno = 0;
    assert_int_equal(loop_watch_mod(loop, &r.w, EPOLLOUT), -1);
    assert_int_equal(errno, EBADF);
    loop_timer_stop(loop, &guard);
    close(p[0]);
    close(p[1]);
    loop_free(loop);
}

static void test_watch_del(void **state)
{
    (void)state;
    struct loop *loop = new_loop();
    int fd = make_eventfd(1);
    struct watch_rec r = {0};
    r.del = &r.w; /* unwatches itself on the first call, without reading */
    assert_int_equal(loop_watch_add(loop, &r.w, fd, EPOLLIN, watch_fn), 0);
    struct loop_timer stop = {0};
    assert_int_equal(loop_timer_start(loop, &stop, 30, stop_timer_fn), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(r.calls, 1); /* still readable, but no longer watched */
    assert_int_equal(r.w.fd, -1);
    assert_int_equal(r.w.events, 0);
    loop_watch_del(loop, &r.w); /* twice: no-op */

    /* A watch that was never added. */
    struct loop_watch never = {.fd = -1};
    loop_watch_del(loop, &never);
    assert_int_equal(never.fd, -1);

    /* The fd can be watched again afterwards. */
    struct watch_rec again = {.stop = true};
    assert_int_equal(loop_watch_add(loop, &again.w, fd, EPOLLIN, watch_fn), 0);
    loop_watch_del(loop, &again.w);
    close(fd);
    loop_free(loop);
}

static void test_watch_add_errors(void **state)
{
    (void)state;
    struct loop *loop = new_loop();
    struct loop_watch w = {0};
    errno = 0;
    assert_int_equal(loop_watch_add(loop, &w, -1, EPOLLIN, NULL), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(w.fd, -1);
    loop_watch_del(loop, &w); /* safe after a failed add */

    int fd = make_eventfd(0);
    struct loop_watch a = {0}, b = {0};
    assert_int_equal(loop_watch_add(loop, &a, fd, EPOLLIN, NULL), 0);
    errno = 0;
    assert_int_equal(loop_watch_add(loop, &b, fd, EPOLLIN, NULL), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(b.fd, -1);
    assert_int_equal(a.fd, fd);
    loop_watch_del(loop, &a);
    close(fd);
    loop_free(loop);
}

static void test_watch_del_in_same_batch(void **state)
{
    (void)state;
    /* Two fds ready in one batch: whichever callback runs first unwatches
     * the other, whose pending event must then be dropped. */
    struct loop *loop = new_loop();
    int fa = make_eventfd(1), fb = make_eventfd(1);
    struct watch_rec a = {.stop = true}, b = {.stop = true};
    a.del = &b.w;
    b.del = &a.w;
    assert_int_equal(loop_watch_add(loop, &a.w, fa, EPOLLIN, watch_fn), 0);
    assert_int_equal(loop_watch_add(loop, &b.w, fb, EPOLLIN, watch_fn), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(a.calls + b.calls, 1);
    loop_watch_del(loop, &a.w);
    loop_watch_del(loop, &b.w);
    close(fa);
    close(fb);
    loop_free(loop);
}

static void test_watch_hangup(void **state)
{
    (void)state;
    /* EPOLLHUP is passed on to the callback. */
    struct loop *loop = new_loop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[1]);
    struct watch_rec r = {.stop = true};
    assert_int_equal(loop_watch_add(loop, &r.w, p[0], EPOLLIN, watch_fn), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(r.calls, 1);
    assert_true(r.last_events & EPOLLHUP);
    loop_watch_del(loop, &r.w);
    close(p[0]);
    loop_free(loop);
}

/* ---------------------------------------------------------------- timers */

#define MAX_FIRED 2048

struct fired_log {
    struct loop_timer *t[MAX_FIRED];
    uint64_t when[MAX_FIRED];
    uint64_t now[MAX_FIRED];
    size_t n;
    size_t stop_after; /* loop_stop once this many fired (0: never) */
};

static struct fired_log fired;

static void log_timer_fn(struct loop *loop, struct loop_timer *t)
{
    assert_true(fired.n < MAX_FIRED);
    assert_false(loop_timer_armed(t)); /* disarmed before its callback */
    fired.t[fired.n] = t;
    fired.when[fired.n] = t->when_ms;
    fired.now[fired.n] = loop_now_ms(loop);
    fired.n++;
    if (fired.stop_after && fired.n == fired.stop_after) {
        loop_stop(loop);
    }
}

static void test_timers_deadline_order(void **state)
{
    (void)state;
    memset(&fired, 0, sizeof fired);
    struct loop *loop = new_loop();
    struct loop_timer t30 = {0}, t10 = {0}, t20 = {0};
    uint64_t start = loop_now_ms(loop);
    assert_false(loop_timer_armed(&t10));
    assert_int_equal(loop_timer_start(loop, &t30, 30, log_timer_fn), 0);
    assert_int_equal(loop_timer_start(loop, &t10, 10, log_timer_fn), 0);
    assert_int_equal(loop_timer_start(loop, &t20, 20, log_timer_fn), 0);
    assert_true(loop_timer_armed(&t10) && loop_timer_armed(&t20) && loop_timer_armed(&t30));
    assert_int_equal(t10.when_ms, start + 10);
    assert_int_equal(t30.when_ms, start + 30);
    fired.stop_after = 3;
    uint64_t wall = mono_ms();
    assert_int_equal(loop_run(loop), 0);
    assert_true(mono_ms() - wall >= 25); /* it really waited */
    assert_int_equal(fired.n, 3);
    assert_ptr_equal(fired.t[0], &t10);
    assert_ptr_equal(fired.t[1], &t20);
    assert_ptr_equal(fired.t[2], &t30);
    for (size_t i = 0; i < 3; i++) {
        assert_true(fired.now[i] >= fired.when[i]); /* never early */
    }
    assert_false(loop_timer_armed(&t30));
    loop_free(loop);
}

static void test_timer_stop(void **state)
{
    (void)state;
    memset(&fired, 0, sizeof fired);
    struct loop *loop = new_loop();
    struct loop_timer a = {0}, b = {0}, c = {0}, d = {0};
    assert_int_equal(loop_timer_start(loop, &a, 10, log_timer_fn), 0);
    assert_int_equal(loop_timer_start(loop, &b, 5, log_timer_fn), 0);
    assert_int_equal(loop_timer_start(loop, &c, 15, log_timer_fn), 0);
    assert_int_equal(loop_timer_start(loop, &d, 1, log_timer_fn), 0);
    loop_timer_stop(loop, &b); /* in the middle of the heap */
    loop_timer_stop(loop, &d); /* at the top */
    loop_timer_stop(loop, &d); /* not armed: no-op */
    assert_false(loop_timer_armed(&b));
    assert_false(loop_timer_armed(&d));
    struct loop_timer never = {0};
    loop_timer_stop(loop, &never);
    fired.stop_after = 2;
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(fired.n, 2);
    assert_ptr_equal(fired.t[0], &a);
    assert_ptr_equal(fired.t[1], &c);
    loop_free(loop);
}

struct stopper {
    struct loop_timer t;
    struct loop_timer *victim;
};

static void stopper_fn(struct loop *loop, struct loop_timer *t)
{
    struct stopper *s = (struct stopper *)(void *)t;
    log_timer_fn(loop, t);
    loop_timer_stop(loop, s->victim);
}

static void test_timer_stop_from_callback(void **state)
{
    (void)state;
    /* a and b are both due in the same iteration; a stops b. */
    memset(&fired, 0, sizeof fired);
    struct loop *loop = new_loop();
    struct stopper a = {0};
    struct loop_timer b = {0}, c = {0}, end = {0};
    a.victim = &b;
    assert_int_equal(loop_timer_start(loop, &a.t, 1, stopper_fn), 0);
    assert_int_equal(loop_timer_start(loop, &b, 2, log_timer_fn), 0);
    assert_int_equal(loop_timer_start(loop, &c, 3, log_timer_fn), 0);
    assert_int_equal(loop_timer_start(loop, &end, 40, stop_timer_fn), 0);
    sleep_ms(15); /* the loop's clock is stale: all three are due at once */
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(fired.n, 2);
    assert_ptr_equal(fired.t[0], &a.t);
    assert_ptr_equal(fired.t[1], &c);
    assert_false(loop_timer_armed(&b));
    loop_free(loop);
}

struct rearm {
    struct loop_timer t;
    int fires, max;
    uint64_t when[8];
};

static void rearm_fn(struct loop *loop, struct loop_timer *t)
{
    struct rearm *r = (struct rearm *)(void *)t;
    assert_true(loop_now_ms(loop) >= t->when_ms);
    r->when[r->fires++] = t->when_ms;
    if (r->fires < r->max) {
        assert_int_equal(loop_timer_start(loop, t, 5, rearm_fn), 0);
        assert_true(loop_timer_armed(t));
        assert_int_equal(t->when_ms, loop_now_ms(loop) + 5);
    } else {
        loop_stop(loop);
    }
}

static void test_timer_rearm(void **state)
{
    (void)state;
    memset(&fired, 0, sizeof fired);
    struct loop *loop = new_loop();

    /* Re-arming from its own callback. */
    struct rearm r = {.max = 5};
    assert_int_equal(loop_timer_start(loop, &r.t, 5, rearm_fn), 0);
    /* Re-arming a pending timer moves it: late never fires at 10 ms. */
    struct loop_timer late = {0};
    assert_int_equal(loop_timer_start(loop, &late, 10, log_timer_fn), 0);
    assert_int_equal(loop_timer_start(loop, &late, 60000, log_timer_fn), 0);
    assert_int_equal(late.when_ms, loop_now_ms(loop) + 60000);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(r.fires, 5);
    for (int i = 1; i < 5; i++) {
        assert_true(r.when[i] >= r.when[i - 1] + 5);
    }
    assert_int_equal(fired.n, 0);
    assert_true(loop_timer_armed(&late));
    loop_timer_stop(loop, &late);
    assert_false(loop_timer_armed(&late));
    loop_free(loop);
}

#define NTIMERS 1000

struct many {
    struct loop_timer t;
    int fires;
    bool stopped;
    size_t victim; /* another timer this one stops when it fires, or NTIMERS */
};

static struct many *many;
static size_t many_expected, many_fired;

static void many_fn(struct loop *loop, struct loop_timer *t)
{
    struct many *m = (struct many *)(void *)t;
    assert_false(m->stopped);
    m->fires++;
    log_timer_fn(loop, t);
    many_fired++;
    if (m->victim < NTIMERS) {
        struct many *v = &many[m->victim];
        if (loop_timer_armed(&v->t)) {
            loop_timer_stop(loop, &v->t);
            v->stopped = true;
            many_expected--;
        }
    }
    if (many_fired == many_expected) {
        loop_stop(loop);
    }
}

static void test_many_timers(void **state)
{
    (void)state;
    memset(&fired, 0, sizeof fired);
    struct loop *loop = new_loop();
    many = calloc(NTIMERS, sizeof *many);
    assert_non_null(many);
    many_fired = 0;
    many_expected = NTIMERS;
    for (size_t i = 0; i < NTIMERS; i++) {
        many[i].victim = rng() % 8 == 0 ? rng() % NTIMERS : NTIMERS;
        assert_int_equal(loop_timer_start(loop, &many[i].t, rng() % 51, many_fn), 0);
    }
    /* Some are re-armed before the run, some stopped. */
    for (size_t i = 0; i < NTIMERS; i += 7) {
        assert_int_equal(loop_timer_start(loop, &many[i].t, rng() % 51, many_fn), 0);
    }
    for (size_t i = 3; i < NTIMERS; i += 5) {
        loop_timer_stop(loop, &many[i].t);
        many[i].stopped = true;
        many_expected--;
    }
    assert_int_equal(loop_run(loop), 0);

    assert_int_equal(fired.n, many_expected);
    for (size_t i = 1; i < fired.n; i++) {
        assert_true(fired.when[i] >= fired.when[i - 1]);
    }
    for (size_t i = 0; i < fired.n; i++) {
        assert_true(fired.now[i] >= fired.when[i]);
    }
    for (size_t i = 0; i < NTIMERS; i++) {
        assert_int_equal(many[i].fires, many[i].stopped ? 0 : 1);
        assert_false(loop_timer_armed(&many[i].t));
    }
    free(many);
    many = NULL;
    loop_free(loop);
}

/* ---------------------------------------------------------------- tasks */

struct task_rec {
    struct loop_task task;
    int runs;
    uint64_t order;
    int io_calls_seen; /* io calls made before it ran */
    bool stop;
    struct loop_task *then; /* queued from this task */
    loop_task_fn *then_fn;
};

static int io_calls;

static void task_fn(struct loop *loop, struct loop_task *task)
{
    struct task_rec *r = (struct task_rec *)(void *)task;
    r->runs++;
    r->order = ++seq;
    r->io_calls_seen = io_calls;
    if (r->then) {
        loop_task_queue(loop, r->then, r->then_fn);
    }
    if (r->stop) {
        loop_stop(loop);
    }
}

static void counting_watch_fn(struct loop *loop, struct loop_watch *w, uint32_t events)
{
    io_calls++;
    watch_fn(loop, w, events);
}

static void test_tasks_after_batch(void **state)
{
    (void)state;
    /* Two ready fds both queue the same task (twice each): it runs once,
     * after both callbacks and after the timers due in that iteration. */
    struct loop *loop = new_loop();
    io_calls = 0;
    seq = 0;
    memset(&fired, 0, sizeof fired);
    int fa = make_eventfd(1), fb = make_eventfd(1);
    struct task_rec t = {.stop = true};
    struct watch_rec a = {.drain = true, .queue = &t.task, .queue_fn = task_fn};
    struct watch_rec b = {.drain = true, .queue = &t.task, .queue_fn = task_fn};
    assert_int_equal(loop_watch_add(loop, &a.w, fa, EPOLLIN, counting_watch_fn), 0);
    assert_int_equal(loop_watch_add(loop, &b.w, fb, EPOLLIN, counting_watch_fn), 0);
    struct loop_timer due = {0};
    assert_int_equal(loop_timer_start(loop, &due, 0, log_timer_fn), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(t.runs, 1);
    assert_int_equal(t.io_calls_seen, 2);
    assert_true(t.order > a.order && t.order > b.order);
    assert_int_equal(fired.n, 1); /* the timer ran before the task */
    loop_watch_del(loop, &a.w);
    loop_watch_del(loop, &b.w);
    close(fa);
    close(fb);
    loop_free(loop);
}

static void test_task_queued_from_task(void **state)
{
    (void)state;
    /* An always-readable eventfd counts iterations; a task queued by a task
     * runs in a later one. */
    struct loop *loop = new_loop();
    io_calls = 0;
    seq = 0;
    int fd = make_eventfd(1);
    struct watch_rec w = {0};
    assert_int_equal(loop_watch_add(loop, &w.w, fd, EPOLLIN, counting_watch_fn), 0);
    struct task_rec second = {.stop = true};
    struct task_rec first = {.then = &second.task, .then_fn = task_fn};
    loop_task_queue(loop, &first.task, task_fn);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(first.runs, 1);
    assert_int_equal(second.runs, 1);
    assert_true(second.io_calls_seen > first.io_calls_seen);
    assert_true(second.order > first.order);

    loop_watch_del(loop, &w.w);
    close(fd);
    loop_free(loop);
}

static void test_tasks_fifo_and_requeue(void **state)
{
    (void)state;
    struct loop *loop = new_loop();
    seq = 0;
    struct task_rec a = {0}, b = {0}, c = {.stop = true};
    loop_task_queue(loop, &a.task, task_fn);
    loop_task_queue(loop, &b.task, task_fn);
    loop_task_queue(loop, &a.task, task_fn); /* already queued: no-op */
    loop_task_queue(loop, &c.task, task_fn);
    assert_int_equal(loop_run(loop), 0); /* nothing else to wait for */
    assert_int_equal(a.runs, 1);
    assert_int_equal(b.runs, 1);
    assert_int_equal(c.runs, 1);
    assert_true(a.order < b.order && b.order < c.order);

    /* A task that ran can be queued again. */
    loop_task_queue(loop, &a.task, task_fn);
    loop_run_pending(loop);
    assert_int_equal(a.runs, 2);
    loop_free(loop);
}

static void test_run_pending(void **state)
{
    (void)state;
    /* Without running the loop: every task runs, including tasks queued by
     * tasks, in order. */
    struct loop *loop = new_loop();
    seq = 0;
    struct task_rec c = {0};
    struct task_rec b = {.then = &c.task, .then_fn = task_fn};
    struct task_rec a = {.then = &b.task, .then_fn = task_fn};
    struct task_rec d = {0};
    loop_task_queue(loop, &a.task, task_fn);
    loop_task_queue(loop, &d.task, task_fn);
    loop_run_pending(loop);
    assert_int_equal(a.runs, 1);
    assert_int_equal(b.runs, 1);
    assert_int_equal(c.runs, 1);
    assert_int_equal(d.runs, 1);
    assert_true(a.order < d.order && d.order < b.order && b.order < c.order);
    loop_run_pending(loop); /* nothing queued: no-op */
    assert_int_equal(a.runs, 1);
    loop_free(loop);
}

static void test_stop_from_callback(void **state)
{
    (void)state;
    /* loop_stop from an io callback ends loop_run after that iteration;
     * the tasks of that iteration still run. */
    struct loop *loop = new_loop();
    int fd = make_eventfd(1);
    struct task_rec t = {0};
    struct watch_rec w = {.stop = true, .queue = &t.task, .queue_fn = task_fn};
    assert_int_equal(loop_watch_add(loop, &w.w, fd, EPOLLIN, watch_fn), 0);
    struct loop_timer later = {0};
    assert_int_equal(loop_timer_start(loop, &later, 10000, log_timer_fn), 0);
    uint64_t t0 = mono_ms();
    assert_int_equal(loop_run(loop), 0);
    assert_true(mono_ms() - t0 < 5000);
    assert_int_equal(w.calls, 1);
    assert_int_equal(t.runs, 1);
    loop_timer_stop(loop, &later);
    loop_watch_del(loop, &w.w);
    close(fd);
    loop_free(loop);
}

/* A timer re-armed with delay 0 from its own callback must wait for the
 * next iteration (src/loop.c run_timers says so), or a periodic 0-delay
 * timer starves I/O for as many rounds as there are armed timers. */
struct zero_rearm {
    struct loop_timer t;
    int fires, fires_this_iteration, max_per_iteration;
    struct loop_task tick;
};

static void zero_tick_fn(struct loop *loop, struct loop_task *task)
{
    (void)loop;
    struct zero_rearm *z =
        (struct zero_rearm *)(void *)((char *)task - offsetof(struct zero_rearm, tick));
    z->fires_this_iteration = 0;
}

static void zero_rearm_fn(struct loop *loop, struct loop_timer *t)
{
    struct zero_rearm *z = (struct zero_rearm *)(void *)t;
    z->fires++;
    if (++z->fires_this_iteration > z->max_per_iteration) {
        z->max_per_iteration = z->fires_this_iteration;
    }
    loop_task_queue(loop, &z->tick, zero_tick_fn);
    if (z->fires < 5) {
        assert_int_equal(loop_timer_start(loop, t, 0, zero_rearm_fn), 0);
    } else {
        loop_stop(loop);
    }
}

static void test_timer_zero_delay_rearm_waits(void **state)
{
    (void)state;
    struct loop *loop = new_loop();
    struct zero_rearm z = {.fires = 0};
    struct loop_timer far[8];
    memset(far, 0, sizeof far);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(loop_timer_start(loop, &far[i], 60000, log_timer_fn), 0);
    }
    assert_int_equal(loop_timer_start(loop, &z.t, 0, zero_rearm_fn), 0);
    int rc = loop_run(loop);
    for (int i = 0; i < 8; i++) {
        loop_timer_stop(loop, &far[i]);
    }
    loop_free(loop);
    assert_int_equal(rc, 0);
    assert_int_equal(z.fires, 5);
    assert_int_equal(z.max_per_iteration, 1);
}

/* ---------------------------------------------------------------- loop lag */

/* Three iterations: one quick, one that busies the loop for 3 ms, one that
 * stops it; the hook counts the iterations it ends. */
struct lag_run {
    struct loop_timer t;
    int fires;
    int hook_calls;
};

static void spin_ms(unsigned ms)
{
    uint64_t end = mono_ms() + ms + 1;
    while (mono_ms() < end) {
    }
}

static void lag_timer_fn(struct loop *loop, struct loop_timer *t)
{
    struct lag_run *r = (struct lag_run *)(void *)t;
    if (++r->fires == 2) {
        spin_ms(3);
    }
    if (r->fires == 3) {
        loop_stop(loop);
        return;
    }
    assert_int_equal(loop_timer_start(loop, t, 1, lag_timer_fn), 0);
}

static void lag_hook_fn(struct loop *loop, void *arg)
{
    (void)loop;
    ((struct lag_run *)arg)->hook_calls++;
}

static void test_lag_histogram(void **state)
{
    (void)state;
    struct loop *loop = new_loop();
    struct lag_run r = {.fires = 0};
    loop_set_before_sleep(loop, lag_hook_fn, &r);
    assert_int_equal(loop_timer_start(loop, &r.t, 1, lag_timer_fn), 0);
    assert_int_equal(loop_run(loop), 0);
    const struct loop_lag_hist *lag = &loop_lag(loop)->total;
    uint64_t total = 0, slow = 0;
    for (size_t i = 0; i <= LOOP_LAG_BUCKETS; i++) {
        total += lag->counts[i];
        if (i > 0 && loop_lag_bounds_ns[i - 1] >= 2500000) {
            slow += lag->counts[i];
        }
    }
    /* Each timer fires in an iteration of its own (plus any early wakeups). */
    assert_true(lag->iterations >= 3);
    assert_int_equal(total, lag->iterations);
    assert_int_equal(r.hook_calls, (int)lag->iterations);
    /* The 3 ms spin lands above the 2.5 ms bound, and is the maximum. */
    assert_true(slow >= 1);
    assert_true(lag->max_ns >= 3000000 && lag->max_ns < 1000000000);
    assert_true(lag->sum_ns >= lag->max_ns);
    assert_int_equal(loop_lag_quantile_ns(lag, 1.0), lag->max_ns);
    /* All of it happened just now: the recent figures are the same. */
    struct loop_lag_hist recent;
    loop_lag_recent(loop, &recent);
    assert_memory_equal(&recent, lag, sizeof recent);
    loop_free(loop);
}

static void test_lag_quantile(void **state)
{
    (void)state;
    struct loop_lag_hist lag;
    memset(&lag, 0, sizeof lag);
    assert_int_equal(loop_lag_quantile_ns(&lag, 0.99), 0);
    /* 100 iterations in (0, 50 us], 100 in (100 us, 250 us]. */
    lag.counts[0] = 100;
    lag.counts[2] = 100;
    lag.iterations = 200;
    lag.max_ns = 200000;
    /* The median is the top of the first bucket... */
    assert_int_equal(loop_lag_quantile_ns(&lag, 0.5), 50000);
    /* ...p75 is half-way through the third, by linear interpolation... */
    assert_int_equal(loop_lag_quantile_ns(&lag, 0.75), 175000);
    /* ...and p99 would be 247 us, above the largest seen: capped to it. */
    assert_int_equal(loop_lag_quantile_ns(&lag, 0.99), 200000);
    /* The slowest ones, beyond the last bound, interpolate up to the max. */
    memset(&lag, 0, sizeof lag);
    lag.counts[LOOP_LAG_BUCKETS] = 2;
    lag.iterations = 2;
    lag.max_ns = 3000000000u;
    assert_int_equal(loop_lag_quantile_ns(&lag, 1.0), 3000000000u);
    assert_int_equal(loop_lag_quantile_ns(&lag, 0.5), 2000000000u);
}

int main(void)
{
    alarm(30); /* a loop that never stops fails the run instead of hanging it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_free),
        cmocka_unit_test(test_stop_before_run),
        cmocka_unit_test(test_run_again_after_stop),
        cmocka_unit_test(test_watch_pipe),
        cmocka_unit_test(test_watch_eventfd_level_triggered),
        cmocka_unit_test(test_watch_mod),
        cmocka_unit_test(test_watch_del),
        cmocka_unit_test(test_watch_add_errors),
        cmocka_unit_test(test_watch_del_in_same_batch),
        cmocka_unit_test(test_watch_hangup),
        cmocka_unit_test(test_timers_deadline_order),
        cmocka_unit_test(test_timer_stop),
        cmocka_unit_test(test_timer_stop_from_callback),
        cmocka_unit_test(test_timer_rearm),
        cmocka_unit_test(test_many_timers),
        cmocka_unit_test(test_tasks_after_batch),
        cmocka_unit_test(test_task_queued_from_task),
        cmocka_unit_test(test_tasks_fifo_and_requeue),
        cmocka_unit_test(test_run_pending),
        cmocka_unit_test(test_stop_from_callback),
        cmocka_unit_test(test_timer_zero_delay_rearm_waits),
        cmocka_unit_test(test_lag_histogram),
        cmocka_unit_test(test_lag_quantile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
