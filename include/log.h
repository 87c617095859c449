/*
 * log: levelled log lines on stderr, one line per event.
 *
 * While the event loop runs, a pipe or socket on stderr (journald, a
 * `| tee`) is never written with a blocking call: lines go to a bounded
 * buffer (256 KiB) that the loop writes out whenever the descriptor takes
 * more. When the buffer is full, whole lines are dropped and counted, and a
 * line "N log lines dropped" marks the gap once there is room again. A
 * terminal, a file or /dev/null on stderr is written directly (epoll cannot
 * watch files; none of them stalls for long), and so is everything before
 * the loops start and after they stop (log_buffer_begin / log_buffer_end).
 *
 * Threads: every function here may be called from any thread at once,
 * except log_set_level and log_set_format, which are for start-up, before
 * a second thread logs (the level and format are then read without a
 * lock). A thread's lines keep their order; lines of different threads
 * never interleave mid-line. No call waits on I/O: a lock is held for
 * copies only, never across a write, and while one thread writes the
 * buffer out, a log_flush in another returns at once.
 */
#ifndef SSE_LOG_H
#define SSE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

enum log_format { LOG_TEXT = 0, LOG_JSON };

void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
enum log_level log_get_level(void);

/* Parses "error", "warn", "info" or "debug"; -1 when unknown. */
int log_level_parse(const char *s);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Switches to buffered output if stderr is a pipe or a socket. Returns the
 * descriptor the loop should watch for EPOLLOUT while log_flush says bytes
 * are pending, or -1 when lines keep going straight to stderr. A pipe is
 * reopened through /proc/self/fd/2 so that O_NONBLOCK is set on a file
 * description of our own, not on one a parent shell may share; only
 * without /proc is it set on stderr itself (and put back by log_buffer_end).
 * Called while a log_buffer_end is draining, it waits for that to finish.
 */
int log_buffer_begin(void);
/* Writes what the descriptor takes now, every thread's lines alike, in a
 * few non-blocking writes at most. True when bytes remain (watch for
 * EPOLLOUT); false when all is written or the output is broken. When
 * another thread is writing, returns at once, true only if the descriptor
 * was last found full: that thread's write takes this one's lines too, and
 * what it leaves goes out at the next log_flush of any thread. */
bool log_flush(void);
/* The descriptor reported an error or a hang-up (EPOLLERR: a pipe whose
 * reader has gone; EPOLLHUP: a socket whose peer has). With nothing buffered no write would find
 * out, and the error, level-triggered, would wake the loop again and again: give up on it as
 * log_flush does on EPIPE. */
void log_output_lost(void);
/* True once the reader has gone (EPIPE or another write error): later
 * lines are dropped and counted; stop watching the descriptor. */
bool log_broken(void);
/* Back to direct writes: flushes for at most timeout_ms (at exit a stuck
 * reader must not hold the process), drops and counts what is left. Only
 * this call waits (in poll, without the lock): meanwhile other threads go
 * on appending, and their log_flush calls return at once. */
void log_buffer_end(int timeout_ms);
/* Lines dropped because the buffer was full or the output broken. */
uint64_t log_lines_dropped(void);

/*
 * For events a client can cause at will (bad requests): at most `burst` lines
 * per second get through; the rest are counted and reported in one line
 * ("... suppressed N similar lines") when logging resumes. `now_ms` is a
 * monotonic clock. Returns true when the caller may log. One limit may be
 * shared by several threads (a static in a handler every loop runs): it is
 * updated under a lock, and a `now_ms` a little older than the window's
 * start, read by another loop, counts in that window.
 */
struct log_limit {
    uint64_t window_ms;
    unsigned in_window;
    unsigned long suppressed;
};
bool log_limit_allow(struct log_limit *lim, uint64_t now_ms, unsigned burst);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
