/*
 * resp: the RESP2 protocol spoken by Redis -- an incremental reply scanner,
 * a reader over a scanned reply, and an encoder for commands.
 *
 * Pure functions over caller-owned bytes, as in http.c: no allocation, no
 * I/O, no globals. Nothing is allocated per reply. The scanner finds where
 * one complete, well-formed reply ends in the caller's input; the reader then
 * walks that reply in pre-order, handing out views into the same bytes. The
 * views stay valid while the caller leaves those bytes in place (until it
 * consumes the reply from its input buffer).
 *
 * Feeding: the caller keeps its input in one buffer starting at the reply's
 * first byte and calls resp_scan with all of it each time more bytes arrive.
 * The scanner remembers how far it got (whole elements only, and the open
 * arrays above them), so bytes that arrive one at a time cost O(new bytes)
 * per call, except for a line still missing its CRLF, which is re-scanned
 * (lines are bounded by max_line). After a complete reply, resp_scan_reset
 * starts the next one.
 */
#ifndef SSE_RESP_H
#define SSE_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Return values of resp_scan besides a length > 0. */
#define RESP_AGAIN 0    /* incomplete: call again with more bytes */
#define RESP_ERROR (-1) /* malformed or over a limit: the stream is unusable */

/* Hard ceiling on nesting; limits.max_depth may only be lower. */
#define RESP_MAX_DEPTH 16

enum resp_type {
    RESP_SIMPLE = '+',  /* +OK\r\n */
    RESP_ERR = '-',     /* -ERR message\r\n */
    RESP_INTEGER = ':', /* :42\r\n */
    RESP_BULK = '$',    /* $3\r\nfoo\r\n, or $-1\r\n (null) */
    RESP_ARRAY = '*',   /* *2\r\n<elem><elem>, or *-1\r\n (null) */
};

struct resp_limits {
    size_t max_bulk;    /* bytes in one bulk string */
    size_t max_array;   /* elements in one array */
    size_t max_line;    /* bytes of a simple string, error or integer line */
    unsigned max_depth; /* arrays inside arrays; 1 = no nesting (<= RESP_MAX_DEPTH) */
};

/* Generous defaults for replies from a trusted Redis (512 MB is Redis's own
 * bulk ceiling; we stay far below it). */
extern const struct resp_limits resp_default_limits;

struct resp_scanner {
    struct resp_limits limits;
    size_t off;   /* bytes of the reply already checked (whole elements) */
    unsigned top; /* open arrays */
    /* Elements still expected by each open array (1-based; [0] unused). */
    int64_t left[RESP_MAX_DEPTH + 1];
};

/* Prepares a scanner (limits copied; NULL means resp_default_limits). */
void resp_scan_init(struct resp_scanner *s, const struct resp_limits *limits);
/* Forgets the current reply: the next call starts a new one. */
void resp_scan_reset(struct resp_scanner *s);

/*
 * Scans buf[0..len), which begins with the reply being received (the same
 * bytes as in the previous calls, plus more). Returns the length of the
 * complete reply (> 0), RESP_AGAIN, or RESP_ERROR.
 */
long resp_scan(struct resp_scanner *s, const char *buf, size_t len);

/* One element of a scanned reply. */
struct resp_value {
    enum resp_type type;
    bool null;       /* $-1 or *-1 */
    const char *str; /* simple, error, bulk: the bytes (not NUL-terminated) */
    size_t len;
    int64_t integer; /* RESP_INTEGER */
    size_t count;    /* RESP_ARRAY: the elements that follow it in pre-order */
};

/* Walks a reply that resp_scan accepted: pre-order, an array's elements
 * right after it. */
struct resp_reader {
    const char *p;
    size_t left;
};

static inline void resp_reader_init(struct resp_reader *r, const char *reply, size_t len)
{
    r->p = reply;
    r->left = len;
}

/* Reads the next element: 0, or -1 at the end (or on bytes not scanned). */
int resp_read(struct resp_reader *r, struct resp_value *v);
/* Skips the rest of a value whose head v was just read (its elements, for
 * an array). 0, or -1 as resp_read. */
int resp_skip(struct resp_reader *r, const struct resp_value *v);

/* True when v is a simple or bulk string equal to the NUL-terminated s. */
bool resp_str_eq(const struct resp_value *v, const char *s);

/*
 * Encodes a command as an array of bulk strings (argv[i] of lens[i] bytes,
 * binary-safe) into out[0..cap). Returns the encoded size; when it is more
 * than cap nothing is written (call with cap 0 to size a buffer).
 */
size_t resp_encode(char *out, size_t cap, size_t argc, const char *const argv[],
                   const size_t lens[]);

#endif
