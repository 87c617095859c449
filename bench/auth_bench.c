/*
 * auth_bench: what private rooms cost.
 *
 *   auth_bench verify N
 *       signs N distinct tokens (one room claim each) and verifies them all
 *       with the server's own code: microseconds per verification.
 *   auth_bench subs PORT N ROOM [KEYFILE]
 *       opens N event streams to ROOM on 127.0.0.1:PORT, at most 256
 *       connecting at a time, each with its own token in ?token= when a
 *       key file is given (signed with its first key); waits until every
 *       stream has answered 200 and prints the time that took. The streams
 *       stay open until stdin closes, so the caller can read the server's
 *       memory meanwhile.
 *
 * Loopback only; every wait is bounded (60 s).
 */
#include "jwt.h"
#include "keyring.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_FLIGHT   256
#define DEADLINE_MS 60000

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static size_t make_token(const struct jwt_key *key, const char *room, long i, char *out, size_t cap)
{
    char payload[256];
    int n = snprintf(payload, sizeof payload,
                     "{\"sse\":{\"subscribe\":[\"%s\"]},\"sub\":\"user-%ld\",\"exp\":%lld}", room,
                     i, (long long)time(NULL) + 3600);
    return jwt_sign(payload, (size_t)n, key, out, cap);
}

static int verify(long n)
{
    static const struct jwt_key key = {"", (const unsigned char *)"bench-secret-0123456789abcdef",
                                       29};
    char(*toks)[512] = malloc((size_t)n * sizeof *toks);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    static struct jwt_claims claims;
    if (!toks || !lens) {
        return 1;
    }
    for (long i = 0; i < n; i++) {
        lens[i] = make_token(&key, "priv-1", i, toks[i], sizeof toks[i]);
    }
    const struct jwt_policy p = {.now = (int64_t)time(NULL)};
    long ok = 0;
    double t0 = now_us();
    for (long i = 0; i < n; i++) {
        ok += jwt_verify(toks[i], lens[i], &key, 1, &p, &claims) == JWT_OK &&
              jwt_claims_allow(&claims, JWT_SUBSCRIBE, "priv-1", 6);
    }
    double us = (now_us() - t0) / (double)n;
    printf("verify: %ld tokens of %zu bytes, %.2f us per token (%ld valid)\n", n, lens[0], us, ok);
    free(toks);
    free(lens);
    return ok == n ? 0 : 1;
}

struct sub {
    int fd;
    size_t sent, req_len, got;
    char req[1024], head[256];
};

static int start_sub(int ep, int port, struct sub *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s->fd < 0) {
        return -1;
    }
    if (connect(s->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = s};
    return epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
}

/* Advances one stream; 1 once its 200 head arrived, -1 on failure. */
static int step_sub(int ep, struct sub *s)
{
    if (s->sent < s->req_len) {
        ssize_t w = send(s->fd, s->req + s->sent, s->req_len - s->sent, MSG_NOSIGNAL);
        if (w < 0) {
            return errno == EAGAIN || errno == ENOTCONN ? 0 : -1;
        }
        s->sent += (size_t)w;
        if (s->sent == s->req_len) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
            epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
        }
        return 0;
    }
    ssize_t r = recv(s->fd, s->head + s->got, sizeof s->head - 1 - s->got, 0);
    if (r <= 0) {
        return r < 0 && errno == EAGAIN ? 0 : -1;
    }
    s->got += (size_t)r;
    s->head[s->got] = '\0';
    if (!strstr(s->head, "\r\n\r\n") && s->got < sizeof s->head - 1) {
        return 0;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL); /* idle from now on */
    return strncmp(s->head, "HTTP/1.1 200", 12) == 0 ? 1 : -1;
}

static int subs(int port, long n, const char *room, const char *keyfile)
{
    char err[256], tok[JWT_MAX_TOKEN + 1];
    struct keyring *kr = keyfile ? keyring_load(keyfile, err, sizeof err) : NULL;
    const struct jwt_key *key = kr ? keyring_find(kr, NULL) : NULL;
    struct sub *s = calloc((size_t)n, sizeof *s);
    int ep = epoll_create1(0);
    if (!s || ep < 0 || (keyfile && !key)) {
        fprintf(stderr, "auth_bench: setup failed%s%s\n", keyfile ? ": " : "", keyfile ? err : "");
        return 1;
    }
    for (long i = 0; i < n; i++) {
        char q[JWT_MAX_TOKEN + 16] = "";
        if (key) {
            make_token(key, room, i, tok, sizeof tok);
            snprintf(q, sizeof q, "&token=%s", tok);
        }
        s[i].req_len = (size_t)snprintf(s[i].req, sizeof s[i].req,
                                        "GET /messages?room=%s%s HTTP/1.1\r\nHost: b\r\n"
                                        "Accept: text/event-stream\r\n\r\n",
                                        room, q);
    }
    long started = 0, done = 0, failed = 0;
    double t0 = now_us();
    while (done + failed < n && now_us() - t0 < DEADLINE_MS * 1e3) {
        while (started < n && started - done - failed < IN_FLIGHT) {
            if (start_sub(ep, port, &s[started++]) < 0) {
                failed++;
            }
        }
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            int r = step_sub(ep, evs[i].data.ptr);
            done += r > 0;
            failed += r < 0;
        }
    }
    double ms = (now_us() - t0) / 1e3;
    printf("subs: %ld streams to %s %s tokens: %ld open, %ld failed, %.0f ms (%.1f us each)\n", n,
           room, key ? "with" : "without", done, failed, ms, ms * 1e3 / (double)n);
    fflush(stdout);
    /* Hold the streams until the caller has measured the server. */
    char c;
    while (read(STDIN_FILENO, &c, 1) > 0) {
    }
    for (long i = 0; i < n; i++) {
        if (s[i].fd > 0) {
            close(s[i].fd);
        }
    }
    free(s);
    keyring_free(kr);
    close(ep);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "verify") == 0) {
        return verify(atol(argv[2]));
    }
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "subs") == 0) {
        return subs(atoi(argv[2]), atol(argv[3]), argv[4], argc == 6 ? argv[5] : NULL);
    }
    fprintf(stderr, "usage: auth_bench verify N | auth_bench subs PORT N ROOM [KEYFILE]\n");
    return 2;
}
