/*
 * parser_check: feeds random event streams, cut into random pieces, to the
 * load generator's parser (bench/evparse.h) and to the repository's
 * reference parser (tests/unit/sse_parse.c), and checks that both dispatch
 * the same events (type, data, id; evparse keeps only prefixes of them, so
 * those and the lengths are compared), comments and retry values.
 *
 *   parser_check [ITERATIONS] [SEED]      exit 0 when they always agree
 */
#include "evparse.h"
#include "sse_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct got {
    size_t n, cap;
    struct {
        uint64_t data_len;
        size_t keep_len;
        char keep[EVP_KEEP];
        struct evp_small type, id;
    } * ev;
};

static void on_evp(void *ctx, struct evp *p)
{
    struct got *g = ctx;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->ev = realloc(g->ev, g->cap * sizeof *g->ev);
        if (!g->ev) {
            perror("realloc");
            exit(2);
        }
    }
    g->ev[g->n].data_len = p->data_len;
    g->ev[g->n].keep_len = p->keep_len;
    memcpy(g->ev[g->n].keep, p->keep, p->keep_len);
    g->ev[g->n].type = p->type;
    g->ev[g->n].id = p->last_id;
    g->n++;
}

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33) % n;
}

static const char *const pieces[] = {
    "data",
    "data:",
    "data: ",
    "event:",
    "event: ",
    "id:",
    "id: ",
    "retry:",
    "retry: ",
    ":",
    "dat",
    "datax:",
    "Data:",
    "ev",
    "idx:",
    "id",
    "retry",
    " ",
    "x",
    "123",
    "4",
    "a b",
    "\xEF\xBB\xBF",
    "\xEF\xBB",
    "message",
    "\r",
    "\n",
    "\r\n",
    "\n\n",
    "\r\r",
    "\0",
    ":",
    "data: {\"seq\":1}",
};

/* Appends a random stream to buf; returns its length. */
static size_t make_stream(char *buf, size_t cap)
{
    size_t len = 0;
    if (rnd(4) == 0) {
        const char *bom = rnd(2) ? "\xEF\xBB\xBF" : "\xEF\xBB";
        memcpy(buf, bom, strlen(bom));
        len = strlen(bom);
    }
    size_t parts = 1 + rnd(120);
    for (size_t i = 0; i < parts && len + 600 < cap; i++) {
        uint32_t r = rnd(14);
        if (r >= 10) {
            /* A well-formed line, so that events are dispatched often. */
            static const char *const fields[] = {"data: ", "data:", "id: ", "event: ", ": "};
            static const char *const eols[] = {"\n", "\r\n", "\r", "\n\n", "\r\n\r\n"};
            const char *f = fields[rnd(5)];
            const char *e = eols[rnd(5)];
            memcpy(buf + len, f, strlen(f));
            len += strlen(f);
            size_t n = rnd(rnd(6) == 0 ? 400 : 12);
            for (size_t j = 0; j < n; j++) {
                buf[len++] = (char)('A' + rnd(26));
            }
            memcpy(buf + len, e, strlen(e));
            len += strlen(e);
        } else if (r < 6) {
            size_t np = sizeof pieces / sizeof pieces[0];
            size_t k = rnd((uint32_t)np);
            /* The "\0" piece is one NUL byte. */
            size_t pl = pieces[k][0] == '\0' ? 1 : strlen(pieces[k]);
            memcpy(buf + len, pieces[k], pl);
            len += pl;
        } else if (r < 8) {
            size_t n = rnd(rnd(8) == 0 ? 500 : 20);
            for (size_t j = 0; j < n; j++) {
                buf[len++] = (char)('a' + rnd(26));
            }
        } else {
            buf[len++] = (char)rnd(256);
        }
    }
    return len;
}

static int small_eq(const struct evp_small *a, const char *s, size_t n)
{
    size_t k = n < EVP_SMALL ? n : EVP_SMALL;
    return a->len == n && memcmp(a->s, s, k) == 0;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 20000;
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 12345;
    static char buf[1 << 16];
    long events = 0;

    for (long it = 0; it < iters; it++) {
        size_t len = make_stream(buf, sizeof buf);

        struct ssep_list ref;
        struct ssep_parser rp;
        ssep_list_init(&ref);
        ssep_init(&rp, ssep_list_add, &ref);
        for (size_t off = 0; off < len;) {
            size_t n = 1 + rnd(rnd(3) == 0 ? 3 : 200);
            if (n > len - off) {
                n = len - off;
            }
            if (ssep_feed(&rp, buf + off, n) != 0) {
                fprintf(stderr, "reference parser: out of memory\n");
                return 2;
            }
            off += n;
        }

        struct got g = {0};
        struct evp p;
        evp_init(&p);
        for (size_t off = 0; off < len;) {
            size_t n = 1 + rnd(rnd(3) == 0 ? 3 : 200);
            if (n > len - off) {
                n = len - off;
            }
            evp_feed(&p, buf + off, n, on_evp, &g);
            off += n;
        }

        int bad = g.n != ref.count || p.comments != rp.comments ||
                  p.has_retry != (rp.has_retry != 0) || (p.has_retry && p.retry_ms != rp.retry_ms);
        for (size_t i = 0; !bad && i < g.n; i++) {
            const struct ssep_event *r = &ref.ev[i];
            /* The reference reports "message" for an empty type buffer. */
            int defaulted =
                g.ev[i].type.len == 0 && r->type_len == 7 && memcmp(r->type, "message", 7) == 0;
            const char *rtype = defaulted ? "" : r->type;
            size_t rtype_len = defaulted ? 0 : r->type_len;
            bad = g.ev[i].data_len != r->data_len ||
                  g.ev[i].keep_len != (r->data_len < EVP_KEEP ? r->data_len : EVP_KEEP) ||
                  memcmp(g.ev[i].keep, r->data, g.ev[i].keep_len) != 0 ||
                  !small_eq(&g.ev[i].type, rtype, rtype_len) ||
                  !small_eq(&g.ev[i].id, r->id, r->id_len);
            if (bad) {
                fprintf(stderr, "event %zu differs\n", i);
            }
        }
        if (bad) {
            fprintf(stderr,
                    "iteration %ld: evparse %zu events %llu comments, reference %zu events "
                    "%zu comments; stream (%zu bytes):\n",
                    it, g.n, (unsigned long long)p.comments, ref.count, rp.comments, len);
            fwrite(buf, 1, len, stderr);
            fputc('\n', stderr);
            return 1;
        }
        events += (long)g.n;
        ssep_free(&rp);
        ssep_list_free(&ref);
        free(g.ev);
    }
    printf("parser_check: %ld streams, %ld events: evparse agrees with the reference parser\n",
           iters, events);
    return 0;
}
