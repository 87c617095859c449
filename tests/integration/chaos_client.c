/*
 * chaos_client: test_cluster_chaos's subscribers and the check of what they
 * hold. See chaos.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"

/* A client whose head has not come by then goes elsewhere. */
#define HEAD_TIMEOUT_MS 10000

int64_t chaos_t0;

/* ---------------------------------------------------------------- clients */

static bool grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, n * size);
    if (!p)
        return false;
    *arr = p;
    *cap = n;
    return true;
}

static void client_odd(struct chaos_client *c, const struct ssep_event *ev)
{
    if (!c->first_odd[0])
        snprintf(c->first_odd, sizeof c->first_odd, "event \"%s\" id \"%s\" data \"%.80s\"",
                 ev->type, ev->id, ev->data);
}

/* Every event of every connection of the client comes here (it replaces
 * itest_sub's own list: a client's history spans its connections). */
static void client_on_event(void *ctx, const struct ssep_event *ev)
{
    struct chaos_client *c = ctx;
    uint64_t id = 0, seq = 0;
    bool has_id = ev->id_len > 0 && itest_parse_u64(ev->id, &id);
    if (has_id)
        c->last_id = id; /* as an EventSource does, whatever the event */
    if (strcmp(ev->type, "reset") == 0) {
        c->resets++;
        client_odd(c, ev);
        return;
    }
    if (!has_id || strcmp(ev->type, "message") != 0 || !itest_json_u64(ev->data, "seq", &seq) ||
        seq > UINT32_MAX) {
        c->bad_events++;
        client_odd(c, ev);
        return;
    }
    if (!grow((void **)&c->got, &c->cap_got, c->n_got + 1, sizeof *c->got)) {
        c->bad_events++;
        return;
    }
    c->got[c->n_got++] = (struct chaos_got){id, (uint32_t)seq, (uint32_t)(c->n_conns - 1)};
}

bool chaos_client_open(struct chaos_client *c, int port, int node, unsigned gen, int64_t now)
{
    if (!grow((void **)&c->conns, &c->cap_conns, c->n_conns + 1, sizeof *c->conns))
        return false;
    char target[64], hdr[64];
    snprintf(target, sizeof target, "/messages?room=" CHAOS_ROOM_FMT, c->room);
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", c->last_id);
    c->conns[c->n_conns++] = (struct chaos_conn){
        .at_ms = now, .from_id = c->last_id, .node = node, .port = port, .gen = gen};
    itest_sub_start(&c->sub, port, target, hdr);
    c->sub.parser.on_event = client_on_event;
    c->sub.parser.ctx = c;
    c->open = true;
    return true;
}

bool chaos_client_ended(struct chaos_client *c, int64_t now)
{
    enum itest_sub_state st = c->sub.state;
    bool late = st < ITEST_SUB_STREAM && now - c->sub.opened_ms > HEAD_TIMEOUT_MS;
    if (st != ITEST_SUB_CLOSED && st != ITEST_SUB_FAILED && !late)
        return false;
    struct chaos_conn *r = &c->conns[c->n_conns - 1];
    r->end_ms = now;
    snprintf(r->end, sizeof r->end, "%.60s",
             st == ITEST_SUB_CLOSED ? "closed"
             : late                 ? "no head in time"
                                    : c->sub.error);
    if (st != ITEST_SUB_CLOSED)
        c->failed++;
    itest_sub_close(&c->sub);
    c->open = false;
    return true;
}

void chaos_client_free(struct chaos_client *c)
{
    if (c->open)
        itest_sub_close(&c->sub);
    c->open = false;
    free(c->got);
    free(c->conns);
    c->got = NULL;
    c->conns = NULL;
    c->n_got = c->cap_got = c->n_conns = c->cap_conns = 0;
}

void chaos_client_print(const struct chaos_client *c, size_t index)
{
    fprintf(stderr, "chaos: client %zu (room " CHAOS_ROOM_FMT "): %zu messages, %zu connections:\n",
            index, c->room, c->n_got, c->n_conns);
    for (size_t k = 0; k < c->n_conns; k++) {
        const struct chaos_conn *r = &c->conns[k];
        size_t first = SIZE_MAX, count = 0;
        for (size_t g = 0; g < c->n_got; g++)
            if (c->got[g].conn == k && count++ == 0)
                first = g;
        fprintf(stderr,
                "  conn %zu: node %d start %u port %d, at %" PRId64 " ms, Last-Event-ID %" PRIu64
                ", %zu messages",
                k, r->node, r->gen, r->port, r->at_ms - chaos_t0, r->from_id, count);
        if (count)
            fprintf(stderr, " (ids %" PRIu64 "..%" PRIu64 ")", c->got[first].id,
                    c->got[first + count - 1].id);
        if (r->end[0])
            fprintf(stderr, ", ended at %" PRId64 " ms: %s\n", r->end_ms - chaos_t0, r->end);
        else
            fprintf(stderr, ", still open\n");
    }
}

/* ------------------------------------------------------------------ checks */

struct verdict {
    size_t missing, twice, out_of_order, wrong_id, foreign, resets, bad;
    size_t reported, of_client; /* lines printed, in all and for this client */
};

/* One line per problem: the first few of each client, the first 100 in all. */
static void note(struct verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct verdict *v, const char *fmt, ...)
{
    if (v->of_client++ >= 4 || v->reported++ >= 100)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chaos: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* What client ci got, against the acknowledged posts; seen has one counter
 * per post (zeroed here), unacked_seen counts the clients that got each
 * unacknowledged one. True when it holds. */
static bool check_client(const struct chaos_client *c, size_t ci, const struct chaos_post *posts,
                         size_t n_posts, uint8_t *seen, uint32_t *unacked_seen, struct verdict *v)
{
    struct verdict before = *v;
    v->of_client = 0;
    memset(seen, 0, n_posts);
    v->resets += c->resets;
    v->bad += c->bad_events;
    if (c->resets || c->bad_events)
        note(v, "client %zu: %u resets, %u other odd events; the first: %s", ci, c->resets,
             c->bad_events, c->first_odd);
    for (size_t g = 0; g < c->n_got; g++) {
        const struct chaos_got *m = &c->got[g];
        const struct chaos_post *post = m->seq < n_posts ? &posts[m->seq] : NULL;
        if (g > 0 && m->id <= c->got[g - 1].id) {
            v->out_of_order++;
            note(v, "client %zu: id %" PRIu64 " (seq %u, conn %u) after %" PRIu64, ci, m->id,
                 m->seq, m->conn, c->got[g - 1].id);
        }
        if (!post || post->room != c->room) {
            v->foreign++;
            note(v, "client %zu (room %u): seq %u is not of its room", ci, c->room, m->seq);
            continue;
        }
        if (seen[m->seq]++) {
            v->twice++;
            note(v, "client %zu: seq %u (status %d) twice, now as id %" PRIu64 " (conn %u)", ci,
                 m->seq, post->status, m->id, m->conn);
        }
        if (post->status == 202 && post->id != m->id) {
            v->wrong_id++;
            note(v, "client %zu: seq %u as id %" PRIu64 ", its 202 said %" PRIu64, ci, m->seq,
                 m->id, post->id);
        }
        if (post->status != 202 && seen[m->seq] == 1)
            unacked_seen[m->seq]++;
    }
    for (size_t s = 0; posts && s < n_posts; s++) {
        const struct chaos_post *post = &posts[s];
        if (post->room != c->room || post->status != 202 || seen[s])
            continue;
        v->missing++;
        note(v,
             "client %zu: missing seq %zu id %" PRIu64 " (posted to port %d, 202 at %" PRId64
             " ms)",
             ci, s, post->id, post->port, post->at_ms - chaos_t0);
    }
    bool ok = memcmp(&before, v, offsetof(struct verdict, reported)) == 0;
    if (!ok && v->reported++ < 100)
        fprintf(stderr,
                "chaos: client %zu in all: %zu missing, %zu twice, %zu out of order, %zu with "
                "another id\n",
                ci, v->missing - before.missing, v->twice - before.twice,
                v->out_of_order - before.out_of_order, v->wrong_id - before.wrong_id);
    return ok;
}

/* The unacknowledged messages some clients of their room got and others not
 * (*delivered: those any client got). Not a failure: nothing was promised
 * of them, but it is worth seeing. */
static size_t partial_unacked(const struct chaos_post *posts, size_t n_posts,
                              const uint32_t *unacked_seen, size_t *delivered)
{
    uint32_t per_room[CHAOS_ROOMS] = {0};
    for (size_t i = 0; i < CHAOS_CLIENTS; i++)
        per_room[i % CHAOS_ROOMS]++;
    size_t partial = 0;
    *delivered = 0;
    for (size_t s = 0; s < n_posts; s++) {
        uint32_t n = unacked_seen[s];
        if (posts[s].status == 202 || n == 0)
            continue;
        partial += n < per_room[posts[s].room];
        if ((*delivered)++ < 10)
            fprintf(stderr,
                    "chaos: note: unacknowledged seq %zu (status %d) reached %u of %u clients\n", s,
                    posts[s].status, n, per_room[posts[s].room]);
    }
    return partial;
}

size_t chaos_check(const struct chaos_client *clients, const struct chaos_post *posts,
                   size_t n_posts)
{
    struct verdict v = {0};
    uint8_t *seen = calloc(n_posts + 1, 1);
    uint32_t *unacked_seen = calloc(n_posts + 1, sizeof *unacked_seen);
    assert_non_null(seen);
    assert_non_null(unacked_seen);
    size_t bad = 0;
    for (size_t i = 0; i < CHAOS_CLIENTS; i++) {
        if (!check_client(&clients[i], i, posts, n_posts, seen, unacked_seen, &v) && bad++ < 3)
            chaos_client_print(&clients[i], i);
    }
    size_t delivered;
    size_t partial = partial_unacked(posts, n_posts, unacked_seen, &delivered);
    fprintf(stderr,
            "chaos: %zu clients failed: %zu acknowledged messages missing, %zu twice, %zu out "
            "of order, %zu with another id than their 202's, %zu of another room, %zu resets, "
            "%zu other odd events; %zu unacknowledged messages delivered, %zu of them to only "
            "some clients\n",
            bad, v.missing, v.twice, v.out_of_order, v.wrong_id, v.foreign, v.resets, v.bad,
            delivered, partial);
    free(seen);
    free(unacked_seen);
    return bad;
}
