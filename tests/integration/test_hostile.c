/*
 * test_hostile: the real server against hostile and broken clients --
 * request limits (414 / 431 / 413), header and keep-alive timeouts (and
 * streams that must outlive them), --max-clients, a low descriptor limit
 * (no busy loop, recovery), request smuggling and protocol abuse, 1000
 * slowloris connections next to honest subscribers, random garbage and
 * truncated requests, abrupt resets at every stage, and write fairness
 * between one fast reader and 200 slower ones.
 *
 * Everything is bounded in count and time and runs over loopback. Every
 * test starts its own server (with the options it needs) and stops it with
 * SIGTERM, asserting exit status 0 -- under AddressSanitizer that is also
 * the leak check. Figures worth knowing are printed on stdout ("hostile: ").
 * $ITEST_SEED sets the seed of the garbage generator (printed when used);
 * $ITEST_FILTER runs only the tests matching a cmocka pattern.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "itest.h"

/* A valid request pipelined after a bad one: it must never be answered. */
#define PIPE "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

/* ---------------------------------------------------------------- helpers */

static struct itest_server start_server(const char *const *args)
{
    struct itest_server s = itest_server_start(args);
    assert_true(s.pid > 0);
    return s;
}

static void stop_server(struct itest_server *s)
{
    assert_int_equal(itest_server_stop(s), 0);
}

/* An upper bound of `base_ms` on a plain build, widened (not multiplied) on
 * slow builds: for tolerances that are part of the specification. */
static int64_t upper_ms(int base_ms)
{
    return base_ms + itest_ms(1000) - 1000;
}

/* Non-blocking send of what it can; false when the connection is broken. */
static bool nb_send(int fd, const void *p, size_t len, size_t *sent)
{
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
        *sent = (size_t)n;
        return true;
    }
    *sent = 0;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* GET /healthz on a fresh connection: its status, -1 on failure. */
static int healthz(int port)
{
    return itest_request_status(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 0);
}

/* /ping answers with its head and first bytes ("retry:" and a comment). */
static void check_ping(int port)
{
    struct itest_sub s;
    assert_int_equal(itest_sub_open(&s, port, "/ping", itest_timeout()), 0);
    int64_t deadline = itest_now_ms() + itest_timeout();
    while (!strstr(s.raw, "\n\n") && itest_now_ms() < deadline && s.state == ITEST_SUB_STREAM) {
        struct pollfd p = {.fd = s.conn.fd, .events = POLLIN};
        poll(&p, 1, 50);
        itest_sub_step(&s);
    }
    if (strncmp(s.raw, "retry:", 6) != 0 || !strstr(s.raw, "\n\n"))
        itest_print_escaped("/ping first bytes", s.raw, s.raw_len, 120);
    assert_memory_equal(s.raw, "retry:", 6);
    assert_non_null(strstr(s.raw, "\n\n"));
    itest_sub_close(&s);
}

/* The server still serves: /healthz 200 and /ping's first bytes. */
static void check_alive(struct itest_server *s)
{
    assert_true(itest_server_running(s));
    assert_int_equal(healthz(s->port), 200);
    check_ping(s->port);
}

/* Waits for the server's fd count to come back to `baseline` (or below: a
 * wrapper such as valgrind may hold a descriptor of its own for a while). */
static void check_fds(const struct itest_server *s, int baseline, const char *what)
{
    int n = itest_server_fd_settle(s, baseline, itest_ms(5000));
    if (n > baseline)
        fprintf(stderr, "%s: server fd count %d, baseline %d\n", what, n, baseline);
    assert_true(n >= 0 && n <= baseline);
}

/* Skips the test when our descriptor limit cannot hold n sockets. */
static void need_fds(rlim_t n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < n) {
        printf("hostile: skipped: needs %llu descriptors, RLIMIT_NOFILE is %llu\n",
               (unsigned long long)n, (unsigned long long)rl.rlim_cur);
        skip();
    }
}

/* utime + stime of a process in ms (/proc/<pid>/stat), -1 on error. */
static long cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    /* Fields after "(comm)": state is field 3; utime and stime are 14, 15. */
    for (int field = 3; field < 14; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return -1;
    }
    unsigned long long ut = 0, st = 0;
    if (sscanf(p, " %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (long)((ut + st) * 1000ull / (unsigned long long)(hz > 0 ? hz : 100));
}

/*
 * Sends raw on a fresh connection and expects an error answer whose status
 * is one of allowed[0..n): JSON body, CORS, "Connection: close", then the
 * connection closed with nothing after the answer (so nothing pipelined
 * after the bad request was processed). Returns the status.
 */
static int expect_refused(int port, const char *label, const void *raw, size_t len,
                          const int *allowed, size_t nallowed)
{
    struct itest_conn c;
    struct itest_response r;
    assert_int_equal(itest_conn_open(&c, port), 0);
    /* The server may answer and stop reading before all is sent. */
    (void)itest_conn_sendn(&c, raw, len);
    if (itest_read_response(&c, &r, 0, itest_timeout()) != 0) {
        fprintf(stderr, "case \"%s\": no answer\n", label);
        itest_print_escaped("request", raw, len, 120);
        fail();
    }
    bool ok_status = false;
    for (size_t i = 0; i < nallowed; i++)
        ok_status |= r.status == allowed[i];
    bool ok = ok_status && itest_header_has_token(&r, "Connection", "close") &&
              itest_header_starts(&r, "Content-Type", "application/json") &&
              itest_is_json_error(&r) && itest_header(&r, "Access-Control-Allow-Origin");
    if (!ok) {
        fprintf(stderr, "case \"%s\": unexpected answer\n", label);
        itest_print_escaped("request", raw, len, 120);
        itest_show_response("answer", &r, 300);
    }
    assert_true(ok);
    int status = r.status;
    itest_response_free(&r);
    bool closed = itest_conn_wait_close(&c, itest_timeout());
    if (!closed || c.len) {
        fprintf(stderr, "case \"%s\": %s\n", label,
                closed ? "bytes after the error answer" : "connection not closed");
        itest_print_escaped("after the answer", c.buf ? c.buf : "", c.len, 120);
    }
    assert_true(closed);
    assert_int_equal(c.len, 0);
    itest_conn_close(&c);
    return status;
}

/* A request that must succeed with `status` (a control case); len 0:
 * strlen(raw). */
static void expect_status(int port, const char *label, const char *raw, size_t len, int status)
{
    struct itest_response r;
    if (len == 0)
        len = strlen(raw);
    assert_int_equal(itest_request_n(port, raw, len, 0, &r), 0);
    if (r.status != status) {
        fprintf(stderr, "control \"%s\": expected %d\n", label, status);
        itest_show_response("answer", &r, 300);
    }
    assert_int_equal(r.status, status);
    itest_response_free(&r);
}

/* ------------------------------------------------------------- 1. limits */

static char *repeat_into(char *p, char ch, size_t n)
{
    memset(p, ch, n);
    return p + n;
}

/* "GET /aaa...a HTTP/1.1" of exactly `line_len` bytes, then Host and extra. */
static size_t build_long_line(char *out, size_t line_len, const char *extra)
{
    static const char pre[] = "GET /", post[] = " HTTP/1.1";
    char *p = out;
    memcpy(p, pre, sizeof pre - 1);
    p += sizeof pre - 1;
    p = repeat_into(p, 'a', line_len - (sizeof pre - 1) - (sizeof post - 1));
    memcpy(p, post, sizeof post - 1);
    p += sizeof post - 1;
    p += sprintf(p, "\r\nHost: x\r\n\r\n%s", extra);
    return (size_t)(p - out);
}

/* A GET /healthz whose header section (everything after the request line,
 * the final CRLF included) is exactly `section` bytes. */
static size_t build_big_header(char *out, size_t section, const char *extra)
{
    /* "Host: x\r\n" (9) + "X-Pad: " (7) + pad + "\r\n" (2) + "\r\n" (2) */
    char *p = out + sprintf(out, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ");
    p = repeat_into(p, 'p', section - 20);
    p += sprintf(p, "\r\n\r\n%s", extra);
    return (size_t)(p - out);
}

/* A GET /healthz with `fields` header fields in all (Host included). */
static size_t build_many_fields(char *out, int fields, const char *extra)
{
    char *p = out + sprintf(out, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for (int i = 1; i < fields; i++)
        p += sprintf(p, "X-F%d: v\r\n", i);
    p += sprintf(p, "\r\n%s", extra);
    return (size_t)(p - out);
}

static void test_limits(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-body", "1024", NULL};
    struct itest_server s = start_server(args);
    char *raw = malloc(64 * 1024);
    assert_non_null(raw);
    size_t n;
    static const int s414[] = {414}, s431[] = {431}, s413[] = {413};

    /* Request line: 8192 bytes is fine, 8193 is 414. */
    n = build_long_line(raw, 8192, "");
    expect_status(s.port, "request line of 8192 bytes", raw, n, 404);
    n = build_long_line(raw, 8193, PIPE);
    expect_refused(s.port, "request line of 8193 bytes", raw, n, s414, 1);
    n = build_long_line(raw, 20000, PIPE);
    expect_refused(s.port, "request line of 20000 bytes", raw, n, s414, 1);

    /* Header section: 16384 bytes is fine, 16385 is 431. */
    n = build_big_header(raw, 16384, "");
    expect_status(s.port, "header section of 16384 bytes", raw, n, 200);
    n = build_big_header(raw, 16385, PIPE);
    expect_refused(s.port, "header section of 16385 bytes", raw, n, s431, 1);
    n = build_big_header(raw, 40000, PIPE);
    expect_refused(s.port, "header section of 40000 bytes", raw, n, s431, 1);

    /* Fields: 100 are fine, 101 are 431. */
    n = build_many_fields(raw, 100, "");
    expect_status(s.port, "100 header fields", raw, n, 200);
    n = build_many_fields(raw, 101, PIPE);
    expect_refused(s.port, "101 header fields", raw, n, s431, 1);
    n = build_many_fields(raw, 1000, PIPE);
    expect_refused(s.port, "1000 header fields", raw, n, s431, 1);

    /* Body over --max-body: 413 from the head alone, before any body byte;
     * the "body" then sent (valid requests) is never processed. */
    struct itest_conn c;
    struct itest_response r;
    assert_int_equal(itest_conn_open(&c, s.port), 0);
    assert_true(
        itest_conn_send(&c, "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    if (r.status != 413)
        itest_show_response("expected 413", &r, 300);
    assert_int_equal(r.status, 413);
    assert_true(itest_header_has_token(&r, "Connection", "close"));
    assert_true(itest_is_json_error(&r));
    itest_response_free(&r);
    char *p = raw;
    while ((size_t)(p - raw) < 2000 - sizeof PIPE)
        p += sprintf(p, PIPE);
    (void)itest_conn_sendn(&c, raw, (size_t)(p - raw));
    assert_true(itest_conn_wait_close(&c, itest_timeout()));
    if (c.len)
        itest_print_escaped("after the 413", c.buf, c.len, 120);
    assert_int_equal(c.len, 0);
    itest_conn_close(&c);

    /* Same with the body sent at once. */
    p = raw + sprintf(raw, "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n");
    p = repeat_into(p, ' ', 1025);
    p += sprintf(p, PIPE);
    expect_refused(s.port, "Content-Length 1025 over --max-body 1024", raw, (size_t)(p - raw), s413,
                   1);
    /* A chunked body growing over the limit. */
    p = raw + sprintf(raw, "POST /message HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "401\r\n");
    p = repeat_into(p, ' ', 0x401);
    p += sprintf(p, "\r\n0\r\n\r\n" PIPE);
    expect_refused(s.port, "chunk over --max-body", raw, (size_t)(p - raw), s413, 1);

    /* Control: exactly the limit is accepted. */
    p = raw;
    *p++ = '"';
    p = repeat_into(p, 'y', 1022);
    *p++ = '"';
    assert_int_equal(itest_post_message(s.port, NULL, raw, 1024, NULL, NULL), 202);

    free(raw);
    check_alive(&s);
    stop_server(&s);
}

/* ----------------------------------------------------------- 2. timeouts */

/* A connection watched by a poll loop: when its first bytes and its end
 * arrived, and optionally bytes to drip at an interval. */
struct wconn {
    struct itest_conn c;
    int64_t t_start, t_first, t_eof;
    const char *drip;
    size_t drip_len, drip_off;
    int drip_every_ms;
    int64_t next_drip;
    bool write_broken;
};

static void wconn_start(struct wconn *w, int port, const char *initial)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(itest_conn_open(&w->c, port), 0);
    w->t_start = itest_now_ms();
    if (initial && *initial)
        assert_true(itest_conn_send(&w->c, initial));
}

/* Reads what is there (non-blocking), noting the times. */
static void wconn_read(struct wconn *w)
{
    for (;;) {
        if (w->c.eof)
            return;
        size_t before = w->c.len;
        ssize_t n = itest_conn_fill(&w->c, 0);
        if (n > 0 && before == 0 && w->t_first == 0)
            w->t_first = itest_now_ms();
        if (n == 0 && w->t_eof == 0)
            w->t_eof = itest_now_ms();
        if (n <= 0)
            return;
    }
}

/* Drives ws[0..n) (reads; drips) until `until` (absolute ms). */
static void wconns_drive(struct wconn *ws, size_t n, int64_t until)
{
    struct pollfd *pfd = calloc(n, sizeof *pfd);
    assert_non_null(pfd);
    for (;;) {
        int64_t now = itest_now_ms();
        if (now >= until)
            break;
        int64_t wake = until;
        for (size_t i = 0; i < n; i++) {
            struct wconn *w = &ws[i];
            if (w->drip && !w->c.eof && !w->write_broken && w->drip_off < w->drip_len) {
                if (now >= w->next_drip) {
                    size_t sent;
                    w->write_broken = !nb_send(w->c.fd, w->drip + w->drip_off, 1, &sent);
                    w->drip_off += sent;
                    w->next_drip = now + w->drip_every_ms;
                }
                if (w->next_drip < wake)
                    wake = w->next_drip;
            }
            pfd[i].fd = w->c.eof ? -1 : w->c.fd;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
        }
        int rc = poll(pfd, n, (int)(wake > now ? wake - now : 0));
        for (size_t i = 0; rc > 0 && i < n; i++)
            if (pfd[i].revents)
                wconn_read(&ws[i]);
    }
    free(pfd);
}

/* Checks w got a 408 (JSON, Connection: close) at ~1 s and was closed. */
static void check_408(struct wconn *w, const char *label)
{
    struct itest_response r;
    int64_t at = w->t_first - w->t_start;
    if (itest_read_response(&w->c, &r, 0, 0) != 0) {
        fprintf(stderr, "%s: no complete answer\n", label);
        fail();
    }
    bool ok = r.status == 408 && itest_is_json_error(&r) &&
              itest_header_has_token(&r, "Connection", "close");
    if (!ok)
        itest_show_response(label, &r, 300);
    assert_true(ok);
    itest_response_free(&r);
    printf("hostile: %s: 408 after %" PRId64 " ms, closed after %" PRId64 " ms\n", label, at,
           w->t_eof ? w->t_eof - w->t_start : -1);
    assert_true(at >= 900);
    assert_true(at <= upper_ms(2000));
    assert_true(w->c.eof);
    assert_true(w->t_eof - w->t_first <= upper_ms(500));
    assert_int_equal(w->c.len, 0);
}

static void test_timeouts(void **state)
{
    (void)state;
    static const char *const args[] = {"--header-timeout", "1", "--keepalive-timeout", "1", NULL};
    struct itest_server s = start_server(args);
    int baseline = itest_server_fd_count(&s);

    /* Streams first: they must outlive both timeouts. */
    struct itest_sub msgs, ping;
    assert_int_equal(itest_sub_open(&msgs, s.port, "/messages", itest_timeout()), 0);
    assert_int_equal(itest_sub_open(&ping, s.port, "/ping", itest_timeout()), 0);

    enum { SILENT, HALF_HEAD, BODY_STALL, DRIBBLE, KEEPALIVE, KEEPALIVE2, NW };
    struct wconn w[NW];
    static const char dribble[] =
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: abcdefghijkl\r\n\r\n";
    wconn_start(&w[SILENT], s.port, NULL);
    wconn_start(&w[HALF_HEAD], s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: ab");
    wconn_start(&w[BODY_STALL], s.port,
                "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\"");
    wconn_start(&w[DRIBBLE], s.port, NULL);
    w[DRIBBLE].drip = dribble;
    w[DRIBBLE].drip_len = sizeof dribble - 1;
    w[DRIBBLE].drip_every_ms = 150; /* the head would take ~8 s */
    wconn_start(&w[KEEPALIVE], s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    /* Keep-alive twice: a second request 600 ms after the first answer
     * restarts the idle timer. */
    wconn_start(&w[KEEPALIVE2], s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");

    int64_t t0 = itest_now_ms();
    struct itest_response r;
    /* The second request of KEEPALIVE2, 600 ms after its first answer. */
    wconns_drive(w, NW, t0 + 600);
    assert_int_equal(itest_read_response(&w[KEEPALIVE2].c, &r, 0, 0), 0);
    assert_int_equal(r.status, 200);
    itest_response_free(&r);
    assert_false(w[KEEPALIVE2].c.eof);
    assert_true(itest_conn_send(&w[KEEPALIVE2].c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    int64_t t_second = itest_now_ms();
    wconns_drive(w, NW, t0 + 3000);

    check_408(&w[SILENT], "silent connection");
    check_408(&w[HALF_HEAD], "half a request head");
    check_408(&w[BODY_STALL], "stalled request body");
    check_408(&w[DRIBBLE], "head dribbled a byte per 150 ms");

    /* Idle keep-alive: answered at once, then closed silently after ~1 s. */
    assert_int_equal(itest_read_response(&w[KEEPALIVE].c, &r, 0, 0), 0);
    assert_int_equal(r.status, 200);
    assert_false(itest_header_has_token(&r, "Connection", "close"));
    itest_response_free(&r);
    int64_t idle = w[KEEPALIVE].t_eof - w[KEEPALIVE].t_first;
    printf("hostile: idle keep-alive closed %" PRId64 " ms after its answer\n", idle);
    assert_true(w[KEEPALIVE].c.eof);
    assert_int_equal(w[KEEPALIVE].c.len, 0);
    assert_true(idle >= 900 && idle <= upper_ms(2000));

    assert_int_equal(itest_read_response(&w[KEEPALIVE2].c, &r, 0, 0), 0);
    assert_int_equal(r.status, 200);
    itest_response_free(&r);
    idle = w[KEEPALIVE2].t_eof - t_second;
    printf("hostile: keep-alive with a second request closed %" PRId64 " ms after it\n", idle);
    assert_true(w[KEEPALIVE2].c.eof);
    assert_int_equal(w[KEEPALIVE2].c.len, 0);
    assert_true(idle >= 900 && idle <= upper_ms(2000));
    for (size_t i = 0; i < NW; i++)
        itest_conn_close(&w[i].c);

    /* Both streams are still open after 3 s: /ping has ponged, /messages
     * still delivers. */
    itest_sub_step(&msgs);
    itest_sub_step(&ping);
    assert_int_equal(ping.state, ITEST_SUB_STREAM);
    assert_int_equal(msgs.state, ITEST_SUB_STREAM);
    assert_true(itest_sub_wait(&ping, 1, itest_timeout()));
    uint64_t id;
    long clients = -1;
    assert_int_equal(itest_post_message(s.port, NULL, "{\"late\":1}", 10, &id, &clients), 202);
    assert_int_equal(clients, 1);
    assert_true(itest_sub_wait(&msgs, 1, itest_timeout()));
    assert_string_equal(msgs.events.ev[0].data, "{\"late\":1}");
    printf("hostile: streams alive after %" PRId64 " ms with both timeouts at 1 s\n",
           itest_now_ms() - t0);
    itest_sub_close(&msgs);
    itest_sub_close(&ping);

    check_fds(&s, baseline, "timeouts");
    stop_server(&s);
}

/* -------------------------------------------------------- 3. max-clients */

#define MAXC 20

/* Expects a 503 with Retry-After and a close on a new connection; when
 * `send_first`, a request is sent before reading. */
static void expect_busy(int port, bool send_first)
{
    struct itest_conn c;
    struct itest_response r;
    assert_int_equal(itest_conn_open(&c, port), 0);
    if (send_first)
        (void)itest_conn_send(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    if (itest_read_response(&c, &r, 0, itest_timeout()) != 0) {
        fprintf(stderr, "no 503 over --max-clients (%s)\n",
                send_first ? "request sent first" : "nothing sent");
        fail();
    }
    if (r.status != 503 || !itest_header(&r, "Retry-After"))
        itest_show_response("over --max-clients", &r, 300);
    assert_int_equal(r.status, 503);
    assert_non_null(itest_header(&r, "Retry-After"));
    assert_true(itest_header_has_token(&r, "Connection", "close"));
    assert_true(itest_is_json_error(&r));
    itest_response_free(&r);
    assert_true(itest_conn_wait_close(&c, itest_timeout()));
    itest_conn_close(&c);
}

static void keepalive_get(struct itest_conn *c, int port)
{
    struct itest_response r;
    assert_int_equal(itest_conn_open(c, port), 0);
    assert_true(itest_conn_send(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(itest_read_response(c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 200);
    itest_response_free(&r);
}

static void test_max_clients(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-clients", "20", NULL};
    struct itest_server s = start_server(args);
    int baseline = itest_server_fd_count(&s);

    /* 19 keep-alive connections and one subscriber: the server is full. */
    struct itest_conn conns[MAXC - 1];
    for (int i = 0; i < MAXC - 1; i++)
        keepalive_get(&conns[i], s.port);
    struct itest_sub sub;
    assert_int_equal(itest_sub_open(&sub, s.port, "/messages", itest_timeout()), 0);

    for (int i = 0; i < 5; i++)
        expect_busy(s.port, false);
    for (int i = 0; i < 5; i++)
        expect_busy(s.port, true);

    /* The N connections still work: a POST on one reaches the subscriber. */
    uint64_t id;
    long clients = -1;
    assert_int_equal(itest_post_message_conn(&conns[0], NULL, "{\"full\":true}", 13, &id, &clients),
                     202);
    assert_int_equal(clients, 1);
    assert_true(itest_sub_wait(&sub, 1, itest_timeout()));
    assert_string_equal(sub.events.ev[0].data, "{\"full\":true}");
    struct itest_response r;
    assert_true(itest_conn_send(&conns[MAXC - 2], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(itest_read_response(&conns[MAXC - 2], &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 200);
    itest_response_free(&r);

    /* Close 5: five new connections are accepted (once the server has seen
     * the closes), and the one after them is refused again. */
    for (int i = 1; i <= 5; i++)
        itest_conn_close(&conns[i]);
    int64_t t_closed = itest_now_ms();
    int64_t deadline = t_closed + itest_timeout();
    int accepted = 0;
    while (accepted < 5) {
        struct itest_conn c;
        assert_int_equal(itest_conn_open(&c, s.port), 0);
        assert_true(itest_conn_send(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
        int st = r.status;
        itest_response_free(&r);
        if (st == 200) {
            conns[++accepted] = c; /* kept open */
            continue;
        }
        assert_int_equal(st, 503);
        itest_conn_close(&c);
        assert_true(itest_now_ms() < deadline);
        itest_sleep_ms(10);
    }
    printf("hostile: --max-clients 20: 5 slots reusable %" PRId64 " ms after 5 closes\n",
           itest_now_ms() - t_closed);
    expect_busy(s.port, false);

    for (int i = 0; i < MAXC - 1; i++)
        itest_conn_close(&conns[i]);
    itest_sub_close(&sub);
    check_fds(&s, baseline, "max-clients");
    assert_int_equal(healthz(s.port), 200);
    stop_server(&s);
}

/* ------------------------------------------------------- 4. fd exhaustion */

#define FD_LIMIT   256
#define FLOOD      400
#define CPU_MAX_MS 300

/* Opens FLOOD connections against a server started with RLIMIT_NOFILE 256,
 * checks it does not spin while saturated, then that it recovers. */
static void flood_low_fd_limit(const char *const *args, const char *label)
{
    need_fds(FLOOD + 100);
    struct itest_server s = itest_server_start_nofile(args, FD_LIMIT);
    assert_true(s.pid > 0);
    int baseline = itest_server_fd_count(&s);
    assert_int_equal(healthz(s.port), 200);

    int *fds = malloc(FLOOD * sizeof *fds);
    assert_non_null(fds);
    for (int i = 0; i < FLOOD; i++) {
        fds[i] = itest_connect_nb(s.port);
        assert_true(fds[i] >= 0);
    }
    /* Let it take what it can; the rest stay in the backlog or are shed. */
    itest_sleep_ms(itest_ms(500));

    /* Saturated: CPU time over 2 s, while a few more clients knock. */
    long cpu0 = cpu_ms(s.pid);
    int64_t t0 = itest_now_ms();
    int extra_fds[20];
    for (int i = 0; i < 20; i++) {
        extra_fds[i] = itest_connect_nb(s.port);
        itest_sleep_ms(100);
    }
    long cpu1 = cpu_ms(s.pid);
    int64_t t1 = itest_now_ms();
    int server_fds = itest_server_fd_count(&s);
    assert_true(cpu0 >= 0 && cpu1 >= 0);

    /* What the flood got: 503s, closes without an answer, or nothing yet. */
    int busy = 0, closed = 0, silent = 0;
    for (int i = 0; i < FLOOD; i++) {
        char buf[512];
        ssize_t n = recv(fds[i], buf, sizeof buf - 1, MSG_DONTWAIT);
        if (n > 0) {
            buf[n] = 0;
            if (strncmp(buf, "HTTP/1.1 503 ", 13) == 0 && strstr(buf, "Retry-After:"))
                busy++;
            else
                itest_print_escaped("unexpected answer to a flood connection", buf, (size_t)n, 120);
        } else if (n == 0 || errno == ECONNRESET) {
            closed++;
        } else {
            silent++;
        }
    }
    printf("hostile: %s: %d connections: %d held, %d got 503, %d closed unanswered; "
           "server fds %d/%d; CPU %ld ms over %" PRId64 " ms saturated\n",
           label, FLOOD, silent, busy, closed, server_fds, FD_LIMIT, cpu1 - cpu0, t1 - t0);
    assert_true(server_fds <= FD_LIMIT);
    assert_true(silent > 0 && silent <= FD_LIMIT);
    assert_true(cpu1 - cpu0 < CPU_MAX_MS);
    assert_true(itest_server_running(&s));

    /* Everybody leaves: it answers again, and its fds come back. */
    for (int i = 0; i < FLOOD; i++)
        close(fds[i]);
    for (int i = 0; i < 20; i++)
        if (extra_fds[i] >= 0)
            close(extra_fds[i]);
    int64_t t_close = itest_now_ms();
    int64_t deadline = t_close + itest_ms(5000);
    int st;
    while ((st = healthz(s.port)) != 200 && itest_now_ms() < deadline)
        itest_sleep_ms(20);
    int64_t recovered = itest_now_ms() - t_close;
    assert_int_equal(st, 200);
    check_fds(&s, baseline, label);
    printf("hostile: %s: answering again %" PRId64 " ms after the flood left; fds back to %d\n",
           label, recovered, baseline);
    check_alive(&s);
    free(fds);
    stop_server(&s);
}

static void test_fd_limit_derived(void **state)
{
    (void)state;
    /* No --max-clients: it derives the limit from RLIMIT_NOFILE (~224). */
    static const char *const args[] = {"--header-timeout", "60", NULL};
    flood_low_fd_limit(args, "RLIMIT_NOFILE 256, derived --max-clients");
}

static void test_fd_limit_emfile(void **state)
{
    (void)state;
    /* A --max-clients above the fd limit: accept really fails with EMFILE. */
    static const char *const args[] = {"--header-timeout", "60", "--max-clients", "100000", NULL};
    flood_low_fd_limit(args, "RLIMIT_NOFILE 256, --max-clients 100000 (EMFILE)");
}

/* -------------------------------------------------- 5. smuggling & abuse */

struct abuse_case {
    const char *label;
    const char *raw;
    size_t len; /* 0: strlen(raw) */
    int status[2];
};

#define POST_H  "POST /message HTTP/1.1\r\nHost: x\r\n"
#define CHUNK_H POST_H "Transfer-Encoding: chunked\r\n\r\n"
/* clang-format off */
#define A(label, raw, ...)  {label, raw, 0, {__VA_ARGS__}}
#define AN(label, raw, ...) {label, raw, sizeof raw - 1, {__VA_ARGS__}}
/* clang-format on */

static const struct abuse_case abuse_cases[] = {
    /* Framing: Content-Length and Transfer-Encoding. */
    A("CL + TE", POST_H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" PIPE,
      400),
    A("TE + CL", POST_H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" PIPE,
      400),
    A("two equal Content-Length", POST_H "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}" PIPE,
      400),
    A("two different Content-Length",
      POST_H "Content-Length: 2\r\nContent-Length: 39\r\n\r\n{}" PIPE, 400),
    A("Content-Length: 1,1", POST_H "Content-Length: 1,1\r\n\r\n1" PIPE, 400),
    A("Content-Length: -1", POST_H "Content-Length: -1\r\n\r\n" PIPE, 400),
    A("Content-Length: +5", POST_H "Content-Length: +5\r\n\r\n[1,2]" PIPE, 400),
    A("Content-Length: 0x10", POST_H "Content-Length: 0x10\r\n\r\n[1,2,3,4,5,6,7,8]" PIPE, 400),
    A("Content-Length: 2e1", POST_H "Content-Length: 2e1\r\n\r\n" PIPE, 400),
    A("Content-Length: 99999999999999999999999",
      POST_H "Content-Length: 99999999999999999999999\r\n\r\n" PIPE, 400),
    A("empty Content-Length", POST_H "Content-Length: \r\n\r\n" PIPE, 400),
    A("Transfer-Encoding: gzip", POST_H "Transfer-Encoding: gzip\r\n\r\n" PIPE, 501),
    A("Transfer-Encoding: gzip, chunked",
      POST_H "Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" PIPE, 501),
    A("Transfer-Encoding: chunked, chunked",
      POST_H "Transfer-Encoding: chunked, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" PIPE, 501, 400),
    A("two Transfer-Encoding: chunked fields",
      POST_H
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" PIPE,
      501, 400),
    A("Transfer-Encoding: identity", POST_H "Transfer-Encoding: identity\r\n\r\n" PIPE, 501),
    A("Transfer-Encoding in HTTP/1.0",
      "POST /message HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" PIPE, 400),
    /* Chunked bodies. */
    A("chunk size zz", CHUNK_H "zz\r\n{}\r\n0\r\n\r\n" PIPE, 400),
    A("chunk size -1", CHUNK_H "-1\r\n{}\r\n0\r\n\r\n" PIPE, 400),
    A("chunk size of 17 hex digits", CHUNK_H "00000000000000002\r\n{}\r\n0\r\n\r\n" PIPE, 400),
    A("chunk size 0x2", CHUNK_H "0x2\r\n{}\r\n0\r\n\r\n" PIPE, 400),
    A("empty chunk size", CHUNK_H "\r\n{}\r\n0\r\n\r\n" PIPE, 400),
    A("chunk data without CRLF", CHUNK_H "2\r\n{}XX0\r\n\r\n" PIPE, 400),
    A("chunk size line ended by bare LF", CHUNK_H "2\n{}\r\n0\r\n\r\n" PIPE, 400),
    /* The head. */
    A("obs-fold", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n" PIPE, 400),
    A("first field line starting with a space", "GET /healthz HTTP/1.1\r\n Host: x\r\n\r\n" PIPE,
      400),
    A("space before the colon", "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n" PIPE, 400),
    A("tab before the colon", "GET /healthz HTTP/1.1\r\nHost\t: x\r\n\r\n" PIPE, 400),
    A("bare CR in a field value", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n" PIPE,
      400),
    A("CR CR LF", "GET /healthz HTTP/1.1\r\nHost: x\r\r\n\r\n" PIPE, 400),
    A("bare CR in the request line", "GET /healthz\rHTTP/1.1\r\nHost: x\r\n\r\n" PIPE, 400),
    AN("NUL in a field value", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n" PIPE, 400),
    AN("NUL in the target", "GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n" PIPE, 400),
    AN("NUL in a field name", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-\0A: a\r\n\r\n" PIPE, 400),
    A("G@T method", "G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n" PIPE, 400),
    A("space in the target", "GET /heal thz HTTP/1.1\r\nHost: x\r\n\r\n" PIPE, 400),
    A("DEL in the target", "GET /heal\x7fthz HTTP/1.1\r\nHost: x\r\n\r\n" PIPE, 400),
    A("non-ASCII byte in the target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n" PIPE, 400),
    A("two spaces after the method", "GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n" PIPE, 400),
    A("space in a field name", "GET /healthz HTTP/1.1\r\nHost: x\r\nFo o: bar\r\n\r\n" PIPE, 400),
    A("field line without a colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nFoo bar\r\n\r\n" PIPE,
      400),
    A("empty field name", "GET /healthz HTTP/1.1\r\nHost: x\r\n: bar\r\n\r\n" PIPE, 400),
    A("HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n\r\n" PIPE, 400),
    /* Versions. */
    A("HTTP/1.10", "GET /healthz HTTP/1.10\r\nHost: x\r\n\r\n" PIPE, 400),
    A("lower-case http/1.1", "GET /healthz http/1.1\r\nHost: x\r\n\r\n" PIPE, 400),
    A("HTTP/9.9", "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n" PIPE, 505),
    A("HTTP/2.0", "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n" PIPE, 505),
    A("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" PIPE, 400, 505),
    A("HTTP/0.9 request", "GET /\r\n" PIPE, 400),
    A("HTTP/0.9 request alone", "GET /\r\n", 400),
};

static void test_smuggling(void **state)
{
    (void)state;
    struct itest_server s = start_server(NULL);
    int baseline = itest_server_fd_count(&s);

    /* Controls: the same shapes, well-formed, are accepted. */
    expect_status(s.port, "PIPE alone", PIPE, sizeof PIPE - 1, 200);
    expect_status(s.port, "Content-Length: 2", POST_H "Content-Length: 2\r\n\r\n{}", 0, 202);
    expect_status(s.port, "chunked", CHUNK_H "2\r\n{}\r\n0\r\n\r\n", 0, 202);
    expect_status(s.port, "chunk extension", CHUNK_H "2;a=b;c=\"d\"\r\n{}\r\n0\r\n\r\n", 0, 202);
    expect_status(s.port, "HTTP/1.0", "GET /healthz HTTP/1.0\r\n\r\n", 0, 200);

    size_t n = sizeof abuse_cases / sizeof abuse_cases[0];
    int by_status[600] = {0};
    for (size_t i = 0; i < n; i++) {
        const struct abuse_case *c = &abuse_cases[i];
        size_t len = c->len ? c->len : strlen(c->raw);
        size_t nallowed = c->status[1] ? 2 : 1;
        int st = expect_refused(s.port, c->label, c->raw, len, c->status, nallowed);
        by_status[st]++;
    }

    /* A chunk extension over 4 KiB. */
    char *raw = malloc(8192);
    assert_non_null(raw);
    char *p = raw + sprintf(raw, CHUNK_H "2;ext=");
    p = repeat_into(p, 'e', 5000);
    p += sprintf(p, "\r\n{}\r\n0\r\n\r\n" PIPE);
    static const int s400[] = {400};
    by_status[expect_refused(s.port, "chunk extension of 5000 bytes", raw, (size_t)(p - raw), s400,
                             1)]++;
    free(raw);
    printf("hostile: %zu abuse cases: %d x 400, %d x 501, %d x 505\n", n + 1, by_status[400],
           by_status[501], by_status[505]);

    /* Nothing was published by any of them. */
    long clients = -1;
    assert_int_equal(itest_post_message(s.port, NULL, "{}", 2, NULL, &clients), 202);
    check_fds(&s, baseline, "smuggling");
    check_alive(&s);
    stop_server(&s);
}

/* ---------------------------------------------------------- 6. slowloris */

#define N_LORIS   1000
#define N_HONEST  100
#define N_MSGS    200
#define LORIS_TMO 3

struct loris {
    struct wconn w;
    bool connected;
    size_t sent_initial;
};

/* Tally of one honest subscriber: messages {"n":k} must arrive in order. */
struct tally {
    size_t count;
    size_t bad;
};

static void tally_on_event(void *ctx, const struct ssep_event *ev)
{
    struct tally *t = ctx;
    char want[32];
    int n = snprintf(want, sizeof want, "{\"n\":%zu}", t->count);
    if (ev->data_len != (size_t)n || memcmp(ev->data, want, (size_t)n) != 0)
        t->bad++;
    t->count++;
}

static void test_slowloris(void **state)
{
    (void)state;
    need_fds(N_LORIS + N_HONEST + 100);
    static const char *const args[] = {"--header-timeout", "3", NULL};
    struct itest_server s = start_server(args);
    int baseline = itest_server_fd_count(&s);
    static const char initial[] = "GET /healthz HTTP/1.1\r\n";
    static const char drip[] = "Host: x\r\nX-Loris: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    struct loris *ls = calloc(N_LORIS, sizeof *ls);
    struct itest_sub *subs = calloc(N_HONEST, sizeof *subs);
    struct tally *tallies = calloc(N_HONEST, sizeof *tallies);
    size_t npfd = N_LORIS + N_HONEST;
    struct pollfd *pfd = calloc(npfd, sizeof *pfd);
    assert_true(ls && subs && tallies && pfd);

    int64_t t0 = itest_now_ms();
    for (int i = 0; i < N_LORIS; i++) {
        struct wconn *w = &ls[i].w;
        w->c.fd = itest_connect_nb(s.port);
        assert_true(w->c.fd >= 0);
        w->t_start = itest_now_ms();
        w->drip = drip;
        w->drip_len = sizeof drip - 1;
        w->drip_every_ms = 1000;
    }
    for (int i = 0; i < N_HONEST; i++) {
        assert_int_equal(itest_sub_start(&subs[i], s.port, "/messages", NULL), 0);
        subs[i].parser.on_event = tally_on_event;
        subs[i].parser.ctx = &tallies[i];
    }
    struct itest_conn pub;
    assert_int_equal(itest_conn_open(&pub, s.port), 0);

    size_t posted = 0;
    int64_t deadline = t0 + LORIS_TMO * 1000 + itest_ms(7000);
    int64_t post_ms = 0;
    for (;;) {
        int64_t now = itest_now_ms();
        size_t streaming = 0, done = 0, loris_open = 0;
        for (int i = 0; i < N_HONEST; i++) {
            streaming += subs[i].state == ITEST_SUB_STREAM;
            done += subs[i].state == ITEST_SUB_STREAM && tallies[i].count >= N_MSGS;
        }
        /* Publish once every honest subscriber is in (one POST per round). */
        if (streaming == N_HONEST && posted < N_MSGS) {
            char body[32];
            int bl = snprintf(body, sizeof body, "{\"n\":%zu}", posted);
            int64_t t = itest_now_ms();
            long clients = -1;
            int st = itest_post_message_conn(&pub, NULL, body, (size_t)bl, NULL, &clients);
            post_ms += itest_now_ms() - t;
            if (st != 202 || clients != N_HONEST)
                fprintf(stderr, "POST %zu: status %d, clients %ld\n", posted, st, clients);
            assert_int_equal(st, 202);
            assert_int_equal(clients, N_HONEST);
            posted++;
        }
        size_t k = 0;
        int64_t wake = now + 20;
        for (int i = 0; i < N_LORIS; i++) {
            struct loris *l = &ls[i];
            struct wconn *w = &l->w;
            if (w->c.eof) {
                pfd[k++].fd = -1;
                continue;
            }
            loris_open++;
            short ev = POLLIN;
            if (!l->connected) {
                ev = POLLOUT;
            } else if (!w->write_broken && w->drip_off < w->drip_len) {
                if (now >= w->next_drip) {
                    size_t sent;
                    w->write_broken = !nb_send(w->c.fd, w->drip + w->drip_off, 1, &sent);
                    w->drip_off += sent;
                    w->next_drip = now + w->drip_every_ms;
                }
                if (w->next_drip < wake)
                    wake = w->next_drip;
            }
            pfd[k].fd = w->c.fd;
            pfd[k].events = ev;
            pfd[k].revents = 0;
            k++;
        }
        for (int i = 0; i < N_HONEST; i++) {
            pfd[k].fd = itest_sub_poll_events(&subs[i]) ? subs[i].conn.fd : -1;
            pfd[k].events = itest_sub_poll_events(&subs[i]);
            pfd[k].revents = 0;
            k++;
        }
        if ((loris_open == 0 && done == N_HONEST) || now >= deadline)
            break;
        int rc =
            poll(pfd, k,
                 posted < N_MSGS && streaming == N_HONEST ? 0 : (int)(wake > now ? wake - now : 0));
        if (rc < 0 && errno != EINTR)
            fail_msg("poll: %s", strerror(errno));
        for (int i = 0; rc > 0 && i < N_LORIS; i++) {
            struct loris *l = &ls[i];
            if (!pfd[i].revents || pfd[i].fd < 0)
                continue;
            if (!l->connected && (pfd[i].revents & POLLOUT)) {
                size_t sent;
                l->connected = true;
                if (nb_send(l->w.c.fd, initial, sizeof initial - 1, &sent) &&
                    sent == sizeof initial - 1) {
                    l->w.next_drip = itest_now_ms() + 1000;
                } else {
                    l->w.write_broken = true;
                }
            } else if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                wconn_read(&l->w);
            }
        }
        for (int i = 0; rc > 0 && i < N_HONEST; i++)
            if (pfd[N_LORIS + i].revents)
                itest_sub_step(&subs[i]);
    }

    /* Every slowloris was cut at its deadline with a 408. */
    int cut = 0, early = 0, late = 0, not_408 = 0, open_left = 0;
    int64_t tmin = INT64_MAX, tmax = 0;
    size_t max_dripped = 0;
    for (int i = 0; i < N_LORIS; i++) {
        struct wconn *w = &ls[i].w;
        if (!w->c.eof) {
            open_left++;
            continue;
        }
        struct itest_response r;
        if (itest_read_response(&w->c, &r, 0, 0) != 0 || r.status != 408) {
            if (not_408++ < 3)
                itest_print_escaped("slowloris got", w->c.buf ? w->c.buf : "", w->c.len, 120);
            itest_response_free(&r);
            continue;
        }
        itest_response_free(&r);
        int64_t at = w->t_first - w->t_start;
        tmin = at < tmin ? at : tmin;
        tmax = at > tmax ? at : tmax;
        if (w->drip_off > max_dripped)
            max_dripped = w->drip_off;
        if (at < LORIS_TMO * 1000 - 100)
            early++;
        else if (at > upper_ms(LORIS_TMO * 1000 + 1000))
            late++;
        else
            cut++;
    }
    size_t complete = 0, bad = 0, failed = 0;
    for (int i = 0; i < N_HONEST; i++) {
        complete += subs[i].state == ITEST_SUB_STREAM && tallies[i].count == N_MSGS;
        bad += tallies[i].bad;
        if (subs[i].state != ITEST_SUB_STREAM && failed++ < 3)
            fprintf(stderr, "honest subscriber %d: state %d: %s\n", i, (int)subs[i].state,
                    subs[i].error);
    }
    printf("hostile: slowloris: %d of %d cut with 408 at the %d s deadline (%" PRId64 "..%" PRId64
           " ms after connect; at most %zu bytes dripped), %d early, %d late, "
           "%d other, %d still open\n",
           cut, N_LORIS, LORIS_TMO, tmin, tmax, max_dripped, early, late, not_408, open_left);
    printf("hostile: slowloris: %zu of %d honest subscribers got all %d messages in order "
           "(%zu out of order); %zu POSTs took %" PRId64 " ms in all\n",
           complete, N_HONEST, N_MSGS, bad, posted, post_ms);
    assert_int_equal(posted, N_MSGS);
    assert_int_equal(complete, N_HONEST);
    assert_int_equal(bad, 0);
    assert_int_equal(cut, N_LORIS);

    for (int i = 0; i < N_LORIS; i++)
        itest_conn_close(&ls[i].w.c);
    for (int i = 0; i < N_HONEST; i++)
        itest_sub_close(&subs[i]);
    itest_conn_close(&pub);
    free(ls);
    free(subs);
    free(tallies);
    free(pfd);
    check_fds(&s, baseline, "slowloris");
    check_alive(&s);
    stop_server(&s);
}

/* ------------------------------------------------------------ 7. garbage */

#define N_GARBAGE 1000
#define G_BATCH   50

static uint64_t rng_state;

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(itest_rng_next(&rng_state) % n) : 0;
}

static const char *const valid_requests[] = {
    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n",
    "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /messages?room=garbage HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
    "Last-Event-ID: 5\r\n\r\n",
    "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
    "OPTIONS /message HTTP/1.1\r\nHost: x\r\nOrigin: http://a\r\n"
    "Access-Control-Request-Method: POST\r\n\r\n",
    "POST /message?room=garbage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    "Content-Length: 27\r\n\r\n{\"user\":\"g\",\"text\":[1,2,3]}",
    "POST /message?room=garbage&event=e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\n{\"a\":\r\n3;x=y\r\n[1]\r\n1\r\n}\r\n0\r\nT: 1\r\n\r\n",
    "POST /message HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
    "GET /stats HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
};

/* Fills buf with one kind of garbage; returns its length. */
static size_t make_garbage(char *buf, size_t cap, int *kind)
{
    size_t nv = sizeof valid_requests / sizeof valid_requests[0];
    const char *v = valid_requests[rnd_below(nv)];
    size_t vl = strlen(v), n = 0;
    *kind = (int)rnd_below(6);
    switch (*kind) {
    case 0: /* random bytes */
        n = 1 + rnd_below(cap < 4096 ? cap : 4096);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)itest_rng_next(&rng_state);
        break;
    case 1: /* printable noise with line breaks */
        n = 1 + rnd_below(2048);
        for (size_t i = 0; i < n; i++) {
            size_t r = rnd_below(40);
            buf[i] = r == 0 ? '\r' : r == 1 ? '\n' : r == 2 ? ':' : (char)(32 + rnd_below(95));
        }
        break;
    case 2: /* a truncated valid request */
        n = rnd_below(vl);
        memcpy(buf, v, n);
        break;
    case 3: /* a valid request with a few bytes changed */
        memcpy(buf, v, vl);
        n = vl;
        for (int k = 1 + (int)rnd_below(3); k > 0; k--)
            buf[rnd_below(vl)] = (char)itest_rng_next(&rng_state);
        break;
    case 4: /* a valid head, then random bytes */
        memcpy(buf, v, vl);
        n = vl;
        for (size_t m = rnd_below(512); m > 0; m--)
            buf[n++] = (char)itest_rng_next(&rng_state);
        break;
    default: /* a valid request, then a truncated one */
        memcpy(buf, v, vl);
        n = vl;
        v = valid_requests[rnd_below(nv)];
        vl = strlen(v);
        size_t cut = rnd_below(vl);
        memcpy(buf + n, v, cut);
        n += cut;
        break;
    }
    return n;
}

static void test_garbage(void **state)
{
    (void)state;
    struct itest_server s = start_server(NULL);
    int baseline = itest_server_fd_count(&s);
    const char *seed_env = getenv("ITEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x5eed5eedULL;
    if (seed_env)
        printf("hostile: garbage seed %" PRIu64 "\n", seed);
    rng_state = seed ? seed : 1;

    char *buf = malloc(8192);
    assert_non_null(buf);
    int kinds[6] = {0}, rst = 0, answered = 0;
    for (int done = 0; done < N_GARBAGE; done += G_BATCH) {
        int fds[G_BATCH];
        for (int i = 0; i < G_BATCH; i++) {
            fds[i] = itest_connect(s.port);
            assert_true(fds[i] >= 0);
            int kind;
            size_t n = make_garbage(buf, 8192, &kind);
            kinds[kind]++;
            if (n)
                (void)send(fds[i], buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        /* Some get a moment for an answer; then FIN or RST. */
        for (int i = 0; i < G_BATCH; i++) {
            if (rnd_below(3) == 0) {
                struct pollfd p = {.fd = fds[i], .events = POLLIN};
                if (poll(&p, 1, (int)rnd_below(20)) > 0) {
                    ssize_t n = recv(fds[i], buf, 8192, MSG_DONTWAIT);
                    answered += n > 0;
                }
            }
            if (rnd_below(2)) {
                itest_close_rst(fds[i]);
                rst++;
            } else {
                close(fds[i]);
            }
        }
        assert_true(itest_server_running(&s));
    }
    free(buf);
    printf("hostile: garbage: %d connections (%d random, %d noise, %d truncated, %d mutated, "
           "%d head+noise, %d valid+truncated), %d reset, %d saw an answer\n",
           N_GARBAGE, kinds[0], kinds[1], kinds[2], kinds[3], kinds[4], kinds[5], rst, answered);
    check_fds(&s, baseline, "garbage");
    check_alive(&s);
    stop_server(&s);
}

/* ------------------------------------------------------ 8. abrupt resets */

#define BIG_SIZE (4u << 20)

static char static_base[64];

static void make_static_dir(unsigned char **big_out)
{
    snprintf(static_base, sizeof static_base, "/tmp/hostile-static-XXXXXX");
    assert_non_null(mkdtemp(static_base));
    char path[128];
    snprintf(path, sizeof path, "%s/index.html", static_base);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("<!doctype html><title>hostile</title>\n", f);
    fclose(f);
    unsigned char *big = malloc(BIG_SIZE);
    assert_non_null(big);
    rng_state = 42;
    for (size_t i = 0; i < BIG_SIZE; i += 8) {
        uint64_t r = itest_rng_next(&rng_state);
        memcpy(big + i, &r, 8);
    }
    snprintf(path, sizeof path, "%s/big.bin", static_base);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(big, 1, BIG_SIZE, f), BIG_SIZE);
    fclose(f);
    *big_out = big;
}

/* Connects, sends raw, optionally reads `read_bytes` bytes, then RST. */
static void rst_after(int port, const char *raw, size_t len, size_t read_bytes, int pause_ms)
{
    int fd = itest_connect(port);
    assert_true(fd >= 0);
    if (len)
        assert_true(itest_send_all(fd, raw, len));
    char tmp[4096];
    size_t got = 0;
    while (got < read_bytes) {
        size_t want = read_bytes - got < sizeof tmp ? read_bytes - got : sizeof tmp;
        ssize_t n = itest_recv_deadline(fd, tmp, want, itest_timeout());
        assert_true(n > 0);
        got += (size_t)n;
    }
    itest_sleep_ms(pause_ms);
    itest_close_rst(fd);
}

static void test_abrupt(void **state)
{
    (void)state;
    unsigned char *big;
    make_static_dir(&big);
    const char *const args[] = {"--static", static_base, NULL};
    struct itest_server s = start_server(args);
    int baseline = itest_server_fd_count(&s);
    char raw[2048];
    int n;

    /* In the middle of a request head. */
    for (int i = 0; i < 50; i++) {
        n = snprintf(raw, sizeof raw, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Part: %.*s", i,
                     "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
        rst_after(s.port, raw, (size_t)n, 0, i % 3);
    }
    /* In the middle of a body (Content-Length and chunked). */
    for (int i = 0; i < 50; i++) {
        n = snprintf(raw, sizeof raw,
                     "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[%0*d",
                     i * 10, 0);
        rst_after(s.port, raw, (size_t)n, 0, i % 3);
        n = snprintf(raw, sizeof raw,
                     "POST /message HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "10\r\n[1,2,3,4,5,6,7,8\r\n%s",
                     i % 2 ? "20\r\n,9" : "");
        rst_after(s.port, raw, (size_t)n, 0, i % 3);
    }
    /* While a 4 MiB file is being written: after a few bytes, after a
     * pause with nothing read (the server is blocked on a full socket), and
     * with more requests pipelined behind it. */
    static const char get_big[] = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char get_big3[] =
        "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    for (int i = 0; i < 30; i++) {
        rst_after(s.port, get_big, sizeof get_big - 1, (size_t)(1 + i * 1000), 0);
        rst_after(s.port, get_big, sizeof get_big - 1, 0, 20);
        rst_after(s.port, get_big3, sizeof get_big3 - 1, 100, i % 5);
    }
    /* The file itself is intact. */
    struct itest_response r;
    assert_int_equal(itest_request(s.port, get_big, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, BIG_SIZE);
    assert_memory_equal(r.body, big, BIG_SIZE);
    itest_response_free(&r);

    /* On streams while messages are being published: 50 subscribers (half of
     * them with a small receive buffer, so the server has bytes pending for
     * them) are reset one by one during a burst of 300 messages of 1 KiB. */
    enum { NSUB = 50, NPUB = 300 };
    struct itest_sub *subs = calloc(NSUB, sizeof *subs);
    assert_non_null(subs);
    for (int i = 0; i < NSUB; i++) {
        assert_int_equal(itest_sub_start(&subs[i], s.port, "/messages", NULL), 0);
        if (i % 2) {
            int small = 4096;
            setsockopt(subs[i].conn.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        }
    }
    assert_int_equal(itest_subs_drive(subs, NSUB, 0, itest_timeout()), NSUB);
    struct itest_conn pub;
    assert_int_equal(itest_conn_open(&pub, s.port), 0);
    char body[1024];
    memset(body, ' ', sizeof body);
    body[0] = '[';
    body[sizeof body - 1] = ']';
    int aborted = 0;
    for (int i = 0; i < NPUB; i++) {
        assert_int_equal(itest_post_message_conn(&pub, NULL, body, sizeof body, NULL, NULL), 202);
        if (i % 6 == 5 && aborted < NSUB) {
            /* Read a little first (so some are mid-frame), then reset. */
            if (aborted % 3 == 0)
                itest_sub_step(&subs[aborted]);
            itest_sub_abort(&subs[aborted++]);
        }
    }
    itest_conn_close(&pub);
    for (; aborted < NSUB; aborted++)
        itest_sub_abort(&subs[aborted]);
    free(subs);

    check_fds(&s, baseline, "abrupt");
    check_alive(&s);
    /* And it still delivers. */
    struct itest_sub sub;
    assert_int_equal(itest_sub_open(&sub, s.port, "/messages?room=after", itest_timeout()), 0);
    assert_int_equal(itest_post_message(s.port, "/message?room=after", "[1]", 3, NULL, NULL), 202);
    assert_true(itest_sub_wait(&sub, 1, itest_timeout()));
    itest_sub_close(&sub);
    stop_server(&s);
    free(big);
    itest_rm_rf(static_base);
}

/* ----------------------------------------------------------- 9. fairness */

#define N_SLOWER 200
#define N_BURST  500
#define MSG_SIZE 4096

struct ftally {
    size_t count;
    size_t bad;
    int64_t done_ms;
};

static void ftally_on_event(void *ctx, const struct ssep_event *ev)
{
    struct ftally *t = ctx;
    char want[32];
    int n = snprintf(want, sizeof want, "{\"n\":%zu,", t->count);
    if (ev->data_len != MSG_SIZE || memcmp(ev->data, want, (size_t)n) != 0)
        t->bad++;
    if (++t->count == N_BURST)
        t->done_ms = itest_now_ms();
}

static void test_write_fairness(void **state)
{
    (void)state;
    need_fds(N_SLOWER + 100);
    struct itest_server s = start_server(NULL);
    size_t nsubs = N_SLOWER + 1; /* subs[0] is the fast reader */
    struct itest_sub *subs = calloc(nsubs, sizeof *subs);
    struct ftally *t = calloc(nsubs, sizeof *t);
    struct pollfd *pfd = calloc(nsubs, sizeof *pfd);
    assert_true(subs && t && pfd);
    for (size_t i = 0; i < nsubs; i++) {
        assert_int_equal(itest_sub_start(&subs[i], s.port, "/messages", NULL), 0);
        subs[i].parser.on_event = ftally_on_event;
        subs[i].parser.ctx = &t[i];
        if (i > 0) {
            /* The others read through a small window. */
            int small = 16384;
            setsockopt(subs[i].conn.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        }
    }
    assert_int_equal(itest_subs_drive(subs, nsubs, 0, itest_ms(10000)), nsubs);

    /* The burst: 500 POSTs of 4 KiB, pipelined 50 at a time. */
    char *req = malloc(50 * (MSG_SIZE + 200));
    assert_non_null(req);
    struct itest_conn pub;
    assert_int_equal(itest_conn_open(&pub, s.port), 0);
    int64_t t0 = itest_now_ms();
    for (int batch = 0; batch < N_BURST / 50; batch++) {
        char *p = req;
        for (int k = 0; k < 50; k++) {
            int idx = batch * 50 + k;
            p += sprintf(p,
                         "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                         "{\"n\":%d,\"pad\":\"",
                         MSG_SIZE, idx);
            int head = snprintf(NULL, 0, "{\"n\":%d,\"pad\":\"", idx);
            p = repeat_into(p, 'f', (size_t)(MSG_SIZE - head - 2));
            p += sprintf(p, "\"}");
        }
        assert_true(itest_conn_sendn(&pub, req, (size_t)(p - req)));
        for (int k = 0; k < 50; k++) {
            struct itest_response r;
            assert_int_equal(itest_read_response(&pub, &r, 0, itest_ms(10000)), 0);
            assert_int_equal(r.status, 202);
            itest_response_free(&r);
        }
    }
    int64_t t_posted = itest_now_ms();

    /* Drive: the fast one drained to EAGAIN on every round, the others
     * served as poll says. */
    int64_t deadline = t_posted + itest_ms(60000);
    size_t at_fast_done_min = SIZE_MAX;
    for (;;) {
        size_t done = 0, k = 0;
        for (size_t i = 0; i < nsubs; i++) {
            done += t[i].count >= N_BURST;
            short ev = itest_sub_poll_events(&subs[i]);
            pfd[i].fd = ev && t[i].count < N_BURST ? subs[i].conn.fd : -1;
            pfd[i].events = ev;
            pfd[i].revents = 0;
            k++;
        }
        if (done == nsubs || itest_now_ms() >= deadline)
            break;
        itest_sub_step(&subs[0]);
        int rc = poll(pfd, k, 100);
        for (size_t i = 1; rc > 0 && i < nsubs; i++)
            if (pfd[i].revents)
                itest_sub_step(&subs[i]);
        if (t[0].count >= N_BURST && at_fast_done_min == SIZE_MAX) {
            for (size_t i = 1; i < nsubs; i++)
                if (t[i].count < at_fast_done_min)
                    at_fast_done_min = t[i].count;
        }
    }
    size_t complete = 0, bad = 0;
    int64_t slowest = 0;
    for (size_t i = 0; i < nsubs; i++) {
        bool ok = subs[i].state == ITEST_SUB_STREAM && t[i].count == N_BURST;
        complete += ok;
        bad += t[i].bad;
        if (ok && t[i].done_ms - t0 > slowest)
            slowest = t[i].done_ms - t0;
        if (!ok && i < 5)
            fprintf(stderr, "subscriber %zu: state %d, %zu events: %s\n", i, (int)subs[i].state,
                    t[i].count, subs[i].error);
    }
    printf("hostile: fairness: %zu of %zu subscribers got all %d x %d B (%zu bad); posting took "
           "%" PRId64 " ms; fast reader done at %" PRId64 " ms (then the slowest other had %zu), "
           "slowest done at %" PRId64 " ms\n",
           complete, nsubs, N_BURST, MSG_SIZE, bad, t_posted - t0,
           t[0].done_ms ? t[0].done_ms - t0 : -1, at_fast_done_min, slowest);
    assert_int_equal(complete, nsubs);
    assert_int_equal(bad, 0);

    for (size_t i = 0; i < nsubs; i++)
        itest_sub_close(&subs[i]);
    itest_conn_close(&pub);
    free(req);
    free(subs);
    free(t);
    free(pfd);
    stop_server(&s);
}

/* ------------------------------------------------------------------ main */

int main(void)
{
    itest_init(300);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const char *only = getenv("ITEST_FILTER"); /* e.g. "test_slowloris" or "test_fd*" */
    if (only && *only)
        cmocka_set_test_filter(only);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits),          cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_max_clients),     cmocka_unit_test(test_fd_limit_derived),
        cmocka_unit_test(test_fd_limit_emfile), cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_slowloris),       cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_abrupt),          cmocka_unit_test(test_write_fairness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
