#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
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
/* Writes one log_flush call makes at most: lines that other threads keep
 * adding must not hold one caller writing for ever. */
#define LOG_FLUSH_WRITES 4
/* "Lines dropped" notices the buffer holds at most. Their places are kept
 * so that, when the output is lost, the lines counted as dropped are log
 * lines only. A notice that finds no place waits, as one that finds no
 * room does, and the lines behind it are dropped and counted meanwhile:
 * 16 notices in the buffer at once means it is overflowing anyway. */
#define LOG_NOTICES_MAX 16

/* Set at start-up, before any thread but the first logs: read without a lock. */
static enum log_level current_level = LOG_INFO;
static enum log_format current_format = LOG_TEXT;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

/*
 * Where lines go. In direct mode (fd -1: before the loops run, after they
 * stop, and always when stderr is a terminal, a file or /dev/null) each
 * line is one blocking write to stderr, made without the lock. In buffered
 * mode lines are appended to buf[head, len) and written by log_flush
 * without ever blocking.
 *
 * Every thread may log, so everything here is under `lock`, which is held
 * only for copies and bookkeeping, never across a write(2): the one thread
 * that is `writing` writes buf[head, wend) with the lock released, and the
 * others meanwhile append after len. Nobody moves bytes while that write
 * is under way (buf_put compacts only when wend is 0), so the span being
 * written stays put. A log_flush that finds another thread writing returns
 * at once; log_buffer_end sets `ending` so that it alone writes until the
 * descriptor is closed, and waits on `idle` for the writer it found.
 */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t idle;                /* signalled when `writing` goes back to false */
    int fd;                             /* the descriptor buffered lines are written to, or -1 */
    bool own_fd;                        /* fd is our own open of the pipe: close it at the end */
    bool is_socket;                     /* write with send(MSG_DONTWAIT) */
    bool broken;                        /* the reader is gone: every line is dropped */
    bool writing;                       /* a thread (log_flush, log_buffer_end) is the writer */
    bool ending;                        /* log_buffer_end runs: only it writes */
    bool full;                          /* the last write found the descriptor full */
    int restore_flags;                  /* stderr's file status flags to put back, or -1 */
    size_t head, len;                   /* unwritten bytes are buf[head, len) */
    size_t wend;                        /* during a write(2): the end of its span; else 0 */
    uint64_t dropped;                   /* lines dropped since start */
    uint64_t unreported;                /* ... of which no "lines dropped" line has told yet */
    unsigned notices;                   /* notices in buf[head, len), whose ends are: */
    size_t notice_end[LOG_NOTICES_MAX]; /* where each one's newline is, in order */
    char buf[LOG_BUF_CAP];
} sink = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .idle = PTHREAD_COND_INITIALIZER,
          .fd = -1,
          .restore_flags = -1};

/* True while log_flush has work (lines buffered, or a drop not yet told):
 * set and cleared under the lock, read without it, so that every loop's
 * flush at the end of every iteration costs one load when there is nothing
 * to write, not a lock shared by all the loops. A loop that logs sees its
 * own store at its own flush; a stale false elsewhere only defers a line to
 * a later iteration. */
static atomic_bool sink_work;

/* Serialises log_limit_allow: a limit is often a static shared by every
 * loop. One lock for all of them; each holds it for a few comparisons. */
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;

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

/* Moves buf[head, len) to the front, the notices' places with it. Never
 * while a write(2) is reading the buffer (wend != 0). Under the lock. */
static void move_to_front(void)
{
    memmove(sink.buf, sink.buf + sink.head, sink.len - sink.head);
    for (unsigned i = 0; i < sink.notices; i++) {
        sink.notice_end[i] -= sink.head;
    }
    sink.len -= sink.head;
    sink.head = 0;
}

/* Appends a whole line to the buffer, or nothing; false when it is full.
 * Under the lock. */
static bool buf_put(const char *line, size_t n)
{
    /* The span a write(2) is reading must not move: compact only when none is. */
    if (sink.len + n > LOG_BUF_CAP && sink.head > 0 && sink.wend == 0) {
        move_to_front();
    }
    if (sink.len + n > LOG_BUF_CAP) {
        return false;
    }
    memcpy(sink.buf + sink.len, line, n);
    sink.len += n;
    return true;
}

/* Puts the "lines dropped" line where the gap is, once there is room.
 * Under the lock: the count it tells must be the one it clears. */
static bool put_drop_notice(void)
{
    char msg[80], line[LOG_LINE_MAX];
    snprintf(msg, sizeof msg, "%llu log lines dropped: the log output was not keeping up",
             (unsigned long long)sink.unreported);
    size_t n = format_line(line, LOG_WARN, msg);
    if (sink.notices == LOG_NOTICES_MAX || !buf_put(line, n)) {
        return false;
    }
    sink.notice_end[sink.notices++] = sink.len - 1;
    sink.unreported = 0;
    return true;
}

static void output(const char *line, size_t n)
{
    pthread_mutex_lock(&sink.lock);
    if (sink.fd < 0) {
        pthread_mutex_unlock(&sink.lock);
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
    if (!sink.broken) {
        atomic_store_explicit(&sink_work, true, memory_order_relaxed);
    }
    pthread_mutex_unlock(&sink.lock);
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
    /* Formatted before the lock is taken: the lock covers only the copy. */
    size_t n = format_line(line, level, msg);
    output(line, n);
}

/* ------------------------------------------------------- buffered output */

/* Picks the descriptor for stderr, if it is a pipe or a socket; -1 if not.
 * Under the lock, with nothing buffered. */
static int open_sink(void)
{
    struct stat st, mine;
    /* Terminals, files and /dev/null are written directly: epoll cannot
     * watch files, and neither they nor a terminal stall for long. */
    if (fstat(STDERR_FILENO, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        return -1;
    }
    sink.head = sink.len = 0;
    sink.notices = 0;
    sink.broken = sink.full = false;
    if (S_ISSOCK(st.st_mode)) {
        /* send(MSG_DONTWAIT) does not block and leaves the socket's shared
         * flags alone (journald's stream, say, may be shared with others). */
        sink.fd = STDERR_FILENO;
        sink.is_socket = true;
        return sink.fd;
    }
    /* A pipe: opening it again gives an open file description of our own,
     * so O_NONBLOCK does not surprise whoever else holds stderr (a shell
     * that started us with 2>&1, a sibling in the same pipeline). With
     * O_NONBLOCK, opening a FIFO for writing never waits for a reader. */
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

int log_buffer_begin(void)
{
    pthread_mutex_lock(&sink.lock);
    /* A log_buffer_end still draining owns the descriptor until it is done. */
    while (sink.ending) {
        pthread_cond_wait(&sink.idle, &sink.lock);
    }
    int fd = sink.fd >= 0 ? sink.fd : open_sink();
    pthread_mutex_unlock(&sink.lock);
    return fd;
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

/* buf[from, len) will never be written: counts its log lines as dropped
 * (the notices among them are not log lines) and cuts it off. A line cut
 * by a partial write counts too: its newline is in there. Under the lock. */
static void drop_from(size_t from)
{
    uint64_t lines = count_lines(from, sink.len);
    while (sink.notices > 0 && sink.notice_end[sink.notices - 1] >= from) {
        sink.notices--;
        lines--;
    }
    sink.dropped += lines;
    sink.len = from;
}

/* w more bytes are out: forgets the notices that are now wholly written. */
static void advance(size_t w)
{
    sink.head += w;
    unsigned k = 0;
    while (k < sink.notices && sink.notice_end[k] < sink.head) {
        k++;
    }
    memmove(sink.notice_end, sink.notice_end + k, (sink.notices - k) * sizeof sink.notice_end[0]);
    sink.notices -= k;
}

/* The reader went away (EPIPE) or the fd failed: what is buffered is lost,
 * and so is every later line; they are only counted. Under the lock. While
 * another thread writes buf[head, wend), that span is its to count when its
 * write returns (some of it may get out); only what follows is dropped here. */
static void give_up(void)
{
    size_t from = sink.wend ? sink.wend : sink.head;
    drop_from(from);
    if (from == sink.head) {
        sink.head = sink.len = 0;
    }
    sink.unreported = 0;
    sink.broken = true;
    sink.full = false;
}

/* One write of buf[head, len), the lock released around it; the caller is
 * the writer. Returns the write's result with errno as it left it. */
static ssize_t write_pending(void)
{
    const char *p = sink.buf + sink.head;
    size_t n = sink.len - sink.head;
    int fd = sink.fd;
    bool is_socket = sink.is_socket;
    sink.wend = sink.len;
    pthread_mutex_unlock(&sink.lock);
    ssize_t w = is_socket ? send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(fd, p, n);
    int err = errno;
    pthread_mutex_lock(&sink.lock);
    sink.wend = 0;
    errno = err;
    return w;
}

/* Moves the lines that other threads added during a write to the front,
 * when that costs no more than the write did. Otherwise the free space
 * would only ever be at the tail, and lines appended during the next write
 * (when nothing may move) would be dropped with the buffer mostly empty. */
static void compact_after_write(void)
{
    if (sink.len - sink.head <= sink.head) {
        move_to_front();
    }
}

/* Writes what the descriptor takes, in at most LOG_FLUSH_WRITES writes.
 * Under the lock, by the thread that set `writing`. True when bytes remain. */
static bool flush_pending(void)
{
    for (int writes = 0; !sink.broken; writes++) {
        if (sink.head == sink.len) {
            sink.head = sink.len = 0;
            if (sink.unreported == 0 || !put_drop_notice()) {
                sink.full = false;
                return false;
            }
        }
        if (writes == LOG_FLUSH_WRITES) {
            return true;
        }
        ssize_t w = write_pending();
        if (w > 0) {
            advance((size_t)w);
            compact_after_write();
        }
        if (sink.broken) {
            /* Another thread gave up while we wrote: the rest of our span is lost. */
            drop_from(sink.head);
            sink.head = sink.len = 0;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            sink.full = true;
            return true;
        } else if (w < 0 && errno != EINTR) {
            give_up();
        } else if (w == 0) {
            give_up(); /* a write that takes nothing will never take more */
        }
    }
    return false;
}

bool log_flush(void)
{
    if (!atomic_load_explicit(&sink_work, memory_order_relaxed)) {
        return false;
    }
    pthread_mutex_lock(&sink.lock);
    bool pending;
    if (sink.fd < 0 || sink.broken || sink.ending) {
        pending = false;
        if (!sink.ending) {
            atomic_store_explicit(&sink_work, false, memory_order_relaxed);
        }
    } else if (sink.writing) {
        /* Another thread is at it: it writes our lines too. Watch for
         * EPOLLOUT only if the descriptor was last found full. */
        pending = sink.full;
    } else {
        sink.writing = true;
        pending = flush_pending();
        sink.writing = false;
        if (sink.head == sink.len && sink.unreported == 0) {
            atomic_store_explicit(&sink_work, false, memory_order_relaxed);
        }
        pthread_cond_broadcast(&sink.idle);
    }
    pthread_mutex_unlock(&sink.lock);
    return pending;
}

void log_output_lost(void)
{
    pthread_mutex_lock(&sink.lock);
    if (sink.fd >= 0 && !sink.broken) {
        give_up();
    }
    pthread_mutex_unlock(&sink.lock);
}

bool log_broken(void)
{
    pthread_mutex_lock(&sink.lock);
    bool broken = sink.broken;
    pthread_mutex_unlock(&sink.lock);
    return broken;
}

uint64_t log_lines_dropped(void)
{
    pthread_mutex_lock(&sink.lock);
    uint64_t dropped = sink.dropped;
    pthread_mutex_unlock(&sink.lock);
    return dropped;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000L + (t.tv_nsec - t0->tv_nsec) / 1000000L;
}

/* Under the lock, as the writer: back to direct writes. */
static void close_sink(void)
{
    if (sink.head < sink.len && !sink.broken) {
        give_up();
    }
    if (sink.own_fd) {
        close(sink.fd);
    }
    if (sink.restore_flags >= 0) {
        fcntl(STDERR_FILENO, F_SETFL, sink.restore_flags);
    }
    sink.fd = sink.restore_flags = -1;
    sink.own_fd = sink.is_socket = sink.broken = sink.full = false;
    sink.head = sink.len = 0;
    sink.notices = 0;
}

void log_buffer_end(int timeout_ms)
{
    pthread_mutex_lock(&sink.lock);
    /* A second log_buffer_end waits for the first, then finds nothing to do. */
    while (sink.ending) {
        pthread_cond_wait(&sink.idle, &sink.lock);
    }
    if (sink.fd < 0) {
        pthread_mutex_unlock(&sink.lock);
        return;
    }
    /* From here on no log_flush starts writing; the one under way, if any,
     * is a single non-blocking write away from done. */
    sink.ending = true;
    while (sink.writing) {
        pthread_cond_wait(&sink.idle, &sink.lock);
    }
    sink.writing = true;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (flush_pending()) {
        long left = timeout_ms - ms_since(&t0);
        struct pollfd pfd = {.fd = sink.fd, .events = POLLOUT};
        if (left <= 0) {
            break;
        }
        /* Waiting here blocks no one: other threads append meanwhile. */
        pthread_mutex_unlock(&sink.lock);
        int ready = poll(&pfd, 1, (int)left);
        pthread_mutex_lock(&sink.lock);
        if (ready <= 0) {
            break;
        }
    }
    close_sink();
    sink.writing = sink.ending = false;
    pthread_cond_broadcast(&sink.idle);
    pthread_mutex_unlock(&sink.lock);
}

bool log_limit_allow(struct log_limit *lim, uint64_t now_ms, unsigned burst)
{
    unsigned long suppressed = 0;
    bool allow;
    pthread_mutex_lock(&limit_lock);
    /* Loops read the clock at different moments: a `now_ms` a little older
     * than the window's start belongs to that window, it does not open one. */
    if (now_ms >= lim->window_ms + 1000) {
        suppressed = lim->suppressed;
        lim->window_ms = now_ms;
        lim->in_window = 0;
        lim->suppressed = 0;
    }
    allow = lim->in_window < burst;
    if (allow) {
        lim->in_window++;
    } else {
        lim->suppressed++;
    }
    pthread_mutex_unlock(&limit_lock);
    /* Logged without limit_lock: log_msg takes the sink's lock. */
    if (suppressed) {
        log_warn("suppressed %lu similar lines in the last second", suppressed);
    }
    return allow;
}
