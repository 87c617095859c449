/*
 * spread: how evenly the kernel spreads connections over N listening
 * sockets sharing one port with SO_REUSEPORT -- the choice between one
 * listener per event loop and one acceptor handing descriptors out.
 *
 *   spread [--listeners N] [--conns M]     (defaults 4 and 10,000)
 *
 * Opens N listeners on 127.0.0.1 (an ephemeral port, then the same port
 * for the others), makes M connections to it, accepts each on whichever
 * listener the kernel chose, and prints each listener's count, the
 * average, and how far the busiest is above the average. The accepted side
 * of every connection stays open until the end, as long-lived event
 * streams do; the client side is closed once connected, so that both ends
 * of 10,000 connections need not fit in one process's descriptor limit.
 * Loopback only; it stops by itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LISTENERS 64

static void die(const char *what)
{
    fprintf(stderr, "spread: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int listener(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        die("socket");
    }
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0 || listen(fd, 4096) < 0) {
        die("bind/listen");
    }
    socklen_t len = sizeof *addr;
    if (getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
        die("getsockname");
    }
    return fd;
}

/* Accepts whatever is queued on every listener; the fds are kept in out. */
static void accept_all(const int *lfd, int n, long *count, int *out, long *nout)
{
    for (int k = 0; k < n; k++) {
        int fd;
        while ((fd = accept4(lfd[k], NULL, NULL, SOCK_CLOEXEC)) >= 0) {
            count[k]++;
            out[(*nout)++] = fd;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            die("accept4");
        }
    }
}

int main(int argc, char **argv)
{
    int n = 4;
    long m = 10000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listeners") == 0) {
            n = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--conns") == 0) {
            m = atol(argv[i + 1]);
        }
    }
    if (n < 1 || n > MAX_LISTENERS || m < 1 || m > 1000000) {
        fprintf(stderr, "usage: spread [--listeners 1..64] [--conns 1..1000000]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)(m + 128)) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)(m + 128) ? rl.rlim_max : (rlim_t)(m + 128);
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int lfd[MAX_LISTENERS];
    for (int k = 0; k < n; k++) {
        lfd[k] = listener(&addr);
    }
    long count[MAX_LISTENERS] = {0}, naccepted = 0;
    int *accepted = calloc((size_t)m, sizeof *accepted);
    if (!accepted) {
        die("calloc");
    }
    for (long i = 0; i < m; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof addr) < 0) {
            die("connect (raise the descriptor limit?)");
        }
        close(c);
        accept_all(lfd, n, count, accepted, &naccepted);
    }
    while (naccepted < m) {
        usleep(1000);
        accept_all(lfd, n, count, accepted, &naccepted);
    }
    double avg = (double)m / n;
    long max = 0;
    printf("SO_REUSEPORT, %d listeners, %ld connections:", n, m);
    for (int k = 0; k < n; k++) {
        printf(" %ld", count[k]);
        max = count[k] > max ? count[k] : max;
    }
    printf("\naverage %.1f, busiest %ld: %+.1f%% above the average\n", avg, max,
           100.0 * ((double)max / avg - 1.0));
    for (long i = 0; i < m; i++) {
        close(accepted[i]);
    }
    for (int k = 0; k < n; k++) {
        close(lfd[k]);
    }
    free(accepted);
    return 0;
}
