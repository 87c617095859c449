#include "response.h"

#include "buf.h"
#include "config.h"
#include "http.h"

#include <stdio.h>
#include <string.h>

#define BUSY_BODY "{\"error\":\"too many clients\"}\n"

static const char *framing_header(enum response_framing f)
{
    switch (f) {
    case RESPONSE_CLOSE:
        return "Connection: close\r\n";
    case RESPONSE_KEEP_ALIVE_10:
        return "Connection: keep-alive\r\n";
    case RESPONSE_KEEP_ALIVE:
    case RESPONSE_STREAM:
        break;
    }
    return NULL;
}

int response_head_append(struct buf *out, const struct response_head *h)
{
    int rc = buf_printf(out,
                        "HTTP/1.1 %d %s\r\n"
                        "Date: %s\r\n"
                        "Server: sse-server\r\n",
                        h->status, http_status_reason(h->status), h->date);
    if (rc == 0 && h->cors_origin) {
        rc = buf_printf(out, "Access-Control-Allow-Origin: %s\r\n", h->cors_origin);
    }
    if (rc == 0 && h->vary_origin) {
        /* The answer depends on the Origin header: caches must know. */
        rc = buf_append_str(out, "Vary: Origin\r\n");
    }
    if (rc == 0 && h->content_type) {
        rc = buf_printf(out, "Content-Type: %s\r\n", h->content_type);
    }
    if (rc == 0 && h->has_length) {
        rc = buf_printf(out, "Content-Length: %zu\r\n", h->length);
    }
    if (rc == 0 && h->extra_headers) {
        rc = buf_append_str(out, h->extra_headers);
    }
    const char *connection = framing_header(h->framing);
    if (rc == 0 && connection) {
        rc = buf_append_str(out, connection);
    }
    return rc == 0 ? buf_append(out, "\r\n", 2) : rc;
}

size_t response_error_body(char *body, size_t cap, int status, const char *msg)
{
    int n = snprintf(body, cap, "{\"error\":\"%s\"}\n", msg);
    if (n < 0 || (size_t)n >= cap) {
        n = snprintf(body, cap, "{\"error\":\"%s\"}\n", http_status_reason(status));
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

const char *response_cors_origin(const struct config *cfg, const struct http_request *req)
{
    const struct http_str *origin = http_request_header(req, "origin");
    return config_cors_origin(cfg, origin ? origin->ptr : NULL, origin ? origin->len : 0);
}

const char *response_busy_origin(const struct config *cfg, const struct http_request *head)
{
    if (head) {
        return response_cors_origin(cfg, head);
    }
    if (cfg->cors_origins_len && strlen(cfg->cors_origins) + 1 == cfg->cors_origins_len) {
        return cfg->cors_origins;
    }
    return config_cors_origin(cfg, NULL, 0);
}

size_t response_busy(char *out, size_t cap, const struct config *cfg, const char *origin)
{
    int n = snprintf(out, cap,
                     "HTTP/1.1 503 Service Unavailable\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "Retry-After: 1\r\n"
                     "%s%s%s%s"
                     "Connection: close\r\n\r\n%s",
                     sizeof BUSY_BODY - 1, origin ? "Access-Control-Allow-Origin: " : "",
                     origin ? origin : "", origin ? "\r\n" : "",
                     cfg->cors_origins_len ? "Vary: Origin\r\n" : "", BUSY_BODY);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
