/*
 * itest: the clock and timeouts, diagnostics, and the small utilities the
 * tests share (ids, a generator, scratch files). See itest.h.
 */
#include "itest_internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define ITEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ITEST_SANITIZED 1
#endif
#endif
#ifndef ITEST_SANITIZED
#define ITEST_SANITIZED 0
#endif

__attribute__((format(printf, 1, 2))) void itest_say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "itest: %s\n", line);
}

/* ------------------------------------------------------------------ time */

int64_t itest_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void itest_sleep_ms(int ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int timeout_scale(void)
{
    static int scale;
    if (scale == 0) {
        const char *e = getenv("ITEST_TIMEOUT_SCALE");
        long v = e ? strtol(e, NULL, 10) : 0;
        scale = v > 0 && v < 1000 ? (int)v : (ITEST_SANITIZED ? 3 : 1);
    }
    return scale;
}

int itest_ms(int base_ms)
{
    return base_ms * timeout_scale();
}

int itest_timeout(void)
{
    return itest_ms(5000);
}

int itest_remaining_ms(int64_t deadline)
{
    int64_t left = deadline - itest_now_ms();
    if (left <= 0)
        return 0;
    return left > 1000000 ? 1000000 : (int)left;
}

/* ------------------------------------------------------- test utilities */

bool itest_parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

uint64_t itest_event_id(const struct ssep_event *ev)
{
    uint64_t id = 0;
    if (!itest_parse_u64(ev->id, &id))
        fail_msg("event id \"%s\" is not a decimal number (type %s, data \"%.80s\")", ev->id,
                 ev->type, ev->data);
    return id;
}

void itest_print_events(const char *label, const struct ssep_list *evs, size_t from, size_t max)
{
    fprintf(stderr, "%s: %zu events\n", label, evs->count);
    for (size_t i = from; i < evs->count && i - from < max; i++)
        fprintf(stderr, "  [%zu] type=%s id=%s data=\"%.60s\"%s\n", i, evs->ev[i].type,
                evs->ev[i].id, evs->ev[i].data, evs->ev[i].data_len > 60 ? "..." : "");
}

void itest_print_escaped(const char *label, const void *bytes, size_t len, size_t max)
{
    const unsigned char *p = bytes;
    fprintf(stderr, "%s (%zu bytes): \"", label, len);
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char ch = p[i];
        if (ch == '\n')
            fputs("\\n", stderr);
        else if (ch == '\r')
            fputs("\\r", stderr);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(stderr, "\\x%02x", ch);
        else
            fputc(ch, stderr);
    }
    fprintf(stderr, "%s\"\n", len > max ? "..." : "");
}

uint64_t itest_rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int itest_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "we");
    if (!f) {
        itest_say("fopen %s: %s", path, strerror(errno));
        return -1;
    }
    size_t w = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || w != len) {
        itest_say("write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void itest_rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
