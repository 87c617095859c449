/*
 * Unit tests for the growable byte buffer (src/buf.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static void assert_pending(const struct buf *b, const char *want, size_t len)
{
    assert_int_equal(buf_pending(b), len);
    if (len) {
        assert_memory_equal(buf_head(b), want, len);
    }
    assert_true(b->off <= b->len && b->len <= b->cap);
}

static void test_empty(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_pending(&b), 0);
    buf_consume(&b, 0);
    assert_int_equal(buf_pending(&b), 0);
    buf_free(&b); /* never allocated */
    assert_null(b.data);
    buf_free(&b); /* twice */
}

static void test_append(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append(&b, S("hello")), 0);
    assert_non_null(b.data);
    assert_pending(&b, S("hello"));
    assert_int_equal(buf_append_str(&b, ", world"), 0);
    assert_pending(&b, S("hello, world"));
    assert_int_equal(buf_append(&b, "\0x\0", 3), 0); /* binary-safe */
    assert_pending(&b, "hello, world\0x\0", 15);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 15);
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.cap, 0);

    /* A freed buffer is reusable. */
    assert_int_equal(buf_append_str(&b, "again"), 0);
    assert_pending(&b, S("again"));
    buf_free(&b);
}

static void test_zero_length(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append(&b, NULL, 0), 0);
    assert_int_equal(buf_append_str(&b, ""), 0);
    assert_int_equal(buf_pending(&b), 0);
    assert_null(b.data); /* nothing allocated for nothing */
    assert_int_equal(buf_append(&b, S("ab")), 0);
    assert_int_equal(buf_append(&b, "zz", 0), 0);
    assert_int_equal(buf_printf(&b, "%s", ""), 0);
    assert_pending(&b, S("ab"));
    buf_free(&b);
}

static void test_growth(void **state)
{
    (void)state;
    /* One byte at a time up to 100 KiB: contents intact, capacity grows
     * geometrically (few reallocations) and always covers len. */
    struct buf b = {0};
    enum { N = 100000 };
    size_t grows = 0, last_cap = 0;
    for (size_t i = 0; i < N; i++) {
        char c = (char)('a' + i % 26);
        assert_int_equal(buf_append(&b, &c, 1), 0);
        if (b.cap != last_cap) {
            assert_true(b.cap > last_cap);
            grows++;
            last_cap = b.cap;
        }
    }
    assert_int_equal(b.len, N);
    assert_true(b.cap >= N);
    assert_true(grows <= 20);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(b.data[i], (char)('a' + i % 26));
    }
    buf_free(&b);

    /* One large append. */
    char *big = malloc(1u << 20);
    assert_non_null(big);
    for (size_t i = 0; i < (1u << 20); i++) {
        big[i] = (char)(i * 31);
    }
    assert_int_equal(buf_append(&b, S("x")), 0);
    assert_int_equal(buf_append(&b, big, 1u << 20), 0);
    assert_int_equal(buf_pending(&b), (1u << 20) + 1);
    assert_memory_equal(b.data + 1, big, 1u << 20);
    free(big);
    buf_free(&b);
}

static void test_reserve(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_reserve(&b, 1000), 0);
    assert_true(b.cap >= 1000);
    assert_int_equal(b.len, 0);
    size_t cap = b.cap;
    /* Writing into reserved space needs no further allocation. */
    char *p = b.data;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(buf_append(&b, "r", 1), 0);
    }
    assert_ptr_equal(b.data, p);
    assert_int_equal(b.cap, cap);
    assert_int_equal(buf_reserve(&b, 0), 0);
    assert_int_equal(b.cap, cap);
    assert_int_equal(buf_reserve(&b, cap - b.len), 0);
    assert_int_equal(b.cap, cap);
    assert_int_equal(buf_reserve(&b, cap - b.len + 1), 0);
    assert_true(b.cap >= b.len + (cap - b.len + 1));
    assert_int_equal(b.len, 1000);
    for (size_t i = 0; i < 1000; i++) {
        assert_int_equal(b.data[i], 'r');
    }

    /* An impossible size fails cleanly (len + extra overflows) and leaves
     * the contents alone. */
    assert_int_equal(buf_reserve(&b, SIZE_MAX), -1);
    assert_int_equal(buf_reserve(&b, SIZE_MAX - 500), -1);
    assert_int_equal(b.len, 1000);
    assert_int_equal(b.data[999], 'r');
    buf_free(&b);
}

static void test_consume(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append_str(&b, "0123456789"), 0);
    buf_consume(&b, 0);
    assert_pending(&b, S("0123456789"));
    buf_consume(&b, 3);
    assert_pending(&b, S("3456789"));
    assert_int_equal(b.off, 3);
    buf_consume(&b, 6);
    assert_pending(&b, S("9"));
    assert_int_equal(buf_append_str(&b, "ab"), 0);
    assert_pending(&b, S("9ab"));

    /* Consuming everything rewinds to the start. */
    buf_consume(&b, 3);
    assert_int_equal(buf_pending(&b), 0);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_append_str(&b, "new"), 0);
    assert_int_equal(b.off, 0);
    assert_pending(&b, S("new"));

    /* Consuming more than is pending empties it too. */
    buf_consume(&b, 100);
    assert_int_equal(buf_pending(&b), 0);
    assert_int_equal(b.off, 0);
    buf_free(&b);
}

static void test_compaction(void **state)
{
    (void)state;
    /* Consumed space at the front is reclaimed before growing. */
    struct buf b = {0};
    char chunk[1024];
    for (size_t i = 0; i < sizeof chunk; i++) {
        chunk[i] = (char)('A' + i % 26);
    }
    assert_int_equal(buf_append(&b, chunk, 200), 0);
    size_t cap = b.cap;
    assert_true(cap < 400); /* so the next appends would not fit without compaction */
    buf_consume(&b, 150);
    assert_int_equal(buf_append(&b, chunk, cap - 50), 0);
    assert_int_equal(b.cap, cap); /* no growth */
    assert_int_equal(b.off, 0);   /* moved to the front */
    assert_int_equal(buf_pending(&b), 50 + cap - 50);
    assert_memory_equal(buf_head(&b), chunk + 150, 50);
    assert_memory_equal(buf_head(&b) + 50, chunk, cap - 50);

    /* A producer/consumer in turns never grows past its largest burst. */
    buf_consume(&b, buf_pending(&b));
    for (int round = 0; round < 1000; round++) {
        assert_int_equal(buf_append(&b, chunk, 100), 0);
        buf_consume(&b, 90);
        assert_int_equal(b.cap, cap);
        if (round % 10 == 9) {
            buf_consume(&b, 100);
        }
    }
    buf_free(&b);

    /* Compaction that is not enough still grows, keeping the bytes. */
    assert_int_equal(buf_append(&b, chunk, 200), 0);
    cap = b.cap;
    buf_consume(&b, 10);
    assert_int_equal(buf_append(&b, chunk, cap), 0);
    assert_true(b.cap > cap);
    assert_int_equal(buf_pending(&b), 190 + cap);
    assert_memory_equal(buf_head(&b), chunk + 10, 190);
    assert_memory_equal(buf_head(&b) + 190, chunk, cap);
    buf_free(&b);
}

static void test_printf(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_printf(&b, "%d-%s-%zu", 42, "x", (size_t)7), 0);
    assert_pending(&b, S("42-x-7"));
    assert_int_equal(buf_printf(&b, "%c%%", 'z'), 0);
    assert_pending(&b, S("42-x-7z%"));
    /* No NUL terminator is counted. */
    assert_int_equal(b.len, 8);
    buf_free(&b);
}

static void test_printf_large(void **state)
{
    (void)state;
    /* Outputs of up to 255 bytes are formatted on the stack; 256 and more
     * (n >= 254 here) straight into the buffer. Both sides of the edge. */
    static const size_t sizes[] = {252, 253, 254, 255, 256, 257, 1000, 5000, 70000};
    char *src = malloc(70001);
    assert_non_null(src);
    for (size_t i = 0; i < 70000; i++) {
        src[i] = (char)('a' + i % 23);
    }
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        struct buf b = {0};
        assert_int_equal(buf_append_str(&b, "head:"), 0);
        buf_consume(&b, 2); /* an offset in play */
        assert_int_equal(buf_printf(&b, "<%.*s>", (int)n, src), 0);
        assert_int_equal(buf_pending(&b), 3 + n + 2);
        assert_memory_equal(buf_head(&b), "ad:<", 4);
        assert_memory_equal(buf_head(&b) + 4, src, n);
        assert_int_equal(buf_head(&b)[4 + n], '>');
        /* Appending after it continues at the right place. */
        assert_int_equal(buf_append_str(&b, "|tail"), 0);
        assert_memory_equal(buf_head(&b) + 5 + n, "|tail", 5);
        assert_int_equal(buf_pending(&b), 3 + n + 2 + 5);
        buf_free(&b);
    }
    /* Outputs that fill the allocation exactly: the terminating NUL that
     * vsnprintf writes must still fit (ASan checks this one). */
    static const size_t exact[] = {256, 512, 4096};
    for (size_t k = 0; k < sizeof exact / sizeof exact[0]; k++) {
        struct buf e = {0};
        assert_int_equal(buf_printf(&e, "%.*s", (int)exact[k], src), 0);
        assert_int_equal(buf_pending(&e), exact[k]);
        assert_memory_equal(e.data, src, exact[k]);
        buf_free(&e);
    }

    /* Several large printfs in a row. */
    struct buf b = {0};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(buf_printf(&b, "%d:%.*s;", i, 300, src), 0);
    }
    size_t off = 0;
    for (int i = 0; i < 10; i++) {
        char want[16];
        int w = snprintf(want, sizeof want, "%d:", i);
        assert_memory_equal(b.data + off, want, (size_t)w);
        off += (size_t)w;
        assert_memory_equal(b.data + off, src, 300);
        off += 300;
        assert_int_equal(b.data[off++], ';');
    }
    assert_int_equal(b.len, off);
    buf_free(&b);
    free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),        cmocka_unit_test(test_append),
        cmocka_unit_test(test_zero_length),  cmocka_unit_test(test_growth),
        cmocka_unit_test(test_reserve),      cmocka_unit_test(test_consume),
        cmocka_unit_test(test_compaction),   cmocka_unit_test(test_printf),
        cmocka_unit_test(test_printf_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
