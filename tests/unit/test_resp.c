/*
 * Unit tests for src/resp.c: the RESP2 reply scanner, the reader and the
 * command encoder.
 *
 * Every input handed to the scanner is copied so that its last byte is the
 * last byte of a page and the next page is PROT_NONE: a read past `len`
 * crashes the test instead of passing by luck. Incremental feeding does the
 * same for every prefix.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "resp.h"

#include "guarded.h"

/* A literal and its length, NULs included. */
#define RAW(s) s, sizeof(s) - 1

/* Scans s[0..n) whole, in a fresh scanner. */
static long scan_whole(const char *s, size_t n, const struct resp_limits *lim)
{
    struct guarded g;
    struct resp_scanner sc;
    guarded_init(&g, n);
    resp_scan_init(&sc, lim);
    long r = resp_scan(&sc, guarded_put(&g, s, n), n);
    guarded_free(&g);
    return r;
}

/*
 * Feeds s[0..n) one byte more per call, every prefix ending at a guard page:
 * every call before the last returns RESP_AGAIN; the result of the first call
 * that does not is returned, with the prefix length in *at.
 */
static long scan_bytewise(const char *s, size_t n, const struct resp_limits *lim, size_t *at)
{
    struct guarded g;
    struct resp_scanner sc;
    long r = RESP_AGAIN;
    guarded_init(&g, n);
    resp_scan_init(&sc, lim);
    for (size_t k = 1; k <= n; k++) {
        r = resp_scan(&sc, guarded_put(&g, s, k), k);
        if (r != RESP_AGAIN) {
            *at = k;
            break;
        }
    }
    guarded_free(&g);
    return r;
}

/* Two reads, split at k: the answer must be the whole-buffer answer. */
static long scan_split(const char *s, size_t n, size_t k)
{
    struct guarded g;
    struct resp_scanner sc;
    guarded_init(&g, n);
    resp_scan_init(&sc, NULL);
    long r = resp_scan(&sc, guarded_put(&g, s, k), k);
    if (r == RESP_AGAIN) {
        r = resp_scan(&sc, guarded_put(&g, s, n), n);
    }
    guarded_free(&g);
    return r;
}

/* Every well-formed vector: whole, byte by byte and split anywhere, it is
 * one complete reply of exactly its length, and nothing less is. */
static const struct {
    const char *s;
    size_t n;
} good[] = {
    {RAW("+OK\r\n")},
    {RAW("+\r\n")},
    {RAW("-ERR wrong number of arguments\r\n")},
    {RAW(":0\r\n")},
    {RAW(":-42\r\n")},
    {RAW(":9223372036854775807\r\n")},
    {RAW(":-9223372036854775808\r\n")},
    {RAW("$3\r\nfoo\r\n")},
    {RAW("$0\r\n\r\n")},
    {RAW("$-1\r\n")},
    {RAW("$6\r\na\r\n\0\rb\r\n")},
    {RAW("*0\r\n")},
    {RAW("*-1\r\n")},
    {RAW("*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$5\r\nhello\r\n")},
    {RAW("*2\r\n*2\r\n:1\r\n$-1\r\n*0\r\n")},
    {RAW("*3\r\n*1\r\n*1\r\n+deep\r\n-ERR x\r\n*-1\r\n")},
};

static void test_every_type_every_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *s = good[i].s;
        size_t n = good[i].n, at = 0;
        assert_int_equal(scan_whole(s, n, NULL), (long)n);
        assert_int_equal(scan_bytewise(s, n, NULL, &at), (long)n);
        assert_int_equal(at, n);
        for (size_t k = 1; k < n; k++) {
            assert_int_equal(scan_split(s, n, k), (long)n);
        }
    }
}

/* A reply followed by the start of the next: only the first is taken, and
 * the scanner, reset, then finds the second. */
static void test_pipelined_replies(void **state)
{
    (void)state;
    const char in[] = "+OK\r\n:7\r\n*1\r\n$1\r\nx\r\n";
    size_t n = sizeof in - 1;
    struct resp_scanner sc;
    resp_scan_init(&sc, NULL);
    size_t off = 0;
    long lens[3];
    for (int i = 0; i < 3; i++) {
        lens[i] = resp_scan(&sc, in + off, n - off);
        assert_true(lens[i] > 0);
        off += (size_t)lens[i];
        resp_scan_reset(&sc);
    }
    assert_int_equal(lens[0], 5);
    assert_int_equal(lens[1], 4);
    assert_int_equal(off, n);
    assert_int_equal(resp_scan(&sc, in + off, 0), RESP_AGAIN);
}

static void test_reader_values(void **state)
{
    (void)state;
    const char in[] = "*4\r\n:-9223372036854775808\r\n*2\r\n$-1\r\n+s\r\n$3\r\na\0b\r\n-E\r\n";
    size_t n = sizeof in - 1;
    assert_int_equal(scan_whole(in, n, NULL), (long)n);

    struct resp_reader r;
    struct resp_value v;
    resp_reader_init(&r, in, n);
    assert_int_equal(resp_read(&r, &v), 0);
    assert_int_equal(v.type, RESP_ARRAY);
    assert_int_equal(v.count, 4);
    assert_int_equal(resp_read(&r, &v), 0);
    assert_int_equal(v.type, RESP_INTEGER);
    assert_true(v.integer == INT64_MIN);
    assert_int_equal(resp_read(&r, &v), 0);
    assert_int_equal(v.type, RESP_ARRAY);
    assert_int_equal(v.count, 2);
    assert_int_equal(resp_read(&r, &v), 0);
    assert_int_equal(v.type, RESP_BULK);
    assert_true(v.null);
    assert_false(resp_str_eq(&v, ""));
    assert_int_equal(resp_read(&r, &v), 0);
    assert_int_equal(v.type, RESP_SIMPLE);
    assert_true(resp_str_eq(&v, "s"));
    assert_int_equal(resp_read(&r, &v), 0);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.str, "a\0b", 3);
    assert_int_equal(resp_read(&r, &v), 0);
    assert_int_equal(v.type, RESP_ERR);
    assert_true(v.len == 1 && v.str[0] == 'E');
    assert_int_equal(r.left, 0);
    assert_int_equal(resp_read(&r, &v), -1);
}

static void test_reader_skip(void **state)
{
    (void)state;
    const char in[] = "*3\r\n*2\r\n*1\r\n:1\r\n:2\r\n*0\r\n+after\r\n";
    struct resp_reader r;
    struct resp_value v;
    resp_reader_init(&r, in, sizeof in - 1);
    assert_int_equal(resp_read(&r, &v), 0);
    assert_int_equal(resp_read(&r, &v), 0); /* the nested *2 */
    assert_int_equal(resp_skip(&r, &v), 0);
    assert_int_equal(resp_read(&r, &v), 0); /* *0 */
    assert_int_equal(v.count, 0);
    assert_int_equal(resp_read(&r, &v), 0);
    assert_true(resp_str_eq(&v, "after"));
    /* Skipping past the end fails instead of reading on. */
    resp_reader_init(&r, in, 8);
    assert_int_equal(resp_read(&r, &v), 0);
    assert_int_equal(resp_skip(&r, &v), -1);
}

static void test_limits(void **state)
{
    (void)state;
    struct resp_limits lim = {.max_bulk = 4, .max_array = 2, .max_line = 8, .max_depth = 2};
    size_t at = 0;

    assert_int_equal(scan_whole(RAW("$4\r\nabcd\r\n"), &lim), 10);
    assert_int_equal(scan_whole(RAW("$5\r\nabcde\r\n"), &lim), RESP_ERROR);
    /* Refused on its head, before the body is there. */
    assert_int_equal(scan_whole(RAW("$5\r\n"), &lim), RESP_ERROR);
    assert_int_equal(scan_whole(RAW("*2\r\n:1\r\n:2\r\n"), &lim), 12);
    assert_int_equal(scan_whole(RAW("*3\r\n"), &lim), RESP_ERROR);
    assert_int_equal(scan_whole(RAW("*1\r\n*1\r\n:1\r\n"), &lim), 12);
    assert_int_equal(scan_whole(RAW("*1\r\n*1\r\n*1\r\n:1\r\n"), &lim), RESP_ERROR);
    /* Empty and null arrays open nothing, at any depth. */
    assert_int_equal(scan_whole(RAW("*1\r\n*1\r\n*0\r\n"), &lim), 12);
    assert_int_equal(scan_whole(RAW("+12345678\r\n"), &lim), 11);
    /* A line over max_line is refused as soon as it is too long, without
     * waiting for a CRLF that may never come. */
    assert_int_equal(scan_bytewise(RAW("+123456789abcdef"), &lim, &at), RESP_ERROR);
    assert_int_equal(at, 10);
    /* The default depth is 8, and the ceiling holds whatever is asked. */
    struct resp_scanner sc;
    lim.max_depth = 1000;
    resp_scan_init(&sc, &lim);
    assert_int_equal(sc.limits.max_depth, RESP_MAX_DEPTH);
    assert_int_equal(resp_default_limits.max_depth, 8);
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        {RAW("?x\r\n")},                   /* unknown type */
        {RAW("_\r\n")},                    /* RESP3 null */
        {RAW("%1\r\n")},                   /* RESP3 map */
        {RAW("+OK\n")},                    /* bare LF */
        {RAW("+O\rK\r\n")},                /* CR not before LF */
        {RAW(":\r\n")},                    /* no digits */
        {RAW(":-\r\n")},                   /* sign alone */
        {RAW(":+5\r\n")},                  /* plus sign */
        {RAW(": 5\r\n")},                  /* space */
        {RAW(":5x\r\n")},                  /* trailing junk */
        {RAW(":9223372036854775808\r\n")}, /* overflow */
        {RAW(":-9223372036854775809\r\n")},
        {RAW("$-2\r\n")}, /* negative length */
        {RAW("*-2\r\n")},
        {RAW("$3\r\nfoox\r\n")},    /* body longer than said */
        {RAW("$3\r\nfo\r\n\r\n")},  /* shorter */
        {RAW("$1\r\nx\n\r")},       /* terminator reversed */
        {RAW("*2\r\n:1\r\n!\r\n")}, /* bad element inside an array */
        {RAW("$99999999999999999999\r\n")},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t at = 0;
        assert_int_equal(scan_whole(bad[i].s, bad[i].n, NULL), RESP_ERROR);
        /* Byte by byte it is refused too, and never after the whole. */
        assert_int_equal(scan_bytewise(bad[i].s, bad[i].n, NULL, &at), RESP_ERROR);
        assert_true(at <= bad[i].n);
    }
    /* Nothing yet, or half a line, is not an error. */
    assert_int_equal(scan_whole("", 0, NULL), RESP_AGAIN);
    assert_int_equal(scan_whole(RAW("$3\r\nfo"), NULL), RESP_AGAIN);
    assert_int_equal(scan_whole(RAW("*2\r\n:1\r\n"), NULL), RESP_AGAIN);
}

static void test_encode(void **state)
{
    (void)state;
    const char *argv[] = {"SET", "k", "a\r\n\0b", ""};
    const size_t lens[] = {3, 1, 5, 0};
    const char want[] = "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\n\0b\r\n$0\r\n\r\n";
    char out[128];

    size_t need = resp_encode(NULL, 0, 4, argv, lens);
    assert_int_equal(need, sizeof want - 1);
    /* Too small: nothing written. */
    memset(out, 'Z', sizeof out);
    assert_int_equal(resp_encode(out, need - 1, 4, argv, lens), need);
    assert_int_equal(out[0], 'Z');
    assert_int_equal(resp_encode(out, sizeof out, 4, argv, lens), need);
    assert_memory_equal(out, want, need);
    assert_int_equal(resp_encode(out, sizeof out, 0, NULL, NULL), 4);
    assert_memory_equal(out, "*0\r\n", 4);

    /* What we encode is a reply our scanner reads back argument for argument
     * (a command is an array of bulk strings on the wire either way). */
    assert_int_equal(scan_whole(out, 4, NULL), 4);
    resp_encode(out, sizeof out, 4, argv, lens);
    assert_int_equal(scan_whole(out, need, NULL), (long)need);
    struct resp_reader r;
    struct resp_value v;
    resp_reader_init(&r, out, need);
    assert_int_equal(resp_read(&r, &v), 0);
    assert_int_equal(v.count, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(resp_read(&r, &v), 0);
        assert_int_equal(v.type, RESP_BULK);
        assert_int_equal(v.len, lens[i]);
        assert_memory_equal(v.str, argv[i], lens[i]);
    }
}

/* A long bulk string arriving in small pieces: each call looks only at what
 * is new (the head is parsed again, the body is not scanned). */
static void test_large_bulk_in_pieces(void **state)
{
    (void)state;
    size_t body = 100000, n = body + 16;
    char *s = malloc(n);
    assert_non_null(s);
    int h = snprintf(s, n, "$%zu\r\n", body);
    memset(s + h, 'x', body);
    memcpy(s + h + body, "\r\n", 2);
    size_t total = (size_t)h + body + 2;
    for (size_t k = 1; k < total; k += 997) {
        assert_int_equal(scan_split(s, total, k), (long)total);
    }
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_every_split),
        cmocka_unit_test(test_pipelined_replies),
        cmocka_unit_test(test_reader_values),
        cmocka_unit_test(test_reader_skip),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_large_bulk_in_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
