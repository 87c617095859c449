/*
 * itest_internal: what the files of the integration-test library share and
 * the tests do not see (they include itest.h only). The library is split by
 * job: itest_util.c (clock, timeouts, diagnostics, utilities), itest_server.c
 * (the server process and the cmocka fixture), itest_conn.c (connections),
 * itest_http.c (responses and requests) and itest_sub.c (subscribers).
 */
#ifndef SSE_ITEST_INTERNAL_H
#define SSE_ITEST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "itest.h"

/* Prints "itest: <message>" on stderr: the context a failed assertion shows. */
__attribute__((format(printf, 1, 2))) void itest_say(const char *fmt, ...);

/* Milliseconds left until the monotonic deadline (itest_now_ms), 0 once it
 * passed, capped so that it fits a poll timeout. */
int itest_remaining_ms(int64_t deadline);

/* A TCP socket connected to 127.0.0.1:port with TCP_NODELAY; blocking ones
 * get SO_RCVTIMEO/SO_SNDTIMEO of itest_timeout(). A non-blocking connect may
 * still be in progress: then *in_progress is set. Returns the fd or -1. */
int itest_make_socket(int port, bool nonblocking, bool *in_progress);

/* Grows c->buf to hold `extra` more bytes and a NUL; false when out of memory. */
bool itest_conn_reserve(struct itest_conn *c, size_t extra);

/* Reads once into c->buf, waiting until the deadline: > 0 bytes added, 0 at
 * end of stream (c->eof, c->reset set), -1 on timeout or error. */
ssize_t itest_conn_fill_deadline(struct itest_conn *c, int64_t deadline);

/* Parses a response head buf[0..len) (ending with CRLFCRLF, checked strictly)
 * into r, which then owns a copy of it. Returns 0, or -1 (reason printed; *r
 * is then empty). */
int itest_parse_head(const char *buf, size_t len, struct itest_response *r);

#endif
