#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Log lines waiting for a pipe or socket that is not reading fast enough.
 * Big enough to ride out a reader that pauses for a moment (a log shipper
 * rotating its files); small enough not to matter next to the rings. */
#define LOG_BUF_CAP  (256u << 10)
#define LOG_LINE_MAX 2400

static enum log_level current_level = LOG_INFO;
static enum log_format current_format = LOG_TEXT;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

/*
 * Where lines go. In direct mode (fd -1: before the loop runs, after it
 * stops, and always when stderr is a terminal, a file or /dev/null) each
 * line is one blocking write to stderr. In buffered mode lines are appended
 * to buf[head, len) and written by log_flush without ever blocking.
 * Only the loop's thread logs, so nothing here needs a lock.
 */
static struct {
    int fd;              /* the descriptor buffered lines are written to, or -1 */
    bool own_fd;         /* fd is our own open of the pipe: close it at the end */
    bool is_socket;      /* write with send(MSG_DONTWAIT) */
    bool broken;         /* the reader is gone: every line is dropped */
    int restore_flags;   /* stderr's file status flags to put back, or -1 */
    size_t head, len;    /* unwritten bytes are buf[head, len) */
    uint64_t dropped;    /* lines dropped since start */
    uint64_t unreported; /* ... of which no "lines dropped" line has told yet */
    char buf[LOG_BUF_CAP];
} sink = {.fd = -1, .restore_flags = -1};

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

/* Formats one complete line, newline included, into line[0, LOG_LINE_MAX);
 * returns its length. */
static size_t format_line(char *line, enum log_level level, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[40];
    size_t sn = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + sn, sizeof stamp - sn, ".%03ldZ", ts.tv_nsec / 1000000L);

    size_t n;
    if (current_format == LOG_JSON) {
        n = (size_t)snprintf(line, LOG_LINE_MAX, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                             stamp, level_names[level]);
        n = json_escape(line, n, LOG_LINE_MAX - 3, msg);
        line[n++] = '"';
        line[n++] = '}';
    } else {
        n = (size_t)snprintf(line, LOG_LINE_MAX, "%s %-5s %s", stamp, level_names[level], msg);
        if (n > LOG_LINE_MAX - 2) {
            n = LOG_LINE_MAX - 2;
        }
    }
    line[n++] = '\n';
    return n;
}

/* Appends a whole line to the buffer, or nothing; false when it is full. */
static bool buf_put(const char *line, size_t n)
{
    if (sink.len + n > LOG_BUF_CAP && sink.head > 0) {
        memmove(sink.buf, sink.buf + sink.head, sink.len - sink.head);
        sink.len -= sink.head;
        sink.head = 0;
    }
    if (sink.len + n > LOG_BUF_CAP) {
        return false;
    }
    memcpy(sink.buf + sink.len, line, n);
    sink.len += n;
    return true;
}

/* Puts the "lines dropped" line where the gap is, once there is room. */
static bool put_drop_notice(void)
{
    char msg[80], line[LOG_LINE_MAX];
    snprintf(msg, sizeof msg, "%llu log lines dropped: the log output was not keeping up",
             (unsigned long long)sink.unreported);
    size_t n = format_line(line, LOG_WARN, msg);
    if (!buf_put(line, n)) {
        return false;
    }
    sink.unreported = 0;
    return true;
}

static void output(const char *line, size_t n)
{
    if (sink.fd < 0) {
        /* One write per line so concurrent writers never interleave
         * mid-line; a failed write has nowhere to be reported. */
        ssize_t w = write(STDERR_FILENO, line, n);
        (void)w;
        return;
    }
    if (sink.broken || (sink.unreported > 0 && !put_drop_notice()) || !buf_put(line, n)) {
        sink.dropped++;
        sink.unreported += !sink.broken;
    }
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > current_level) {
        return;
    }
    char msg[1024], line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0) {
        return;
    }
    size_t n = format_line(line, level, msg);
    output(line, n);
}

/* ------------------------------------------------------- buffered output */

int log_buffer_begin(void)
{
    struct stat st, mine;
    if (sink.fd >= 0) {
        return sink.fd;
    }
    /* Terminals, files and /dev/null are written directly: epoll cannot
     * watch files, and neither they nor a terminal stall for long. */
    if (fstat(STDERR_FILENO, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        return -1;
    }
    sink.head = sink.len = 0;
    sink.broken = false;
    if (S_ISSOCK(st.st_mode)) {
        /* send(MSG_DONTWAIT) does not block and leaves the socket's shared
         * flags alone (journald's stream, say, may be shared with others). */
        sink.fd = STDERR_FILENO;
        sink.is_socket = true;
        return sink.fd;
    }
    /* A pipe: opening it again gives an open file description of our own,
     * so O_NONBLOCK does not surprise whoever else holds stderr (a shell
     * that started us with 2>&1, a sibling in the same pipeline). */
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &mine) == 0 && mine.st_ino == st.st_ino && mine.st_dev == st.st_dev) {
        sink.fd = fd;
        sink.own_fd = true;
        return fd;
    }
    if (fd >= 0) {
        close(fd);
    }
    /* No /proc: set O_NONBLOCK on the shared description, put back at the end. */
    int flags = fcntl(STDERR_FILENO, F_GETFL);
    if (flags < 0 || fcntl(STDERR_FILENO, F_SETFL, flags | O_NONBLOCK) < 0) {
        return -1;
    }
    sink.restore_flags = flags;
    sink.fd = STDERR_FILENO;
    return sink.fd;
}

/* Counts the whole lines in buf[from, to). */
static uint64_t count_lines(size_t from, size_t to)
{
    uint64_t n = 0;
    for (const char *p = sink.buf + from; (p = memchr(p, '\n', (size_t)(sink.buf + to - p))); p++) {
        n++;
    }
    return n;
}

/* The reader went away (EPIPE) or the fd failed: what is buffered is lost,
 * and so is every later line; they are only counted. */
static void give_up(void)
{
    sink.dropped += count_lines(sink.head, sink.len);
    sink.head = sink.len = 0;
    sink.unreported = 0;
    sink.broken = true;
}

bool log_flush(void)
{
    if (sink.fd < 0 || sink.broken) {
        return false;
    }
    for (;;) {
        if (sink.head == sink.len && sink.unreported > 0) {
            put_drop_notice();
        }
        if (sink.head == sink.len) {
            sink.head = sink.len = 0;
            return false;
        }
        const char *p = sink.buf + sink.head;
        size_t n = sink.len - sink.head;
        ssize_t w = sink.is_socket ? send(sink.fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL)
                                   : write(sink.fd, p, n);
        if (w > 0) {
            sink.head += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        } else {
            give_up();
            return false;
        }
    }
}

void log_output_lost(void)
{
    if (sink.fd >= 0) {
        give_up();
    }
}

bool log_broken(void)
{
    return sink.broken;
}

uint64_t log_lines_dropped(void)
{
    return sink.dropped;
}

void log_buffer_end(int timeout_ms)
{
    if (sink.fd < 0) {
        return;
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (log_flush()) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left =
            timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000L);
        struct pollfd pfd = {.fd = sink.fd, .events = POLLOUT};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            break;
        }
    }
    if (sink.head < sink.len) {
        give_up();
    }
    if (sink.own_fd) {
        close(sink.fd);
    }
    if (sink.restore_flags >= 0) {
        fcntl(STDERR_FILENO, F_SETFL, sink.restore_flags);
    }
    sink.fd = sink.restore_flags = -1;
    sink.own_fd = sink.is_socket = sink.broken = false;
    sink.head = sink.len = 0;
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
