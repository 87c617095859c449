/*
 * log: levelled log lines on stderr, one line per event.
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
 * For events a client can cause at will (bad requests): at most `burst` lines
 * per second get through; the rest are counted and reported in one line
 * ("... suppressed N similar lines") when logging resumes. `now_ms` is a
 * monotonic clock. Returns true when the caller may log.
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
