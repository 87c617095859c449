/*
 * Unit tests for the log output (src/log.c): with a pipe on stderr, lines
 * are buffered and written without blocking, whole lines are dropped and
 * counted when the buffer is full, the gap is marked once the pipe drains,
 * a reader that goes away costs only lines; files are written directly.
 *
 * Each test puts its own pipe or file on fd 2 and puts the real stderr back
 * afterwards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int saved_stderr = -1;

/* Puts fd on stderr (closing fd). */
static void set_stderr(int fd)
{
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

static int teardown(void **state)
{
    (void)state;
    log_buffer_end(0);
    dup2(saved_stderr, STDERR_FILENO);
    return 0;
}

/* Reads what the pipe holds now (its read end is non-blocking). */
static size_t drain(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t got;
    while (n < cap && (got = read(fd, buf + n, cap - n)) > 0) {
        n += (size_t)got;
    }
    return n;
}

/* A pipe whose write end blocks (as stderr usually does) and whose read end
 * does not. */
static void make_pipe(int p[2])
{
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
}

static size_t count_char(const char *s, size_t n, char c)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        k += s[i] == c;
    }
    return k;
}

static void test_pipe_is_buffered(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    set_stderr(p[1]);
    int fd = log_buffer_begin();
    assert_true(fd >= 0);
    /* Our own description of the pipe: stderr's flags are left alone. */
    assert_int_not_equal(fd, STDERR_FILENO);
    assert_int_equal(fcntl(STDERR_FILENO, F_GETFL) & O_NONBLOCK, 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);

    char buf[8192];
    log_info("line %d", 1);
    log_info("line %d", 2);
    assert_int_equal(drain(p[0], buf, sizeof buf), 0); /* nothing until the flush */
    assert_false(log_flush());
    size_t n = drain(p[0], buf, sizeof buf - 1);
    buf[n] = 0;
    assert_int_equal(count_char(buf, n, '\n'), 2);
    assert_non_null(strstr(buf, "info  line 1\n"));
    assert_non_null(strstr(buf, "info  line 2\n"));
    close(p[0]);
}

static void test_full_pipe_drops_whole_lines(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    assert_true(fcntl(p[0], F_SETPIPE_SZ, 4096) > 0);
    set_stderr(p[1]);
    assert_true(log_buffer_begin() >= 0);
    uint64_t dropped0 = log_lines_dropped();

    /* 1 MiB of lines against a 4 KiB pipe and a 256 KiB buffer. */
    char pad[201];
    memset(pad, 'x', 200);
    pad[200] = 0;
    int lines = 0;
    for (; lines < 5000; lines++) {
        log_info("%06d %s", lines, pad);
        if (lines % 100 == 0) {
            log_flush();
        }
    }
    uint64_t dropped = log_lines_dropped() - dropped0;
    assert_true(dropped > 0);
    assert_true(log_flush()); /* bytes still pending: watch for EPOLLOUT */

    /* Drain, flushing again each time, until everything is out. */
    size_t cap = 4u << 20, n = 0;
    char *all = malloc(cap);
    assert_non_null(all);
    bool pending = true;
    for (int round = 0; pending && round < 10000; round++) {
        n += drain(p[0], all + n, cap - n - 1);
        pending = log_flush();
    }
    n += drain(p[0], all + n, cap - n - 1);
    all[n] = 0;
    assert_false(pending);

    /* Every line arrived whole; the written ones plus the dropped ones are
     * all of them, and the gap says how many were dropped. */
    size_t got = 0;
    bool notice = false;
    char want[96];
    snprintf(want, sizeof want, "warn  %llu log lines dropped", (unsigned long long)dropped);
    for (char *line = all, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        if (strstr(line, want) == line + 25) {
            notice = true;
            continue;
        }
        assert_true(nl - line == 25 + 6 + 7 + 200);
        got++;
    }
    assert_true(notice);
    assert_int_equal(got + dropped, (size_t)lines);
    free(all);
    close(p[0]);
}

static void test_reader_gone(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    set_stderr(p[1]);
    assert_true(log_buffer_begin() >= 0);
    uint64_t dropped0 = log_lines_dropped();
    log_info("one");
    log_info("two");
    close(p[0]);
    assert_false(log_flush()); /* EPIPE: nothing left to wait for */
    assert_true(log_broken());
    log_info("three");
    assert_int_equal(log_lines_dropped() - dropped0, 3);
}

static void test_file_is_direct(void **state)
{
    (void)state;
    char path[] = "/tmp/test_log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int keep = dup(fd);
    set_stderr(fd);
    assert_int_equal(log_buffer_begin(), -1);
    log_info("straight to the file");
    char buf[256];
    ssize_t n = pread(keep, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = 0;
    assert_non_null(strstr(buf, "straight to the file\n"));
    close(keep);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    saved_stderr = dup(STDERR_FILENO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pipe_is_buffered, teardown),
        cmocka_unit_test_teardown(test_full_pipe_drops_whole_lines, teardown),
        cmocka_unit_test_teardown(test_reader_gone, teardown),
        cmocka_unit_test_teardown(test_file_is_direct, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
