/*
 * loadgen: load generator for sse-server (and the baseline and peers).
 *
 * One process, 127.0.0.1 only; one epoll loop, or with --threads T one per
 * thread, each serving every T-th subscriber (the first thread also
 * publishes), so that one load generator can drive a many-core server:
 *   1. opens --subs event streams (GET /messages, Accept: text/event-stream),
 *      at most --conc connects in flight, and waits until every one has
 *      received its response headers;
 *   2. then either stays idle for --idle seconds (memory per idle
 *      subscriber), or publishes --messages JSON bodies of --bytes bytes on
 *      one keep-alive connection: one request in flight, --pipeline K in
 *      flight, or --rate R per second. Each body carries its sequence
 *      number and a CLOCK_MONOTONIC send timestamp (ns):
 *          {"seq":17,"t":123456789,"p":"xxxx...x"}
 *      Any 2xx answer counts as accepted; the answer body is not read.
 *   3. parses every stream with the WHATWG event-stream rules (evparse.h)
 *      and checks each subscriber gets every accepted message exactly once,
 *      in order, intact (length); latency = receive time - send timestamp.
 *
 * Reports deliveries/s (first publish to last delivery), lost, duplicated,
 * out-of-order and corrupt deliveries, latency percentiles, and for
 * --server-pid the server's CPU seconds (/proc/PID/stat) and RSS
 * (/proc/PID/status) before and after the subscribers connect and at the
 * end. --json prints one line of JSON instead of the text report.
 *
 * Several servers as one service (nodes sharing a Redis): --sub-ports spreads
 * the subscribers over their ports (subscriber i on the (i mod n)-th), the
 * publisher stays on --port, --server-pid takes every node's PID (CPU and RSS
 * summed) and --redis-pid the store's, whose CPU while publishing is reported
 * per accepted message.
 *
 * Exit status: 0 all good; 1 a check failed (lost, duplicate, out of order,
 * corrupt, dropped or unconnected subscribers, rejected posts); 2 usage or
 * fatal error; 3 the --timeout deadline ended the run.
 */
#include "evparse.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ID_PUB       UINT64_MAX
#define READ_BUF     (256u * 1024)
#define HDR_MAX      8192
#define MAX_EVENTS   4096
#define MAX_TRIES    5
#define OUT_MAX      (1u << 20) /* publisher bytes queued before waiting */
#define REQ_HEAD_MAX 256
#define MAX_THREADS  64
#define MAX_PIDS     16 /* --server-pid list; also the most --sub-ports */

/* ------------------------------------------------------------ options */

struct opts {
    int port;
    long server_pid[MAX_PIDS];
    int server_pids;
    long redis_pid;
    int sub_port[MAX_PIDS];
    int sub_ports;
    long subs;
    long messages;
    long bytes;
    long pipeline;
    double rate;
    double duration;
    double idle;
    double timeout;
    double connect_timeout;
    double drain;
    double settle;
    long conc;
    long threads;
    bool json;
    const char *label;
    const char *sub_path;
    const char *pub_path;
};

static struct opts o = {
    .port = 0,
    .subs = 100,
    .messages = 1000,
    .bytes = 100,
    .pipeline = 1,
    .timeout = 120,
    .connect_timeout = 0,
    .drain = 10,
    .settle = 0.2,
    .conc = 256,
    .threads = 1,
    .label = "",
    .sub_path = "/messages",
    .pub_path = "/message",
};

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --port P [options]\n"
               "  --server-pid PID[,PID...]  read the server's CPU and RSS from /proc\n"
               "                       (summed over several nodes)\n"
               "  --redis-pid PID      report that process's CPU while publishing, per message\n"
               "  --sub-ports P[,P...] subscriber i connects to the (i mod n)-th of these ports\n"
               "                       (default: --port)\n"
               "  --subs N             event-stream subscribers (100)\n"
               "  --messages M         messages to publish (1000)\n"
               "  --bytes B            body size of each message (100)\n"
               "  --pipeline K         requests in flight on the publisher connection (1)\n"
               "  --rate R             publish R messages/s (0: as fast as answers allow)\n"
               "  --duration S         stop publishing after S seconds even if fewer than M\n"
               "                       were sent (reported as truncated); 0: no limit\n"
               "  --idle S             no publishing: keep the subscribers S seconds, then\n"
               "                       measure the server's memory\n"
               "  --timeout S          global deadline, seconds (120)\n"
               "  --connect-timeout S  deadline for all subscribers to connect (timeout/2)\n"
               "  --drain S            after the last answer, give up when nothing arrives\n"
               "                       for S seconds (10)\n"
               "  --settle S           pause between connecting and publishing (0.2)\n"
               "  --conc N             connects in flight at once (256, per thread)\n"
               "  --threads T          event loops, each with every T-th subscriber (1)\n"
               "  --sub-path PATH      stream path (/messages)\n"
               "  --pub-path PATH      publish path (/message)\n"
               "  --label TEXT         copied to the report\n"
               "  --json               one line of JSON instead of the text report\n");
}

static double arg_num(const char *name, const char *v, double min, double max)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < min || d > max) {
        fprintf(stderr, "loadgen: bad value for %s: %s\n", name, v);
        exit(2);
    }
    return d;
}

/* A comma list of at most MAX_PIDS whole numbers in [min, max] into out;
 * returns how many. */
static int arg_list(const char *name, const char *v, long *out, double min, double max)
{
    char item[32];
    int n = 0;
    while (*v) {
        size_t len = strcspn(v, ",");
        if (n == MAX_PIDS || len == 0 || len >= sizeof item) {
            fprintf(stderr, "loadgen: bad list for %s (at most %d numbers)\n", name, MAX_PIDS);
            exit(2);
        }
        memcpy(item, v, len);
        item[len] = '\0';
        out[n++] = (long)arg_num(name, item, min, max);
        v += len + (v[len] == ',');
    }
    return n;
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            o.json = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "loadgen: unknown option or missing value: %s\n", a);
            usage(stderr);
            exit(2);
        }
        const char *v = argv[++i];
        if (strcmp(a, "--port") == 0) {
            o.port = (int)arg_num(a, v, 1, 65535);
        } else if (strcmp(a, "--server-pid") == 0) {
            o.server_pids = arg_list(a, v, o.server_pid, 1, 1e9);
        } else if (strcmp(a, "--redis-pid") == 0) {
            o.redis_pid = (long)arg_num(a, v, 1, 1e9);
        } else if (strcmp(a, "--sub-ports") == 0) {
            long ports[MAX_PIDS];
            o.sub_ports = arg_list(a, v, ports, 1, 65535);
            for (int k = 0; k < o.sub_ports; k++) {
                o.sub_port[k] = (int)ports[k];
            }
        } else if (strcmp(a, "--subs") == 0) {
            o.subs = (long)arg_num(a, v, 0, 1e6);
        } else if (strcmp(a, "--messages") == 0) {
            o.messages = (long)arg_num(a, v, 0, 1e9);
        } else if (strcmp(a, "--bytes") == 0) {
            o.bytes = (long)arg_num(a, v, 0, 64 << 20);
        } else if (strcmp(a, "--pipeline") == 0) {
            o.pipeline = (long)arg_num(a, v, 1, 1e6);
        } else if (strcmp(a, "--rate") == 0) {
            o.rate = arg_num(a, v, 0, 1e9);
        } else if (strcmp(a, "--duration") == 0) {
            o.duration = arg_num(a, v, 0, 86400);
        } else if (strcmp(a, "--idle") == 0) {
            o.idle = arg_num(a, v, 0, 86400);
        } else if (strcmp(a, "--timeout") == 0) {
            o.timeout = arg_num(a, v, 0.1, 86400);
        } else if (strcmp(a, "--connect-timeout") == 0) {
            o.connect_timeout = arg_num(a, v, 0.1, 86400);
        } else if (strcmp(a, "--drain") == 0) {
            o.drain = arg_num(a, v, 0.01, 86400);
        } else if (strcmp(a, "--settle") == 0) {
            o.settle = arg_num(a, v, 0, 3600);
        } else if (strcmp(a, "--conc") == 0) {
            o.conc = (long)arg_num(a, v, 1, 1e6);
        } else if (strcmp(a, "--threads") == 0) {
            o.threads = (long)arg_num(a, v, 1, MAX_THREADS);
        } else if (strcmp(a, "--sub-path") == 0) {
            o.sub_path = v;
        } else if (strcmp(a, "--pub-path") == 0) {
            o.pub_path = v;
        } else if (strcmp(a, "--label") == 0) {
            o.label = v;
        } else {
            fprintf(stderr, "loadgen: unknown option: %s\n", a);
            usage(stderr);
            exit(2);
        }
    }
    if (o.port == 0) {
        fprintf(stderr, "loadgen: --port is required\n");
        usage(stderr);
        exit(2);
    }
    if (o.connect_timeout == 0) {
        o.connect_timeout = o.timeout / 2;
    }
    if (o.sub_ports == 0) {
        o.sub_port[0] = o.port;
        o.sub_ports = 1;
    }
    if (strlen(o.sub_path) > 200 || strlen(o.pub_path) > 200 || strchr(o.sub_path, '\r') ||
        strchr(o.pub_path, '\r') || strchr(o.sub_path, '\n') || strchr(o.pub_path, '\n')) {
        fprintf(stderr, "loadgen: bad path\n");
        exit(2);
    }
}

/* ------------------------------------------------------------ utilities */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 1, 2))) static void die(const char *fmt, ...);

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        die("out of memory (%zu x %zu bytes)", n, size);
    }
    return p;
}

/* Case-insensitive search of a header line "name: value" in a head. */
static const char *header_value(const char *head, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl + 1 < len; i++) {
        if ((i == 0 || head[i - 1] == '\n') && strncasecmp(head + i, name, nl) == 0 &&
            head[i + nl] == ':') {
            const char *v = head + i + nl + 1;
            while (v < head + len && (*v == ' ' || *v == '\t')) {
                v++;
            }
            return v;
        }
    }
    return NULL;
}

/* Whether the header's value (up to CR/LF) contains word, case-insensitive. */
static bool header_has(const char *head, size_t len, const char *name, const char *word)
{
    const char *v = header_value(head, len, name);
    if (!v) {
        return false;
    }
    size_t wl = strlen(word);
    for (; v + wl <= head + len && *v != '\r' && *v != '\n'; v++) {
        if (strncasecmp(v, word, wl) == 0) {
            return true;
        }
    }
    return false;
}

/* The status code of "HTTP/1.x NNN ...", or -1. */
static int status_code(const char *head, size_t len)
{
    if (len < 12 || memcmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ') {
        return -1;
    }
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (head[i] < '0' || head[i] > '9') {
            return -1;
        }
        code = code * 10 + (head[i] - '0');
    }
    return code;
}

/* ------------------------------------------------------------ /proc */

struct proc_sample {
    bool ok;
    double cpu_s; /* utime + stime */
    long rss_kb;  /* VmRSS */
};

/* utime + stime of pid in seconds, or -1 when /proc cannot tell. */
static double proc_cpu(long pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (!p) {
        return -1;
    }
    /* After ") ": state is field 3; utime and stime are fields 14 and 15. */
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
        return -1;
    }
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

/* CPU time of every thread of pid in seconds, from the scheduler's own
 * nanosecond count (the first field of /proc/PID/task/TID/schedstat), or -1.
 * utime + stime come in 10 ms ticks: for a process that spends tens of
 * microseconds per message, a run of a thousand messages is a few ticks. */
static double proc_sched_s(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (!d) {
        return -1;
    }
    unsigned long long total = 0;
    bool any = false;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') {
            continue;
        }
        char file[sizeof path + sizeof e->d_name + 16];
        snprintf(file, sizeof file, "%s/%s/schedstat", path, e->d_name);
        FILE *f = fopen(file, "r");
        unsigned long long ns = 0;
        if (f && fscanf(f, "%llu", &ns) == 1) {
            total += ns;
            any = true;
        }
        if (f) {
            fclose(f);
        }
    }
    closedir(d);
    return any ? (double)total / 1e9 : -1;
}

/* VmRSS of pid in KiB, or -1. */
static long proc_rss_kb(long pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    fclose(f);
    return kb;
}

/* The servers' CPU and RSS, summed over every --server-pid: ok only when
 * every one could be read. */
static struct proc_sample proc_sample(void)
{
    struct proc_sample s = {0};
    if (o.server_pids == 0) {
        return s;
    }
    for (int k = 0; k < o.server_pids; k++) {
        double cpu = proc_cpu(o.server_pid[k]);
        long rss = proc_rss_kb(o.server_pid[k]);
        if (cpu < 0 || rss < 0) {
            return s;
        }
        s.cpu_s += cpu;
        s.rss_kb += rss;
    }
    s.ok = true;
    return s;
}

/* ------------------------------------------------------------ histogram */

/* Log-linear: 128 linear sub-buckets per power of two (< 1% error). */
#define H_SUB     128
#define H_BUCKETS (64 * H_SUB)

struct hist {
    uint64_t count;
    uint64_t max;
    uint64_t *b;
};

static size_t h_index(uint64_t v)
{
    if (v < H_SUB) {
        return (size_t)v;
    }
    int e = 63 - __builtin_clzll(v); /* >= 7 */
    return (size_t)(e - 6) * H_SUB + (size_t)((v >> (e - 7)) & (H_SUB - 1));
}

static uint64_t h_value(size_t i)
{
    if (i < H_SUB) {
        return i;
    }
    int e = (int)(i / H_SUB) + 6;
    uint64_t low = (uint64_t)(H_SUB + i % H_SUB) << (e - 7);
    uint64_t width = (uint64_t)1 << (e - 7);
    return low + width / 2;
}

static void h_add(struct hist *h, uint64_t v)
{
    h->b[h_index(v)]++;
    h->count++;
    if (v > h->max) {
        h->max = v;
    }
}

static uint64_t h_pct(const struct hist *h, double q)
{
    if (h->count == 0) {
        return 0;
    }
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank < 1) {
        rank = 1;
    }
    uint64_t acc = 0;
    for (size_t i = 0; i < H_BUCKETS; i++) {
        acc += h->b[i];
        if (acc >= rank) {
            uint64_t v = h_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* The latency distribution at fixed quantiles, as "q:us q:us ..." (for the
 * CDF chart of bench/charts.py); empty when nothing was measured. */
static void h_cdf(const struct hist *h, char *out, size_t cap)
{
    static const double qs[] = {0.001, 0.01, 0.02, 0.05, 0.1,  0.15, 0.2,   0.25,  0.3,
                                0.35,  0.4,  0.45, 0.5,  0.55, 0.6,  0.65,  0.7,   0.75,
                                0.8,   0.85, 0.9,  0.95, 0.98, 0.99, 0.995, 0.999, 0.9999};
    size_t n = 0;
    out[0] = '\0';
    if (h->count == 0) {
        return;
    }
    for (size_t i = 0; i < sizeof qs / sizeof qs[0] && n < cap; i++) {
        n +=
            (size_t)snprintf(out + n, cap - n, "%g:%.1f ", qs[i], (double)h_pct(h, qs[i]) / 1000.0);
    }
    if (n < cap) {
        snprintf(out + n, cap - n, "1:%.1f", (double)h->max / 1000.0);
    }
}

/* ------------------------------------------------------------ chunked */

enum { CK_SIZE, CK_EXT, CK_DATA, CK_DATA_END, CK_TRAILER, CK_DONE };

struct chunkdec {
    uint8_t st;
    bool digits;
    size_t line; /* trailer line length so far */
    uint64_t left;
};

typedef void (*chunk_out_fn)(void *ctx, const char *s, size_t n);

/* Decodes a chunked body: data goes to out. Returns the bytes consumed
 * (it stops after the final CRLF), or -1 on a malformed body. */
static long chunk_feed(struct chunkdec *d, const char *s, size_t n, chunk_out_fn out, void *ctx)
{
    size_t i = 0;
    while (i < n && d->st != CK_DONE) {
        char c = s[i];
        switch (d->st) {
        case CK_SIZE:
        case CK_EXT:
            if (c == '\n') {
                if (!d->digits) {
                    return -1;
                }
                d->st = d->left ? CK_DATA : CK_TRAILER;
                d->line = 0;
            } else if (d->st == CK_SIZE && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                                            (c >= 'A' && c <= 'F'))) {
                int v = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
                if (d->left >> 59) {
                    return -1;
                }
                d->left = d->left * 16 + (uint64_t)v;
                d->digits = true;
            } else {
                d->st = CK_EXT; /* extension, CR, or whitespace: skip to LF */
            }
            i++;
            break;
        case CK_DATA: {
            size_t k = n - i < d->left ? n - i : (size_t)d->left;
            if (out) {
                out(ctx, s + i, k);
            }
            d->left -= k;
            i += k;
            if (d->left == 0) {
                d->st = CK_DATA_END;
            }
            break;
        }
        case CK_DATA_END:
            if (c == '\n') {
                d->st = CK_SIZE;
                d->digits = false;
                d->left = 0;
            } else if (c != '\r') {
                return -1;
            }
            i++;
            break;
        case CK_TRAILER:
            if (c == '\n') {
                if (d->line == 0) {
                    d->st = CK_DONE;
                }
                d->line = 0;
            } else if (c != '\r') {
                d->line++;
            }
            i++;
            break;
        default:
            break;
        }
    }
    return (long)i;
}

/* ------------------------------------------------------------ state */

enum sub_state { SS_PENDING, SS_CONNECTING, SS_HEADERS, SS_STREAM, SS_CLOSED, SS_FAILED };

struct sub {
    int fd;
    uint8_t state;
    uint8_t tries;
    bool chunked;
    bool counted; /* streaming when publishing began */
    uint32_t hdr_len;
    char *hdr;
    struct chunkdec cd;
    int64_t max_seq;
    uint64_t got; /* distinct valid deliveries */
    struct evp p;
};

struct pub {
    int fd;
    bool want_out;
    char *out;
    size_t out_len, out_off, out_cap;
    char *in;
    size_t in_len, in_cap;
    long next;  /* next sequence number to send */
    long acked; /* answers received */
    long ok;    /* 2xx answers */
    long errors;
    /* answer being parsed */
    int rstate; /* 0 head, 1 body by length, 2 chunked body */
    uint64_t body_left;
    struct chunkdec cd;
    int status;
    bool close_after;
    bool closed;
};

static _Thread_local struct loadgen {
    int ep;
    struct sockaddr_in addr;               /* the publisher's */
    struct sockaddr_in sub_addr[MAX_PIDS]; /* subscriber i: sub_addr[i % o.sub_ports] */
    char sub_req[MAX_PIDS][320];
    size_t sub_req_len[MAX_PIDS];

    struct sub *subs;
    long *queue; /* subscribers to (re)connect */
    long q_head, q_tail;
    long connecting; /* connects or header waits in flight */
    long streaming;  /* subscribers whose headers arrived and still open */
    long failed;
    long http_errors;
    long dropped; /* closed by the server after streaming began */
    long retries;

    uint64_t *seen; /* bitmap: subs x words */
    size_t words;
    uint8_t *accepted; /* per message: 1 when answered 2xx */
    uint32_t *blen;    /* per message: body length */
    uint64_t *sent_ns; /* per message: send timestamp */

    uint64_t total_got;   /* distinct valid deliveries, all subscribers */
    uint64_t got_dropped; /* of which by subscribers since dropped */
    uint64_t dup, ooo, corrupt, other_events, comments_seen;
    uint64_t first_send_ns, last_delivery_ns, last_ack_ns, last_progress_ns;
    struct hist lat, ack;

    struct pub pub;
    long msgs;      /* messages of this run (0 with --idle) */
    long pub_limit; /* messages to publish: --messages, less if --duration cut it */
    bool truncated;
    bool publishing;
    uint64_t now;
    char *rbuf;
} g; /* each thread's own (see struct lane) */

/* ------------------------------------------------------------ subscribers */

static void ep_ctl(int op, int fd, uint32_t events, uint64_t id)
{
    struct epoll_event ev = {.events = events, .data.u64 = id};
    if (epoll_ctl(g.ep, op, fd, &ev) < 0) {
        die("epoll_ctl: %s", strerror(errno));
    }
}

static void sub_close(struct sub *s)
{
    if (s->fd >= 0) {
        close(s->fd); /* also removes it from the epoll set */
        s->fd = -1;
    }
    free(s->hdr);
    s->hdr = NULL;
}

/* A connect or the response headers failed: try again, or give up. */
static void sub_retry(long i, bool retryable)
{
    struct sub *s = &g.subs[i];
    sub_close(s);
    g.connecting--;
    if (retryable && ++s->tries < MAX_TRIES) {
        s->state = SS_PENDING;
        g.queue[g.q_tail++] = i;
        g.retries++;
    } else {
        s->state = SS_FAILED;
        g.failed++;
    }
}

static void sub_start(long i)
{
    struct sub *s = &g.subs[i];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        die("socket: %s (raise the open-files limit?)", strerror(errno));
    }
    s->fd = fd;
    s->state = SS_CONNECTING;
    g.connecting++;
    const struct sockaddr_in *to = &g.sub_addr[i % o.sub_ports];
    if (connect(fd, (const struct sockaddr *)to, sizeof *to) < 0 && errno != EINPROGRESS) {
        sub_retry(i, errno == ECONNREFUSED || errno == EAGAIN || errno == ETIMEDOUT);
        return;
    }
    ep_ctl(EPOLL_CTL_ADD, fd, EPOLLOUT, (uint64_t)i);
}

static void on_event(void *ctx, struct evp *p)
{
    struct sub *s = ctx;
    long i = s - g.subs;

    if (p->type.len != 0 && !(p->type.len == 7 && memcmp(p->type.s, "message", 7) == 0)) {
        g.other_events++;
        return;
    }
    /* {"seq":N,"t":T,... */
    const char *d = p->keep, *end = p->keep + p->keep_len;
    uint64_t seq = 0, t = 0;
    bool ok = p->keep_len > 8 && memcmp(d, "{\"seq\":", 7) == 0;
    if (ok) {
        d += 7;
        const char *start = d;
        while (d < end && *d >= '0' && *d <= '9') {
            seq = seq * 10 + (uint64_t)(*d++ - '0');
        }
        ok = d > start && end - d > 5 && memcmp(d, ",\"t\":", 5) == 0;
    }
    if (ok) {
        d += 5;
        const char *start = d;
        while (d < end && *d >= '0' && *d <= '9') {
            t = t * 10 + (uint64_t)(*d++ - '0');
        }
        /* Written by the publishing thread before it sent the message. */
        ok = d > start && seq < (uint64_t)g.msgs &&
             p->data_len == __atomic_load_n(&g.blen[seq], __ATOMIC_RELAXED);
    }
    if (!ok) {
        g.corrupt++;
        return;
    }
    uint64_t *w = &g.seen[(size_t)i * g.words + seq / 64];
    uint64_t bit = (uint64_t)1 << (seq % 64);
    if (*w & bit) {
        g.dup++;
        return;
    }
    *w |= bit;
    if ((int64_t)seq < s->max_seq) {
        g.ooo++;
    } else {
        s->max_seq = (int64_t)seq;
    }
    s->got++;
    g.total_got++;
    g.last_delivery_ns = g.now;
    h_add(&g.lat, g.now > t ? g.now - t : 0);
}

static void sub_body(void *ctx, const char *b, size_t n)
{
    struct sub *s = ctx;
    evp_feed(&s->p, b, n, on_event, s);
}

/* Stream bytes after the response head. Returns -1 on a framing error. */
static int sub_stream_bytes(struct sub *s, const char *b, size_t n)
{
    if (!s->chunked) {
        evp_feed(&s->p, b, n, on_event, s);
        return 0;
    }
    long r = chunk_feed(&s->cd, b, n, sub_body, s);
    return r < 0 || s->cd.st == CK_DONE ? -1 : 0;
}

static void sub_lost_stream(long i)
{
    struct sub *s = &g.subs[i];
    sub_close(s);
    s->state = SS_CLOSED;
    g.streaming--;
    g.dropped++;
    if (s->counted) {
        g.got_dropped += s->got;
    }
}

static void sub_on_headers(long i, const char *extra, size_t extra_len)
{
    struct sub *s = &g.subs[i];
    int code = status_code(s->hdr, s->hdr_len);
    if (code != 200) {
        if (g.http_errors++ < 3) {
            fprintf(stderr, "loadgen: subscriber got HTTP status %d\n", code);
        }
        sub_retry(i, false);
        return;
    }
    s->chunked = header_has(s->hdr, s->hdr_len, "transfer-encoding", "chunked");
    free(s->hdr);
    s->hdr = NULL;
    s->state = SS_STREAM;
    g.connecting--;
    g.streaming++;
    evp_init(&s->p);
    if (extra_len && sub_stream_bytes(s, extra, extra_len) < 0) {
        sub_lost_stream(i);
    }
}

static void sub_io(long i, uint32_t events)
{
    struct sub *s = &g.subs[i];
    if (s->state == SS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            sub_retry(i, true);
            return;
        }
        if (!(events & EPOLLOUT)) {
            return;
        }
        int k = (int)(i % o.sub_ports);
        ssize_t w = write(s->fd, g.sub_req[k], g.sub_req_len[k]);
        if (w != (ssize_t)g.sub_req_len[k]) {
            sub_retry(i, true);
            return;
        }
        s->state = SS_HEADERS;
        s->hdr = xcalloc(1, HDR_MAX);
        s->hdr_len = 0;
        ep_ctl(EPOLL_CTL_MOD, s->fd, EPOLLIN | EPOLLRDHUP, (uint64_t)i);
        return;
    }
    for (int round = 0; round < 4; round++) {
        ssize_t n;
        if (s->state == SS_HEADERS) {
            n = read(s->fd, s->hdr + s->hdr_len, HDR_MAX - s->hdr_len);
        } else {
            n = read(s->fd, g.rbuf, READ_BUF);
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            if (s->state == SS_HEADERS) {
                sub_retry(i, true);
            } else {
                sub_lost_stream(i);
            }
            return;
        }
        g.now = now_ns();
        if (s->state == SS_HEADERS) {
            size_t old = s->hdr_len;
            s->hdr_len += (uint32_t)n;
            size_t from = old >= 3 ? old - 3 : 0;
            const char *e = NULL;
            for (size_t k = from; k + 4 <= s->hdr_len; k++) {
                if (memcmp(s->hdr + k, "\r\n\r\n", 4) == 0) {
                    e = s->hdr + k + 4;
                    break;
                }
            }
            if (!e) {
                if (s->hdr_len == HDR_MAX) {
                    sub_retry(i, false);
                    return;
                }
                continue;
            }
            /* Bytes after the head: move them out of the header buffer. */
            size_t extra = (size_t)(s->hdr + s->hdr_len - e);
            memcpy(g.rbuf, e, extra);
            s->hdr_len = (uint32_t)(e - s->hdr);
            sub_on_headers(i, g.rbuf, extra);
            return;
        }
        if (sub_stream_bytes(s, g.rbuf, (size_t)n) < 0) {
            sub_lost_stream(i);
            return;
        }
        if ((size_t)n < READ_BUF) {
            return;
        }
    }
}

/* ------------------------------------------------------------ publisher */

static void pub_connect(void)
{
    struct pub *p = &g.pub;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        die("socket: %s", strerror(errno));
    }
    if (connect(fd, (struct sockaddr *)&g.addr, sizeof g.addr) < 0) {
        die("publisher connect: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    p->fd = fd;
    p->closed = false;
    p->want_out = false;
    p->in_len = 0;
    p->rstate = 0;
    ep_ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP, ID_PUB);
}

static void pub_reserve(size_t extra)
{
    struct pub *p = &g.pub;
    if (p->out_off > 0 && p->out_off == p->out_len) {
        p->out_off = p->out_len = 0;
    }
    if (p->out_len + extra <= p->out_cap) {
        return;
    }
    if (p->out_off > 0) {
        memmove(p->out, p->out + p->out_off, p->out_len - p->out_off);
        p->out_len -= p->out_off;
        p->out_off = 0;
    }
    while (p->out_len + extra > p->out_cap) {
        p->out_cap = p->out_cap ? 2 * p->out_cap : 1 << 16;
    }
    p->out = realloc(p->out, p->out_cap);
    if (!p->out) {
        die("out of memory");
    }
}

/* Appends the request for message `seq`. */
static void pub_append(long seq)
{
    struct pub *p = &g.pub;
    uint64_t t = now_ns();
    char prefix[96];
    int pl = snprintf(prefix, sizeof prefix, "{\"seq\":%ld,\"t\":%llu,\"p\":\"", seq,
                      (unsigned long long)t);
    size_t body = (size_t)pl + 2;
    size_t pad = (size_t)o.bytes > body ? (size_t)o.bytes - body : 0;
    body += pad;
    pub_reserve(REQ_HEAD_MAX + body);
    int hl = snprintf(p->out + p->out_len, REQ_HEAD_MAX,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      o.pub_path, o.port, body);
    char *b = p->out + p->out_len + hl;
    memcpy(b, prefix, (size_t)pl);
    memset(b + pl, 'x', pad);
    memcpy(b + pl + pad, "\"}", 2);
    p->out_len += (size_t)hl + body;
    __atomic_store_n(&g.blen[seq], (uint32_t)body, __ATOMIC_RELAXED);
    g.sent_ns[seq] = t;
    if (!g.first_send_ns) {
        g.first_send_ns = t;
    }
}

static void pub_set_out(bool want)
{
    struct pub *p = &g.pub;
    if (p->want_out != want) {
        p->want_out = want;
        ep_ctl(EPOLL_CTL_MOD, p->fd, EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), ID_PUB);
    }
}

static void pub_flush(void)
{
    struct pub *p = &g.pub;
    while (p->out_off < p->out_len) {
        ssize_t w = write(p->fd, p->out + p->out_off, p->out_len - p->out_off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pub_set_out(true);
            return;
        }
        if (w < 0) {
            die("publisher write: %s", strerror(errno));
        }
        p->out_off += (size_t)w;
    }
    pub_set_out(false);
}

/* Nanoseconds until the next message is due under --rate (0: now). */
static uint64_t pub_due_in(void)
{
    if (o.rate <= 0 || g.pub.next >= g.pub_limit) {
        return 0;
    }
    uint64_t due = g.first_send_ns + (uint64_t)((double)g.pub.next * 1e9 / o.rate);
    uint64_t now = now_ns();
    return due > now ? due - now : 0;
}

static void pub_pump(void)
{
    struct pub *p = &g.pub;
    if (p->closed) {
        return;
    }
    bool added = false;
    if (o.duration > 0 && g.first_send_ns && p->next < g.pub_limit &&
        now_ns() - g.first_send_ns >= (uint64_t)(o.duration * 1e9)) {
        g.pub_limit = p->next; /* time is up: what was sent is the run */
        g.truncated = true;
    }
    while (p->next < g.pub_limit && p->next - p->acked < o.pipeline &&
           p->out_len - p->out_off < OUT_MAX && (!g.first_send_ns || pub_due_in() == 0)) {
        pub_append(p->next++);
        added = true;
    }
    if (added || p->out_off < p->out_len) {
        pub_flush();
    }
}

static void pub_answer_done(void)
{
    struct pub *p = &g.pub;
    long seq = p->acked++;
    uint64_t now = now_ns();
    if (p->status >= 200 && p->status < 300) {
        p->ok++;
        g.accepted[seq] = 1;
        h_add(&g.ack, now - g.sent_ns[seq]);
    } else if (p->errors++ < 3) {
        fprintf(stderr, "loadgen: publish of message %ld answered %d\n", seq, p->status);
    }
    g.last_ack_ns = now;
    g.last_progress_ns = now;
    p->rstate = 0;
}

/* Parses the answers in the input buffer. */
static void pub_parse(void)
{
    struct pub *p = &g.pub;
    size_t off = 0;
    while (off < p->in_len) {
        char *s = p->in + off;
        size_t n = p->in_len - off;
        if (p->rstate == 0) {
            char *e = memmem(s, n, "\r\n\r\n", 4);
            if (!e) {
                if (n > 65536) {
                    die("publisher: answer head too large");
                }
                break;
            }
            size_t hl = (size_t)(e + 4 - s);
            p->status = status_code(s, hl);
            if (p->status < 0) {
                die("publisher: malformed answer: %.40s", s);
            }
            off += hl;
            if (p->status >= 100 && p->status < 200) {
                continue; /* 100 Continue and the like */
            }
            p->close_after = header_has(s, hl, "connection", "close");
            if (header_has(s, hl, "transfer-encoding", "chunked")) {
                p->rstate = 2;
                memset(&p->cd, 0, sizeof p->cd);
            } else {
                const char *cl = header_value(s, hl, "content-length");
                p->body_left = cl ? strtoull(cl, NULL, 10) : 0;
                p->rstate = 1;
            }
            if (p->status == 204 || p->status == 304) {
                p->body_left = 0;
                p->rstate = 1;
            }
            if (p->rstate == 1 && p->body_left == 0) {
                pub_answer_done();
            }
        } else if (p->rstate == 1) {
            size_t k = n < p->body_left ? n : (size_t)p->body_left;
            off += k;
            p->body_left -= k;
            if (p->body_left == 0) {
                pub_answer_done();
            }
        } else {
            long r = chunk_feed(&p->cd, s, n, NULL, NULL);
            if (r < 0) {
                die("publisher: malformed chunked answer");
            }
            off += (size_t)r;
            if (p->cd.st == CK_DONE) {
                pub_answer_done();
            }
        }
        if (p->rstate == 0 && p->close_after) {
            p->close_after = false;
            if (p->acked < p->next) {
                die("publisher: the server closed the connection with %ld requests unanswered",
                    p->next - p->acked);
            }
            /* Nothing in flight: start a new connection for the rest. */
            close(p->fd);
            p->closed = true;
            p->in_len = 0;
            if (p->next < g.pub_limit) {
                pub_connect();
            }
            return;
        }
    }
    if (!p->closed) {
        memmove(p->in, p->in + off, p->in_len - off);
        p->in_len -= off;
    }
}

static void pub_io(uint32_t events)
{
    struct pub *p = &g.pub;
    if (events & EPOLLOUT) {
        pub_flush();
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        return;
    }
    for (;;) {
        if (p->in_cap - p->in_len < 16384) {
            p->in_cap = p->in_cap ? 2 * p->in_cap : 65536;
            p->in = realloc(p->in, p->in_cap);
            if (!p->in) {
                die("out of memory");
            }
        }
        ssize_t n = read(p->fd, p->in + p->in_len, p->in_cap - p->in_len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n <= 0) {
            if (p->acked < p->next || p->next < g.pub_limit) {
                die("publisher: connection closed by the server (%s) after %ld answers",
                    n < 0 ? strerror(errno) : "EOF", p->acked);
            }
            close(p->fd);
            p->closed = true;
            return;
        }
        p->in_len += (size_t)n;
        pub_parse();
        if (p->closed) {
            return;
        }
        if ((size_t)n < 16384) {
            break;
        }
    }
    pub_pump();
}

/* ------------------------------------------------------------ loop */

static void connect_more(void)
{
    while (g.connecting < o.conc && g.q_head < g.q_tail) {
        sub_start(g.queue[g.q_head++]);
    }
}

static void poll_once(int timeout_ms)
{
    static _Thread_local struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(g.ep, evs, MAX_EVENTS, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) {
            return;
        }
        die("epoll_wait: %s", strerror(errno));
    }
    for (int k = 0; k < n; k++) {
        uint64_t id = evs[k].data.u64;
        if (id == ID_PUB) {
            if (!g.pub.closed) {
                pub_io(evs[k].events);
            }
            continue;
        }
        struct sub *s = &g.subs[id];
        /* An earlier event of this batch may have closed it. */
        if (s->fd >= 0 && s->state != SS_PENDING) {
            sub_io((long)id, evs[k].events);
        }
    }
    connect_more();
}

static int ms_until(uint64_t deadline)
{
    uint64_t now = now_ns();
    if (deadline <= now) {
        return 0;
    }
    uint64_t ms = (deadline - now + 999999) / 1000000;
    return ms > 100 ? 100 : (int)ms;
}

/* ------------------------------------------------------------ report */

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)o.subs + 16 > rl.rlim_cur) {
        die("%ld subscribers need more open files than the limit (%llu)", o.subs,
            (unsigned long long)rl.rlim_cur);
    }
}

static double cpu_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------ threads */

/* One event loop's share of the run: every --threads-th subscriber, from
 * its index on. Lane 0 is the main thread, which also publishes. Each lane
 * publishes its counters after every poll, so that lane 0 can tell when
 * every delivery has arrived; at the end its whole state is merged. */
struct lane {
    pthread_t thread;
    long index;
    atomic_uint_fast64_t got, got_dropped, last_delivery_ns;
    atomic_long streaming;
    struct loadgen result; /* the lane's g when it stopped */
};

enum { PHASE_CONNECT, PHASE_COUNT, PHASE_STOP };

static struct {
    struct lane lanes[MAX_THREADS];
    struct loadgen shared; /* lane 0's g before connecting: settings and shared arrays */
    uint64_t connect_deadline;
    atomic_int connected; /* lanes 1.. done connecting */
    atomic_int counted;   /* lanes 1.. that marked their streaming subscribers */
    atomic_int phase;
} sh;

static void lane_report(struct lane *l)
{
    atomic_store_explicit(&l->got, g.total_got, memory_order_relaxed);
    atomic_store_explicit(&l->got_dropped, g.got_dropped, memory_order_relaxed);
    atomic_store_explicit(&l->last_delivery_ns, g.last_delivery_ns, memory_order_relaxed);
    atomic_store_explicit(&l->streaming, g.streaming, memory_order_relaxed);
}

/* Sums over every lane of what they last reported. */
struct totals {
    uint64_t got, got_dropped, last_delivery_ns;
    long streaming;
};

static struct totals lanes_totals(void)
{
    struct totals t = {0};
    lane_report(&sh.lanes[0]);
    for (long k = 0; k < o.threads; k++) {
        struct lane *l = &sh.lanes[k];
        t.got += atomic_load_explicit(&l->got, memory_order_relaxed);
        t.got_dropped += atomic_load_explicit(&l->got_dropped, memory_order_relaxed);
        t.streaming += atomic_load_explicit(&l->streaming, memory_order_relaxed);
        uint64_t last = atomic_load_explicit(&l->last_delivery_ns, memory_order_relaxed);
        t.last_delivery_ns = last > t.last_delivery_ns ? last : t.last_delivery_ns;
    }
    return t;
}

/* Connects the lane's subscribers; gives up on those not streaming by the
 * deadline. */
static void lane_connect(long index, uint64_t deadline)
{
    for (long i = index; i < o.subs; i += o.threads) {
        g.subs[i].fd = -1;
        g.subs[i].max_seq = -1;
        g.queue[g.q_tail++] = i;
    }
    connect_more();
    while (g.connecting > 0 || g.q_head < g.q_tail) {
        if (now_ns() >= deadline) {
            break;
        }
        poll_once(ms_until(deadline));
    }
    for (long i = index; i < o.subs; i += o.threads) {
        struct sub *s = &g.subs[i];
        if (s->state == SS_CONNECTING || s->state == SS_HEADERS || s->state == SS_PENDING) {
            sub_close(s);
            s->state = SS_FAILED;
        }
    }
    g.connecting = 0;
    g.q_head = g.q_tail;
}

/* The subscribers streaming when publishing begins are the ones checked. */
static void lane_count(long index)
{
    for (long i = index; i < o.subs; i += o.threads) {
        g.subs[i].counted = g.subs[i].state == SS_STREAM;
    }
}

static void *lane_main(void *arg)
{
    struct lane *l = arg;
    g = sh.shared;
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep < 0) {
        die("epoll_create1: %s", strerror(errno));
    }
    g.rbuf = xcalloc(1, READ_BUF);
    g.queue = xcalloc((size_t)(o.subs / o.threads + 1) * MAX_TRIES + 1, sizeof *g.queue);
    g.lat.b = xcalloc(H_BUCKETS, sizeof *g.lat.b);
    g.ack.b = xcalloc(H_BUCKETS, sizeof *g.ack.b);
    lane_connect(l->index, sh.connect_deadline);
    lane_report(l);
    atomic_fetch_add(&sh.connected, 1);
    while (atomic_load(&sh.phase) == PHASE_CONNECT) {
        poll_once(10);
        lane_report(l);
    }
    lane_count(l->index);
    atomic_fetch_add(&sh.counted, 1);
    while (atomic_load(&sh.phase) != PHASE_STOP) {
        poll_once(10);
        lane_report(l);
    }
    close(g.ep);
    free(g.rbuf);
    free(g.queue);
    free(g.ack.b);
    l->result = g; /* lat.b is freed by the merge */
    return NULL;
}

/* Lane 0 waits for the others to reach a point, serving its own meanwhile. */
static void lanes_wait(atomic_int *count)
{
    while (atomic_load(count) < o.threads - 1) {
        poll_once(1);
    }
}

static void h_merge(struct hist *into, const struct hist *h)
{
    into->count += h->count;
    into->max = h->max > into->max ? h->max : into->max;
    for (size_t i = 0; i < H_BUCKETS; i++) {
        into->b[i] += h->b[i];
    }
}

/* Stops and joins lanes 1.., and adds what they counted to lane 0's g. */
static void lanes_finish(void)
{
    atomic_store(&sh.phase, PHASE_STOP);
    for (long k = 1; k < o.threads; k++) {
        struct lane *l = &sh.lanes[k];
        pthread_join(l->thread, NULL);
        const struct loadgen *r = &l->result;
        g.streaming += r->streaming;
        g.failed += r->failed;
        g.http_errors += r->http_errors;
        g.dropped += r->dropped;
        g.retries += r->retries;
        g.total_got += r->total_got;
        g.got_dropped += r->got_dropped;
        g.dup += r->dup;
        g.ooo += r->ooo;
        g.corrupt += r->corrupt;
        g.other_events += r->other_events;
        g.last_delivery_ns =
            r->last_delivery_ns > g.last_delivery_ns ? r->last_delivery_ns : g.last_delivery_ns;
        h_merge(&g.lat, &r->lat);
        free(r->lat.b);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();

    uint64_t t_start = now_ns();
    uint64_t deadline = t_start + (uint64_t)(o.timeout * 1e9);
    bool timed_out = false;

    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep < 0) {
        die("epoll_create1: %s", strerror(errno));
    }
    g.addr.sin_family = AF_INET;
    g.addr.sin_port = htons((uint16_t)o.port);
    g.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int k = 0; k < o.sub_ports; k++) {
        g.sub_addr[k] = g.addr;
        g.sub_addr[k].sin_port = htons((uint16_t)o.sub_port[k]);
        g.sub_req_len[k] =
            (size_t)snprintf(g.sub_req[k], sizeof g.sub_req[k],
                             "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                             "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
                             o.sub_path, o.sub_port[k]);
    }
    g.rbuf = xcalloc(1, READ_BUF);
    g.subs = xcalloc((size_t)o.subs, sizeof *g.subs);
    g.queue = xcalloc((size_t)o.subs * MAX_TRIES + 1, sizeof *g.queue);
    long msgs = o.idle > 0 ? 0 : o.messages;
    g.msgs = msgs;
    g.words = ((size_t)msgs + 63) / 64;
    if ((double)g.words * (double)o.subs * 8 > 4e9) {
        die("--subs x --messages too large for the delivery bitmap");
    }
    g.seen = xcalloc((size_t)o.subs * g.words, sizeof *g.seen);
    g.accepted = xcalloc((size_t)msgs, 1);
    g.blen = xcalloc((size_t)msgs, sizeof *g.blen);
    g.sent_ns = xcalloc((size_t)msgs, sizeof *g.sent_ns);
    g.lat.b = xcalloc(H_BUCKETS, sizeof *g.lat.b);
    g.ack.b = xcalloc(H_BUCKETS, sizeof *g.ack.b);
    g.pub.fd = -1;
    g.pub.closed = true;

    /* ---- connect (every lane its share) */
    struct proc_sample ps_base = proc_sample();
    if (o.server_pids > 0 && !ps_base.ok) {
        die("cannot read /proc of every --server-pid");
    }
    uint64_t connect_deadline = t_start + (uint64_t)(o.connect_timeout * 1e9);
    if (connect_deadline > deadline) {
        connect_deadline = deadline;
    }
    sh.shared = g;
    sh.connect_deadline = connect_deadline;
    for (long k = 1; k < o.threads; k++) {
        sh.lanes[k].index = k;
        if (pthread_create(&sh.lanes[k].thread, NULL, lane_main, &sh.lanes[k]) != 0) {
            die("pthread_create failed");
        }
    }
    lane_connect(0, connect_deadline);
    lanes_wait(&sh.connected);
    uint64_t t_connected = now_ns();
    long not_connected = o.subs - lanes_totals().streaming;

    /* ---- settle */
    uint64_t until = t_connected + (uint64_t)(o.settle * 1e9);
    while (now_ns() < until && now_ns() < deadline) {
        poll_once(ms_until(until));
    }
    atomic_store(&sh.phase, PHASE_COUNT);
    lane_count(0);
    lanes_wait(&sh.counted);
    struct proc_sample ps_conn = proc_sample();
    double redis_cpu_conn = o.redis_pid > 0 ? proc_cpu(o.redis_pid) : -1;
    double redis_sched_conn = o.redis_pid > 0 ? proc_sched_s(o.redis_pid) : -1;
    uint64_t t_pub_start = now_ns();
    long subs_at_start = lanes_totals().streaming;

    /* ---- idle, or publish */

    struct proc_sample ps_idle = {0};
    if (o.idle > 0) {
        until = now_ns() + (uint64_t)(o.idle * 1e9);
        if (until > deadline) {
            until = deadline;
            timed_out = true;
        }
        while (now_ns() < until) {
            poll_once(ms_until(until));
        }
        ps_idle = proc_sample();
    } else if (msgs > 0 && subs_at_start > 0) {
        g.pub_limit = msgs;
        pub_connect();
        g.publishing = true;
        g.last_progress_ns = now_ns();
        pub_pump();
        for (;;) {
            uint64_t now = now_ns();
            if (now >= deadline) {
                timed_out = true;
                break;
            }
            if (o.duration > 0) {
                pub_pump(); /* notices the end of --duration */
            }
            bool all_answered = g.pub.acked == g.pub_limit;
            struct totals t = lanes_totals();
            uint64_t expect = (uint64_t)g.pub.ok * (uint64_t)t.streaming;
            if (all_answered && t.got - t.got_dropped >= expect) {
                break;
            }
            if (t.last_delivery_ns > g.last_progress_ns) {
                g.last_progress_ns = t.last_delivery_ns;
            }
            if (all_answered && now - g.last_progress_ns > (uint64_t)(o.drain * 1e9)) {
                break; /* nothing more is coming */
            }
            int wait = ms_until(deadline);
            uint64_t due = pub_due_in();
            if (o.rate > 0 && g.pub.next < g.pub_limit && g.pub.next - g.pub.acked < o.pipeline) {
                int ms = (int)(due / 1000000);
                wait = ms < wait ? ms : wait;
            }
            poll_once(wait);
            if (o.rate > 0 && !g.pub.closed) {
                pub_pump();
            }
        }
    }
    lanes_finish();
    struct proc_sample ps_end = proc_sample();
    double redis_cpu_end = o.redis_pid > 0 ? proc_cpu(o.redis_pid) : -1;
    double redis_sched_end = o.redis_pid > 0 ? proc_sched_s(o.redis_pid) : -1;
    /* How long the two samples lie apart: the caller may take out what the
     * store spends per second when idle. */
    double redis_window = (double)(now_ns() - t_pub_start) / 1e9;
    double lg_cpu = cpu_self();

    /* ---- tally */
    uint64_t lost = 0, expected = 0;
    long accepted = 0;
    for (long m = 0; m < msgs; m++) {
        accepted += g.accepted[m];
    }
    if (msgs > 0) {
        uint64_t *mask = xcalloc(g.words, sizeof *mask);
        for (long m = 0; m < msgs; m++) {
            if (g.accepted[m]) {
                mask[m / 64] |= (uint64_t)1 << (m % 64);
            }
        }
        for (long i = 0; i < o.subs; i++) {
            if (!g.subs[i].counted) {
                continue;
            }
            uint64_t have = 0;
            const uint64_t *w = g.seen + (size_t)i * g.words;
            for (size_t k = 0; k < g.words; k++) {
                have += (uint64_t)__builtin_popcountll(w[k] & mask[k]);
            }
            expected += (uint64_t)accepted;
            lost += (uint64_t)accepted - have;
        }
        free(mask);
    }
    for (long i = 0; i < o.subs; i++) {
        g.comments_seen += g.subs[i].p.comments;
    }

    double window = g.last_delivery_ns > g.first_send_ns
                        ? (double)(g.last_delivery_ns - g.first_send_ns) / 1e9
                        : 0;
    double pub_window =
        g.last_ack_ns > g.first_send_ns ? (double)(g.last_ack_ns - g.first_send_ns) / 1e9 : 0;
    double deliv_rate = window > 0 ? (double)g.total_got / window : 0;
    double pub_rate = pub_window > 0 ? (double)g.pub.acked / pub_window : 0;
    double connect_s = (double)(t_connected - t_start) / 1e9;
    struct proc_sample ps_mem = o.idle > 0 ? ps_idle : ps_conn;
    double rss_per_sub =
        subs_at_start > 0 && ps_mem.ok && ps_base.ok
            ? (double)(ps_mem.rss_kb - ps_base.rss_kb) * 1024.0 / (double)subs_at_start
            : 0;
    double cpu_pub = ps_end.ok && ps_conn.ok ? ps_end.cpu_s - ps_conn.cpu_s : 0;
    double cpu_conn = ps_conn.ok && ps_base.ok ? ps_conn.cpu_s - ps_base.cpu_s : 0;
    double ns_per_delivery = g.total_got ? cpu_pub * 1e9 / (double)g.total_got : 0;
    /* The store's CPU while publishing, per accepted message (-1: not asked
     * for, or unreadable). */
    double redis_cpu =
        redis_cpu_conn >= 0 && redis_cpu_end >= 0 ? redis_cpu_end - redis_cpu_conn : -1;
    double redis_sched =
        redis_sched_conn >= 0 && redis_sched_end >= 0 ? redis_sched_end - redis_sched_conn : -1;
    double run_s = (double)(now_ns() - t_start) / 1e9;

    bool failed = lost || g.dup || g.ooo || g.corrupt || g.dropped || not_connected ||
                  g.pub.errors || (msgs > 0 && subs_at_start > 0 && accepted < g.pub_limit);
    const char *status = timed_out ? "timeout" : failed ? "fail" : "ok";

#define US(ns) ((double)(ns) / 1000.0)
    char cdf[1024];
    h_cdf(&g.lat, cdf, sizeof cdf);
    if (o.json) {
        printf("{\"label\":\"%s\",\"status\":\"%s\",\"subs_target\":%ld,\"subs\":%ld,"
               "\"connect_s\":%.3f,\"connect_fail\":%ld,\"connect_retries\":%ld,"
               "\"messages\":%ld,\"published\":%ld,\"truncated\":%d,\"accepted\":%ld,\"pub_"
               "errors\":%ld,\"bytes\":%ld,"
               "\"pipeline\":%ld,\"rate\":%.1f,\"idle_s\":%.1f,"
               "\"deliveries\":%llu,\"expected\":%llu,\"window_s\":%.3f,"
               "\"deliv_per_s\":%.0f,\"pub_per_s\":%.0f,"
               "\"lost\":%llu,\"dup\":%llu,\"ooo\":%llu,\"corrupt\":%llu,\"dropped\":%ld,"
               "\"other_events\":%llu,\"comments\":%llu,"
               "\"lat_p50_us\":%.1f,\"lat_p90_us\":%.1f,\"lat_p99_us\":%.1f,"
               "\"lat_p999_us\":%.1f,\"lat_max_us\":%.1f,"
               "\"ack_p50_us\":%.1f,\"ack_p99_us\":%.1f,"
               "\"srv_cpu_connect_s\":%.2f,\"srv_cpu_s\":%.2f,\"srv_ns_per_delivery\":%.0f,"
               "\"srv_rss_base_kb\":%ld,\"srv_rss_connected_kb\":%ld,\"srv_rss_idle_kb\":%ld,"
               "\"srv_rss_end_kb\":%ld,\"rss_per_sub_b\":%.0f,"
               "\"redis_cpu_s\":%.2f,\"redis_us_per_msg\":%.2f,\"redis_sched_s\":%.4f,"
               "\"redis_sched_us_per_msg\":%.2f,\"redis_window_s\":%.3f,"
               "\"lg_cpu_s\":%.2f,\"run_s\":%.2f,\"lat_cdf_us\":\"%s\"}\n",
               o.label, status, o.subs, subs_at_start, connect_s, not_connected, g.retries, msgs,
               g.pub.next, g.truncated, accepted, g.pub.errors, o.bytes, o.pipeline, o.rate, o.idle,
               (unsigned long long)g.total_got, (unsigned long long)expected, window, deliv_rate,
               pub_rate, (unsigned long long)lost, (unsigned long long)g.dup,
               (unsigned long long)g.ooo, (unsigned long long)g.corrupt, g.dropped,
               (unsigned long long)g.other_events, (unsigned long long)g.comments_seen,
               US(h_pct(&g.lat, 0.50)), US(h_pct(&g.lat, 0.90)), US(h_pct(&g.lat, 0.99)),
               US(h_pct(&g.lat, 0.999)), US(g.lat.max), US(h_pct(&g.ack, 0.50)),
               US(h_pct(&g.ack, 0.99)), cpu_conn, cpu_pub, ns_per_delivery, ps_base.rss_kb,
               ps_conn.rss_kb, ps_idle.rss_kb, ps_end.rss_kb, rss_per_sub, redis_cpu,
               redis_cpu >= 0 && accepted > 0 ? redis_cpu * 1e6 / (double)accepted : -1,
               redis_sched,
               redis_sched >= 0 && accepted > 0 ? redis_sched * 1e6 / (double)accepted : -1,
               redis_window, lg_cpu, run_s, cdf);
    } else {
        printf("loadgen %s: %s\n", o.label, status);
        printf("  subscribers     %ld of %ld streaming after %.3f s (%ld failed, %ld retries)\n",
               subs_at_start, o.subs, connect_s, not_connected, g.retries);
        if (o.idle > 0) {
            printf("  idle            %.1f s, %llu comments received, %ld dropped\n", o.idle,
                   (unsigned long long)g.comments_seen, g.dropped);
        } else {
            printf("  published       %ld accepted of %ld sent of %ld%s (%ld errors), %ld B, "
                   "pipeline %ld%s\n",
                   accepted, g.pub.next, msgs, g.truncated ? " (--duration cut it)" : "",
                   g.pub.errors, o.bytes, o.pipeline, o.rate > 0 ? ", rate-limited" : "");
            printf("  deliveries      %llu of %llu in %.3f s: %.0f/s (posts %.0f/s)\n",
                   (unsigned long long)g.total_got, (unsigned long long)expected, window,
                   deliv_rate, pub_rate);
            printf("  integrity       lost %llu, dup %llu, out of order %llu, corrupt %llu, "
                   "subscribers dropped %ld, other events %llu\n",
                   (unsigned long long)lost, (unsigned long long)g.dup, (unsigned long long)g.ooo,
                   (unsigned long long)g.corrupt, g.dropped, (unsigned long long)g.other_events);
            printf("  latency us      p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
                   US(h_pct(&g.lat, 0.50)), US(h_pct(&g.lat, 0.90)), US(h_pct(&g.lat, 0.99)),
                   US(h_pct(&g.lat, 0.999)), US(g.lat.max));
            printf("  post answer us  p50 %.1f  p99 %.1f\n", US(h_pct(&g.ack, 0.50)),
                   US(h_pct(&g.ack, 0.99)));
        }
        if (o.server_pids > 0) {
            printf("  server cpu s    connect %.2f, %s %.2f (%.0f ns per delivery)\n", cpu_conn,
                   o.idle > 0 ? "idle" : "publish", cpu_pub, ns_per_delivery);
            printf("  server rss KiB  base %ld, connected %ld%s, end %ld: %.0f B per "
                   "subscriber\n",
                   ps_base.rss_kb, ps_conn.rss_kb, o.idle > 0 ? ", after idle" : "",
                   o.idle > 0 ? ps_idle.rss_kb : ps_end.rss_kb, rss_per_sub);
        }
        if (redis_cpu >= 0) {
            printf("  redis cpu s     publish %.2f (%.2f us per accepted message); by schedstat "
                   "%.4f (%.2f us)\n",
                   redis_cpu, accepted > 0 ? redis_cpu * 1e6 / (double)accepted : 0, redis_sched,
                   redis_sched >= 0 && accepted > 0 ? redis_sched * 1e6 / (double)accepted : 0);
        }
        printf("  loadgen cpu s   %.2f over %.2f s\n", lg_cpu, run_s);
    }
#undef US
    fflush(stdout);
    return timed_out ? 3 : failed ? 1 : 0;
}
