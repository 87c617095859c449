/*
 * Unit tests for the strict JSON validator and json_object_get_string.
 *
 * Table-driven: every table entry is one document with its expected outcome
 * (for invalid ones, the exact error message and, where given, the offset).
 * Each vector runs twice: from an exact-size heap copy (so ASan reports any
 * over-read) and from a copy placed right before a PROT_NONE page (so a plain
 * build faults on one). On top of the tables, exhaustive loops check every
 * single byte, every escape letter, every \uXXXX value and every short UTF-8
 * sequence against independent reference rules, and property checks run
 * over all valid vectors (prefixes, whitespace wrapping, nesting).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "json.h"

#define NO_OFFSET SIZE_MAX

struct vec {
    const char *s;
    size_t len;
};

struct bad {
    const char *s;
    size_t len;
    const char *msg;
    size_t offset; /* NO_OFFSET: not checked (unless implied by msg) */
};

/* sizeof, not strlen: some vectors contain NUL bytes on purpose. */
#define V(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }
#define B(lit, m)                                                                                  \
    {                                                                                              \
        lit, sizeof(lit) - 1, m, NO_OFFSET                                                         \
    }
#define BA(lit, m, at)                                                                             \
    {                                                                                              \
        lit, sizeof(lit) - 1, m, at                                                                \
    }
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ harness */

/* Printable form of a vector for failure messages. */
static const char *show(const char *s, size_t len)
{
    static char out[256];
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < sizeof(out); i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7F && ch != '\\')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02X", ch);
    }
    if (o + 8 >= sizeof(out))
        o += (size_t)snprintf(out + o, sizeof(out) - o, "...");
    out[o] = '\0';
    return out;
}

/*
 * A mapping whose last readable byte is immediately followed by a PROT_NONE
 * page. Kept across calls and grown on demand so the exhaustive loops stay
 * cheap.
 */
static unsigned char *guard_base;
static size_t guard_size; /* readable bytes */
static size_t page_size;

static const char *guarded(const char *s, size_t len)
{
    if (page_size == 0)
        page_size = (size_t)sysconf(_SC_PAGESIZE);
    if (len > guard_size) {
        if (guard_base != NULL)
            assert_int_equal(munmap(guard_base, guard_size + page_size), 0);
        size_t readable = (len + page_size - 1) / page_size * page_size;
        if (readable == 0)
            readable = page_size;
        void *m = mmap(NULL, readable + page_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(m != MAP_FAILED);
        guard_base = m;
        guard_size = readable;
        assert_int_equal(mprotect(guard_base + readable, page_size, PROT_NONE), 0);
    }
    unsigned char *dst = guard_base + guard_size - len;
    if (len > 0)
        memcpy(dst, s, len);
    return (const char *)dst;
}

/* Exact-size heap copy: one byte past the end is an ASan error. */
static char *heap_copy(const char *s, size_t len)
{
    char *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    if (len > 0)
        memcpy(p, s, len);
    return p;
}

static bool validate_everywhere(const char *s, size_t len, struct json_error *e)
{
    struct json_error e1 = {NO_OFFSET, NULL}, e2 = {NO_OFFSET, NULL};
    char *h = heap_copy(s, len);
    bool r1 = json_validate(h, len, &e1);
    bool r2 = json_validate(guarded(s, len), len, &e2);
    bool r3 = json_validate(h, len, NULL);
    free(h);
    if (r1 != r2 || r1 != r3 || (!r1 && (e1.offset != e2.offset || e1.msg != e2.msg)))
        fail_msg("inconsistent results for \"%s\"", show(s, len));
    if (e != NULL)
        *e = e1;
    return r1;
}

static void expect_valid(const char *s, size_t len, const char *table, size_t idx)
{
    struct json_error e = {NO_OFFSET, NULL};
    if (!validate_everywhere(s, len, &e))
        fail_msg("%s[%zu] \"%s\" should be valid, got \"%s\" at %zu", table, idx, show(s, len),
                 e.msg ? e.msg : "(null)", e.offset);
}

static void expect_invalid(const char *s, size_t len, const char *msg, size_t offset,
                           const char *table, size_t idx)
{
    struct json_error e = {NO_OFFSET, NULL};
    if (validate_everywhere(s, len, &e))
        fail_msg("%s[%zu] \"%s\" should be invalid", table, idx, show(s, len));
    if (e.msg == NULL || e.offset > len)
        fail_msg("%s[%zu] \"%s\": bad error report", table, idx, show(s, len));
    /* Running out of input is always reported at the end of the input. */
    if (offset == NO_OFFSET && msg != NULL &&
        (strcmp(msg, "unexpected end") == 0 || strcmp(msg, "empty input") == 0))
        offset = len;
    if ((msg != NULL && strcmp(e.msg, msg) != 0) || (offset != NO_OFFSET && e.offset != offset))
        fail_msg("%s[%zu] \"%s\": expected \"%s\" at %zu, got \"%s\" at %zu", table, idx,
                 show(s, len), msg ? msg : "*", offset, e.msg, e.offset);
}

static void check_valid_table(const struct vec *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        expect_valid(t[i].s, t[i].len, name, i);
}

static void check_invalid_table(const struct bad *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        expect_invalid(t[i].s, t[i].len, t[i].msg, t[i].offset, name, i);
}

#define CHECK_VALID(t)   check_valid_table(t, N(t), #t)
#define CHECK_INVALID(t) check_invalid_table(t, N(t), #t)

/* ------------------------------------------------------------ numbers */

static const struct vec numbers_valid[] = {
    V("0"),
    V("-0"),
    V("1"),
    V("-1"),
    V("9"),
    V("10"),
    V("100"),
    V("123456789"),
    V("-123456789"),
    V("0.0"),
    V("0.5"),
    V("-0.5"),
    V("1.0"),
    V("10.01"),
    V("0.00"),
    V("3.141592653589793"),
    V("0.000000000000001"),
    V("1e1"),
    V("1E1"),
    V("1e+1"),
    V("1e-1"),
    V("1E+10"),
    V("1E-10"),
    V("0e0"),
    V("0E0"),
    V("-0e-0"),
    V("0.0e0"),
    V("1e00"),
    V("1e-00"),
    V("1.5e300"),
    V("1e999"),
    V("-1e-999"),
    V("1.0E+2"),
    V("2.2250738585072014e-308"),
    V("1.7976931348623157e308"),
    V("-9223372036854775808"),
    V("18446744073709551616"),
    V("123456789012345678901234567890123456789012345678901234567890"),
    V("[0]"),
    V("[-0]"),
    V("[0,1]"),
    V("[1e5,-2.5E-3]"),
    V("{\"a\":0}"),
    V("{\"a\":-0.0e+0}"),
    V("[0.1,0.2,0.3]"),
    V("[-1]"),
    V("[1e1]"),
    V("[0e+0]"),
    V("{\"n\":12.5e-7}"),
};

static const struct bad numbers_invalid[] = {
    BA("01", "leading zero", 0),
    BA("-01", "leading zero", 1),
    B("00", "leading zero"),
    B("000", "leading zero"),
    B("0123", "leading zero"),
    B("-00", "leading zero"),
    BA("[01]", "leading zero", 1),
    B("00.5", "leading zero"),
    B("01.5", "leading zero"),
    B("01e1", "leading zero"),
    BA("+1", "unexpected character", 0),
    B("+0", "unexpected character"),
    B(".5", "unexpected character"),
    B("[.5]", "unexpected character"),
    BA("-.5", "invalid number", 1),
    B("1.", "unexpected end"),
    BA("[1.]", "invalid number", 3),
    BA("1.e5", "invalid number", 2),
    B("0.e1", "invalid number"),
    B("1e", "unexpected end"),
    B("[1e]", "invalid number"),
    B("1e+", "unexpected end"),
    B("1e-", "unexpected end"),
    B("[1e+]", "invalid number"),
    B("1E", "unexpected end"),
    B("1.5e", "unexpected end"),
    B("-", "unexpected end"),
    B("[-]", "invalid number"),
    B("--1", "invalid number"),
    B("-+1", "invalid number"),
    B("- 1", "invalid number"),
    B("1e++1", "invalid number"),
    B("1ee1", "invalid number"),
    B("1e.5", "invalid number"),
    BA("1e5.5", "trailing garbage", 3),
    B("1.5.5", "trailing garbage"),
    BA("0x10", "trailing garbage", 1),
    BA("[0x10]", "missing comma", 2),
    B("0X1", "trailing garbage"),
    B("NaN", "unexpected character"),
    B("-NaN", "invalid number"),
    B("nan", "invalid literal"),
    B("Infinity", "unexpected character"),
    B("-Infinity", "invalid number"),
    B("[Infinity]", "unexpected character"),
    B("inf", "unexpected character"),
    B("1_000", "trailing garbage"),
    B("1,000", "trailing garbage"),
    B("1 2", "trailing garbage"),
    B("[1 2]", "missing comma"),
    B("\xD9\xA3", "unexpected character"), /* ARABIC-INDIC DIGIT THREE */
    B("1\0", "trailing garbage"),
    B("{\"a\":01}", "leading zero"),
    B("{\"a\":-}", "invalid number"),
    B("{\"a\":1.}", "invalid number"),
    B("[1.5e]", "invalid number"),
    B("1.0e-", "unexpected end"),
    B("-a", "invalid number"),
    B("2.", "unexpected end"),
    B("1f", "trailing garbage"),
};

static void test_numbers_valid(void **state)
{
    (void)state;
    CHECK_VALID(numbers_valid);
}

static void test_numbers_invalid(void **state)
{
    (void)state;
    CHECK_INVALID(numbers_invalid);
}

/* ------------------------------------------------------------ literals */

static const struct vec literals_valid[] = {
    V("true"),   V("false"),        V("null"),   V("[true,false,null]"),
    V(" null "), V("{\"a\":true}"), V("[null]"), V("{\"t\":false,\"n\":null}"),
};

static const struct bad literals_invalid[] = {
    B("True", "unexpected character"),
    B("TRUE", "unexpected character"),
    B("False", "unexpected character"),
    B("NULL", "unexpected character"),
    B("None", "unexpected character"),
    B("undefined", "unexpected character"),
    B("nul", "unexpected end"),
    B("tru", "unexpected end"),
    B("fals", "unexpected end"),
    B("t", "unexpected end"),
    B("n", "unexpected end"),
    B("f", "unexpected end"),
    B("truee", "trailing garbage"),
    B("nulll", "trailing garbage"),
    BA("[nul]", "invalid literal", 1),
    B("[truefalse]", "missing comma"),
    B("nil", "invalid literal"),
    B("tRue", "invalid literal"),
    B("[t rue]", "invalid literal"),
    B("fa lse", "invalid literal"),
    B("true false", "trailing garbage"),
    B("nULL", "invalid literal"),
    B("falsy", "invalid literal"),
    B("[tru", "unexpected end"),
    B("{\"a\":nul}", "invalid literal"),
    B("[True]", "unexpected character"),
};

static void test_literals(void **state)
{
    (void)state;
    CHECK_VALID(literals_valid);
    CHECK_INVALID(literals_invalid);
}

/* ------------------------------------------------------------ strings and escapes */

static const struct vec strings_valid[] = {
    V("\"\""),
    V("\"a\""),
    V("\"hello world\""),
    V("\"\\\"\""),
    V("\"\\\\\""),
    V("\"\\/\""),
    V("\"\\b\""),
    V("\"\\f\""),
    V("\"\\n\""),
    V("\"\\r\""),
    V("\"\\t\""),
    V("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""),
    V("\"\\u0000\""),
    V("\"\\u0041\""),
    V("\"\\u00e9\""),
    V("\"\\u00E9\""),
    V("\"\\uFFFF\""),
    V("\"\\uffff\""),
    V("\"\\uaBcD\""),
    V("\"\\u20AC\""),
    V("\"\\u005C\""),
    V("\"\\u0022\""),
    V("\"\\u001f\""),
    V("\"\\uD7FF\""),
    V("\"\\uE000\""),
    V("\"/\""),
    V("\"'\""),
    V("\"\x7F\""), /* DEL is not a control character for RFC 8259 */
    V("\" \""),
    V("\"\\\\u0041\""),
    V("\"a\\nb\""),
    V("\"\\\\\\\\\""),
    V("\"{}[]:,\""),
    V("\"true\""),
    V("\"// not a comment\""),
    V("[\"a\",\"b\"]"),
    V("{\"\":\"\"}"),
    V("\"\\u0123\\u4567\\u89ab\\ucdef\""),
    V("\"\\u0123\\u4567\\u89AB\\uCDEF\""),
    V("\"\\n\\n\\n\""),
    V("\"tab\\there\""),
    V("\"~!@#$%^&*()_+-=`|;'<>?,.\""),
};

static const struct bad strings_invalid[] = {
    B("\"abc", "unexpected end"),
    B("\"", "unexpected end"),
    B("\"\\", "unexpected end"),
    B("\"\\\"", "unexpected end"),
    B("[\"a]", "unexpected end"),
    B("'abc'", "unexpected character"),
    BA("\"\\x41\"", "invalid escape", 1),
    B("\"\\a\"", "invalid escape"),
    B("\"\\v\"", "invalid escape"),
    B("\"\\0\"", "invalid escape"),
    B("\"\\'\"", "invalid escape"),
    B("\"\\U0041\"", "invalid escape"),
    B("\"\\e\"", "invalid escape"),
    B("\"\\ \"", "invalid escape"),
    B("\"\\N\"", "invalid escape"),
    B("\"\\B\"", "invalid escape"),
    B("\"\\\xC3\xA9\"", "invalid escape"),
    BA("\"ab\\u\"", "invalid unicode escape", 3),
    B("\"\\u12\"", "invalid unicode escape"),
    B("\"\\u123\"", "invalid unicode escape"),
    B("\"\\u12G4\"", "invalid unicode escape"),
    B("\"\\u-123\"", "invalid unicode escape"),
    B("\"\\u 123\"", "invalid unicode escape"),
    B("\"\\uZZZZ\"", "invalid unicode escape"),
    B("\"\\u+123\"", "invalid unicode escape"),
    B("\"\\u0x12\"", "invalid unicode escape"),
    B("\"\\u12", "unexpected end"),
    B("\"\\u", "unexpected end"),
    BA("\"\x01\"", "control character in string", 1),
    B("\"\x1F\"", "control character in string"),
    B("\"\t\"", "control character in string"),
    B("\"\n\"", "control character in string"),
    B("\"\r\"", "control character in string"),
    BA("\"ab\0\"", "control character in string", 3),
    B("\"\b\"", "control character in string"),
    B("\"\f\"", "control character in string"),
    B("[\"line\nbreak\"]", "control character in string"),
    B("\"a\"b\"", "trailing garbage"),
    B("abc", "unexpected character"),
    B("\"\\\\\\\"", "unexpected end"),
    B("[\"a\\\"]", "unexpected end"),
    B("{\"a\\q\":1}", "invalid escape"),
    B("{\"a\t\":1}", "control character in string"),
    B("\"\\u00\"", "invalid unicode escape"),
    B("\"\\uu0041\"", "invalid unicode escape"),
    B("\"\\u00G0\"", "invalid unicode escape"),
};

static void test_strings_valid(void **state)
{
    (void)state;
    CHECK_VALID(strings_valid);
}

static void test_strings_invalid(void **state)
{
    (void)state;
    CHECK_INVALID(strings_invalid);
}

/* ------------------------------------------------------------ UTF-8 */

static const struct vec utf8_valid[] = {
    V("\"\xC2\x80\""),         /* U+0080, smallest 2-byte */
    V("\"\xC3\xA9\""),         /* e acute */
    V("\"\xDF\xBF\""),         /* U+07FF, largest 2-byte */
    V("\"\xE0\xA0\x80\""),     /* U+0800, smallest 3-byte */
    V("\"\xE2\x82\xAC\""),     /* euro sign */
    V("\"\xED\x9F\xBF\""),     /* U+D7FF, just below surrogates */
    V("\"\xEE\x80\x80\""),     /* U+E000, just above surrogates */
    V("\"\xEF\xBF\xBF\""),     /* U+FFFF */
    V("\"\xEF\xBF\xBE\""),     /* U+FFFE, a noncharacter but valid */
    V("\"\xEF\xB7\x90\""),     /* U+FDD0, ditto */
    V("\"\xEF\xBB\xBF\""),     /* a BOM inside a string is just a character */
    V("\"\xF0\x90\x80\x80\""), /* U+10000, smallest 4-byte */
    V("\"\xF0\x9F\x98\x80\""), /* grinning face */
    V("\"\xF1\x80\x80\x80\""), /* U+40000 */
    V("\"\xF3\xBF\xBF\xBF\""), /* U+FFFFF */
    V("\"\xF4\x80\x80\x80\""), /* U+100000 */
    V("\"\xF4\x8F\xBF\xBF\""), /* U+10FFFF, largest */
    V("\"\xE1\x80\x80\""),     /* E1 lead, low second byte */
    V("\"\xEC\xBF\xBF\""),     /* EC lead, high second byte */
    V("\"\xED\x80\x80\""),     /* U+D000 */
    V("\"\xC2\xA0\""),         /* NBSP inside a string */
    V("\"h\xC3\xA9llo w\xC3\xB6rld \xE2\x82\xAC \xF0\x9F\x98\x80\""),
    V("{\"\xC3\xA9t\xC3\xA9\":\"\xE6\x97\xA5\xE6\x9C\xAC\"}"),
    V("[\"\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82\"]"),
    V("\"\xE2\x80\xA8\xE2\x80\xA9\""), /* LS, PS: fine in JSON */
    V("\"\xC2\x85\""),                 /* NEL: a C1 control, allowed unescaped */
    V("\"\xC2\x9F\""),
    V("\"a\xC3\xA9"
      "b\xE2\x82\xAC"
      "c\xF0\x9F\x98\x80"
      "d\""),
};

static const struct bad utf8_invalid[] = {
    BA("\"\x80\"", "invalid utf-8", 1), /* stray continuation bytes */
    B("\"\xBF\"", "invalid utf-8"),
    B("\"\x80\x80\"", "invalid utf-8"),
    BA("\"a\xC3\xA9\xA9\"", "invalid utf-8", 4),
    BA("\"\xC0\x80\"", "invalid utf-8", 1), /* overlong NUL */
    B("\"\xC0\xAF\"", "invalid utf-8"),     /* overlong '/' */
    B("\"\xC1\xBF\"", "invalid utf-8"),
    B("\"\xC1\x81\"", "invalid utf-8"),
    B("\"\xE0\x80\x80\"", "invalid utf-8"), /* overlong 3-byte */
    B("\"\xE0\x80\xAF\"", "invalid utf-8"),
    B("\"\xE0\x9F\xBF\"", "invalid utf-8"),
    B("\"\xF0\x80\x80\x80\"", "invalid utf-8"), /* overlong 4-byte */
    B("\"\xF0\x80\x80\xAF\"", "invalid utf-8"),
    B("\"\xF0\x8F\xBF\xBF\"", "invalid utf-8"),
    BA("\"\xED\xA0\x80\"", "invalid utf-8", 1), /* encoded surrogates */
    B("\"\xED\xAD\xBF\"", "invalid utf-8"),
    B("\"\xED\xAE\x80\"", "invalid utf-8"),
    B("\"\xED\xB0\x80\"", "invalid utf-8"),
    B("\"\xED\xBF\xBF\"", "invalid utf-8"),
    B("\"\xED\xA0\x80\xED\xB0\x80\"", "invalid utf-8"), /* CESU-8 pair */
    B("\"\xF4\x90\x80\x80\"", "invalid utf-8"),         /* U+110000 */
    B("\"\xF4\xBF\xBF\xBF\"", "invalid utf-8"),
    B("\"\xF5\x80\x80\x80\"", "invalid utf-8"), /* F5..FF never appear */
    B("\"\xF7\xBF\xBF\xBF\"", "invalid utf-8"),
    B("\"\xF8\x88\x80\x80\x80\"", "invalid utf-8"),
    B("\"\xFC\x84\x80\x80\x80\x80\"", "invalid utf-8"),
    B("\"\xFE\"", "invalid utf-8"),
    B("\"\xFF\"", "invalid utf-8"),
    B("\"\xFE\xFF\"", "invalid utf-8"),
    BA("\"\xC3\"", "invalid utf-8", 1), /* truncated before the closing quote */
    B("\"\xE2\x82\"", "invalid utf-8"),
    B("\"\xF0\x9F\x98\"", "invalid utf-8"),
    B("\"\xE2\"", "invalid utf-8"),
    B("\"\xF0\"", "invalid utf-8"),
    B("\"\xF0\x9F\"", "invalid utf-8"),
    B("\"\xC3"
      "A\"",
      "invalid utf-8"), /* bad continuation */
    B("\"\xE2\x28\xA1\"", "invalid utf-8"),
    B("\"\xE2\x82\x28\"", "invalid utf-8"),
    B("\"\xF0\x28\x8C\xBC\"", "invalid utf-8"),
    B("\"\xF0\x90\x28\xBC\"", "invalid utf-8"),
    B("\"\xF0\x9F\x98\x28\"", "invalid utf-8"),
    B("\"\xC3\xC3\xA9\"", "invalid utf-8"),
    B("\"\xE2\x82\xE2\x82\xAC\"", "invalid utf-8"),
    B("\"\xC3\x00\"", "invalid utf-8"),
    B("\"\xC3", "unexpected end"), /* truncated by the end of input */
    B("\"\xE2\x82", "unexpected end"),
    B("\"\xF0\x9F\x98", "unexpected end"),
    B("\"\xE0\x80", "invalid utf-8"), /* ill-formed before the end */
    B("{\"\xC0\xAF\":1}", "invalid utf-8"),
    B("\xC3\xA9", "unexpected character"), /* UTF-8 outside any string */
    BA("\xEF\xBB\xBF{}", "byte order mark", 0),
    B("\xEF\xBB\xBF", "byte order mark"),
    B("\xEF\xBB\xBF\"a\"", "byte order mark"),
    BA(" \xEF\xBB\xBF"
       "1",
       "unexpected character", 1),
    B("\xEF\xBB", "unexpected character"),
    B("\xFE\xFF\x00\x31", "unexpected character"), /* UTF-16 BOM */
    B("\xC2\xA0"
      "1",
      "unexpected character"), /* NBSP is not whitespace */
    B("[1,\xC2\xA0"
      "2]",
      "unexpected character"),
};

static void test_utf8_valid(void **state)
{
    (void)state;
    CHECK_VALID(utf8_valid);
}

static void test_utf8_invalid(void **state)
{
    (void)state;
    CHECK_INVALID(utf8_invalid);
}

/* ------------------------------------------------------------ surrogate escapes */

static const struct vec surrogates_valid[] = {
    V("\"\\uD800\\uDC00\""),
    V("\"\\ud800\\udc00\""),
    V("\"\\uD83D\\uDE00\""),
    V("\"\\ud83d\\ude00\""),
    V("\"\\uD83d\\uDe00\""),
    V("\"\\uDBFF\\uDFFF\""),
    V("\"\\uD834\\uDD1E\""),
    V("\"\\uDBFF\\uDC00\""),
    V("\"\\uD800\\uDFFF\""),
    V("\"a\\uD800\\uDC00b\""),
    V("\"\\uD83D\\uDE00\\uD83D\\uDE01\""),
    V("\"\\uD83D\\uDE00\\u0041\""),
    V("{\"\\uD83D\\uDE00\":1}"),
    V("[\"\\uD7FF\\uE000\"]"),
};

/*
 * Lone and mis-ordered surrogate escapes: RFC 8259's grammar takes any four
 * hex digits (section 8.2 only says such strings have no Unicode meaning), and
 * JavaScript's JSON.stringify writes them for a string cut inside a pair.
 */
static const struct vec surrogates_lone[] = {
    V("\"\\uD800\""),
    V("\"\\uDBFF\""),
    V("\"\\uDC00\""),
    V("\"\\uDFFF\""),
    V("\"\\ud83d\""), /* JSON.stringify("\u{1F600}".slice(0, 1)) */
    V("{\"data\":\"\\ud83d\"}"),
    V("\"\\uDC00\\uD800\""), /* mis-ordered */
    V("\"\\uDE00\\uD83D\""),
    V("\"\\uD800\\uD800\""), /* high, high */
    V("\"\\uD800\\uDBFF\""),
    V("\"\\uD800x\""),
    V("\"\\uD800\\n\""),
    V("\"\\uD800\\u0041\""),
    V("\"\\uD800\\uE000\""),
    V("\"\\uD800 \\uDC00\""), /* not immediately */
    V("\"\\uD800\\\\uDC00\""),
    V("\"\\uD800\\uDC00\\uDC00\""),
    V("\"x\\uDC00\""),
    V("{\"\\uD800\":1}"),
    V("[\"\\udfff\"]"),
    V("[\"\\uD800\",\"\\uDC00\"]"),
};

static const struct bad surrogates_invalid[] = {
    /* Raw bytes must still be UTF-8: an encoded surrogate is not. */
    BA("\"\\uD800\xED\xB0\x80\"", "invalid utf-8", 7), /* raw low half after it */
    BA("\"\xED\xA0\xBD\"", "invalid utf-8", 1),
    BA("\"\\uD800\"\"\\uDC00\"", "trailing garbage", 8),
    BA("\"\\uD800\\u\"", "invalid unicode escape", 7),
    B("\"\\uD800\\uDC0\"", "invalid unicode escape"),
    B("\"\\uD800\\uDCZZ\"", "invalid unicode escape"),
    B("\"\\uD800", "unexpected end"),
    B("\"\\uD800\\", "unexpected end"),
    B("\"\\uD800\\u", "unexpected end"),
    B("\"\\uD800\\uDC", "unexpected end"),
    BA("\"\\uD800\\x\"", "invalid escape", 7),
};

static void test_surrogates(void **state)
{
    (void)state;
    CHECK_VALID(surrogates_valid);
    CHECK_VALID(surrogates_lone);
    CHECK_INVALID(surrogates_invalid);
}

/* ------------------------------------------------------------ structure */

static const struct vec structure_valid[] = {
    V("{}"),
    V("[]"),
    V("[ ]"),
    V("{ }"),
    V("[[]]"),
    V("[{}]"),
    V("{\"a\":[]}"),
    V("{\"a\":{}}"),
    V("[1,2,3]"),
    V("{\"a\":1,\"b\":2}"),
    V("{\"a\":1,\"a\":2}"), /* duplicate names: RFC 8259 only says SHOULD be unique */
    V("{\"a\":1,\"a\":1,\"a\":1}"),
    V("{\"\":0}"),
    V("{\"\":0,\"\":1}"),
    V("[[[[[]]]]]"),
    V("[\"a\",{\"b\":[null,true,{\"c\":\"d\"}]}]"),
    V("{\"a\" : 1 , \"b\" : [ 1 , 2 ] }"),
    V("[1,[2,[3]]]"),
    V("{\"a\":{\"b\":{\"c\":{}}}}"),
    V("[[],[],{}]"),
    V("{\"{\":\"}\",\"[\":\"]\"}"),
    V("[\"]\"]"),
    V("[\"\\\"]\"]"),
    V("{\"a\\\"b\":1}"),
    V("[1,\"1\",true,null,{},[]]"),
    V("[[1],[2],[3]]"),
    V("{\"a\":[{\"b\":[{\"c\":[]}]}]}"),
    V("[{},{},{}]"),
    V("{\"x\":null,\"y\":false,\"z\":true}"),
    V("[\"\",\"\",\"\"]"),
    V("{\"a\":\"\"}"),
    V("[-1,-0.5,0,0.5,1]"),
    V("{\"menu\":{\"id\":\"file\",\"popup\":{\"menuitem\":[{\"value\":\"New\"},"
      "{\"value\":\"Open\"}]}}}"),
    V("[[[[[[[[[[\"deep\"]]]]]]]]]]"),
    V("{\"a\":[1,{\"b\":[2,{\"c\":[3]}]}]}"),
    V("[{\"a\":[]},{\"b\":{}}]"),
};

static const struct bad structure_invalid[] = {
    BA("[1,]", "trailing comma", 2),
    BA("[1,2,]", "trailing comma", 4),
    BA("{\"a\":1,}", "trailing comma", 6),
    BA("[1 , ]", "trailing comma", 3),
    B("{\"a\":1 , }", "trailing comma"),
    B("[1,\n]", "trailing comma"),
    B("[[],]", "trailing comma"),
    B("{\"a\":{},}", "trailing comma"),
    BA("[,]", "unexpected character", 1),
    B("[,1]", "unexpected character"),
    BA("{,}", "expected string key", 1),
    BA("[1,,2]", "unexpected character", 3),
    B("{\"a\":1,,\"b\":2}", "expected string key"),
    BA("{\"a\" 1}", "missing colon", 5),
    B("{\"a\"}", "missing colon"),
    B("{\"a\",1}", "missing colon"),
    B("{\"a\"::1}", "unexpected character"),
    B("{\"a\"=1}", "missing colon"),
    B("{\"a\"=>1}", "missing colon"),
    B("{\"a\":1,\"b\"}", "missing colon"),
    BA("[1 2]", "missing comma", 3),
    B("{\"a\":1 \"b\":2}", "missing comma"),
    B("[\"a\" \"b\"]", "missing comma"),
    B("[[] []]", "missing comma"),
    B("[{}{}]", "missing comma"),
    B("[\"a\":1]", "missing comma"),
    B("{\"a\":1:2}", "missing comma"),
    B("[1;2]", "missing comma"),
    B("{a:1}", "expected string key"),
    B("{1:1}", "expected string key"),
    B("{'a':1}", "expected string key"),
    B("{null:1}", "expected string key"),
    B("{\"a\":1,b:2}", "expected string key"),
    B("{[]:1}", "expected string key"),
    B("{{}:1}", "expected string key"),
    B("[", "unexpected end"),
    B("[1", "unexpected end"),
    B("[1,", "unexpected end"),
    B("{", "unexpected end"),
    B("{\"a\"", "unexpected end"),
    B("{\"a\":", "unexpected end"),
    B("{\"a\":1", "unexpected end"),
    B("{\"a\":1,", "unexpected end"),
    B("[[[]]", "unexpected end"),
    B("[\n", "unexpected end"),
    B("{\"a\":[}", "unexpected character"),
    BA("[}", "unexpected character", 1),
    B("{]", "expected string key"),
    BA("[1}", "mismatched bracket", 2),
    B("{\"a\":1]", "mismatched bracket"),
    B("[[1]}", "mismatched bracket"),
    B("{\"a\":[1}}", "mismatched bracket"),
    BA("[]]", "trailing garbage", 2),
    B("{}}", "trailing garbage"),
    B("[][]", "trailing garbage"),
    B("{}{}", "trailing garbage"),
    B("\"a\" \"b\"", "trailing garbage"),
    B("[] x", "trailing garbage"),
    B("{} ,", "trailing garbage"),
    B("null,", "trailing garbage"),
    B("[1]\0", "trailing garbage"),
    B("]", "unexpected character"),
    B("}", "unexpected character"),
    B(":", "unexpected character"),
    B(",", "unexpected character"),
    B(",1", "unexpected character"),
    B("// c\n1", "unexpected character"),
    B("/* c */ 1", "unexpected character"),
    B("[1 /* c */]", "missing comma"),
    B("[1] // x", "trailing garbage"),
    B("# x\n1", "unexpected character"),
    B("['a']", "unexpected character"),
    B("{\"a\":'b'}", "unexpected character"),
    B("(1)", "unexpected character"),
    B("<1>", "unexpected character"),
    B("[1,2", "unexpected end"),
    B("{\"a\":{\"b\":1}", "unexpected end"),
    B("\0", "unexpected character"),
    B("[\0]", "unexpected character"),
    B("{\"a\":1}x", "trailing garbage"),
    B("[1]]", "trailing garbage"),
    B("[1],", "trailing garbage"),
    B("@", "unexpected character"),
    B("[@]", "unexpected character"),
};

static void test_structure_valid(void **state)
{
    (void)state;
    CHECK_VALID(structure_valid);
}

static void test_structure_invalid(void **state)
{
    (void)state;
    CHECK_INVALID(structure_invalid);
}

/* ------------------------------------------------------------ whitespace */

static const struct vec whitespace_valid[] = {
    V(" 1"),
    V("1 "),
    V("\t1\t"),
    V("\n1\n"),
    V("\r1\r"),
    V("\r\n1\r\n"),
    V(" \t\n\r1 \t\n\r"),
    V(" [ 1 , 2 ] "),
    V("{\"a\"\n:\n1}"),
    V("[\t]"),
    V("{\r\n}"),
    V(" \t\n\r{ \t\n\r\"a\" \t\n\r: \t\n\r1 \t\n\r} \t\n\r"),
    V("[\n  1,\n  2\n]\n"),
    V("    \"s\"    "),
    V("\n\n\n\nnull\n\n\n\n"),
    V("[ true , false , null ]"),
    V("{ \"a\" : [ { \"b\" : { } } ] }"),
};

static const struct bad whitespace_invalid[] = {
    BA("", "empty input", 0),
    B(" ", "empty input"),
    B("\t\n\r ", "empty input"),
    B("\n", "empty input"),
    B("\f1", "unexpected character"),
    B("\v1", "unexpected character"),
    B("[1,\f2]", "unexpected character"),
    B("1\f", "trailing garbage"),
    B("[1\v]", "missing comma"),
    B("\x1C"
      "1",
      "unexpected character"),
    B("1\0 ", "trailing garbage"),
    B("\xE3\x80\x80"
      "1",
      "unexpected character"), /* ideographic space */
    B("\xC2\x85"
      "1",
      "unexpected character"), /* NEL */
};

static void test_whitespace(void **state)
{
    (void)state;
    CHECK_VALID(whitespace_valid);
    CHECK_INVALID(whitespace_invalid);
}

/* ------------------------------------------------------------ top level */

static const struct vec toplevel_valid[] = {
    V("1"),    V("\"x\""), V("null"), V("true"), V("false"), V("-0.5e-3"),
    V("\"\""), V("0"),     V("{}"),   V("[]"),   V(" 42 "),  V("\"\\u0000\""),
};

static void test_toplevel_scalars(void **state)
{
    (void)state;
    CHECK_VALID(toplevel_valid);
}

/* ------------------------------------------------------------ nesting depth */

/* n nested containers; kinds[i % strlen(kinds)] picks '[' or '{' per level. */
static char *nested(size_t n, const char *kinds, size_t *out_len)
{
    size_t k = strlen(kinds), cap = n * 6 + 16, o = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        if (kinds[i % k] == '{') {
            memcpy(s + o, "{\"a\":", 5);
            o += 5;
        } else {
            s[o++] = '[';
        }
    }
    s[o++] = '1';
    for (size_t i = n; i-- > 0;)
        s[o++] = kinds[i % k] == '{' ? '}' : ']';
    *out_len = o;
    return s;
}

static void test_depth(void **state)
{
    (void)state;
    static const char *const kinds[] = {"[", "{", "[{", "{[", "[[{", "{{["};
    for (size_t k = 0; k < N(kinds); k++) {
        size_t len;
        char *s = nested(JSON_MAX_DEPTH, kinds[k], &len);
        expect_valid(s, len, "depth max", k);
        free(s);

        s = nested(JSON_MAX_DEPTH + 1, kinds[k], &len);
        struct json_error e;
        assert_false(validate_everywhere(s, len, &e));
        assert_string_equal(e.msg, "too deep");
        /* The offending bracket is the last opening one. */
        size_t last_open = 0;
        for (size_t i = 0; i < len; i++)
            if (s[i] == '[' || s[i] == '{')
                last_open = i;
        assert_int_equal(e.offset, last_open);
        free(s);
    }

    /* Empty containers count as a level too. */
    char buf[2 * (JSON_MAX_DEPTH + 1)];
    for (size_t n = JSON_MAX_DEPTH; n <= JSON_MAX_DEPTH + 1; n++) {
        memset(buf, '[', n);
        memset(buf + n, ']', n);
        struct json_error e;
        bool ok = validate_everywhere(buf, 2 * n, &e);
        assert_int_equal(ok, n <= JSON_MAX_DEPTH);
        if (!ok) {
            assert_string_equal(e.msg, "too deep");
            assert_int_equal(e.offset, JSON_MAX_DEPTH);
        }
        buf[n - 1] = '{';
        buf[n] = '}';
        ok = validate_everywhere(buf, 2 * n, &e);
        assert_int_equal(ok, n <= JSON_MAX_DEPTH);
    }

    /* Deep but unterminated, and far deeper than the limit. */
    memset(buf, '[', JSON_MAX_DEPTH);
    expect_invalid(buf, JSON_MAX_DEPTH, "unexpected end", NO_OFFSET, "depth unterminated", 0);
    size_t huge = 1u << 20;
    char *deep = malloc(huge);
    assert_non_null(deep);
    memset(deep, '[', huge);
    expect_invalid(deep, huge, "too deep", JSON_MAX_DEPTH, "depth huge", 0);
    free(deep);

    /* Going up and down repeatedly must not leak depth. */
    size_t len = 0, cap = 1000 * (2 * 100 + 1) + 2;
    char *wide = malloc(cap);
    assert_non_null(wide);
    wide[len++] = '[';
    for (int r = 0; r < 1000; r++) {
        if (r > 0)
            wide[len++] = ',';
        memset(wide + len, '[', 100);
        memset(wide + len + 100, ']', 100);
        len += 200;
    }
    wide[len++] = ']';
    expect_valid(wide, len, "depth wide", 0);
    free(wide);
}

/* ------------------------------------------------------------ big documents */

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void test_big_documents(void **state)
{
    (void)state;
    char tmp[160];

    /* An array of 10000 records. */
    struct sbuf b = {NULL, 0, 0};
    sb_str(&b, "[");
    for (int i = 0; i < 10000; i++) {
        snprintf(tmp, sizeof(tmp),
                 "%s{\"id\":%d,\"name\":\"user \\u00e9 %d\",\"tags\":[\"a\",\"b\"],"
                 "\"score\":%d.5e-3,\"ok\":%s,\"x\":null}",
                 i ? ",\n" : "", i, i, i, i % 2 ? "true" : "false");
        sb_str(&b, tmp);
    }
    sb_str(&b, "]");
    expect_valid(b.p, b.len, "big array", 0);
    assert_int_equal(json_object_get_string(b.p, b.len, "name", tmp, sizeof(tmp)), -1);

    /* The same with a trailing comma right before the end. */
    b.p[b.len - 1] = ',';
    sb_str(&b, "]");
    expect_invalid(b.p, b.len, "trailing comma", b.len - 2, "big array", 1);
    /* ...and truncated. */
    expect_invalid(b.p, b.len - 2, "unexpected end", NO_OFFSET, "big array", 2);
    free(b.p);

    /* An object with 5000 members; the wanted one is last. */
    b = (struct sbuf){NULL, 0, 0};
    sb_str(&b, "{");
    for (int i = 0; i < 5000; i++) {
        snprintf(tmp, sizeof(tmp), "\"k%d\":{\"room\":\"no\",\"v\":[%d,\"room\"]},", i, i);
        sb_str(&b, tmp);
    }
    sb_str(&b, "\"room\":\"found\"}");
    expect_valid(b.p, b.len, "big object", 0);
    char out[16];
    assert_int_equal(json_object_get_string(b.p, b.len, "room", out, sizeof(out)), 5);
    assert_memory_equal(out, "found", 5);
    assert_int_equal(json_object_get_string(guarded(b.p, b.len), b.len, "room", out, sizeof(out)),
                     5);
    free(b.p);

    /* A 1 MiB string, plain and full of escapes and multi-byte characters. */
    size_t n = 1u << 20;
    char *s = malloc(n + 2);
    assert_non_null(s);
    s[0] = '"';
    memset(s + 1, 'a', n);
    s[n + 1] = '"';
    expect_valid(s, n + 2, "big string", 0);
    for (size_t i = 1; i + 6 <= n + 1; i += 6)
        memcpy(s + i, i % 12 == 1 ? "\\u00e9" : "\xE2\x82\xAC\xC3\xA9n", 6);
    expect_valid(s, n + 2, "big string", 1);
    size_t at = n / 2;
    while (s[at] != 'n') /* an ASCII byte, not part of an escape or sequence */
        at++;
    s[at] = '\x01';
    expect_invalid(s, n + 2, "control character in string", at, "big string", 2);
    free(s);

    /* 200000 numbers. */
    b = (struct sbuf){NULL, 0, 0};
    sb_str(&b, "[");
    for (int i = 0; i < 200000; i++) {
        snprintf(tmp, sizeof(tmp), "%s%d.%de%d", i ? "," : "", i - 100000, i % 10, i % 7 - 3);
        sb_str(&b, tmp);
    }
    sb_str(&b, "]");
    expect_valid(b.p, b.len, "big numbers", 0);
    free(b.p);
}

/* ------------------------------------------------------------ error offsets */

static const struct bad offsets[] = {
    BA("[1,2,3,]", "trailing comma", 6),
    BA("{\"a\":1,\"b\":2,}", "trailing comma", 12),
    BA("  [1,\n  2,\n]", "trailing comma", 9),
    BA("{\"a\":1 \"b\":2}", "missing comma", 7),
    BA("{\"key\" 1}", "missing colon", 7),
    BA("[\"ok\", \"bad\x01\"]", "control character in string", 11),
    BA("[\"ok\", \"\\q\"]", "invalid escape", 8),
    BA("[\"ok\", \"\\u12x4\"]", "invalid unicode escape", 8),
    BA("[\"\\uDE00\", \"\\uD800\\u12x4\"]", "invalid unicode escape", 18),
    BA("[\"ok\", \"ab\xC0\xAF\"]", "invalid utf-8", 10),
    BA("[\"ok\", \"ab\xE2\x82\x28\"]", "invalid utf-8", 10),
    BA("[1, 02]", "leading zero", 4),
    BA("[1, -02]", "leading zero", 5),
    BA("[1, 2.x]", "invalid number", 6),
    BA("[1, 2e]", "invalid number", 6),
    BA("[1, nul]", "invalid literal", 4),
    BA("[1, truth]", "invalid literal", 4),
    BA("{\"a\":[1}", "mismatched bracket", 7),
    BA("[1] [2]", "trailing garbage", 4),
    BA("[1, +2]", "unexpected character", 4),
    BA("{\"a\":1, 2:3}", "expected string key", 8),
    BA("[1, 2", "unexpected end", 5),
    BA("   ", "empty input", 3),
    BA("\xEF\xBB\xBF[]", "byte order mark", 0),
    BA("\"\xF4\x90\x80\x80\"", "invalid utf-8", 1),
    BA("\"abc\xED\xA0\x80\"", "invalid utf-8", 4),
};

static void test_error_offsets(void **state)
{
    (void)state;
    CHECK_INVALID(offsets);
}

/* ------------------------------------------------------------ exhaustive checks */

/* Every single byte as a whole document: only the ten digits are JSON. */
static void test_exhaustive_single_byte(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        char s[1] = {(char)c};
        struct json_error e;
        bool ok = validate_everywhere(s, 1, &e);
        assert_int_equal(ok, c >= '0' && c <= '9');
        if (!ok)
            assert_int_equal(e.offset,
                             (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '[' ||
                              c == '{' || c == '"' || c == '-' || c == 't' || c == 'f' || c == 'n')
                                 ? 1
                                 : 0);
    }
}

/* Every byte after a backslash, and every byte raw inside a string. */
static void test_exhaustive_escapes(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        char s[4] = {'"', '\\', (char)c, '"'};
        struct json_error e;
        bool ok = validate_everywhere(s, 4, &e);
        bool want = c && strchr("\"\\/bfnrt", c) != NULL;
        if (ok != want)
            fail_msg("escape \\x%02X: got %d", c, ok);
        if (!ok)
            assert_string_equal(e.msg, c == 'u' ? "invalid unicode escape" : "invalid escape");
    }
    for (int c = 0; c < 0x80; c++) {
        char s[3] = {'"', (char)c, '"'};
        struct json_error e;
        bool ok = validate_everywhere(s, 3, &e);
        if (c == '"')
            assert_string_equal(e.msg, "trailing garbage");
        else if (c == '\\')
            assert_string_equal(e.msg, "unexpected end");
        else if (c < 0x20)
            assert_string_equal(e.msg, "control character in string");
        else
            assert_true(ok);
        assert_int_equal(ok, c >= 0x20 && c != '"' && c != '\\');
    }
}

/* Every \uXXXX value alone (surrogates too), in both letter cases. */
static void test_exhaustive_u_escapes(void **state)
{
    (void)state;
    for (unsigned cp = 0; cp <= 0xFFFF; cp++) {
        for (int upper = 0; upper < 2; upper++) {
            char s[16];
            snprintf(s, sizeof(s), upper ? "\"\\u%04X\"" : "\"\\u%04x\"", cp);
            struct json_error e;
            if (!validate_everywhere(s, 8, &e))
                fail_msg("\\u%04X: %s", cp, e.msg);
        }
    }
    /* Every high surrogate with a boundary low surrogate, and the reverse. */
    for (unsigned hi = 0xD800; hi <= 0xDBFF; hi++) {
        char s[32];
        snprintf(s, sizeof(s), "\"\\u%04X\\uDC00\\u%04x\\uDFFF\"", hi, hi);
        assert_true(validate_everywhere(s, 26, NULL));
        snprintf(s, sizeof(s), "\"\\uDC00\\u%04X\"", hi);
        assert_true(validate_everywhere(s, 14, NULL));
    }
    for (unsigned lo = 0xDC00; lo <= 0xDFFF; lo++) {
        char s[32];
        snprintf(s, sizeof(s), "\"\\uD800\\u%04X\"", lo);
        assert_true(validate_everywhere(s, 14, NULL));
        snprintf(s, sizeof(s), "\"\\u%04X\\uD800\"", lo);
        assert_true(validate_everywhere(s, 14, NULL));
    }
}

/*
 * Reference UTF-8 check written differently from the validator: decode by
 * bit patterns, then reject by code point value (overlong, surrogate, too
 * large) instead of by second-byte ranges.
 */
static bool ref_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned b = s[i], cp, min;
        size_t need;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            need = 2, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            need = 3, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            need = 4, cp = b & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < need)
            return false;
        for (size_t k = 1; k < need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += need;
    }
    return true;
}

/* "<content>" against the reference; content must not contain '"' or '\'. */
static void check_string_content(const unsigned char *content, size_t n)
{
    char s[8];
    bool control = false;
    s[0] = '"';
    memcpy(s + 1, content, n);
    s[n + 1] = '"';
    for (size_t i = 0; i < n; i++)
        if (content[i] < 0x20)
            control = true;
    bool want = !control && ref_utf8(content, n);
    struct json_error e = {0, NULL};
    const char *g = guarded(s, n + 2);
    bool ok = json_validate(g, n + 2, &e);
    if (ok != want)
        fail_msg("utf-8 content \"%s\": got %d, want %d", show(s, n + 2), ok, want);
    if (!ok && !control && strcmp(e.msg, "invalid utf-8") != 0)
        fail_msg("utf-8 content \"%s\": got \"%s\"", show(s, n + 2), e.msg);
}

static bool plain_byte(unsigned b)
{
    return b != '"' && b != '\\';
}

static void test_exhaustive_utf8(void **state)
{
    (void)state;
    unsigned char c[4];
    for (unsigned a = 0; a < 256; a++) {
        if (!plain_byte(a))
            continue;
        c[0] = (unsigned char)a;
        check_string_content(c, 1);
        for (unsigned b = 0; b < 256; b++) {
            if (!plain_byte(b))
                continue;
            c[1] = (unsigned char)b;
            check_string_content(c, 2);
        }
    }
    /* Three bytes, every combination for every non-ASCII first byte. */
    for (unsigned a = 0x80; a < 256; a++)
        for (unsigned b = 0; b < 256; b++)
            for (unsigned d = 0; d < 256; d++) {
                if (!plain_byte(b) || !plain_byte(d))
                    continue;
                c[0] = (unsigned char)a, c[1] = (unsigned char)b, c[2] = (unsigned char)d;
                check_string_content(c, 3);
            }
    /* Four bytes: every first/second pair of 4-byte leads, boundary tails. */
    static const unsigned char tails[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90,
                                          0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xFF};
    for (unsigned a = 0xF0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++)
            for (size_t x = 0; x < N(tails); x++)
                for (size_t y = 0; y < N(tails); y++) {
                    if (!plain_byte(b))
                        continue;
                    c[0] = (unsigned char)a, c[1] = (unsigned char)b;
                    c[2] = tails[x], c[3] = tails[y];
                    check_string_content(c, 4);
                }
}

/* ------------------------------------------------------------ properties */

static bool is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const struct {
    const struct vec *t;
    size_t n;
} all_valid[] = {
    {numbers_valid, N(numbers_valid)},       {literals_valid, N(literals_valid)},
    {strings_valid, N(strings_valid)},       {utf8_valid, N(utf8_valid)},
    {surrogates_valid, N(surrogates_valid)}, {surrogates_lone, N(surrogates_lone)},
    {structure_valid, N(structure_valid)},   {whitespace_valid, N(whitespace_valid)},
    {toplevel_valid, N(toplevel_valid)},
};

static const struct {
    const struct bad *t;
    size_t n;
} all_invalid[] = {
    {numbers_invalid, N(numbers_invalid)},       {literals_invalid, N(literals_invalid)},
    {strings_invalid, N(strings_invalid)},       {utf8_invalid, N(utf8_invalid)},
    {surrogates_invalid, N(surrogates_invalid)}, {structure_invalid, N(structure_invalid)},
    {whitespace_invalid, N(whitespace_invalid)}, {offsets, N(offsets)},
};

/*
 * Every proper prefix of a valid document is either valid itself (only when
 * the cut falls in trailing whitespace or inside a top-level number) or is
 * rejected as running out of input, at its end.
 */
static void test_prefix_property(void **state)
{
    (void)state;
    for (size_t t = 0; t < N(all_valid); t++) {
        for (size_t v = 0; v < all_valid[t].n; v++) {
            const struct vec *x = &all_valid[t].t[v];
            size_t first = 0, end = x->len;
            while (first < x->len && is_json_ws(x->s[first]))
                first++;
            while (end > 0 && is_json_ws(x->s[end - 1]))
                end--;
            bool number = x->s[first] == '-' || (x->s[first] >= '0' && x->s[first] <= '9');
            for (size_t cut = 0; cut < x->len; cut++) {
                struct json_error e;
                bool ok = validate_everywhere(x->s, cut, &e);
                if (ok) {
                    if (!(cut >= end || (number && cut > first)))
                        fail_msg("prefix %zu of \"%s\" accepted", cut, show(x->s, x->len));
                    continue;
                }
                const char *want = cut <= first ? "empty input" : "unexpected end";
                if (strcmp(e.msg, want) != 0 || e.offset != cut)
                    fail_msg("prefix %zu of \"%s\": \"%s\" at %zu", cut, show(x->s, x->len), e.msg,
                             e.offset);
            }
        }
    }
}

/*
 * Wrapping: whitespace around any document never changes validity; a valid
 * document stays valid as an array element or an object member value (the
 * tables stay far below the depth limit).
 */
static void test_wrap_property(void **state)
{
    (void)state;
    char buf[512];
    for (size_t t = 0; t < N(all_valid); t++) {
        for (size_t v = 0; v < all_valid[t].n; v++) {
            const struct vec *x = &all_valid[t].t[v];
            assert_true(x->len + 16 < sizeof(buf));
            buf[0] = ' ';
            memcpy(buf + 1, x->s, x->len);
            buf[x->len + 1] = '\n';
            expect_valid(buf, x->len + 2, "wrap ws", v);
            buf[0] = '[';
            buf[x->len + 1] = ']';
            expect_valid(buf, x->len + 2, "wrap array", v);
            memcpy(buf, "{\"k\":", 5);
            memcpy(buf + 5, x->s, x->len);
            buf[x->len + 5] = '}';
            expect_valid(buf, x->len + 6, "wrap object", v);
            memcpy(buf, "[0,", 3);
            memcpy(buf + 3, x->s, x->len);
            memcpy(buf + 3 + x->len, ",0]", 3);
            expect_valid(buf, x->len + 6, "wrap middle", v);
        }
    }
    for (size_t t = 0; t < N(all_invalid); t++) {
        for (size_t v = 0; v < all_invalid[t].n; v++) {
            const struct bad *x = &all_invalid[t].t[v];
            assert_true(x->len + 16 < sizeof(buf));
            buf[0] = ' ';
            memcpy(buf + 1, x->s, x->len);
            buf[x->len + 1] = '\n';
            if (validate_everywhere(buf, x->len + 2, NULL))
                fail_msg("\" %s\\n\" accepted", show(x->s, x->len));
        }
    }
}

/* ------------------------------------------------------------ json_object_get_string */

/* Looks `name` up in doc (validated first), from the heap and a guard page. */
static long get(const char *doc, const char *name, char *out, size_t cap)
{
    size_t len = strlen(doc);
    if (!validate_everywhere(doc, len, NULL))
        fail_msg("test document \"%s\" is not valid", show(doc, len));
    char *h = heap_copy(doc, len);
    char *out2 = malloc(cap > 0 ? cap : 1);
    assert_non_null(out2);
    long r = json_object_get_string(h, len, name, out, cap);
    long r2 = json_object_get_string(guarded(doc, len), len, name, out2, cap);
    assert_int_equal(r, r2);
    if (r > 0)
        assert_memory_equal(out, out2, (size_t)r);
    free(out2);
    free(h);
    return r;
}

static void expect_get(const char *doc, const char *name, const char *want, size_t want_len)
{
    char out[64];
    memset(out, 'X', sizeof(out));
    long r = get(doc, name, out, sizeof(out));
    if (r != (long)want_len)
        fail_msg("\"%s\" [%s]: got %ld, want %zu", doc, name, r, want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(out[want_len], '\0');
}

static void expect_get_fails(const char *doc, const char *name, long want)
{
    char out[64];
    long r = get(doc, name, out, sizeof(out));
    if (r != want)
        fail_msg("\"%s\" [%s]: got %ld, want %ld", doc, name, r, want);
}

static void test_get_found(void **state)
{
    (void)state;
    expect_get("{\"room\":\"lobby\"}", "room", "lobby", 5);
    expect_get("{\"a\":1,\"room\":\"x\"}", "room", "x", 1);
    expect_get("{\"room\":\"\"}", "room", "", 0);
    expect_get(" { \"a\" : 1 , \"room\" : \"x y\" } ", "room", "x y", 3);
    expect_get("{\n\t\"room\"\r\n:\t\"z\"\n}", "room", "z", 1);
    expect_get("{\"\":\"empty name\"}", "", "empty name", 10);
    expect_get("{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}", "b", "2", 1);
    expect_get("{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}", "c", "3", 1);
    /* first match wins */
    expect_get("{\"room\":\"first\",\"room\":\"second\"}", "room", "first", 5);
    /* values to skip containing every kind of tricky byte */
    expect_get("{\"a\":\"}\\\"],\",\"b\":[1,{\"c\":\"\\\\\"}],\"d\":{\"e\":[[],{}]},"
               "\"f\":-1.5e3,\"g\":true,\"h\":null,\"room\":\"ok\"}",
               "room", "ok", 2);
    expect_get("{\"a\":[\"[\",\"{\",\"\\\"\"],\"room\":\"ok\"}", "room", "ok", 2);
    expect_get("{\"n\":0,\"room\":\"ok\"}", "room", "ok", 2);
    expect_get("{\"n\":0 ,\"room\":\"ok\"}", "room", "ok", 2);
    expect_get("{\"n\":false\n,\"room\":\"ok\"}", "room", "ok", 2);
}

static void test_get_absent(void **state)
{
    (void)state;
    expect_get_fails("{}", "room", -1);
    expect_get_fails("{ }", "room", -1);
    expect_get_fails("{\"a\":\"b\"}", "room", -1);
    expect_get_fails("{\"roo\":\"b\"}", "room", -1);
    expect_get_fails("{\"rooms\":\"b\"}", "room", -1);
    expect_get_fails("{\"Room\":\"b\"}", "room", -1);
    expect_get_fails("{\"room\\u0000\":\"b\"}", "room", -1);
    expect_get_fails("{\"x\":\"room\"}", "room", -1);
    /* a member with the same name in a nested value must not match */
    expect_get_fails("{\"a\":{\"room\":\"x\"}}", "room", -1);
    expect_get_fails("{\"a\":[{\"room\":\"x\"}]}", "room", -1);
    expect_get_fails("{\"a\":[\"room\",\"x\"]}", "room", -1);
    expect_get_fails("{\"a\":{\"b\":{\"room\":\"x\"}},\"c\":[]}", "room", -1);
    expect_get("{\"a\":{\"room\":\"x\"},\"b\":[\"room\"],\"room\":\"y\"}", "room", "y", 1);
    expect_get("{\"a\":{\"room\":\"x\",\"q\":{}},\"room\":\"y\"}", "room", "y", 1);
}

static void test_get_not_string(void **state)
{
    (void)state;
    expect_get_fails("{\"room\":1}", "room", -1);
    expect_get_fails("{\"room\":-0.5e1}", "room", -1);
    expect_get_fails("{\"room\":null}", "room", -1);
    expect_get_fails("{\"room\":true}", "room", -1);
    expect_get_fails("{\"room\":false}", "room", -1);
    expect_get_fails("{\"room\":{}}", "room", -1);
    expect_get_fails("{\"room\":{\"room\":\"x\"}}", "room", -1);
    expect_get_fails("{\"room\":[\"x\"]}", "room", -1);
    /* the first member decides, even when a later one is a string */
    expect_get_fails("{\"room\":1,\"room\":\"b\"}", "room", -1);
}

static void test_get_not_object(void **state)
{
    (void)state;
    expect_get_fails("[\"room\",\"x\"]", "room", -1);
    expect_get_fails("[{\"room\":\"x\"}]", "room", -1);
    expect_get_fails("\"room\"", "room", -1);
    expect_get_fails("1", "room", -1);
    expect_get_fails("null", "room", -1);
    expect_get_fails(" [] ", "room", -1);
    char out[8];
    assert_int_equal(json_object_get_string(NULL, 0, "room", out, sizeof(out)), -1);
    assert_int_equal(json_object_get_string("{\"a\":\"b\"}", 9, NULL, out, sizeof(out)), -1);
    assert_int_equal(json_object_get_string("", 0, "room", out, sizeof(out)), -1);
}

static void test_get_escaped_names(void **state)
{
    (void)state;
    expect_get("{\"r\\u006fom\":\"x\"}", "room", "x", 1);
    expect_get("{\"\\u0072\\u006F\\u006F\\u006D\":\"x\"}", "room", "x", 1);
    expect_get("{\"a\\\"b\":\"q\"}", "a\"b", "q", 1);
    expect_get("{\"a\\\\b\":\"bs\"}", "a\\b", "bs", 2);
    expect_get("{\"a\\/b\":\"sl\"}", "a/b", "sl", 2);
    expect_get("{\"tab\\there\":\"t\"}", "tab\there", "t", 1);
    expect_get("{\"caf\\u00e9\":\"1\"}", "caf\xC3\xA9", "1", 1);
    expect_get("{\"caf\xC3\xA9\":\"2\"}", "caf\xC3\xA9", "2", 1);
    expect_get("{\"\\ud83d\\ude00\":\"smile\"}", "\xF0\x9F\x98\x80", "smile", 5);
    /* a differently escaped duplicate: still the first one wins */
    expect_get("{\"r\\u006fom\":\"a\",\"room\":\"b\"}", "room", "a", 1);
    expect_get_fails("{\"r\\u006fom\":1,\"room\":\"b\"}", "room", -1);
    expect_get_fails("{\"r\\u006f\":\"x\"}", "room", -1);
    expect_get_fails("{\"caf\\u00e9\":\"1\"}", "cafe", -1);
}

/* A value with a lone surrogate escape has no UTF-8 form: it is refused,
 * never altered; a name with one matches no name. */
static void test_get_lone_surrogate(void **state)
{
    (void)state;
    expect_get_fails("{\"room\":\"\\ud83d\"}", "room", JSON_LONE_SURROGATE);
    expect_get_fails("{\"room\":\"\\uDE00\"}", "room", JSON_LONE_SURROGATE);
    expect_get_fails("{\"room\":\"ab\\uDE00\\uD83D\"}", "room", JSON_LONE_SURROGATE);
    expect_get_fails("{\"room\":\"\\uD83D\\uD83D\\uDE00\"}", "room", JSON_LONE_SURROGATE);
    expect_get_fails("{\"room\":\"\\uD83D\\uDE00\\uDE00\"}", "room", JSON_LONE_SURROGATE);
    expect_get_fails("{\"room\":\"\\uD83Dx\"}", "room", JSON_LONE_SURROGATE);
    /* the first member decides, whatever follows */
    expect_get_fails("{\"room\":\"\\uD800\",\"room\":\"ok\"}", "room", JSON_LONE_SURROGATE);
    /* it wins over a value too long for the buffer, wherever it is */
    char out[4];
    assert_int_equal(get("{\"v\":\"abcdefgh\\uDC00\"}", "v", out, sizeof(out)),
                     JSON_LONE_SURROGATE);
    assert_int_equal(get("{\"v\":\"abcdefgh\"}", "v", out, sizeof(out)), -2);
    /* in a member skipped on the way, or in another member's name: no effect */
    expect_get("{\"a\":\"\\uD800\",\"room\":\"ok\"}", "room", "ok", 2);
    expect_get("{\"\\uD800\":\"x\",\"room\":\"ok\"}", "room", "ok", 2);
    expect_get("{\"a\":[\"\\uDFFF\"],\"room\":\"ok\"}", "room", "ok", 2);
    expect_get_fails("{\"room\\uD800\":\"x\"}", "room", -1);
    expect_get_fails("{\"\\uD800\":\"x\"}", "\xED\xA0\x80", -1);
    expect_get_fails("{\"\\uD800\":\"x\"}", "\xEF\xBF\xBD", -1);
    /* a pair still decodes */
    expect_get("{\"v\":\"\\uD83D\\uDE00\"}", "v", "\xF0\x9F\x98\x80", 4);
}

static void test_get_unescape(void **state)
{
    (void)state;
    expect_get("{\"v\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", "v", "\"\\/\b\f\n\r\t", 8);
    expect_get("{\"v\":\"\\u0041\\u0062\"}", "v", "Ab", 2);
    expect_get("{\"v\":\"\\u00e9\\u00E9\"}", "v", "\xC3\xA9\xC3\xA9", 4);
    expect_get("{\"v\":\"\\u07FF\\u0800\"}", "v", "\xDF\xBF\xE0\xA0\x80", 5);
    expect_get("{\"v\":\"\\u20ac\"}", "v", "\xE2\x82\xAC", 3);
    expect_get("{\"v\":\"\\uFFFF\"}", "v", "\xEF\xBF\xBF", 3);
    expect_get("{\"v\":\"\\ud83d\\ude00\"}", "v", "\xF0\x9F\x98\x80", 4);
    expect_get("{\"v\":\"\\uD800\\uDC00\"}", "v", "\xF0\x90\x80\x80", 4);
    expect_get("{\"v\":\"\\uDBFF\\uDFFF\"}", "v", "\xF4\x8F\xBF\xBF", 4);
    expect_get("{\"v\":\"a\\u0000b\"}", "v", "a\0b", 3);
    expect_get("{\"v\":\"h\xC3\xA9llo \xF0\x9F\x98\x80\"}", "v", "h\xC3\xA9llo \xF0\x9F\x98\x80",
               11);
    expect_get("{\"v\":\"\\\\u0041\"}", "v", "\\u0041", 6);
    expect_get("{\"v\":\"x\\u0022y\"}", "v", "x\"y", 3);
}

static void test_get_buffer_size(void **state)
{
    (void)state;
    const char *doc = "{\"room\":\"lobby\"}";
    char out[8];
    memset(out, 'X', sizeof(out));
    assert_int_equal(get(doc, "room", out, 4), -2);
    assert_int_equal(get(doc, "room", out, 0), -2);
    memset(out, 'X', sizeof(out));
    assert_int_equal(get(doc, "room", out, 5), 5); /* fits exactly: no terminator */
    assert_memory_equal(out, "lobbyX", 6);
    assert_int_equal(get(doc, "room", out, 6), 5);
    assert_memory_equal(out, "lobby\0", 6);
    assert_int_equal(get("{\"room\":\"\"}", "room", out, 0), 0);
    assert_int_equal(get("{\"room\":\"\"}", "room", NULL, 0), 0);
    /* escapes grow or shrink: the unescaped size is what counts */
    assert_int_equal(get("{\"v\":\"\\ud83d\\ude00\"}", "v", out, 3), -2);
    assert_int_equal(get("{\"v\":\"\\ud83d\\ude00\"}", "v", out, 4), 4);
    assert_int_equal(get("{\"v\":\"\\u00e9\\u00e9\\u00e9\"}", "v", out, 5), -2);
    assert_int_equal(get("{\"v\":\"\\u00e9\\u00e9\\u00e9\"}", "v", out, 6), 6);
    /* absent or not a string still wins over "too small" */
    assert_int_equal(get("{\"v\":12345}", "v", out, 1), -1);
    assert_int_equal(get("{\"v\":\"x\"}", "w", out, 0), -1);
}

/*
 * The lookup is only specified for validated documents, but it must stay in
 * bounds on anything: run it over every invalid vector and every prefix of
 * the valid ones from a guard page.
 */
static void test_get_memory_safety(void **state)
{
    (void)state;
    char out[8];
    static const char *const names[] = {"a", "room", "", "\xC3\xA9"};
    for (size_t t = 0; t < N(all_invalid); t++)
        for (size_t v = 0; v < all_invalid[t].n; v++)
            for (size_t k = 0; k < N(names); k++) {
                const struct bad *x = &all_invalid[t].t[v];
                long r = json_object_get_string(guarded(x->s, x->len), x->len, names[k], out,
                                                sizeof(out));
                assert_true(r >= JSON_LONE_SURROGATE && r <= (long)sizeof(out));
            }
    static const char *const docs[] = {
        "{\"a\":\"\\ud83d\\ude00\",\"room\":\"x\\u00e9\\\"\",\"b\":[{\"c\":\"]\"}]}",
        "{\"a\":{\"b\":[1,2,{\"room\":\"no\"}]},\"room\":\"yes\"}",
    };
    for (size_t d = 0; d < N(docs); d++) {
        size_t len = strlen(docs[d]);
        for (size_t cut = 0; cut <= len; cut++)
            for (size_t k = 0; k < N(names); k++) {
                long r =
                    json_object_get_string(guarded(docs[d], cut), cut, names[k], out, sizeof(out));
                assert_true(r >= JSON_LONE_SURROGATE && r <= (long)sizeof(out));
            }
    }
    /* Hand-made garbage the validator would never let through. */
    static const struct vec junk[] = {
        V("{\"a"),
        V("{\"a\\"),
        V("{\"a\":\"\\u12"),
        V("{\"a\":\"\\uD800"),
        V("{\"a\":\"\\uD800\\u"),
        V("{\"a\":\"\\uDC00\"}"),
        V("{\"a\":\"\\uD800x\"}"),
        V("{\"x\":]]]]"),
        V("{\"x\":[\"\\"),
        V("{\"x\":{\"y\":\""),
        V("{\"a\":\"b\\"),
        V("{\"a\":\"b\\q\"}"),
        V("{\"a\" \"b\"}"),
        V("{\"x\":1"),
        V("{\"a\":\"b\"x"),
    };
    for (size_t j = 0; j < N(junk); j++)
        for (size_t k = 0; k < N(names); k++) {
            long r = json_object_get_string(guarded(junk[j].s, junk[j].len), junk[j].len, names[k],
                                            out, sizeof(out));
            assert_true(r >= JSON_LONE_SURROGATE && r <= (long)sizeof(out));
        }
}

/* ------------------------------------------------------------ main */

static int count_vectors(void **state)
{
    (void)state;
    size_t nv = 0, ni = 0;
    for (size_t t = 0; t < N(all_valid); t++)
        nv += all_valid[t].n;
    for (size_t t = 0; t < N(all_invalid); t++)
        ni += all_invalid[t].n;
    print_message("json vectors: %zu valid, %zu invalid (plus generated cases)\n", nv, ni);
    return 0;
}

static int release_guard(void **state)
{
    (void)state;
    if (guard_base != NULL)
        munmap(guard_base, guard_size + page_size);
    guard_base = NULL;
    guard_size = 0;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_valid),      cmocka_unit_test(test_numbers_invalid),
        cmocka_unit_test(test_literals),           cmocka_unit_test(test_strings_valid),
        cmocka_unit_test(test_strings_invalid),    cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_invalid),       cmocka_unit_test(test_surrogates),
        cmocka_unit_test(test_structure_valid),    cmocka_unit_test(test_structure_invalid),
        cmocka_unit_test(test_whitespace),         cmocka_unit_test(test_toplevel_scalars),
        cmocka_unit_test(test_error_offsets),      cmocka_unit_test(test_depth),
        cmocka_unit_test(test_big_documents),      cmocka_unit_test(test_exhaustive_single_byte),
        cmocka_unit_test(test_exhaustive_escapes), cmocka_unit_test(test_exhaustive_u_escapes),
        cmocka_unit_test(test_exhaustive_utf8),    cmocka_unit_test(test_prefix_property),
        cmocka_unit_test(test_wrap_property),      cmocka_unit_test(test_get_found),
        cmocka_unit_test(test_get_absent),         cmocka_unit_test(test_get_not_string),
        cmocka_unit_test(test_get_not_object),     cmocka_unit_test(test_get_escaped_names),
        cmocka_unit_test(test_get_unescape),       cmocka_unit_test(test_get_lone_surrogate),
        cmocka_unit_test(test_get_buffer_size),    cmocka_unit_test(test_get_memory_safety),
    };
    return cmocka_run_group_tests(tests, count_vectors, release_guard);
}
