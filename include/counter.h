/*
 * counter: statistics counters with one writer at a time (the loop that
 * owns them, or whoever holds the lock that guards them) and readers on any
 * thread (/stats, /metrics). Relaxed atomic loads and stores: a plain move
 * on common hardware, no locked instruction on the hot path, and readers
 * see a value that was true at some recent moment.
 */
#ifndef SSE_COUNTER_H
#define SSE_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t counter_t;

static inline uint64_t counter_get(const counter_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Only for the counter's single writer. */
static inline void counter_add(counter_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void counter_sub(counter_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
                          memory_order_relaxed);
}

#endif
