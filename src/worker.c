#include "worker.h"

#include "loop.h"

#include <string.h>

int worker_init(struct worker *w, struct server *srv, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    w->srv = srv;
    list_init(&w->conns);
    list_init(&w->held);
    w->batches_tail = &w->batches;
    /* xorshift has one fixed point, zero: never start there. */
    w->rng = seed | 1;
    w->loop = loop_new();
    return w->loop ? 0 : -1;
}

void worker_release(struct worker *w)
{
    loop_free(w->loop);
    w->loop = NULL;
}

uint32_t worker_random(struct worker *w)
{
    /* xorshift64*: plenty for jitter, and no syscall per connection. */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

const char *worker_date(struct worker *w)
{
    time_t now = time(NULL);
    if (now != w->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        w->date_sec = now;
    }
    return w->date;
}
