#include "jwt.h"

#include "number.h"
#include "json.h"
#include "room_pattern.h"
#include "sha256.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ base64url */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

size_t jwt_b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
    size_t need = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
    if (need > cap) {
        return 0;
    }
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64_alphabet[(acc >> bits) & 63];
        }
        acc &= (1u << bits) - 1;
    }
    if (bits) {
        out[o++] = b64_alphabet[(acc << (6 - bits)) & 63];
    }
    return o;
}

long jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    /* One character alone carries 6 bits, less than a byte: never valid. */
    if (len % 4 == 1) {
        return -1;
    }
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > cap) {
        return -1;
    }
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
        acc &= (1u << bits) - 1;
    }
    /* Canonical form only: leftover bits must be zero, so that each byte
     * string has exactly one encoding (no look-alike signatures). */
    return acc == 0 ? (long)o : -1;
}

/* ------------------------------------------------------------ JSON walks
 * Over text json_validate accepted, so the walks need no error handling
 * beyond staying inside the buffer. */

static size_t skip_ws(const char *b, size_t len, size_t i)
{
    while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n')) {
        i++;
    }
    return i;
}

/* b[i] is the opening quote; returns the index after the closing one. */
static size_t skip_string(const char *b, size_t len, size_t i)
{
    for (i++; i < len && b[i] != '"'; i++) {
        if (b[i] == '\\') {
            i++;
        }
    }
    return i < len ? i + 1 : len;
}

/* Iterative, so a deeply nested value costs no stack. */
static size_t skip_value(const char *b, size_t len, size_t i)
{
    size_t depth = 0;
    if (i >= len) {
        return len;
    }
    do {
        char ch = b[i];
        if (ch == '"') {
            i = skip_string(b, len, i);
        } else if (ch == '{' || ch == '[') {
            depth++;
            i++;
        } else if (ch == '}' || ch == ']') {
            depth--;
            i++;
        } else if (depth == 0) {
            while (i < len && !strchr(",}] \t\r\n", b[i])) {
                i++;
            }
        } else {
            i++;
        }
    } while (depth > 0 && i < len);
    return i;
}

/* Finds member `name` of the object at b[obj] ('{'); on success *val is
 * the index of its value. Names are compared as written: a claim name
 * spelled with escapes is not recognised (and so grants nothing). */
static bool member(const char *b, size_t len, size_t obj, const char *name, size_t *val)
{
    size_t nlen = strlen(name);
    size_t i = skip_ws(b, len, obj + 1);
    while (i < len && b[i] == '"') {
        size_t key = i + 1, end = skip_string(b, len, i);
        i = skip_ws(b, len, skip_ws(b, len, end) + 1); /* past ':' */
        if (end - 1 - key == nlen && memcmp(b + key, name, nlen) == 0) {
            *val = i;
            return true;
        }
        i = skip_ws(b, len, skip_value(b, len, i));
        if (i < len && b[i] == ',') {
            i = skip_ws(b, len, i + 1);
        }
    }
    return false;
}

/* The raw text between the quotes of the string at b[i], or false when the
 * value is not a string. */
static bool string_at(const char *b, size_t len, size_t i, const char **s, size_t *slen)
{
    if (i >= len || b[i] != '"') {
        return false;
    }
    size_t end = skip_string(b, len, i);
    if (end < i + 2 || b[end - 1] != '"') {
        return false;
    }
    *s = b + i + 1;
    *slen = end - i - 2;
    return true;
}

static bool string_is(const char *b, size_t len, size_t i, const char *lit)
{
    const char *s;
    size_t n;
    return string_at(b, len, i, &s, &n) && n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* Calls fn on each element of the array at b[i] until it returns true;
 * false also when the value is not an array of strings. */
static bool array_strings(const char *b, size_t len, size_t i,
                          bool (*fn)(const char *, size_t, const void *), const void *arg,
                          bool *all_strings)
{
    *all_strings = i < len && b[i] == '[';
    if (!*all_strings) {
        return false;
    }
    for (i = skip_ws(b, len, i + 1); i < len && b[i] != ']';) {
        const char *s;
        size_t n;
        if (!string_at(b, len, i, &s, &n)) {
            *all_strings = false;
            return false;
        }
        if (fn && fn(s, n, arg)) {
            return true;
        }
        i = skip_ws(b, len, skip_string(b, len, i));
        if (i < len && b[i] == ',') {
            i = skip_ws(b, len, i + 1);
        }
    }
    return false;
}

/* A NumericDate: an integer, or a number with a fraction, which rounds
 * towards the stricter side (exp down, nbf up). Exponents are refused. */
static bool numeric_date(const char *b, size_t len, size_t i, bool round_up, int64_t *out)
{
    bool neg = i < len && b[i] == '-';
    i += neg;
    size_t n = number_span(b + i, len - i);
    uint64_t v;
    if (!number_parse_u64(b + i, n, &v)) {
        return false;
    }
    i += n;
    bool frac = false;
    if (i < len && b[i] == '.') {
        size_t f = number_span(b + i + 1, len - i - 1);
        for (size_t k = 1; k <= f; k++) {
            frac |= b[i + k] != '0';
        }
        i += f + 1;
    }
    if (i < len && (b[i] == 'e' || b[i] == 'E')) {
        return false;
    }
    if (v > (uint64_t)INT64_MAX / 2) {
        v = (uint64_t)INT64_MAX / 2; /* far enough in any direction */
    }
    *out = neg ? -(int64_t)v : (int64_t)v + (round_up && frac);
    return true;
}

/* ------------------------------------------------------------ verify */

/* Decodes one part into buf and checks it is a JSON object; returns the
 * index of its '{', or -1. */
static long decode_object(const char *part, size_t n, char *buf, size_t cap, size_t *len)
{
    long dl = jwt_b64url_decode(part, n, (unsigned char *)buf, cap);
    if (dl < 0) {
        return -1;
    }
    *len = (size_t)dl;
    struct json_error err = {0, NULL};
    if (!json_validate(buf, *len, &err)) {
        return -1;
    }
    size_t i = skip_ws(buf, *len, 0);
    return i < *len && buf[i] == '{' ? (long)i : -1;
}

/* The header: "alg" must be HS256; a "kid" is copied out. */
static enum jwt_result check_header(const char *b, size_t len, size_t obj, char *kid)
{
    size_t v;
    const char *s;
    size_t n;
    if (!member(b, len, obj, "alg", &v) || !string_is(b, len, v, "HS256")) {
        return JWT_ALG;
    }
    /* RFC 7515 4.1.11: an extension we would have to understand. */
    if (member(b, len, obj, "crit", &v)) {
        return JWT_ALG;
    }
    kid[0] = '\0';
    if (member(b, len, obj, "kid", &v)) {
        if (!string_at(b, len, v, &s, &n) || n == 0 || n > JWT_MAX_KID || memchr(s, '\\', n)) {
            return JWT_MALFORMED;
        }
        memcpy(kid, s, n);
        kid[n] = '\0';
    }
    return JWT_OK;
}

static enum jwt_result check_signature(const char *token, size_t signed_len, const char *sig,
                                       size_t sig_len, const char *kid, const struct jwt_key *keys,
                                       size_t nkeys)
{
    unsigned char want[SHA256_DIGEST_LEN + 1], mac[SHA256_DIGEST_LEN];
    if (jwt_b64url_decode(sig, sig_len, want, sizeof want) != SHA256_DIGEST_LEN) {
        return JWT_SIGNATURE;
    }
    bool tried = false;
    for (size_t k = 0; k < nkeys; k++) {
        if (*kid && strcmp(kid, keys[k].kid) != 0) {
            continue;
        }
        tried = true;
        hmac_sha256(keys[k].secret, keys[k].secret_len, token, signed_len, mac);
        if (sha256_equal_ct(mac, want, SHA256_DIGEST_LEN)) {
            return JWT_OK;
        }
    }
    return tried ? JWT_SIGNATURE : JWT_NO_KEY;
}

static bool same_string(const char *s, size_t n, const void *arg)
{
    const char *want = arg;
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

static enum jwt_result check_times(const char *b, size_t len, size_t obj,
                                   const struct jwt_policy *p, struct jwt_claims *c)
{
    size_t v;
    int64_t t;
    c->has_exp = member(b, len, obj, "exp", &v);
    if (c->has_exp) {
        if (!numeric_date(b, len, v, false, &c->exp)) {
            return JWT_MALFORMED;
        }
        if (p->now >= c->exp + (int64_t)p->leeway) {
            return JWT_EXPIRED;
        }
    }
    if (member(b, len, obj, "nbf", &v)) {
        if (!numeric_date(b, len, v, true, &t)) {
            return JWT_MALFORMED;
        }
        if (p->now + (int64_t)p->leeway < t) {
            return JWT_NOT_YET;
        }
    }
    return JWT_OK;
}

static enum jwt_result check_aud_iss(const char *b, size_t len, size_t obj,
                                     const struct jwt_policy *p)
{
    size_t v;
    bool strings;
    if (p->audience && *p->audience) {
        /* "aud" is one string or an array of them (RFC 7519 4.1.3). */
        if (!member(b, len, obj, "aud", &v) ||
            !(string_is(b, len, v, p->audience) ||
              array_strings(b, len, v, same_string, p->audience, &strings))) {
            return JWT_AUDIENCE;
        }
    }
    if (p->issuer && *p->issuer) {
        if (!member(b, len, obj, "iss", &v) || !string_is(b, len, v, p->issuer)) {
            return JWT_ISSUER;
        }
    }
    return JWT_OK;
}

/* {"sse": {"subscribe": [...], "publish": [...]}}: each list, when given,
 * must be an array of strings. */
static enum jwt_result find_rooms(const char *b, size_t len, size_t obj, struct jwt_claims *c)
{
    static const char *const names[2] = {[JWT_SUBSCRIBE] = "subscribe", [JWT_PUBLISH] = "publish"};
    size_t sse, v;
    memset(c->rooms_len, 0, sizeof c->rooms_len);
    if (!member(b, len, obj, "sse", &sse)) {
        return JWT_OK;
    }
    if (b[sse] != '{') {
        return JWT_MALFORMED;
    }
    for (int r = 0; r < 2; r++) {
        bool strings;
        if (!member(b, len, sse, names[r], &v)) {
            continue;
        }
        array_strings(b, len, v, NULL, NULL, &strings);
        if (!strings) {
            return JWT_MALFORMED;
        }
        c->rooms_off[r] = v;
        c->rooms_len[r] = skip_value(b, len, v) - v;
    }
    return JWT_OK;
}

enum jwt_result jwt_verify(const char *token, size_t len, const struct jwt_key *keys, size_t nkeys,
                           const struct jwt_policy *policy, struct jwt_claims *claims)
{
    char kid[JWT_MAX_KID + 1];
    if (len > JWT_MAX_TOKEN) {
        return JWT_TOO_LONG;
    }
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
        return JWT_MALFORMED;
    }
    size_t signed_len = (size_t)(dot2 - token);

    /* The header is decoded into the payload buffer, which is free yet. */
    char *b = claims->payload;
    size_t blen;
    long obj = decode_object(token, (size_t)(dot1 - token), b, sizeof claims->payload, &blen);
    if (obj < 0) {
        return JWT_MALFORMED;
    }
    enum jwt_result r = check_header(b, blen, (size_t)obj, kid);
    if (r == JWT_OK) {
        r = check_signature(token, signed_len, dot2 + 1, len - signed_len - 1, kid, keys, nkeys);
    }
    if (r != JWT_OK) {
        return r;
    }
    /* Only a token we signed gets its claims parsed. */
    obj = decode_object(dot1 + 1, (size_t)(dot2 - dot1 - 1), b, sizeof claims->payload, &blen);
    if (obj < 0) {
        return JWT_MALFORMED;
    }
    claims->payload_len = blen;
    r = check_times(b, blen, (size_t)obj, policy, claims);
    if (r == JWT_OK) {
        r = check_aud_iss(b, blen, (size_t)obj, policy);
    }
    if (r == JWT_OK) {
        r = find_rooms(b, blen, (size_t)obj, claims);
    }
    return r;
}

struct room_ref {
    const char *name;
    size_t len;
};

static bool pattern_names_room(const char *s, size_t n, const void *arg)
{
    const struct room_ref *room = arg;
    return room_pattern_match(s, n, room->name, room->len);
}

bool jwt_claims_allow(const struct jwt_claims *claims, enum jwt_right right, const char *room,
                      size_t room_len)
{
    const struct room_ref ref = {room, room_len};
    bool strings;
    if (!claims->rooms_len[right]) {
        return false;
    }
    return array_strings(claims->payload, claims->payload_len, claims->rooms_off[right],
                         pattern_names_room, &ref, &strings);
}

const char *jwt_result_str(enum jwt_result r)
{
    switch (r) {
    case JWT_OK:
        return "valid token";
    case JWT_TOO_LONG:
        return "token too long";
    case JWT_MALFORMED:
        return "malformed token";
    case JWT_ALG:
        return "unsupported token algorithm: only HS256 is accepted";
    case JWT_NO_KEY:
        return "unknown token key id";
    case JWT_SIGNATURE:
        return "invalid token signature";
    case JWT_EXPIRED:
        return "token expired";
    case JWT_NOT_YET:
        return "token not valid yet";
    case JWT_AUDIENCE:
        return "token audience mismatch";
    case JWT_ISSUER:
        return "token issuer mismatch";
    }
    return "invalid token";
}

/* ------------------------------------------------------------ sign */

size_t jwt_sign(const char *payload_json, size_t len, const struct jwt_key *key, char *out,
                size_t cap)
{
    char header[128];
    unsigned char mac[SHA256_DIGEST_LEN];
    int hn = *key->kid ? snprintf(header, sizeof header,
                                  "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", key->kid)
                       : snprintf(header, sizeof header, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    if (hn < 0 || (size_t)hn >= sizeof header || cap == 0) {
        return 0;
    }
    size_t o = jwt_b64url_encode((const unsigned char *)header, (size_t)hn, out, cap);
    if (o == 0 || o + 1 >= cap) {
        return 0;
    }
    out[o++] = '.';
    size_t n = jwt_b64url_encode((const unsigned char *)payload_json, len, out + o, cap - o);
    if (n == 0 || o + n + 1 >= cap) {
        return 0;
    }
    o += n;
    hmac_sha256(key->secret, key->secret_len, out, o, mac);
    out[o++] = '.';
    n = jwt_b64url_encode(mac, sizeof mac, out + o, cap - o);
    if (n == 0 || o + n >= cap) {
        return 0;
    }
    o += n;
    out[o] = '\0';
    return o;
}
