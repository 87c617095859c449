/*
 * libFuzzer target for src/json.c.
 *
 * Besides running json_validate and json_object_get_string under ASan/UBSan
 * (libFuzzer hands us an exact-size heap copy, so any over-read is caught),
 * it checks the results against properties computed independently:
 *
 *   1. a small recursive-descent reference parser, written differently on
 *      purpose (pointer-based, decodes UTF-8 by bit patterns and checks code
 *      point ranges instead of byte ranges), must agree on validity and on
 *      the value json_object_get_string returns for a few member names
 *      (lone surrogate escapes are valid; a value holding one is refused
 *      with JSON_LONE_SURROGATE, a name holding one matches nothing);
 *   2. whitespace around the input never changes validity;
 *   3. a valid document stays valid as an array element or a member value,
 *      unless it is already nested JSON_MAX_DEPTH deep ("too deep");
 *   4. a proper prefix of a valid document is valid only when the cut falls
 *      in trailing whitespace or inside a top-level number; otherwise the
 *      error is "unexpected end" / "empty input" at the cut;
 *   5. round trip: when the input is well-formed UTF-8, it is escaped into a
 *      JSON string (mixing raw bytes, short escapes, \u in both cases and
 *      surrogate pairs) inside a document, which must validate, and looking
 *      the member up must give back exactly the input bytes.
 *
 * Any violation aborts via __builtin_trap so libFuzzer records a crash.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------ reference parser */

struct ref {
    const unsigned char *p, *end;
    /* lookup of a top-level member */
    const unsigned char *name;
    size_t name_len;
    int found; /* 0: no member yet, 1: first match is a string, 2: it is not,
                  3: a string with a lone surrogate escape */
    bool lone; /* the last string parsed held a lone surrogate escape */
    unsigned char *val;
    size_t val_len;
    unsigned char *key; /* scratch for top-level member names */
    /* the first and last top-level member names, for picking lookups */
    unsigned char *first_key, *last_key;
    size_t first_key_len, last_key_len;
    bool have_first_key;
    int max_depth_seen;
};

static void ref_ws(struct ref *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static size_t put_utf8(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one UTF-8 character at s (n bytes left); returns its length or 0. */
static size_t ref_utf8_char(const unsigned char *s, size_t n, uint32_t *out)
{
    uint32_t cp, min;
    size_t need;
    if (s[0] < 0x80) {
        *out = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0)
        need = 2, cp = s[0] & 0x1Fu, min = 0x80;
    else if ((s[0] & 0xF0) == 0xE0)
        need = 3, cp = s[0] & 0x0Fu, min = 0x800;
    else if ((s[0] & 0xF8) == 0xF0)
        need = 4, cp = s[0] & 0x07u, min = 0x10000;
    else
        return 0;
    if (n < need)
        return 0;
    for (size_t k = 1; k < need; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    *out = cp;
    return need;
}

static bool ref_hex4(struct ref *r, uint32_t *cp)
{
    *cp = 0;
    for (int k = 0; k < 4; k++) {
        if (r->p >= r->end)
            return false;
        unsigned char c = *r->p++;
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            return false;
        *cp = *cp * 16 + d;
    }
    return true;
}

/* Parses a string; when dec is not NULL stores its unescaped bytes there. */
static bool ref_string(struct ref *r, unsigned char *dec, size_t *dec_len)
{
    static const char esc_in[] = "\"\\/bfnrt";
    static const char esc_out[] = "\"\\/\b\f\n\r\t";
    unsigned char tmp[4];
    size_t n = 0;

    if (r->p >= r->end || *r->p != '"')
        return false;
    r->p++;
    r->lone = false;
    for (;;) {
        if (r->p >= r->end)
            return false;
        unsigned char c = *r->p;
        size_t k;
        uint32_t cp;
        if (c == '"') {
            r->p++;
            break;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            r->p++;
            if (r->p >= r->end)
                return false;
            c = *r->p++;
            const char *e = c != 0 ? strchr(esc_in, c) : NULL;
            if (e != NULL) {
                tmp[0] = (unsigned char)esc_out[e - esc_in];
                k = 1;
            } else if (c == 'u') {
                if (!ref_hex4(r, &cp))
                    return false;
                /* Any escape is valid; a high half followed at once by a low
                 * one makes a pair, any other surrogate stays lone. */
                const unsigned char *after = r->p;
                uint32_t lo;
                if (cp >= 0xD800 && cp <= 0xDBFF && r->end - r->p >= 2 && r->p[0] == '\\' &&
                    r->p[1] == 'u') {
                    r->p += 2;
                    if (ref_hex4(r, &lo) && lo >= 0xDC00 && lo <= 0xDFFF)
                        cp = 0x10000 + (((cp & 0x3FF) << 10) | (lo & 0x3FF));
                    else
                        r->p = after;
                }
                if (cp >= 0xD800 && cp <= 0xDFFF) {
                    r->lone = true;
                    k = 0;
                } else {
                    k = put_utf8(tmp, cp);
                }
            } else {
                return false;
            }
        } else {
            k = ref_utf8_char(r->p, (size_t)(r->end - r->p), &cp);
            if (k == 0)
                return false;
            memcpy(tmp, r->p, k);
            r->p += k;
        }
        if (dec != NULL)
            memcpy(dec + n, tmp, k);
        n += k;
    }
    if (dec_len != NULL)
        *dec_len = n;
    return true;
}

static bool ref_digits(struct ref *r)
{
    const unsigned char *s = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
        r->p++;
    return r->p > s;
}

static bool ref_number(struct ref *r)
{
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p >= r->end)
        return false;
    if (*r->p == '0')
        r->p++;
    else if (*r->p < '1' || *r->p > '9' || !ref_digits(r))
        return false;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (!ref_digits(r))
            return false;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!ref_digits(r))
            return false;
    }
    return true;
}

static bool ref_word(struct ref *r, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
        return false;
    r->p += n;
    return true;
}

/* depth: containers around this value. */
static bool ref_value(struct ref *r, int depth)
{
    if (r->p >= r->end)
        return false;
    switch (*r->p) {
    case '{':
        if (depth >= JSON_MAX_DEPTH)
            return false;
        if (depth + 1 > r->max_depth_seen)
            r->max_depth_seen = depth + 1;
        r->p++;
        ref_ws(r);
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            return true;
        }
        for (;;) {
            size_t klen = 0;
            bool top = depth == 0;
            ref_ws(r);
            if (!ref_string(r, top ? r->key : NULL, &klen))
                return false;
            bool key_lone = r->lone; /* such a name matches no name */
            if (top && !r->have_first_key) {
                memcpy(r->first_key, r->key, klen);
                r->first_key_len = klen;
                r->have_first_key = true;
            }
            if (top) {
                memcpy(r->last_key, r->key, klen);
                r->last_key_len = klen;
            }
            ref_ws(r);
            if (r->p >= r->end || *r->p != ':')
                return false;
            r->p++;
            ref_ws(r);
            bool match = top && r->found == 0 && r->name != NULL && !key_lone &&
                         klen == r->name_len && memcmp(r->key, r->name, klen) == 0;
            if (match && r->p < r->end && *r->p == '"') {
                if (!ref_string(r, r->val, &r->val_len))
                    return false;
                r->found = r->lone ? 3 : 1;
            } else {
                if (match)
                    r->found = 2;
                if (!ref_value(r, depth + 1))
                    return false;
            }
            ref_ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            if (r->p < r->end && *r->p == '}') {
                r->p++;
                return true;
            }
            return false;
        }
    case '[':
        if (depth >= JSON_MAX_DEPTH)
            return false;
        if (depth + 1 > r->max_depth_seen)
            r->max_depth_seen = depth + 1;
        r->p++;
        ref_ws(r);
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return true;
        }
        for (;;) {
            ref_ws(r);
            if (!ref_value(r, depth + 1))
                return false;
            ref_ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            if (r->p < r->end && *r->p == ']') {
                r->p++;
                return true;
            }
            return false;
        }
    case '"':
        return ref_string(r, NULL, NULL);
    case 't':
        return ref_word(r, "true");
    case 'f':
        return ref_word(r, "false");
    case 'n':
        return ref_word(r, "null");
    default:
        return ref_number(r);
    }
}

/* Scratch buffers sized to the input: unescaping never makes a string longer. */
struct scratch {
    unsigned char *key, *val, *first_key, *last_key;
};

static bool ref_parse(const unsigned char *s, size_t n, const unsigned char *name, size_t name_len,
                      struct scratch *sc, struct ref *r)
{
    memset(r, 0, sizeof(*r));
    r->p = s;
    r->end = s + n;
    r->name = name;
    r->name_len = name_len;
    r->key = sc->key;
    r->val = sc->val;
    r->first_key = sc->first_key;
    r->last_key = sc->last_key;
    ref_ws(r);
    if (!ref_value(r, 0))
        return false;
    ref_ws(r);
    return r->p == r->end;
}

/* ------------------------------------------------------------ helpers */

static bool validate_copy(const unsigned char *pre, size_t pre_len, const uint8_t *data,
                          size_t size, const unsigned char *post, size_t post_len,
                          struct json_error *e)
{
    size_t n = pre_len + size + post_len;
    char *b = malloc(n > 0 ? n : 1);
    CHECK(b != NULL);
    if (pre_len)
        memcpy(b, pre, pre_len);
    if (size)
        memcpy(b + pre_len, data, size);
    if (post_len)
        memcpy(b + pre_len + size, post, post_len);
    bool ok = json_validate(b, n, e);
    free(b);
    return ok;
}

static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Compares json_object_get_string against the reference for one name. */
static void check_lookup(const uint8_t *data, size_t size, const unsigned char *name,
                         size_t name_len, struct scratch *sc)
{
    char cname[64];
    struct ref r;

    if (name_len >= sizeof(cname) || memchr(name, 0, name_len) != NULL)
        return; /* names are C strings */
    memcpy(cname, name, name_len);
    cname[name_len] = '\0';
    CHECK(ref_parse(data, size, name, name_len, sc, &r));

    size_t cap = r.found == 1 ? r.val_len : 16;
    char *out = malloc(cap > 0 ? cap : 1);
    CHECK(out != NULL);
    long got = json_object_get_string((const char *)data, size, cname, out, cap);
    if (r.found == 3) {
        CHECK(got == JSON_LONE_SURROGATE);
        CHECK(json_object_get_string((const char *)data, size, cname, out, 0) ==
              JSON_LONE_SURROGATE);
    } else if (r.found != 1) {
        CHECK(got == -1);
    } else {
        CHECK(got == (long)r.val_len);
        CHECK(memcmp(out, r.val, r.val_len) == 0);
        if (r.val_len > 0) /* one byte short must report "too long" */
            CHECK(json_object_get_string((const char *)data, size, cname, out, cap - 1) == -2);
    }
    free(out);
}

/*
 * Property 5: escape the input (well-formed UTF-8) into a member value in
 * a variety of ways and read it back.
 */
static void check_round_trip(const uint8_t *data, size_t size)
{
    static const char hex[] = "0123456789abcdef0123456789ABCDEF";
    /* worst case per input byte: a 4-byte character becomes 12 bytes */
    size_t cap = 64 + size * 6;
    unsigned char *doc = malloc(cap);
    CHECK(doc != NULL);
    size_t o = 0, i = 0;
    unsigned salt = size > 0 ? data[0] : 0;

    const char *head =
        (salt & 1) ? "{\"a\":[{\"room\":\"n\\\"o\\\\\"}],\"r\\u006fom\":\"" : " {\"room\" : \"";
    memcpy(doc, head, strlen(head));
    o = strlen(head);
    while (i < size) {
        uint32_t cp;
        size_t k = ref_utf8_char(data + i, size - i, &cp);
        CHECK(k > 0);
        unsigned mode = (unsigned)(i * 7 + cp + salt) % 4;
        const char *shortesc = NULL;
        switch (cp) {
        case '"':
            shortesc = "\\\"";
            break;
        case '\\':
            shortesc = "\\\\";
            break;
        case '/':
            shortesc = "\\/";
            break;
        case '\b':
            shortesc = "\\b";
            break;
        case '\f':
            shortesc = "\\f";
            break;
        case '\n':
            shortesc = "\\n";
            break;
        case '\r':
            shortesc = "\\r";
            break;
        case '\t':
            shortesc = "\\t";
            break;
        }
        bool raw_ok = cp >= 0x20 && cp != '"' && cp != '\\';
        if (mode == 0 && raw_ok) {
            memcpy(doc + o, data + i, k);
            o += k;
        } else if (mode == 1 && shortesc != NULL) {
            memcpy(doc + o, shortesc, 2);
            o += 2;
        } else {
            const char *h = hex + ((mode & 1) ? 16 : 0);
            uint32_t units[2];
            int nu = 0;
            if (cp >= 0x10000) {
                units[nu++] = 0xD800 + ((cp - 0x10000) >> 10);
                units[nu++] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
            } else {
                units[nu++] = cp;
            }
            for (int u = 0; u < nu; u++) {
                doc[o++] = '\\';
                doc[o++] = 'u';
                for (int s = 12; s >= 0; s -= 4)
                    doc[o++] = (unsigned char)h[(units[u] >> s) & 0xF];
            }
        }
        i += k;
    }
    const char *tail = (salt & 2) ? "\",\"room\":\"later\"}\n" : "\"}";
    memcpy(doc + o, tail, strlen(tail));
    o += strlen(tail);
    CHECK(o <= cap);

    struct json_error e;
    CHECK(json_validate((const char *)doc, o, &e));
    char *out = malloc(size > 0 ? size : 1);
    CHECK(out != NULL);
    long got = json_object_get_string((const char *)doc, o, "room", out, size);
    CHECK(got == (long)size);
    CHECK(size == 0 || memcmp(out, data, size) == 0);
    free(out);
    free(doc);
}

/* ------------------------------------------------------------ entry point */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_error e = {0, NULL};
    bool ok = json_validate((const char *)data, size, &e);
    if (!ok) {
        CHECK(e.msg != NULL);
        CHECK(e.offset <= size);
    }
    CHECK(json_validate((const char *)data, size, NULL) == ok);

    struct scratch sc;
    sc.key = malloc(size + 1);
    sc.val = malloc(size + 1);
    sc.first_key = malloc(size + 1);
    sc.last_key = malloc(size + 1);
    CHECK(sc.key && sc.val && sc.first_key && sc.last_key);

    /* 1: the reference parser agrees on validity. */
    struct ref r;
    CHECK(ref_parse(data, size, NULL, 0, &sc, &r) == ok);

    /* 2: surrounding whitespace changes nothing. */
    CHECK(validate_copy((const unsigned char *)" ", 1, data, size, (const unsigned char *)"\n", 1,
                        NULL) == ok);

    /* Lookups never misbehave, even on documents the validator rejected. */
    char small[8];
    long any = json_object_get_string((const char *)data, size, "room", small, sizeof(small));
    CHECK(any >= JSON_LONE_SURROGATE && any <= (long)sizeof(small));

    if (ok) {
        /* 3: nesting one level deeper. */
        struct json_error e2;
        bool in_array = validate_copy((const unsigned char *)"[", 1, data, size,
                                      (const unsigned char *)"]", 1, &e2);
        bool in_object = validate_copy((const unsigned char *)"{\"k\":", 5, data, size,
                                       (const unsigned char *)"}", 1, NULL);
        if (r.max_depth_seen < JSON_MAX_DEPTH) {
            CHECK(in_array && in_object);
        } else {
            CHECK(!in_array && !in_object && strcmp(e2.msg, "too deep") == 0);
        }

        /* 4: prefixes; try a few cut points. */
        size_t first = 0, end = size;
        while (first < size && is_ws(data[first]))
            first++;
        while (end > 0 && is_ws(data[end - 1]))
            end--;
        bool number = data[first] == '-' || (data[first] >= '0' && data[first] <= '9');
        size_t cuts[4] = {size - 1, size / 2, end > 0 ? end - 1 : 0, (size * 7) / 8};
        for (int c = 0; c < 4; c++) {
            size_t cut = cuts[c];
            if (cut >= size)
                continue;
            struct json_error ec;
            /* an exact-size copy, so reading data[cut] would be caught */
            if (validate_copy(NULL, 0, data, cut, NULL, 0, &ec)) {
                CHECK(cut >= end || (number && cut > first));
            } else {
                CHECK(ec.offset == cut);
                CHECK(strcmp(ec.msg, cut <= first ? "empty input" : "unexpected end") == 0);
            }
        }

        /* 1 again: lookups agree with the reference. */
        static const char *const names[] = {"room", "a", ""};
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            check_lookup(data, size, (const unsigned char *)names[k], strlen(names[k]), &sc);
        if (r.have_first_key) {
            /* the last name makes the lookup skip every other member's value */
            unsigned char first_name[64], last_name[64];
            size_t nf = r.first_key_len < sizeof(first_name) ? r.first_key_len : 0;
            size_t nl = r.last_key_len < sizeof(last_name) ? r.last_key_len : 0;
            memcpy(first_name, r.first_key, nf);
            memcpy(last_name, r.last_key, nl);
            if (nf > 0)
                check_lookup(data, size, first_name, nf, &sc);
            if (nl > 0)
                check_lookup(data, size, last_name, nl, &sc);
        }
    } else {
        /* A rejected document must also fail the reference with a lookup name. */
        CHECK(!ref_parse(data, size, (const unsigned char *)"room", 4, &sc, &r));
    }

    /* 5: round trip of the raw input as a string value. */
    size_t i = 0;
    uint32_t cp;
    while (i < size) {
        size_t k = ref_utf8_char(data + i, size - i, &cp);
        if (k == 0)
            break;
        i += k;
    }
    if (i == size)
        check_round_trip(data, size);

    free(sc.key);
    free(sc.val);
    free(sc.first_key);
    free(sc.last_key);
    return 0;
}
