/*
 * http: HTTP/1.1 request-head parser and chunked body decoder, written from
 * RFC 9110 (semantics) and RFC 9112 (message syntax).
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

/* Chunked coding limits: a size line (size + extensions) and a trailer line. */
#define MAX_CHUNK_LINE 4096
/* 16 hex digits fill a uint64_t, so a longer size is an overflow (or padding). */
#define MAX_CHUNK_SIZE_DIGITS 16
/* The whole trailer section: same budget as the header section. */
#define MAX_TRAILER_BYTES HTTP_MAX_HEADER_BYTES

/* ------------------------------------------------------------ characters */

static int fail(int *status, int code)
{
    if (status)
        *status = code;
    return HTTP_PARSE_ERROR;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 9110 section 5.6.2: tchar. */
static bool is_tchar(unsigned char c)
{
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return is_alpha(c) || is_digit(c);
    }
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* field-vchar / SP / HTAB: VCHAR, obs-text (0x80-0xFF), SP and HTAB. */
static bool is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

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
                return fail(status, 400);
            i++;
        }
        i++;
        if (++lines > MAX_LEADING_EMPTY_LINES)
            return fail(status, 400);
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
                return fail(status, 400);
            *eol = i + 1;
            return STEP_OK;
        }
        if (i - rl >= HTTP_MAX_REQUEST_LINE)
            return fail(status, 414);
        if (c < 0x20 || c >= 0x7F)
            return fail(status, 400);
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
            return fail(status, 431);
        if (c == '\n') {
            if (buf[i - 1] == '\n' || (buf[i - 1] == '\r' && buf[i - 2] == '\n')) {
                *end = i + 1;
                return STEP_OK;
            }
        } else if (c == '\r') {
            if (i + 1 == len)
                return HTTP_PARSE_AGAIN;
            if (buf[i + 1] != '\n')
                return fail(status, 400);
        } else if (is_ows(c)) {
            /* A line starting with whitespace: obs-fold (RFC 9112 section
             * 5.2), or whitespace before the first field (section 2.2). */
            if (buf[i - 1] == '\n')
                return fail(status, 400);
        } else if (c < 0x20 || c == 0x7F) {
            return fail(status, 400);
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
        return fail(status, 400);
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return fail(status, 505);
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
        return fail(status, 400);

    size_t auth = a;
    while (a < n && t[a] != '/' && t[a] != '?') {
        if (!is_host_char((unsigned char)t[a]))
            return fail(status, 400);
        a++;
    }
    if (a == auth)
        return fail(status, 400);
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
            return fail(status, 400);
        if (t[i] == ':')
            colon = i;
    }
    if (colon == 0 || colon >= n - 1)
        return fail(status, 400);
    for (size_t i = colon + 1; i < n; i++) {
        if (!is_digit((unsigned char)t[i]))
            return fail(status, 400);
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
            return fail(status, 400);
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
        return fail(status, 400);
    req->method_str = make_str(p, i);
    req->method = lookup_method(req->method_str);

    size_t t = ++i;
    while (i < n && p[i] != ' ') {
        if (!is_target_char((unsigned char)p[i]))
            return fail(status, 400);
        i++;
    }
    /* An empty target (two spaces) or no version at all (HTTP/0.9). */
    if (i == t || i == n)
        return fail(status, 400);
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
        return fail(status, 400);
    h->name = make_str(p, i);
    h->value = trim_ows(p + i + 1, n - i - 1);
    for (size_t k = 0; k < h->value.len; k++) {
        if (!is_field_char((unsigned char)h->value.ptr[k]))
            return fail(status, 400);
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
            return fail(status, 400);
        req->has_content_length = true;
    } else if (http_str_eq_nocase(h->name, "transfer-encoding")) {
        if (++f->transfer_encodings > 1)
            return fail(status, 400);
        f->transfer_encoding = h->value;
    } else if (http_str_eq_nocase(h->name, "host")) {
        /* RFC 9112 section 3.2: more than one Host, or an invalid one: 400. */
        if (++f->hosts > 1 || !host_value_valid(h->value))
            return fail(status, 400);
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
        return fail(status, 400);
    if (f->transfer_encodings > 0) {
        /* HTTP/1.0 has no Transfer-Encoding, and with Content-Length too the
         * framing is ambiguous: both are smuggling vectors. */
        if (req->minor_version == 0 || req->has_content_length || f->transfer_encoding.len == 0)
            return fail(status, 400);
        /* Only a bare "chunked": any other coding or list is not implemented. */
        if (!http_str_eq_nocase(f->transfer_encoding, "chunked"))
            return fail(status, 501);
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
            return fail(status, 400); /* unreachable: pass 1 found the end */
        size_t eol = (size_t)(lf - buf);
        size_t n = eol - i;
        if (n > 0 && buf[eol - 1] == '\r')
            n--;
        if (n == 0)
            break;
        if (req->num_headers == HTTP_MAX_HEADERS)
            return fail(status, 431);
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

/* ------------------------------------------------------ chunked decoding */

/*
 * chunked-body = *chunk last-chunk trailer-section CRLF     (RFC 9112 7.1)
 * chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 * chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-value ] )
 * ext-value    = token / quoted-string
 *
 * One state per position in that grammar, so the decoder can stop after any
 * byte. CRLF is required everywhere: tolerating a bare LF inside chunked
 * framing is exactly the kind of disagreement request smuggling exploits.
 */
enum chunk_state {
    CS_SIZE_FIRST = 0, /* first hex digit of a size line (zeroed struct) */
    CS_SIZE,           /* more hex digits */
    CS_EXT_BWS,        /* whitespace, then ';' must follow */
    CS_EXT_NAME_START, /* after ';': BWS then a name */
    CS_EXT_NAME,       /* inside a name */
    CS_EXT_AFTER_NAME, /* BWS after a name: '=' or ';' */
    CS_EXT_VALUE_START,
    CS_EXT_TOKEN,       /* inside a token value */
    CS_EXT_QUOTED,      /* inside a quoted-string value */
    CS_EXT_QUOTED_PAIR, /* after a backslash */
    CS_EXT_AFTER_QUOTED,
    CS_SIZE_LF, /* CR seen, LF must follow */
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILER_START, /* a trailer field or the final CRLF */
    CS_TRAILER_NAME,
    CS_TRAILER_VALUE,
    CS_TRAILER_LF,
    CS_FINAL_LF,
    CS_DONE,
    CS_FAILED_400, /* errors stick: the stream cannot be resynchronised */
    CS_FAILED_413,
};

/* What may follow a complete size, ext-name or ext-value. */
static int ext_boundary(struct http_chunked *d, unsigned char c)
{
    if (is_ows(c))
        d->state = CS_EXT_BWS;
    else if (c == ';')
        d->state = CS_EXT_NAME_START;
    else if (c == '\r')
        d->state = CS_SIZE_LF;
    else
        return 400;
    return 0;
}

/* One byte of a size line: size digits and extensions. */
static int size_line_step(struct http_chunked *d, unsigned char c)
{
    if (c != '\r' && ++d->line_len > MAX_CHUNK_LINE)
        return 400;

    switch (d->state) {
    case CS_SIZE_FIRST:
    case CS_SIZE: {
        int h = number_hex_digit(c);
        if (h >= 0) {
            /* Digits come first on the line, so line_len counts them. */
            if (d->line_len > MAX_CHUNK_SIZE_DIGITS)
                return 400;
            d->chunk_left = d->chunk_left << 4 | (uint64_t)h;
            d->state = CS_SIZE;
            return 0;
        }
        /* An empty size, or one preceded by a sign or whitespace. */
        if (d->state == CS_SIZE_FIRST)
            return 400;
        return ext_boundary(d, c);
    }
    case CS_EXT_BWS:
        if (is_ows(c))
            return 0;
        if (c != ';')
            return 400;
        d->state = CS_EXT_NAME_START;
        return 0;
    case CS_EXT_NAME_START:
        if (is_ows(c))
            return 0;
        if (!is_tchar(c))
            return 400;
        d->state = CS_EXT_NAME;
        return 0;
    case CS_EXT_NAME:
        if (is_tchar(c))
            return 0;
        if (c == '=') {
            d->state = CS_EXT_VALUE_START;
            return 0;
        }
        if (is_ows(c)) {
            d->state = CS_EXT_AFTER_NAME;
            return 0;
        }
        return ext_boundary(d, c);
    case CS_EXT_AFTER_NAME:
        if (is_ows(c))
            return 0;
        if (c == '=')
            d->state = CS_EXT_VALUE_START;
        else if (c == ';')
            d->state = CS_EXT_NAME_START;
        else
            return 400;
        return 0;
    case CS_EXT_VALUE_START:
        if (is_ows(c))
            return 0;
        if (c == '"')
            d->state = CS_EXT_QUOTED;
        else if (is_tchar(c))
            d->state = CS_EXT_TOKEN;
        else
            return 400;
        return 0;
    case CS_EXT_TOKEN:
        if (is_tchar(c))
            return 0;
        return ext_boundary(d, c);
    case CS_EXT_QUOTED:
        /* qdtext = HTAB / SP / VCHAR except '"' and '\' / obs-text */
        if (c == '"')
            d->state = CS_EXT_AFTER_QUOTED;
        else if (c == '\\')
            d->state = CS_EXT_QUOTED_PAIR;
        else if (!is_field_char(c))
            return 400;
        return 0;
    case CS_EXT_QUOTED_PAIR:
        if (!is_field_char(c))
            return 400;
        d->state = CS_EXT_QUOTED;
        return 0;
    case CS_EXT_AFTER_QUOTED:
        return ext_boundary(d, c);
    default:
        return 400;
    }
}

/* The LF ending a size line: start the chunk's data, or the trailer. */
static int size_line_end(struct http_chunked *d, unsigned char c, uint64_t max_body)
{
    if (c != '\n')
        return 400;
    d->line_len = 0;
    if (d->chunk_left == 0) {
        /* Last chunk. chunk_left now counts trailer-section bytes. */
        d->state = CS_TRAILER_START;
        return 0;
    }
    /* Refuse an oversized chunk before reading any of it. */
    if (d->total > max_body || d->chunk_left > max_body - d->total)
        return 413;
    d->state = CS_DATA;
    return 0;
}

/* One byte of the trailer section: fields are syntax-checked, then dropped. */
static int trailer_step(struct http_chunked *d, unsigned char c)
{
    if (++d->chunk_left > MAX_TRAILER_BYTES)
        return 400;
    if (c != '\r' && c != '\n' && ++d->line_len > MAX_CHUNK_LINE)
        return 400;

    switch (d->state) {
    case CS_TRAILER_START:
        if (c == '\r')
            d->state = CS_FINAL_LF;
        else if (is_tchar(c))
            d->state = CS_TRAILER_NAME;
        else
            return 400; /* obs-fold, bare LF, or not a field name */
        return 0;
    case CS_TRAILER_NAME:
        if (c == ':')
            d->state = CS_TRAILER_VALUE;
        else if (!is_tchar(c))
            return 400;
        return 0;
    case CS_TRAILER_VALUE:
        if (c == '\r')
            d->state = CS_TRAILER_LF;
        else if (!is_field_char(c))
            return 400;
        return 0;
    case CS_TRAILER_LF:
        if (c != '\n')
            return 400;
        d->line_len = 0;
        d->state = CS_TRAILER_START;
        return 0;
    case CS_FINAL_LF:
        if (c != '\n')
            return 400;
        d->state = CS_DONE;
        return 0;
    default:
        return 400;
    }
}

/* One byte outside chunk data; returns 0 or the HTTP status of the error. */
static int chunk_step(struct http_chunked *d, unsigned char c, uint64_t max_body)
{
    switch (d->state) {
    case CS_SIZE_LF:
        return size_line_end(d, c, max_body);
    case CS_DATA_CR:
        if (c != '\r')
            return 400;
        d->state = CS_DATA_LF;
        return 0;
    case CS_DATA_LF:
        if (c != '\n')
            return 400;
        d->state = CS_SIZE_FIRST;
        d->line_len = 0;
        d->chunk_left = 0;
        return 0;
    case CS_TRAILER_START:
    case CS_TRAILER_NAME:
    case CS_TRAILER_VALUE:
    case CS_TRAILER_LF:
    case CS_FINAL_LF:
        return trailer_step(d, c);
    default:
        if (d->state >= CS_SIZE_FIRST && d->state <= CS_EXT_AFTER_QUOTED)
            return size_line_step(d, c);
        return 400;
    }
}

int http_chunked_decode(struct http_chunked *dec, char *buf, size_t *len, uint64_t max_body,
                        int *status)
{
    size_t in = *len, r = 0, w = 0;

    if (dec->state == CS_FAILED_400 || dec->state == CS_FAILED_413) {
        *len = 0;
        return fail(status, dec->state == CS_FAILED_413 ? 413 : 400);
    }
    if (dec->state == CS_DONE) {
        /* Everything after the end of the body is "after the body". */
        *len = 0;
        if (in > INT_MAX)
            return fail(status, 400);
        return (int)in;
    }
    /* The return value must be able to count the bytes after the body. */
    if (in > INT_MAX) {
        *len = 0;
        return fail(status, 400);
    }

    while (r < in) {
        if (dec->state == CS_DATA) {
            size_t n = in - r;
            if (n > dec->chunk_left)
                n = (size_t)dec->chunk_left;
            if (w != r)
                memmove(buf + w, buf + r, n);
            w += n;
            r += n;
            dec->chunk_left -= n;
            dec->total += n;
            if (dec->chunk_left == 0)
                dec->state = CS_DATA_CR;
            continue;
        }
        int err = chunk_step(dec, (unsigned char)buf[r++], max_body);
        if (err) {
            dec->state = err == 413 ? CS_FAILED_413 : CS_FAILED_400;
            *len = w;
            return fail(status, err);
        }
        if (dec->state == CS_DONE) {
            *len = w;
            return (int)(in - r);
        }
    }
    *len = w;
    return HTTP_PARSE_AGAIN;
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

/*
 * Decodes the byte at src[*i] (a plain byte, a %XX escape, or with
 * plus_space a '+') and leaves *i on the last byte it used. -1: bad escape.
 */
static int decode_byte(const char *src, size_t len, size_t *i, bool plus_space)
{
    unsigned char c = (unsigned char)src[*i];

    if (c == '+' && plus_space)
        return ' ';
    if (c != '%')
        return c;
    if (len - *i < 3)
        return -1;
    int hi = number_hex_digit((unsigned char)src[*i + 1]);
    int lo = number_hex_digit((unsigned char)src[*i + 2]);
    if (hi < 0 || lo < 0)
        return -1;
    *i += 2;
    return hi << 4 | lo;
}

/* Decodes src[0..len) into out; -1 on a bad escape or when out is too small. */
static long decode_into(const char *src, size_t len, char *out, size_t out_cap, bool plus_space)
{
    size_t w = 0;

    for (size_t i = 0; i < len; i++) {
        int c = decode_byte(src, len, &i, plus_space);
        if (c < 0 || w == out_cap)
            return -1;
        out[w++] = (char)c;
    }
    return (long)w;
}

long http_percent_decode(const char *src, size_t len, char *out, size_t out_cap)
{
    return decode_into(src, len, out, out_cap, false);
}

/* Whether the (encoded) form name p[0..n) decodes to exactly `name`. */
static bool form_name_matches(const char *p, size_t n, const char *name, size_t name_len)
{
    size_t j = 0;

    for (size_t i = 0; i < n; i++, j++) {
        int c = decode_byte(p, n, &i, true);
        if (c < 0 || j == name_len || (unsigned char)name[j] != c)
            return false;
    }
    return j == name_len;
}

long http_query_param(struct http_str query, const char *name, char *out, size_t out_cap)
{
    size_t name_len = strlen(name);
    size_t i = 0;

    while (i < query.len) {
        const char *seg = query.ptr + i;
        const char *amp = memchr(seg, '&', query.len - i);
        size_t seg_len = amp ? (size_t)(amp - seg) : query.len - i;
        i += seg_len + 1;
        if (seg_len == 0)
            continue;

        const char *eq = memchr(seg, '=', seg_len);
        size_t key_len = eq ? (size_t)(eq - seg) : seg_len;
        if (!form_name_matches(seg, key_len, name, name_len))
            continue;
        if (!eq)
            return 0;
        long n = decode_into(eq + 1, seg_len - key_len - 1, out, out_cap, true);
        return n < 0 ? -2 : n;
    }
    return -1;
}

/* Appends p[0..n) to out at *o, cut so that one byte is left for the NUL. */
static void put_cut(char *out, size_t cap, size_t *o, const char *p, size_t n)
{
    size_t k = n < cap - 1 - *o ? n : cap - 1 - *o;
    memcpy(out + *o, p, k);
    *o += k;
}

size_t http_redact_target(struct http_str target, char *out, size_t cap)
{
    static const char mask[] = "=REDACTED";
    size_t o = 0;
    const char *q = memchr(target.ptr, '?', target.len);
    size_t head = q ? (size_t)(q - target.ptr) + 1 : target.len;

    if (cap == 0) {
        return 0;
    }
    put_cut(out, cap, &o, target.ptr, head);
    for (size_t i = head; i < target.len;) {
        const char *seg = target.ptr + i;
        const char *amp = memchr(seg, '&', target.len - i);
        size_t seg_len = amp ? (size_t)(amp - seg) : target.len - i;
        const char *eq = memchr(seg, '=', seg_len);
        size_t key_len = eq ? (size_t)(eq - seg) : seg_len;
        /* Names are matched after decoding, as http_query_param does, so
         * "%74oken=..." is hidden too. */
        if (eq && form_name_matches(seg, key_len, "token", 5)) {
            put_cut(out, cap, &o, seg, key_len);
            put_cut(out, cap, &o, mask, sizeof mask - 1);
        } else {
            put_cut(out, cap, &o, seg, seg_len);
        }
        i += seg_len;
        if (amp) {
            put_cut(out, cap, &o, "&", 1);
            i++;
        }
    }
    out[o] = '\0';
    return o;
}
