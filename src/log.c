#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level current_level = LOG_INFO;
static enum log_format current_format = LOG_TEXT;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    current_level = level;
}

void log_set_format(enum log_format format)
{
    current_format = format;
}

enum log_level log_get_level(void)
{
    return current_level;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Appends s to out as the inside of a JSON string; returns the new length. */
static size_t json_escape(char *out, size_t n, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
        } else {
            out[n++] = (char)c;
        }
    }
    return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > current_level) {
        return;
    }
    char msg[1024], line[2400];
    struct timespec ts;
    struct tm tm;

    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0) {
        return;
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[40];
    size_t sn = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + sn, sizeof stamp - sn, ".%03ldZ", ts.tv_nsec / 1000000L);

    size_t n;
    if (current_format == LOG_JSON) {
        n = (size_t)snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                             stamp, level_names[level]);
        n = json_escape(line, n, sizeof line - 3, msg);
        line[n++] = '"';
        line[n++] = '}';
    } else {
        n = (size_t)snprintf(line, sizeof line, "%s %-5s %s", stamp, level_names[level], msg);
        if (n > sizeof line - 2) {
            n = sizeof line - 2;
        }
    }
    line[n++] = '\n';
    /* One write per line so concurrent writers never interleave mid-line; a
     * failed log write has nowhere to be reported, so it is dropped. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

bool log_limit_allow(struct log_limit *lim, uint64_t now_ms, unsigned burst)
{
    if (now_ms - lim->window_ms >= 1000) {
        unsigned long suppressed = lim->suppressed;
        lim->window_ms = now_ms;
        lim->in_window = 0;
        lim->suppressed = 0;
        if (suppressed) {
            log_warn("suppressed %lu similar lines in the last second", suppressed);
        }
    }
    if (lim->in_window >= burst) {
        lim->suppressed++;
        return false;
    }
    lim->in_window++;
    return true;
}
