/*
 * Unit tests for quiescent-state-based reclamation (src/qsbr.c): nothing is
 * freed while a reader that may hold it is online, everything is freed once
 * every reader has passed a quiescent point or gone offline, and readers
 * racing a writer never see freed memory (run under ThreadSanitizer and
 * AddressSanitizer by make test).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "qsbr.h"

struct obj {
    struct qsbr_node node;
    int *freed; /* set when freed, for the single-threaded tests */
    uint64_t value;
};

static void obj_free(struct qsbr_node *n)
{
    struct obj *o = (struct obj *)n;
    if (o->freed) {
        (*o->freed)++;
    }
    free(o);
}

static struct obj *obj_new(int *freed, uint64_t value)
{
    struct obj *o = calloc(1, sizeof *o);
    assert_non_null(o);
    o->freed = freed;
    o->value = value;
    return o;
}

static void test_online_reader_delays_free(void **state)
{
    (void)state;
    struct qsbr q;
    int freed = 0;
    assert_int_equal(qsbr_init(&q, 2), 0);
    qsbr_online(&q, 0);
    qsbr_online(&q, 1);
    qsbr_retire(&q, &obj_new(&freed, 1)->node, obj_free);
    assert_int_equal(qsbr_reclaim(&q), 0);
    qsbr_online(&q, 0); /* reader 0 passed a quiescent point, reader 1 not */
    assert_int_equal(qsbr_reclaim(&q), 0);
    assert_int_equal(freed, 0);
    qsbr_online(&q, 1);
    assert_int_equal(qsbr_reclaim(&q), 1);
    assert_int_equal(freed, 1);
    qsbr_destroy(&q);
}

static void test_offline_reader_never_delays(void **state)
{
    (void)state;
    struct qsbr q;
    int freed = 0;
    assert_int_equal(qsbr_init(&q, 2), 0);
    qsbr_online(&q, 0);
    qsbr_retire(&q, &obj_new(&freed, 1)->node, obj_free);
    qsbr_offline(&q, 0); /* reader 1 was never online */
    assert_int_equal(qsbr_reclaim(&q), 1);
    assert_int_equal(freed, 1);
    qsbr_destroy(&q);
}

static void test_frees_in_order_up_to_the_oldest_reader(void **state)
{
    (void)state;
    struct qsbr q;
    int freed = 0;
    assert_int_equal(qsbr_init(&q, 1), 0);
    qsbr_online(&q, 0);
    qsbr_retire(&q, &obj_new(&freed, 1)->node, obj_free);
    qsbr_online(&q, 0);
    qsbr_retire(&q, &obj_new(&freed, 2)->node, obj_free); /* after the reader's point */
    assert_int_equal(qsbr_reclaim(&q), 1);
    assert_int_equal(freed, 1);
    qsbr_destroy(&q); /* frees the other one */
    assert_int_equal(freed, 2);
}

/* A writer replaces a shared object again and again, retiring the old one;
 * readers load it and read it during an "iteration", then pass a quiescent
 * point. A freed object is poisoned first: a reader that sees the poison
 * read freed memory (ASan would also catch it). */
#define READERS 3
#define ROUNDS  20000
#define POISON  0xdeadbeefdeadbeefULL

struct race {
    struct qsbr q;
    _Atomic(struct obj *) current;
    atomic_bool stop;
    atomic_ulong bad;
    atomic_ulong reads;
};

static void obj_poison_free(struct qsbr_node *n)
{
    struct obj *o = (struct obj *)n;
    atomic_store_explicit((_Atomic uint64_t *)&o->value, POISON, memory_order_relaxed);
    free(o);
}

struct reader_arg {
    struct race *r;
    size_t index;
};

static void *reader_main(void *arg)
{
    struct reader_arg *ra = arg;
    struct race *r = ra->r;
    unsigned long iter = 0;
    while (!atomic_load(&r->stop)) {
        qsbr_online(&r->q, ra->index);
        for (int k = 0; k < 8; k++) {
            struct obj *o = atomic_load(&r->current);
            uint64_t v = atomic_load_explicit((_Atomic uint64_t *)&o->value, memory_order_relaxed);
            if (v == POISON || v == 0) {
                atomic_fetch_add(&r->bad, 1);
            }
        }
        atomic_fetch_add_explicit(&r->reads, 8, memory_order_relaxed);
        if (++iter % 16 == 0) {
            qsbr_offline(&r->q, ra->index); /* as a loop going to sleep */
        }
    }
    qsbr_offline(&r->q, ra->index);
    return NULL;
}

static void test_readers_racing_a_writer(void **state)
{
    (void)state;
    static struct race r;
    assert_int_equal(qsbr_init(&r.q, READERS), 0);
    atomic_store(&r.current, obj_new(NULL, 1));
    atomic_store(&r.stop, false);
    atomic_store(&r.bad, 0);
    atomic_store(&r.reads, 0);
    pthread_t th[READERS];
    struct reader_arg args[READERS];
    for (size_t i = 0; i < READERS; i++) {
        args[i] = (struct reader_arg){&r, i};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
    }
    size_t reclaimed = 0;
    uint64_t v = 2;
    /* At least ROUNDS replacements, and enough reads to be sure the readers
     * ran during them (bounded, whatever the scheduler does). */
    for (; v < ROUNDS || (atomic_load(&r.reads) < 100000 && v < 50 * ROUNDS); v++) {
        struct obj *old = atomic_exchange(&r.current, obj_new(NULL, v));
        qsbr_retire(&r.q, &old->node, obj_poison_free);
        reclaimed += qsbr_reclaim(&r.q);
    }
    atomic_store(&r.stop, true);
    for (size_t i = 0; i < READERS; i++) {
        pthread_join(th[i], NULL);
    }
    reclaimed += qsbr_reclaim(&r.q); /* every reader is offline now */
    assert_int_equal(atomic_load(&r.bad), 0);
    assert_int_equal(reclaimed, v - 2);
    assert_true(atomic_load(&r.reads) >= 100000);
    assert_int_equal(r.q.pending, 0);
    free(atomic_load(&r.current));
    qsbr_destroy(&r.q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_online_reader_delays_free),
        cmocka_unit_test(test_offline_reader_never_delays),
        cmocka_unit_test(test_frees_in_order_up_to_the_oldest_reader),
        cmocka_unit_test(test_readers_racing_a_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
