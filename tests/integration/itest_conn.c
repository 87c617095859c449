/*
 * itest: raw connections to the server with deadlines, and buffered ones.
 * See itest.h.
 */
#include "itest_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ----------------------------------------------------------- connections */

int itest_make_socket(int port, bool nonblocking, bool *in_progress)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) {
        itest_say("socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!nonblocking) {
        int ms = itest_timeout();
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (in_progress)
        *in_progress = false;
    while (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno == EINTR)
            continue;
        if (nonblocking && errno == EINPROGRESS && in_progress) {
            *in_progress = true;
            break;
        }
        itest_say("connect to 127.0.0.1:%d: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int itest_connect(int port)
{
    return itest_make_socket(port, false, NULL);
}

int itest_connect_nb(int port)
{
    bool in_progress;
    return itest_make_socket(port, true, &in_progress);
}

void itest_close_rst(int fd)
{
    if (fd < 0)
        return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

bool itest_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* Non-blocking socket, or SO_SNDTIMEO expired: wait a bit. */
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                if (poll(&pf, 1, itest_timeout()) > 0)
                    continue;
                itest_say("send: timed out with %zu bytes left", len);
                return false;
            }
            itest_say("send: %s (%zu bytes left)", strerror(errno), len);
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool itest_send_str(int fd, const char *s)
{
    return itest_send_all(fd, s, strlen(s));
}

bool itest_send_slowly(int fd, const void *buf, size_t len, size_t chunk, int pause_ms)
{
    const char *p = buf;
    if (chunk == 0)
        chunk = 1;
    while (len > 0) {
        size_t n = len < chunk ? len : chunk;
        if (!itest_send_all(fd, p, n))
            return false;
        p += n;
        len -= n;
        if (len > 0)
            itest_sleep_ms(pause_ms);
    }
    return true;
}

/* Reads up to cap bytes, waiting until the deadline. Returns the count, 0 at
 * end of stream or on a reset (then *reset is set, when reset is not NULL),
 * -1 on timeout (errno ETIMEDOUT) or error. */
static ssize_t recv_until(int fd, void *buf, size_t cap, int64_t deadline, bool *reset)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, itest_remaining_ms(deadline));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == ECONNRESET) {
            if (reset)
                *reset = true;
            return 0;
        }
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (itest_now_ms() >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

ssize_t itest_recv_deadline(int fd, void *buf, size_t cap, int timeout_ms)
{
    return recv_until(fd, buf, cap, itest_now_ms() + timeout_ms, NULL);
}

int itest_conn_open(struct itest_conn *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = itest_connect(port);
    return c->fd >= 0 ? 0 : -1;
}

void itest_conn_close(struct itest_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

bool itest_conn_send(struct itest_conn *c, const char *s)
{
    return itest_send_all(c->fd, s, strlen(s));
}

bool itest_conn_sendn(struct itest_conn *c, const void *buf, size_t len)
{
    return itest_send_all(c->fd, buf, len);
}

bool itest_conn_reserve(struct itest_conn *c, size_t extra)
{
    if (c->len + extra + 1 <= c->cap)
        return true;
    size_t cap = c->cap ? c->cap : 4096;
    while (cap < c->len + extra + 1)
        cap *= 2;
    char *nb = realloc(c->buf, cap);
    if (!nb) {
        itest_say("out of memory");
        return false;
    }
    c->buf = nb;
    c->cap = cap;
    return true;
}

/* Reads once (waiting until the deadline). > 0 bytes, 0 end, -1 timeout/error. */
ssize_t itest_conn_fill_deadline(struct itest_conn *c, int64_t deadline)
{
    if (c->eof)
        return 0;
    if (!itest_conn_reserve(c, 16384))
        return -1;
    bool reset = false;
    ssize_t n = recv_until(c->fd, c->buf + c->len, c->cap - c->len - 1, deadline, &reset);
    if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = 0;
    } else if (n == 0) {
        c->eof = true;
        if (reset)
            c->reset = true;
    }
    return n;
}

ssize_t itest_conn_fill(struct itest_conn *c, int timeout_ms)
{
    return itest_conn_fill_deadline(c, itest_now_ms() + timeout_ms);
}

bool itest_conn_read_until(struct itest_conn *c, const char *needle, int timeout_ms)
{
    int64_t deadline = itest_now_ms() + timeout_ms;
    size_t nl = strlen(needle);
    for (;;) {
        if (c->len >= nl && memmem(c->buf, c->len, needle, nl))
            return true;
        if (itest_conn_fill_deadline(c, deadline) <= 0)
            return false;
    }
}

bool itest_conn_wait_close(struct itest_conn *c, int timeout_ms)
{
    int64_t deadline = itest_now_ms() + timeout_ms;
    for (;;) {
        if (c->eof)
            return true;
        ssize_t n = itest_conn_fill_deadline(c, deadline);
        if (n == 0)
            return true;
        if (n < 0)
            return false;
        if (c->len > ITEST_MAX_BODY) {
            itest_say("wait_close: over %u bytes received without a close", ITEST_MAX_BODY);
            return false;
        }
    }
}

void itest_conn_consume(struct itest_conn *c, size_t n)
{
    if (n >= c->len) {
        c->len = 0;
    } else {
        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
    }
    if (c->buf)
        c->buf[c->len] = 0;
}
