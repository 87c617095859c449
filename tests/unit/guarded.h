/*
 * guarded: a buffer whose last byte sits right before an inaccessible page,
 * so a parser that reads one byte past the input it was given crashes at
 * once, with or without a sanitizer. For the parser tests (include after
 * cmocka.h: it asserts).
 */
#ifndef SSE_TEST_GUARDED_H
#define SSE_TEST_GUARDED_H

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct guarded {
    char *base;
    size_t cap;     /* accessible bytes, a whole number of pages */
    size_t map_len; /* cap plus the guard page */
};

static inline void guarded_init(struct guarded *g, size_t cap)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (cap + page - 1) / page;

    if (pages == 0)
        pages = 1;
    g->cap = pages * page;
    g->map_len = g->cap + page;
    g->base = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g->base != MAP_FAILED);
    assert_int_equal(mprotect(g->base + g->cap, page, PROT_NONE), 0);
}

static inline void guarded_free(struct guarded *g)
{
    assert_int_equal(munmap(g->base, g->map_len), 0);
}

/* Copies s[0..n) so that it ends right where the guard page starts. */
static inline char *guarded_put(struct guarded *g, const char *s, size_t n)
{
    assert_true(n <= g->cap);
    char *p = g->base + g->cap - n;
    memmove(p, s, n);
    return p;
}

#endif
