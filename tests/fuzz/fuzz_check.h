/*
 * fuzz_check: what every fuzz target shares. CHECK fails the run (abort,
 * which libFuzzer reports with the input) when an invariant does not hold;
 * copy_exact gives the parser a heap copy of exactly the input's size, so
 * AddressSanitizer sees any read one byte past it.
 */
#ifndef SSE_FUZZ_CHECK_H
#define SSE_FUZZ_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static inline char *copy_exact(const uint8_t *data, size_t n)
{
    char *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    if (n)
        memcpy(p, data, n);
    return p;
}

#endif
