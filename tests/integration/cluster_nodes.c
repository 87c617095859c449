/*
 * cluster_nodes: one redis-server and NODES sse-server nodes on it, posting,
 * and clients that keep what they got across connections (see
 * cluster_nodes.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_nodes.h"

struct rserver rs;
char rurl[128];
struct itest_server node[NODES];

/* The running test's clients (see clients_new). */
static struct client *owned;
static size_t owned_n;

struct client *clients_new(size_t n)
{
    assert_null(owned);
    owned = calloc(n, sizeof *owned);
    assert_non_null(owned);
    owned_n = n;
    for (size_t k = 0; k < n; k++)
        owned[k].sub.conn.fd = -1;
    return owned;
}

static void clients_free(void)
{
    for (size_t k = 0; k < owned_n; k++)
        itest_sub_close(&owned[k].sub);
    free(owned);
    owned = NULL;
    owned_n = 0;
}

/* ================================================================ fixtures */

int cluster_down(void)
{
    int rc = 0;
    clients_free();
    for (int i = 0; i < NODES; i++) {
        if (node[i].pid > 0 && itest_server_stop(&node[i]) != 0) {
            fprintf(stderr, "teardown: node %d did not stop cleanly\n", i);
            rc = -1;
        }
    }
    rs_stop(&rs);
    return rc;
}

/* One redis-server (durable: appendonly yes, appendfsync always) and three
 * nodes using it, each with a heartbeat every second. */
int cluster_up(bool durable)
{
    memset(&rs, 0, sizeof rs);
    memset(node, 0, sizeof node);
    if (durable)
        rs_start_durable(&rs);
    else
        rs_start(&rs, NULL);
    url_of(rurl, sizeof rurl, "", rs.port, "");
    const char *const args[] = {"--redis", rurl, "--heartbeat", "1", NULL};
    for (int i = 0; i < NODES; i++) {
        node[i] = itest_server_start(args);
        if (node[i].pid <= 0) {
            fprintf(stderr, "setup: node %d did not start\n", i);
            cluster_down();
            return -1;
        }
    }
    return 0;
}

int setup_cluster(void **state)
{
    (void)state;
    return cluster_up(false);
}

int setup_durable(void **state)
{
    (void)state;
    return cluster_up(true);
}

int teardown_cluster(void **state)
{
    (void)state;
    return cluster_down();
}

/* ============================================================= publishing */

/* POSTs {"n":k} to /message?query on node i; the status (-1: no answer) and,
 * when there was one, the answer in *r. */
int post_raw(int i, const char *query, long k, struct itest_response *r)
{
    char body[32], req[512];
    int blen = snprintf(body, sizeof body, "{\"n\":%ld}", k);
    snprintf(req, sizeof req,
             "POST /message?%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\n\r\n%s",
             query, blen, body);
    if (itest_request(node[i].port, req, r) != 0)
        return -1;
    return r->status;
}

/* post_raw that must be answered 202 {"id":N,"clients":M}: returns N (and
 * M). Otherwise shows the request, the answer and the node's log. */
uint64_t post_ok(int i, const char *query, long k, long *clients)
{
    struct itest_response r;
    uint64_t id = 0, cl = 0;
    int st = post_raw(i, query, k, &r);
    bool ok =
        st == 202 && itest_json_u64(r.body, "id", &id) && itest_json_u64(r.body, "clients", &cl);
    if (!ok) {
        fprintf(stderr, "POST /message?%s {\"n\":%ld} to node %d: status %d\n", query, k, i, st);
        if (st >= 0)
            itest_show_response("answer", &r, 300);
        itest_server_dump_log(&node[i], 8192);
    }
    if (st >= 0)
        itest_response_free(&r);
    assert_true(ok);
    if (clients)
        *clients = (long)cl;
    return id;
}

/* GET path on node i; the status, or -1. The body goes to body (cut). */
int get_path(int i, const char *path, char *body, size_t cap)
{
    char req[256];
    struct itest_response r;
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             path);
    if (itest_request(node[i].port, req, &r) != 0)
        return -1;
    if (body && cap)
        snprintf(body, cap, "%s", r.body);
    int st = r.status;
    itest_response_free(&r);
    return st;
}

/* Polls /healthz on node i until it answers `want`; true if it did in time. */
bool wait_health(int i, int want, int timeout_ms)
{
    int64_t deadline = itest_now_ms() + timeout_ms;
    int st;
    while ((st = get_path(i, "/healthz", NULL, 0)) != want && itest_now_ms() < deadline)
        itest_sleep_ms(20);
    if (st != want) {
        fprintf(stderr, "node %d: /healthz still %d, want %d\n", i, st, want);
        itest_server_dump_log(&node[i], 8192);
    }
    return st == want;
}

/* Asserts that node i's /metrics has the line `line`. */
void expect_metric(int i, const char *line)
{
    static char body[1 << 16];
    assert_int_equal(get_path(i, "/metrics", body, sizeof body), 200);
    size_t len = strlen(line);
    for (const char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0'))
            return;
    fail_msg("node %d: /metrics has no line \"%s\"", i, line);
}

/* ============================================================ subscribers */

static long body_n(const struct ssep_event *ev)
{
    long v;
    int end = -1;
    if (sscanf(ev->data, "{\"n\":%ld}%n", &v, &end) == 1 && end == (int)ev->data_len)
        return v;
    return LONG_MIN;
}

/* Copies the current connection's new events into c->ev. */
void client_harvest(struct client *c)
{
    for (; c->taken < c->sub.events.count; c->taken++) {
        const struct ssep_event *ev = &c->sub.events.ev[c->taken];
        assert_true(c->n < MAX_GOT);
        struct got *g = &c->ev[c->n++];
        g->id = itest_event_id(ev);
        g->n = body_n(ev);
        snprintf(g->type, sizeof g->type, "%s", ev->type);
        snprintf(g->data, sizeof g->data, "%s", ev->data);
    }
}

/* Subscribes c to target on node i (with extra headers) and waits for the
 * stream's head. */
static void client_connect(struct client *c, int i, const char *target, const char *headers)
{
    c->taken = 0;
    bool ok = itest_sub_start(&c->sub, node[i].port, target, headers) == 0 &&
              itest_subs_drive(&c->sub, 1, 0, itest_timeout()) == 1;
    if (!ok) {
        fprintf(stderr, "GET %s on node %d: state %d: %s\n", target, i, (int)c->sub.state,
                c->sub.error[0] ? c->sub.error : "no head in time");
        itest_server_dump_log(&node[i], 8192);
    }
    assert_true(ok);
}

void client_open(struct client *c, int i, const char *target)
{
    memset(c, 0, sizeof *c);
    c->sub.conn.fd = -1;
    client_connect(c, i, target, NULL);
}

/* Ends c's connection and opens another to node i, resuming with
 * Last-Event-ID: the last id it got. */
void client_resume(struct client *c, int i, const char *target)
{
    char hdr[64];
    client_harvest(c);
    assert_true(c->n > 0);
    itest_sub_close(&c->sub);
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", c->ev[c->n - 1].id);
    client_connect(c, i, target, hdr);
}

static bool has_id(const struct itest_sub *s, void *arg)
{
    uint64_t want = *(const uint64_t *)arg, id;
    if (s->events.count == 0)
        return false;
    const struct ssep_event *ev = &s->events.ev[s->events.count - 1];
    return itest_parse_u64(ev->id, &id) && id >= want;
}

/* Reads c until it got an event with an id >= id; false when it closed or
 * timeout_ms passed first. */
bool client_wait_id(struct client *c, uint64_t id, int timeout_ms)
{
    bool ok = itest_sub_wait_until(&c->sub, has_id, &id, timeout_ms);
    client_harvest(c);
    return ok;
}

/* client_wait_id for every client, failing the test (with what each got)
 * when one did not get that far. */
void clients_wait_id(struct client *cs, size_t n, uint64_t id, const char *what)
{
    for (size_t k = 0; k < n; k++) {
        if (client_wait_id(&cs[k], id, itest_ms(10000)))
            continue;
        fprintf(stderr, "%s: client %zu (state %d) did not get id %" PRIu64 "\n", what, k,
                (int)cs[k].sub.state, id);
        itest_print_events(what, &cs[k].sub.events, 0, 40);
        for (int i = 0; i < NODES; i++)
            itest_server_dump_log(&node[i], 4096);
        fail();
    }
}

/* A subscriber's head may come before its node follows the room in Redis,
 * and what is posted in between is history for it, not a live message. So
 * each test first posts to room from node 0 until every client of cs got a
 * message live, then waits until all have the last of these. Returns its id
 * (the test's own messages come after it); *posted counts the posts. */
uint64_t warm_up(struct client *cs, size_t n, const char *room, size_t *posted)
{
    char q[96];
    int64_t deadline = itest_now_ms() + itest_ms(10000);
    snprintf(q, sizeof q, "room=%s", room);
    for (long k = WARM_N;; k++) {
        uint64_t id = post_ok(0, q, k, NULL);
        if (posted)
            *posted = (size_t)(k - WARM_N + 1);
        size_t live = 0;
        for (size_t c = 0; c < n; c++)
            live += client_wait_id(&cs[c], id, 200);
        if (live == n)
            return id;
        if (itest_now_ms() > deadline) {
            clients_wait_id(cs, n, id, "warm-up");
            return id;
        }
    }
}

/* The index of c's first event with an id above `after`. */
size_t after_id(const struct client *c, uint64_t after)
{
    size_t i = 0;
    while (i < c->n && c->ev[i].id <= after)
        i++;
    return i;
}

/* Asserts that c's events after id `after` are exactly m[0..count), minus
 * alice's when skip_alice. */
void expect_msgs(const struct client *c, uint64_t after, const struct msg *m, size_t count,
                 bool skip_alice, const char *what)
{
    size_t from = after_id(c, after), j = 0;
    bool ok = true;
    for (size_t i = 0; i < count && ok; i++) {
        if (skip_alice && m[i].alice)
            continue;
        const struct got *g = from + j < c->n ? &c->ev[from + j] : NULL;
        ok = g && g->id == m[i].id && g->n == m[i].n && strcmp(g->type, m[i].type) == 0;
        if (!ok)
            fprintf(stderr, "%s: event %zu: want id %" PRIu64 " n %ld type %s, got %s\n", what,
                    from + j, m[i].id, m[i].n, m[i].type, g ? "another" : "none");
        j++;
    }
    if (ok && from + j != c->n) {
        fprintf(stderr, "%s: %zu events more than the %zu expected\n", what, c->n - from - j, j);
        ok = false;
    }
    if (!ok)
        for (size_t i = 0; i < c->n; i++)
            fprintf(stderr, "  %s[%zu]: id %" PRIu64 " type %s data %s\n", what, i, c->ev[i].id,
                    c->ev[i].type, c->ev[i].data);
    assert_true(ok);
}
