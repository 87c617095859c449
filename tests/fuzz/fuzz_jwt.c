/*
 * libFuzzer target for the token parser (src/jwt.c).
 *
 * The input is used three ways, under ASan/UBSan (libFuzzer hands us an
 * exact-size heap copy, so any over-read is caught):
 *
 *   1. as a token: jwt_verify must return, and on JWT_OK the room checks run
 *      over the claims it found;
 *   2. as base64url: when it decodes, encoding the bytes gives the input
 *      back (one canonical form), and whatever decodes re-encodes;
 *   3. as a payload: signed with our key, it must verify unless the payload
 *      is at fault (JWT_MALFORMED, a time, audience or issuer rule) -- never
 *      a signature, algorithm or key failure; and the same token with its
 *      last signature character changed must never verify.
 *
 * Any violation aborts via __builtin_trap so libFuzzer records a crash.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct jwt_key keys[2] = {
    {"", (const unsigned char *)"fuzz-secret", 11},
    {"k2", (const unsigned char *)"another-secret", 14},
};

static struct jwt_claims claims;

static void as_token(const char *s, size_t size)
{
    const struct jwt_policy p = {.now = 1700000000, .leeway = 5, .audience = "a", .issuer = ""};
    if (jwt_verify(s, size, keys, 2, &p, &claims) == JWT_OK) {
        CHECK(claims.payload_len <= sizeof claims.payload);
        (void)jwt_claims_allow(&claims, JWT_SUBSCRIBE, "room", 4);
        (void)jwt_claims_allow(&claims, JWT_PUBLISH, "team-1", 6);
    }
}

static void as_base64(const char *s, size_t size)
{
    static unsigned char dec[JWT_MAX_TOKEN];
    static char enc[JWT_MAX_TOKEN * 2];
    long n = jwt_b64url_decode(s, size, dec, sizeof dec);
    if (n >= 0) {
        size_t e = jwt_b64url_encode(dec, (size_t)n, enc, sizeof enc);
        CHECK(e == size && memcmp(enc, s, size) == 0);
    }
    if (size <= sizeof dec) {
        size_t e = jwt_b64url_encode((const unsigned char *)s, size, enc, sizeof enc);
        CHECK(jwt_b64url_decode(enc, e, dec, sizeof dec) == (long)size);
        CHECK(memcmp(dec, s, size) == 0);
    }
}

static void as_payload(const char *s, size_t size)
{
    static char tok[JWT_MAX_TOKEN * 2];
    const struct jwt_policy p = {.now = 1700000000};
    size_t n = jwt_sign(s, size, &keys[size & 1], tok, sizeof tok);
    if (n == 0) {
        return;
    }
    enum jwt_result r = jwt_verify(tok, n, keys, 2, &p, &claims);
    CHECK(r != JWT_SIGNATURE && r != JWT_ALG && r != JWT_NO_KEY);
    CHECK(n > JWT_MAX_TOKEN ? r == JWT_TOO_LONG : r != JWT_TOO_LONG);
    tok[n - 1] = tok[n - 1] == 'A' ? 'B' : 'A';
    CHECK(jwt_verify(tok, n, keys, 2, &p, &claims) != JWT_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    as_token(s, size);
    as_base64(s, size);
    as_payload(s, size);
    return 0;
}
