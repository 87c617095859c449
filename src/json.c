/*
 * json: strict RFC 8259 validation (with RFC 3629 UTF-8) and a top-level
 * string member lookup.
 *
 * The validator is a single forward pass over the bytes. It never allocates
 * and never recurses: the only state kept per nesting level is one bit
 * (object or array) in a fixed stack of JSON_MAX_DEPTH bits, so a hostile
 * document costs O(len) time and a fixed 64-byte nesting stack.
 *
 * Error offsets point at the first byte that cannot belong to a valid
 * document, with these conventions:
 *   - "unexpected end", "empty input": len (the input ran out);
 *   - a bad escape: the backslash that starts the escape;
 *   - ill-formed UTF-8: the first byte of the ill-formed sequence;
 *   - "leading zero": the zero; "invalid literal": the literal's first byte;
 *   - "trailing comma": the comma; "too deep": the bracket that overflows.
 *
 * The lookup trusts that the document was validated (it does not re-check
 * the grammar) but still bounds every read by len, so on a document that
 * json_validate rejected it returns an unspecified result without ever
 * touching memory outside buf[0..len) or out[0..out_cap).
 */
#include "json.h"
#include "number.h"

#include <limits.h>
#include <string.h>

_Static_assert(JSON_MAX_DEPTH > 0, "JSON_MAX_DEPTH must be positive");

/* ------------------------------------------------------------ validation */

struct cursor {
    const unsigned char *p;
    size_t len;
    size_t i; /* next byte to look at */
    struct json_error *err;
};

static bool fail(struct cursor *c, size_t offset, const char *msg)
{
    if (c->err != NULL) {
        c->err->offset = offset;
        c->err->msg = msg;
    }
    return false;
}

static bool fail_end(struct cursor *c)
{
    return fail(c, c->len, "unexpected end");
}

static bool is_ws(unsigned char ch)
{
    /* RFC 8259 section 2: only these four; no VT, FF, NBSP, BOM. */
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static bool is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static void skip_ws(struct cursor *c)
{
    while (c->i < c->len && is_ws(c->p[c->i]))
        c->i++;
}

/*
 * Reads the four hex digits of a \u escape starting at p[i]. Returns 1 with
 * *cp set, 0 when a non-hex byte is found, -1 when the input ends first.
 */
static int read_hex4(const unsigned char *p, size_t len, size_t i, unsigned *cp)
{
    unsigned v = 0;
    for (size_t k = 0; k < 4; k++) {
        if (i + k >= len)
            return -1;
        int h = number_hex_digit(p[i + k]);
        if (h < 0)
            return 0;
        v = (v << 4) | (unsigned)h;
    }
    *cp = v;
    return 1;
}

/*
 * Checks the multi-byte UTF-8 sequence starting at s[0] (a byte >= 0x80)
 * against the well-formed byte sequences table of RFC 3629 section 4.
 * Returns its length (2..4), 0 when ill-formed, -1 when the input ends in
 * the middle of an otherwise well-formed prefix.
 *
 * Only the second byte has a lead-dependent range; restricting it is what
 * rejects overlongs (E0 80..9F, F0 80..8F), UTF-16 surrogates (ED A0..BF)
 * and code points above U+10FFFF (F4 90..BF). C0, C1 and F5..FF can never
 * start a sequence, and 80..BF cannot either (stray continuation).
 */
static int utf8_sequence(const unsigned char *s, size_t avail)
{
    unsigned char b0 = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    int n;

    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        if (b0 == 0xE0)
            lo = 0xA0;
        else if (b0 == 0xED)
            hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        if (b0 == 0xF0)
            lo = 0x90;
        else if (b0 == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    for (int k = 1; k < n; k++) {
        if ((size_t)k >= avail)
            return -1;
        if (s[k] < lo || s[k] > hi)
            return 0;
        lo = 0x80;
        hi = 0xBF;
    }
    return n;
}

/*
 * c->i is at a backslash inside a string; on success it is past the escape.
 * Any four hex digits make a valid \u escape, surrogates included: RFC 8259's
 * grammar accepts a lone or mis-ordered surrogate escape (section 8.2 only
 * warns that such a string has no Unicode meaning), and JavaScript writes
 * one for a string cut inside a pair. Only raw bytes must be UTF-8.
 */
static bool scan_escape(struct cursor *c)
{
    const unsigned char *p = c->p;
    size_t start = c->i;
    unsigned cp;

    if (start + 1 >= c->len)
        return fail_end(c);
    switch (p[start + 1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        c->i = start + 2;
        return true;
    case 'u':
        break;
    default:
        return fail(c, start, "invalid escape");
    }

    switch (read_hex4(p, c->len, start + 2, &cp)) {
    case -1:
        return fail_end(c);
    case 0:
        return fail(c, start, "invalid unicode escape");
    }
    c->i = start + 6;
    return true;
}

/* c->i is at the opening quote; on success it is past the closing one. */
static bool scan_string(struct cursor *c)
{
    const unsigned char *p = c->p;
    size_t len = c->len;

    c->i++;
    for (;;) {
        /* Plain printable ASCII is by far the common case: keep it tight. */
        while (c->i < len && p[c->i] >= 0x20 && p[c->i] < 0x80 && p[c->i] != '"' && p[c->i] != '\\')
            c->i++;
        if (c->i >= len)
            return fail_end(c);

        unsigned char ch = p[c->i];
        if (ch == '"') {
            c->i++;
            return true;
        }
        if (ch == '\\') {
            if (!scan_escape(c))
                return false;
            continue;
        }
        if (ch < 0x20)
            return fail(c, c->i, "control character in string");

        int n = utf8_sequence(p + c->i, len - c->i);
        if (n < 0)
            return fail_end(c);
        if (n == 0)
            return fail(c, c->i, "invalid utf-8");
        c->i += (size_t)n;
    }
}

/*
 * number = [ minus ] int [ frac ] [ exp ]      (RFC 8259 section 6)
 * int = zero / ( digit1-9 *DIGIT ), frac = "." 1*DIGIT,
 * exp = ( "e" / "E" ) [ "-" / "+" ] 1*DIGIT
 */
static bool scan_number(struct cursor *c)
{
    const unsigned char *p = c->p;
    size_t len = c->len;
    size_t i = c->i;

    if (p[i] == '-')
        i++;
    if (i >= len)
        return fail_end(c);
    if (p[i] == '0') {
        if (i + 1 < len && is_digit(p[i + 1]))
            return fail(c, i, "leading zero");
        i++;
    } else if (is_digit(p[i])) {
        while (i < len && is_digit(p[i]))
            i++;
    } else {
        return fail(c, i, "invalid number");
    }

    if (i < len && p[i] == '.') {
        i++;
        if (i >= len)
            return fail_end(c);
        if (!is_digit(p[i]))
            return fail(c, i, "invalid number");
        while (i < len && is_digit(p[i]))
            i++;
    }

    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < len && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= len)
            return fail_end(c);
        if (!is_digit(p[i]))
            return fail(c, i, "invalid number");
        while (i < len && is_digit(p[i]))
            i++;
    }
    c->i = i;
    return true;
}

static bool scan_literal(struct cursor *c, const char *word)
{
    size_t start = c->i;
    for (size_t k = 0; word[k] != '\0'; k++) {
        if (start + k >= c->len)
            return fail_end(c);
        if (c->p[start + k] != (unsigned char)word[k])
            return fail(c, start, "invalid literal");
    }
    c->i = start + strlen(word);
    return true;
}

/*
 * After '{' or ',' in an object: expects `string ws ':' ws`, leaving c->i at
 * the first byte of the member's value.
 */
static bool scan_member_name(struct cursor *c)
{
    if (c->i >= c->len)
        return fail_end(c);
    if (c->p[c->i] != '"')
        return fail(c, c->i, "expected string key");
    if (!scan_string(c))
        return false;
    skip_ws(c);
    if (c->i >= c->len)
        return fail_end(c);
    if (c->p[c->i] != ':')
        return fail(c, c->i, "missing colon");
    c->i++;
    skip_ws(c);
    return true;
}

/* The nesting stack: bit k set means level k (0-based) is an object. */
struct nest {
    unsigned char bits[(JSON_MAX_DEPTH + 7) / 8];
    size_t depth;
};

static bool nest_top_is_object(const struct nest *n)
{
    size_t k = n->depth - 1;
    return (n->bits[k / 8] >> (k % 8)) & 1u;
}

static void nest_push(struct nest *n, bool object)
{
    size_t k = n->depth++;
    unsigned char mask = (unsigned char)(1u << (k % 8));
    if (object)
        n->bits[k / 8] |= mask;
    else
        n->bits[k / 8] &= (unsigned char)~mask;
}

/*
 * c->i is at the first byte of a value (whitespace already skipped). Scans a
 * scalar or an empty container completely (*opened = false), or opens a
 * non-empty container and leaves c->i at its first value (*opened = true).
 */
static bool scan_value_start(struct cursor *c, struct nest *n, bool *opened)
{
    *opened = false;
    if (c->i >= c->len)
        return fail_end(c);

    unsigned char ch = c->p[c->i];
    switch (ch) {
    case '{':
    case '[':
        if (n->depth == JSON_MAX_DEPTH)
            return fail(c, c->i, "too deep");
        c->i++;
        skip_ws(c);
        if (c->i >= c->len)
            return fail_end(c);
        if (c->p[c->i] == (ch == '{' ? '}' : ']')) {
            c->i++;
            return true;
        }
        nest_push(n, ch == '{');
        *opened = true;
        return ch == '{' ? scan_member_name(c) : true;
    case '"':
        return scan_string(c);
    case 't':
        return scan_literal(c, "true");
    case 'f':
        return scan_literal(c, "false");
    case 'n':
        return scan_literal(c, "null");
    default:
        if (ch == '-' || is_digit(ch))
            return scan_number(c);
        return fail(c, c->i, "unexpected character");
    }
}

bool json_validate(const char *buf, size_t len, struct json_error *err)
{
    struct cursor c = {(const unsigned char *)buf, buf != NULL ? len : 0, 0, err};
    struct nest n = {.depth = 0};

    /* RFC 8259 section 8.1: implementations MUST NOT add a BOM; we do not
     * accept one either, but name it since it is an easy mistake to make. */
    if (c.len >= 3 && c.p[0] == 0xEF && c.p[1] == 0xBB && c.p[2] == 0xBF)
        return fail(&c, 0, "byte order mark");
    skip_ws(&c);
    if (c.i >= c.len)
        return fail(&c, c.len, "empty input");

    for (;;) {
        bool opened;
        if (!scan_value_start(&c, &n, &opened))
            return false;
        if (opened)
            continue;

        /*
         * A value has ended. Close containers until a ',' announces the next
         * value of the innermost one, or the top-level value is done.
         */
        for (;;) {
            skip_ws(&c);
            if (n.depth == 0) {
                if (c.i != c.len)
                    return fail(&c, c.i, "trailing garbage");
                return true;
            }
            if (c.i >= c.len)
                return fail_end(&c);

            bool in_object = nest_top_is_object(&n);
            unsigned char close = in_object ? '}' : ']';
            unsigned char ch = c.p[c.i];
            if (ch == close) {
                n.depth--;
                c.i++;
                continue;
            }
            if (ch == ']' || ch == '}')
                return fail(&c, c.i, "mismatched bracket");
            if (ch != ',')
                return fail(&c, c.i, "missing comma");

            size_t comma = c.i++;
            skip_ws(&c);
            if (c.i >= c.len)
                return fail_end(&c);
            if (c.p[c.i] == close)
                return fail(&c, comma, "trailing comma");
            if (in_object && !scan_member_name(&c))
                return false;
            break;
        }
    }
}

/* ---------------------------------------------------------------- lookup */

static size_t skip_ws_at(const unsigned char *p, size_t len, size_t i)
{
    while (i < len && is_ws(p[i]))
        i++;
    return i;
}

static size_t utf8_encode(unsigned cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* What string_next returns for a lone surrogate escape (no UTF-8 form). */
#define LONE_SURROGATE (-2)

/*
 * Decodes the next piece of string content at p[*i] (inside the quotes) into
 * u[]: one raw byte, or the UTF-8 form of an escape (a surrogate pair counts
 * as one escape). Returns the number of bytes put in u (1..4), 0 at the
 * closing quote (then *i is past it), LONE_SURROGATE (with *i past it) for a
 * surrogate escape that is not half of a pair, -1 when the input is malformed.
 */
static int string_next(const unsigned char *p, size_t len, size_t *i, unsigned char u[4])
{
    size_t k = *i;
    if (k >= len)
        return -1;
    if (p[k] == '"') {
        *i = k + 1;
        return 0;
    }
    if (p[k] != '\\') {
        u[0] = p[k];
        *i = k + 1;
        return 1;
    }
    if (k + 1 >= len)
        return -1;

    unsigned cp;
    switch (p[k + 1]) {
    case '"':
    case '\\':
    case '/':
        cp = p[k + 1];
        break;
    case 'b':
        cp = '\b';
        break;
    case 'f':
        cp = '\f';
        break;
    case 'n':
        cp = '\n';
        break;
    case 'r':
        cp = '\r';
        break;
    case 't':
        cp = '\t';
        break;
    case 'u':
        if (read_hex4(p, len, k + 2, &cp) != 1)
            return -1;
        k += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (k + 3 < len && p[k + 2] == '\\' && p[k + 3] == 'u' &&
                read_hex4(p, len, k + 4, &lo) == 1 && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                k += 6;
            } else {
                *i = k + 2;
                return LONE_SURROGATE;
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            *i = k + 2;
            return LONE_SURROGATE;
        }
        break;
    default:
        return -1;
    }
    *i = k + 2;
    return (int)utf8_encode(cp, u);
}

/* p[*i] is an opening quote; moves *i past the closing one. */
static bool skip_string(const unsigned char *p, size_t len, size_t *i)
{
    size_t k = *i + 1;
    while (k < len) {
        if (p[k] == '"') {
            *i = k + 1;
            return true;
        }
        /* The escaped byte can never be the closing quote. */
        k += p[k] == '\\' ? 2 : 1;
    }
    return false;
}

/*
 * Moves *i from the first byte of a value to just past it. Containers are
 * skipped by counting brackets, which is enough on a validated document and
 * needs neither recursion nor a stack.
 */
static bool skip_value(const unsigned char *p, size_t len, size_t *i)
{
    size_t k = *i;
    if (k >= len)
        return false;
    if (p[k] == '"')
        return skip_string(p, len, i);
    if (p[k] != '{' && p[k] != '[') {
        /* number or literal: runs up to the next delimiter */
        while (k < len && !is_ws(p[k]) && p[k] != ',' && p[k] != '}' && p[k] != ']')
            k++;
        *i = k;
        return true;
    }

    size_t depth = 0;
    while (k < len) {
        unsigned char ch = p[k];
        if (ch == '"') {
            if (!skip_string(p, len, &k))
                return false;
            continue;
        }
        k++;
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0) {
                *i = k;
                return true;
            }
        }
    }
    return false;
}

/*
 * p[*i] is the opening quote of a member name. Moves *i past the closing
 * quote; *match tells whether the unescaped name equals name[0..name_len).
 */
static bool member_name_equals(const unsigned char *p, size_t len, size_t *i, const char *name,
                               size_t name_len, bool *match)
{
    unsigned char u[4];
    size_t k = *i + 1, pos = 0;
    bool same = true;
    int n;

    while ((n = string_next(p, len, &k, u)) != 0) {
        if (n == LONE_SURROGATE) {
            same = false; /* no name given as UTF-8 can equal it */
            continue;
        }
        if (n < 0)
            return false;
        if (same && (pos + (size_t)n > name_len || memcmp(name + pos, u, (size_t)n) != 0))
            same = false; /* keep going: we still need the end of the name */
        pos += (size_t)n;
    }
    *i = k;
    *match = same && pos == name_len;
    return true;
}

/*
 * Unescapes the string whose opening quote is p[i] into out[0..out_cap), as
 * json_object_get_string returns it. A lone surrogate anywhere in it decides
 * the result, even past the point where the value stopped fitting.
 */
static long unescape_value(const unsigned char *p, size_t len, size_t i, char *out, size_t out_cap)
{
    unsigned char u[4];
    size_t k = i + 1, used = 0;
    bool too_long = false;
    int n;
    while ((n = string_next(p, len, &k, u)) != 0) {
        if (n == LONE_SURROGATE)
            return JSON_LONE_SURROGATE;
        if (n < 0)
            return -1;
        if (too_long || (size_t)n > out_cap - used) {
            too_long = true;
            continue;
        }
        memcpy(out + used, u, (size_t)n);
        used += (size_t)n;
    }
    if (too_long || used > LONG_MAX)
        return -2;
    /* Convenience only: the value may itself contain NUL (\u0000). */
    if (used < out_cap)
        out[used] = '\0';
    return (long)used;
}

long json_object_get_string(const char *buf, size_t len, const char *name, char *out,
                            size_t out_cap)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t name_len, i;

    if (buf == NULL || name == NULL)
        return -1;
    name_len = strlen(name);
    i = skip_ws_at(p, len, 0);
    if (i >= len || p[i] != '{')
        return -1;
    i++;

    for (;;) {
        bool match;
        i = skip_ws_at(p, len, i);
        if (i >= len || p[i] != '"')
            return -1; /* '}': no (more) members */
        if (!member_name_equals(p, len, &i, name, name_len, &match))
            return -1;
        i = skip_ws_at(p, len, i);
        if (i >= len || p[i] != ':')
            return -1;
        i = skip_ws_at(p, len, i + 1);
        if (i >= len)
            return -1;

        if (match) {
            /* The first member with this name decides, string or not. */
            if (p[i] != '"')
                return -1;
            return unescape_value(p, len, i, out, out_cap);
        }

        if (!skip_value(p, len, &i))
            return -1;
        i = skip_ws_at(p, len, i);
        if (i >= len || p[i] != ',')
            return -1; /* '}': member absent */
        i++;
    }
}
