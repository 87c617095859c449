/*
 * response: what an HTTP answer looks like on the wire, apart from any
 * connection -- the head every response carries, the JSON error body, the
 * CORS rule for a request, and the 503 a refused connection is sent. conn.c
 * decides when and where these bytes go; this module only formats them.
 */
#ifndef SSE_RESPONSE_H
#define SSE_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct config;
struct http_request;

/* The headers of an OPTIONS preflight answer (204). */
#define RESPONSE_CORS_PREFLIGHT                                                                    \
    "Access-Control-Allow-Methods: GET, HEAD, POST, OPTIONS\r\n"                                   \
    "Access-Control-Allow-Headers: Content-Type, Authorization, Last-Event-ID, Cache-Control\r\n"  \
    "Access-Control-Max-Age: 86400\r\n"

/* How the response ends the message: its Connection header. */
enum response_framing {
    RESPONSE_KEEP_ALIVE,    /* HTTP/1.1 keep-alive: no header */
    RESPONSE_KEEP_ALIVE_10, /* HTTP/1.0 keep-alive: "Connection: keep-alive" */
    RESPONSE_CLOSE,         /* "Connection: close" */
    RESPONSE_STREAM,        /* an event stream, close-delimited: no header */
};

struct response_head {
    int status;
    const char *date;         /* IMF-fixdate for the Date header */
    const char *cors_origin;  /* Access-Control-Allow-Origin, or NULL for none */
    bool vary_origin;         /* the answer depends on the Origin header */
    const char *content_type; /* NULL: no Content-Type */
    bool has_length;
    size_t length;
    const char *extra_headers; /* NULL, or complete "Name: value\r\n" lines */
    enum response_framing framing;
};

/* Appends the status line, the headers and the blank line. 0, or -1 on ENOMEM. */
int response_head_append(struct buf *out, const struct response_head *h)
    __attribute__((warn_unused_result));

/* Formats {"error": msg} (msg from our own code, never escaped) into body;
 * the status's reason phrase when msg does not fit. Returns the length. */
size_t response_error_body(char *body, size_t cap, int status, const char *msg);

/* Access-Control-Allow-Origin for a request: "*" without --cors-origin, the
 * configured origin equal to its Origin header, or NULL for none. */
const char *response_cors_origin(const struct config *cfg, const struct http_request *req);

/*
 * The origin for the 503 of a connection refused at once (at --max-clients
 * or out of descriptors): by the request's own Origin when its head has
 * already arrived (`head`, NULL when not), else, when exactly one origin is
 * configured, that one: browsers show the answer only to a page of exactly
 * that origin, so it tells no other page anything, and that page can see
 * why it was refused.
 */
const char *response_busy_origin(const struct config *cfg, const struct http_request *head);

/* Formats the whole 503 "too many clients" answer (head and body) into out;
 * the length, or 0 when it does not fit. */
size_t response_busy(char *out, size_t cap, const struct config *cfg, const char *origin);

#endif
