/*
 * baseline: the simplest epoll fan-out server, to compare sse-server with.
 *
 *   baseline [--port N]        (127.0.0.1 only; 0 picks a free port)
 *
 * Prints "baseline listening on http://127.0.0.1:<port>". Any GET (the head
 * read up to its blank line) gets minimal event-stream headers and the
 * connection becomes a subscriber. A POST's Content-Length body is
 * published: the frame "id: n\ndata: <line>\n...\n\n" is built once and
 * write() to every subscriber, one write per subscriber per message; a
 * subscriber whose write would block or is short is dropped (it is a
 * baseline: no queue, no ring). The POST is answered
 * 202 {"id":n,"clients":k} on its keep-alive connection; pipelined
 * requests are handled in order, their answers written together.
 * SIGINT/SIGTERM: prints counters on stderr and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HEAD (16u * 1024)
#define MAX_BODY (64u << 20)

struct bconn {
    int fd;
    bool subscriber;
    long sub_index; /* in subs[] */
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off, out_cap;
    bool want_out;
};

static struct bconn **conns; /* by fd */
static size_t nconns_cap;
static int *subs; /* dense array of subscriber fds */
static long nsubs, subs_cap;
static int ep;
static uint64_t next_id = 1;
static unsigned long long published, dropped, written_bytes;
static char *frame;
static size_t frame_cap;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fprintf(stderr, "baseline: out of memory\n");
        exit(1);
    }
    return p;
}

static void reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) {
        return;
    }
    size_t c = *cap ? *cap : 4096;
    while (c < need) {
        c *= 2;
    }
    *buf = xrealloc(*buf, c);
    *cap = c;
}

static void conn_close(struct bconn *c)
{
    if (c->subscriber) {
        /* Swap-remove from the dense array. */
        long last = --nsubs;
        if (c->sub_index != last) {
            subs[c->sub_index] = subs[last];
            conns[subs[last]]->sub_index = c->sub_index;
        }
    }
    conns[c->fd] = NULL;
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static void set_out(struct bconn *c, bool want)
{
    if (c->want_out != want) {
        c->want_out = want;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0),
                                 .data.fd = c->fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

/* Writes the connection's pending answers. Returns -1 if it was closed. */
static int flush_out(struct bconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(c, true);
            return 0;
        }
        if (w < 0) {
            conn_close(c);
            return -1;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    set_out(c, false);
    return 0;
}

static void append_out(struct bconn *c, const char *s, size_t n)
{
    reserve(&c->out, &c->out_cap, c->out_len + n);
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
}

/* Builds the frame for body and writes it to every subscriber. */
static void publish(const char *body, size_t len)
{
    uint64_t id = next_id++;
    reserve(&frame, &frame_cap, 64 + len * 2 + 16);
    size_t n = (size_t)snprintf(frame, 32, "id: %llu\n", (unsigned long long)id);
    size_t i = 0;
    do {
        const char *nl = memchr(body + i, '\n', len - i);
        size_t k = nl ? (size_t)(nl - (body + i)) : len - i;
        reserve(&frame, &frame_cap, n + k + 16);
        memcpy(frame + n, "data: ", 6);
        memcpy(frame + n + 6, body + i, k);
        n += 6 + k;
        frame[n++] = '\n';
        i += k + (nl ? 1 : 0);
    } while (i < len);
    frame[n++] = '\n';
    published++;

    for (long s = 0; s < nsubs;) {
        int fd = subs[s];
        ssize_t w = write(fd, frame, n);
        if (w == (ssize_t)n) {
            written_bytes += n;
            s++;
            continue;
        }
        dropped++;
        conn_close(conns[fd]); /* moves the last subscriber into slot s */
    }
}

static const char SSE_HEAD[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\n"
                               "\r\n"
                               ": ok\n\n";

/* Handles every complete request in the input. Returns -1 if closed. */
static int handle_input(struct bconn *c)
{
    size_t off = 0;
    while (off < c->in_len) {
        char *s = c->in + off;
        size_t avail = c->in_len - off;
        char *e = memmem(s, avail, "\r\n\r\n", 4);
        if (!e) {
            if (avail > MAX_HEAD) {
                conn_close(c);
                return -1;
            }
            break;
        }
        size_t head = (size_t)(e + 4 - s);
        if (avail >= 4 && memcmp(s, "GET ", 4) == 0) {
            /* Becomes a subscriber; anything after the head is ignored. */
            if (write(c->fd, SSE_HEAD, sizeof SSE_HEAD - 1) != (ssize_t)(sizeof SSE_HEAD - 1)) {
                conn_close(c);
                return -1;
            }
            if (nsubs == subs_cap) {
                subs_cap = subs_cap ? subs_cap * 2 : 1024;
                subs = xrealloc(subs, (size_t)subs_cap * sizeof *subs);
            }
            c->subscriber = true;
            c->sub_index = nsubs;
            subs[nsubs++] = c->fd;
            free(c->in);
            c->in = NULL;
            c->in_len = c->in_cap = 0;
            return 0;
        }
        if (avail < 5 || memcmp(s, "POST ", 5) != 0) {
            conn_close(c);
            return -1;
        }
        size_t clen = 0;
        for (char *p = s; p + 16 < e; p++) {
            if (p[0] == '\n' && strncasecmp(p + 1, "content-length:", 15) == 0) {
                clen = strtoul(p + 16, NULL, 10);
                break;
            }
        }
        if (clen > MAX_BODY) {
            conn_close(c);
            return -1;
        }
        if (avail < head + clen) {
            break; /* body incomplete */
        }
        publish(s + head, clen);
        char ans[160], body[64];
        int bl = snprintf(body, sizeof body, "{\"id\":%llu,\"clients\":%ld}",
                          (unsigned long long)(next_id - 1), nsubs);
        int al = snprintf(ans, sizeof ans,
                          "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                          "Content-Length: %d\r\n\r\n%s",
                          bl, body);
        append_out(c, ans, (size_t)al);
        off += head + clen;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return flush_out(c);
}

static void on_readable(struct bconn *c)
{
    if (c->subscriber) {
        char scratch[4096];
        ssize_t n = read(c->fd, scratch, sizeof scratch);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(c);
        }
        return;
    }
    for (;;) {
        reserve(&c->in, &c->in_cap, c->in_len + 65536);
        size_t room = c->in_cap - c->in_len;
        ssize_t n = read(c->fd, c->in + c->in_len, room);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->in_len += (size_t)n;
        if ((size_t)n < room) {
            break;
        }
    }
    handle_input(c);
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return; /* EAGAIN, or out of descriptors: try again next time */
        }
        if ((size_t)fd >= nconns_cap) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct bconn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        conns[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            conn_close(c);
        }
    }
}

int main(int argc, char **argv)
{
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: baseline [--port N]\n");
            return 2;
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    nconns_cap =
        rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 20) ? (1u << 20) : (size_t)rl.rlim_cur;
    conns = calloc(nconns_cap, sizeof *conns);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (!conns || lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(lfd, 4096) < 0 || getsockname(lfd, (struct sockaddr *)&a, &al) < 0) {
        perror("baseline: listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    printf("baseline listening on http://127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);

    struct epoll_event evs[1024];
    while (!stop) {
        int n = epoll_wait(ep, evs, 1024, -1);
        for (int k = 0; k < n; k++) {
            int fd = evs[k].data.fd;
            if (fd == lfd) {
                on_accept(lfd);
                continue;
            }
            struct bconn *c = conns[fd];
            if (!c) {
                continue; /* closed earlier in this batch */
            }
            if (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                on_readable(c);
                c = conns[fd];
            }
            if (c && c == conns[fd] && (evs[k].events & EPOLLOUT)) {
                flush_out(c);
            }
        }
    }
    fprintf(stderr, "baseline: %llu published, %ld subscribers, %llu dropped, %llu bytes\n",
            published, nsubs, dropped, written_bytes);
    return 0;
}
