/*
 * http: the HTTP/1.1 request-head parser and chunked body decoder.
 *
 * Both are pure functions over caller-owned bytes: no allocation, no I/O, no
 * globals. Parsed strings are views into the caller's buffer and stay valid
 * only while that buffer is unchanged.
 *
 * The head parser is re-run on the whole buffer each time more bytes arrive,
 * but `last_len` lets it skip re-scanning for the end of the head, so a client
 * that dribbles one byte at a time costs O(new bytes) per read until the head
 * is complete.
 */
#ifndef SSE_HTTP_H
#define SSE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Return values of http_parse_head and http_chunked_decode (besides >= 0). */
#define HTTP_PARSE_ERROR (-1) /* malformed: *status says which answer to give */
#define HTTP_PARSE_AGAIN (-2) /* incomplete: call again with more bytes */

/* RFC 9112 recommends at least 8000 octets for the request line. */
#define HTTP_MAX_REQUEST_LINE 8192
/* Limit on the header section (everything after the request line). */
#define HTTP_MAX_HEADER_BYTES 16384
#define HTTP_MAX_HEADERS      100

enum http_method {
    HTTP_METHOD_UNKNOWN = 0, /* a valid token we do not implement: 501 */
    HTTP_GET,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_PUT,
    HTTP_DELETE,
    HTTP_PATCH,
    HTTP_OPTIONS,
    HTTP_CONNECT,
    HTTP_TRACE,
};

struct http_str {
    const char *ptr;
    size_t len;
};

struct http_header {
    struct http_str name;  /* as sent (compare case-insensitively) */
    struct http_str value; /* leading and trailing OWS removed */
};

struct http_request {
    enum http_method method;
    struct http_str method_str;
    struct http_str target; /* request-target exactly as sent */
    struct http_str path;   /* target up to '?', not decoded (see http_parse_head) */
    struct http_str query;  /* after '?', not decoded; len 0 when absent */
    int minor_version;      /* HTTP/1.<minor_version>: 0 or 1 */
    size_t num_headers;
    struct http_header headers[HTTP_MAX_HEADERS];

    /* Derived from the headers by the parser (RFC 9112 section 6). */
    bool keep_alive;         /* 1.1 unless "Connection: close"; 1.0 only with keep-alive */
    bool chunked;            /* Transfer-Encoding: chunked */
    bool has_content_length; /* a valid Content-Length was present */
    uint64_t content_length; /* 0 when absent */
    bool expect_continue;    /* Expect: 100-continue */
};

/*
 * Parses one request head (request line + header fields + empty line) from
 * buf[0..len). `last_len` is the `len` of the previous call on the same
 * request, which must have returned HTTP_PARSE_AGAIN, with buf[0..last_len)
 * unchanged since. It is 0 on the first call for a request -- also when that
 * request's bytes were already buffered (pipelining), since no call has
 * scanned them yet. A last_len > len is ignored (treated as 0).
 *
 * Returns the number of bytes the head occupies (> 0) and fills *req;
 * HTTP_PARSE_AGAIN when the head is not complete yet and no limit is exceeded;
 * HTTP_PARSE_ERROR when the request must be refused, with *status set to the
 * answer to give: 400 (malformed, smuggling attempt), 414 (request line over
 * HTTP_MAX_REQUEST_LINE), 431 (header section over HTTP_MAX_HEADER_BYTES or
 * HTTP_MAX_HEADERS fields), 501 (Transfer-Encoding other than chunked),
 * 505 (HTTP version other than 1.0/1.1).
 *
 * Strict by design (RFC 9112): bare LF is accepted as a line end only where
 * the RFC allows a recipient to; bare CR, NUL, obs-fold, whitespace before
 * the colon, invalid token characters, multiple or invalid Content-Length,
 * and Content-Length together with Transfer-Encoding are all rejected.
 * *req is only meaningful when the return value is > 0.
 *
 * Details:
 *  - Up to 4 empty lines before the request line are skipped (RFC 9112
 *    section 2.2); they count towards the return value but not the limits.
 *  - HTTP_MAX_REQUEST_LINE counts the request line without its CRLF/LF;
 *    HTTP_MAX_HEADER_BYTES counts everything after the request line up to
 *    and including the final empty line.
 *  - Some errors are reported before the head is complete: a bad request
 *    line as soon as it ends, a control byte (NUL, bare CR, ...) or obs-fold
 *    as soon as it arrives, a limit as soon as it is exceeded. Feeding the
 *    bytes in any number of calls gives the same answer as feeding them at
 *    once.
 *  - request-target forms: origin-form ("/p?q"); absolute-form with the
 *    http or https scheme ("http://host/p?q": path and query are those of
 *    the URI; an empty path gives a path view "/" that points at the second
 *    slash of "//"); asterisk-form ("*", OPTIONS only, path "*"); and
 *    authority-form ("host:port", CONNECT only and required by it; path and
 *    query are empty). Anything else, a '#', or a byte outside 0x21-0x7E
 *    (non-ASCII must be percent-encoded) is 400. Escapes are not checked.
 *  - HTTP/1.x with x other than 0 and 1, and any other major version, is
 *    505; a version not of the form "HTTP/" DIGIT "." DIGIT is 400.
 *  - Content-Length must be 1*DIGIT and at most 2^53 - 1.
 *  - Connection is only looked at for the "close" and "keep-alive" options;
 *    Expect values other than 100-continue are ignored (not 417).
 *  - Host must be uri-host [":" port] characters; an empty Host is valid.
 */
int http_parse_head(const char *buf, size_t len, size_t last_len, struct http_request *req,
                    int *status);

/* Finds a header by case-insensitive name; returns its value or NULL. */
const struct http_str *http_request_header(const struct http_request *req, const char *name);

/* Case-insensitive comparison of a view with a NUL-terminated literal. */
bool http_str_eq_nocase(struct http_str s, const char *lit);

/* Decoder state for a chunked body. Zero-initialise before the first call. */
struct http_chunked {
    int state;
    uint64_t chunk_left; /* chunk data still expected; after the last chunk: trailer bytes */
    size_t line_len;     /* bytes of the current size/trailer line seen so far */
    uint64_t total;      /* decoded body bytes so far */
};

/*
 * Decodes chunked transfer coding in place (RFC 9112 section 7.1). On entry buf[0..*len) holds raw
 * bytes not yet given to the decoder; on return the decoded body bytes among
 * them are moved to buf[0..*len) (in order), so the caller appends them to
 * what it has already decoded.
 *
 * Returns HTTP_PARSE_AGAIN when the body is not finished (all input consumed),
 * HTTP_PARSE_ERROR on malformed coding or when the decoded total would exceed
 * `max_body` (*status = 400 or 413), or, when the last chunk and the trailer
 * section are complete, the number of raw bytes that followed the body in the
 * input (>= 0; they are left, unmoved, at the end of the original input,
 * i.e. at buf[original_len - ret ...] -- the caller must remember the
 * original length).
 *
 * Chunk-size lines (size + extensions) and trailer lines are limited to
 * 4096 bytes; trailers are parsed for syntax and discarded.
 *
 * Details: CRLF is required throughout (no bare LF); the chunk size is 1 to
 * 16 hex digits; extensions follow the RFC grammar (token or quoted-string
 * values, BWS around ';' and '='); the trailer section as a whole is limited
 * to HTTP_MAX_HEADER_BYTES (400). A chunk whose size would take the total
 * past max_body is refused (413) as soon as its size line ends, before any
 * of its data arrives. After an error, *len holds the bytes decoded before
 * it and every later call fails with the same status; after the end, a
 * later call reports all of its input as following the body. *len must not
 * exceed INT_MAX (the return value counts bytes), or the call fails (400).
 */
int http_chunked_decode(struct http_chunked *dec, char *buf, size_t *len, uint64_t max_body,
                        int *status);

/* Reason phrase of a status code ("OK", "Not Found", ...); "Unknown" if none. */
const char *http_status_reason(int status);

/*
 * Decodes %XX escapes of src[0..len) into out (capacity out_cap >= len).
 * Returns the decoded length, or -1 on a malformed escape. '+' is left as is.
 * out may be src (decoding in place). The output is not NUL-terminated and
 * may contain NUL or '/' from %00 / %2F: check before using it as a path.
 */
long http_percent_decode(const char *src, size_t len, char *out, size_t out_cap);

/*
 * Looks up `name` in an application/x-www-form-urlencoded query string
 * (name=value&...). On a match, decodes the value (%XX and '+' as space) into
 * out[0..out_cap) and returns its length; returns -1 when absent and -2 when
 * present but malformed or longer than out_cap. The first occurrence wins.
 * Names are compared after decoding; a name without '=' has an empty value.
 * The value is not NUL-terminated.
 */
long http_query_param(struct http_str query, const char *name, char *out, size_t out_cap);

/*
 * Copies a request-target into out[0..cap) for a log line, with the value of
 * every `token` query parameter (name compared after decoding, as
 * http_query_param does) replaced by "REDACTED": a token given in the URL
 * (EventSource cannot send headers) must never reach a log. Cut at cap - 1
 * bytes and NUL-terminated; returns the length written.
 */
size_t http_redact_target(struct http_str target, char *out, size_t cap);

#endif
