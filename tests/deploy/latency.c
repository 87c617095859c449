/*
 * latency: delivery time of broadcasts through a proxy, measured in one
 * process (no fork or shell polling between the POST answer and the event).
 *
 *   latency PORT COUNT LIMIT_MS
 *
 * Connects to 127.0.0.1:PORT, opens GET /messages and waits for the stream to
 * open, then COUNT times: POST /message (keep-alive) with a unique marker and
 * notes when the answer is complete (t0) and when the marker arrives on the
 * stream (t1, watched at the same time, so an event that beats the answer
 * counts as 0). Prints every latency over LIMIT_MS and a summary line; exits
 * 0 when all are within LIMIT_MS, 1 otherwise, 2 on an error or a wait over
 * its bound (2 s for the stream to open, 5 s per answer or event; 20 s in all).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "latency: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
    exit(2);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        die("socket");
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        die("connect");
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            die("send");
        }
        p += w;
        n -= (size_t)w;
    }
}

/* A growing receive buffer. */
struct rbuf {
    char *data;
    size_t len, cap;
};

static int rbuf_read(int fd, struct rbuf *b)
{
    if (b->cap - b->len < 4096) {
        b->cap = b->cap ? b->cap * 2 : 65536;
        b->data = realloc(b->data, b->cap + 1);
        if (!b->data) {
            die("out of memory");
        }
    }
    errno = 0; /* 0 at end of stream: die() then shows no stale error */
    ssize_t n = recv(fd, b->data + b->len, b->cap - b->len, 0);
    if (n > 0) {
        b->len += (size_t)n;
        b->data[b->len] = '\0';
    }
    return (int)n;
}

/* The stream has received the marker. */
static int has(const struct rbuf *b, const char *s)
{
    return b->len && strstr(b->data, s) != NULL;
}

/* Length of a complete HTTP response at the start of b (0: incomplete). */
static size_t response_complete(const struct rbuf *b, int *status)
{
    const char *end = b->len ? strstr(b->data, "\r\n\r\n") : NULL;
    if (!end) {
        return 0;
    }
    size_t head = (size_t)(end - b->data) + 4;
    *status = atoi(b->data + 9);
    const char *cl = strcasestr(b->data, "\r\ncontent-length:");
    if (!cl || cl > end) {
        fprintf(stderr, "latency: POST answer without Content-Length:\n%.*s", (int)head, b->data);
        exit(2);
    }
    size_t body = strtoul(cl + 17, NULL, 10);
    return b->len >= head + body ? head + body : 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: latency PORT COUNT LIMIT_MS\n");
        return 2;
    }
    int port = atoi(argv[1]), count = atoi(argv[2]);
    double limit = atof(argv[3]);
    alarm(20);

    int sub = connect_to(port);
    const char *get = "GET /messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Accept: text/event-stream\r\n\r\n";
    send_all(sub, get, strlen(get));
    struct rbuf s = {0};
    while (!has(&s, ": ok")) {
        struct pollfd pfd = {sub, POLLIN, 0};
        if (poll(&pfd, 1, 2000) <= 0) {
            errno = 0;
            die("the stream did not open within 2 s");
        }
        if (rbuf_read(sub, &s) <= 0) {
            die("stream closed before it opened");
        }
    }
    if (strncmp(s.data, "HTTP/1.1 200", 12) != 0) {
        die("stream did not answer 200");
    }

    int pub = connect_to(port);
    struct rbuf p = {0};
    double worst = 0, total = 0;
    int late = 0;
    for (int k = 0; k < count; k++) {
        char marker[64], req[512];
        snprintf(marker, sizeof marker, "lat-%d-%d-%ld", (int)getpid(), k, (long)now_ms());
        char body[128];
        int blen = snprintf(body, sizeof body, "{\"user\":\"latency\",\"text\":\"%s\"}", marker);
        int rlen = snprintf(req, sizeof req,
                            "POST /message HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                            blen, body);
        p.len = 0;
        send_all(pub, req, (size_t)rlen);

        double t0 = -1, t1 = -1;
        int status = 0;
        while (t0 < 0 || t1 < 0) {
            struct pollfd fds[2] = {{sub, POLLIN, 0}, {pub, POLLIN, 0}};
            if (poll(fds, 2, 5000) <= 0) {
                errno = 0;
                die(t0 < 0 ? "no POST answer within 5 s" : "no event within 5 s");
            }
            if (fds[0].revents) {
                if (rbuf_read(sub, &s) <= 0) {
                    die("stream closed");
                }
                if (t1 < 0 && has(&s, marker)) {
                    t1 = now_ms();
                }
            }
            if (fds[1].revents && t0 < 0) {
                if (rbuf_read(pub, &p) <= 0) {
                    die("publisher connection closed");
                }
                if (response_complete(&p, &status)) {
                    t0 = now_ms();
                    if (status != 202) {
                        fprintf(stderr, "latency: POST answered %d:\n%s\n", status, p.data);
                        return 2;
                    }
                }
            }
        }
        double lat = t1 > t0 ? t1 - t0 : 0;
        total += lat;
        if (lat > worst) {
            worst = lat;
        }
        if (lat > limit) {
            late++;
            printf("message %d: %.1f ms after the POST answer\n", k + 1, lat);
        }
        /* Keep only the tail of the stream: markers are unique. */
        s.len = 0;
    }
    printf("%d messages, max %.1f ms, mean %.2f ms, %d over %.0f ms\n", count, worst,
           count ? total / count : 0, late, limit);
    close(pub);
    close(sub);
    return late ? 1 : 0;
}
