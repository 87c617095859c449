/*
 * libFuzzer target for the SSE frame encoder (src/sse.c), checked against the
 * reference event-stream parser (tests/unit/sse_parse.c).
 *
 * Input layout:
 *   byte 0        bits 0-6: candidate event type length, taken modulo
 *                 SSE_MAX_EVENT_TYPE + 2 (so 0 = no type and 65 = too long);
 *                 bit 7: the id is the next 8 bytes (little endian) instead
 *                 of byte 0 itself
 *   next bytes    the candidate event type, then the id if bit 7 is set
 *   the rest      the payload
 * A candidate type that sse_event_type_valid rejects must really be invalid;
 * the frame is then encoded without a type.
 *
 * Properties checked for every input:
 *   - sse_frame_encode writes exactly sse_frame_size bytes;
 *   - the frame has no CR, ends with "\n\n", has no other blank line, and is
 *     "id: <digits>", an optional "event: " line, then only "data: " lines;
 *   - parsed whole, in small pieces (byte by byte for frames up to 512
 *     bytes), or split at any input-chosen point, it
 *     gives exactly one event whose data is the payload with CRLF/CR turned
 *     into LF, whose type is the event type (or "message"), and whose
 *     lastEventId is the decimal id;
 *   - sse_comment (payload up to its first NUL as text) is one comment line
 *     and no event; sse_retry round-trips its value.
 *
 * Build (the parser is linked in):
 *   clang-14 -std=c17 -D_GNU_SOURCE -g -O1 -Iinclude -fsanitize=fuzzer,address,undefined \
 *       -o fuzz_sse tests/fuzz/fuzz_sse.c tests/unit/sse_parse.c src/sse.c
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "../unit/sse_parse.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

/* Independent restatement of the event type rule, to check the encoder's. */
static int type_ok(const char *s, size_t len)
{
    if (len == 0 || len > SSE_MAX_EVENT_TYPE)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return 0;
    return 1;
}

/* The payload as EventSource reports it: CRLF, CR and LF all become LF. */
static size_t normalise(const char *s, size_t len, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r') {
            out[n++] = '\n';
            if (i + 1 < len && s[i + 1] == '\n')
                i++;
        } else {
            out[n++] = s[i];
        }
    }
    return n;
}

static int starts_with(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len >= n && memcmp(s, lit, n) == 0;
}

/* Checks the line structure of a frame (no CR has already been checked). */
static void check_lines(const char *f, size_t len, const char *type, size_t type_len)
{
    size_t pos = 0, line_no = 0, data_lines = 0;

    CHECK(len >= 2 && f[len - 1] == '\n' && f[len - 2] == '\n');
    while (pos < len - 1) { /* the final "\n" is the blank line */
        const char *nl = memchr(f + pos, '\n', len - 1 - pos);
        CHECK(nl != NULL);
        const char *line = f + pos;
        size_t n = (size_t)(nl - line);
        CHECK(n > 0); /* a blank line before the end would dispatch early */
        if (line_no == 0) {
            CHECK(starts_with(line, n, "id: ") && n > 4 && n <= 4 + 20);
            for (size_t i = 4; i < n; i++)
                CHECK(line[i] >= '0' && line[i] <= '9');
        } else if (line_no == 1 && type_len > 0) {
            CHECK(n == 7 + type_len && starts_with(line, n, "event: "));
            CHECK(memcmp(line + 7, type, type_len) == 0);
        } else {
            CHECK(starts_with(line, n, "data: "));
            data_lines++;
        }
        line_no++;
        pos += n + 1;
    }
    CHECK(data_lines >= 1);
}

static void check_event(const struct ssep_event *ev, const char *want_type, size_t want_type_len,
                        const char *want, size_t want_len, const char *want_id)
{
    CHECK(ev->type_len == want_type_len && memcmp(ev->type, want_type, want_type_len) == 0);
    CHECK(ev->data_len == want_len && memcmp(ev->data, want, want_len) == 0);
    CHECK(ev->id_len == strlen(want_id) && memcmp(ev->id, want_id, ev->id_len) == 0);
}

/* Feeds the frame in pieces of `step` bytes (0: at `cut`, then the rest). */
static void parse_pieces(const char *f, size_t len, size_t step, size_t cut, struct ssep_list *out)
{
    struct ssep_parser p;

    ssep_list_init(out);
    ssep_init(&p, ssep_list_add, out);
    if (step == 0) {
        CHECK(ssep_feed(&p, f, cut) == 0);
        CHECK(ssep_feed(&p, f + cut, len - cut) == 0);
    } else {
        for (size_t off = 0; off < len; off += step)
            CHECK(ssep_feed(&p, f + off, len - off < step ? len - off : step) == 0);
    }
    CHECK(!out->failed);
    ssep_free(&p);
}

static void check_comment(const char *payload, size_t len)
{
    size_t text_len = strnlen(payload, len);
    char *text = malloc(text_len + 1);
    char *out = malloc(text_len + 3);
    struct ssep_parser p;

    CHECK(text != NULL && out != NULL);
    memcpy(text, payload, text_len);
    text[text_len] = '\0';

    CHECK(sse_comment(out, text_len + 2, text) == 0);
    CHECK(sse_comment(out, text_len + 3, text) == text_len + 3);
    CHECK(out[0] == ':' && out[1] == ' ' && out[text_len + 2] == '\n');
    for (size_t i = 0; i < text_len; i++) {
        char c = text[i];
        CHECK(out[2 + i] == ((c == '\r' || c == '\n') ? ' ' : c));
    }

    ssep_init(&p, NULL, NULL);
    CHECK(ssep_feed(&p, out, text_len + 3) == 0);
    CHECK(p.comments == 1 && p.events == 0 && !p.has_retry);
    ssep_free(&p);
    free(out);
    free(text);
}

static void check_retry(unsigned ms)
{
    char out[32];
    struct ssep_parser p;
    size_t n = sse_retry(out, sizeof(out), ms);

    CHECK(n > 0 && sse_retry(out, n - 1, ms) == 0 && sse_retry(out, n, ms) == n);
    ssep_init(&p, NULL, NULL);
    CHECK(ssep_feed(&p, out, n) == 0);
    CHECK(p.has_retry && p.retry_ms == ms && p.events == 0);
    ssep_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size == 0)
        return 0;

    const uint8_t b0 = in[0];
    size_t pos = 1;
    size_t type_len = (size_t)(b0 & 0x7f) % (SSE_MAX_EVENT_TYPE + 2);
    const char *type = NULL;
    uint64_t id = b0;

    if (type_len > size - pos)
        type_len = size - pos;
    if (type_len > 0)
        type = (const char *)in + pos;
    pos += type_len;
    CHECK(sse_event_type_valid(type, type_len) == type_ok(type, type_len));
    if (!sse_event_type_valid(type, type_len)) {
        type = NULL;
        type_len = 0;
    }

    if ((b0 & 0x80) && size - pos >= 8) {
        id = 0;
        for (int i = 7; i >= 0; i--)
            id = id << 8 | in[pos + (size_t)i];
        pos += 8;
    }

    const char *payload = (const char *)in + pos;
    size_t payload_len = size - pos;

    /* Encode into exactly sse_frame_size bytes so ASan catches overruns. */
    size_t fsize = sse_frame_size(id, type, type_len, payload, payload_len);
    char *frame = malloc(fsize);
    CHECK(frame != NULL);
    CHECK(sse_frame_encode(frame, id, type, type_len, payload, payload_len) == fsize);
    CHECK(memchr(frame, '\r', fsize) == NULL);
    CHECK(memmem(frame, fsize - 1, "\n\n", 2) == NULL);
    check_lines(frame, fsize, type, type_len);

    char *want = malloc(payload_len + 1);
    CHECK(want != NULL);
    size_t want_len = normalise(payload, payload_len, want);
    char want_id[24];
    snprintf(want_id, sizeof(want_id), "%" PRIu64, id);
    const char *want_type = type_len > 0 ? type : "message";
    size_t want_type_len = type_len > 0 ? type_len : strlen("message");

    struct ssep_list evs;
    ssep_list_init(&evs);
    CHECK(ssep_parse_all(frame, fsize, &evs) == 0);
    CHECK(evs.count == 1);
    check_event(&evs.ev[0], want_type, want_type_len, want, want_len, want_id);
    ssep_list_free(&evs);

    /* Chunking must not matter: a split chosen by the input, ... */
    parse_pieces(frame, fsize, 0, (size_t)(id % (fsize + 1)), &evs);
    CHECK(evs.count == 1);
    check_event(&evs.ev[0], want_type, want_type_len, want, want_len, want_id);
    ssep_list_free(&evs);
    /* Byte by byte is slow for big frames; small odd pieces do there. */
    parse_pieces(frame, fsize, fsize <= 512 ? 1 : 1 + (size_t)(id % 13), 0, &evs);
    CHECK(evs.count == 1);
    check_event(&evs.ev[0], want_type, want_type_len, want, want_len, want_id);
    ssep_list_free(&evs);

    /* Two frames back to back: two events, the second with the same data. */
    char *two = malloc(2 * fsize);
    CHECK(two != NULL);
    memcpy(two, frame, fsize);
    memcpy(two + fsize, frame, fsize);
    CHECK(ssep_parse_all(two, 2 * fsize, &evs) == 0);
    CHECK(evs.count == 2);
    check_event(&evs.ev[1], want_type, want_type_len, want, want_len, want_id);
    ssep_list_free(&evs);
    free(two);

    check_comment(payload, payload_len);
    check_retry((unsigned)id);

    free(want);
    free(frame);
    return 0;
}
