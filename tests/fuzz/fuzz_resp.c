/*
 * libFuzzer target for src/resp.c.
 *
 * The input is treated as bytes arriving from Redis:
 *   - resp_scan runs on it whole, byte by byte, and in growing reads of
 *     varying sizes (each prefix in an exact-size allocation, so ASan catches
 *     a read past `len`); every way of feeding must give the same answer.
 *   - A reply that is accepted is walked with the reader: it must be read to
 *     its last byte, no further, with as many elements as its arrays promise.
 *   - The same with small limits, which must never accept more than the
 *     default limits do.
 *   - The input, cut into arguments, is encoded as a command, which the
 *     scanner must accept whole and the reader must give back unchanged.
 *   - The input as a redis:// URL: accepted ones are within their ranges,
 *     and no error message repeats the password.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_url.h"
#include "resp.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BYTEWISE_MAX 1024

static long scan_once(const uint8_t *data, size_t size, const struct resp_limits *lim)
{
    struct resp_scanner s;
    resp_scan_init(&s, lim);
    char *buf = copy_exact(data, size);
    long r = resp_scan(&s, buf, size);
    free(buf);
    CHECK(r == RESP_AGAIN || r == RESP_ERROR || (r > 0 && (size_t)r <= size));
    return r;
}

/* Reads of sizes taken from `sizes` (1 each when nsizes is 0). */
static long scan_pieces(const uint8_t *data, size_t size, const uint8_t *sizes, size_t nsizes)
{
    struct resp_scanner s;
    long r = RESP_AGAIN;
    size_t k = 0;
    resp_scan_init(&s, NULL);
    for (size_t i = 0; k < size; i++) {
        k += nsizes ? 1 + (size_t)(sizes[i % nsizes] & 0x3F) : 1;
        if (k > size)
            k = size;
        char *buf = copy_exact(data, k);
        r = resp_scan(&s, buf, k);
        free(buf);
        if (r != RESP_AGAIN)
            break;
    }
    return r;
}

/* Walks an accepted reply: exactly n bytes, every promised element there. */
static void walk(const uint8_t *data, size_t n)
{
    char *buf = copy_exact(data, n);
    struct resp_reader r;
    struct resp_value v;
    size_t need = 1;
    resp_reader_init(&r, buf, n);
    while (need > 0) {
        CHECK(resp_read(&r, &v) == 0);
        need--;
        if (v.type == RESP_ARRAY)
            need += v.count;
        if (v.type == RESP_BULK && !v.null)
            CHECK(v.str >= buf && v.str + v.len <= buf + n);
    }
    CHECK(r.left == 0);
    free(buf);

    /* resp_skip over the whole reply lands on the end too. */
    buf = copy_exact(data, n);
    resp_reader_init(&r, buf, n);
    CHECK(resp_read(&r, &v) == 0);
    CHECK(resp_skip(&r, &v) == 0);
    CHECK(r.left == 0);
    free(buf);
}

/* Cuts the input at '|' bytes into arguments and round-trips a command. */
static void check_encode(const uint8_t *data, size_t size)
{
    const char *argv[64];
    size_t lens[64], argc = 0, start = 0;
    for (size_t i = 0; i <= size && argc < 64; i++) {
        if (i == size || data[i] == '|') {
            argv[argc] = (const char *)data + start;
            lens[argc++] = i - start;
            start = i + 1;
        }
    }
    size_t need = resp_encode(NULL, 0, argc, argv, lens);
    char *out = malloc(need);
    CHECK(out != NULL);
    CHECK(resp_encode(out, need, argc, argv, lens) == need);
    CHECK(scan_once((const uint8_t *)out, need, NULL) == (long)need);
    struct resp_reader r;
    struct resp_value v;
    resp_reader_init(&r, out, need);
    CHECK(resp_read(&r, &v) == 0 && v.type == RESP_ARRAY && v.count == argc);
    for (size_t i = 0; i < argc; i++) {
        CHECK(resp_read(&r, &v) == 0 && v.type == RESP_BULK && v.len == lens[i]);
        CHECK(v.len == 0 || memcmp(v.str, argv[i], v.len) == 0);
    }
    CHECK(r.left == 0);
    free(out);
}

static void check_url(const uint8_t *data, size_t size)
{
    static struct redis_url u;
    char err[256];
    char *s = malloc(size + 9);
    CHECK(s != NULL);
    /* Mostly past the scheme, where the parsing is. */
    memcpy(s, "redis://", 8);
    memcpy(s + 8, data, size);
    s[size + 8] = '\0';
    if (redis_url_parse(s, &u, err, sizeof err) == 0) {
        CHECK(u.port >= 1 && u.port <= 65535);
        CHECK(u.db >= 0);
        CHECK(u.host[0] != '\0' && strlen(u.host) < sizeof u.host);
        CHECK(u.addr_len > 0);
    } else {
        CHECK(strncmp(err, "bad Redis URL: ", 15) == 0);
        /* Messages never quote the input: the password of the seeds
         * (url_password) must not show up, whatever the fuzzer makes of it. */
        CHECK(strstr(err, "hunter2") == NULL);
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_url(data, size);

    long whole = scan_once(data, size, NULL);

    if (size > 0) {
        CHECK(scan_pieces(data, size, data, size) == whole);
        if (size <= BYTEWISE_MAX)
            CHECK(scan_pieces(data, size, NULL, 0) == whole);
    }
    if (whole > 0) {
        walk(data, (size_t)whole);
        /* The reply alone is the same reply. */
        CHECK(scan_once(data, (size_t)whole, NULL) == whole);
    }

    /* Small limits accept a subset of what the defaults accept. */
    struct resp_limits small = {.max_bulk = 16, .max_array = 4, .max_line = 16, .max_depth = 2};
    long lim = scan_once(data, size, &small);
    if (lim > 0)
        CHECK(lim == whole);

    check_encode(data, size);
    return 0;
}
