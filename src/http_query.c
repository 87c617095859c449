/*
 * http_query: the request target's query string, for the http module
 * (declared in http.h): percent-decoding, looking up one parameter, and
 * redacting token values before a target reaches a log line.
 */
#include "http.h"
#include "number.h"

#include <stdbool.h>
#include <string.h>

/*
 * Decodes the byte at src[*i] (a plain byte, a %XX escape, or with
 * plus_space a '+') and leaves *i on the last byte it used. -1: bad escape.
 */
static int decode_byte(const char *src, size_t len, size_t *i, bool plus_space)
{
    unsigned char c = (unsigned char)src[*i];

    if (c == '+' && plus_space)
        return ' ';
    if (c != '%')
        return c;
    if (len - *i < 3)
        return -1;
    int hi = number_hex_digit((unsigned char)src[*i + 1]);
    int lo = number_hex_digit((unsigned char)src[*i + 2]);
    if (hi < 0 || lo < 0)
        return -1;
    *i += 2;
    return hi << 4 | lo;
}

/* Decodes src[0..len) into out; -1 on a bad escape or when out is too small. */
static long decode_into(const char *src, size_t len, char *out, size_t out_cap, bool plus_space)
{
    size_t w = 0;

    for (size_t i = 0; i < len; i++) {
        int c = decode_byte(src, len, &i, plus_space);
        if (c < 0 || w == out_cap)
            return -1;
        out[w++] = (char)c;
    }
    return (long)w;
}

long http_percent_decode(const char *src, size_t len, char *out, size_t out_cap)
{
    return decode_into(src, len, out, out_cap, false);
}

/* Whether the (encoded) form name p[0..n) decodes to exactly `name`. */
static bool form_name_matches(const char *p, size_t n, const char *name, size_t name_len)
{
    size_t j = 0;

    for (size_t i = 0; i < n; i++, j++) {
        int c = decode_byte(p, n, &i, true);
        if (c < 0 || j == name_len || (unsigned char)name[j] != c)
            return false;
    }
    return j == name_len;
}

long http_query_param(struct http_str query, const char *name, char *out, size_t out_cap)
{
    size_t name_len = strlen(name);
    size_t i = 0;

    while (i < query.len) {
        const char *seg = query.ptr + i;
        const char *amp = memchr(seg, '&', query.len - i);
        size_t seg_len = amp ? (size_t)(amp - seg) : query.len - i;
        i += seg_len + 1;
        if (seg_len == 0)
            continue;

        const char *eq = memchr(seg, '=', seg_len);
        size_t key_len = eq ? (size_t)(eq - seg) : seg_len;
        if (!form_name_matches(seg, key_len, name, name_len))
            continue;
        if (!eq)
            return 0;
        long n = decode_into(eq + 1, seg_len - key_len - 1, out, out_cap, true);
        return n < 0 ? -2 : n;
    }
    return -1;
}

/* Appends p[0..n) to out at *o, cut so that one byte is left for the NUL. */
static void put_cut(char *out, size_t cap, size_t *o, const char *p, size_t n)
{
    size_t k = n < cap - 1 - *o ? n : cap - 1 - *o;
    memcpy(out + *o, p, k);
    *o += k;
}

size_t http_redact_target(struct http_str target, char *out, size_t cap)
{
    static const char mask[] = "=REDACTED";
    size_t o = 0;
    const char *q = memchr(target.ptr, '?', target.len);
    size_t head = q ? (size_t)(q - target.ptr) + 1 : target.len;

    if (cap == 0) {
        return 0;
    }
    put_cut(out, cap, &o, target.ptr, head);
    for (size_t i = head; i < target.len;) {
        const char *seg = target.ptr + i;
        const char *amp = memchr(seg, '&', target.len - i);
        size_t seg_len = amp ? (size_t)(amp - seg) : target.len - i;
        const char *eq = memchr(seg, '=', seg_len);
        size_t key_len = eq ? (size_t)(eq - seg) : seg_len;
        /* Names are matched after decoding, as http_query_param does, so
         * "%74oken=..." is hidden too. */
        if (eq && form_name_matches(seg, key_len, "token", 5)) {
            put_cut(out, cap, &o, seg, key_len);
            put_cut(out, cap, &o, mask, sizeof mask - 1);
        } else {
            put_cut(out, cap, &o, seg, seg_len);
        }
        i += seg_len;
        if (amp) {
            put_cut(out, cap, &o, "&", 1);
            i++;
        }
    }
    out[o] = '\0';
    return o;
}
