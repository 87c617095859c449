/*
 * jwt: JSON Web Tokens signed with HS256 (RFC 7519, RFC 7515) -- base64url,
 * parsing, signature check, the time and audience/issuer rules, and the
 * rooms a token grants.
 *
 * Pure: no allocation, no I/O, no clock (the caller says what time it is).
 *
 * The algorithm is fixed by this module, never taken from the token: a
 * header whose "alg" is anything but "HS256" ("none", "RS256", "hs256",
 * ...) is refused, which closes the algorithm-confusion and unsigned-token
 * holes. The signature is compared in constant time.
 */
#ifndef SSE_JWT_H
#define SSE_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longer tokens are refused without being decoded. */
#define JWT_MAX_TOKEN 4096
/* Decoded payload bytes a token can carry (3/4 of the token). */
#define JWT_MAX_PAYLOAD (JWT_MAX_TOKEN / 4 * 3)
#define JWT_MAX_KID     64

/* One HS256 secret and its optional key id. */
struct jwt_key {
    const char *kid; /* NUL-terminated; "" = none */
    const unsigned char *secret;
    size_t secret_len;
};

/* What a token must satisfy besides its signature. */
struct jwt_policy {
    int64_t now;          /* seconds since the epoch */
    unsigned leeway;      /* seconds of clock skew allowed on exp and nbf */
    const char *audience; /* NULL or "": "aud" is not required */
    const char *issuer;   /* NULL or "": "iss" is not required */
};

enum jwt_result {
    JWT_OK = 0,
    JWT_TOO_LONG,  /* over JWT_MAX_TOKEN */
    JWT_MALFORMED, /* not three base64url parts of JSON objects, or bad claims */
    JWT_ALG,       /* "alg" is not HS256 (or a "crit" header we cannot honour) */
    JWT_NO_KEY,    /* no configured key has the token's "kid" */
    JWT_SIGNATURE, /* no key gives the signature */
    JWT_EXPIRED,   /* now >= exp + leeway */
    JWT_NOT_YET,   /* now + leeway < nbf */
    JWT_AUDIENCE,  /* "aud" missing or not the configured one */
    JWT_ISSUER,    /* "iss" missing or not the configured one */
};

/* Which list of rooms of the "sse" claim. */
enum jwt_right { JWT_SUBSCRIBE, JWT_PUBLISH };

/* A verified token's claims. The room lists are spans of `payload`. */
struct jwt_claims {
    bool has_exp;
    int64_t exp;                       /* seconds since the epoch, when has_exp */
    size_t rooms_off[2], rooms_len[2]; /* JSON array text per right; len 0: none */
    size_t payload_len;
    char payload[JWT_MAX_PAYLOAD];
};

/*
 * Verifies token[0..len) against keys[0..nkeys): a token with a "kid" is
 * checked with the key of that id only, one without with each key in turn.
 * On JWT_OK *claims holds the token's claims; otherwise its contents are
 * unspecified. Never reads outside token[0..len).
 */
enum jwt_result jwt_verify(const char *token, size_t len, const struct jwt_key *keys, size_t nkeys,
                           const struct jwt_policy *policy, struct jwt_claims *claims);

/* True when the claims' list for `right` has a pattern naming the room. */
bool jwt_claims_allow(const struct jwt_claims *claims, enum jwt_right right, const char *room,
                      size_t room_len);

/* A short lower-case reason for a result ("token expired", ...). */
const char *jwt_result_str(enum jwt_result r);

/*
 * Signs payload_json[0..len) (a JSON object, not checked) with `key` into
 * out[0..cap) as header.payload.signature, NUL-terminated; the header names
 * the key's kid when it has one (a kid is written as is: it must need no
 * JSON escaping, as the keyring's kids never do). Returns the token's
 * length, or 0 when it does not fit.
 */
size_t jwt_sign(const char *payload_json, size_t len, const struct jwt_key *key, char *out,
                size_t cap);

/* base64url without padding. encode returns the length written (0 when it
 * does not fit in cap); decode returns the decoded length, or -1 when the
 * input is not canonical unpadded base64url or does not fit. */
size_t jwt_b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap);
long jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap);

#endif
