/*
 * sha256: SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104).
 *
 * Pure functions over caller-owned bytes: no allocation, no I/O, no globals.
 * The token verifier (jwt.c) is the only user in the server.
 */
#ifndef SSE_SHA256_H
#define SSE_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_BLOCK_LEN  64

struct sha256 {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    unsigned char block[SHA256_BLOCK_LEN];
    size_t fill; /* bytes waiting in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
/* Writes the digest; *s must be initialised again before reuse. */
void sha256_final(struct sha256 *s, unsigned char out[SHA256_DIGEST_LEN]);
/* One-shot digest of data[0..len). */
void sha256(const void *data, size_t len, unsigned char out[SHA256_DIGEST_LEN]);

/* HMAC-SHA-256 of msg[0..msg_len) under key[0..key_len) (any length). */
void hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                 unsigned char out[SHA256_DIGEST_LEN]);

/* Compares a[0..len) with b[0..len) in time that depends only on len. */
bool sha256_equal_ct(const unsigned char *a, const unsigned char *b, size_t len);

#endif
