/*
 * spread_client: how evenly a running sse-server spreads connections over
 * its event loops (--threads).
 *
 *   spread_client PORT [CONNS]            (CONNS defaults to 10,000)
 *
 * Opens CONNS event streams (GET /messages?room=spread) to 127.0.0.1:PORT,
 * at most WINDOW of them connecting at a time so that the listen backlog
 * never overflows (a dropped SYN would cost a second of retransmission and
 * nothing else), waits until each has its 200 head, then reads /stats and
 * prints one line:
 *
 *   threads connections min max average busiest-over-average-%
 *
 * "connections" and the per-loop figures are the server's own, so they
 * include the /stats request itself. Every stream stays open until the
 * figures are read, as long-lived event streams do; then all are closed.
 * Loopback only; it stops by itself (exit 1) after DEADLINE_S seconds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define WINDOW     256
#define DEADLINE_S 120
#define MAX_LOOPS  256

static const char STREAM_REQ[] = "GET /messages?room=spread HTTP/1.1\r\nHost: spread\r\n"
                                 "Accept: text/event-stream\r\n\r\n";

static struct sockaddr_in server_addr;

static void die(const char *what)
{
    fprintf(stderr, "spread_client: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connection on its way to being a stream. */
struct pending {
    int fd;
    int sent; /* the request went out: waiting for the head */
};

static int open_one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        die("socket (raise the descriptor limit?)");
    }
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0 &&
        errno != EINPROGRESS) {
        die("connect");
    }
    return fd;
}

/* One step of a pending connection; 1 once its head arrived (200). */
static int step(struct pending *p, short revents)
{
    if (revents & (POLLERR | POLLHUP)) {
        errno = ECONNRESET;
        die("stream refused or reset");
    }
    if (!p->sent) {
        if (send(p->fd, STREAM_REQ, sizeof STREAM_REQ - 1, MSG_NOSIGNAL) !=
            (ssize_t)(sizeof STREAM_REQ - 1)) {
            die("send");
        }
        p->sent = 1;
        return 0;
    }
    char buf[1024];
    ssize_t n = recv(p->fd, buf, sizeof buf - 1, 0);
    if (n <= 0) {
        die("stream closed before its head");
    }
    buf[n] = 0;
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "spread_client: stream answered: %.40s\n", buf);
        exit(1);
    }
    return 1; /* the rest of the stream is left unread */
}

/* Opens conns streams, keeping their descriptors in fds. */
static void open_streams(int *fds, long conns)
{
    struct pending win[WINDOW];
    struct pollfd pfd[WINDOW];
    int inflight = 0;
    long opened = 0, done = 0;
    double deadline = now_s() + DEADLINE_S;
    while (done < conns) {
        while (inflight < WINDOW && opened < conns) {
            win[inflight++] = (struct pending){.fd = open_one(), .sent = 0};
            opened++;
        }
        for (int k = 0; k < inflight; k++) {
            pfd[k] = (struct pollfd){.fd = win[k].fd, .events = win[k].sent ? POLLIN : POLLOUT};
        }
        if (now_s() > deadline) {
            fprintf(stderr, "spread_client: %ld of %ld streams after %d s\n", done, conns,
                    DEADLINE_S);
            exit(1);
        }
        int rc = poll(pfd, (nfds_t)inflight, 1000);
        if (rc < 0 && errno != EINTR) {
            die("poll");
        }
        for (int k = inflight - 1; rc > 0 && k >= 0; k--) {
            if (pfd[k].revents && step(&win[k], pfd[k].revents)) {
                fds[done++] = win[k].fd;
                win[k] = win[--inflight]; /* k counts down: the moved one was seen */
            }
        }
    }
}

/* GET /stats on a connection of its own; the body, to be freed. */
static char *get_stats(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 10};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0) {
        die("connect for /stats");
    }
    static const char req[] = "GET /stats HTTP/1.1\r\nHost: spread\r\nConnection: close\r\n\r\n";
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1)) {
        die("send /stats");
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        die("malloc");
    }
    ssize_t n;
    while (len < cap - 1 && (n = recv(fd, buf + len, cap - 1 - len, 0)) > 0) {
        len += (size_t)n;
    }
    buf[len] = 0;
    close(fd);
    char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || !body) {
        fprintf(stderr, "spread_client: /stats answered: %.80s\n", buf);
        exit(1);
    }
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

static unsigned long long number_after(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    if (!p) {
        fprintf(stderr, "spread_client: no %s in /stats\n", key);
        exit(1);
    }
    return strtoull(p + strlen(key), NULL, 10);
}

/* Prints the line of the table from the /stats document. */
static void print_row(const char *stats)
{
    unsigned long long threads = number_after(stats, "\"threads\":");
    unsigned long long total = number_after(stats, "\"connections\":");
    const char *p = strstr(stats, "\"per_thread\":[");
    if (!p || threads == 0 || threads > MAX_LOOPS) {
        fprintf(stderr, "spread_client: no per_thread list in /stats\n");
        exit(1);
    }
    const char *end = strchr(p, ']');
    unsigned long long min = ~0ULL, max = 0, sum = 0, n = 0;
    while ((p = strstr(p, "{\"connections\":")) != NULL && end && p < end) {
        unsigned long long c = strtoull(p + strlen("{\"connections\":"), NULL, 10);
        min = c < min ? c : min;
        max = c > max ? c : max;
        sum += c;
        n++;
        p++;
    }
    if (n != threads || sum != total) {
        fprintf(stderr, "spread_client: %llu loops adding up to %llu, /stats says %llu and %llu\n",
                n, sum, threads, total);
        exit(1);
    }
    double avg = (double)sum / (double)n;
    printf("%7llu %11llu %7llu %7llu %9.2f %8.2f\n", threads, total, min, max, avg,
           100.0 * ((double)max / avg - 1.0));
}

int main(int argc, char **argv)
{
    long conns = argc > 2 ? atol(argv[2]) : 10000;
    int port = argc > 1 ? atoi(argv[1]) : 0;
    if (port <= 0 || port > 65535 || conns < 1 || conns > 100000) {
        fprintf(stderr, "usage: spread_client PORT [CONNS 1..100000]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)(conns + 64)) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)(conns + 64) ? rl.rlim_max : (rlim_t)(conns + 64);
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    server_addr = (struct sockaddr_in){.sin_family = AF_INET,
                                       .sin_port = htons((uint16_t)port),
                                       .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int *fds = calloc((size_t)conns, sizeof *fds);
    if (!fds) {
        die("calloc");
    }
    open_streams(fds, conns);
    char *stats = get_stats();
    print_row(stats);
    free(stats);
    for (long i = 0; i < conns; i++) {
        close(fds[i]);
    }
    free(fds);
    return 0;
}
