/*
 * test_cluster: three sse-server nodes given one real redis-server
 * (--redis), seen by their HTTP clients as one service: messages posted to
 * any node reach every subscriber once, in one order, with the same ids
 * everywhere (sender exclusion and event types too; the 202 counts the
 * posting node's subscribers only); history and resume on a node that never
 * saw the room; a node killed with SIGKILL, its clients resuming elsewhere;
 * Redis killed with SIGKILL and restarted from its append-only file (503
 * with Retry-After, /healthz and sse_redis_up while it is down, streams kept
 * open, nothing acknowledged lost or repeated); Redis restarted empty, or
 * emptied by FLUSHALL (the streams closed, a resume told `event: reset`);
 * --redis refused with --data-dir.
 *
 * Each test gets its own redis-server and three nodes (cluster_nodes.h),
 * torn down after it. Every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster_nodes.h"

/* test_redis_killed's publishers: CHUNKS pipelined writes of PER_CHUNK POSTs
 * to each node, a millisecond apart. */
enum { CHUNKS = 30, PER_CHUNK = 3, PIPELINED = CHUNKS * PER_CHUNK };

/* ================================================================== tests */

/* The room as the nodes store it in Redis: the stream sse:{R}:s holds the
 * `count` messages posted, the hash sse:{R}:m has the last id as its top. */
static void expect_room_in_redis(const char *room, size_t count, uint64_t top)
{
    struct tc rc = {0};
    struct reply rep;
    char stream[96], hash[96], want[32];
    snprintf(stream, sizeof stream, "sse:{%s}:s", room);
    snprintf(hash, sizeof hash, "sse:{%s}:m", room);
    snprintf(want, sizeof want, "%" PRIu64, top);
    tc_open(&rc, rurl, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_ready, &rc, 5000));
    CALL(&rc, &rep, "XLEN", stream);
    assert_int_equal(rep.integer, (int64_t)count);
    CALL(&rc, &rep, "HGET", hash, "top");
    assert_string_equal(rep.str, want);
    redis_free(rc.r);
}

/* Posts to each node in turn reach the subscribers of every node: once, in
 * one order, the same ids everywhere, strictly increasing; alice's own
 * messages skip her subscribers on every node; event types pass; the 202
 * counts the posting node's subscribers of the room, and only them. */
static void test_cross_node(void **state)
{
    (void)state;
    enum { A0, A1, E1, A2, E2, NX, OY = NX, NS };
    static const struct {
        int node;
        const char *target;
    } sub[NS] = {{0, "/messages?room=x"},
                 {1, "/messages?room=x"},
                 {1, "/messages?room=x&client=alice"},
                 {2, "/messages?room=x"},
                 {2, "/messages?room=x&client=alice"},
                 {2, "/messages?room=y"}};
    static const long local[NODES] = {1, 2, 2}; /* room x's subscribers on each node */
    static const char *const query[4] = {"room=x", "room=x&client=alice", "room=x&event=greet",
                                         "room=x&client=bob&event=note"};
    static const char *const type[4] = {"message", "message", "greet", "note"};
    struct client *c = clients_new(NS);
    for (int s = 0; s < NS; s++)
        client_open(&c[s], sub[s].node, sub[s].target);
    size_t warm_posts = 0;
    uint64_t warm = warm_up(c, NX, "x", &warm_posts);
    uint64_t warm_y = warm_up(&c[OY], 1, "y", NULL);

    enum { NM = 12 };
    struct msg m[NM];
    for (int k = 0; k < NM; k++) {
        int i = k % NODES;
        long clients;
        m[k] = (struct msg){post_ok(i, query[k % 4], k, &clients), k, type[k % 4], k % 4 == 1};
        assert_true(m[k].id > (k ? m[k - 1].id : warm));
        if (!m[k].alice && clients != local[i])
            fail_msg("POST /message?%s to node %d: clients %ld, want %ld (its own subscribers)",
                     query[k % 4], i, clients, local[i]);
    }
    clients_wait_id(c, NX, m[NM - 1].id, "cross-node");
    for (int s = 0; s < NX; s++) {
        char what[64];
        snprintf(what, sizeof what, "node %d %s", sub[s].node, sub[s].target);
        expect_msgs(&c[s], warm, m, NM, s == E1 || s == E2, what);
    }

    /* Room y heard nothing of room x; then its own message, from node 1. */
    struct msg my = {post_ok(1, "room=y", 99, NULL), 99, "message", false};
    clients_wait_id(&c[OY], 1, my.id, "room y");
    expect_msgs(&c[OY], warm_y, &my, 1, false, "room y on node 2");

    expect_room_in_redis("x", warm_posts + NM, m[NM - 1].id);
}

/* ?history=N on a node that never saw the room; a client that read some
 * messages on node 0 resumes on node 1 with Last-Event-ID (and another on
 * node 2 with ?lastEventId=): exactly what it missed, then live. */
static void test_history_resume(void **state)
{
    (void)state;
    enum { NH = 6, NR = 8 };
    struct msg h[NH + 1], r[NR];
    for (int k = 0; k < NH; k++)
        h[k] = (struct msg){post_ok(k % 2, "room=h", k, NULL), k, "message", false};
    struct client *c = clients_new(3);
    /* Node 2 has never had a subscriber nor a message of room h. */
    client_open(&c[0], 2, "/messages?room=h&history=3");
    clients_wait_id(&c[0], 1, h[NH - 1].id, "history on node 2");
    h[NH] = (struct msg){post_ok(1, "room=h", NH, NULL), NH, "message", false};
    clients_wait_id(&c[0], 1, h[NH].id, "live after history");
    expect_msgs(&c[0], 0, h + NH - 3, 4, false, "?history=3 on node 2");

    client_open(&c[1], 0, "/messages?room=r");
    uint64_t warm = warm_up(&c[1], 1, "r", NULL);
    for (int k = 0; k < 4; k++)
        r[k] = (struct msg){post_ok((k + 1) % NODES, "room=r", k, NULL), k, "message", false};
    clients_wait_id(&c[1], 1, r[3].id, "read on node 0");
    expect_msgs(&c[1], warm, r, 4, false, "before the disconnect");
    itest_sub_close(&c[1].sub);
    for (int k = 4; k < 7; k++)
        r[k] = (struct msg){post_ok(k % 2 ? 2 : 0, "room=r", k, NULL), k, "message", false};
    client_resume(&c[1], 1, "/messages?room=r");
    char target[96];
    snprintf(target, sizeof target, "/messages?room=r&lastEventId=%" PRIu64, r[1].id);
    client_open(&c[2], 2, target);
    clients_wait_id(&c[1], 2, r[6].id, "resume");
    r[7] = (struct msg){post_ok(2, "room=r", 7, NULL), 7, "message", false};
    clients_wait_id(&c[1], 2, r[7].id, "live after resume");
    expect_msgs(&c[1], warm, r, NR, false, "Last-Event-ID on node 1");
    expect_msgs(&c[2], 0, r + 2, NR - 2, false, "?lastEventId= on node 2");
}

/* Node 2 killed with SIGKILL: its clients see their streams end, resume on
 * nodes 0 and 1 with Last-Event-ID while messages keep coming, and every
 * client ends up with every acknowledged message exactly once, in order. */
static void test_node_killed(void **state)
{
    (void)state;
    enum { NC = 2 * NODES, NM = 17 };
    struct client *c = clients_new(NC);
    struct msg m[NM];
    for (int k = 0; k < NC; k++)
        client_open(&c[k], k % NODES, "/messages?room=k");
    uint64_t warm = warm_up(c, NC, "k", NULL);
    int k = 0;
    for (; k < 6; k++)
        m[k] = (struct msg){post_ok(k % NODES, "room=k", k, NULL), k, "message", false};
    clients_wait_id(c, NC, m[k - 1].id, "before the kill");
    /* Acknowledged by node 2 just before it dies: its own clients may or
     * may not have been sent them. */
    for (; k < 9; k++)
        m[k] = (struct msg){post_ok(2, "room=k", k, NULL), k, "message", false};
    assert_int_equal(itest_server_signal(&node[2], SIGKILL, itest_ms(5000)), 128 + SIGKILL);
    for (; k < 13; k++)
        m[k] = (struct msg){post_ok(k % 2, "room=k", k, NULL), k, "message", false};
    for (int j = 2; j < NC; j += NODES) {
        bool ended = !client_wait_id(&c[j], UINT64_MAX, itest_ms(5000)) &&
                     c[j].sub.state == ITEST_SUB_CLOSED;
        if (!ended)
            fprintf(stderr, "client %d of the killed node: state %d\n", j, (int)c[j].sub.state);
        assert_true(ended);
        client_resume(&c[j], j % 2, "/messages?room=k");
    }
    for (; k < NM; k++)
        m[k] = (struct msg){post_ok(k % 2, "room=k", k, NULL), k, "message", false};
    clients_wait_id(c, NC, m[NM - 1].id, "after the kill");
    for (int j = 0; j < NC; j++) {
        char what[64];
        snprintf(what, sizeof what, "client %d (node %d at first)", j, j % NODES);
        expect_msgs(&c[j], warm, m, NM, false, what);
    }
}

/* Writes `count` POSTs of {"n":first + j} to room on conn at once. */
static void send_posts(struct itest_conn *conn, const char *room, long first, int count)
{
    char *buf = malloc((size_t)count * 256);
    size_t len = 0;
    assert_non_null(buf);
    for (int j = 0; j < count; j++) {
        char body[32];
        int blen = snprintf(body, sizeof body, "{\"n\":%ld}", first + j);
        len += (size_t)sprintf(buf + len,
                               "POST /message?room=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                               room, blen, body);
    }
    assert_true(itest_conn_sendn(conn, buf, len));
    free(buf);
}

/* Reads the answers to send_posts: status[j] (-1: none came) and, for a
 * 202, id[j]. A 503 must carry Retry-After and a JSON error. */
static void read_posts(struct itest_conn *conn, int count, int *status, uint64_t *id)
{
    for (int j = 0; j < count; j++) {
        struct itest_response r;
        status[j] = -1;
        if (conn->fd < 0 || itest_read_response(conn, &r, 0, itest_timeout()) != 0) {
            itest_conn_close(conn);
            continue;
        }
        status[j] = r.status;
        bool ok = (r.status == 202 && itest_json_u64(r.body, "id", &id[j])) ||
                  (r.status == 503 && itest_header(&r, "Retry-After") && itest_is_json_error(&r));
        if (!ok)
            itest_show_response("a pipelined POST while Redis was killed", &r, 300);
        itest_response_free(&r);
        assert_true(ok);
    }
}

/* Asserts that c's events after `after` are in strictly increasing id order,
 * each n at most once, each either one of m (with its id) or in
 * [maybe_lo, maybe_hi] (posts not acknowledged, which Redis may still have
 * stored), and that every one of m is there. */
static void expect_acked(const struct client *c, uint64_t after, const struct msg *m, size_t count,
                         long maybe_lo, long maybe_hi, const char *what)
{
    size_t found = 0;
    uint64_t prev = after;
    for (size_t i = 0; i < c->n; i++) {
        const struct got *g = &c->ev[i];
        if (g->id <= after)
            continue;
        bool known = false, ok = false;
        for (size_t j = 0; j < count && !known; j++)
            if (m[j].n == g->n)
                known = true, ok = m[j].id == g->id;
        if (!known)
            ok = g->n >= maybe_lo && g->n <= maybe_hi;
        found += known && ok;
        ok = ok && g->id > prev;
        for (size_t e = 0; ok && e < i; e++)
            ok = c->ev[e].n != g->n;
        if (!ok) {
            for (size_t e = 0; e < c->n; e++)
                fprintf(stderr, "  %s[%zu]: id %" PRIu64 " data %s\n", what, e, c->ev[e].id,
                        c->ev[e].data);
            fail_msg("%s: event %zu (id %" PRIu64 ", %s) out of order, repeated or unknown", what,
                     i, g->id, g->data);
        }
        prev = g->id;
    }
    if (found != count)
        fail_msg("%s: %zu of the %zu acknowledged messages", what, found, count);
}

/* Writes PIPELINED POSTs of room d ({"n":2000...}) to each node on a
 * connection of its own, in chunks a millisecond apart and without reading
 * the answers, so that some are on their way to Redis when it is killed,
 * after a third of the chunks; then reads every answer: a 202, or a 503 for
 * those Redis could not take. Stores the acknowledged in m; returns how
 * many. */
static size_t posts_across_kill(struct msg *m)
{
    struct itest_conn conn[NODES];
    int status[NODES][PIPELINED];
    uint64_t id[NODES][PIPELINED];
    size_t acked = 0, refused = 0;
    for (int i = 0; i < NODES; i++)
        assert_int_equal(itest_conn_open(&conn[i], node[i].port), 0);
    for (int ch = 0; ch < CHUNKS; ch++) {
        for (int i = 0; i < NODES; i++)
            send_posts(&conn[i], "d", 2000 + i * PIPELINED + ch * PER_CHUNK, PER_CHUNK);
        if (ch == CHUNKS / 3)
            rs_kill(&rs, SIGKILL); /* this chunk barely sent */
        itest_sleep_ms(1);
    }
    for (int i = 0; i < NODES; i++)
        read_posts(&conn[i], PIPELINED, status[i], id[i]);
    for (int i = 0; i < NODES; i++) {
        itest_conn_close(&conn[i]);
        for (int j = 0; j < PIPELINED; j++) {
            if (status[i][j] == 202)
                m[acked++] = (struct msg){id[i][j], 2000 + i * PIPELINED + j, "message", false};
            refused += status[i][j] == 503;
            if (status[i][j] != 202 && status[i][j] != 503)
                fail_msg("node %d: pipelined POST %d across the kill: no answer", i, j);
        }
    }
    printf("redis killed: of %d pipelined POSTs, %zu acknowledged, %zu refused (503)\n",
           NODES * PIPELINED, acked, refused);
    return acked;
}

/* Checks every node while Redis is down: /healthz 503, sse_redis_up 0, a
 * POST refused with 503, Retry-After and a JSON error. */
static void expect_down(long n)
{
    for (int i = 0; i < NODES; i++) {
        assert_true(wait_health(i, 503, itest_ms(5000)));
        expect_metric(i, "sse_redis_up 0");
        struct itest_response r;
        int st = post_raw(i, "room=d", n + i, &r);
        bool ok = st == 503 && itest_header(&r, "Retry-After") && itest_is_json_error(&r);
        if (!ok && st >= 0)
            itest_show_response("POST while Redis is down", &r, 300);
        if (st >= 0)
            itest_response_free(&r);
        if (!ok)
            fail_msg("node %d: POST while Redis is down: status %d", i, st);
    }
}

static bool heartbeats(const struct itest_sub *s, void *arg)
{
    return s->parser.comments >= *(const size_t *)arg;
}

/* Redis (appendonly yes, appendfsync always) killed with SIGKILL while a
 * pipeline of POSTs is on its way, then restarted on the same port and
 * directory: while it is down every node answers 503 and says so on /healthz
 * and /metrics, the streams stay open with heartbeats; afterwards every
 * subscriber has every acknowledged message exactly once, in order. */
static void test_redis_killed(void **state)
{
    (void)state;
    enum { NA = 6 + NODES * PIPELINED + 6 };
    struct client *c = clients_new(NODES);
    struct msg m[NA];
    size_t na = 0;
    for (int i = 0; i < NODES; i++)
        client_open(&c[i], i, "/messages?room=d");
    uint64_t warm = warm_up(c, NODES, "d", NULL);
    for (long k = 0; k < 6; k++, na++)
        m[na] = (struct msg){post_ok((int)k % NODES, "room=d", k, NULL), k, "message", false};

    na += posts_across_kill(m + na);

    expect_down(3000);
    for (int i = 0; i < NODES; i++) {
        size_t want = c[i].sub.parser.comments + 2;
        if (!itest_sub_wait_until(&c[i].sub, heartbeats, &want, itest_ms(5000)))
            fail_msg("node %d: stream state %d, %zu comments while Redis is down", i,
                     (int)c[i].sub.state, c[i].sub.parser.comments);
    }

    rs_restart(&rs);
    for (int i = 0; i < NODES; i++) {
        assert_true(wait_health(i, 200, itest_ms(15000)));
        expect_metric(i, "sse_redis_up 1");
    }
    for (long k = 4000; k < 4006; k++, na++)
        m[na] = (struct msg){post_ok((int)k % NODES, "room=d", k, NULL), k, "message", false};
    clients_wait_id(c, NODES, m[na - 1].id, "after the restart");
    for (int i = 0; i < NODES; i++) {
        char what[32];
        snprintf(what, sizeof what, "node %d", i);
        assert_int_equal(c[i].sub.state, ITEST_SUB_STREAM);
        expect_acked(&c[i], warm, m, na, 2000, 3999, what);
        /* One order: the same events on every node. */
        size_t a = after_id(&c[i], warm), b = after_id(&c[0], warm);
        assert_int_equal(c[i].n - a, c[0].n - b);
        for (; a < c[i].n; a++, b++)
            assert_true(c[i].ev[a].id == c[0].ev[b].id && c[i].ev[a].n == c[0].ev[b].n);
    }
}

/* Waits until every node closed its client's stream, the last event of
 * which must be `last`. */
static void expect_closed(struct client *c, uint64_t last, const char *what)
{
    for (int i = 0; i < NODES; i++) {
        bool closed = !client_wait_id(&c[i], UINT64_MAX, itest_ms(15000)) &&
                      c[i].sub.state == ITEST_SUB_CLOSED;
        if (!closed) {
            fprintf(stderr, "node %d: stream state %d %s\n", i, (int)c[i].sub.state, what);
            itest_server_dump_log(&node[i], 8192);
        }
        assert_true(closed);
        if (c[i].ev[c[i].n - 1].id != last)
            fail_msg("node %d: the stream closed %s ended with id %" PRIu64 ", not %" PRIu64, i,
                     what, c[i].ev[c[i].n - 1].id, last);
    }
}

/* Resumes each client (once every node has closed its stream, so has reset
 * the room: a resume that came to a node before it noticed would be closed
 * by that reset, with nothing) on the next node with Last-Event-ID, and
 * asserts that the first event is `event: reset`, with id = data - 1 as on
 * one node. at[i]: where the resumed connection's events start. */
static void resume_expect_reset(struct client *c, size_t *at, const char *room)
{
    char target[96];
    snprintf(target, sizeof target, "/messages?room=%s", room);
    for (int i = 0; i < NODES; i++) {
        at[i] = c[i].n;
        client_resume(&c[i], (i + 1) % NODES, target);
    }
    for (int i = 0; i < NODES; i++) {
        bool got = client_wait_id(&c[i], 0, itest_ms(10000));
        const struct got *g = got ? &c[i].ev[at[i]] : NULL;
        uint64_t data = 0;
        if (!g || strcmp(g->type, "reset") != 0 || !itest_parse_u64(g->data, &data) ||
            g->id + 1 != data) {
            fprintf(stderr, "resume on node %d: want event: reset with id = data - 1; got %s %s\n",
                    (i + 1) % NODES, g ? g->type : "nothing", g ? g->data : "");
            itest_server_dump_log(&node[(i + 1) % NODES], 8192);
            fail();
        }
    }
}

/* Asserts that each client got, since at[i], the reset (pointing at m, or
 * below it when `exact` is false) then m, and nothing else. */
static void expect_reset_then(struct client *c, const size_t *at, const struct msg *m, bool exact)
{
    clients_wait_id(c, NODES, m->id, "after the reset");
    for (int i = 0; i < NODES; i++) {
        const struct got *r = &c[i].ev[at[i]], *g = &c[i].ev[at[i] + 1];
        if (c[i].n != at[i] + 2 || g->id != m->id || g->n != m->n ||
            strcmp(g->type, "message") != 0 || (exact ? r->id + 1 != m->id : r->id >= m->id))
            fail_msg("node %d: after the reset (id %" PRIu64 ") %zu events (want 1: id %" PRIu64
                     "), the first id %" PRIu64 " data %s",
                     (i + 1) % NODES, r->id, c[i].n - at[i] - 1, m->id, g->id, g->data);
    }
}

/* Subscribes a client on each node to room, and has each get 3 messages;
 * returns the last id. */
static uint64_t clients_fill(struct client *c, const char *room)
{
    char target[96], q[96];
    uint64_t last = 0;
    snprintf(target, sizeof target, "/messages?room=%s", room);
    snprintf(q, sizeof q, "room=%s", room);
    for (int i = 0; i < NODES; i++)
        client_open(&c[i], i, target);
    warm_up(c, NODES, room, NULL);
    for (long k = 0; k < NODES; k++)
        last = post_ok((int)k, q, k, NULL);
    clients_wait_id(c, NODES, last, "before Redis lost the room");
    return last;
}

/* Redis restarted empty (no persistence): the nodes close the room's
 * streams without being told by a message; a resume with Last-Event-ID
 * gets `event: reset`, then the messages posted afterwards, whose ids are
 * above every earlier one. */
static void test_redis_emptied(void **state)
{
    (void)state;
    struct client *c = clients_new(NODES);
    size_t at[NODES];
    uint64_t last = clients_fill(c, "e");
    rs_kill(&rs, SIGKILL);
    rs_restart(&rs);
    expect_closed(c, last, "after Redis came back empty");
    resume_expect_reset(c, at, "e");
    for (int i = 0; i < NODES; i++)
        assert_true(wait_health(i, 200, itest_ms(15000)));
    struct msg m = {post_ok(0, "room=e", 10, NULL), 10, "message", false};
    assert_true(m.id > last);
    expect_reset_then(c, at, &m, false);
}

/* FLUSHALL under running nodes: nothing tells them until the next message,
 * which belongs to a new life of the room. It is not appended to the old
 * streams (what the old life held past them cannot be vouched for): they are
 * closed, and a resume gets `event: reset` pointing at that message (the
 * oldest retained, as on one node), then the message. */
static void test_redis_flushed(void **state)
{
    (void)state;
    struct client *c = clients_new(NODES);
    size_t at[NODES];
    struct tc rc = {0};
    struct reply rep;
    uint64_t last = clients_fill(c, "f");
    tc_open(&rc, rurl, REDIS_COMMANDS, NULL);
    assert_true(wait_for(is_ready, &rc, 5000));
    CALL(&rc, &rep, "FLUSHALL");
    assert_string_equal(rep.str, "OK");
    redis_free(rc.r);
    struct msg m = {post_ok(1, "room=f", 10, NULL), 10, "message", false};
    assert_true(m.id > last);
    expect_closed(c, last, "after FLUSHALL and a new message");
    resume_expect_reset(c, at, "f");
    expect_reset_then(c, at, &m, true);
}

/* Runs $SSE_SERVER with argv[1..] and only the variables of envp; its exit
 * status (-1: it did not exit in time) and its stderr in err. */
static int run_server(const char **argv, char *const *envp, char *err, size_t cap)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    argv[0] = getenv("SSE_SERVER");
    assert_non_null(argv[0]);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], STDERR_FILENO);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDOUT_FILENO);
        execve(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    int64_t deadline = itest_now_ms() + itest_ms(10000);
    for (;;) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int left = (int)(deadline - itest_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = read(pfd[0], err + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    err[len] = '\0';
    close(pfd[0]);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, WNOHANG) == 0) {
        if (itest_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &wstatus, 0);
            return -1;
        }
        itest_sleep_ms(5);
    }
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}

/* --redis with --data-dir: refused at start, by flags or by environment,
 * with a message naming both. */
static void test_refuses_data_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_cluster.XXXXXX", redis_env[160], dir_env[160], err[4096];
    char path_env[] = "PATH=/usr/bin:/bin";
    assert_non_null(mkdtemp(dir));
    url_of(rurl, sizeof rurl, "", free_port(), "");
    snprintf(redis_env, sizeof redis_env, "SSE_REDIS=%s", rurl);
    snprintf(dir_env, sizeof dir_env, "SSE_DATA_DIR=%s", dir);
    char *env_none[] = {path_env, NULL};
    char *env_redis[] = {path_env, redis_env, NULL};
    char *env_dir[] = {path_env, dir_env, NULL};
    const char *both[] = {NULL,      "--port", "0",          "--bind", "127.0.0.1",
                          "--redis", rurl,     "--data-dir", dir,      NULL};
    const char *dir_only[] = {NULL, "--port", "0", "--bind", "127.0.0.1", "--data-dir", dir, NULL};
    const char *redis_only[] = {NULL, "--port", "0", "--bind", "127.0.0.1", "--redis", rurl, NULL};
    struct {
        const char **argv;
        char *const *envp;
    } runs[] = {{both, env_none}, {dir_only, env_redis}, {redis_only, env_dir}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        int st = run_server(runs[k].argv, runs[k].envp, err, sizeof err);
        if (st <= 0 || !strstr(err, "--redis") || !strstr(err, "--data-dir"))
            fail_msg("run %zu: exit status %d, stderr \"%s\"", k, st, err);
    }
    itest_rm_rf(dir);
}

int main(void)
{
    itest_init(240);
    loop = loop_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cross_node, setup_cluster, teardown_cluster),
        cmocka_unit_test_setup_teardown(test_history_resume, setup_cluster, teardown_cluster),
        cmocka_unit_test_setup_teardown(test_node_killed, setup_cluster, teardown_cluster),
        cmocka_unit_test_setup_teardown(test_redis_killed, setup_durable, teardown_cluster),
        cmocka_unit_test_setup_teardown(test_redis_emptied, setup_cluster, teardown_cluster),
        cmocka_unit_test_setup_teardown(test_redis_flushed, setup_cluster, teardown_cluster),
        cmocka_unit_test(test_refuses_data_dir),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    loop_free(loop);
    return failed;
}
