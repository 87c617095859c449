#include "resp.h"

#include <string.h>

const struct resp_limits resp_default_limits = {
    .max_bulk = (size_t)64 << 20,
    .max_array = (size_t)1 << 20,
    .max_line = (size_t)64 * 1024,
    .max_depth = 8,
};

void resp_scan_init(struct resp_scanner *s, const struct resp_limits *limits)
{
    memset(s, 0, sizeof *s);
    s->limits = limits ? *limits : resp_default_limits;
    if (s->limits.max_depth > RESP_MAX_DEPTH) {
        s->limits.max_depth = RESP_MAX_DEPTH;
    }
}

void resp_scan_reset(struct resp_scanner *s)
{
    s->off = 0;
    s->top = 0;
}

/*
 * Finds the CRLF ending the line that starts at p[1] (p[0] is the type).
 * Returns the length of the line's content, RESP_AGAIN (as -2 here) when the
 * CRLF is not there yet, or RESP_ERROR for a bare CR or LF or a line over max.
 */
#define LINE_AGAIN (-2L)
static long find_line(const char *p, size_t len, size_t max)
{
    size_t end = len < max + 2 ? len : max + 2;
    for (size_t i = 1; i < end; i++) {
        if (p[i] == '\n') {
            return RESP_ERROR;
        }
        if (p[i] == '\r') {
            if (i + 1 >= len) {
                return LINE_AGAIN;
            }
            return p[i + 1] == '\n' ? (long)(i - 1) : RESP_ERROR;
        }
    }
    return len < max + 2 ? LINE_AGAIN : RESP_ERROR;
}

/* Strict decimal: an optional '-', then at least one digit, fitting int64. */
static int parse_int(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = n > 0 && p[0] == '-';
    uint64_t v = 0, max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

    i = neg ? 1 : 0;
    if (i == n) {
        return -1;
    }
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (max - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    /* Negate in unsigned arithmetic: -INT64_MIN does not fit. */
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/*
 * Parses the element at p[0..len): its type line, and a bulk string's bytes.
 * Fills v (an array's elements are not included) and returns the bytes it
 * takes, LINE_AGAIN when incomplete, RESP_ERROR when malformed or over a limit.
 */
static long parse_elem(const char *p, size_t len, const struct resp_limits *lim,
                       struct resp_value *v)
{
    if (len == 0) {
        return LINE_AGAIN;
    }
    memset(v, 0, sizeof *v);
    char t = p[0];
    if (t != RESP_SIMPLE && t != RESP_ERR && t != RESP_INTEGER && t != RESP_BULK &&
        t != RESP_ARRAY) {
        return RESP_ERROR;
    }
    v->type = (enum resp_type)t;
    long n = find_line(p, len, lim->max_line);
    if (n < 0) {
        return n;
    }
    size_t hdr = (size_t)n + 3;
    if (t == RESP_SIMPLE || t == RESP_ERR) {
        v->str = p + 1;
        v->len = (size_t)n;
        return (long)hdr;
    }
    int64_t x;
    if (parse_int(p + 1, (size_t)n, &x) < 0) {
        return RESP_ERROR;
    }
    if (t == RESP_INTEGER) {
        v->integer = x;
        return (long)hdr;
    }
    if (x == -1) {
        v->null = true;
        return (long)hdr;
    }
    if (x < 0) {
        return RESP_ERROR;
    }
    if (t == RESP_ARRAY) {
        if ((uint64_t)x > lim->max_array) {
            return RESP_ERROR;
        }
        v->count = (size_t)x;
        return (long)hdr;
    }
    if ((uint64_t)x > lim->max_bulk) {
        return RESP_ERROR;
    }
    size_t blen = (size_t)x;
    if (len - hdr < blen + 2) {
        return LINE_AGAIN;
    }
    if (p[hdr + blen] != '\r' || p[hdr + blen + 1] != '\n') {
        return RESP_ERROR;
    }
    v->str = p + hdr;
    v->len = blen;
    return (long)(hdr + blen + 2);
}

long resp_scan(struct resp_scanner *s, const char *buf, size_t len)
{
    size_t pos = s->off;

    for (;;) {
        struct resp_value v;
        long r = parse_elem(buf + pos, len - pos, &s->limits, &v);
        if (r == LINE_AGAIN) {
            return RESP_AGAIN;
        }
        if (r < 0) {
            return RESP_ERROR;
        }
        pos += (size_t)r;
        /* Counted against its array as soon as its head is seen; an array
         * with elements then stays open until they have all been seen. */
        if (s->top > 0) {
            s->left[s->top]--;
        }
        if (v.type == RESP_ARRAY && v.count > 0) {
            if (s->top >= s->limits.max_depth) {
                return RESP_ERROR;
            }
            s->left[++s->top] = (int64_t)v.count;
        }
        while (s->top > 0 && s->left[s->top] == 0) {
            s->top--;
        }
        s->off = pos;
        if (s->top == 0) {
            return (long)pos;
        }
    }
}

/* The reader re-parses bytes that were scanned with some limits; it must not
 * refuse them for being large, only for being malformed. */
static const struct resp_limits read_limits = {
    .max_bulk = (size_t)-1 / 4,
    .max_array = (size_t)-1 / 4,
    .max_line = (size_t)-1 / 4,
    .max_depth = RESP_MAX_DEPTH,
};

int resp_read(struct resp_reader *r, struct resp_value *v)
{
    long n = parse_elem(r->p, r->left, &read_limits, v);
    if (n <= 0) {
        return -1;
    }
    r->p += n;
    r->left -= (size_t)n;
    return 0;
}

int resp_skip(struct resp_reader *r, const struct resp_value *v)
{
    /* Iterative: elements still to skip, nested arrays adding theirs. */
    size_t need = v->type == RESP_ARRAY ? v->count : 0;
    while (need > 0) {
        struct resp_value e;
        if (resp_read(r, &e) < 0) {
            return -1;
        }
        need--;
        if (e.type == RESP_ARRAY) {
            need += e.count;
        }
    }
    return 0;
}

bool resp_str_eq(const struct resp_value *v, const char *s)
{
    if ((v->type != RESP_SIMPLE && v->type != RESP_BULK) || v->null) {
        return false;
    }
    size_t n = strlen(s);
    return v->len == n && (n == 0 || memcmp(v->str, s, n) == 0);
}

/* Writes "<c><n>\r\n" at out[at] when it fits in cap; returns its size. */
static size_t put_head(char *out, size_t cap, size_t at, char c, size_t n)
{
    char digits[24];
    size_t k = 0;
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    size_t size = 1 + k + 2;
    if (at + size <= cap) {
        char *p = out + at;
        *p++ = c;
        while (k > 0) {
            *p++ = digits[--k];
        }
        *p++ = '\r';
        *p = '\n';
    }
    return size;
}

size_t resp_encode(char *out, size_t cap, size_t argc, const char *const argv[],
                   const size_t lens[])
{
    size_t need = put_head(NULL, 0, 0, '*', argc);
    for (size_t i = 0; i < argc; i++) {
        need += put_head(NULL, 0, 0, '$', lens[i]) + lens[i] + 2;
    }
    if (need > cap) {
        return need;
    }
    size_t at = put_head(out, cap, 0, '*', argc);
    for (size_t i = 0; i < argc; i++) {
        at += put_head(out, cap, at, '$', lens[i]);
        if (lens[i] > 0) {
            memcpy(out + at, argv[i], lens[i]);
        }
        at += lens[i];
        out[at++] = '\r';
        out[at++] = '\n';
    }
    return need;
}
