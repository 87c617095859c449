/*
 * itest: event-stream subscribers, driven without blocking by one poll loop,
 * and the check that a publisher is answered after the fan-out. See itest.h.
 */
#include "itest_internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* ------------------------------------------------------------ subscribers */

static void sub_on_event(void *ctx, const struct ssep_event *ev)
{
    struct itest_sub *s = ctx;
    ssep_list_add(&s->events, ev);
    if (s->events.count > s->event_ms_cap) {
        size_t cap = s->event_ms_cap ? s->event_ms_cap * 2 : 16;
        while (cap < s->events.count)
            cap *= 2;
        int64_t *nt = realloc(s->event_ms, cap * sizeof *nt);
        if (!nt)
            return;
        s->event_ms = nt;
        s->event_ms_cap = cap;
    }
    if (s->events.count > 0)
        s->event_ms[s->events.count - 1] = itest_now_ms();
}

static void sub_fail(struct itest_sub *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sub_fail(struct itest_sub *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    s->state = ITEST_SUB_FAILED;
}

int itest_sub_start(struct itest_sub *s, int port, const char *target, const char *extra_headers)
{
    memset(s, 0, sizeof *s);
    s->conn.fd = -1;
    s->opened_ms = itest_now_ms();
    ssep_init(&s->parser, sub_on_event, s);
    ssep_list_init(&s->events);

    const char *extra = extra_headers ? extra_headers : "";
    size_t cap = strlen(target) + strlen(extra) + 200;
    s->req = malloc(cap);
    if (!s->req) {
        sub_fail(s, "out of memory");
        return -1;
    }
    int n = snprintf(s->req, cap,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n%s\r\n",
                     target, port, extra);
    s->req_len = n > 0 ? (size_t)n : 0;

    bool in_progress = false;
    s->conn.fd = itest_make_socket(port, true, &in_progress);
    if (s->conn.fd < 0) {
        sub_fail(s, "connect failed");
        return -1;
    }
    s->state = in_progress ? ITEST_SUB_CONNECTING : ITEST_SUB_SENDING;
    return 0;
}

short itest_sub_poll_events(const struct itest_sub *s)
{
    switch (s->state) {
    case ITEST_SUB_CONNECTING:
    case ITEST_SUB_SENDING:
        return POLLOUT;
    case ITEST_SUB_HEAD:
    case ITEST_SUB_STREAM:
        return POLLIN;
    default:
        return 0;
    }
}

static void sub_feed(struct itest_sub *s, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (s->first_byte_ms == 0)
        s->first_byte_ms = itest_now_ms();
    if (s->raw_len < sizeof s->raw - 1) {
        size_t take = n < sizeof s->raw - 1 - s->raw_len ? n : sizeof s->raw - 1 - s->raw_len;
        memcpy(s->raw + s->raw_len, p, take);
        s->raw_len += take;
        s->raw[s->raw_len] = 0;
    }
    s->body_bytes += n;
    if (ssep_feed(&s->parser, p, n) != 0)
        sub_fail(s, "sse parser: out of memory");
}

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_END };

/* Decodes chunked transfer coding of a stream body, feeding the parser. */
static void sub_body(struct itest_sub *s, const char *p, size_t n)
{
    if (!s->chunked) {
        sub_feed(s, p, n);
        return;
    }
    size_t i = 0;
    while (i < n && s->state == ITEST_SUB_STREAM) {
        char ch = p[i];
        switch (s->ch_state) {
        case CH_SIZE:
            if (isxdigit((unsigned char)ch)) {
                int d =
                    isdigit((unsigned char)ch) ? ch - '0' : (tolower((unsigned char)ch) - 'a' + 10);
                if (s->ch_left > (UINT64_MAX >> 4)) {
                    sub_fail(s, "chunk size overflow");
                    return;
                }
                s->ch_left = s->ch_left * 16 + (uint64_t)d;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                s->ch_state = CH_EXT;
            } else if (ch == '\r') {
                s->ch_state = CH_SIZE_LF;
            } else {
                sub_fail(s, "bad chunk-size byte 0x%02x", (unsigned char)ch);
                return;
            }
            i++;
            break;
        case CH_EXT:
            if (ch == '\r')
                s->ch_state = CH_SIZE_LF;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') {
                sub_fail(s, "chunk-size line not ended by CRLF");
                return;
            }
            i++;
            s->ch_state = s->ch_left ? CH_DATA : CH_END;
            break;
        case CH_DATA: {
            size_t take = n - i;
            if (take > s->ch_left)
                take = (size_t)s->ch_left;
            sub_feed(s, p + i, take);
            i += take;
            s->ch_left -= take;
            if (s->ch_left == 0)
                s->ch_state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
        case CH_DATA_LF:
            if (ch != (s->ch_state == CH_DATA_CR ? '\r' : '\n')) {
                sub_fail(s, "chunk data not followed by CRLF");
                return;
            }
            i++;
            s->ch_state = s->ch_state == CH_DATA_CR ? CH_DATA_LF : CH_SIZE;
            break;
        default: /* last chunk seen: the stream is over */
            i = n;
            break;
        }
    }
}

static void sub_check_head(struct itest_sub *s)
{
    char *end = memmem(s->conn.buf, s->conn.len, "\r\n\r\n", 4);
    if (!end) {
        if (s->conn.len > ITEST_MAX_HEAD)
            sub_fail(s, "response head too long");
        return;
    }
    size_t hl = (size_t)(end - s->conn.buf) + 4;
    if (itest_parse_head(s->conn.buf, hl, &s->head) != 0) {
        sub_fail(s, "malformed response head");
        return;
    }
    s->head_ms = itest_now_ms();
    itest_conn_consume(&s->conn, hl);
    if (s->head.status != 200) {
        sub_fail(s, "status %d, not 200", s->head.status);
        return;
    }
    if (!itest_header_starts(&s->head, "Content-Type", "text/event-stream")) {
        const char *ct = itest_header(&s->head, "Content-Type");
        sub_fail(s, "Content-Type \"%s\", not text/event-stream", ct ? ct : "(none)");
        return;
    }
    const char *te = itest_header(&s->head, "Transfer-Encoding");
    if (te) {
        if (strcasecmp(te, "chunked") != 0) {
            sub_fail(s, "unsupported Transfer-Encoding \"%s\"", te);
            return;
        }
        s->chunked = true;
    }
    s->state = ITEST_SUB_STREAM;
    size_t rest = s->conn.len;
    if (rest) {
        sub_body(s, s->conn.buf, rest);
        itest_conn_consume(&s->conn, rest);
    }
}

enum itest_sub_state itest_sub_step(struct itest_sub *s)
{
    for (;;) {
        switch (s->state) {
        case ITEST_SUB_CONNECTING: {
            struct pollfd p = {.fd = s->conn.fd, .events = POLLOUT};
            if (poll(&p, 1, 0) <= 0)
                return s->state;
            int err = 0;
            socklen_t el = sizeof err;
            if (getsockopt(s->conn.fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
                err = errno;
            if (err != 0) {
                sub_fail(s, "connect: %s", strerror(err));
                return s->state;
            }
            s->state = ITEST_SUB_SENDING;
            break;
        }
        case ITEST_SUB_SENDING: {
            ssize_t n = send(s->conn.fd, s->req + s->req_off, s->req_len - s->req_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    return s->state;
                sub_fail(s, "send: %s", strerror(errno));
                return s->state;
            }
            s->req_off += (size_t)n;
            if (s->req_off == s->req_len)
                s->state = ITEST_SUB_HEAD;
            break;
        }
        case ITEST_SUB_HEAD:
        case ITEST_SUB_STREAM: {
            char tmp[16384];
            ssize_t n = recv(s->conn.fd, tmp, sizeof tmp, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    return s->state;
                if (errno == ECONNRESET) {
                    s->conn.eof = s->conn.reset = true;
                    if (s->state == ITEST_SUB_HEAD)
                        sub_fail(s, "connection reset before the response head");
                    else
                        s->state = ITEST_SUB_CLOSED;
                    return s->state;
                }
                sub_fail(s, "recv: %s", strerror(errno));
                return s->state;
            }
            if (n == 0) {
                s->conn.eof = true;
                if (s->state == ITEST_SUB_HEAD)
                    sub_fail(s, "connection closed before the response head (%zu bytes)",
                             s->conn.len);
                else
                    s->state = ITEST_SUB_CLOSED;
                return s->state;
            }
            if (s->state == ITEST_SUB_STREAM) {
                sub_body(s, tmp, (size_t)n);
            } else {
                if (!itest_conn_reserve(&s->conn, (size_t)n)) {
                    sub_fail(s, "out of memory");
                    return s->state;
                }
                memcpy(s->conn.buf + s->conn.len, tmp, (size_t)n);
                s->conn.len += (size_t)n;
                s->conn.buf[s->conn.len] = 0;
                sub_check_head(s);
            }
            break;
        }
        default:
            return s->state;
        }
    }
}

struct want_events {
    size_t want;
};

static bool pred_events(const struct itest_sub *s, void *arg)
{
    const struct want_events *w = arg;
    return s->state == ITEST_SUB_STREAM && s->events.count >= w->want;
}

static size_t drive(struct itest_sub *subs, size_t n,
                    bool (*pred)(const struct itest_sub *, void *), void *arg, int timeout_ms)
{
    int64_t deadline = itest_now_ms() + timeout_ms;
    struct pollfd *pfd = calloc(n ? n : 1, sizeof *pfd);
    size_t *idx = calloc(n ? n : 1, sizeof *idx);
    size_t done = 0;
    if (!pfd || !idx) {
        itest_say("out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) /* use what is already there */
        if (itest_sub_poll_events(&subs[i]))
            itest_sub_step(&subs[i]);
    for (;;) {
        size_t active = 0;
        done = 0;
        for (size_t i = 0; i < n; i++) {
            struct itest_sub *s = &subs[i];
            if (pred(s, arg)) {
                done++;
                continue;
            }
            short ev = itest_sub_poll_events(s);
            if (!ev)
                continue;
            pfd[active].fd = s->conn.fd;
            pfd[active].events = ev;
            pfd[active].revents = 0;
            idx[active++] = i;
        }
        if (active == 0)
            break;
        int left = itest_remaining_ms(deadline);
        if (left == 0)
            break;
        int rc = poll(pfd, active, left);
        if (rc < 0 && errno != EINTR) {
            itest_say("poll: %s", strerror(errno));
            break;
        }
        for (size_t k = 0; rc > 0 && k < active; k++)
            if (pfd[k].revents)
                itest_sub_step(&subs[idx[k]]);
    }
    done = 0;
    for (size_t i = 0; i < n; i++)
        if (pred(&subs[i], arg))
            done++;
out:
    free(pfd);
    free(idx);
    return done;
}

size_t itest_subs_drive(struct itest_sub *subs, size_t n, size_t want, int timeout_ms)
{
    struct want_events w = {want};
    return drive(subs, n, pred_events, &w, timeout_ms);
}

bool itest_sub_wait_until(struct itest_sub *s, bool (*pred)(const struct itest_sub *, void *),
                          void *arg, int timeout_ms)
{
    return drive(s, 1, pred, arg, timeout_ms) == 1;
}

bool itest_sub_wait(struct itest_sub *s, size_t n, int timeout_ms)
{
    return itest_subs_drive(s, 1, n, timeout_ms) == 1;
}

int itest_sub_open(struct itest_sub *s, int port, const char *target, int timeout_ms)
{
    if (itest_sub_start(s, port, target, NULL) != 0) {
        itest_say("subscriber %s: %s", target, s->error);
        return -1;
    }
    if (itest_subs_drive(s, 1, 0, timeout_ms) != 1) {
        itest_say("subscriber %s: %s", target,
                  s->state == ITEST_SUB_FAILED ? s->error : "no response head in time");
        return -1;
    }
    return 0;
}

size_t itest_subs_open(struct itest_sub *subs, size_t n, int port, const char *target,
                       int timeout_ms)
{
    for (size_t i = 0; i < n; i++)
        itest_sub_start(&subs[i], port, target, NULL);
    size_t ok = itest_subs_drive(subs, n, 0, timeout_ms);
    if (ok != n) {
        size_t shown = 0;
        for (size_t i = 0; i < n && shown < 5; i++) {
            if (subs[i].state != ITEST_SUB_STREAM) {
                itest_say("subscriber %zu: state %d: %s", i, (int)subs[i].state,
                          subs[i].error[0] ? subs[i].error : "timeout");
                shown++;
            }
        }
    }
    return ok;
}

static void sub_free(struct itest_sub *s)
{
    itest_conn_close(&s->conn);
    itest_response_free(&s->head);
    ssep_free(&s->parser);
    ssep_list_free(&s->events);
    free(s->event_ms);
    s->event_ms = NULL;
    s->event_ms_cap = 0;
    free(s->req);
    s->req = NULL;
    s->state = ITEST_SUB_CLOSED;
}

void itest_sub_close(struct itest_sub *s)
{
    sub_free(s);
}

void itest_sub_abort(struct itest_sub *s)
{
    itest_close_rst(s->conn.fd);
    s->conn.fd = -1;
    sub_free(s);
}

bool itest_sub_has_preamble(const struct itest_sub *s, void *arg)
{
    (void)arg;
    return s->parser.has_retry && s->parser.comments >= 1;
}

/* Bytes readable on fd right now, without waiting. */
static size_t readable_now(int fd)
{
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) < 0 || n < 0)
        return 0;
    return (size_t)n;
}

void itest_check_answer_after_fanout(struct itest_sub *subs, size_t n, int port, const char *target,
                                     int rounds)
{
    size_t first = subs[0].events.count;
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    for (int round = 0; round < rounds; round++) {
        /* Everything earlier was read: the queues are empty now. */
        assert_int_equal(itest_subs_drive(subs, n, first + (size_t)round, itest_timeout()), n);
        for (size_t i = 0; i < n; i++) {
            for (int k = 0; k < 100 && readable_now(subs[i].conn.fd) > 0; k++)
                itest_sub_step(&subs[i]);
            assert_int_equal(readable_now(subs[i].conn.fd), 0);
        }
        char body[32];
        int len = snprintf(body, sizeof body, "{\"r\":%d}", round);
        assert_int_equal(itest_post_message_conn(&c, target, body, (size_t)len, NULL, NULL), 202);
        /* The last subscribers in fan-out order first: they are written
         * last, so an answer sent before the fan-out would show here. */
        size_t without = 0;
        for (size_t i = n; i-- > 0;)
            without += readable_now(subs[i].conn.fd) == 0;
        if (without)
            fail_msg("round %d: 202 read while %zu of %zu subscribers had nothing yet", round,
                     without, n);
    }
    itest_conn_close(&c);
    assert_int_equal(itest_subs_drive(subs, n, first + (size_t)rounds, itest_timeout()), n);
}
