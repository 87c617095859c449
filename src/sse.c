/*
 * sse: Server-Sent Events frame encoder. See include/sse.h.
 *
 * Everything here is a pure function over caller-owned buffers: no
 * allocation, no globals, one linear pass over the payload.
 *
 * sse_frame_size and sse_frame_encode must agree byte for byte (the caller
 * allocates exactly sse_frame_size bytes), so both are built on the same
 * notion of a line break: CRLF is one break, a lone CR or a lone LF is one
 * break. That is exactly how the WHATWG event-stream parser splits lines, so
 * each payload line lands in its own `data:` field and nothing in the payload
 * can end a field or the frame early.
 */
#include "sse.h"

#include <string.h>

/* Fixed parts of a frame. */
#define ID_PREFIX    "id: "
#define EVENT_PREFIX "event: "
#define DATA_PREFIX  "data: "
#define COMMENT_PFX  ": "
#define RETRY_PREFIX "retry: "
#define LIT_LEN(s)   (sizeof(s) - 1)

/* UINT64_MAX has 20 decimal digits. */
#define U64_DIGITS_MAX 20

/*
 * Writes the decimal form of v into buf (no terminator) and returns the
 * number of digits. Hand-rolled rather than snprintf: it runs for every
 * published event, needs no format parsing or locale, and cannot fail.
 */
static size_t u64_to_dec(char buf[U64_DIGITS_MAX], uint64_t v)
{
    char tmp[U64_DIGITS_MAX];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static size_t u64_dec_len(uint64_t v)
{
    size_t n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/*
 * Returns the length of the line break starting at p[i] (2 for CRLF, 1 for a
 * lone CR or LF), or 0 if p[i] is not a line break. The caller guarantees
 * i < len.
 */
static size_t break_len(const char *p, size_t len, size_t i)
{
    if (p[i] == '\n')
        return 1;
    if (p[i] == '\r')
        return (i + 1 < len && p[i + 1] == '\n') ? 2 : 1;
    return 0;
}

/*
 * An event line is written only for a non-empty type. A NULL pointer with a
 * non-zero length breaks the contract; treating it as "no type" (rather than
 * dereferencing NULL) keeps size and encode consistent either way.
 */
static int has_event(const char *event, size_t event_len)
{
    return event != NULL && event_len > 0;
}

size_t sse_frame_size(uint64_t id, const char *event, size_t event_len, const char *data,
                      size_t data_len)
{
    size_t size = LIT_LEN(ID_PREFIX) + u64_dec_len(id) + 1;
    size_t lines = 1;

    if (has_event(event, event_len))
        size += LIT_LEN(EVENT_PREFIX) + event_len + 1;

    /*
     * Each payload line costs "data: " + its bytes + "\n"; the break bytes
     * themselves are replaced by that "\n". Start from all payload bytes and
     * subtract the break bytes as we find them.
     *
     * No overflow check: the result exceeds data_len by at most a factor of
     * about 7 (a payload made only of LFs), and a payload that large could
     * not be held in memory next to its frame anyway.
     */
    size_t body = data_len;
    for (size_t i = 0; i < data_len;) {
        size_t b = break_len(data, data_len, i);
        if (b == 0) {
            i++;
            continue;
        }
        body -= b;
        lines++;
        i += b;
    }
    size += lines * (LIT_LEN(DATA_PREFIX) + 1) + body;
    return size + 1; /* the blank line that dispatches the event */
}

size_t sse_frame_encode(char *out, uint64_t id, const char *event, size_t event_len,
                        const char *data, size_t data_len)
{
    char *p = out;

    memcpy(p, ID_PREFIX, LIT_LEN(ID_PREFIX));
    p += LIT_LEN(ID_PREFIX);
    p += u64_to_dec(p, id);
    *p++ = '\n';

    if (has_event(event, event_len)) {
        memcpy(p, EVENT_PREFIX, LIT_LEN(EVENT_PREFIX));
        p += LIT_LEN(EVENT_PREFIX);
        memcpy(p, event, event_len);
        p += event_len;
        *p++ = '\n';
    }

    /*
     * Emit one data field per line. `start` is the first byte of the current
     * line; a break (or the end of the payload) closes it. Because the loop
     * always closes a final line after the last break, an empty payload gives
     * a single "data: \n" and a payload ending in a break gives a trailing
     * empty "data: \n", which is what makes the browser keep that final LF.
     */
    size_t start = 0;
    size_t i = 0;
    for (;;) {
        size_t b = 0;

        while (i < data_len && (b = break_len(data, data_len, i)) == 0)
            i++;
        memcpy(p, DATA_PREFIX, LIT_LEN(DATA_PREFIX));
        p += LIT_LEN(DATA_PREFIX);
        /* memcpy with a NULL source is undefined even for 0 bytes. */
        if (i > start) {
            memcpy(p, data + start, i - start);
            p += i - start;
        }
        *p++ = '\n';
        if (i >= data_len)
            break;
        i += b;
        start = i;
    }

    *p++ = '\n';
    return (size_t)(p - out);
}

int sse_event_type_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > SSE_MAX_EVENT_TYPE)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        /* Controls include CR, LF and NUL, which would break the frame. */
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

size_t sse_comment(char *out, size_t cap, const char *text)
{
    size_t text_len = text != NULL ? strlen(text) : 0;
    size_t need = LIT_LEN(COMMENT_PFX) + text_len + 1;

    /* Check before writing so a comment that does not fit leaves out intact. */
    if (out == NULL || text_len > cap || need > cap)
        return 0;
    memcpy(out, COMMENT_PFX, LIT_LEN(COMMENT_PFX));
    for (size_t i = 0; i < text_len; i++) {
        char c = text[i];
        out[LIT_LEN(COMMENT_PFX) + i] = (c == '\r' || c == '\n') ? ' ' : c;
    }
    out[need - 1] = '\n';
    return need;
}

size_t sse_retry(char *out, size_t cap, unsigned ms)
{
    char digits[U64_DIGITS_MAX];
    size_t n = u64_to_dec(digits, ms);
    size_t need = LIT_LEN(RETRY_PREFIX) + n + 1;

    if (out == NULL || need > cap)
        return 0;
    memcpy(out, RETRY_PREFIX, LIT_LEN(RETRY_PREFIX));
    memcpy(out + LIT_LEN(RETRY_PREFIX), digits, n);
    out[need - 1] = '\n';
    return need;
}
