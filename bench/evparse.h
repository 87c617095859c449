/*
 * evparse: a streaming text/event-stream parser for the load generator.
 *
 * It applies exactly the rules of the reference parser in
 * tests/unit/sse_parse.h (WHATWG HTML, "Interpreting an event stream"):
 * one leading BOM skipped; lines end with CRLF, LF or CR (a CRLF split
 * across reads is one line break); ':' starts a comment; "name:value" with
 * one leading space of the value removed, a line without ':' is a field
 * with an empty value; "event" sets the type, "data" appends value + LF,
 * "id" sets the last event ID buffer unless the value contains NUL, "retry"
 * takes ASCII digits only; a blank line dispatches (the last event ID string
 * is updated; nothing is dispatched if the data buffer is empty; one
 * trailing LF is removed).
 *
 * What differs is only what is stored, so that ten thousand streams can be
 * parsed at line rate without copying: it works byte-segment by segment with
 * no line buffer, and keeps the data buffer's full length but only its first
 * EVP_KEEP bytes (enough to read the benchmark's sequence number and
 * timestamp); the event type and id are kept up to EVP_SMALL bytes, with a
 * flag when longer. bench/parser_check.c feeds random streams in random
 * pieces to both parsers and checks they dispatch the same events.
 */
#ifndef SSE_BENCH_EVPARSE_H
#define SSE_BENCH_EVPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define EVP_KEEP  192
#define EVP_SMALL 48

enum evp_phase { EVP_NAME, EVP_VALUE_START, EVP_VALUE, EVP_COMMENT };
enum evp_field { EVP_F_OTHER, EVP_F_DATA, EVP_F_EVENT, EVP_F_ID, EVP_F_RETRY };

/* A small capped string: the first EVP_SMALL bytes, the true length. */
struct evp_small {
    size_t len;
    char s[EVP_SMALL];
};

struct evp {
    /* Results. */
    uint64_t events;   /* dispatched */
    uint64_t comments; /* comment lines */
    bool has_retry;
    uint64_t retry_ms;

    /* The dispatched event, valid inside the callback. */
    uint64_t data_len;   /* full length of the data buffer (minus final LF) */
    size_t keep_len;     /* bytes of it in keep[] */
    char keep[EVP_KEEP]; /* the first bytes of the data buffer */
    struct evp_small type;
    struct evp_small last_id;

    /* Private. */
    uint8_t bom;   /* BOM bytes matched at stream start */
    bool bom_done; /* start of stream decided */
    bool after_cr;
    uint8_t phase;
    uint8_t field;
    size_t line_len; /* bytes of the current line so far */
    uint8_t name_len;
    char name[8];
    struct evp_small val; /* value of an event/id/retry field */
    bool val_nul;
    bool val_digits;
    uint64_t val_num; /* retry value so far */
    struct evp_small id_buf;
};

typedef void (*evp_event_fn)(void *ctx, struct evp *p);

static inline void evp_init(struct evp *p)
{
    memset(p, 0, sizeof *p);
}

static inline void evp_small_append(struct evp_small *b, const char *s, size_t n)
{
    if (b->len < EVP_SMALL) {
        size_t room = EVP_SMALL - b->len;
        memcpy(b->s + b->len, s, n < room ? n : room);
    }
    b->len += n;
}

static inline void evp_set_field(struct evp *p)
{
    uint8_t n = p->name_len;
    const char *s = p->name;
    if (n == 4 && memcmp(s, "data", 4) == 0) {
        p->field = EVP_F_DATA;
    } else if (n == 5 && memcmp(s, "event", 5) == 0) {
        p->field = EVP_F_EVENT;
    } else if (n == 2 && s[0] == 'i' && s[1] == 'd') {
        p->field = EVP_F_ID;
    } else if (n == 5 && memcmp(s, "retry", 5) == 0) {
        p->field = EVP_F_RETRY;
    } else {
        p->field = EVP_F_OTHER;
    }
    p->val.len = 0;
    p->val_nul = false;
    p->val_digits = true;
    p->val_num = 0;
}

static inline void evp_data_append(struct evp *p, const char *s, size_t n)
{
    if (p->keep_len < EVP_KEEP) {
        size_t room = EVP_KEEP - p->keep_len;
        size_t k = n < room ? n : room;
        memcpy(p->keep + p->keep_len, s, k);
        p->keep_len += k;
    }
    p->data_len += n;
}

static inline void evp_value(struct evp *p, const char *s, size_t n)
{
    switch (p->field) {
    case EVP_F_DATA:
        evp_data_append(p, s, n);
        break;
    case EVP_F_EVENT:
        evp_small_append(&p->val, s, n);
        break;
    case EVP_F_ID:
        if (!p->val_nul && memchr(s, '\0', n)) {
            p->val_nul = true;
        }
        evp_small_append(&p->val, s, n);
        break;
    case EVP_F_RETRY:
        for (size_t i = 0; i < n && p->val_digits; i++) {
            if (s[i] < '0' || s[i] > '9') {
                p->val_digits = false;
            }
        }
        for (size_t i = 0; i < n && p->val_digits; i++) {
            unsigned d = (unsigned)(s[i] - '0');
            p->val_num = p->val_num > (UINT64_MAX - d) / 10 ? UINT64_MAX : p->val_num * 10 + d;
        }
        p->val.len += n;
        break;
    default:
        break;
    }
}

/* Part of the current line (no CR or LF in it). */
static inline void evp_line_bytes(struct evp *p, const char *s, size_t n)
{
    if (n == 0) {
        return;
    }
    if (p->line_len == 0 && s[0] == ':') {
        p->phase = EVP_COMMENT;
    }
    p->line_len += n;
    if (p->phase == EVP_COMMENT) {
        return;
    }
    if (p->phase == EVP_NAME) {
        const char *colon = memchr(s, ':', n);
        size_t k = colon ? (size_t)(colon - s) : n;
        for (size_t i = 0; i < k; i++) {
            if (p->name_len < sizeof p->name) {
                p->name[p->name_len] = s[i];
            }
            if (p->name_len < 255) {
                p->name_len++;
            }
        }
        if (!colon) {
            return;
        }
        evp_set_field(p);
        p->phase = EVP_VALUE_START;
        s += k + 1;
        n -= k + 1;
        if (n == 0) {
            return;
        }
    }
    if (p->phase == EVP_VALUE_START) {
        p->phase = EVP_VALUE;
        if (s[0] == ' ') {
            s++;
            n--;
        }
    }
    if (n > 0) {
        evp_value(p, s, n);
    }
}

static inline void evp_dispatch(struct evp *p, evp_event_fn fn, void *ctx)
{
    p->last_id = p->id_buf;
    if (p->data_len == 0) {
        p->type.len = 0;
        return;
    }
    p->data_len--; /* the data buffer always ends with the LF of its last line */
    if (p->keep_len > p->data_len) {
        p->keep_len = (size_t)p->data_len;
    }
    p->events++;
    if (fn) {
        fn(ctx, p);
    }
    p->data_len = 0;
    p->keep_len = 0;
    p->type.len = 0;
}

/* The line ended. */
static inline void evp_line_end(struct evp *p, evp_event_fn fn, void *ctx)
{
    if (p->line_len == 0) {
        evp_dispatch(p, fn, ctx);
        return;
    }
    if (p->phase == EVP_COMMENT) {
        p->comments++;
    } else {
        if (p->phase == EVP_NAME) {
            evp_set_field(p); /* no colon: the whole line is the name */
        }
        switch (p->field) {
        case EVP_F_DATA:
            evp_data_append(p, "\n", 1);
            break;
        case EVP_F_EVENT:
            p->type = p->val;
            break;
        case EVP_F_ID:
            if (!p->val_nul) {
                p->id_buf = p->val;
            }
            break;
        case EVP_F_RETRY:
            if (p->val.len > 0 && p->val_digits) {
                p->has_retry = true;
                p->retry_ms = p->val_num;
            }
            break;
        default:
            break;
        }
    }
    p->line_len = 0;
    p->phase = EVP_NAME;
    p->name_len = 0;
}

/* Where the first CR or LF is in s[0..n), or n. */
static inline size_t evp_eol(const char *s, size_t n)
{
    const char *lf = memchr(s, '\n', n);
    size_t k = lf ? (size_t)(lf - s) : n;
    const char *cr = memchr(s, '\r', k);
    return cr ? (size_t)(cr - s) : k;
}

static inline void evp_lines(struct evp *p, const char *s, size_t n, evp_event_fn fn, void *ctx)
{
    size_t i = 0;
    while (i < n) {
        if (p->after_cr) {
            p->after_cr = false;
            if (s[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t k = evp_eol(s + i, n - i);
        evp_line_bytes(p, s + i, k);
        i += k;
        if (i == n) {
            break;
        }
        p->after_cr = s[i] == '\r';
        i++;
        evp_line_end(p, fn, ctx);
    }
}

/* Parses the next n bytes of the stream; fn is called for each event. */
static inline void evp_feed(struct evp *p, const char *s, size_t n, evp_event_fn fn, void *ctx)
{
    static const char bom[3] = {'\xEF', '\xBB', '\xBF'};
    size_t i = 0;
    while (!p->bom_done && i < n) {
        if (s[i] == bom[p->bom]) {
            i++;
            if (++p->bom == 3) {
                p->bom_done = true;
            }
            continue;
        }
        p->bom_done = true;
        evp_lines(p, bom, p->bom, fn, ctx); /* held-back bytes were content */
    }
    if (i < n) {
        evp_lines(p, s + i, n - i, fn, ctx);
    }
}

#endif
