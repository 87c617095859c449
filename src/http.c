/*
 * http: the HTTP/1.1 request-head parser, written from RFC 9110 (semantics)
 * and RFC 9112 (message syntax). The module's chunked body decoder is in
 * http_chunked.c and its query-string helpers in http_query.c.
 *
 * The head parser works in two passes:
 *
 *   1. A byte scan that finds the end of the request line and of the head,
 *      enforces the size limits and rejects bytes that can never be valid
 *      (NUL and other controls, bare CR, obs-fold). Every decision it takes
 *      depends only on the bytes up to (and one past) the position where it
 *      is taken, so the result for a prefix that is already decided is the
 *      result for any longer input: feeding a request in pieces gives the
 *      same answer as feeding it whole. That is also what makes it safe to
 *      resume the scan at `last_len` instead of at the start.
 *   2. Once a line (the request line) or the whole head is complete, a
 *      syntax pass that splits it into views and derives the framing.
 *
 * Nothing here allocates, does I/O, or keeps state between calls.
 */
#include "http.h"
#include "http_chars.h"
#include "number.h"

#include <limits.h>
#include <string.h>

/* Internal "carry on" result; the public results are all negative. */
#define STEP_OK 0
/* scan_request_line: the line was complete, and validated, in an earlier call. */
#define LINE_SEEN 1

/* RFC 9112 section 2.2: ignore "at least one" empty line before a request. */
#define MAX_LEADING_EMPTY_LINES 4

/*
 * Largest accepted Content-Length: 2^53 - 1, so the value survives a trip
 * through a double (JSON, JavaScript) and no arithmetic on it can overflow.
 */
#define MAX_CONTENT_LENGTH ((UINT64_C(1) << 53) - 1)

/* ------------------------------------------------------------ characters */
/*
 * A request-target byte: visible ASCII except '#' (a fragment is never sent).
 * Non-ASCII must be percent-encoded (RFC 3986), so 0x80-0xFF is refused.
 */
static bool is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7F && c != '#';
}

/* uri-host [ ":" port ] characters (RFC 3986 reg-name, IP-literal, port). */
static bool is_host_char(unsigned char c)
{
    switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case '%':
    case ':':
    case '[':
    case ']':
        return true;
    default:
        return is_alpha(c) || is_digit(c);
    }
}

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

bool http_str_eq_nocase(struct http_str s, const char *lit)
{
    for (size_t i = 0; i < s.len; i++) {
        if (lit[i] == '\0' ||
            ascii_lower((unsigned char)s.ptr[i]) != ascii_lower((unsigned char)lit[i]))
            return false;
    }
    return lit[s.len] == '\0';
}

static struct http_str make_str(const char *ptr, size_t len)
{
    struct http_str s = {ptr, len};
    return s;
}

static struct http_str trim_ows(const char *p, size_t n)
{
    while (n > 0 && is_ows((unsigned char)p[0])) {
        p++;
        n--;
    }
    while (n > 0 && is_ows((unsigned char)p[n - 1]))
        n--;
    return make_str(p, n);
}

/* --------------------------------------------------------- head: pass 1 */

/*
 * Skips the empty lines a robust server ignores before a request line (old
 * clients send a CRLF after a POST body). Too many of them is not a client
 * bug but a way to keep a connection busy, hence the cap.
 */
static int skip_empty_lines(const char *buf, size_t len, size_t *start, int *status)
{
    size_t i = 0;
    unsigned lines = 0;

    while (i < len && (buf[i] == '\r' || buf[i] == '\n')) {
        if (buf[i] == '\r') {
            if (i + 1 == len)
                return HTTP_PARSE_AGAIN;
            if (buf[i + 1] != '\n')
                return http_fail(status, 400);
            i++;
        }
        i++;
        if (++lines > MAX_LEADING_EMPTY_LINES)
            return http_fail(status, 400);
    }
    if (i == len)
        return HTTP_PARSE_AGAIN;
    *start = i;
    return STEP_OK;
}

/*
 * Finds the LF ending the request line that starts at buf[rl] (*eol).
 * Returns STEP_OK when the line is complete and has not been validated
 * before, LINE_SEEN when a previous call (last_len) already saw it complete,
 * and otherwise AGAIN / ERROR.
 *
 * Only printable ASCII and SP can occur in a valid request line, so any
 * other byte is refused as soon as it arrives, not when the line is done.
 * The limit counts the line without its terminator.
 */
static int scan_request_line(const char *buf, size_t len, size_t rl, size_t last_len, size_t *eol,
                             int *status)
{
    size_t i = rl;

    if (last_len > rl) {
        /*
         * The previous call scanned [rl, last_len) without an error. If the
         * line ended in there it was also validated; if not, only the last
         * byte (a CR waiting for its LF) has to be looked at again. The
         * memchr is bounded by the request-line limit.
         */
        const char *lf = memchr(buf + rl, '\n', last_len - rl);
        if (lf) {
            *eol = (size_t)(lf - buf);
            return LINE_SEEN;
        }
        i = last_len - 1;
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n') {
            *eol = i;
            return STEP_OK;
        }
        if (c == '\r') {
            if (i + 1 == len)
                return HTTP_PARSE_AGAIN;
            if (buf[i + 1] != '\n')
                return http_fail(status, 400);
            *eol = i + 1;
            return STEP_OK;
        }
        if (i - rl >= HTTP_MAX_REQUEST_LINE)
            return http_fail(status, 414);
        if (c < 0x20 || c >= 0x7F)
            return http_fail(status, 400);
    }
    return HTTP_PARSE_AGAIN;
}

/*
 * Finds the empty line ending the header section that starts at buf[hs]
 * (just past the request line's LF); *end is the index past its LF.
 *
 * The scan resumes at last_len - 1 (that byte may be a CR whose LF had not
 * arrived): everything before was scanned by the previous call without
 * finding the end or an error. An empty line is recognised by looking back
 * from its LF, which is why resuming needs no more context than that.
 */
static int scan_header_section(const char *buf, size_t len, size_t hs, size_t last_len, size_t *end,
                               int *status)
{
    size_t i = last_len > hs ? last_len - 1 : hs;

    for (; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        /* buf[hs - 1] is the request line's LF, so looking back is safe. */
        if (i - hs >= HTTP_MAX_HEADER_BYTES)
            return http_fail(status, 431);
        if (c == '\n') {
            if (buf[i - 1] == '\n' || (buf[i - 1] == '\r' && buf[i - 2] == '\n')) {
                *end = i + 1;
                return STEP_OK;
            }
        } else if (c == '\r') {
            if (i + 1 == len)
                return HTTP_PARSE_AGAIN;
            if (buf[i + 1] != '\n')
                return http_fail(status, 400);
        } else if (is_ows(c)) {
            /* A line starting with whitespace: obs-fold (RFC 9112 section
             * 5.2), or whitespace before the first field (section 2.2). */
            if (buf[i - 1] == '\n')
                return http_fail(status, 400);
        } else if (c < 0x20 || c == 0x7F) {
            return http_fail(status, 400);
        }
    }
    return HTTP_PARSE_AGAIN;
}

/* ------------------------------------------------ head: the request line */

static enum http_method lookup_method(struct http_str m)
{
    static const struct {
        const char *name;
        size_t len;
        enum http_method method;
    } methods[] = {
        {"GET", 3, HTTP_GET},         {"HEAD", 4, HTTP_HEAD},       {"POST", 4, HTTP_POST},
        {"PUT", 3, HTTP_PUT},         {"DELETE", 6, HTTP_DELETE},   {"PATCH", 5, HTTP_PATCH},
        {"OPTIONS", 7, HTTP_OPTIONS}, {"CONNECT", 7, HTTP_CONNECT}, {"TRACE", 5, HTTP_TRACE},
    };

    /* Method names are case-sensitive (RFC 9110 section 9.1). */
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (m.len == methods[i].len && memcmp(m.ptr, methods[i].name, m.len) == 0)
            return methods[i].method;
    }
    return HTTP_METHOD_UNKNOWN;
}

/*
 * HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. A well-formed
 * version we do not speak gets 505, anything else is a malformed line.
 */
static int parse_version(const char *v, size_t n, int *minor, int *status)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit((unsigned char)v[5]) || v[6] != '.' ||
        !is_digit((unsigned char)v[7]))
        return http_fail(status, 400);
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return http_fail(status, 505);
    *minor = v[7] - '0';
    return STEP_OK;
}

/* Splits p[0..n) at the first '?'; an absent query is an empty view at the end. */
static void split_path_query(struct http_request *req, const char *p, size_t n)
{
    const char *q = memchr(p, '?', n);

    if (q) {
        req->path = make_str(p, (size_t)(q - p));
        req->query = make_str(q + 1, n - (size_t)(q - p) - 1);
    } else {
        req->path = make_str(p, n);
        req->query = make_str(p + n, 0);
    }
}

static bool has_prefix_nocase(const char *p, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && http_str_eq_nocase(make_str(p, k), prefix);
}

/*
 * absolute-form (RFC 9112 section 3.2.2), which a server must accept: only
 * the http and https schemes, a non-empty authority without userinfo. The
 * path is that of the URI; an empty one means "/", and the view then points
 * at the second slash of "//" so that it still lies inside the buffer.
 */
static int parse_absolute_form(struct http_request *req, int *status)
{
    const char *t = req->target.ptr;
    size_t n = req->target.len;
    size_t a;

    if (has_prefix_nocase(t, n, "http://"))
        a = 7;
    else if (has_prefix_nocase(t, n, "https://"))
        a = 8;
    else
        return http_fail(status, 400);

    size_t auth = a;
    while (a < n && t[a] != '/' && t[a] != '?') {
        if (!is_host_char((unsigned char)t[a]))
            return http_fail(status, 400);
        a++;
    }
    if (a == auth)
        return http_fail(status, 400);
    split_path_query(req, t + a, n - a);
    if (req->path.len == 0)
        req->path = make_str(t + auth - 1, 1);
    return STEP_OK;
}

/*
 * authority-form, for CONNECT only: uri-host ":" port. We do not implement
 * CONNECT, but a well-formed one deserves 501 from the caller, not 400.
 * path and query are empty views.
 */
static int parse_authority_form(struct http_request *req, int *status)
{
    const char *t = req->target.ptr;
    size_t n = req->target.len;
    size_t colon = n;

    for (size_t i = 0; i < n; i++) {
        if (!is_host_char((unsigned char)t[i]))
            return http_fail(status, 400);
        if (t[i] == ':')
            colon = i;
    }
    if (colon == 0 || colon >= n - 1)
        return http_fail(status, 400);
    for (size_t i = colon + 1; i < n; i++) {
        if (!is_digit((unsigned char)t[i]))
            return http_fail(status, 400);
    }
    req->path = make_str(t, 0);
    req->query = make_str(t + n, 0);
    return STEP_OK;
}

/* Checks the target's form against the method and fills path and query. */
static int classify_target(struct http_request *req, int *status)
{
    const char *t = req->target.ptr;
    size_t n = req->target.len;

    if (req->method == HTTP_CONNECT)
        return parse_authority_form(req, status);
    if (t[0] == '/') {
        split_path_query(req, t, n);
        return STEP_OK;
    }
    if (n == 1 && t[0] == '*') {
        /* asterisk-form is only defined for a server-wide OPTIONS. */
        if (req->method != HTTP_OPTIONS)
            return http_fail(status, 400);
        req->path = req->target;
        req->query = make_str(t + 1, 0);
        return STEP_OK;
    }
    return parse_absolute_form(req, status);
}

/*
 * request-line = method SP request-target SP HTTP-version, exactly one SP
 * between the parts (RFC 9112 section 3). The version is checked before the
 * target's form so that the HTTP/2 preface ("PRI * HTTP/2.0") gets 505.
 */
static int parse_request_line(const char *p, size_t n, struct http_request *req, int *status)
{
    size_t i = 0;

    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ' ')
        return http_fail(status, 400);
    req->method_str = make_str(p, i);
    req->method = lookup_method(req->method_str);

    size_t t = ++i;
    while (i < n && p[i] != ' ') {
        if (!is_target_char((unsigned char)p[i]))
            return http_fail(status, 400);
        i++;
    }
    /* An empty target (two spaces) or no version at all (HTTP/0.9). */
    if (i == t || i == n)
        return http_fail(status, 400);
    req->target = make_str(p + t, i - t);
    i++;

    int r = parse_version(p + i, n - i, &req->minor_version, status);
    if (r != STEP_OK)
        return r;
    return classify_target(req, status);
}

/* --------------------------------------------------- head: header fields */

/* What the framing decision needs to know about the whole header section. */
struct framing {
    unsigned hosts;
    unsigned transfer_encodings;
    struct http_str transfer_encoding;
    bool conn_close;
    bool conn_keep_alive;
};

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 section 5). */
static int parse_field_line(const char *p, size_t n, struct http_header *h, int *status)
{
    size_t i = 0;

    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    /* No name, whitespace before the colon, or a byte no name may have. */
    if (i == 0 || i == n || p[i] != ':')
        return http_fail(status, 400);
    h->name = make_str(p, i);
    h->value = trim_ows(p + i + 1, n - i - 1);
    for (size_t k = 0; k < h->value.len; k++) {
        if (!is_field_char((unsigned char)h->value.ptr[k]))
            return http_fail(status, 400);
    }
    return STEP_OK;
}

/*
 * Content-Length = 1*DIGIT. A list ("1,1"), a sign, or anything that does
 * not fit is refused: disagreeing about a body length is how requests get
 * smuggled past a proxy.
 */
static bool parse_content_length(struct http_str v, uint64_t *out)
{
    uint64_t n;

    if (!number_parse_u64(v.ptr, v.len, &n) || n > MAX_CONTENT_LENGTH)
        return false;
    *out = n;
    return true;
}

/* Connection = #connection-option; only "close" and "keep-alive" matter here. */
static void scan_connection(struct http_str v, struct framing *f)
{
    size_t i = 0;

    while (i < v.len) {
        size_t start = i;
        while (i < v.len && v.ptr[i] != ',')
            i++;
        struct http_str opt = trim_ows(v.ptr + start, i - start);
        if (http_str_eq_nocase(opt, "close"))
            f->conn_close = true;
        else if (http_str_eq_nocase(opt, "keep-alive"))
            f->conn_keep_alive = true;
        i++;
    }
}

static bool host_value_valid(struct http_str v)
{
    for (size_t i = 0; i < v.len; i++) {
        if (!is_host_char((unsigned char)v.ptr[i]))
            return false;
    }
    return true;
}

/* Records what one field means for the framing; refuses what is ambiguous. */
static int note_field(struct http_request *req, const struct http_header *h, struct framing *f,
                      int *status)
{
    if (http_str_eq_nocase(h->name, "content-length")) {
        /* Even identical duplicates: be strict (RFC 9112 section 6.3). */
        if (req->has_content_length || !parse_content_length(h->value, &req->content_length))
            return http_fail(status, 400);
        req->has_content_length = true;
    } else if (http_str_eq_nocase(h->name, "transfer-encoding")) {
        if (++f->transfer_encodings > 1)
            return http_fail(status, 400);
        f->transfer_encoding = h->value;
    } else if (http_str_eq_nocase(h->name, "host")) {
        /* RFC 9112 section 3.2: more than one Host, or an invalid one: 400. */
        if (++f->hosts > 1 || !host_value_valid(h->value))
            return http_fail(status, 400);
    } else if (http_str_eq_nocase(h->name, "connection")) {
        scan_connection(h->value, f);
    } else if (http_str_eq_nocase(h->name, "expect")) {
        if (http_str_eq_nocase(h->value, "100-continue"))
            req->expect_continue = true;
    }
    return STEP_OK;
}

/* Decisions that need the whole header section (RFC 9112 sections 6 and 9.3). */
static int finish_framing(struct http_request *req, const struct framing *f, int *status)
{
    if (req->minor_version == 1 && f->hosts == 0)
        return http_fail(status, 400);
    if (f->transfer_encodings > 0) {
        /* HTTP/1.0 has no Transfer-Encoding, and with Content-Length too the
         * framing is ambiguous: both are smuggling vectors. */
        if (req->minor_version == 0 || req->has_content_length || f->transfer_encoding.len == 0)
            return http_fail(status, 400);
        /* Only a bare "chunked": any other coding or list is not implemented. */
        if (!http_str_eq_nocase(f->transfer_encoding, "chunked"))
            return http_fail(status, 501);
        req->chunked = true;
    }
    if (req->minor_version == 1)
        req->keep_alive = !f->conn_close;
    else
        req->keep_alive = f->conn_keep_alive && !f->conn_close;
    return STEP_OK;
}

/* Parses the field lines of the complete header section buf[hs..end). */
static int parse_fields(const char *buf, size_t hs, size_t end, struct http_request *req,
                        int *status)
{
    struct framing f = {0};
    size_t i = hs;

    req->num_headers = 0;
    req->keep_alive = false;
    req->chunked = false;
    req->has_content_length = false;
    req->content_length = 0;
    req->expect_continue = false;

    for (;;) {
        const char *lf = memchr(buf + i, '\n', end - i);
        if (!lf)
            return http_fail(status, 400); /* unreachable: pass 1 found the end */
        size_t eol = (size_t)(lf - buf);
        size_t n = eol - i;
        if (n > 0 && buf[eol - 1] == '\r')
            n--;
        if (n == 0)
            break;
        if (req->num_headers == HTTP_MAX_HEADERS)
            return http_fail(status, 431);
        struct http_header *h = &req->headers[req->num_headers];
        int r = parse_field_line(buf + i, n, h, status);
        if (r != STEP_OK)
            return r;
        req->num_headers++;
        r = note_field(req, h, &f, status);
        if (r != STEP_OK)
            return r;
        i = eol + 1;
    }
    return finish_framing(req, &f, status);
}

/* Length of the request line buf[rl..eol) without its CR, if any. */
static size_t request_line_len(const char *buf, size_t rl, size_t eol)
{
    return (eol > rl && buf[eol - 1] == '\r') ? eol - 1 - rl : eol - rl;
}

int http_parse_head(const char *buf, size_t len, size_t last_len, struct http_request *req,
                    int *status)
{
    size_t rl, eol, end;

    /* A last_len the buffer cannot have had: start over rather than trust it. */
    if (last_len > len)
        last_len = 0;

    int r = skip_empty_lines(buf, len, &rl, status);
    if (r != STEP_OK)
        return r;

    r = scan_request_line(buf, len, rl, last_len, &eol, status);
    if (r < 0)
        return r;
    bool line_done = r == LINE_SEEN;
    if (!line_done) {
        /* Complete for the first time: reject a bad line before its headers. */
        r = parse_request_line(buf + rl, request_line_len(buf, rl, eol), req, status);
        if (r != STEP_OK)
            return r;
    }

    r = scan_header_section(buf, len, eol + 1, last_len, &end, status);
    if (r != STEP_OK)
        return r;
    if (line_done) {
        /* Validated by an earlier call; parse it again to fill *req. */
        r = parse_request_line(buf + rl, request_line_len(buf, rl, eol), req, status);
        if (r != STEP_OK)
            return r;
    }
    r = parse_fields(buf, eol + 1, end, req, status);
    if (r != STEP_OK)
        return r;
    return (int)end;
}

const struct http_str *http_request_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        if (http_str_eq_nocase(req->headers[i].name, name))
            return &req->headers[i].value;
    }
    return NULL;
}

/* ------------------------------------------------------------- utilities */

const char *http_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}
