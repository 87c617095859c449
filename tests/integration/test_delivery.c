/*
 * test_delivery: what subscribers receive, and when -- message ids (unique,
 * consecutive across rooms, time-based so they grow across restarts), the
 * per-room rings (--history, --history-bytes), resuming with Last-Event-ID
 * or ?lastEventId= (replay, then live, no gap and no duplicate; a `reset`
 * event when the ring cannot vouch for the requested id), ?history=N, rooms,
 * event types, sender exclusion (?client=), the stream preamble (jittered
 * retry), heartbeats, slow subscribers being cut off, a 1000 x 1000 fan-out,
 * resuming under load, and the body size limit.
 *
 * Every test gets a fresh server (its arguments come from the test's
 * fixture), so ids, rings and counts are its own. Tests that open 1000+
 * sockets need RLIMIT_NOFILE, which main() raises to the hard limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

/* ================================================================ fixtures */

/* Extra arguments of a test's server, started by itest_setup_server and
 * stopped by itest_teardown_server (see T() in main()). */
static const char *const ARGS_HISTORY5[] = {"--history", "5", NULL};
static const char *const ARGS_HISTORY_BYTES[] = {"--history-bytes", "1024", NULL};
static const char *const ARGS_HISTORY50[] = {"--history", "50", NULL};
static const char *const ARGS_RETRY10S[] = {"--retry-ms", "10000", NULL};
static const char *const ARGS_HEARTBEAT1[] = {"--heartbeat", "1", NULL};
static const char *const ARGS_MAX_BODY[] = {"--max-body", "1024", NULL};

/* ============================================================ file limits */

static rlim_t nofile_limit;

/* Raises the soft RLIMIT_NOFILE to the hard limit; remembers the result. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("getrlimit(RLIMIT_NOFILE)");
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("setrlimit(RLIMIT_NOFILE)");
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    nofile_limit = rl.rlim_cur;
}

/* Fails the test with a clear message when fewer than `need` fds may be open
 * (the server, a child of this process, inherits the same limit). */
static void require_fds(rlim_t need)
{
    if (nofile_limit != RLIM_INFINITY && nofile_limit < need) {
        fail_msg("RLIMIT_NOFILE is %llu (after raising the soft limit to the hard limit); "
                 "this test needs at least %llu open files: raise the hard limit "
                 "(ulimit -Hn) and run again",
                 (unsigned long long)nofile_limit, (unsigned long long)need);
    }
}

/* ============================================================== utilities */

static uint64_t realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The n of a body made by make_body ({"n":<n>...}), or -1. */
static long body_n(const char *data, size_t len)
{
    static const char pfx[] = "{\"n\":";
    if (len < sizeof pfx || memcmp(data, pfx, sizeof pfx - 1) != 0)
        return -1;
    long v = 0;
    size_t i = sizeof pfx - 1;
    if (data[i] < '0' || data[i] > '9')
        return -1;
    while (i < len && data[i] >= '0' && data[i] <= '9' && v < 100000000)
        v = v * 10 + (data[i++] - '0');
    if (i >= len || (data[i] != ',' && data[i] != '}'))
        return -1;
    return v;
}

/* {"n":<n>} or, with pad > 0, {"n":<n>,"p":"xxx..."} with pad x's. Returns
 * the length (the buffer must hold pad + 40 bytes). */
static size_t make_body(char *out, size_t cap, size_t n, size_t pad)
{
    assert_true(cap >= pad + 40);
    if (pad == 0)
        return (size_t)snprintf(out, cap, "{\"n\":%zu}", n);
    size_t len = (size_t)snprintf(out, cap, "{\"n\":%zu,\"p\":\"", n);
    memset(out + len, 'x', pad);
    len += pad;
    memcpy(out + len, "\"}", 3);
    return len + 2;
}

/* Asserts that evs->ev[from..from+n) carry exactly ids[0..n) (type
 * "message"), and that their data are bodies with n = ns[i] when ns is set. */
static void expect_ids(const struct ssep_list *evs, size_t from, const uint64_t *ids,
                       const long *ns, size_t n, const char *what)
{
    bool ok = evs->count >= from + n;
    for (size_t i = 0; ok && i < n; i++) {
        const struct ssep_event *ev = &evs->ev[from + i];
        uint64_t id = 0;
        ok = itest_parse_u64(ev->id, &id) && id == ids[i] && strcmp(ev->type, "message") == 0 &&
             (!ns || body_n(ev->data, ev->data_len) == ns[i]);
        if (!ok)
            fprintf(stderr,
                    "%s: event %zu: want id %" PRIu64 " n %ld, got type=%s id=%s data=%.60s\n",
                    what, from + i, ids[i], ns ? ns[i] : -1L, ev->type, ev->id, ev->data);
    }
    if (!ok)
        itest_print_events(what, evs, 0, 40);
    assert_true(ok);
}

/* Asserts that ev is a reset event pointing at `oldest`. */
static void expect_reset(const struct ssep_event *ev, uint64_t oldest, const char *what)
{
    char data[32], id[32];
    snprintf(data, sizeof data, "%" PRIu64, oldest);
    snprintf(id, sizeof id, "%" PRIu64, oldest - 1);
    if (strcmp(ev->type, "reset") != 0 || strcmp(ev->data, data) != 0 || strcmp(ev->id, id) != 0)
        fprintf(stderr,
                "%s: want reset event data=%s id=%s; got type=%s data=\"%.60s\" id=\"%s\"\n", what,
                data, id, ev->type, ev->data, ev->id);
    assert_string_equal(ev->type, "reset");
    assert_string_equal(ev->data, data);
    assert_string_equal(ev->id, id);
}

/* ------------------------------------------------------------ publishing */

/* POSTs body on c; asserts 202 and returns the id (and clients). */
static uint64_t post_ok(struct itest_conn *c, const char *target, const char *body, long *clients)
{
    uint64_t id = 0;
    long cl = -1;
    int st = itest_post_message_conn(c, target, body, strlen(body), &id, &cl);
    if (st != 202)
        fprintf(stderr, "POST %s %.80s: status %d\n", target ? target : "/message", body, st);
    assert_int_equal(st, 202);
    if (clients)
        *clients = cl;
    return id;
}

/* POSTs {} until the answer says `want` clients (closed subscribers may take
 * the server a moment to notice); returns the last count. */
static long post_until_clients(struct itest_conn *c, long want)
{
    int64_t deadline = itest_now_ms() + itest_ms(2000);
    long clients = -1;
    do {
        post_ok(c, NULL, "{}", &clients);
        if (clients == want)
            break;
        itest_sleep_ms(10);
    } while (itest_now_ms() < deadline);
    return clients;
}

/* POSTs make_body(first_n + i, pad) for i in [0, count) on c, pipelined
 * (all requests written, then all answers read). Stores the ids; asserts
 * each answer is 202 with `want_clients` clients (unless it is -1). */
static void post_batch(struct itest_conn *c, const char *target, size_t first_n, size_t count,
                       size_t pad, long want_clients, uint64_t *ids)
{
    size_t cap = count * (pad + 256), len = 0;
    char *buf = malloc(cap);
    char *body = malloc(pad + 40);
    assert_non_null(buf);
    assert_non_null(body);
    for (size_t i = 0; i < count; i++) {
        size_t bl = make_body(body, pad + 40, first_n + i, pad);
        len += (size_t)snprintf(buf + len, cap - len,
                                "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                                target ? target : "/message", bl);
        memcpy(buf + len, body, bl);
        len += bl;
    }
    free(body);
    bool sent = itest_conn_sendn(c, buf, len);
    free(buf);
    assert_true(sent);
    for (size_t i = 0; i < count; i++) {
        struct itest_response r;
        assert_int_equal(itest_read_response(c, &r, 0, itest_timeout()), 0);
        uint64_t id = 0, clients = 0;
        bool ok = r.status == 202 && itest_json_u64(r.body, "id", &id) &&
                  itest_json_u64(r.body, "clients", &clients) &&
                  (want_clients < 0 || (long)clients == want_clients);
        if (!ok)
            fprintf(stderr, "pipelined POST %zu: status %d body \"%.100s\" (want clients %ld)\n", i,
                    r.status, r.body ? r.body : "", want_clients);
        itest_response_free(&r);
        assert_true(ok);
        ids[i] = id;
    }
}

/* Sends a raw request on a fresh connection and reads the response head and
 * body (or only the head, for a stream). Asserts the status; for an error,
 * asserts a JSON error body. */
static void expect_status_raw(int port, const char *raw, size_t len, bool head_only, int want,
                              const char *what)
{
    struct itest_response r;
    assert_int_equal(itest_request_n(port, raw, len, head_only ? ITEST_RESP_HEAD_ONLY : 0, &r), 0);
    if (r.status != want)
        fprintf(stderr, "%s: want status %d, got %d %s (body \"%.100s\")\n", what, want, r.status,
                r.reason, r.body ? r.body : "");
    assert_int_equal(r.status, want);
    if (want >= 400 && !head_only) {
        if (!itest_is_json_error(&r))
            fprintf(stderr, "%s: error body is not {\"error\":...}: \"%.100s\"\n", what, r.body);
        assert_true(itest_is_json_error(&r));
    }
    itest_response_free(&r);
}

/* POST target with body on a fresh connection; asserts the status. */
static void expect_post_status(int port, const char *target, const char *body, int want)
{
    size_t blen = strlen(body);
    size_t cap = strlen(target) + blen + 256;
    char *raw = malloc(cap);
    assert_non_null(raw);
    int n = snprintf(raw, cap,
                     "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     target, blen, body);
    char what[256];
    snprintf(what, sizeof what, "POST %.120s body %.80s", target, body);
    expect_status_raw(port, raw, (size_t)n, false, want, what);
    free(raw);
}

/* GET target on a fresh connection; asserts the status from the head alone
 * (a wrongly accepted request would be an endless stream). An error must be
 * application/json. */
static void expect_get_status(int port, const char *target, const char *extra_headers, int want)
{
    char raw[1024];
    int n = snprintf(raw, sizeof raw,
                     "GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n%s"
                     "Connection: close\r\n\r\n",
                     target, extra_headers ? extra_headers : "");
    assert_true(n > 0 && (size_t)n < sizeof raw);
    char what[256];
    snprintf(what, sizeof what, "GET %.200s", target);
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    assert_true(itest_conn_sendn(&c, raw, (size_t)n));
    struct itest_response r;
    assert_int_equal(itest_read_response(&c, &r, ITEST_RESP_HEAD_ONLY, itest_timeout()), 0);
    if (r.status != want)
        fprintf(stderr, "%s: want status %d, got %d %s (Content-Type %s; then \"%.80s\")\n", what,
                want, r.status, r.reason,
                itest_header(&r, "Content-Type") ? itest_header(&r, "Content-Type") : "(none)",
                c.buf ? c.buf : "");
    int status = r.status;
    bool json = itest_header_starts(&r, "Content-Type", "application/json");
    itest_response_free(&r);
    itest_conn_close(&c);
    assert_int_equal(status, want);
    if (want >= 400)
        assert_true(json);
}

/* ----------------------------------------------------------- subscribers */

/* Opens a subscriber with optional extra headers and waits for its head. */
static void open_sub(struct itest_sub *s, int port, const char *target, const char *extra)
{
    int rc = itest_sub_start(s, port, target, extra);
    bool ok = rc == 0 && itest_subs_drive(s, 1, 0, itest_timeout()) == 1;
    if (!ok)
        fprintf(stderr, "subscriber %s (%s): state %d: %s\n", target, extra ? extra : "",
                (int)s->state, s->error[0] ? s->error : "no head in time");
    assert_true(ok);
}

/* Reads what has arrived on subs[0..n) without waiting. */
static void pump(struct itest_sub *subs, size_t n)
{
    itest_subs_drive(subs, n, SIZE_MAX, 0);
}

/* Waits until subs[i] has want[i] events, gives duplicates a short grace
 * period (once for the whole group), then asserts each has exactly want[i]. */
static void expect_counts(struct itest_sub *subs, size_t n, const size_t *want, const char *what)
{
    for (size_t i = 0; i < n; i++)
        itest_sub_wait(&subs[i], want[i], itest_timeout());
    itest_subs_drive(subs, n, SIZE_MAX, 250);
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        if (subs[i].events.count == want[i])
            continue;
        ok = false;
        fprintf(stderr, "%s: subscriber %zu: want %zu events (state %d %s)\n", what, i, want[i],
                (int)subs[i].state, subs[i].error);
        itest_print_events(what, &subs[i].events, 0, 40);
    }
    assert_true(ok);
}

static void expect_count(struct itest_sub *s, size_t n, const char *what)
{
    expect_counts(s, 1, &n, what);
}

/*
 * A tally checks a stream without storing it (for thousands of subscribers x
 * thousands of events): event k (from 0) must be of type "message", carry
 * id first_id + k and a body with n = first_n + k. first_id 0 = take the
 * first event's id.
 */
struct tally {
    uint64_t first_id;
    size_t first_n;
    size_t count;
    size_t bad;
    char why[200];
};

static void tally_on_event(void *ctx, const struct ssep_event *ev)
{
    struct tally *t = ctx;
    uint64_t id = 0;
    bool id_ok = itest_parse_u64(ev->id, &id);
    if (id_ok && t->count == 0 && t->first_id == 0)
        t->first_id = id;
    long n = body_n(ev->data, ev->data_len);
    if (!id_ok || id != t->first_id + t->count || strcmp(ev->type, "message") != 0 ||
        n != (long)(t->first_n + t->count)) {
        if (t->bad++ == 0)
            snprintf(t->why, sizeof t->why,
                     "event %zu: want id %" PRIu64 " n %zu, got type=%s id=%s data=%.60s", t->count,
                     t->first_id + t->count, t->first_n + t->count, ev->type, ev->id, ev->data);
    }
    t->count++;
}

/* Makes subscriber s report its events to t instead of storing them. Call
 * right after itest_sub_start. */
static void sub_tally(struct itest_sub *s, struct tally *t)
{
    memset(t, 0, sizeof *t);
    s->parser.on_event = tally_on_event;
    s->parser.ctx = t;
}

/* Drives tallied subscribers until each has `want` events (or ended), or
 * timeout_ms passed (0: one non-blocking pass). Returns how many have
 * exactly reached `want` while still streaming. */
static size_t drive_tallies(struct itest_sub *subs, const struct tally *t, size_t n, size_t want,
                            int timeout_ms)
{
    struct pollfd *pfd = calloc(n, sizeof *pfd);
    size_t *idx = calloc(n, sizeof *idx);
    assert_non_null(pfd);
    assert_non_null(idx);
    int64_t deadline = itest_now_ms() + timeout_ms;
    for (;;) {
        size_t active = 0;
        for (size_t i = 0; i < n; i++) {
            short ev = itest_sub_poll_events(&subs[i]);
            if (!ev || t[i].count >= want)
                continue;
            pfd[active].fd = subs[i].conn.fd;
            pfd[active].events = ev;
            pfd[active].revents = 0;
            idx[active++] = i;
        }
        if (active == 0)
            break;
        int64_t left = deadline - itest_now_ms();
        if (left < 0)
            left = 0;
        int rc = poll(pfd, active, (int)left);
        if (rc < 0 && errno != EINTR)
            break;
        for (size_t k = 0; rc > 0 && k < active; k++)
            if (pfd[k].revents)
                itest_sub_step(&subs[idx[k]]);
        if (left == 0)
            break;
    }
    free(pfd);
    free(idx);
    size_t done = 0;
    for (size_t i = 0; i < n; i++)
        done += subs[i].state == ITEST_SUB_STREAM && t[i].count >= want;
    return done;
}

/* Reports the first few tallies that are not exactly `want` clean events. */
static size_t report_tallies(const struct itest_sub *subs, const struct tally *t, size_t n,
                             size_t want, uint64_t first_id, const char *what)
{
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        bool ok = t[i].count == want && t[i].bad == 0 && t[i].first_id == first_id &&
                  subs[i].state == ITEST_SUB_STREAM;
        if (!ok && wrong++ < 5)
            fprintf(stderr,
                    "%s: subscriber %zu: %zu events (want %zu), first id %" PRIu64 " (want %" PRIu64
                    "), %zu bad%s%s, state %d %s\n",
                    what, i, t[i].count, want, t[i].first_id, first_id, t[i].bad,
                    t[i].bad ? ": " : "", t[i].why, (int)subs[i].state, subs[i].error);
    }
    return wrong;
}

/* ================================================================== tests */

/* ---------------------------------------------------------------- ids */

static void test_ids_consecutive_across_rooms(void **state)
{
    int port = itest_state_port(state);
    static const char *const targets[] = {"/message", "/message?room=alpha", "/message?room=beta"};
    static const char *const streams[] = {"/messages", "/messages?room=alpha",
                                          "/messages?room=beta"};
    struct itest_sub subs[3];
    for (int r = 0; r < 3; r++)
        open_sub(&subs[r], port, streams[r], NULL);

    enum { N = 30 };
    uint64_t ids[N];
    uint64_t room_ids[3][N];
    long room_ns[3][N];
    size_t room_count[3] = {0, 0, 0};
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    for (int i = 0; i < N; i++) {
        int r = (i * 7 + i / 3) % 3; /* an irregular mix of rooms */
        char body[64];
        make_body(body, sizeof body, (size_t)i, 0);
        long clients = -1;
        ids[i] = post_ok(&c, targets[r], body, &clients);
        assert_int_equal(clients, 1);
        if (i > 0) {
            if (ids[i] != ids[i - 1] + 1)
                fprintf(stderr, "id %d: %" PRIu64 " after %" PRIu64 "\n", i, ids[i], ids[i - 1]);
            assert_true(ids[i] == ids[i - 1] + 1);
        }
        room_ids[r][room_count[r]] = ids[i];
        room_ns[r][room_count[r]++] = i;
    }
    itest_conn_close(&c);

    /* The id: line of each event is the id the POST answer gave. */
    expect_counts(subs, 3, room_count, "rooms");
    for (int r = 0; r < 3; r++) {
        assert_true(room_count[r] > 0);
        expect_ids(&subs[r].events, 0, room_ids[r], room_ns[r], room_count[r], streams[r]);
        itest_sub_close(&subs[r]);
    }
}

/* Starts a server, posts one message, stops the server; returns the id. */
static uint64_t one_run_id(uint64_t *t_before, uint64_t *t_after)
{
    *t_before = realtime_us();
    struct itest_server s = itest_server_start(NULL);
    assert_true(s.pid > 0);
    uint64_t id = 0;
    int st = itest_post_message(s.port, NULL, "{}", 2, &id, NULL);
    *t_after = realtime_us();
    int ex = itest_server_stop(&s);
    assert_int_equal(st, 202);
    assert_int_equal(ex, 0);
    return id;
}

static void test_ids_grow_across_restarts(void **state)
{
    (void)state;
    uint64_t b1, a1, b2, a2;
    uint64_t id1 = one_run_id(&b1, &a1);
    uint64_t id2 = one_run_id(&b2, &a2);
    fprintf(stderr, "first run id %" PRIu64 ", second run id %" PRIu64 "\n", id1, id2);
    assert_true(id2 > id1);
    /* Time-based: microseconds since the epoch, taken when the server began. */
    if (id1 < b1 || id1 > a1 || id2 < b2 || id2 > a2)
        fprintf(stderr,
                "ids are not the wall clock in us: run 1 [%" PRIu64 ", %" PRIu64 "] got %" PRIu64
                ", run 2 [%" PRIu64 ", %" PRIu64 "] got %" PRIu64 "\n",
                b1, a1, id1, b2, a2, id2);
    assert_true(id1 >= b1 && id1 <= a1);
    assert_true(id2 >= b2 && id2 <= a2);
}

/* ---------------------------------------------------------------- rings */

/* Opens target (a ?history= stream) and expects exactly ids[0..n) replayed. */
static void expect_retained(int port, const char *target, const uint64_t *ids, const long *ns,
                            size_t n)
{
    struct itest_sub s;
    open_sub(&s, port, target, NULL);
    expect_count(&s, n, target);
    expect_ids(&s.events, 0, ids, ns, n, target);
    itest_sub_close(&s);
}

static void test_ring_history_frames_per_room(void **state)
{
    int port = itest_state_port(state); /* --history 5 */
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    uint64_t a[10], b[3], d[7];
    post_batch(&c, "/message?room=a", 0, 10, 0, 0, a);
    post_batch(&c, "/message?room=b", 100, 3, 0, 0, b);
    post_batch(&c, NULL, 200, 7, 0, 0, d);
    itest_conn_close(&c);

    long na[5] = {5, 6, 7, 8, 9}, nb[3] = {100, 101, 102}, nd[5] = {202, 203, 204, 205, 206};
    /* Room a keeps its last 5; room b's 3 were not evicted by a's traffic. */
    expect_retained(port, "/messages?room=a&history=1000", a + 5, na, 5);
    expect_retained(port, "/messages?room=b&history=1000", b, nb, 3);
    expect_retained(port, "/messages?history=1000", d + 2, nd, 5);
}

static void test_ring_history_bytes(void **state)
{
    int port = itest_state_port(state); /* --history-bytes 1024 */
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    uint64_t first = post_ok(&c, NULL, "{}", NULL);
    /* Size the payload so each frame ("id: N\ndata: P\n\n") is 300 bytes:
     * three fit in 1024 bytes, four do not. */
    char digits[32];
    size_t dl = (size_t)snprintf(digits, sizeof digits, "%" PRIu64, first + 20);
    size_t frame = 300;
    size_t payload = frame - (4 + dl + 1 + 6 + 1 + 1);
    char body[400];
    uint64_t ids[10];
    long ns[10];
    for (size_t i = 0; i < 10; i++) {
        /* {"n":i,"p":"x..."} with the pad making the payload exactly `payload`. */
        size_t head = (size_t)snprintf(body, sizeof body, "{\"n\":%zu,\"p\":\"", i);
        size_t bl = make_body(body, sizeof body, i, payload - head - 2);
        assert_int_equal(bl, payload);
        ids[i] = post_ok(&c, NULL, body, NULL);
        ns[i] = (long)i;
    }
    itest_conn_close(&c);
    /* The frame size assumed the ids' digit count: it did not change. */
    assert_int_equal(dl, (size_t)snprintf(digits, sizeof digits, "%" PRIu64, ids[9]));
    expect_retained(port, "/messages?history=1000", ids + 7, ns + 7, 3);
}

/* --------------------------------------------------------------- resume */

static void test_resume_header_and_query(void **state)
{
    int port = itest_state_port(state);
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    uint64_t ids[7];
    post_batch(&c, NULL, 0, 6, 0, 0, ids);
    long ns[7] = {0, 1, 2, 3, 4, 5, 6};

    char hdr[64], target[128];
    struct itest_sub s[5];
    /* Header. */
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", ids[2]);
    open_sub(&s[0], port, "/messages", hdr);
    /* Query. */
    snprintf(target, sizeof target, "/messages?lastEventId=%" PRIu64, ids[1]);
    open_sub(&s[1], port, target, NULL);
    /* Both: the header wins, the query value is stale. */
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", ids[4]);
    snprintf(target, sizeof target, "/messages?lastEventId=%" PRIu64, ids[0]);
    open_sub(&s[2], port, target, hdr);
    /* The last id: nothing to replay. */
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", ids[5]);
    open_sub(&s[3], port, "/messages", hdr);
    /* Header wins even when the query is newer. */
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", ids[0]);
    snprintf(target, sizeof target, "/messages?lastEventId=%" PRIu64, ids[5]);
    open_sub(&s[4], port, target, hdr);

    static const size_t from[5] = {3, 2, 5, 6, 1};
    size_t want[5];
    for (int k = 0; k < 5; k++)
        want[k] = 6 - from[k];
    expect_counts(s, 5, want, "replay");
    for (int k = 0; k < 5; k++) {
        expect_ids(&s[k].events, 0, ids + from[k], ns + from[k], 6 - from[k], "replay");
    }
    /* Then live: the next message once, right after the replay. */
    ids[6] = post_ok(&c, NULL, "{\"n\":6}", NULL);
    itest_conn_close(&c);
    for (int k = 0; k < 5; k++)
        want[k] = 7 - from[k];
    expect_counts(s, 5, want, "live after replay");
    for (int k = 0; k < 5; k++) {
        expect_ids(&s[k].events, 0, ids + from[k], ns + from[k], 7 - from[k], "live after replay");
        itest_sub_close(&s[k]);
    }
}

static void test_resume_while_publishing(void **state)
{
    int port = itest_state_port(state);
    enum { PRE = 100, ROUNDS = 10, PER_ROUND = 10, TOTAL = PRE + ROUNDS * PER_ROUND };
    enum { PAD = 2000 }; /* replays of ~200 KB: several writes each */
    uint64_t ids[TOTAL];
    long ns[TOTAL];
    for (size_t i = 0; i < TOTAL; i++)
        ns[i] = (long)i;
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    post_batch(&c, NULL, 0, PRE, PAD, 0, ids);

    struct itest_sub subs[ROUNDS];
    size_t after[ROUNDS];
    for (size_t k = 0; k < ROUNDS; k++) {
        /* Resume from an id that keeps getting older relative to the head. */
        after[k] = k * 9 + 3;
        char hdr[64], target[128];
        snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", ids[after[k]]);
        snprintf(target, sizeof target, "/messages?lastEventId=%" PRIu64, ids[after[k]]);
        if (k % 2 == 0)
            itest_sub_start(&subs[k], port, "/messages", hdr);
        else
            itest_sub_start(&subs[k], port, target, NULL);
        /* Get the request out, then publish at once: the server sees the
         * resume and new messages together, during the replay. */
        for (int i = 0; i < 20 && subs[k].state < ITEST_SUB_HEAD; i++) {
            itest_sub_step(&subs[k]);
            if (subs[k].state < ITEST_SUB_HEAD)
                itest_sleep_ms(1);
        }
        assert_int_equal(subs[k].state >= ITEST_SUB_HEAD, 1);
        post_batch(&c, NULL, PRE + k * PER_ROUND, PER_ROUND, PAD, -1, ids + PRE + k * PER_ROUND);
        pump(subs, k + 1);
    }
    itest_conn_close(&c);
    for (size_t i = 1; i < TOTAL; i++)
        assert_true(ids[i] == ids[i - 1] + 1);

    size_t want[ROUNDS];
    for (size_t k = 0; k < ROUNDS; k++)
        want[k] = TOTAL - after[k] - 1;
    expect_counts(subs, ROUNDS, want, "resumers");
    for (size_t k = 0; k < ROUNDS; k++) {
        char what[64];
        snprintf(what, sizeof what, "resumer %zu (after n=%zu)", k, after[k]);
        expect_ids(&subs[k].events, 0, ids + after[k] + 1, ns + after[k] + 1, want[k], what);
        itest_sub_close(&subs[k]);
    }
}

static void test_resume_reset(void **state)
{
    int port = itest_state_port(state); /* --history 5 */
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    uint64_t ids[11];
    long ns[11];
    for (size_t i = 0; i < 11; i++)
        ns[i] = (long)i;
    post_batch(&c, NULL, 0, 10, 0, 0, ids); /* the ring keeps ids[5..9] */

    struct {
        bool header;         /* Last-Event-ID header, else ?lastEventId= */
        uint64_t value;      /* the id given ... */
        const char *literal; /* ... or this text instead */
        bool reset;
    } cases[] = {
        {true, ids[1], NULL, true},           /* evicted long ago */
        {false, ids[3], NULL, true},          /* ids[4], after it, is gone */
        {true, ids[4], NULL, false},          /* nothing after it was lost */
        {false, ids[4], NULL, false},         /* same, by query */
        {true, ids[9] + 1, NULL, true},       /* never issued */
        {true, ids[9] + 100000, NULL, true},  /* never issued */
        {false, ids[9] + 100000, NULL, true}, /* never issued */
        {true, 0, "abc", true},               /* not a number */
        {false, 0, "abc", true},              /* not a number */
        {false, 0, "-1", true},               /* not a number */
    };
    enum { NC = sizeof cases / sizeof cases[0] };
    struct itest_sub s[NC];
    for (size_t k = 0; k < NC; k++) {
        char val[32], hdr[96], target[128];
        if (cases[k].literal)
            snprintf(val, sizeof val, "%s", cases[k].literal);
        else
            snprintf(val, sizeof val, "%" PRIu64, cases[k].value);
        if (cases[k].header) {
            snprintf(hdr, sizeof hdr, "Last-Event-ID: %s\r\n", val);
            open_sub(&s[k], port, "/messages", hdr);
        } else {
            snprintf(target, sizeof target, "/messages?lastEventId=%s", val);
            open_sub(&s[k], port, target, NULL);
        }
    }
    size_t want[NC];
    for (size_t k = 0; k < NC; k++)
        want[k] = (cases[k].reset ? 1 : 0) + 5;
    expect_counts(s, NC, want, "resume with reset");
    for (size_t k = 0; k < NC; k++) {
        char what[96];
        snprintf(what, sizeof what, "case %zu (%s)", k, cases[k].reset ? "reset" : "no reset");
        size_t r = cases[k].reset ? 1 : 0;
        if (r)
            expect_reset(&s[k].events.ev[0], ids[5], what);
        expect_ids(&s[k].events, r, ids + 5, ns + 5, 5, what);
    }
    /* Then live. */
    ids[10] = post_ok(&c, NULL, "{\"n\":10}", NULL);
    for (size_t k = 0; k < NC; k++)
        want[k]++;
    expect_counts(s, NC, want, "live after reset");
    for (size_t k = 0; k < NC; k++) {
        size_t r = cases[k].reset ? 1 : 0;
        expect_ids(&s[k].events, r, ids + 5, ns + 5, 6, "live after reset");
        itest_sub_close(&s[k]);
    }

    /* A room with nothing retained: the reset points at the next id. */
    struct itest_sub e[2];
    open_sub(&e[0], port, "/messages?room=empty", "Last-Event-ID: 1\r\n");
    char target[128];
    snprintf(target, sizeof target, "/messages?room=empty&lastEventId=%" PRIu64, ids[10] + 5);
    open_sub(&e[1], port, target, NULL);
    size_t one[2] = {1, 1}, two[2] = {2, 2};
    expect_counts(e, 2, one, "reset in an empty room");
    for (int k = 0; k < 2; k++) {
        expect_reset(&e[k].events.ev[0], ids[10] + 1, "reset in an empty room");
    }
    uint64_t next = post_ok(&c, "/message?room=empty", "{\"n\":11}", NULL);
    itest_conn_close(&c);
    assert_true(next == ids[10] + 1);
    long n11 = 11;
    expect_counts(e, 2, two, "live after reset in an empty room");
    for (int k = 0; k < 2; k++) {
        expect_ids(&e[k].events, 1, &next, &n11, 1, "live after reset in an empty room");
        itest_sub_close(&e[k]);
    }
}

/* Every event a subscriber saw, over all its connections. */
struct seen {
    size_t n;
    uint64_t id[1024];
    long num[1024];
    bool message[1024]; /* its type was "message" */
};

static void collect(struct seen *sn, const struct itest_sub *s)
{
    for (size_t k = 0; k < s->events.count && sn->n < 1024; k++) {
        const struct ssep_event *ev = &s->events.ev[k];
        if (!itest_parse_u64(ev->id, &sn->id[sn->n]))
            sn->id[sn->n] = 0;
        sn->num[sn->n] = body_n(ev->data, ev->data_len);
        sn->message[sn->n] = strcmp(ev->type, "message") == 0;
        sn->n++;
    }
}

static void test_resume_under_load(void **state)
{
    int port = itest_state_port(state);
    enum { N = 500 };
    static const int cut_at[] = {60, 140, 215, 290, 370, 440};
    enum { NCUT = sizeof cut_at / sizeof cut_at[0] };
    uint64_t ids[N];
    struct seen *sn = calloc(1, sizeof *sn);
    assert_non_null(sn);

    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    struct itest_sub s;
    open_sub(&s, port, "/messages", NULL);
    int cut = 0, reconnect_at = -1, reconnects = 0;
    char last[24] = "";
    int64_t t0 = itest_now_ms();
    for (int i = 0; i < N; i++) {
        char body[64];
        make_body(body, sizeof body, (size_t)i, 0);
        ids[i] = post_ok(&c, NULL, body, NULL);
        if (i > 0)
            assert_true(ids[i] == ids[i - 1] + 1);
        if (s.state != ITEST_SUB_CLOSED)
            pump(&s, 1);
        if (cut < NCUT && i == cut_at[cut]) {
            /* Make sure there is something to resume from, then cut. */
            if (s.events.count == 0)
                itest_sub_wait(&s, 1, itest_timeout());
            assert_int_equal(s.state, ITEST_SUB_STREAM);
            assert_true(s.events.count > 0);
            collect(sn, &s);
            snprintf(last, sizeof last, "%s", s.events.ev[s.events.count - 1].id);
            if (cut % 2)
                itest_sub_abort(&s); /* RST */
            else
                itest_sub_close(&s); /* FIN */
            reconnect_at = i + 3;    /* miss a few messages while away */
            cut++;
        } else if (i == reconnect_at) {
            /* Reconnect without waiting: the head arrives while we publish. */
            char hdr[64], target[128];
            switch (reconnects++ % 3) {
            case 0:
                snprintf(hdr, sizeof hdr, "Last-Event-ID: %s\r\n", last);
                assert_int_equal(itest_sub_start(&s, port, "/messages", hdr), 0);
                break;
            case 1:
                snprintf(target, sizeof target, "/messages?lastEventId=%s", last);
                assert_int_equal(itest_sub_start(&s, port, target, NULL), 0);
                break;
            default: /* like an EventSource: original URL (stale), header current */
                snprintf(hdr, sizeof hdr, "Last-Event-ID: %s\r\n", last);
                snprintf(target, sizeof target, "/messages?lastEventId=%" PRIu64, ids[0]);
                assert_int_equal(itest_sub_start(&s, port, target, hdr), 0);
                break;
            }
            reconnect_at = -1;
        }
        itest_sleep_ms(2); /* a steady pace */
    }
    itest_conn_close(&c);
    int64_t t1 = itest_now_ms();
    assert_int_equal(reconnects, NCUT);

    /* The last connection ends with the last message. */
    char want_last[24];
    snprintf(want_last, sizeof want_last, "%" PRIu64, ids[N - 1]);
    int64_t deadline = itest_now_ms() + itest_timeout();
    while (itest_now_ms() < deadline &&
           !(s.events.count > 0 && strcmp(s.events.ev[s.events.count - 1].id, want_last) == 0))
        itest_sub_wait(&s, s.events.count + 1, 100);
    itest_sub_wait(&s, s.events.count + 1, 250); /* duplicates after it? */
    collect(sn, &s);
    itest_sub_close(&s);
    fprintf(stderr, "resume under load: %d messages in %" PRId64 " ms, %d reconnects, %zu seen\n",
            N, t1 - t0, reconnects, sn->n);

    /* Every message exactly once, in order. */
    bool ok = sn->n == N;
    for (size_t k = 0; k < sn->n && k < N; k++) {
        if (sn->id[k] != ids[k] || sn->num[k] != (long)k || !sn->message[k]) {
            fprintf(stderr,
                    "event %zu of all seen: id %" PRIu64 " n %ld%s; want id %" PRIu64 " n %zu\n", k,
                    sn->id[k], sn->num[k], sn->message[k] ? "" : " (not a message)", ids[k], k);
            ok = false;
            break;
        }
    }
    if (sn->n != N)
        fprintf(stderr, "saw %zu events, want %d\n", sn->n, N);
    free(sn);
    assert_true(ok);
}

/* -------------------------------------------------------------- history */

static void test_history_on_connect(void **state)
{
    int port = itest_state_port(state);
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    uint64_t ids[12];
    long ns[12];
    for (int i = 0; i < 12; i++)
        ns[i] = i;
    post_batch(&c, NULL, 0, 10, 0, 0, ids);
    uint64_t other[2];
    post_batch(&c, "/message?room=other", 100, 2, 0, 0, other);

    struct itest_sub s[5];
    open_sub(&s[0], port, "/messages?history=3", NULL);
    open_sub(&s[1], port, "/messages?history=0", NULL);
    open_sub(&s[2], port, "/messages?history=100", NULL);
    open_sub(&s[3], port, "/messages?history=10", NULL);
    open_sub(&s[4], port, "/messages?room=other&history=1", NULL);
    static const size_t first[4] = {7, 10, 0, 0};
    size_t want[4];
    for (int k = 0; k < 4; k++)
        want[k] = 10 - first[k];
    expect_counts(s, 4, want, "history replay");
    for (int k = 0; k < 4; k++) {
        expect_ids(&s[k].events, 0, ids + first[k], ns + first[k], 10 - first[k], "history replay");
    }
    long n101 = 101;
    expect_count(&s[4], 1, "history of another room");
    expect_ids(&s[4].events, 0, other + 1, &n101, 1, "history of another room");

    /* Then live. */
    ids[10] = post_ok(&c, NULL, "{\"n\":10}", NULL);
    for (int k = 0; k < 4; k++)
        want[k]++;
    expect_counts(s, 4, want, "live after history");
    for (int k = 0; k < 4; k++) {
        expect_ids(&s[k].events, 0, ids + first[k], ns + first[k], 11 - first[k],
                   "live after history");
        itest_sub_close(&s[k]);
    }
    expect_count(&s[4], 1, "other room after a default-room message");
    itest_sub_close(&s[4]);

    /* Invalid values. */
    static const char *const bad[] = {
        "/messages?history=abc", "/messages?history=-1",  "/messages?history=1.5",
        "/messages?history=3x",  "/messages?history=%20", "/messages?history=0x10",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_get_status(port, bad[i], NULL, 400);
    /* The refused requests subscribed nobody. */
    assert_int_equal(post_until_clients(&c, 0), 0);
    itest_conn_close(&c);
}

/* ---------------------------------------------------------------- rooms */

static void test_rooms(void **state)
{
    int port = itest_state_port(state);
    char long_room[65], target[160];
    memset(long_room, 'R', 64);
    long_room[64] = 0;
    long_room[0] = 'a';
    long_room[1] = '.';
    long_room[2] = '_';
    long_room[3] = '-';
    long_room[4] = '9';

    enum { DEF, AL0, AL1, BE, LG, NS };
    struct itest_sub sub[NS];
    open_sub(&sub[DEF], port, "/messages", NULL);
    open_sub(&sub[AL0], port, "/messages?room=alpha", NULL);
    open_sub(&sub[AL1], port, "/messages?room=alpha", NULL);
    open_sub(&sub[BE], port, "/messages?room=beta", NULL);
    snprintf(target, sizeof target, "/messages?room=%s", long_room);
    open_sub(&sub[LG], port, target, NULL);

    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    long cl;
    uint64_t id[7];
    id[0] = post_ok(&c, "/message?room=alpha", "{\"n\":0}", &cl);
    assert_int_equal(cl, 2);
    id[1] = post_ok(&c, NULL, "{\"n\":1,\"room\":\"beta\"}", &cl);
    assert_int_equal(cl, 1);
    /* The query wins over the body. */
    id[2] = post_ok(&c, "/message?room=alpha", "{\"n\":2,\"room\":\"beta\"}", &cl);
    assert_int_equal(cl, 2);
    id[3] = post_ok(&c, NULL, "{\"n\":3}", &cl);
    assert_int_equal(cl, 1);
    /* Only a top-level member names the room. */
    id[4] = post_ok(&c, NULL, "{\"n\":4,\"x\":{\"room\":\"beta\"},\"y\":[\"room\"]}", &cl);
    assert_int_equal(cl, 1);
    snprintf(target, sizeof target, "/message?room=%s", long_room);
    id[5] = post_ok(&c, target, "{\"n\":5}", &cl);
    assert_int_equal(cl, 1);
    /* A room nobody listens to. */
    id[6] = post_ok(&c, "/message?room=gamma", "{\"n\":6}", &cl);
    assert_int_equal(cl, 0);

    /* Each subscriber sees exactly its room's messages. */
    uint64_t want_def[2] = {id[3], id[4]}, want_al[2] = {id[0], id[2]};
    long n_def[2] = {3, 4}, n_al[2] = {0, 2}, n_be = 1, n_lg = 5;
    size_t want[NS] = {2, 2, 2, 1, 1};
    expect_counts(sub, NS, want, "rooms");
    expect_ids(&sub[DEF].events, 0, want_def, n_def, 2, "default room");
    expect_ids(&sub[AL0].events, 0, want_al, n_al, 2, "room alpha");
    expect_ids(&sub[AL1].events, 0, want_al, n_al, 2, "room alpha");
    expect_ids(&sub[BE].events, 0, &id[1], &n_be, 1, "room beta");
    assert_string_equal(sub[BE].events.ev[0].data, "{\"n\":1,\"room\":\"beta\"}");
    expect_ids(&sub[LG].events, 0, &id[5], &n_lg, 1, "64-character room");

    /* Invalid names: 400, nothing broadcast, nobody subscribed. */
    char long65[66];
    memset(long65, 'r', 65);
    long65[65] = 0;
    static const char *const bad_q[] = {"a%20b", "a%2Fb", "a/b", "%C3%A9t%C3%A9",
                                        "a%00b", "a+b",   "a:b"};
    for (size_t i = 0; i < sizeof bad_q / sizeof bad_q[0]; i++) {
        snprintf(target, sizeof target, "/messages?room=%s", bad_q[i]);
        expect_get_status(port, target, NULL, 400);
        snprintf(target, sizeof target, "/message?room=%s", bad_q[i]);
        expect_post_status(port, target, "{\"n\":99}", 400);
    }
    snprintf(target, sizeof target, "/messages?room=%s", long65);
    expect_get_status(port, target, NULL, 400);
    snprintf(target, sizeof target, "/message?room=%s", long65);
    expect_post_status(port, target, "{\"n\":99}", 400);
    char body[160];
    snprintf(body, sizeof body, "{\"n\":99,\"room\":\"%s\"}", long65);
    expect_post_status(port, "/message", body, 400);
    expect_post_status(port, "/message", "{\"n\":99,\"room\":\"\"}", 400);
    expect_post_status(port, "/message", "{\"n\":99,\"room\":\"a b\"}", 400);
    expect_post_status(port, "/message", "{\"room\":\"a\\nb\",\"n\":99}", 400);

    post_ok(&c, "/message?room=alpha", "{\"n\":7}", &cl);
    assert_int_equal(cl, 2);
    itest_conn_close(&c);
    want[AL0]++;
    want[AL1]++;
    expect_counts(sub, NS, want, "rooms after invalid names");
    for (int k = 0; k < NS; k++)
        itest_sub_close(&sub[k]);
}

/* A room name is 1-64 characters: an empty ?room= is not the default room. */
static void test_rooms_empty_name_rejected(void **state)
{
    int port = itest_state_port(state);
    struct itest_sub def;
    open_sub(&def, port, "/messages", NULL);
    int get = itest_request_status(port,
                                   "GET /messages?room= HTTP/1.1\r\nHost: x\r\n"
                                   "Connection: close\r\n\r\n",
                                   ITEST_RESP_HEAD_ONLY);
    int post = itest_request_status(port,
                                    "POST /message?room= HTTP/1.1\r\nHost: x\r\n"
                                    "Content-Length: 7\r\nConnection: close\r\n\r\n{\"n\":0}",
                                    ITEST_RESP_HEAD_ONLY);
    bool delivered = itest_sub_wait(&def, 1, 250);
    itest_sub_close(&def);
    fprintf(stderr, "?room= (empty): GET -> %d, POST -> %d%s\n", get, post,
            delivered ? " (and delivered to the default room)" : "");
    assert_int_equal(get, 400);
    assert_int_equal(post, 400);
    assert_false(delivered);
}

/* ---------------------------------------------------------- event types */

static void test_event_types(void **state)
{
    int port = itest_state_port(state);
    struct itest_sub s;
    open_sub(&s, port, "/messages", NULL);
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);

    char t64[65], target[200];
    memset(t64, 'e', 64);
    t64[64] = 0;
    struct {
        const char *query; /* after event= ; NULL: no event parameter */
        const char *type;  /* expected parsed type */
    } ok[] = {
        {"chat", "chat"}, {NULL, "message"}, {"a%20b", "a b"}, {"user.joined", "user.joined"},
        {t64, t64},
    };
    enum { NOK = sizeof ok / sizeof ok[0] };
    uint64_t ids[NOK];
    for (size_t i = 0; i < NOK; i++) {
        if (ok[i].query)
            snprintf(target, sizeof target, "/message?event=%s", ok[i].query);
        else
            snprintf(target, sizeof target, "/message");
        char body[64];
        make_body(body, sizeof body, i, 0);
        ids[i] = post_ok(&c, target, body, NULL);
    }
    char t65[66];
    memset(t65, 'e', 65);
    t65[65] = 0;
    static const char *const bad[] = {"a%0Ab", "%0A", "a%0Db", "a%00b", "a%01b", "%0D%0Adata:x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(target, sizeof target, "/message?event=%s", bad[i]);
        expect_post_status(port, target, "{\"n\":99}", 400);
    }
    snprintf(target, sizeof target, "/message?event=%s", t65);
    expect_post_status(port, target, "{\"n\":99}", 400);
    itest_conn_close(&c);

    expect_count(&s, NOK, "event types");
    for (size_t i = 0; i < NOK; i++) {
        const struct ssep_event *ev = &s.events.ev[i];
        if (strcmp(ev->type, ok[i].type) != 0)
            fprintf(stderr, "event %zu: want type \"%s\", got \"%s\"\n", i, ok[i].type, ev->type);
        assert_string_equal(ev->type, ok[i].type);
        assert_true(itest_event_id(ev) == ids[i]);
        assert_int_equal(body_n(ev->data, ev->data_len), (long)i);
    }
    /* The wire form: an "event: chat" line in the first frame. */
    assert_non_null(strstr(s.raw, "\nevent: chat\n"));
    itest_sub_close(&s);
}

/* ------------------------------------------------------ sender exclusion */

static void test_sender_exclusion(void **state)
{
    int port = itest_state_port(state);
    enum { ALICE, BOB, ANON, ALICE_SIDE, NS };
    struct itest_sub sub[NS];
    open_sub(&sub[ALICE], port, "/messages?client=alice", NULL);
    open_sub(&sub[BOB], port, "/messages?client=bob", NULL);
    open_sub(&sub[ANON], port, "/messages", NULL);
    open_sub(&sub[ALICE_SIDE], port, "/messages?room=side&client=alice", NULL);

    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    long cl;
    uint64_t id[5];
    id[0] = post_ok(&c, "/message?client=alice", "{\"n\":0}", &cl);
    assert_int_equal(cl, 2);
    id[1] = post_ok(&c, "/message?client=bob", "{\"n\":1}", &cl);
    assert_int_equal(cl, 2);
    id[2] = post_ok(&c, "/message", "{\"n\":2}", &cl);
    assert_int_equal(cl, 3);
    id[3] = post_ok(&c, "/message?client=carol", "{\"n\":3}", &cl);
    assert_int_equal(cl, 3);
    /* In another room, alice's own message is excluded from her there only. */
    id[4] = post_ok(&c, "/message?room=side&client=alice", "{\"n\":4}", &cl);
    assert_int_equal(cl, 0);
    uint64_t id5 = post_ok(&c, "/message?room=side&client=bob", "{\"n\":5}", &cl);
    assert_int_equal(cl, 1);

    uint64_t w_alice[3] = {id[1], id[2], id[3]}, w_bob[3] = {id[0], id[2], id[3]};
    long n_alice[3] = {1, 2, 3}, n_bob[3] = {0, 2, 3}, n_all[4] = {0, 1, 2, 3}, n5 = 5;
    size_t want[NS] = {3, 3, 4, 1};
    expect_counts(sub, NS, want, "sender exclusion");
    expect_ids(&sub[ALICE].events, 0, w_alice, n_alice, 3, "alice");
    expect_ids(&sub[BOB].events, 0, w_bob, n_bob, 3, "bob");
    expect_ids(&sub[ANON].events, 0, id, n_all, 4, "anonymous");
    expect_ids(&sub[ALICE_SIDE].events, 0, &id5, &n5, 1, "alice in room side");

    /* Invalid client ids. */
    char long65[66];
    memset(long65, 'c', 65);
    long65[65] = 0;
    const char *const bad[] = {"a%20b", "a%2Fb", "a/b", "", "a%0Ab", "caf%C3%A9", long65};
    char target[200];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(target, sizeof target, "/messages?client=%s", bad[i]);
        expect_get_status(port, target, NULL, 400);
        snprintf(target, sizeof target, "/message?client=%s", bad[i]);
        expect_post_status(port, target, "{\"n\":99}", 400);
    }
    /* 64 characters is fine. */
    char c64[65];
    memset(c64, 'c', 64);
    c64[64] = 0;
    snprintf(target, sizeof target, "/message?client=%s", c64);
    post_ok(&c, target, "{\"n\":6}", &cl);
    assert_int_equal(cl, 3);
    itest_conn_close(&c);
    want[ALICE]++;
    want[BOB]++;
    want[ANON]++;
    expect_counts(sub, NS, want, "after invalid client ids");
    for (int k = 0; k < NS; k++)
        itest_sub_close(&sub[k]);
}

/* ---------------------------------------------------------- stream start */

/* Opens n streams and checks each starts with "retry: <ms>\n" then a comment
 * line, the value within base +- 20%, and not all values equal. */
static void check_retry_jitter(int port, unsigned base)
{
    enum { N = 20 };
    struct itest_sub s[N];
    unsigned values[N];
    assert_int_equal(itest_subs_open(s, N, port, "/messages", itest_timeout()), N);
    unsigned lo = base - base / 5, hi = base + base / 5;
    bool all_equal = true;
    for (size_t i = 0; i < N; i++) {
        bool ok = itest_sub_wait_until(&s[i], itest_sub_has_preamble, NULL, itest_timeout());
        const char *raw = s[i].raw;
        if (!ok || strncmp(raw, "retry: ", 7) != 0)
            fprintf(stderr, "stream %zu starts \"%.40s\"\n", i, raw);
        assert_true(ok);
        assert_memory_equal(raw, "retry: ", 7);
        char *end;
        unsigned long v = strtoul(raw + 7, &end, 10);
        assert_true(end > raw + 7);
        assert_int_equal(*end, '\n');
        /* Then a comment line. */
        assert_int_equal(end[1], ':');
        assert_non_null(strchr(end + 1, '\n'));
        assert_true(s[i].parser.retry_ms == v);
        if (v < lo || v > hi)
            fprintf(stderr, "stream %zu: retry %lu outside [%u, %u]\n", i, v, lo, hi);
        assert_true(v >= lo && v <= hi);
        values[i] = (unsigned)v;
        if (values[i] != values[0])
            all_equal = false;
        assert_int_equal(s[i].events.count, 0);
    }
    fprintf(stderr, "retry values (base %u):", base);
    for (size_t i = 0; i < N; i++)
        fprintf(stderr, " %u", values[i]);
    fprintf(stderr, "\n");
    assert_false(all_equal);
    for (size_t i = 0; i < N; i++)
        itest_sub_close(&s[i]);
}

static void test_stream_start_retry_default(void **state)
{
    check_retry_jitter(itest_state_port(state), 3000);
}

static void test_stream_start_retry_option(void **state)
{
    check_retry_jitter(itest_state_port(state), 10000); /* --retry-ms 10000 */
}

/* ------------------------------------------------------------ heartbeat */

struct comment_log {
    int64_t at[64];
    size_t n;
};

static void on_comment(void *ctx, const char *text, size_t len)
{
    (void)text;
    (void)len;
    struct comment_log *l = ctx;
    if (l->n < sizeof l->at / sizeof l->at[0])
        l->at[l->n++] = itest_now_ms();
}

static void test_heartbeat(void **state)
{
    int port = itest_state_port(state); /* --heartbeat 1 */
    struct itest_sub s;
    struct comment_log log = {{0}, 0};
    assert_int_equal(itest_sub_start(&s, port, "/messages", NULL), 0);
    s.parser.on_comment = on_comment;
    s.parser.comment_ctx = &log;
    assert_int_equal(itest_subs_drive(&s, 1, 0, itest_timeout()), 1);
    assert_true(itest_sub_wait_until(&s, itest_sub_has_preamble, NULL, itest_timeout()));
    int64_t start = itest_now_ms();
    /* Idle for ~3.3 s (a specified cadence: not scaled). */
    assert_false(itest_sub_wait(&s, 1, 3300));
    assert_int_equal(s.state, ITEST_SUB_STREAM);
    fprintf(stderr, "heartbeat: %zu comment lines in %" PRId64 " ms:", log.n,
            itest_now_ms() - start);
    for (size_t i = 0; i < log.n; i++)
        fprintf(stderr, " +%" PRId64, log.at[i] - s.opened_ms);
    fprintf(stderr, "\n");
    /* The preamble's comment, then at least two heartbeats about 1 s apart. */
    assert_true(log.n >= 3);
    size_t beats = 0;
    for (size_t i = 1; i < log.n; i++) {
        if (log.at[i] <= start)
            continue;
        beats++;
        int64_t gap = log.at[i] - log.at[i - 1];
        if (gap < 500 || gap > 2000)
            fprintf(stderr, "heartbeat gap %" PRId64 " ms\n", gap);
        assert_true(gap >= 500 && gap <= 2000);
    }
    assert_true(beats >= 2);
    assert_int_equal(s.events.count, 0);
    itest_sub_close(&s);
}

/* ------------------------------------------------------ slow subscribers */

/* A subscriber with a tiny receive buffer (set before connect) that reads
 * the response head and then nothing. Returns the fd; the body bytes that
 * came with the head are fed to p. */
static int open_stuck_subscriber(int port, int rcvbuf, struct ssep_parser *p)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_true(itest_send_str(fd, "GET /messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   "Accept: text/event-stream\r\n\r\n"));
    char buf[4096];
    size_t len = 0;
    char *end = NULL;
    while (!end && len < sizeof buf - 1) {
        ssize_t n = itest_recv_deadline(fd, buf + len, sizeof buf - 1 - len, itest_timeout());
        assert_true(n > 0);
        len += (size_t)n;
        buf[len] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    assert_non_null(end);
    assert_memory_equal(buf, "HTTP/1.1 200", 12);
    size_t head = (size_t)(end - buf) + 4;
    assert_int_equal(ssep_feed(p, buf + head, len - head), 0);
    return fd;
}

/* The most a TCP send buffer can grow to (net.ipv4.tcp_wmem, third value). */
static size_t tcp_wmem_max(void)
{
    size_t v = 4u << 20;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "re");
    if (f) {
        unsigned long a, b, c;
        if (fscanf(f, "%lu %lu %lu", &a, &b, &c) == 3 && c > 0)
            v = c;
        fclose(f);
    }
    return v;
}

static void test_slow_subscriber_closed(void **state)
{
    struct itest_server *srv = itest_state_server(state); /* --history 50 */
    int port = srv->port;
    enum { NSUB = 100, BATCH = 10 };
    require_fds(NSUB + 64);
    /* 2000 messages of ~1 KB, or larger when the server's send buffer for
     * the stuck socket may grow (autotuning, up to tcp_wmem's maximum) to
     * hold that much: the total must be well past what it can absorb. */
    size_t wmem = tcp_wmem_max();
    size_t nmsg = 2000;
    size_t pad = (wmem + (1u << 20)) / nmsg;
    if (pad < 1000)
        pad = 1000;
    struct itest_sub *subs = calloc(NSUB, sizeof *subs);
    struct tally *t = calloc(NSUB, sizeof *t);
    uint64_t *ids = calloc(nmsg, sizeof *ids);
    assert_non_null(subs);
    assert_non_null(t);
    assert_non_null(ids);
    for (size_t i = 0; i < NSUB; i++) {
        itest_sub_start(&subs[i], port, "/messages", NULL);
        sub_tally(&subs[i], &t[i]);
    }
    assert_int_equal(itest_subs_drive(subs, NSUB, 0, itest_ms(10000)), NSUB);

    struct tally stuck_t;
    struct ssep_parser stuck_p;
    memset(&stuck_t, 0, sizeof stuck_t);
    ssep_init(&stuck_p, tally_on_event, &stuck_t);
    int stuck = open_stuck_subscriber(port, 4096, &stuck_p);

    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    /* A round trip on c, so the server has surely accepted it before the
     * count (OPTIONS publishes nothing). */
    assert_true(itest_conn_send(&c, "OPTIONS /message HTTP/1.1\r\nHost: x\r\n\r\n"));
    struct itest_response opt;
    assert_int_equal(itest_read_response(&c, &opt, 0, itest_timeout()), 0);
    assert_int_equal(opt.status, 204);
    itest_response_free(&opt);
    int fds_before = itest_server_fd_count(srv);
    long rss_before = itest_server_rss_kb(srv);
    assert_true(fds_before > 0 && rss_before > 0);

    int64_t t0 = itest_now_ms();
    for (size_t m = 0; m < nmsg; m += BATCH) {
        /* 101 recipients until the server drops the stuck one. */
        post_batch(&c, NULL, m, BATCH, pad, -1, ids + m);
        drive_tallies(subs, t, NSUB, nmsg, 0);
    }
    size_t done = drive_tallies(subs, t, NSUB, nmsg, itest_ms(60000));
    int64_t t1 = itest_now_ms();
    drive_tallies(subs, t, NSUB, nmsg + 1, 200); /* duplicates? */
    long rss_after = itest_server_rss_kb(srv);
    int fds_after = itest_server_fd_settle(srv, fds_before - 1, itest_timeout());

    /* The stuck subscriber: what it got is an in-order prefix, then the end
     * of the stream (the kernel still delivers what the server had written
     * before closing). */
    char *buf = malloc(1u << 16);
    assert_non_null(buf);
    bool ended = false;
    int64_t deadline = itest_now_ms() + itest_ms(10000);
    while (itest_now_ms() < deadline) {
        ssize_t n = itest_recv_deadline(stuck, buf, 1u << 16, (int)(deadline - itest_now_ms()));
        if (n == 0) {
            ended = true;
            break;
        }
        if (n < 0)
            break;
        assert_int_equal(ssep_feed(&stuck_p, buf, (size_t)n), 0);
    }
    free(buf);
    close(stuck);
    ssep_free(&stuck_p);

    long clients = -1;
    post_ok(&c, NULL, "{}", &clients);
    itest_conn_close(&c);

    for (size_t m = 1; m < nmsg; m++)
        assert_true(ids[m] == ids[m - 1] + 1);
    uint64_t first_id = ids[0];
    size_t wrong = report_tallies(subs, t, NSUB, nmsg, first_id, "normal subscriber");
    fprintf(stderr,
            "slow subscriber: %zu messages of %zu bytes (tcp_wmem max %zu) to %d subscribers in "
            "%" PRId64 " ms; server fds %d -> %d; the stuck one got %zu events (%zu bad) then "
            "%s; clients after: %ld\n",
            nmsg, pad + 20, wmem, NSUB, t1 - t0, fds_before, fds_after, stuck_t.count, stuck_t.bad,
            ended ? "end of stream" : "NO end of stream", clients);
    if (stuck_t.bad)
        fprintf(stderr, "stuck subscriber: %s\n", stuck_t.why);
    printf("slow subscriber: server VmRSS before %ld KiB, after %ld KiB (growth %ld KiB)\n",
           rss_before, rss_after, rss_after - rss_before);

    for (size_t i = 0; i < NSUB; i++)
        itest_sub_close(&subs[i]);
    free(subs);
    free(t);
    free(ids);

    assert_int_equal(done, NSUB);
    assert_int_equal(wrong, 0);
    assert_true(ended);
    assert_true(stuck_t.count < nmsg);
    assert_int_equal(stuck_t.bad, 0);
    if (stuck_t.count > 0)
        assert_true(stuck_t.first_id == first_id);
    assert_int_equal(fds_after, fds_before - 1);
    assert_int_equal(clients, NSUB);
    assert_true(rss_after - rss_before < 20 * 1024);
}

/* --------------------------------------------------------- large scale */

static void test_fanout_1000x1000(void **state)
{
    int port = itest_state_port(state);
    enum { NSUB = 1000, NMSG = 1000, BATCH = 25 };
    require_fds(NSUB + 64);

    struct itest_sub *subs = calloc(NSUB, sizeof *subs);
    struct tally *t = calloc(NSUB, sizeof *t);
    uint64_t *ids = calloc(NMSG, sizeof *ids);
    assert_non_null(subs);
    assert_non_null(t);
    assert_non_null(ids);
    for (size_t i = 0; i < NSUB; i++) {
        itest_sub_start(&subs[i], port, "/messages", NULL);
        sub_tally(&subs[i], &t[i]);
    }
    size_t open = itest_subs_drive(subs, NSUB, 0, itest_ms(20000));
    assert_int_equal(open, NSUB);

    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    int64_t t0 = itest_now_ms();
    for (size_t m = 0; m < NMSG; m += BATCH) {
        post_batch(&c, NULL, m, BATCH, 0, NSUB, ids + m);
        drive_tallies(subs, t, NSUB, NMSG, 0);
    }
    int64_t t_posted = itest_now_ms();
    size_t done = drive_tallies(subs, t, NSUB, NMSG, itest_ms(60000));
    int64_t t1 = itest_now_ms();
    itest_conn_close(&c);
    drive_tallies(subs, t, NSUB, NMSG + 1, 250); /* duplicates? */

    for (size_t m = 1; m < NMSG; m++)
        assert_true(ids[m] == ids[m - 1] + 1);
    size_t wrong = report_tallies(subs, t, NSUB, NMSG, ids[0], "fan-out subscriber");
    double secs = (double)(t1 - t0) / 1000.0;
    printf("fan-out %d subscribers x %d messages: posted in %" PRId64 " ms, all delivered in "
           "%" PRId64 " ms, %.0f deliveries/s\n",
           NSUB, NMSG, t_posted - t0, t1 - t0, secs > 0 ? (double)NSUB * NMSG / secs : 0.0);
    for (size_t i = 0; i < NSUB; i++)
        itest_sub_close(&subs[i]);
    free(subs);
    free(t);
    free(ids);
    assert_int_equal(done, NSUB);
    assert_int_equal(wrong, 0);
}

/* --------------------------------------------------------------- limits */

static void test_max_body(void **state)
{
    int port = itest_state_port(state); /* --max-body 1024 */
    struct itest_sub s;
    open_sub(&s, port, "/messages", NULL);
    char body[1100];
    size_t len = make_body(body, sizeof body, 0, 1024 - 14);
    assert_int_equal(len, 1024);
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    uint64_t id0 = post_ok(&c, NULL, body, NULL);
    itest_conn_close(&c);

    /* One byte over, with Content-Length. */
    len = make_body(body, sizeof body, 1, 1025 - 14);
    assert_int_equal(len, 1025);
    expect_post_status(port, "/message", body, 413);

    /* One byte over, chunked (two chunks). */
    char raw[1400];
    int hl = snprintf(raw, sizeof raw,
                      "POST /message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n",
                      600u);
    memcpy(raw + hl, body, 600);
    hl += 600;
    hl += snprintf(raw + hl, sizeof raw - (size_t)hl, "\r\n%zx\r\n", len - 600);
    memcpy(raw + hl, body + 600, len - 600);
    hl += (int)(len - 600);
    hl += snprintf(raw + hl, sizeof raw - (size_t)hl, "\r\n0\r\n\r\n");
    expect_status_raw(port, raw, (size_t)hl, false, 413, "chunked body over --max-body");

    /* Much larger, announced. */
    static const char big_head[] = "POST /message HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                   "application/json\r\nContent-Length: 100000\r\n\r\n[";
    expect_status_raw(port, big_head, sizeof big_head - 1, false, 413, "100000-byte body");

    assert_int_equal(itest_conn_open(&c, port), 0);
    uint64_t id1 = post_ok(&c, NULL, "{\"n\":2}", NULL);
    itest_conn_close(&c);
    assert_true(id1 == id0 + 1); /* nothing else was published */
    expect_count(&s, 2, "after oversized bodies");
    assert_true(itest_event_id(&s.events.ev[0]) == id0);
    assert_int_equal(s.events.ev[0].data_len, 1024);
    assert_true(itest_event_id(&s.events.ev[1]) == id1);
    itest_sub_close(&s);
}

/* ----------------------------------------------------- answer after fan-out */

/*
 * The publisher's 202 is written only after the message went out to every
 * caught-up subscriber: when the answer is read, each subscriber's socket
 * already holds the event (on loopback the bytes are in the receiving queue
 * once the server's write returns). With pipelined POSTs the answers come
 * after their messages too, and the pipeline is still answered in order.
 */
static void test_answer_after_fanout(void **state)
{
    int port = itest_state_port(state);
    enum { N = 200, ROUNDS = 20 };
    static struct itest_sub subs[N];
    assert_int_equal(itest_subs_open(subs, N, port, "/messages?room=ack", itest_timeout()), N);
    itest_check_answer_after_fanout(subs, N, port, "/message?room=ack", ROUNDS);
    for (size_t i = 0; i < N; i++)
        itest_sub_close(&subs[i]);
}

/* ================================================================== main */

#define T(fn, args)                                                                                \
    cmocka_unit_test_prestate_setup_teardown(fn, itest_setup_server, itest_teardown_server,        \
                                             (void *)(args))

int main(void)
{
    itest_init(150);
    raise_nofile();
    const struct CMUnitTest tests[] = {
        T(test_ids_consecutive_across_rooms, NULL),
        T(test_answer_after_fanout, NULL),
        cmocka_unit_test(test_ids_grow_across_restarts),
        T(test_ring_history_frames_per_room, ARGS_HISTORY5),
        T(test_ring_history_bytes, ARGS_HISTORY_BYTES),
        T(test_resume_header_and_query, NULL),
        T(test_resume_while_publishing, NULL),
        T(test_resume_reset, ARGS_HISTORY5),
        T(test_resume_under_load, NULL),
        T(test_history_on_connect, NULL),
        T(test_rooms, NULL),
        T(test_rooms_empty_name_rejected, NULL),
        T(test_event_types, NULL),
        T(test_sender_exclusion, NULL),
        T(test_stream_start_retry_default, NULL),
        T(test_stream_start_retry_option, ARGS_RETRY10S),
        T(test_heartbeat, ARGS_HEARTBEAT1),
        T(test_slow_subscriber_closed, ARGS_HISTORY50),
        T(test_fanout_1000x1000, NULL),
        T(test_max_body, ARGS_MAX_BODY),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
