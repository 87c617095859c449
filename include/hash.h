/*
 * hash: the one non-cryptographic hash of the project (64-bit FNV-1a), for
 * hash tables and content tags. Not for anything an attacker must not
 * predict without a secret seed.
 */
#ifndef SSE_HASH_H
#define SSE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a over p[0..n), starting from the offset basis xor seed. */
static inline uint64_t hash_fnv1a(uint64_t seed, const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = seed ^ 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* FNV-1a with a final mix, so the low bits (a table index) depend on every
 * input byte. */
static inline uint64_t hash_bucket(uint64_t seed, const void *p, size_t n)
{
    uint64_t h = hash_fnv1a(seed, p, n);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

#endif
