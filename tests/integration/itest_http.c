/*
 * itest: reading HTTP/1.1 responses strictly, one-shot requests, and
 * publishing a message. See itest.h.
 */
#include "itest_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* -------------------------------------------------------------- responses */

static bool is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static char *trim_blanks(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

/* Parses the head in buf[0..len) (ending with CRLFCRLF) into r. */
int itest_parse_head(const char *buf, size_t len, struct itest_response *r)
{
    memset(r, 0, sizeof *r);
    r->head = malloc(len + 1);
    if (!r->head) {
        itest_say("out of memory");
        return -1;
    }
    memcpy(r->head, buf, len);
    r->head[len] = 0;
    r->head_len = len;
    if (memchr(buf, 0, len)) {
        itest_say("response head contains a NUL byte");
        goto bad;
    }

    char *line = r->head;
    char *eol = strstr(line, "\r\n");
    if (!eol)
        goto bad;
    *eol = 0;
    /* HTTP/1.x SSS[ reason] */
    if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) || line[8] != ' ' ||
        !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
        !isdigit((unsigned char)line[11]) || (line[12] != ' ' && line[12] != 0)) {
        itest_say("malformed status line \"%s\"", line);
        goto bad;
    }
    r->minor_version = line[7] - '0';
    r->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    r->reason = line[12] ? line + 13 : line + 12;
    for (const char *p = r->reason; *p; p++) {
        if (*p == '\r' || *p == '\n') {
            itest_say("bare CR/LF in status line");
            goto bad;
        }
    }

    for (line = eol + 2; *line; line = eol + 2) {
        eol = strstr(line, "\r\n");
        if (!eol)
            goto bad;
        *eol = 0;
        if (*line == 0)
            break; /* the empty line ending the head */
        char *colon = strchr(line, ':');
        if (!colon || colon == line) {
            itest_say("malformed header line \"%s\"", line);
            goto bad;
        }
        *colon = 0;
        for (char *p = line; *p; p++) {
            if (!is_tchar((unsigned char)*p)) {
                itest_say("invalid header name \"%s\"", line);
                goto bad;
            }
        }
        char *value = trim_blanks(colon + 1);
        for (char *p = value; *p; p++) {
            if (*p == '\r' || *p == '\n') {
                itest_say("bare CR/LF in header \"%s\"", line);
                goto bad;
            }
        }
        if (r->num_headers >= ITEST_MAX_HEADERS) {
            itest_say("more than %d header fields", ITEST_MAX_HEADERS);
            goto bad;
        }
        r->headers[r->num_headers].name = line;
        r->headers[r->num_headers].value = value;
        r->num_headers++;
    }
    return 0;
bad:
    if (r->head)
        itest_say("in response head: \"%.300s\"", buf);
    free(r->head);
    memset(r, 0, sizeof *r);
    return -1;
}

const char *itest_header(const struct itest_response *r, const char *name)
{
    for (size_t i = 0; i < r->num_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

const char *itest_header_or_absent(const struct itest_response *r, const char *name)
{
    const char *v = itest_header(r, name);
    return v ? v : "(absent)";
}

void itest_show_response(const char *what, const struct itest_response *r, int max_body)
{
    fprintf(stderr, "---- %s: status %d\n", what, r->status);
    for (size_t i = 0; i < r->num_headers; i++)
        fprintf(stderr, "  %s: %s\n", r->headers[i].name, r->headers[i].value);
    fprintf(stderr, "  body (%zu bytes): %.*s\n", r->body_len, max_body, r->body ? r->body : "");
}

size_t itest_header_count(const struct itest_response *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->num_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            n++;
    return n;
}

bool itest_header_has_token(const struct itest_response *r, const char *name, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i < r->num_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) != 0)
            continue;
        const char *p = r->headers[i].value;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            const char *start = p;
            while (*p && *p != ',')
                p++;
            const char *end = p;
            while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            if ((size_t)(end - start) == tl && strncasecmp(start, token, tl) == 0)
                return true;
        }
    }
    return false;
}

bool itest_header_starts(const struct itest_response *r, const char *name, const char *prefix)
{
    const char *v = itest_header(r, name);
    return v && strncasecmp(v, prefix, strlen(prefix)) == 0;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

bool itest_is_json_error(const struct itest_response *r)
{
    if (!r->body)
        return false;
    const char *p = r->body, *end = r->body + r->body_len;
    p = skip_ws(p, end);
    if (p >= end || *p++ != '{')
        return false;
    p = skip_ws(p, end);
    if ((size_t)(end - p) < 7 || memcmp(p, "\"error\"", 7) != 0)
        return false;
    p = skip_ws(p + 7, end);
    if (p >= end || *p++ != ':')
        return false;
    p = skip_ws(p, end);
    if (p >= end || *p++ != '"')
        return false;
    const char *msg = p;
    while (p < end && *p != '"') {
        if ((unsigned char)*p < 0x20)
            return false;
        if (*p == '\\')
            p++;
        p++;
    }
    if (p >= end || p == msg)
        return false;
    p = skip_ws(p + 1, end);
    if (p >= end || *p++ != '}')
        return false;
    return skip_ws(p, end) == end;
}

void itest_response_free(struct itest_response *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Makes sure c->buf holds at least n bytes. */
static bool conn_need(struct itest_conn *c, size_t n, int64_t deadline)
{
    while (c->len < n) {
        ssize_t got = itest_conn_fill_deadline(c, deadline);
        if (got <= 0)
            return false;
    }
    return true;
}

/* Reads one CRLF-terminated line from c into a new string (CRLF removed). */
static char *conn_line(struct itest_conn *c, int64_t deadline, size_t max)
{
    for (;;) {
        char *eol = c->len ? memmem(c->buf, c->len, "\r\n", 2) : NULL;
        if (eol) {
            size_t n = (size_t)(eol - c->buf);
            char *line = strndup(c->buf, n);
            itest_conn_consume(c, n + 2);
            return line;
        }
        if (c->len > max)
            return NULL;
        if (itest_conn_fill_deadline(c, deadline) <= 0)
            return NULL;
    }
}

static bool body_append(struct itest_response *r, size_t *cap, const char *p, size_t n)
{
    if (r->body_len + n > ITEST_MAX_BODY) {
        itest_say("response body over %u bytes", ITEST_MAX_BODY);
        return false;
    }
    if (r->body_len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < r->body_len + n + 1)
            nc *= 2;
        char *nb = realloc(r->body, nc);
        if (!nb)
            return false;
        r->body = nb;
        *cap = nc;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = 0;
    return true;
}

static int read_chunked(struct itest_conn *c, struct itest_response *r, int64_t deadline)
{
    size_t cap = 0;
    for (;;) {
        char *line = conn_line(c, deadline, 4096);
        if (!line) {
            itest_say("chunked body: no chunk-size line");
            return -1;
        }
        char *end;
        errno = 0;
        unsigned long long size = strtoull(line, &end, 16);
        bool ok = end != line && errno == 0 && (*end == 0 || *end == ';' || *end == ' ');
        free(line);
        if (!ok || size > ITEST_MAX_BODY) {
            itest_say("chunked body: bad chunk-size line");
            return -1;
        }
        if (size == 0)
            break;
        if (!conn_need(c, (size_t)size + 2, deadline)) {
            itest_say("chunked body: truncated chunk");
            return -1;
        }
        if (memcmp(c->buf + size, "\r\n", 2) != 0) {
            itest_say("chunked body: chunk not followed by CRLF");
            return -1;
        }
        if (!body_append(r, &cap, c->buf, (size_t)size))
            return -1;
        itest_conn_consume(c, (size_t)size + 2);
    }
    for (;;) { /* trailer section */
        char *line = conn_line(c, deadline, 8192);
        if (!line) {
            itest_say("chunked body: unterminated trailer section");
            return -1;
        }
        bool last = *line == 0;
        free(line);
        if (last)
            break;
    }
    if (!r->body)
        r->body = calloc(1, 1);
    return r->body ? 0 : -1;
}

int itest_read_response(struct itest_conn *c, struct itest_response *r, unsigned flags,
                        int timeout_ms)
{
    memset(r, 0, sizeof *r);
    int64_t deadline = itest_now_ms() + timeout_ms;
    char *end;
    for (;;) {
        end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end)
            break;
        if (c->len > ITEST_MAX_HEAD) {
            itest_say("response head over %d bytes", ITEST_MAX_HEAD);
            return -1;
        }
        ssize_t n = itest_conn_fill_deadline(c, deadline);
        if (n <= 0) {
            if (n == 0)
                itest_say("connection %s before a complete response head (%zu bytes: \"%.200s\")",
                          c->reset ? "reset" : "closed", c->len, c->len ? c->buf : "");
            else
                itest_say("no complete response head within %d ms (%zu bytes: \"%.200s\")",
                          timeout_ms, c->len, c->len ? c->buf : "");
            return -1;
        }
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    if (itest_parse_head(c->buf, head_len, r) != 0)
        return -1;
    itest_conn_consume(c, head_len);
    if (flags & ITEST_RESP_HEAD_ONLY)
        return 0;

    const char *te = itest_header(r, "Transfer-Encoding");
    const char *cl = itest_header(r, "Content-Length");
    if ((flags & ITEST_RESP_NO_BODY) || (r->status >= 100 && r->status < 200) || r->status == 204 ||
        r->status == 304) {
        r->body = calloc(1, 1);
    } else if (te) {
        if (strcasecmp(te, "chunked") != 0) {
            itest_say("unsupported Transfer-Encoding \"%s\"", te);
            goto fail;
        }
        if (read_chunked(c, r, deadline) != 0)
            goto fail;
    } else if (cl) {
        char *e;
        errno = 0;
        unsigned long long n = strtoull(cl, &e, 10);
        if (!isdigit((unsigned char)*cl) || *e || errno || n > ITEST_MAX_BODY) {
            itest_say("bad Content-Length \"%s\"", cl);
            goto fail;
        }
        if (!conn_need(c, (size_t)n, deadline)) {
            itest_say("body: got %zu of %llu bytes (%s)", c->len, n,
                      c->eof ? "connection closed" : "timeout");
            goto fail;
        }
        r->body = malloc((size_t)n + 1);
        if (!r->body)
            goto fail;
        memcpy(r->body, c->buf, (size_t)n);
        r->body[n] = 0;
        r->body_len = (size_t)n;
        itest_conn_consume(c, (size_t)n);
    } else {
        /* Delimited by the end of the connection. */
        if (!itest_conn_wait_close(c, itest_remaining_ms(deadline))) {
            itest_say("body without length: connection not closed in time");
            goto fail;
        }
        r->body = malloc(c->len + 1);
        if (!r->body)
            goto fail;
        if (c->len)
            memcpy(r->body, c->buf, c->len);
        r->body[c->len] = 0;
        r->body_len = c->len;
        r->closed = true;
        itest_conn_consume(c, c->len);
    }
    if (!r->body)
        goto fail;
    return 0;
fail:
    itest_response_free(r);
    return -1;
}

int itest_request_n(int port, const void *raw, size_t len, unsigned flags, struct itest_response *r)
{
    memset(r, 0, sizeof *r);
    struct itest_conn c;
    if (itest_conn_open(&c, port) != 0)
        return -1;
    int rc = -1;
    if (itest_conn_sendn(&c, raw, len) && itest_read_response(&c, r, flags, itest_timeout()) == 0) {
        rc = 0;
        if (!r->closed && itest_header_has_token(r, "Connection", "close"))
            r->closed = itest_conn_wait_close(&c, itest_timeout());
    }
    itest_conn_close(&c);
    return rc;
}

/* The flags itest_request adds for raw: no body in the answer to a HEAD. */
static unsigned request_flags(const char *raw)
{
    return strncmp(raw, "HEAD ", 5) == 0 ? ITEST_RESP_NO_BODY : 0;
}

int itest_request(int port, const char *raw, struct itest_response *r)
{
    return itest_request_n(port, raw, strlen(raw), request_flags(raw), r);
}

int itest_request_status(int port, const char *raw, unsigned flags)
{
    struct itest_response r;
    if (itest_request_n(port, raw, strlen(raw), flags | request_flags(raw), &r) != 0)
        return -1;
    int status = r.status;
    itest_response_free(&r);
    return status;
}

bool itest_json_u64(const char *json, const char *key, uint64_t *out)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = json;
    while ((p = strstr(p, pat)) != NULL) {
        const char *q = p + strlen(pat);
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (*q != ':') {
            p++;
            continue;
        }
        q++;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (!isdigit((unsigned char)*q))
            return false;
        char *e;
        errno = 0;
        unsigned long long v = strtoull(q, &e, 10);
        if (errno)
            return false;
        *out = v;
        return true;
    }
    return false;
}

int itest_post_message_conn(struct itest_conn *c, const char *target, const void *body, size_t len,
                            uint64_t *id, long *clients)
{
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      target ? target : "/message", len);
    if (hl < 0 || (size_t)hl >= sizeof head)
        return -1;
    if (!itest_conn_sendn(c, head, (size_t)hl) || (len && !itest_conn_sendn(c, body, len)))
        return -1;
    struct itest_response r;
    if (itest_read_response(c, &r, 0, itest_timeout()) != 0)
        return -1;
    int status = r.status;
    if (status == 202) {
        uint64_t v_id, v_clients;
        if (!itest_json_u64(r.body, "id", &v_id) ||
            !itest_json_u64(r.body, "clients", &v_clients)) {
            itest_say("202 without id/clients: \"%.200s\"", r.body);
            status = -1;
        } else {
            if (id)
                *id = v_id;
            if (clients)
                *clients = (long)v_clients;
        }
    }
    itest_response_free(&r);
    return status;
}

int itest_post_message(int port, const char *target, const void *body, size_t len, uint64_t *id,
                       long *clients)
{
    struct itest_conn c;
    if (itest_conn_open(&c, port) != 0)
        return -1;
    int status = itest_post_message_conn(&c, target, body, len, id, clients);
    itest_conn_close(&c);
    return status;
}
