/*
 * Integration tests of --threads: several event loops serving one hub.
 *
 * Every test starts the real server with an explicit `--threads 4` (more
 * loops than this machine may have cores: the loops must be correct when
 * they are not running at the same time, too). Worker 0 accepts every
 * connection and hands it to the loop with the fewest open connections, so
 * the tests check: that the spread is even and stays even after an uneven
 * set of closes; that every loop delivers and every subscriber gets every
 * message of its room once, in order, with publishers on several loops at
 * once; that a publisher's 202 comes only after every loop's fan-out; that a
 * SIGHUP reload is seen by every loop; that SIGTERM ends the streams of
 * every loop with the final `retry:`; and that --max-clients counts the
 * connections of all loops together.
 *
 * The spread is read from /stats: "connections", "threads" and
 * "per_thread":[{"connections","streams","accepted","deliveries"},...].
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "itest.h"

#define NTHREADS 4
/* "The busiest loop holds at most 10% more than the average." */
#define MAX_SKEW_PCT 10

/* ------------------------------------------------------------ helpers */

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("setrlimit(RLIMIT_NOFILE)");
    }
}

/* Starts the server with "--threads 4" and then `extra` (NULL-terminated,
 * may be NULL). */
static struct itest_server start_threads(const char *const *extra)
{
    const char *args[16] = {"--threads", "4"};
    size_t n = 2;
    for (size_t i = 0; extra && extra[i]; i++) {
        assert_true(n < sizeof args / sizeof args[0] - 1);
        args[n++] = extra[i];
    }
    args[n] = NULL;
    struct itest_server s = itest_server_start(args);
    if (s.pid <= 0)
        fail_msg("the server did not start");
    return s;
}

struct loop_figures {
    uint64_t connections, streams, accepted, deliveries;
};

/* What /stats says about the loops. */
struct thread_stats {
    uint64_t connections; /* the top-level figure */
    uint64_t threads;
    size_t n; /* entries of per_thread */
    struct loop_figures loop[16];
};

static uint64_t field_of(const char *obj, const char *key)
{
    uint64_t v = 0;
    if (!itest_json_u64(obj, key, &v))
        fail_msg("per_thread entry without \"%s\": %s", key, obj);
    return v;
}

/* Parses the per_thread array that starts at p ('['). */
static void parse_per_thread(const char *p, struct thread_stats *t)
{
    assert_int_equal(*p, '[');
    p++;
    while (*p == '{') {
        const char *close = strchr(p, '}');
        assert_non_null(close);
        assert_true(t->n < sizeof t->loop / sizeof t->loop[0]);
        char obj[256];
        size_t len = (size_t)(close - p + 1);
        assert_true(len < sizeof obj);
        memcpy(obj, p, len);
        obj[len] = 0;
        struct loop_figures *f = &t->loop[t->n++];
        f->connections = field_of(obj, "connections");
        f->streams = field_of(obj, "streams");
        f->accepted = field_of(obj, "accepted");
        f->deliveries = field_of(obj, "deliveries");
        p = close + 1;
        if (*p == ',')
            p++;
    }
    assert_int_equal(*p, ']');
}

/* GET /stats (on a connection of its own, which the figures include) and
 * reads the loops' figures. */
static void get_thread_stats(int port, struct thread_stats *t)
{
    memset(t, 0, sizeof *t);
    struct itest_response r;
    assert_int_equal(
        itest_request(port,
                      "GET /stats HTTP/1.1\r\nHost: threads.test\r\nConnection: close\r\n\r\n", &r),
        0);
    if (r.status != 200)
        itest_show_response("/stats", &r, 400);
    assert_int_equal(r.status, 200);
    if (!itest_json_u64(r.body, "connections", &t->connections) ||
        !itest_json_u64(r.body, "threads", &t->threads))
        itest_show_response("/stats without connections or threads", &r, 2000);
    const char *pt = strstr(r.body, "\"per_thread\":");
    if (!pt)
        itest_show_response("/stats without per_thread", &r, 2000);
    assert_non_null(pt);
    parse_per_thread(pt + strlen("\"per_thread\":"), t);
    itest_response_free(&r);
}

static void print_thread_stats(const char *what, const struct thread_stats *t)
{
    fprintf(stderr, "%s: connections %" PRIu64 ", threads %" PRIu64 ":", what, t->connections,
            t->threads);
    for (size_t i = 0; i < t->n; i++)
        fprintf(stderr,
                " [%zu] %" PRIu64 " conns %" PRIu64 " streams %" PRIu64 " accepted %" PRIu64
                " deliveries",
                i, t->loop[i].connections, t->loop[i].streams, t->loop[i].accepted,
                t->loop[i].deliveries);
    fputc('\n', stderr);
}

/* Every loop holds some of the streams (each stream's loop is the
 * acceptor's choice: this checks that it spread them). */
static void check_streams_on_every_loop(const char *what, const struct thread_stats *t)
{
    print_thread_stats(what, t);
    assert_int_equal(t->n, NTHREADS);
    for (size_t i = 0; i < t->n; i++)
        assert_true(t->loop[i].streams > 0);
}

/* Polls /stats until "connections" is `want` (closes take the server a
 * moment to notice); returns the last figures. */
static void wait_connections(int port, uint64_t want, struct thread_stats *t)
{
    int64_t deadline = itest_now_ms() + itest_timeout();
    for (;;) {
        get_thread_stats(port, t);
        if (t->connections == want || itest_now_ms() >= deadline)
            break;
        itest_sleep_ms(20);
    }
    if (t->connections != want)
        print_thread_stats("still not settled", t);
    assert_int_equal(t->connections, want);
}

/* 4 loops, their connections add up to the total, and the busiest holds
 * at most MAX_SKEW_PCT more than the average. */
static void assert_balanced(const char *what, const struct thread_stats *t)
{
    print_thread_stats(what, t);
    assert_int_equal(t->threads, NTHREADS);
    assert_int_equal(t->n, NTHREADS);
    uint64_t sum = 0, max = 0;
    for (size_t i = 0; i < t->n; i++) {
        sum += t->loop[i].connections;
        if (t->loop[i].connections > max)
            max = t->loop[i].connections;
    }
    assert_int_equal(sum, t->connections);
    /* max <= avg * (1 + skew), avg = sum / n, in integers. */
    if (max * t->n * 100 > sum * (100 + MAX_SKEW_PCT)) {
        fail_msg("%s: the busiest loop holds %" PRIu64 " of %" PRIu64 " connections (average %.2f)",
                 what, max, sum, (double)sum / (double)t->n);
    }
}

/* ------------------------------------------------------------- spread */

static void test_spread(void **state)
{
    (void)state;
    enum { N = 400, CLOSE = 200 };
    struct itest_server s = start_threads(NULL);
    static struct itest_sub subs[N];
    memset(subs, 0, sizeof subs);
    assert_int_equal(itest_subs_open(subs, N, s.port, "/messages?room=spread", itest_ms(10000)), N);
    struct thread_stats t;
    wait_connections(s.port, N + 1, &t); /* the streams and /stats itself */
    assert_balanced("400 streams", &t);

    /* Close every other one: connections are handed out in turn, so this
     * takes most of them from some loops and few from the others. */
    for (size_t i = 0; i < N; i += 2)
        itest_sub_close(&subs[i]);
    wait_connections(s.port, N - CLOSE + 1, &t);
    print_thread_stats("after closing every other one", &t);

    /* The acceptor fills the emptied loops first. */
    for (size_t i = 0; i < N; i += 2)
        itest_sub_start(&subs[i], s.port, "/messages?room=spread", NULL);
    assert_int_equal(itest_subs_drive(subs, N, 0, itest_ms(10000)), N);
    wait_connections(s.port, N + 1, &t);
    assert_balanced("200 closed, 200 opened", &t);

    for (size_t i = 0; i < N; i++)
        itest_sub_close(&subs[i]);
    assert_int_equal(itest_server_stop(&s), 0);
}

/* ------------------------------------------------- every loop delivers */

enum { ROOMS = 4, SUBS_PER_ROOM = 50, MSGS = 50 };

struct publisher {
    int port;
    int room;
    uint64_t ids[MSGS];
    int status; /* the first status other than 202, or 202 */
};

/* Posts MSGS messages to its room, one after the other on one keep-alive
 * connection (so their ids increase in the order of their numbers). No
 * cmocka assertion here: they fail only the main thread. */
static void *publish(void *arg)
{
    struct publisher *p = arg;
    struct itest_conn c;
    p->status = -1;
    if (itest_conn_open(&c, p->port) != 0)
        return NULL;
    char target[64];
    snprintf(target, sizeof target, "/message?room=r%d", p->room);
    p->status = 202;
    for (int k = 0; k < MSGS; k++) {
        char body[64];
        int len = snprintf(body, sizeof body, "{\"room\":%d,\"k\":%d}", p->room, k);
        int st = itest_post_message_conn(&c, target, body, (size_t)len, &p->ids[k], NULL);
        if (st != 202) {
            p->status = st;
            break;
        }
    }
    itest_conn_close(&c);
    return NULL;
}

/* Subscriber i's events are exactly the MSGS messages of room r, in order,
 * with the ids their publisher was given. */
static void check_room_events(const struct itest_sub *sub, size_t i, const struct publisher *p)
{
    if (sub->events.count != MSGS) {
        itest_print_events("subscriber events", &sub->events, 0, 10);
        fail_msg("subscriber %zu of room %d: %zu events, not %d", i, p->room, sub->events.count,
                 MSGS);
    }
    for (int k = 0; k < MSGS; k++) {
        const struct ssep_event *ev = &sub->events.ev[k];
        char want[64];
        snprintf(want, sizeof want, "{\"room\":%d,\"k\":%d}", p->room, k);
        if (strcmp(ev->data, want) != 0 || itest_event_id(ev) != p->ids[k]) {
            itest_print_events("subscriber events", &sub->events, k > 2 ? (size_t)k - 2 : 0, 6);
            fail_msg("subscriber %zu, event %d: id %s data %s, want id %" PRIu64 " data %s", i, k,
                     ev->id, ev->data, p->ids[k], want);
        }
    }
}

static void test_every_loop_delivers(void **state)
{
    (void)state;
    enum { N = ROOMS * SUBS_PER_ROOM };
    struct itest_server s = start_threads(NULL);
    static struct itest_sub subs[N];
    memset(subs, 0, sizeof subs);
    /* Room by room, so that each room's subscribers spread over the loops. */
    for (int r = 0; r < ROOMS; r++) {
        char target[64];
        snprintf(target, sizeof target, "/messages?room=r%d", r);
        assert_int_equal(itest_subs_open(subs + r * SUBS_PER_ROOM, SUBS_PER_ROOM, s.port, target,
                                         itest_ms(10000)),
                         SUBS_PER_ROOM);
    }
    struct thread_stats t;
    get_thread_stats(s.port, &t);
    check_streams_on_every_loop("before publishing", &t);

    static struct publisher pubs[ROOMS];
    pthread_t th[ROOMS];
    for (int r = 0; r < ROOMS; r++) {
        pubs[r] = (struct publisher){.port = s.port, .room = r};
        assert_int_equal(pthread_create(&th[r], NULL, publish, &pubs[r]), 0);
    }
    /* Read while they publish, so that no subscriber falls behind. */
    size_t got = itest_subs_drive(subs, N, MSGS, itest_ms(20000));
    for (int r = 0; r < ROOMS; r++) {
        pthread_join(th[r], NULL);
        assert_int_equal(pubs[r].status, 202);
    }
    assert_int_equal(got, N);
    /* Nothing more comes: no message twice. */
    itest_subs_drive(subs, N, MSGS + 1, 300);
    for (size_t i = 0; i < N; i++)
        check_room_events(&subs[i], i, &pubs[i / SUBS_PER_ROOM]);

    get_thread_stats(s.port, &t);
    print_thread_stats("after publishing", &t);
    assert_int_equal(t.n, NTHREADS);
    for (size_t i = 0; i < t.n; i++)
        assert_true(t.loop[i].deliveries > 0);

    for (size_t i = 0; i < N; i++)
        itest_sub_close(&subs[i]);
    assert_int_equal(itest_server_stop(&s), 0);
}

/* -------------------------------------------- the 202 after every fan-out */

/*
 * A publisher's 202 is written only after the message went out to every
 * caught-up subscriber of every loop: when it is read, each subscriber's
 * socket already has bytes.
 */
static void test_answer_after_every_fanout(void **state)
{
    (void)state;
    enum { N = 100, ROUNDS = 20 };
    struct itest_server s = start_threads(NULL);
    static struct itest_sub subs[N];
    memset(subs, 0, sizeof subs);
    assert_int_equal(itest_subs_open(subs, N, s.port, "/messages?room=ack", itest_timeout()), N);
    struct thread_stats t;
    get_thread_stats(s.port, &t);
    check_streams_on_every_loop("subscribers", &t);

    itest_check_answer_after_fanout(subs, N, s.port, "/message?room=ack", ROUNDS);
    for (size_t i = 0; i < N; i++)
        itest_sub_close(&subs[i]);
    assert_int_equal(itest_server_stop(&s), 0);
}

/* ------------------------------------------------------------- SIGHUP */

static void write_index(const char *dir, const char *text)
{
    char path[160];
    snprintf(path, sizeof path, "%s/index.html", dir);
    assert_int_equal(itest_write_file(path, text, strlen(text)), 0);
}

/* GET / on an open keep-alive connection; true when the body is `want`. */
static bool get_index_is(struct itest_conn *c, const char *want)
{
    struct itest_response r;
    if (!itest_conn_send(c, "GET / HTTP/1.1\r\nHost: threads.test\r\n\r\n") ||
        itest_read_response(c, &r, 0, itest_timeout()) != 0)
        return false;
    bool ok =
        r.status == 200 && r.body_len == strlen(want) && memcmp(r.body, want, r.body_len) == 0;
    if (!ok)
        itest_show_response("GET /", &r, 200);
    itest_response_free(&r);
    return ok;
}

/* Connections opened all together, so that they land on every loop; each
 * answers GET / with `want`. */
static void check_index_on_every_loop(int port, struct itest_conn *conns, size_t n,
                                      const char *want)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(itest_conn_open(&conns[i], port), 0);
    for (size_t i = 0; i < n; i++)
        if (!get_index_is(&conns[i], want))
            fail_msg("connection %zu did not answer \"%s\"", i, want);
}

static void test_sighup_every_loop(void **state)
{
    (void)state;
    enum { N = 40 };
    char dir[] = "/tmp/threads-XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_index(dir, "v1");
    const char *extra[] = {"--static", dir, NULL};
    struct itest_server s = start_threads(extra);

    static struct itest_conn before[N], after[N];
    check_index_on_every_loop(s.port, before, N, "v1");
    write_index(dir, "v2");
    assert_int_equal(kill(s.pid, SIGHUP), 0);
    /* The reload runs on a thread: wait until one connection sees it. */
    int64_t deadline = itest_now_ms() + itest_timeout();
    bool seen = false;
    while (!seen && itest_now_ms() < deadline) {
        struct itest_response r;
        assert_int_equal(itest_request(s.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
        seen = r.status == 200 && r.body_len == 2 && memcmp(r.body, "v2", 2) == 0;
        itest_response_free(&r);
        if (!seen)
            itest_sleep_ms(10);
    }
    assert_true(seen);
    /* Fresh connections, and those that were open before, on every loop. */
    check_index_on_every_loop(s.port, after, N, "v2");
    for (size_t i = 0; i < N; i++)
        if (!get_index_is(&before[i], "v2"))
            fail_msg("connection %zu opened before the reload did not answer \"v2\"", i);
    struct thread_stats t;
    get_thread_stats(s.port, &t);
    print_thread_stats("after the reload", &t);
    assert_int_equal(t.n, NTHREADS);
    for (size_t i = 0; i < t.n; i++)
        assert_true(t.loop[i].connections >= N / NTHREADS);

    for (size_t i = 0; i < N; i++) {
        itest_conn_close(&before[i]);
        itest_conn_close(&after[i]);
    }
    assert_int_equal(itest_server_stop(&s), 0);
    itest_rm_rf(dir);
}

/* ------------------------------------------------------------ SIGTERM */

/* The stream ended with a FIN and its body's last line is "retry: N". */
static void check_final_retry(struct itest_sub *sub, size_t i)
{
    if (sub->state != ITEST_SUB_CLOSED || sub->conn.reset)
        itest_print_escaped("stream body", sub->raw, sub->raw_len, 400);
    assert_int_equal(sub->state, ITEST_SUB_CLOSED);
    assert_false(sub->conn.reset);
    assert_int_equal(sub->events.count, 1);
    assert_true(sub->raw_len < ITEST_SUB_RAW_MAX - 1);
    const char *last = NULL;
    for (const char *p = strstr(sub->raw, "retry: "); p; p = strstr(p + 1, "retry: "))
        last = p;
    if (!last || last < strstr(sub->raw, "data: ")) {
        itest_print_escaped("stream body", sub->raw, sub->raw_len, 400);
        fail_msg("stream %zu: no retry: after its event", i);
    }
    char *end;
    unsigned long retry = strtoul(last + 7, &end, 10);
    assert_true(end > last + 7);
    assert_true(*end == '\n');
    while (*end == '\n')
        end++;
    assert_int_equal((size_t)(end - sub->raw), sub->raw_len);
    assert_true(retry > 0);
    assert_int_equal(sub->parser.retry_ms, retry);
}

static void test_sigterm_every_loop(void **state)
{
    (void)state;
    enum { N = 40 };
    const char *extra[] = {"--retry-ms", "1000", NULL};
    struct itest_server s = start_threads(extra);
    static struct itest_sub subs[N];
    memset(subs, 0, sizeof subs);
    assert_int_equal(itest_subs_open(subs, N, s.port, "/messages?room=bye", itest_timeout()), N);
    struct thread_stats t;
    get_thread_stats(s.port, &t);
    check_streams_on_every_loop("streams", &t);
    assert_int_equal(
        itest_post_message(s.port, "/message?room=bye", "{\"last\":true}", 13, NULL, NULL), 202);
    assert_int_equal(itest_subs_drive(subs, N, 1, itest_timeout()), N);

    assert_int_equal(itest_server_signal(&s, SIGTERM, itest_ms(5000)), 0);
    itest_subs_drive(subs, N, SIZE_MAX, itest_timeout());
    for (size_t i = 0; i < N; i++) {
        check_final_retry(&subs[i], i);
        itest_sub_close(&subs[i]);
    }
}

/* -------------------------------------------------------- max-clients */

/* GET /messages on a fresh connection; its status. */
static int stream_status(int port)
{
    return itest_request_status(
        port, "GET /messages?room=full HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\n\r\n",
        ITEST_RESP_HEAD_ONLY);
}

static void test_max_clients_global(void **state)
{
    (void)state;
    enum { MAX = 20 };
    const char *extra[] = {"--max-clients", "20", NULL};
    struct itest_server s = start_threads(extra);
    static struct itest_sub subs[MAX];
    memset(subs, 0, sizeof subs);
    assert_int_equal(itest_subs_open(subs, MAX - 1, s.port, "/messages?room=full", itest_timeout()),
                     MAX - 1);
    /* 19 streams and this request: every loop holds some. */
    struct thread_stats t;
    wait_connections(s.port, MAX, &t);
    check_streams_on_every_loop("19 streams", &t);
    /* The 20th, once the /stats connection is gone. */
    int64_t deadline = itest_now_ms() + itest_timeout();
    while (itest_sub_open(&subs[MAX - 1], s.port, "/messages?room=full", itest_timeout()) != 0) {
        itest_sub_close(&subs[MAX - 1]);
        assert_true(itest_now_ms() < deadline);
        itest_sleep_ms(20);
    }
    /* The 21st, whichever loop it would have gone to. */
    for (int k = 0; k < 8; k++)
        assert_int_equal(stream_status(s.port), 503);

    /* A slot freed on any loop is one more connection for all. */
    itest_sub_close(&subs[0]);
    int st = 503;
    deadline = itest_now_ms() + itest_timeout();
    while ((st = stream_status(s.port)) == 503 && itest_now_ms() < deadline)
        itest_sleep_ms(20);
    assert_int_equal(st, 200);

    for (size_t i = 0; i < MAX; i++)
        itest_sub_close(&subs[i]);
    assert_int_equal(itest_server_stop(&s), 0);
}

/* ================================================================== main */

/* ------------------------------------------------------ churn of rooms */

/*
 * Rooms come and go on every loop at once: four publishers post to 40
 * rooms under --max-rooms 8 (rooms without subscribers are evicted to make
 * way), while subscribers on all loops join rooms with history, some
 * reading and some not, and leave, some by a reset. Nothing may crash or
 * hang (ASan and TSan runs of this test are the real check); afterwards
 * the server still delivers.
 */
#define CHURN_PUBLISHERS 4
#define CHURN_ROUNDS     3000 /* at most: they stop when the subscribers are done */
#define CHURN_PAD        8000 /* bytes of padding per message */

struct churner {
    int port;
    unsigned seed;
    int failures; /* answers other than 202 and 503 */
    atomic_bool *stop;
};

static void *churn_publish(void *arg)
{
    struct churner *ch = arg;
    struct itest_conn c;
    if (itest_conn_open(&c, ch->port) != 0) {
        ch->failures++;
        return NULL;
    }
    static _Thread_local char pad[CHURN_PAD + 1];
    memset(pad, 'x', CHURN_PAD);
    for (int k = 0; k < CHURN_ROUNDS && !atomic_load(ch->stop); k++) {
        char target[64];
        static _Thread_local char body[CHURN_PAD + 64];
        snprintf(target, sizeof target, "/message?room=c%u", (ch->seed + (unsigned)k * 7u) % 40);
        int len = snprintf(body, sizeof body, "{\"k\":%d,\"pad\":\"%s\"}", k, pad);
        int st = itest_post_message_conn(&c, target, body, (size_t)len, NULL, NULL);
        /* 503: every room has subscribers, none can be evicted (allowed). */
        if (st != 202 && st != 503) {
            ch->failures++;
            itest_conn_close(&c);
            if (itest_conn_open(&c, ch->port) != 0)
                return NULL;
        }
    }
    itest_conn_close(&c);
    return NULL;
}

static void test_room_churn(void **state)
{
    (void)state;
    raise_nofile();
    const char *const extra[] = {"--max-rooms", "8", "--history", "4", NULL};
    struct itest_server s = start_threads(extra);
    pthread_t th[CHURN_PUBLISHERS];
    struct churner ch[CHURN_PUBLISHERS];
    static atomic_bool stop;
    atomic_store(&stop, false);
    for (unsigned i = 0; i < CHURN_PUBLISHERS; i++) {
        ch[i] = (struct churner){s.port, i * 11u, 0, &stop};
        assert_int_equal(pthread_create(&th[i], NULL, churn_publish, &ch[i]), 0);
    }
    enum { SUBS = 24 };
    static struct itest_sub subs[SUBS];
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < SUBS; i++) {
            char target[64];
            /* Four rooms a round hold subscribers; the other four of
             * --max-rooms churn through the publishers' forty. */
            snprintf(target, sizeof target, "/messages?room=c%d&history=3",
                     (round * 4 + i % 4) % 40);
            /* The second half is never read. */
            (void)itest_sub_start(&subs[i], s.port, target, NULL);
        }
        (void)itest_subs_drive(subs, SUBS / 2, 1, itest_ms(300));
        itest_sleep_ms(150); /* while the publishers keep going */
        for (int i = 0; i < SUBS; i++) {
            if (i % 3 == 0)
                itest_sub_abort(&subs[i]); /* a reset */
            else
                itest_sub_close(&subs[i]);
        }
    }
    atomic_store(&stop, true);
    for (unsigned i = 0; i < CHURN_PUBLISHERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ch[i].failures, 0);
    }
    /* What the churn went through (the lag closes depend on timing). */
    struct itest_response r;
    assert_int_equal(
        itest_request(s.port, "GET /stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r),
        0);
    uint64_t published = 0, dropped = 0, rooms = 0;
    assert_true(itest_json_u64(r.body, "messages_published", &published));
    assert_true(itest_json_u64(r.body, "slow_subscribers_dropped", &dropped));
    assert_true(itest_json_u64(r.body, "rooms", &rooms));
    itest_response_free(&r);
    printf("room churn: %" PRIu64 " published, %" PRIu64 " slow subscribers dropped, %" PRIu64
           " rooms at the end (--max-rooms 8)\n",
           published, dropped, rooms);
    assert_true(rooms <= 8);
    /* Still serving: a fresh subscriber gets a fresh message. */
    struct itest_sub sub;
    assert_int_equal(itest_sub_start(&sub, s.port, "/messages?room=after", NULL), 0);
    assert_true(itest_sub_wait(&sub, 0, itest_timeout()));
    uint64_t id = 0;
    assert_int_equal(itest_post_message(s.port, "/message?room=after", "{}", 2, &id, NULL), 202);
    assert_true(itest_sub_wait(&sub, 1, itest_timeout()));
    assert_int_equal(itest_event_id(&sub.events.ev[0]), id);
    itest_sub_close(&sub);
    assert_int_equal(itest_server_stop(&s), 0);
}

int main(void)
{
    itest_init(300);
    raise_nofile();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_every_loop_delivers),
        cmocka_unit_test(test_answer_after_every_fanout),
        cmocka_unit_test(test_sighup_every_loop),
        cmocka_unit_test(test_sigterm_every_loop),
        cmocka_unit_test(test_max_clients_global),
        cmocka_unit_test(test_room_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
