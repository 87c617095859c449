/*
 * Unit tests for the cross-thread inbox (src/inbox.c): order, no loss, and
 * one wake-up per empty-to-non-empty transition, with senders on threads
 * (run under ThreadSanitizer by make test-tsan).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inbox.h"
#include "list.h"
#include "loop.h"

#define SENDERS    4
#define PER_SENDER 20000

struct msg {
    struct inbox_item item;
    unsigned sender;
    unsigned seq;
};

struct sink {
    struct loop *loop;
    size_t got;
    size_t want;
    unsigned next_seq[SENDERS]; /* per sender: the seq expected next */
    bool out_of_order;
};

static void take(struct inbox_item *item, void *arg)
{
    struct sink *s = arg;
    struct msg *m = container_of(item, struct msg, item);
    if (m->seq != s->next_seq[m->sender]) {
        s->out_of_order = true;
    }
    s->next_seq[m->sender] = m->seq + 1;
    if (++s->got == s->want) {
        loop_stop(s->loop);
    }
}

static void test_order_and_wakeups(void **state)
{
    (void)state;
    struct sink s = {.loop = loop_new()};
    assert_non_null(s.loop);
    struct inbox in;
    assert_int_equal(inbox_init(&in, s.loop, take, &s), 0);
    struct msg m[5];
    /* Nothing is taken until the owner drains: only the first push wakes. */
    for (unsigned i = 0; i < 5; i++) {
        m[i] = (struct msg){.sender = 0, .seq = i};
        assert_int_equal(inbox_push(&in, &m[i].item), i == 0);
    }
    s.want = 5;
    assert_int_equal(inbox_drain(&in), 5);
    assert_int_equal(s.got, 5);
    assert_false(s.out_of_order);
    assert_int_equal(inbox_drain(&in), 0); /* empty: nothing, no harm */
    /* Empty again: the next push wakes again. A list goes in one piece. */
    m[0].item.next = &m[1].item;
    m[1].item.next = &m[2].item;
    m[0].seq = 5, m[1].seq = 6, m[2].seq = 7;
    assert_true(inbox_push_list(&in, &m[0].item, &m[2].item));
    m[3].seq = 8;
    assert_false(inbox_push(&in, &m[3].item));
    s.want = 9;
    assert_int_equal(inbox_drain(&in), 4);
    assert_false(s.out_of_order);
    assert_int_equal(in.delivered, 9);
    assert_int_equal(in.drains, 2);
    inbox_release(&in, s.loop);
    loop_free(s.loop);
}

/* Items still queued at release are handed over, not lost. */
static void test_release_hands_over(void **state)
{
    (void)state;
    struct sink s = {.loop = loop_new(), .want = 100};
    assert_non_null(s.loop);
    struct inbox in;
    assert_int_equal(inbox_init(&in, s.loop, take, &s), 0);
    struct msg m[2] = {{.sender = 1, .seq = 0}, {.sender = 1, .seq = 1}};
    inbox_push(&in, &m[0].item);
    inbox_push(&in, &m[1].item);
    inbox_release(&in, s.loop);
    assert_int_equal(s.got, 2);
    assert_false(s.out_of_order);
    loop_free(s.loop);
}

struct sender {
    pthread_t thread;
    struct inbox *in;
    struct msg *msgs;
    unsigned wakeups; /* pushes that found the inbox empty */
};

static void *send_all(void *arg)
{
    struct sender *t = arg;
    for (unsigned i = 0; i < PER_SENDER; i++) {
        t->wakeups += inbox_push(t->in, &t->msgs[i].item);
    }
    return NULL;
}

/* Four threads push while the owner's loop runs: every item arrives once,
 * each sender's in its order, and the owner is woken at most once per push
 * that found the inbox empty. */
static void test_threads(void **state)
{
    (void)state;
    struct sink s = {.loop = loop_new(), .want = (size_t)SENDERS * PER_SENDER};
    assert_non_null(s.loop);
    struct inbox in;
    assert_int_equal(inbox_init(&in, s.loop, take, &s), 0);
    struct msg *msgs = calloc((size_t)SENDERS * PER_SENDER, sizeof *msgs);
    assert_non_null(msgs);
    struct sender t[SENDERS];
    for (unsigned k = 0; k < SENDERS; k++) {
        t[k] = (struct sender){.in = &in, .msgs = msgs + (size_t)k * PER_SENDER};
        for (unsigned i = 0; i < PER_SENDER; i++) {
            t[k].msgs[i] = (struct msg){.sender = k, .seq = i};
        }
    }
    for (unsigned k = 0; k < SENDERS; k++) {
        assert_int_equal(pthread_create(&t[k].thread, NULL, send_all, &t[k]), 0);
    }
    /* A lost wake-up would leave the loop asleep for ever: end the test
     * with SIGALRM instead. */
    alarm(60);
    assert_int_equal(loop_run(s.loop), 0);
    alarm(0);
    unsigned wakeups = 0;
    for (unsigned k = 0; k < SENDERS; k++) {
        pthread_join(t[k].thread, NULL);
        wakeups += t[k].wakeups;
    }
    assert_int_equal(s.got, (size_t)SENDERS * PER_SENDER);
    assert_false(s.out_of_order);
    for (unsigned k = 0; k < SENDERS; k++) {
        assert_int_equal(s.next_seq[k], PER_SENDER);
    }
    /* Every drain that found items was preceded by a wake-up. */
    assert_true(in.drains <= wakeups);
    assert_true(wakeups >= 1);
    inbox_release(&in, s.loop);
    free(msgs);
    loop_free(s.loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_wakeups),
        cmocka_unit_test(test_release_hands_over),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
