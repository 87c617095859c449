/*
 * test_stress: four rooms of 200 subscribers each, and four publishers
 * posting to all four rooms at once, each on its own keep-alive connection
 * from its own thread. Every subscriber must get every message of its room
 * exactly once, in id order, and nothing from another room: the ids it
 * sees are exactly the ids the 202 answers gave for its room, ascending.
 *
 * The server picks the order in which concurrent POSTs to one room get
 * their ids; what must hold is that every subscriber of the room sees that
 * same order, whatever else is going on. The server runs four event loops
 * (more than this machine may have cores, on purpose): subscribers and
 * publishers of one room are spread over all of them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "itest.h"

#define ROOMS         4
#define SUBS_PER_ROOM 200
#define PUBLISHERS    4
#define PER_PUBLISHER 100 /* each publisher's messages, spread over the rooms */
#define PER_ROOM      (PUBLISHERS * PER_PUBLISHER / ROOMS)

struct publisher {
    pthread_t thread;
    int port;
    unsigned index;
    /* Filled by the thread, checked by the test (cmocka asserts only on
     * the main thread): the id of each message, 0 where it failed. */
    uint64_t ids[PER_PUBLISHER];
    int failed_status;
};

/* Message n of publisher p goes to room n % ROOMS; its data names both. */
static void *publish_all(void *arg)
{
    struct publisher *p = arg;
    struct itest_conn c;
    if (itest_conn_open(&c, p->port) != 0) {
        p->failed_status = -1;
        return NULL;
    }
    for (unsigned n = 0; n < PER_PUBLISHER; n++) {
        char target[48], body[64];
        snprintf(target, sizeof target, "/message?room=s%u", n % ROOMS);
        int len = snprintf(body, sizeof body, "{\"p\":%u,\"n\":%u}", p->index, n);
        int st = itest_post_message_conn(&c, target, body, (size_t)len, &p->ids[n], NULL);
        if (st != 202) {
            p->failed_status = st;
            p->ids[n] = 0;
            break;
        }
    }
    itest_conn_close(&c);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The subscriber's event ids, which must be exactly want[0..PER_ROOM). */
static void check_subscriber(const struct itest_sub *s, unsigned room, const uint64_t *want)
{
    if (s->events.count != PER_ROOM)
        fail_msg("room s%u: a subscriber got %zu events, not %d", room, s->events.count, PER_ROOM);
    for (size_t k = 0; k < PER_ROOM; k++) {
        const struct ssep_event *ev = &s->events.ev[k];
        uint64_t id = itest_event_id(ev);
        if (id != want[k]) {
            itest_print_events("subscriber", &s->events, k > 2 ? k - 2 : 0, 5);
            fail_msg("room s%u: event %zu has id %" PRIu64 ", expected %" PRIu64, room, k, id,
                     want[k]);
        }
        /* The data is the message that got this id in this room. */
        unsigned p, n;
        if (sscanf(ev->data, "{\"p\":%u,\"n\":%u}", &p, &n) != 2 || n % ROOMS != room)
            fail_msg("room s%u: event %zu carries %.*s", room, k, (int)ev->data_len, ev->data);
    }
}

static void test_four_rooms_four_publishers(void **state)
{
    (void)state;
    const char *const args[] = {"--threads", "4", NULL};
    struct itest_server srv = itest_server_start(args);
    assert_true(srv.pid > 0);
    struct itest_sub *subs = calloc(ROOMS * SUBS_PER_ROOM, sizeof *subs);
    assert_non_null(subs);
    for (unsigned r = 0; r < ROOMS; r++) {
        char target[48];
        snprintf(target, sizeof target, "/messages?room=s%u", r);
        assert_int_equal(itest_subs_open(subs + r * SUBS_PER_ROOM, SUBS_PER_ROOM, srv.port, target,
                                         itest_ms(20000)),
                         SUBS_PER_ROOM);
    }

    struct publisher pubs[PUBLISHERS];
    int64_t t0 = itest_now_ms();
    for (unsigned p = 0; p < PUBLISHERS; p++) {
        pubs[p] = (struct publisher){.port = srv.port, .index = p};
        assert_int_equal(pthread_create(&pubs[p].thread, NULL, publish_all, &pubs[p]), 0);
    }
    /* The subscribers are read meanwhile, so no socket fills up. */
    size_t done = itest_subs_drive(subs, ROOMS * SUBS_PER_ROOM, PER_ROOM, itest_ms(60000));
    for (unsigned p = 0; p < PUBLISHERS; p++) {
        pthread_join(pubs[p].thread, NULL);
        if (pubs[p].failed_status)
            fail_msg("publisher %u: a POST got status %d", p, pubs[p].failed_status);
    }
    /* Anything late (or one too many) shows up in a short extra read. */
    itest_subs_drive(subs, ROOMS * SUBS_PER_ROOM, SIZE_MAX, 200);
    printf("%d subscribers x %d messages each: %zu complete in %lld ms\n", ROOMS * SUBS_PER_ROOM,
           PER_ROOM, done, (long long)(itest_now_ms() - t0));

    /* Each room's ids, from the 202 answers, ascending: what every one of
     * its subscribers must have seen, in this order. */
    uint64_t want[ROOMS][PER_ROOM];
    size_t have[ROOMS] = {0};
    for (unsigned p = 0; p < PUBLISHERS; p++) {
        for (unsigned n = 0; n < PER_PUBLISHER; n++) {
            want[n % ROOMS][have[n % ROOMS]++] = pubs[p].ids[n];
        }
    }
    for (unsigned r = 0; r < ROOMS; r++) {
        assert_int_equal(have[r], PER_ROOM);
        qsort(want[r], PER_ROOM, sizeof want[r][0], cmp_u64);
        for (size_t k = 1; k < PER_ROOM; k++)
            assert_true(want[r][k] > want[r][k - 1]); /* no id given twice */
    }
    for (unsigned i = 0; i < ROOMS * SUBS_PER_ROOM; i++) {
        check_subscriber(&subs[i], i / SUBS_PER_ROOM, want[i / SUBS_PER_ROOM]);
    }
    for (unsigned i = 0; i < ROOMS * SUBS_PER_ROOM; i++)
        itest_sub_close(&subs[i]);
    free(subs);
    assert_int_equal(itest_server_stop(&srv), 0);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(void)
{
    itest_init(180);
    raise_nofile();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_four_rooms_four_publishers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
