/*
 * sse_parse: a reference parser for text/event-stream, used by the tests
 * (unit, integration, fuzz) and the benchmarks to check what a browser's
 * EventSource would make of the bytes the server sends.
 *
 * It follows WHATWG HTML, "Server-sent events", section "Interpreting an
 * event stream":
 *   - one leading U+FEFF BYTE ORDER MARK (EF BB BF) is skipped, once, at the
 *     very start of the stream;
 *   - lines end with CRLF, a lone LF or a lone CR (a CR at the end of one
 *     chunk followed by an LF at the start of the next is still one CRLF);
 *   - a line starting with ':' is a comment;
 *   - "name:value" sets field `name`; one leading space of the value is
 *     removed; a line without ':' is a field with an empty value;
 *   - fields: "event" sets the event type buffer, "data" appends the value
 *     plus LF to the data buffer, "id" sets the last event ID buffer unless
 *     the value contains NUL, "retry" sets the reconnection time if the value
 *     is only ASCII digits; any other field is ignored;
 *   - a blank line dispatches: the last event ID string becomes the last
 *     event ID buffer; if the data buffer is empty, the data and event type
 *     buffers are reset and nothing is dispatched; otherwise one trailing LF
 *     is removed and an event {type (or "message"), data, lastEventId} is
 *     delivered, then data and event type are reset (the ID is not);
 *   - bytes after the last blank line are an incomplete event: never
 *     dispatched.
 *
 * Deliberate differences from a browser, both to make byte-exact checks
 * possible: the stream is handled as bytes, not decoded as UTF-8 (invalid
 * sequences are passed through instead of becoming U+FFFD), and "retry"
 * values are kept as a saturating uint64_t instead of being applied to a
 * reconnection timer.
 *
 * Self-contained (libc only). Buffers grow with malloc; every function that
 * may allocate reports failure instead of aborting.
 *
 * Typical use:
 *
 *     struct ssep_list evs;
 *     ssep_list_init(&evs);
 *     if (ssep_parse_all(buf, len, &evs) != 0) ...out of memory...
 *     for (size_t i = 0; i < evs.count; i++) use(evs.ev[i].data, ...);
 *     ssep_list_free(&evs);
 *
 * or, for a stream read in pieces:
 *
 *     struct ssep_parser p;
 *     ssep_init(&p, ssep_list_add, &evs);
 *     p.on_comment = my_comment_fn;    (optional, e.g. to see heartbeats)
 *     p.comment_ctx = my_state;
 *     while ((n = read(fd, chunk, sizeof chunk)) > 0)
 *         if (ssep_feed(&p, chunk, (size_t)n) != 0) ...out of memory...
 *     ... p.events, p.comments, p.retry_ms, ssep_last_event_id(&p, NULL) ...
 *     ssep_free(&p);
 *
 * Names are prefixed ssep_ so they cannot clash with the server's own sse_*
 * symbols, which the test binaries link in.
 */
#ifndef SSE_TESTS_SSE_PARSE_H
#define SSE_TESTS_SSE_PARSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * One dispatched event. Each string is also NUL-terminated, but data may
 * contain NUL bytes itself, so use the lengths. In a callback the pointers
 * are valid only until the callback returns; in a struct ssep_list they live
 * until ssep_list_free.
 */
struct ssep_event {
    const char *type; /* event type; "message" when no (or an empty) event field */
    size_t type_len;
    const char *data; /* the data buffer minus its final LF */
    size_t data_len;
    const char *id; /* lastEventId: "" until an id field is seen */
    size_t id_len;
};

/* Called once per dispatched event. */
typedef void (*ssep_event_fn)(void *ctx, const struct ssep_event *ev);
/* Called once per comment line; text is everything after the ':' (the
 * leading space, if any, is kept) and is NUL-terminated. */
typedef void (*ssep_comment_fn)(void *ctx, const char *text, size_t len);

/* A growable byte string; internal to the parser. */
struct ssep_buf {
    char *ptr;
    size_t len;
    size_t cap;
};

struct ssep_parser {
    /* Set by ssep_init. */
    ssep_event_fn on_event; /* may be NULL: events are only counted */
    void *ctx;              /* passed to on_event */
    /* NULL after ssep_init; the caller may set them before feeding. */
    ssep_comment_fn on_comment;
    void *comment_ctx; /* passed to on_comment */

    /* Results, readable at any time. */
    size_t events;     /* events dispatched so far */
    size_t comments;   /* comment lines seen so far */
    int has_retry;     /* 1 once a valid retry field was seen */
    uint64_t retry_ms; /* last valid retry value (saturated at UINT64_MAX) */
    int failed;        /* 1 after an allocation failure; feed then does nothing */

    /* Private state. */
    int bom_matched; /* BOM bytes matched so far at stream start (0..2) */
    int bom_done;    /* the start of stream has been decided */
    int after_cr;    /* the last byte was CR: a following LF is part of it */
    struct ssep_buf line;
    struct ssep_buf data;
    struct ssep_buf type;
    struct ssep_buf id_buf;  /* last event ID buffer */
    struct ssep_buf last_id; /* last event ID string (committed at dispatch) */
};

/* Prepares a parser for a new stream. Cannot fail (allocation is lazy). */
void ssep_init(struct ssep_parser *p, ssep_event_fn on_event, void *ctx);

/*
 * Parses the next len bytes of the stream, calling the callbacks for every
 * comment and every dispatched event they complete. Chunk boundaries never
 * matter: feeding a stream byte by byte gives exactly the same results as
 * feeding it whole. Returns 0, or -1 if memory ran out (p->failed is then set
 * and the parser stays unusable).
 */
int ssep_feed(struct ssep_parser *p, const void *buf, size_t len);

/* The last event ID string (what EventSource sends back as Last-Event-ID
 * on reconnection). Valid until the next ssep_feed or ssep_free. */
const char *ssep_last_event_id(const struct ssep_parser *p, size_t *len);

/* Releases the parser's buffers. An incomplete trailing event is discarded,
 * as at the end of a real stream. */
void ssep_free(struct ssep_parser *p);

/* Owned copies of dispatched events, in order. */
struct ssep_list {
    struct ssep_event *ev;
    size_t count;
    size_t cap;
    int failed; /* 1 if an event could not be stored (out of memory) */
};

void ssep_list_init(struct ssep_list *l);

/* An ssep_event_fn that appends a copy of ev to the struct ssep_list *ctx. */
void ssep_list_add(void *ctx, const struct ssep_event *ev);

/* Frees every stored event and empties the list (it can be reused). */
void ssep_list_free(struct ssep_list *l);

/*
 * Parses a whole stream (buf[0..len)) and appends its events to out, which
 * must have been initialised. Returns 0, or -1 on allocation failure.
 */
int ssep_parse_all(const void *buf, size_t len, struct ssep_list *out);

#endif
