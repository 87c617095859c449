/*
 * Unit tests for the log output (src/log.c): with a pipe on stderr, lines
 * are buffered and written without blocking, whole lines are dropped and
 * counted when the buffer is full, the gap is marked once the pipe drains,
 * a reader that goes away costs only lines; files are written directly;
 * four threads logging and flushing at once lose no line, duplicate none,
 * keep each thread's order and count every drop; a rate limit shared by
 * threads lets exactly its burst through.
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
#include <poll.h>
#include <pthread.h>
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

/* Buffered logging into a pipe of 4 KiB (p[0] is the test's end); returns
 * the lines dropped so far. */
static uint64_t begin_on_small_pipe(int p[2])
{
    make_pipe(p);
    assert_true(fcntl(p[0], F_SETPIPE_SZ, 4096) > 0);
    set_stderr(p[1]);
    assert_true(log_buffer_begin() >= 0);
    return log_lines_dropped();
}

/* 200 bytes of padding, to make log lines long. */
static const char *pad200(void)
{
    static char pad[201];
    memset(pad, 'x', 200);
    return pad;
}

static void test_full_pipe_drops_whole_lines(void **state)
{
    (void)state;
    int p[2];
    uint64_t dropped0 = begin_on_small_pipe(p);

    /* 1 MiB of lines against a 4 KiB pipe and a 256 KiB buffer. */
    const char *pad = pad200();
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

/* A reader gone with a "lines dropped" line still buffered: the lines
 * counted as dropped are the log lines that did not get out, exactly; the
 * notice, which is no log line, is not one of them. */
static void test_reader_gone_with_notice_buffered(void **state)
{
    (void)state;
    int p[2];
    uint64_t dropped0 = begin_on_small_pipe(p);

    /* Some 480 KB against a 256 KiB buffer: the rest is dropped. */
    const char *pad = pad200();
    int lines = 0;
    for (; lines < 2000; lines++) {
        log_info("%06d %s", lines, pad);
    }
    assert_true(log_lines_dropped() > dropped0);
    assert_true(log_flush());          /* 4 KiB out, the pipe full */
    log_info("%06d %s", lines++, pad); /* the notice goes in first, then this line */

    char buf[8192];
    size_t n = drain(p[0], buf, sizeof buf);
    close(p[0]);
    assert_false(log_flush()); /* EPIPE */
    assert_true(log_broken());
    /* The last line read may be cut short: it did not get out whole. */
    size_t got = count_char(buf, n, '\n');
    assert_int_equal(got + (log_lines_dropped() - dropped0), (size_t)lines);
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

/* ------------------------------------------------ several threads at once */

#define NTHREADS    4
#define LINE_PREFIX 25 /* "2026-01-01T00:00:00.000Z " */
#define CAPTURE_CAP (16u << 20)

/* What the test's reader thread collects from the pipe, until end of file. */
struct capture {
    int fd;            /* the pipe's read end, blocking */
    unsigned pause_us; /* sleep between reads: a reader slower than the writers */
    char *buf;
    size_t len;
};

static void *capture_run(void *arg)
{
    struct capture *c = arg;
    ssize_t got;
    while (c->len < CAPTURE_CAP - 1 &&
           (got = read(c->fd, c->buf + c->len, CAPTURE_CAP - 1 - c->len)) > 0) {
        c->len += (size_t)got;
        if (c->pause_us) {
            usleep(c->pause_us);
        }
    }
    return NULL;
}

struct logger {
    pthread_t thread;
    int id;
    int lines;
    int lose_at;      /* before this line, tell the log its output is lost; -1: never */
    unsigned pending; /* log_flush calls that said bytes remain */
};

/* Each thread's lines have their own length and filler, so two lines mixed
 * into one, or a line cut short, cannot pass for a whole one. */
static size_t pad_len(int id)
{
    return 40 + (size_t)id * 53;
}

static void *logger_run(void *arg)
{
    struct logger *lg = arg;
    char pad[256];
    memset(pad, 'a' + lg->id, pad_len(lg->id));
    pad[pad_len(lg->id)] = 0;
    for (int i = 0; i < lg->lines; i++) {
        if (i == lg->lose_at) {
            log_output_lost(); /* as a loop does on EPOLLERR */
        }
        log_info("t%d %06d %s", lg->id, i, pad);
        /* Every loop flushes from its own before-sleep hook. */
        if (i % 8 == 7 && log_flush()) {
            lg->pending++;
        }
    }
    return NULL;
}

struct tally {
    int next[NTHREADS]; /* the sequence number each thread's next line must have */
    int got;            /* log lines received */
    uint64_t noticed;   /* the sum of the "N log lines dropped" lines */
};

/* Checks one line (without its newline) and counts it. */
static void tally_line(struct tally *t, const char *line, size_t n)
{
    assert_true(n > LINE_PREFIX + 6);
    const char *msg = line + LINE_PREFIX;
    unsigned long long dropped;
    int consumed = 0;
    if (sscanf(msg, "warn  %llu log lines dropped: %*[^\n]%n", &dropped, &consumed) == 1) {
        assert_true(dropped > 0);
        t->noticed += dropped;
        return;
    }
    int id, seq;
    assert_int_equal(sscanf(msg, "info  t%d %06d %n", &id, &seq, &consumed), 2);
    assert_true(id >= 0 && id < NTHREADS);
    /* In order, once each: a later number may follow (lines dropped between). */
    assert_true(seq >= t->next[id]);
    t->next[id] = seq + 1;
    const char *pad = msg + consumed;
    assert_int_equal((size_t)(line + n - pad), pad_len(id));
    for (size_t i = 0; i < pad_len(id); i++) {
        assert_int_equal(pad[i], 'a' + id);
    }
    t->got++;
}

struct run {
    int lines;         /* per thread */
    int pipe_size;     /* 0: the default size */
    unsigned pause_us; /* the reader's pause between reads */
    int lose_at;       /* thread 0 loses the output before this line; -1: never */
    uint64_t dropped;  /* out: lines counted as dropped */
    unsigned pending;  /* out: log_flush calls that said bytes remain */
};

/*
 * Four threads log r->lines lines each and flush as they go, into a pipe
 * that a reader thread drains. Then log_buffer_end drains the rest and the
 * pipe is closed: every line that arrived is whole and in its thread's
 * order, each arrived once, and those that did not are exactly the ones
 * counted as dropped, all of them told by "dropped" lines unless the
 * output was lost (lines dropped after that are only counted).
 */
static void run_threads(struct run *r)
{
    int lines = r->lines;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_true(r->pipe_size == 0 || fcntl(p[0], F_SETPIPE_SZ, r->pipe_size) >= r->pipe_size);
    set_stderr(p[1]);
    assert_true(log_buffer_begin() >= 0);
    uint64_t dropped0 = log_lines_dropped();

    struct capture cap = {.fd = p[0], .pause_us = r->pause_us, .buf = malloc(CAPTURE_CAP)};
    assert_non_null(cap.buf);
    pthread_t reader;
    assert_int_equal(pthread_create(&reader, NULL, capture_run, &cap), 0);
    struct logger lg[NTHREADS];
    for (int k = 0; k < NTHREADS; k++) {
        lg[k] = (struct logger){.id = k, .lines = lines, .lose_at = k == 0 ? r->lose_at : -1};
        assert_int_equal(pthread_create(&lg[k].thread, NULL, logger_run, &lg[k]), 0);
    }
    r->pending = 0;
    for (int k = 0; k < NTHREADS; k++) {
        pthread_join(lg[k].thread, NULL);
        r->pending += lg[k].pending;
    }
    assert_int_equal(log_broken(), r->lose_at >= 0);
    /* Ten seconds is far more than the reader needs for 256 KiB. */
    log_buffer_end(10000);
    uint64_t dropped = log_lines_dropped() - dropped0;
    /* Our descriptor is closed; with stderr back, no write end is left. */
    dup2(saved_stderr, STDERR_FILENO);
    pthread_join(reader, NULL);
    close(p[0]);

    struct tally t = {0};
    for (char *line = cap.buf, *nl; (nl = memchr(line, '\n', (size_t)(cap.buf + cap.len - line)));
         line = nl + 1) {
        tally_line(&t, line, (size_t)(nl - line));
    }
    assert_int_equal((uint64_t)t.got + dropped, (uint64_t)NTHREADS * (uint64_t)lines);
    for (int k = 0; k < NTHREADS; k++) {
        assert_true(t.next[k] <= (k == 0 && r->lose_at >= 0 ? r->lose_at : lines));
    }
    if (r->lose_at < 0) {
        assert_true(cap.len > 0 && cap.buf[cap.len - 1] == '\n');
        assert_int_equal(t.noticed, dropped);
    } else {
        /* A write under way when the output was lost may have got part
         * of a line out; that line counts as dropped. */
        assert_true(t.noticed <= dropped);
    }
    free(cap.buf);
    r->dropped = dropped;
}

/* Fewer lines than the buffer holds (about 226 KB of them in 256 KiB), so
 * that however the threads and the reader are scheduled none may be
 * dropped: nothing is lost, nothing doubled, nothing mixed. */
static void test_threads_room_for_all(void **state)
{
    (void)state;
    struct run r = {.lines = 350, .lose_at = -1};
    run_threads(&r);
    assert_int_equal(r.dropped, 0);
}

/* A slow reader behind a 4 KiB pipe (4 MB/s at most, against some 3.2 MB
 * of lines written far faster, even under ThreadSanitizer): the buffer
 * fills, lines are dropped while four threads append and flush, and every
 * one of them is counted. */
static void test_threads_slow_reader_drops_counted(void **state)
{
    (void)state;
    struct run r = {.lines = 5000, .pipe_size = 4096, .pause_us = 1000, .lose_at = -1};
    run_threads(&r);
    assert_true(r.dropped > 0);
    /* The loops were told to watch for EPOLLOUT. */
    assert_true(r.pending > 0);
}

/* One thread reports the output lost (EPOLLERR) halfway while the others
 * append and write: every line of that thread from then on, and whatever
 * was buffered or being written, is dropped and counted, none twice and
 * none missing from the count, and nothing more is written. */
static void test_threads_output_lost(void **state)
{
    (void)state;
    struct run r = {.lines = 2000, .lose_at = 1000};
    run_threads(&r);
    assert_true(r.dropped >= 1000);
}

struct limiter {
    pthread_t thread;
    struct log_limit *lim;
    int allowed;
};

static void *limiter_run(void *arg)
{
    struct limiter *l = arg;
    for (int i = 0; i < 1000; i++) {
        /* Each loop reads its own clock: some a moment behind the others. */
        l->allowed += log_limit_allow(l->lim, 50000 - (uint64_t)(i % 3), 20);
    }
    return NULL;
}

/* One limit shared by four threads lets exactly its burst through, and a
 * clock reading a little older than the window's start does not open a
 * new window. */
static void test_limit_shared_by_threads(void **state)
{
    (void)state;
    static struct log_limit lim;
    struct limiter l[NTHREADS];
    for (int k = 0; k < NTHREADS; k++) {
        l[k] = (struct limiter){.lim = &lim};
        assert_int_equal(pthread_create(&l[k].thread, NULL, limiter_run, &l[k]), 0);
    }
    int allowed = 0;
    for (int k = 0; k < NTHREADS; k++) {
        pthread_join(l[k].thread, NULL);
        allowed += l[k].allowed;
    }
    assert_int_equal(allowed, 20);
    assert_int_equal(lim.suppressed, NTHREADS * 1000 - 20);
    /* A second later the window opens again, and the burst with it. */
    assert_true(log_limit_allow(&lim, 51000, 20));
    assert_int_equal(lim.suppressed, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    saved_stderr = dup(STDERR_FILENO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pipe_is_buffered, teardown),
        cmocka_unit_test_teardown(test_full_pipe_drops_whole_lines, teardown),
        cmocka_unit_test_teardown(test_reader_gone, teardown),
        cmocka_unit_test_teardown(test_reader_gone_with_notice_buffered, teardown),
        cmocka_unit_test_teardown(test_file_is_direct, teardown),
        cmocka_unit_test_teardown(test_threads_room_for_all, teardown),
        cmocka_unit_test_teardown(test_threads_slow_reader_drops_counted, teardown),
        cmocka_unit_test_teardown(test_threads_output_lost, teardown),
        cmocka_unit_test(test_limit_shared_by_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
