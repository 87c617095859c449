/*
 * test_ops: what an operator relies on, against the real server over
 * loopback -- /healthz, /stats and /metrics (figures that follow what
 * happened, bounded per-room cardinality, the exposition format checked by
 * promtool), the publish token (flag, file, environment), the CORS origin
 * allow-list, --admin-local, JSON logs with access lines and rate-limited
 * bad-request lines, SIGHUP reloading the static files (also while a large
 * file is being downloaded slowly) and SIGTERM telling every stream to come
 * back later before the process exits 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

/* ------------------------------------------------------------ fixtures */

/* Servers a test started: its teardown stops whatever is still running (an
 * assertion that failed half-way leaves its server behind). */
#define MAX_SERVERS 4
static struct itest_server servers[MAX_SERVERS];
static size_t nservers;
/* A scratch directory under /tmp/ops-*, removed by the teardown. */
static char scratch[64];
/* Environment variables a test set, removed by the teardown. */
static const char *env_set[8];
static size_t nenv;

static struct itest_server *start(const char *const *args)
{
    assert_true(nservers < MAX_SERVERS);
    struct itest_server *s = &servers[nservers++];
    *s = itest_server_start(args);
    if (s->pid <= 0)
        fail_msg("the server did not start");
    return s;
}

/* Stops the server with SIGTERM and asserts a clean exit. */
static void stop_ok(struct itest_server *s)
{
    assert_int_equal(itest_server_stop(s), 0);
}

static void set_env(const char *name, const char *value)
{
    assert_true(nenv < sizeof env_set / sizeof env_set[0]);
    assert_int_equal(setenv(name, value, 1), 0);
    env_set[nenv++] = name;
}

static const char *scratch_dir(void)
{
    if (!scratch[0]) {
        snprintf(scratch, sizeof scratch, "/tmp/ops-XXXXXX");
        if (!mkdtemp(scratch)) {
            scratch[0] = 0;
            fail_msg("mkdtemp: %s", strerror(errno));
        }
    }
    return scratch;
}

static int setup(void **state)
{
    (void)state;
    nservers = 0;
    nenv = 0;
    scratch[0] = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < nservers; i++)
        if (servers[i].pid > 0)
            itest_server_signal(&servers[i], SIGKILL, itest_ms(5000));
    nservers = 0;
    for (size_t i = 0; i < nenv; i++)
        unsetenv(env_set[i]);
    nenv = 0;
    if (scratch[0])
        itest_rm_rf(scratch);
    scratch[0] = 0;
    return 0;
}

/* ------------------------------------------------------------ helpers */

/* GET target on a fresh connection with extra header lines ("" or
 * "Name: value\r\n..."). */
static void get(int port, const char *target, const char *extra, struct itest_response *r)
{
    char raw[1024];
    snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: ops.test\r\n%s\r\n", target,
             extra ? extra : "");
    assert_int_equal(itest_request(port, raw, r), 0);
}

static void get_expect(int port, const char *target, int status, struct itest_response *r)
{
    get(port, target, NULL, r);
    if (r->status != status)
        itest_show_response(target, r, 400);
    assert_int_equal(r->status, status);
}

/* POST /message (or target) with an optional Authorization value. */
static void post(int port, const char *target, const char *authorization, const char *body,
                 struct itest_response *r)
{
    /* Room for the longest token (4096 bytes) and its header. */
    char raw[16384], auth[8192] = "";
    if (authorization)
        snprintf(auth, sizeof auth, "Authorization: %s\r\n", authorization);
    snprintf(raw, sizeof raw,
             "POST %s HTTP/1.1\r\nHost: ops.test\r\nContent-Type: application/json\r\n"
             "%sContent-Length: %zu\r\n\r\n%s",
             target ? target : "/message", auth, strlen(body), body);
    assert_int_equal(itest_request(port, raw, r), 0);
}

static int post_status(int port, const char *authorization, const char *body)
{
    struct itest_response r;
    post(port, NULL, authorization, body, &r);
    int st = r.status;
    if (st == 401) {
        if (!itest_header_starts(&r, "WWW-Authenticate", "Bearer") || !itest_is_json_error(&r))
            itest_show_response("401 without WWW-Authenticate: Bearer or a JSON error", &r, 400);
        assert_true(itest_header_starts(&r, "WWW-Authenticate", "Bearer"));
        assert_true(itest_header_starts(&r, "Content-Type", "application/json"));
        assert_true(itest_is_json_error(&r));
    } else if (st != 202) {
        itest_show_response("POST /message", &r, 400);
    }
    itest_response_free(&r);
    return st;
}

/* Reads a whole file (NUL-terminated); NULL if it cannot be read. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            break;
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = n;
    }
    return buf;
}

/* ------------------------------------------------------------ JSON */

/* A strict RFC 8259 reader, just enough to check a document and find the
 * members of an object. */
struct jp {
    const char *p, *end;
};

static void jp_ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool jp_string(struct jp *j)
{
    if (j->p >= j->end || *j->p != '"')
        return false;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;
        if (c != '\\')
            continue;
        if (j->p >= j->end)
            return false;
        char e = *j->p++;
        if (e == 'u') {
            for (int i = 0; i < 4; i++, j->p++)
                if (j->p >= j->end || !strchr("0123456789abcdefABCDEF", *j->p) || !*j->p)
                    return false;
        } else if (!e || !strchr("\"\\/bfnrt", e)) {
            return false;
        }
    }
    return false;
}

static bool jp_digits(struct jp *j)
{
    const char *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s;
}

static bool jp_number(struct jp *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!jp_digits(j))
        return false;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!jp_digits(j))
            return false;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!jp_digits(j))
            return false;
    }
    return true;
}

static bool jp_value(struct jp *j, int depth);

/* Parses an object; when key is given, *v / *vlen get that member's value. */
static bool jp_object(struct jp *j, int depth, const char *key, const char **v, size_t *vlen)
{
    if (j->p >= j->end || *j->p != '{')
        return false;
    j->p++;
    jp_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return true;
    }
    for (;;) {
        jp_ws(j);
        const char *k = j->p;
        if (!jp_string(j))
            return false;
        size_t klen = (size_t)(j->p - k) - 2;
        jp_ws(j);
        if (j->p >= j->end || *j->p++ != ':')
            return false;
        jp_ws(j);
        const char *vs = j->p;
        if (!jp_value(j, depth + 1))
            return false;
        if (key && v && strlen(key) == klen && memcmp(k + 1, key, klen) == 0) {
            *v = vs;
            *vlen = (size_t)(j->p - vs);
        }
        jp_ws(j);
        if (j->p >= j->end)
            return false;
        if (*j->p == '}') {
            j->p++;
            return true;
        }
        if (*j->p++ != ',')
            return false;
    }
}

static bool jp_array(struct jp *j, int depth)
{
    if (j->p >= j->end || *j->p != '[')
        return false;
    j->p++;
    jp_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return true;
    }
    for (;;) {
        jp_ws(j);
        if (!jp_value(j, depth + 1))
            return false;
        jp_ws(j);
        if (j->p >= j->end)
            return false;
        if (*j->p == ']') {
            j->p++;
            return true;
        }
        if (*j->p++ != ',')
            return false;
    }
}

static bool jp_literal(struct jp *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return false;
    j->p += n;
    return true;
}

static bool jp_value(struct jp *j, int depth)
{
    if (depth > 32 || j->p >= j->end)
        return false;
    switch (*j->p) {
    case '{':
        return jp_object(j, depth, NULL, NULL, NULL);
    case '[':
        return jp_array(j, depth);
    case '"':
        return jp_string(j);
    case 't':
        return jp_literal(j, "true");
    case 'f':
        return jp_literal(j, "false");
    case 'n':
        return jp_literal(j, "null");
    default:
        return jp_number(j);
    }
}

/* True when text[0..len) is exactly one JSON object (blanks around it). When
 * key is given, also requires that member and returns its value's span. */
static bool json_object(const char *text, size_t len, const char *key, const char **v, size_t *vlen)
{
    struct jp j = {text, text + len};
    const char *dummy_v = NULL;
    size_t dummy_len = 0;
    if (!v) {
        v = &dummy_v;
        vlen = &dummy_len;
    }
    *v = NULL;
    jp_ws(&j);
    if (!jp_object(&j, 0, key, v, vlen))
        return false;
    jp_ws(&j);
    return j.p == j.end && (!key || *v);
}

/* The member `key` of the object text[0..len), which must be a non-negative
 * integer; fails the test otherwise. */
static uint64_t json_u64(const char *text, size_t len, const char *key)
{
    const char *v;
    size_t vlen;
    if (!json_object(text, len, key, &v, &vlen))
        fail_msg("no member \"%s\" in the JSON object %.*s", key, (int)len, text);
    char num[32];
    if (vlen == 0 || vlen >= sizeof num || strspn(v, "0123456789") < vlen)
        fail_msg("member \"%s\" is not a non-negative integer: %.*s", key, (int)vlen, v);
    memcpy(num, v, vlen);
    num[vlen] = 0;
    return strtoull(num, NULL, 10);
}

/* True when the member `key` of the object is the JSON string `want`
 * (written without escapes). */
static bool json_str_is(const char *text, size_t len, const char *key, const char *want)
{
    const char *v;
    size_t vlen;
    if (!json_object(text, len, key, &v, &vlen))
        return false;
    return vlen == strlen(want) + 2 && v[0] == '"' && memcmp(v + 1, want, vlen - 2) == 0;
}

/* Walks the array text[0..len) of {"name":..,"subscribers":..} objects:
 * returns the number of elements and, when `name` is one of them, its
 * subscribers in *subs (else *subs is -1). */
static size_t top_rooms_scan(const char *text, size_t len, const char *name, long *subs)
{
    struct jp j = {text, text + len};
    size_t n = 0;
    *subs = -1;
    if (j.p >= j.end || *j.p != '[')
        fail_msg("top_rooms is not an array: %.*s", (int)len, text);
    j.p++;
    jp_ws(&j);
    if (j.p < j.end && *j.p == ']')
        return 0;
    for (;;) {
        jp_ws(&j);
        const char *el = j.p;
        if (!jp_value(&j, 1))
            fail_msg("bad top_rooms element in %.*s", (int)len, text);
        size_t ellen = (size_t)(j.p - el);
        n++;
        uint64_t s = json_u64(el, ellen, "subscribers");
        if (!json_object(el, ellen, "name", NULL, NULL))
            fail_msg("top_rooms element without a name: %.*s", (int)ellen, el);
        if (json_str_is(el, ellen, "name", name))
            *subs = (long)s;
        jp_ws(&j);
        if (j.p < j.end && *j.p == ']')
            return n;
        if (j.p >= j.end || *j.p++ != ',')
            fail_msg("bad top_rooms array: %.*s", (int)len, text);
    }
}

/* GET /stats[?...] and check it is a JSON object with every documented
 * figure. The caller frees r. */
static void get_stats(int port, const char *target, struct itest_response *r)
{
    get_expect(port, target, 200, r);
    if (!itest_header_starts(r, "Content-Type", "application/json") ||
        !json_object(r->body, r->body_len, NULL, NULL, NULL))
        itest_show_response("/stats is not a JSON object", r, 400);
    assert_true(itest_header_starts(r, "Content-Type", "application/json"));
    assert_true(json_object(r->body, r->body_len, NULL, NULL, NULL));
    static const char *const figures[] = {
        "connections", "subscribers",        "clients",   "rooms", "deliveries",
        "bytes_sent",  "messages_published", "ring_bytes"};
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        (void)json_u64(r->body, r->body_len, figures[i]);
    const char *v;
    size_t vlen;
    assert_true(json_object(r->body, r->body_len, "top_rooms", &v, &vlen));
    long dummy;
    (void)top_rooms_scan(v, vlen, "", &dummy);
}

/* The per-thread list of /stats summed: its objects, one per loop. */
struct thread_sums {
    uint64_t entries, connections, streams, deliveries, accepted;
};

static struct thread_sums per_thread_sums(const char *v, size_t len)
{
    struct thread_sums t = {0};
    const char *p = v + 1, *end = v + len - 1;
    while (p < end && *p == '{') {
        const char *close = memchr(p, '}', (size_t)(end - p));
        assert_non_null(close);
        size_t n = (size_t)(close - p + 1);
        t.entries++;
        t.connections += json_u64(p, n, "connections");
        t.streams += json_u64(p, n, "streams");
        t.deliveries += json_u64(p, n, "deliveries");
        t.accepted += json_u64(p, n, "accepted");
        p = close + 1;
        if (p < end && *p == ',') {
            p++;
        }
    }
    return t;
}

static uint64_t stat_of(const struct itest_response *r, const char *key)
{
    return json_u64(r->body, r->body_len, key);
}

/* ------------------------------------------------------------ metrics */

/* The value of the sample line "<series> <value>" (series with its labels,
 * exactly), or NULL. */
static const char *metric_sample(const char *body, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = body; line && *line;) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return line + n + 1;
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return NULL;
}

static double metric_value(const char *body, const char *series)
{
    const char *v = metric_sample(body, series);
    if (!v)
        fail_msg("no sample \"%s\" in /metrics:\n%s", series, body);
    char *end;
    double d = strtod(v, &end);
    if (end == v || (*end != '\n' && *end != 0))
        fail_msg("sample \"%s\" has no plain value: %.40s", series, v);
    return d;
}

/* Lines that start with prefix. */
static size_t count_lines(const char *body, const char *prefix)
{
    size_t count = 0, n = strlen(prefix);
    for (const char *line = body; line && *line;) {
        if (strncmp(line, prefix, n) == 0)
            count++;
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return count;
}

/* Checks the text exposition format line by line: "# HELP name text",
 * "# TYPE name gauge|counter|histogram" (once per name), or a sample
 * name[{label="value",...}] value whose name has had its TYPE line. */
static void check_exposition(const char *body)
{
    char typed[64][80];
    size_t ntyped = 0;
    for (const char *line = body; *line;) {
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        int len = (int)(eol - line);
        char name[80];
        size_t n = 0;
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_true(len > 7);
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char type[16];
            if (sscanf(line + 7, "%79s %15s", name, type) != 2 ||
                (strcmp(type, "gauge") != 0 && strcmp(type, "counter") != 0 &&
                 strcmp(type, "histogram") != 0))
                fail_msg("bad TYPE line: %.*s", len, line);
            for (size_t i = 0; i < ntyped; i++)
                if (strcmp(typed[i], name) == 0)
                    fail_msg("TYPE given twice: %.*s", len, line);
            assert_true(ntyped < 60);
            snprintf(typed[ntyped++], sizeof typed[0], "%s", name);
            /* A histogram's samples are name_bucket{le=...}, _sum and _count. */
            if (strcmp(type, "histogram") == 0) {
                snprintf(typed[ntyped++], sizeof typed[0], "%.70s_bucket", name);
                snprintf(typed[ntyped++], sizeof typed[0], "%.70s_sum", name);
                snprintf(typed[ntyped++], sizeof typed[0], "%.70s_count", name);
            }
        } else {
            while (n < sizeof name - 1 && line + n < eol &&
                   (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:", line[n]) ||
                    (n > 0 && line[n] >= '0' && line[n] <= '9')))
                n++;
            memcpy(name, line, n);
            name[n] = 0;
            if (n == 0)
                fail_msg("not a sample: %.*s", len, line);
            bool known = false;
            for (size_t i = 0; i < ntyped && !known; i++)
                known = strcmp(typed[i], name) == 0;
            if (!known)
                fail_msg("sample before its TYPE line: %.*s", len, line);
            const char *p = line + n;
            if (*p == '{') {
                /* label="value" pairs; values without quotes or backslashes */
                p++;
                while (*p != '}') {
                    while (*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
                        p++;
                    if (p[0] != '=' || p[1] != '"')
                        fail_msg("bad labels: %.*s", len, line);
                    p = strchr(p + 2, '"');
                    if (!p || p > eol)
                        fail_msg("bad label value: %.*s", len, line);
                    p++;
                    if (*p == ',')
                        p++;
                    else if (*p != '}')
                        fail_msg("bad labels: %.*s", len, line);
                }
                p++;
            }
            char *end;
            if (*p != ' ' || (strtod(p + 1, &end), end != eol))
                fail_msg("bad sample value: %.*s", len, line);
        }
        line = eol + 1;
    }
}

/* GET /metrics: 200 in the Prometheus text format. The caller frees r. */
static void get_metrics(int port, struct itest_response *r)
{
    get_expect(port, "/metrics", 200, r);
    if (!itest_header_starts(r, "Content-Type", "text/plain; version=0.0.4"))
        itest_show_response("/metrics content type", r, 400);
    assert_true(itest_header_starts(r, "Content-Type", "text/plain; version=0.0.4"));
    assert_true(r->body_len > 0 && r->body[r->body_len - 1] == '\n');
    assert_int_equal(strlen(r->body), r->body_len);
    check_exposition(r->body);
}

/* ------------------------------------------------------------ tests */

static void test_healthz(void **state)
{
    (void)state;
    struct itest_server *s = start(NULL);
    struct itest_response r;
    get_expect(s->port, "/healthz", 200, &r);
    size_t n = r.body_len;
    while (n && (r.body[n - 1] == '\n' || r.body[n - 1] == '\r'))
        n--;
    assert_int_equal(n, 2);
    assert_memory_equal(r.body, "ok", 2);
    assert_true(itest_header_starts(&r, "Content-Type", "text/plain"));
    itest_response_free(&r);

    /* HEAD too. */
    assert_int_equal(itest_request(s->port, "HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    itest_response_free(&r);
    stop_ok(s);
}

/* Server + 3 subscribers of room "a" + 2 messages posted to it. */
struct room_a {
    struct itest_server *srv;
    struct itest_sub subs[3];
    struct itest_response before; /* /stats before the messages */
};

static int setup_room_a(void **state)
{
    setup(state);
    struct room_a *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    *state = f;
    servers[0] = itest_server_start(NULL);
    if (servers[0].pid <= 0)
        return -1;
    nservers = 1;
    f->srv = &servers[0];
    if (itest_subs_open(f->subs, 3, f->srv->port, "/messages?room=a", itest_timeout()) != 3)
        return -1;
    if (itest_request(f->srv->port, "GET /stats HTTP/1.1\r\nHost: a\r\n\r\n", &f->before) != 0 ||
        f->before.status != 200)
        return -1;
    for (int i = 0; i < 2; i++) {
        char body[64];
        long clients = -1;
        int n = snprintf(body, sizeof body, "{\"n\":%d}", i);
        if (itest_post_message(f->srv->port, "/message?room=a", body, (size_t)n, NULL, &clients) !=
                202 ||
            clients != 3) {
            fprintf(stderr, "setup: POST %d answered clients=%ld\n", i, clients);
            return -1;
        }
    }
    if (itest_subs_drive(f->subs, 3, 2, itest_timeout()) != 3)
        return -1;
    return 0;
}

static int teardown_room_a(void **state)
{
    struct room_a *f = *state;
    if (f) {
        for (int i = 0; i < 3; i++)
            itest_sub_close(&f->subs[i]);
        itest_response_free(&f->before);
        free(f);
    }
    return teardown(state);
}

static void test_stats_figures(void **state)
{
    struct room_a *f = *state;
    int port = f->srv->port;
    const struct itest_response *b = &f->before;

    /* Before the messages: 3 subscribers in one room, nothing published. */
    assert_true(json_object(b->body, b->body_len, NULL, NULL, NULL));
    assert_int_equal(stat_of(b, "messages_published"), 0);
    assert_int_equal(stat_of(b, "deliveries"), 0);
    assert_int_equal(stat_of(b, "ring_bytes"), 0);
    assert_int_equal(stat_of(b, "subscribers"), 3);
    assert_int_equal(stat_of(b, "rooms"), 1);

    struct itest_response r;
    get_stats(port, "/stats", &r);
    fprintf(stderr, "/stats: %s", r.body);
    assert_int_equal(stat_of(&r, "messages_published"), 2);
    /* 2 messages x 3 subscribers, every one received in full already. */
    assert_true(stat_of(&r, "deliveries") >= 6);
    assert_int_equal(stat_of(&r, "deliveries"), 6);
    assert_int_equal(stat_of(&r, "subscribers"), 3);
    assert_int_equal(stat_of(&r, "clients"), 3);
    assert_int_equal(stat_of(&r, "rooms"), 1);
    assert_true(stat_of(&r, "connections") >= 4); /* 3 streams + this request */
    assert_true(stat_of(&r, "ring_bytes") > 0);
    assert_true(stat_of(&r, "bytes_sent") > stat_of(b, "bytes_sent"));
    const char *v;
    size_t vlen;
    /* Each loop's figures add up to the totals. */
    uint64_t threads = stat_of(&r, "threads");
    assert_true(threads >= 1);
    assert_true(json_object(r.body, r.body_len, "per_thread", &v, &vlen));
    assert_true(vlen > 2 && v[0] == '[' && v[1] == '{' && v[vlen - 2] == '}' && v[vlen - 1] == ']');
    struct thread_sums ts = per_thread_sums(v, vlen);
    assert_int_equal(ts.entries, threads);
    assert_int_equal(ts.connections, stat_of(&r, "connections"));
    assert_int_equal(ts.streams, 3);
    assert_int_equal(ts.deliveries, 6);
    assert_int_equal(ts.accepted, stat_of(&r, "connections_accepted"));
    long subs;
    assert_true(json_object(r.body, r.body_len, "top_rooms", &v, &vlen));
    assert_int_equal(top_rooms_scan(v, vlen, "a", &subs), 1);
    assert_int_equal(subs, 3);
    itest_response_free(&r);

    /* ?room=a: clients counts that room's subscribers; another room's 0. */
    get_stats(port, "/stats?room=a", &r);
    assert_int_equal(stat_of(&r, "clients"), 3);
    assert_int_equal(stat_of(&r, "messages_published"), 2);
    /* ... and the room's own figures. */
    assert_true(json_object(r.body, r.body_len, "room", &v, &vlen));
    assert_true(json_str_is(v, vlen, "name", "a"));
    assert_int_equal(json_u64(v, vlen, "subscribers"), 3);
    assert_int_equal(json_u64(v, vlen, "frames"), 2);
    itest_response_free(&r);
    get_stats(port, "/stats?room=nobody", &r);
    assert_int_equal(stat_of(&r, "clients"), 0);
    assert_int_equal(stat_of(&r, "subscribers"), 3);
    itest_response_free(&r);

    /* One subscriber leaves: the figures follow. */
    itest_sub_close(&f->subs[2]);
    int64_t deadline = itest_now_ms() + itest_timeout();
    uint64_t clients = 3;
    while (itest_now_ms() < deadline) {
        get_stats(port, "/stats?room=a", &r);
        clients = stat_of(&r, "clients");
        itest_response_free(&r);
        if (clients == 2)
            break;
        itest_sleep_ms(10);
    }
    assert_int_equal(clients, 2);

    /* A malformed room name is refused. */
    get_expect(port, "/stats?room=no%20way", 400, &r);
    itest_response_free(&r);
    stop_ok(f->srv);
}

static void test_metrics_figures(void **state)
{
    struct room_a *f = *state;
    struct itest_response r;
    get_metrics(f->srv->port, &r);
    const char *m = r.body;
    assert_true(metric_value(m, "sse_subscribers{room=\"a\"}") == 3);
    assert_true(metric_value(m, "sse_messages_published_total") == 2);
    assert_true(metric_value(m, "sse_deliveries_total") == 6);
    assert_true(metric_value(m, "sse_rooms") == 1);
    assert_true(metric_value(m, "sse_streams") == 3);
    double threads = metric_value(m, "sse_threads");
    assert_true(threads >= 1);
    /* 3 streams and this request, over the loops. */
    double per_loop = 0;
    for (unsigned i = 0; i < (unsigned)threads; i++) {
        char series[64];
        snprintf(series, sizeof series, "sse_thread_connections{thread=\"%u\"}", i);
        assert_true(metric_value(m, series) >= 0);
        per_loop += metric_value(m, series);
    }
    assert_true(per_loop == metric_value(m, "sse_connections"));
    assert_true(metric_value(m, "sse_connections") >= 4);
    assert_true(metric_value(m, "sse_ring_bytes") > 0);
    /* 3 stream heads, 2 x 202, one /stats (the setup) at least. */
    assert_true(metric_value(m, "sse_http_responses_total{class=\"2xx\"}") >= 5);
    assert_true(metric_value(m, "sse_http_responses_total{class=\"4xx\"}") == 0);
    double up = metric_value(m, "sse_uptime_seconds");
    assert_true(up >= 0 && up < 600);
    /* sse_build_info{version="..."} 1 */
    const char *bi = strstr(m, "\nsse_build_info{version=\"");
    assert_non_null(bi);
    const char *eol = strchr(bi + 1, '\n');
    assert_non_null(eol);
    assert_true(eol - bi > 4 && memcmp(eol - 4, "\"} 1", 4) == 0);
    assert_int_equal(count_lines(m, "# TYPE sse_subscribers gauge"), 1);
    assert_int_equal(count_lines(m, "# TYPE sse_messages_published_total counter"), 1);
    itest_response_free(&r);

    /* The counters move with a 4xx. */
    get_expect(f->srv->port, "/no-such-file", 404, &r);
    itest_response_free(&r);
    get_metrics(f->srv->port, &r);
    assert_true(metric_value(r.body, "sse_http_responses_total{class=\"4xx\"}") == 1);
    itest_response_free(&r);
    stop_ok(f->srv);
}

/* Opens one subscriber per room name; returns how many are streaming. */
static size_t open_rooms(struct itest_sub *subs, const char *const *rooms, size_t n, int port)
{
    for (size_t i = 0; i < n; i++) {
        char target[128];
        snprintf(target, sizeof target, "/messages?room=%s", rooms[i]);
        if (itest_sub_start(&subs[i], port, target, NULL) != 0)
            return 0;
    }
    return itest_subs_drive(subs, n, 0, itest_timeout());
}

/* deliveries counts frames written to a client, never the frames sender
 * exclusion skips: one subscriber is the sender of N messages (and gets
 * none of them), the other gets all. The messages arrive pipelined after one
 * from nobody in particular, so the sender's subscriber is written that one
 * with its own N right behind it in the ring. */
static void test_deliveries_exclusion(void **state)
{
    (void)state;
    enum { NMSG = 10 };
    struct itest_server *s = start(NULL);
    struct itest_sub sender, other;
    assert_int_equal(itest_sub_open(&sender, s->port, "/messages?client=alice", itest_timeout()),
                     0);
    assert_int_equal(itest_sub_open(&other, s->port, "/messages", itest_timeout()), 0);

    static const char body[] = "{\"n\":1}";
    char raw[(NMSG + 1) * 160];
    size_t len = 0;
    for (int i = 0; i <= NMSG; i++)
        len += (size_t)snprintf(raw + len, sizeof raw - len,
                                "POST /message%s HTTP/1.1\r\nHost: ops.test\r\n"
                                "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                                i ? "?client=alice" : "", sizeof body - 1, body);
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, s->port), 0);
    assert_true(itest_conn_sendn(&c, raw, len));
    struct itest_response r;
    for (int i = 0; i <= NMSG; i++) {
        assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
        assert_int_equal(r.status, 202);
        itest_response_free(&r);
    }
    itest_conn_close(&c);

    assert_true(itest_sub_wait(&other, NMSG + 1, itest_timeout()));
    assert_true(itest_sub_wait(&sender, 1, itest_timeout()));
    assert_int_equal(other.events.count, NMSG + 1);
    assert_int_equal(sender.events.count, 1);

    get_stats(s->port, "/stats", &r);
    assert_int_equal(stat_of(&r, "messages_published"), NMSG + 1);
    if (stat_of(&r, "deliveries") != NMSG + 2)
        fprintf(stderr, "/stats: %s", r.body);
    assert_int_equal(stat_of(&r, "deliveries"), NMSG + 2);
    itest_response_free(&r);
    get_metrics(s->port, &r);
    assert_true(metric_value(r.body, "sse_deliveries_total") == NMSG + 2);
    itest_response_free(&r);
    itest_sub_close(&sender);
    itest_sub_close(&other);
    stop_ok(s);
}

static void test_metrics_room_cardinality(void **state)
{
    (void)state;
    struct itest_server *s = start(NULL);
    /* 15 rooms, each with one subscriber, plus a second one in "r07". */
    enum { ROOMS = 15, SUBS = ROOMS + 1 };
    char names[ROOMS][16];
    const char *rooms[SUBS];
    for (int i = 0; i < ROOMS; i++) {
        snprintf(names[i], sizeof names[i], "r%02d", i);
        rooms[i] = names[i];
    }
    rooms[ROOMS] = "r07";
    struct itest_sub subs[SUBS];
    memset(subs, 0, sizeof subs);
    assert_int_equal(open_rooms(subs, rooms, SUBS, s->port), SUBS);

    struct itest_response r;
    get_metrics(s->port, &r);
    const char *m = r.body;
    size_t series = count_lines(m, "sse_subscribers{");
    size_t other = count_lines(m, "sse_subscribers{room=\"~other\"} ");
    fprintf(stderr, "sse_subscribers series: %zu (~other: %zu)\n", series, other);
    assert_int_equal(other, 1);
    assert_true(series - other <= 10);
    assert_true(series - other >= 1);
    /* The busiest room is named; the sum of every series is every subscriber. */
    assert_true(metric_value(m, "sse_subscribers{room=\"r07\"}") == 2);
    double sum = 0;
    for (const char *line = strstr(m, "\nsse_subscribers{"); line;
         line = strstr(line + 1, "\nsse_subscribers{")) {
        const char *sp = strchr(line, ' ');
        assert_non_null(sp);
        sum += strtod(sp + 1, NULL);
    }
    assert_true(sum == SUBS);
    assert_true(metric_value(m, "sse_rooms") == ROOMS);
    itest_response_free(&r);

    /* /stats agrees: at most 10 top rooms, r07 first. */
    get_stats(s->port, "/stats", &r);
    const char *v;
    size_t vlen;
    long subs_r07;
    assert_true(json_object(r.body, r.body_len, "top_rooms", &v, &vlen));
    assert_true(top_rooms_scan(v, vlen, "r07", &subs_r07) <= 10);
    assert_int_equal(subs_r07, 2);
    assert_int_equal(stat_of(&r, "rooms"), ROOMS);
    assert_int_equal(stat_of(&r, "subscribers"), SUBS);
    itest_response_free(&r);

    for (int i = 0; i < SUBS; i++)
        itest_sub_close(&subs[i]);
    stop_ok(s);
}

/* Where promtool_check.sh is: $ITEST_PROMTOOL_CHECK, next to this source
 * (relative to the repository root, where make runs the tests), or beside
 * $SSE_STATIC's parent. */
static bool find_promtool_script(char *out, size_t cap)
{
    const char *env = getenv("ITEST_PROMTOOL_CHECK");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return access(out, R_OK) == 0;
    }
    char dir[512];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        snprintf(out, cap, "%s/promtool_check.sh", dir);
        if (access(out, R_OK) == 0)
            return true;
    }
    const char *st = getenv("SSE_STATIC");
    if (st && *st) {
        snprintf(out, cap, "%s/../tests/integration/promtool_check.sh", st);
        if (access(out, R_OK) == 0)
            return true;
    }
    return false;
}

static void test_metrics_promtool(void **state)
{
    (void)state;
    char script[600];
    if (!find_promtool_script(script, sizeof script))
        fail_msg("tests/integration/promtool_check.sh not found (set ITEST_PROMTOOL_CHECK)");

    /* A server with every kind of series: >10 rooms (so room="~other"),
     * messages, streams, 2xx and 4xx answers. */
    struct itest_server *s = start(NULL);
    enum { N = 12 };
    char names[N][16];
    const char *rooms[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "p%02d", i);
        rooms[i] = names[i];
    }
    struct itest_sub subs[N];
    memset(subs, 0, sizeof subs);
    assert_int_equal(open_rooms(subs, rooms, N, s->port), N);
    assert_int_equal(itest_post_message(s->port, "/message?room=p00", "{\"x\":1}", 7, NULL, NULL),
                     202);
    struct itest_response r;
    get_expect(s->port, "/missing", 404, &r);
    itest_response_free(&r);
    get_metrics(s->port, &r);
    assert_int_equal(count_lines(r.body, "sse_subscribers{room=\"~other\"} "), 1);

    char path[128];
    snprintf(path, sizeof path, "%s/metrics.txt", scratch_dir());
    assert_int_equal(itest_write_file(path, r.body, r.body_len), 0);
    itest_response_free(&r);
    for (int i = 0; i < N; i++)
        itest_sub_close(&subs[i]);
    stop_ok(s);

    /* The script may install promtool (bounded by its own timeouts): the
     * watchdog is paused meanwhile. */
    unsigned left = alarm(0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", script, path, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (left)
        alarm(left);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77) {
        skip();
        return;
    }
    if (WEXITSTATUS(st) != 0) {
        char *text = slurp(path, NULL);
        fprintf(stderr, "promtool found problems in:\n%s", text ? text : "(unreadable)");
        free(text);
    }
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* Checks the token a server with a publish token wants (`good`) and refuses
 * (`bad`), that refusals broadcast nothing, and Bearer is case-insensitive. */
static void check_token(int port, const char *good, const char *bad)
{
    struct itest_sub sub;
    memset(&sub, 0, sizeof sub);
    assert_int_equal(itest_sub_open(&sub, port, "/messages", itest_timeout()), 0);

    char auth[8192];
    assert_int_equal(post_status(port, NULL, "{\"refused\":1}"), 401);
    snprintf(auth, sizeof auth, "Bearer %s", bad);
    assert_int_equal(post_status(port, auth, "{\"refused\":2}"), 401);
    snprintf(auth, sizeof auth, "Bearer %sx", good);
    assert_int_equal(post_status(port, auth, "{\"refused\":3}"), 401);
    snprintf(auth, sizeof auth, "Bearer %.*s", (int)strlen(good) - 1, good);
    assert_int_equal(post_status(port, auth, "{\"refused\":4}"), 401);
    assert_int_equal(post_status(port, "Bearer", "{\"refused\":5}"), 401);
    assert_int_equal(post_status(port, "Bearer ", "{\"refused\":6}"), 401);
    snprintf(auth, sizeof auth, "Basic %s", good);
    assert_int_equal(post_status(port, auth, "{\"refused\":7}"), 401);
    snprintf(auth, sizeof auth, "%s", good);
    assert_int_equal(post_status(port, auth, "{\"refused\":8}"), 401);

    snprintf(auth, sizeof auth, "Bearer %s", good);
    assert_int_equal(post_status(port, auth, "{\"ok\":1}"), 202);
    snprintf(auth, sizeof auth, "bearer %s", good);
    assert_int_equal(post_status(port, auth, "{\"ok\":2}"), 202);
    snprintf(auth, sizeof auth, "BEARER %s", good);
    assert_int_equal(post_status(port, auth, "{\"ok\":3}"), 202);

    /* Only the accepted messages reached the subscriber, in order. */
    assert_true(itest_sub_wait(&sub, 3, itest_timeout()));
    itest_sleep_ms(100);
    itest_sub_step(&sub);
    assert_int_equal(sub.events.count, 3);
    assert_string_equal(sub.events.ev[0].data, "{\"ok\":1}");
    assert_string_equal(sub.events.ev[1].data, "{\"ok\":2}");
    assert_string_equal(sub.events.ev[2].data, "{\"ok\":3}");
    itest_sub_close(&sub);

    struct itest_response r;
    get_stats(port, "/stats", &r);
    assert_int_equal(stat_of(&r, "messages_published"), 3);
    itest_response_free(&r);
}

static void test_publish_token(void **state)
{
    (void)state;
    const char *args[] = {"--publish-token", "s3cret", NULL};
    struct itest_server *s = start(args);
    check_token(s->port, "s3cret", "wrong");
    /* Subscribing needs no token. */
    struct itest_response r;
    get_expect(s->port, "/healthz", 200, &r);
    itest_response_free(&r);
    stop_ok(s);
}

static void test_publish_token_file(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/token", scratch_dir());
    /* The first line (CR LF and what follows are not part of it). */
    assert_int_equal(itest_write_file(path, "f1le-t0ken\r\nsecond line\n", 24), 0);
    const char *args[] = {"--publish-token-file", path, NULL};
    struct itest_server *s = start(args);
    check_token(s->port, "f1le-t0ken", "second line");
    stop_ok(s);

    /* A token file that cannot be read: the server refuses to start rather
     * than run without the token. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no-such-token", scratch_dir());
    const char *bad_args[] = {"--publish-token-file", missing, NULL};
    fprintf(stderr, "(a start failure is expected next)\n");
    struct itest_server t = itest_server_start(bad_args);
    if (t.pid > 0) {
        itest_server_signal(&t, SIGKILL, itest_ms(5000));
        fail_msg("the server started with an unreadable --publish-token-file");
    }

    /* A 3,000-byte token works in full: not cut short, so neither it without
     * its last byte nor with that byte changed is accepted. */
    enum { LONG_TOKEN = 3000, TOO_LONG_TOKEN = 5000 };
    char *token = malloc(TOO_LONG_TOKEN + 2);
    char *wrong = malloc(LONG_TOKEN + 1);
    assert_non_null(token);
    assert_non_null(wrong);
    for (size_t i = 0; i < TOO_LONG_TOKEN; i++)
        token[i] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"[(i * 7) % 64];
    token[LONG_TOKEN] = '\n';
    assert_int_equal(itest_write_file(path, token, LONG_TOKEN + 1), 0);
    token[LONG_TOKEN] = '\0';
    memcpy(wrong, token, LONG_TOKEN + 1);
    wrong[LONG_TOKEN - 1] = wrong[LONG_TOKEN - 1] == 'x' ? 'y' : 'x';
    s = start(args);
    check_token(s->port, token, wrong);
    stop_ok(s);

    /* A 5,000-byte one is refused at start, not truncated. */
    for (size_t i = LONG_TOKEN; i < TOO_LONG_TOKEN; i++)
        token[i] = 'z';
    token[TOO_LONG_TOKEN] = '\n';
    assert_int_equal(itest_write_file(path, token, TOO_LONG_TOKEN + 1), 0);
    fprintf(stderr, "(a start failure is expected next)\n");
    t = itest_server_start(args);
    if (t.pid > 0) {
        itest_server_signal(&t, SIGKILL, itest_ms(5000));
        fail_msg("the server started with a 5000-byte token");
    }
    free(token);
    free(wrong);
}

static void test_options_from_env(void **state)
{
    (void)state;
    set_env("ITEST_KEEP_ENV", "1");
    set_env("SSE_PUBLISH_TOKEN", "env-t0ken");
    set_env("SSE_CORS_ORIGIN", "https://a.example,https://b.example");
    struct itest_server *s = start(NULL);
    check_token(s->port, "env-t0ken", "flag-t0ken");
    struct itest_response r;
    get(s->port, "/healthz", "Origin: https://b.example\r\n", &r);
    assert_string_equal(itest_header_or_absent(&r, "Access-Control-Allow-Origin"),
                        "https://b.example");
    itest_response_free(&r);
    get(s->port, "/healthz", "Origin: https://evil.example\r\n", &r);
    assert_null(itest_header(&r, "Access-Control-Allow-Origin"));
    itest_response_free(&r);
    stop_ok(s);

    /* The flag wins over the variable. */
    const char *args[] = {"--publish-token", "flag-t0ken", NULL};
    s = start(args);
    check_token(s->port, "flag-t0ken", "env-t0ken");
    stop_ok(s);
}

static void expect_cors(const struct itest_response *r, const char *origin)
{
    const char *got = itest_header(r, "Access-Control-Allow-Origin");
    if (origin ? !got || strcmp(got, origin) != 0 : got != NULL)
        itest_show_response(origin ? origin : "no Access-Control-Allow-Origin expected", r, 400);
    if (origin) {
        assert_string_equal(itest_header_or_absent(r, "Access-Control-Allow-Origin"), origin);
        assert_int_equal(itest_header_count(r, "Access-Control-Allow-Origin"), 1);
    } else {
        assert_null(got);
    }
}

static void test_cors_allow_list(void **state)
{
    (void)state;
    const char *args[] = {"--cors-origin", "https://a.example", "--cors-origin",
                          "https://b.example", NULL};
    struct itest_server *s = start(args);
    int port = s->port;
    struct itest_response r;
    static const struct {
        const char *origin;
        const char *allowed; /* NULL: no Access-Control-Allow-Origin */
    } cases[] = {
        {"https://a.example", "https://a.example"},
        {"https://b.example", "https://b.example"},
        {"https://evil.example", NULL},
        {"https://a.example.evil.example", NULL},
        {"https://a.exampl", NULL},
        {"http://a.example", NULL},
        {"null", NULL},
        {NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[256] = "";
        if (cases[i].origin)
            snprintf(extra, sizeof extra, "Origin: %s\r\n", cases[i].origin);
        /* A simple GET, an error answer and the preflight. */
        get(port, "/healthz", extra, &r);
        assert_int_equal(r.status, 200);
        expect_cors(&r, cases[i].allowed);
        /* The answer depends on Origin: caches must be told. */
        assert_true(itest_header_has_token(&r, "Vary", "Origin"));
        itest_response_free(&r);

        get(port, "/nothing-here", extra, &r);
        assert_int_equal(r.status, 404);
        expect_cors(&r, cases[i].allowed);
        itest_response_free(&r);

        char raw[512];
        snprintf(raw, sizeof raw,
                 "OPTIONS /message HTTP/1.1\r\nHost: ops.test\r\n%s"
                 "Access-Control-Request-Method: POST\r\n"
                 "Access-Control-Request-Headers: authorization, content-type\r\n\r\n",
                 extra);
        assert_int_equal(itest_request(port, raw, &r), 0);
        assert_int_equal(r.status, 204);
        expect_cors(&r, cases[i].allowed);
        assert_true(itest_header_has_token(&r, "Vary", "Origin"));
        assert_true(itest_header_has_token(&r, "Access-Control-Allow-Methods", "POST"));
        assert_true(itest_header_has_token(&r, "Access-Control-Allow-Headers", "Authorization"));
        itest_response_free(&r);
    }

    /* A stream's head too. */
    struct itest_sub sub;
    memset(&sub, 0, sizeof sub);
    assert_int_equal(itest_sub_start(&sub, port, "/messages", "Origin: https://b.example\r\n"), 0);
    assert_int_equal(itest_subs_drive(&sub, 1, 0, itest_timeout()), 1);
    assert_int_equal(sub.state, ITEST_SUB_STREAM);
    expect_cors(&sub.head, "https://b.example");
    itest_sub_close(&sub);

    /* On one keep-alive connection each request is judged on its own. */
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    const char *seq[][2] = {{"https://a.example", "https://a.example"},
                            {NULL, NULL},
                            {"https://evil.example", NULL},
                            {"https://b.example", "https://b.example"}};
    for (size_t i = 0; i < 4; i++) {
        char raw[256];
        snprintf(raw, sizeof raw, "GET /healthz HTTP/1.1\r\nHost: ops.test\r\n%s%s%s\r\n",
                 seq[i][0] ? "Origin: " : "", seq[i][0] ? seq[i][0] : "", seq[i][0] ? "\r\n" : "");
        assert_true(itest_conn_send(&c, raw));
        assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
        assert_int_equal(r.status, 200);
        expect_cors(&r, seq[i][1]);
        itest_response_free(&r);
    }
    itest_conn_close(&c);
    stop_ok(s);
}

static void test_cors_default(void **state)
{
    (void)state;
    struct itest_server *s = start(NULL);
    struct itest_response r;
    const char *origins[] = {"", "Origin: https://a.example\r\n",
                             "Origin: https://evil.example\r\n"};
    for (size_t i = 0; i < 3; i++) {
        get(s->port, "/healthz", origins[i], &r);
        assert_int_equal(r.status, 200);
        expect_cors(&r, "*");
        itest_response_free(&r);
        char raw[256];
        snprintf(raw, sizeof raw,
                 "OPTIONS /message HTTP/1.1\r\nHost: ops.test\r\n%s"
                 "Access-Control-Request-Method: POST\r\n\r\n",
                 origins[i]);
        assert_int_equal(itest_request(s->port, raw, &r), 0);
        assert_int_equal(r.status, 204);
        expect_cors(&r, "*");
        itest_response_free(&r);
    }
    stop_ok(s);
}

/* The 503 of a connection over --max-clients, whose request (if any) was
 * sent before the server accepted it: sent = NULL sends nothing. */
static void busy_answer(struct itest_server *s, const char *sent, struct itest_response *r)
{
    struct itest_conn c;
    if (sent) {
        /* Stopped, the server accepts only once the request is in its socket
         * buffer: the answer may then depend on the request, as it should. */
        assert_int_equal(kill(s->pid, SIGSTOP), 0);
        assert_int_equal(itest_conn_open(&c, s->port), 0);
        assert_true(itest_conn_send(&c, sent));
        assert_int_equal(kill(s->pid, SIGCONT), 0);
    } else {
        assert_int_equal(itest_conn_open(&c, s->port), 0);
    }
    assert_int_equal(itest_read_response(&c, r, 0, itest_timeout()), 0);
    if (r->status != 503)
        itest_show_response("over --max-clients", r, 300);
    assert_int_equal(r->status, 503);
    assert_true(itest_conn_wait_close(&c, itest_timeout()));
    itest_conn_close(&c);
}

/* The 503 at --max-clients carries the CORS headers of every other answer. */
static void test_cors_busy(void **state)
{
    (void)state;
    const char *args[] = {"--max-clients", "1", "--cors-origin", "https://a.example", NULL};
    struct itest_server *s = start(args);
    struct itest_conn hold;
    struct itest_response r;
    assert_int_equal(itest_conn_open(&hold, s->port), 0);
    assert_true(itest_conn_send(&hold, "GET /healthz HTTP/1.1\r\nHost: ops.test\r\n\r\n"));
    assert_int_equal(itest_read_response(&hold, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 200);
    itest_response_free(&r);

    static const struct {
        const char *sent; /* NULL: nothing before the answer */
        const char *allowed;
    } cases[] = {
        {NULL, "https://a.example"},
        {"GET /healthz HTTP/1.1\r\nHost: ops.test\r\nOrigin: https://a.example\r\n\r\n",
         "https://a.example"},
        {"GET /healthz HTTP/1.1\r\nHost: ops.test\r\nOrigin: https://evil.example\r\n\r\n", NULL},
        {"GET /healthz HTTP/1.1\r\nHost: ops.test\r\n\r\n", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        busy_answer(s, cases[i].sent, &r);
        expect_cors(&r, cases[i].allowed);
        assert_true(itest_header_has_token(&r, "Vary", "Origin"));
        itest_response_free(&r);
    }
    itest_conn_close(&hold);
    stop_ok(s);

    /* Without --cors-origin: "*", as everywhere. */
    const char *any_args[] = {"--max-clients", "1", NULL};
    s = start(any_args);
    assert_int_equal(itest_conn_open(&hold, s->port), 0);
    assert_true(itest_conn_send(&hold, "GET /healthz HTTP/1.1\r\nHost: ops.test\r\n\r\n"));
    assert_int_equal(itest_read_response(&hold, &r, 0, itest_timeout()), 0);
    itest_response_free(&r);
    busy_answer(s, NULL, &r);
    expect_cors(&r, "*");
    assert_null(itest_header(&r, "Vary"));
    itest_response_free(&r);
    itest_conn_close(&hold);
    stop_ok(s);
}

/* GET target from a given loopback source address; returns the status. */
static int get_from(int port, const char *src, const char *target)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    struct timeval tv = {.tv_sec = itest_timeout() / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    char raw[256];
    snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: ops.test\r\nConnection: close\r\n\r\n",
             target);
    assert_true(itest_send_str(fd, raw));
    struct itest_conn c = {.fd = fd};
    struct itest_response r;
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    int st = r.status;
    itest_response_free(&r);
    itest_conn_close(&c);
    return st;
}

static void test_admin_local(void **state)
{
    (void)state;
    const char *args[] = {"--admin-local", NULL};
    struct itest_server *s = start(args);
    struct itest_response r;
    get_metrics(s->port, &r);
    itest_response_free(&r);
    get_stats(s->port, "/stats", &r);
    itest_response_free(&r);
    /* Every 127/8 address is loopback. */
    assert_int_equal(get_from(s->port, "127.0.0.2", "/metrics"), 200);
    assert_int_equal(get_from(s->port, "127.1.2.3", "/stats"), 200);
    get_expect(s->port, "/healthz", 200, &r);
    itest_response_free(&r);
    stop_ok(s);

    /* Without the flag they answer as well. */
    s = start(NULL);
    get_metrics(s->port, &r);
    itest_response_free(&r);
    get_stats(s->port, "/stats", &r);
    itest_response_free(&r);
    assert_int_equal(get_from(s->port, "127.0.0.2", "/metrics"), 200);
    stop_ok(s);
}

/* ------------------------------------------------------------ logs */

/* The server's captured stderr so far (the caller frees it). */
static char *server_log(const struct itest_server *s)
{
    if (!s->log_path[0])
        fail_msg("the server's stderr is not captured (ITEST_SERVER_LOG=1?)");
    char *log = slurp(s->log_path, NULL);
    assert_non_null(log);
    return log;
}

/* Waits until the server's log has a line containing every needle (NULL-
 * terminated list); returns a copy of that line (the caller frees it). */
static char *wait_log_line(const struct itest_server *s, const char *const *needles, int timeout_ms)
{
    int64_t deadline = itest_now_ms() + timeout_ms;
    for (;;) {
        char *log = server_log(s);
        for (char *line = log; *line;) {
            char *eol = strchr(line, '\n');
            if (!eol)
                break; /* incomplete: not yet */
            *eol = 0;
            bool all = true;
            for (size_t i = 0; needles[i] && all; i++)
                all = strstr(line, needles[i]) != NULL;
            if (all) {
                char *copy = strdup(line);
                free(log);
                return copy;
            }
            line = eol + 1;
        }
        free(log);
        if (itest_now_ms() >= deadline)
            break;
        itest_sleep_ms(10);
    }
    itest_server_dump_log(s, 4000);
    fail_msg("no log line with \"%s\"%s", needles[0], needles[1] ? " (and more)" : "");
    return NULL;
}

/* Checks that every line of the log is one JSON object with string members
 * time (ISO 8601 UTC), level and msg; returns the number of lines. */
static size_t check_json_log(const struct itest_server *s)
{
    char *log = server_log(s);
    size_t lines = 0;
    for (char *line = log; *line;) {
        char *eol = strchr(line, '\n');
        assert_non_null(eol); /* every line ends with a newline */
        size_t len = (size_t)(eol - line);
        const char *v;
        size_t vlen;
        if (!json_object(line, len, NULL, NULL, NULL))
            fail_msg("log line %zu is not one JSON object: %.*s", lines + 1, (int)len, line);
        assert_true(json_object(line, len, "msg", &v, &vlen));
        assert_true(vlen >= 2 && v[0] == '"');
        assert_true(json_object(line, len, "time", &v, &vlen));
        /* "YYYY-MM-DDTHH:MM:SS[.fff]Z" */
        assert_true(vlen >= 22 && v[0] == '"' && v[5] == '-' && v[8] == '-' && v[11] == 'T' &&
                    v[14] == ':' && v[17] == ':' && v[vlen - 2] == 'Z');
        assert_true(json_str_is(line, len, "level", "info") ||
                    json_str_is(line, len, "level", "warn") ||
                    json_str_is(line, len, "level", "error"));
        lines++;
        line = eol + 1;
    }
    free(log);
    return lines;
}

static void test_log_json_access(void **state)
{
    (void)state;
    const char *args[] = {"--log-format", "json", "--log-level", "info", NULL};
    struct itest_server *s = start(args);
    struct itest_response r;
    get_expect(s->port, "/healthz?probe=access-1", 200, &r);
    itest_response_free(&r);
    get_expect(s->port, "/no-such-page?probe=access-2", 404, &r);
    itest_response_free(&r);

    const char *ok_line[] = {"\"msg\":\"GET /healthz?probe=access-1 200 ", "bytes", NULL};
    free(wait_log_line(s, ok_line, itest_timeout()));
    const char *nf_line[] = {"\"msg\":\"GET /no-such-page?probe=access-2 404 ", NULL};
    free(wait_log_line(s, nf_line, itest_timeout()));
    /* A target with characters JSON must escape: the line stays one object
     * (checked below) and shows them escaped. */
    assert_int_equal(
        itest_request(s->port, "GET /q\"uo\\te?probe=access-3 HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 404);
    itest_response_free(&r);
    const char *esc_line[] = {"\"msg\":\"GET /q\\\"uo\\\\te?probe=access-3 404 ", NULL};
    free(wait_log_line(s, esc_line, itest_timeout()));

    /* A stream that got one event and was closed by its client. */
    struct itest_sub sub;
    memset(&sub, 0, sizeof sub);
    assert_int_equal(itest_sub_open(&sub, s->port, "/messages?room=logroom", itest_timeout()), 0);
    assert_int_equal(itest_post_message(s->port, "/message?room=logroom", "[1]", 3, NULL, NULL),
                     202);
    assert_true(itest_sub_wait(&sub, 1, itest_timeout()));
    /* What the stream put on the wire: its head and its body. */
    uint64_t received = sub.head.head_len + sub.body_bytes;
    itest_sub_close(&sub);
    const char *closed[] = {"stream closed", "room=logroom", NULL};
    char *line = wait_log_line(s, closed, itest_timeout());
    fprintf(stderr, "log: %s\n", line);
    /* "... <bytes> bytes, <events> events" */
    const char *b = strstr(line, " bytes");
    assert_non_null(b);
    const char *p = b;
    while (p > line && p[-1] >= '0' && p[-1] <= '9')
        p--;
    assert_true(p < b);
    assert_int_equal(strtoull(p, NULL, 10), received);
    assert_non_null(strstr(line, " 1 events"));
    free(line);

    assert_true(check_json_log(s) >= 4);
    stop_ok(s);
}

static void test_log_bad_requests_rate_limited(void **state)
{
    (void)state;
    const char *args[] = {"--log-format", "json", "--log-level", "info", NULL};
    struct itest_server *s = start(args);
    enum { BAD = 200 };
    const char *bad = "GET /x HTTP/1.1\r\nHost: ops.test\r\nBad Header : 1\r\n\r\n";
    struct itest_response r;
    int64_t t0 = itest_now_ms();
    for (int i = 0; i < BAD; i++) {
        assert_int_equal(itest_request(s->port, bad, &r), 0);
        assert_int_equal(r.status, 400);
        itest_response_free(&r);
    }
    int64_t took = itest_now_ms() - t0;
    fprintf(stderr, "%d bad requests in %lld ms\n", BAD, (long long)took);

    /* Once the window in which they came has passed, one more flushes the
     * count of the suppressed lines. */
    itest_sleep_ms(1100);
    assert_int_equal(itest_request(s->port, bad, &r), 0);
    assert_int_equal(r.status, 400);
    itest_response_free(&r);
    const char *sup[] = {"suppressed", NULL};
    free(wait_log_line(s, sup, itest_timeout()));
    itest_sleep_ms(50);

    /* Count the lines about the bad requests and the suppressed ones. */
    char *log = server_log(s);
    size_t logged = 0, suppressed_lines = 0, total = 0;
    unsigned long suppressed = 0;
    for (char *line = log; *line;) {
        char *eol = strchr(line, '\n');
        if (!eol)
            break;
        *eol = 0;
        total++;
        char *msg = strstr(line, "\"msg\":\"");
        if (msg) {
            msg += 7;
            int fd;
            if (sscanf(msg, "fd %d: 400 ", &fd) == 1 && strstr(msg, ": 400 "))
                logged++;
            const char *sp = strstr(msg, "suppressed ");
            if (sp) {
                suppressed_lines++;
                suppressed += strtoul(sp + 11, NULL, 10);
            }
        }
        line = eol + 1;
    }
    free(log);
    fprintf(stderr, "log: %zu lines, %zu about bad requests, %zu 'suppressed' lines (%lu)\n", total,
            logged, suppressed_lines, suppressed);
    assert_true(logged >= 20);
    assert_true(logged < 60);
    assert_true(total < 60 + 10);
    assert_true(suppressed_lines >= 1);
    /* Nothing is lost: every bad request is either logged or counted. */
    assert_int_equal(logged + suppressed, BAD + 1);
    assert_true(check_json_log(s) == total);
    stop_ok(s);
}

/* ------------------------------------------------------------ SIGHUP */

/* The large file: 2 MiB, or more when the kernel may queue more than that
 * on a socket (tcp_wmem's maximum, which loopback send buffers do reach even
 * towards a reader with a tiny window), so that the server still holds part
 * of the file in its own memory -- a pointer into the old table -- when the
 * reload happens. */
static size_t big_size = 2u << 20;

static size_t big_file_size(void)
{
    size_t size = 2u << 20;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "re");
    unsigned long lo, def, max;
    if (f && fscanf(f, "%lu %lu %lu", &lo, &def, &max) == 3 && max + (2u << 20) > size)
        size = ((max >> 20) + 2) << 20;
    if (f)
        fclose(f);
    return size < (48u << 20) ? size : 48u << 20;
}

static unsigned char big_byte(size_t i, int version)
{
    unsigned char b = (unsigned char)(i * 7u + i / 4099u);
    return version == 1 ? b : (unsigned char)~b;
}

static void write_big(const char *dir, int version)
{
    unsigned char *data = malloc(big_size);
    assert_non_null(data);
    for (size_t i = 0; i < big_size; i++)
        data[i] = big_byte(i, version);
    char path[160];
    snprintf(path, sizeof path, "%s/big.bin", dir);
    assert_int_equal(itest_write_file(path, data, big_size), 0); /* in place: same inode */
    free(data);
}

static void write_index(const char *dir, const char *text)
{
    char path[160];
    snprintf(path, sizeof path, "%s/index.html", dir);
    assert_int_equal(itest_write_file(path, text, strlen(text)), 0);
}

/* GET / until the body is `want` or timeout_ms passed; returns the ETag. */
static char *wait_index(int port, const char *want, int timeout_ms)
{
    int64_t deadline = itest_now_ms() + timeout_ms;
    for (;;) {
        struct itest_response r;
        get_expect(port, "/", 200, &r);
        if (r.body_len == strlen(want) && memcmp(r.body, want, r.body_len) == 0) {
            char *etag = strdup(itest_header_or_absent(&r, "ETag"));
            itest_response_free(&r);
            return etag;
        }
        if (itest_now_ms() >= deadline) {
            itest_show_response("GET / after the reload", &r, 400);
            itest_response_free(&r);
            fail_msg("GET / did not answer \"%s\" within %d ms", want, timeout_ms);
        }
        itest_response_free(&r);
        itest_sleep_ms(10);
    }
}

static void test_sighup_reload(void **state)
{
    (void)state;
    const char *dir = scratch_dir();
    char sdir[128];
    snprintf(sdir, sizeof sdir, "%s/static", dir);
    assert_int_equal(mkdir(sdir, 0755), 0);
    write_index(sdir, "v1");
    const char *args[] = {"--static", sdir, NULL};
    struct itest_server *s = start(args);

    char *etag1 = wait_index(s->port, "v1", 0);
    write_index(sdir, "v2");
    /* Not before the signal: the files are read at start and on SIGHUP. */
    char *same = wait_index(s->port, "v1", 0);
    assert_string_equal(same, etag1);
    free(same);

    assert_int_equal(kill(s->pid, SIGHUP), 0);
    char *etag2 = wait_index(s->port, "v2", 1000);
    assert_string_not_equal(etag1, etag2);
    assert_string_not_equal(etag2, "(absent)");
    /* The old ETag no longer matches; the new one does. */
    char raw[256];
    struct itest_response r;
    snprintf(raw, sizeof raw, "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: %s\r\n\r\n", etag1);
    assert_int_equal(itest_request(s->port, raw, &r), 0);
    assert_int_equal(r.status, 200);
    itest_response_free(&r);
    snprintf(raw, sizeof raw, "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: %s\r\n\r\n", etag2);
    assert_int_equal(itest_request(s->port, raw, &r), 0);
    assert_int_equal(r.status, 304);
    itest_response_free(&r);
    const char *reloaded[] = {"reloaded", NULL};
    free(wait_log_line(s, reloaded, itest_timeout()));

    /* A reload that fails (the static path is now a regular file) keeps the
     * files being served. */
    char gone[160];
    snprintf(gone, sizeof gone, "%s/gone", dir);
    assert_int_equal(rename(sdir, gone), 0);
    assert_int_equal(itest_write_file(sdir, "not a directory", 15), 0);
    assert_int_equal(kill(s->pid, SIGHUP), 0);
    const char *kept[] = {"keeping the old ones", NULL};
    free(wait_log_line(s, kept, itest_timeout()));
    free(wait_index(s->port, "v2", 0));
    assert_int_equal(unlink(sdir), 0);

    /* So does a reload while the directory is missing altogether (a deploy
     * swapping it): the site must not turn into 404s. */
    assert_int_equal(kill(s->pid, SIGHUP), 0);
    const char *missing[] = {"keeping the old ones", "No such file", NULL};
    free(wait_log_line(s, missing, itest_timeout()));
    free(wait_index(s->port, "v2", 0));
    assert_int_equal(rename(gone, sdir), 0);

    free(etag1);
    free(etag2);
    stop_ok(s);
}

/* Bytes in the send queue of the server's end of the connection between
 * server_port and client_port (/proc/net/tcp), -1 if not found. */
static long server_send_queue(int server_port, int client_port)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    if (!f)
        return -1;
    char line[512];
    long q = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned lport, rport;
        unsigned long tx;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %*x %lx:%*x", &lport, &rport, &tx) == 3 &&
            (int)lport == server_port && (int)rport == client_port) {
            q = (long)tx;
            break;
        }
    }
    fclose(f);
    return q;
}

static void test_sighup_during_slow_download(void **state)
{
    (void)state;
    const char *dir = scratch_dir();
    char sdir[128];
    snprintf(sdir, sizeof sdir, "%s/static", dir);
    assert_int_equal(mkdir(sdir, 0755), 0);
    write_index(sdir, "v1");
    big_size = big_file_size();
    write_big(sdir, 1);
    const char *args[] = {"--static", sdir, NULL};
    struct itest_server *s = start(args);

    /* A client with a small receive buffer that reads a little. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    struct sockaddr_in me;
    socklen_t mlen = sizeof me;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &mlen), 0);
    struct itest_conn c = {.fd = fd};
    assert_true(itest_conn_send(&c, "GET /big.bin HTTP/1.1\r\nHost: ops.test\r\n\r\n"));
    struct itest_response r;
    assert_int_equal(itest_read_response(&c, &r, ITEST_RESP_HEAD_ONLY, itest_timeout()), 0);
    assert_int_equal(r.status, 200);
    char length[32];
    snprintf(length, sizeof length, "%zu", big_size);
    assert_string_equal(itest_header_or_absent(&r, "Content-Length"), length);
    itest_response_free(&r);
    while (c.len < 16384)
        assert_true(itest_conn_fill(&c, itest_timeout()) > 0);
    itest_sleep_ms(100); /* let the buffers fill up */

    /* How much the server had not handed to the kernel yet: the test means
     * something only if it still holds part of the old file. */
    int rcvq = 0;
    ioctl(fd, FIONREAD, &rcvq);
    long sndq = server_send_queue(s->port, ntohs(me.sin_port));
    long held = (long)big_size - (long)c.len - rcvq - (sndq > 0 ? sndq : 0);
    fprintf(
        stderr,
        "file %zu bytes; before SIGHUP: read %zu, client queue %d, server queue %ld, held %ld\n",
        big_size, c.len, rcvq, sndq, held);
    assert_true(sndq >= 0);
    assert_true(held > 0);

    /* New contents for both files (written in place), then the reload. */
    write_index(sdir, "v2");
    write_big(sdir, 2);
    assert_int_equal(kill(s->pid, SIGHUP), 0);
    free(wait_index(s->port, "v2", 1000));

    /* A new download gets the new file... */
    get_expect(s->port, "/big.bin", 200, &r);
    assert_int_equal(r.body_len, big_size);
    size_t bad_new = 0;
    for (size_t i = 0; i < big_size; i++)
        bad_new += (unsigned char)r.body[i] != big_byte(i, 2);
    assert_int_equal(bad_new, 0);
    itest_response_free(&r);

    /* ...and the slow one the old file, complete and intact. */
    while (c.len < big_size) {
        ssize_t n = itest_conn_fill(&c, itest_timeout());
        if (n <= 0)
            fail_msg("the download stopped at %zu of %zu bytes", c.len, big_size);
    }
    assert_int_equal(c.len, big_size);
    size_t first_bad = big_size;
    for (size_t i = 0; i < big_size && first_bad == big_size; i++)
        if ((unsigned char)c.buf[i] != big_byte(i, 1))
            first_bad = i;
    if (first_bad != big_size)
        fail_msg("the download differs from the old file at byte %zu", first_bad);
    /* Still a working keep-alive connection after it. */
    assert_true(itest_conn_send(&c, "GET / HTTP/1.1\r\nHost: ops.test\r\n\r\n"));
    itest_conn_consume(&c, c.len);
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 2);
    assert_memory_equal(r.body, "v2", 2);
    itest_response_free(&r);
    itest_conn_close(&c);
    stop_ok(s);
}

/* ------------------------------------------------------------ SIGTERM */

static void test_sigterm_graceful(void **state)
{
    (void)state;
    enum { RETRY_MS = 1000, N = 3 };
    const char *args[] = {"--retry-ms", "1000", NULL};
    struct itest_server *s = start(args);
    struct itest_sub subs[N];
    memset(subs, 0, sizeof subs);
    assert_int_equal(itest_subs_open(subs, N, s->port, "/messages?room=bye", itest_timeout()), N);
    assert_int_equal(
        itest_post_message(s->port, "/message?room=bye", "{\"last\":true}", 13, NULL, NULL), 202);
    assert_int_equal(itest_subs_drive(subs, N, 1, itest_timeout()), N);
    for (int i = 0; i < N; i++) {
        /* The opening retry: retry-ms +- 20%. */
        assert_true(subs[i].parser.has_retry);
        assert_in_range(subs[i].parser.retry_ms, RETRY_MS * 8 / 10, RETRY_MS * 12 / 10);
    }

    int64_t t0 = itest_now_ms();
    int st = itest_server_signal(s, SIGTERM, itest_ms(5000));
    int64_t took = itest_now_ms() - t0;
    fprintf(stderr, "SIGTERM: exit status %d after %lld ms\n", st, (long long)took);
    assert_int_equal(st, 0);
    assert_true(took <= 1000);

    /* Every stream: its event, a final retry, then the end (a FIN). */
    itest_subs_drive(subs, N, SIZE_MAX, itest_timeout());
    for (int i = 0; i < N; i++) {
        struct itest_sub *sub = &subs[i];
        fprintf(stderr, "stream %d ends with: %s\n", i,
                sub->raw_len > 24 ? sub->raw + sub->raw_len - 24 : sub->raw);
        assert_int_equal(sub->state, ITEST_SUB_CLOSED);
        assert_false(sub->conn.reset);
        assert_int_equal(sub->events.count, 1);
        assert_string_equal(sub->events.ev[0].data, "{\"last\":true}");
        assert_true(sub->raw_len < ITEST_SUB_RAW_MAX - 1);
        /* The last line of the body is "retry: N" (then a blank line). */
        const char *last = NULL;
        for (const char *p = strstr(sub->raw, "retry: "); p; p = strstr(p + 1, "retry: "))
            last = p;
        assert_non_null(last);
        char *end;
        unsigned long retry = strtoul(last + 7, &end, 10);
        assert_true(end > last + 7);
        assert_true(*end == '\n');
        end++;
        while (*end == '\n')
            end++;
        assert_int_equal((size_t)(end - sub->raw), sub->raw_len);
        assert_true(last > strstr(sub->raw, "data: "));
        assert_in_range(retry, RETRY_MS * 18 / 10, RETRY_MS * 22 / 10);
        assert_int_equal(sub->parser.retry_ms, retry);
        itest_sub_close(sub);
    }
}

int main(void)
{
    itest_init(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_figures, setup_room_a, teardown_room_a),
        cmocka_unit_test_setup_teardown(test_metrics_figures, setup_room_a, teardown_room_a),
        cmocka_unit_test_setup_teardown(test_metrics_room_cardinality, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliveries_exclusion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_promtool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_token_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_from_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cors_allow_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cors_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cors_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_json_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_bad_requests_rate_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sighup_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sighup_during_slow_download, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_graceful, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed || itest_wrapper_failures() ? 1 : 0;
}
