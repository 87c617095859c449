/*
 * test_journal: the on-disk journal (--data-dir) seen from outside, through
 * the real server binary and its files:
 *
 *   - restart round trip in each --fsync mode: ?history=N replays the same
 *     ids, event types and bytes; Last-Event-ID (header or ?lastEventId=)
 *     from before the restart resumes exactly; new ids are above all old ones;
 *   - crashes: kill -9 at random moments while a publisher posts one message
 *     at a time (--fsync always); every acknowledged message survives, ids
 *     strictly increase and never repeat, and a subscriber that resumes with
 *     the id it had before each crash misses nothing and sees nothing twice;
 *   - a torn tail (the last record cut mid-way, garbage appended) is
 *     truncated at start; a corrupt record in the middle is skipped and
 *     reported;
 *   - a full disk (RLIMIT_FSIZE, EFBIG; and a real ENOSPC on a small tmpfs
 *     when mounting is allowed): 503 with a JSON error, nothing published
 *     that is not on disk, the server keeps serving, and everything
 *     acknowledged is replayed after a restart (or once space returns);
 *   - retention (--segment-bytes with --retain-bytes or --retain-records)
 *     keeps the directory bounded while the newest records are replayed
 *     (the last --history of them per room);
 *   - pipelined POSTs with --fsync batch are all answered and delivered in
 *     order, and closing POSTs are answered before the close;
 *   - publish throughput per --fsync mode (printed, not asserted).
 *
 * Scratch directories are /tmp/jtest-*; they are removed at exit even when a
 * test fails. Set JTEST_SEED to repeat the crash test's kill schedule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

/* Record framing, as documented in include/journal.h: a 12-byte frame header
 * (magic, length, crc32c) and a 14-byte payload header before room, event
 * type and data. */
#define FRAME_HDR     12u
#define PAYLOAD_HDR   14u
#define JOURNAL_MAGIC 0x4A455353u

static size_t frame_size(size_t room_len, size_t event_len, size_t data_len)
{
    return FRAME_HDR + PAYLOAD_HDR + room_len + event_len + data_len;
}

/* ========================================================= scratch dirs */

#define MAX_TMP 32

/* Every scratch directory (and tmpfs mount) made, removed at exit. */
static char tmp_dirs[MAX_TMP][64];
static char tmp_mounts[MAX_TMP][96];

static void cleanup_at_exit(void)
{
    for (int i = 0; i < MAX_TMP; i++) {
        if (tmp_mounts[i][0]) {
            umount2(tmp_mounts[i], MNT_DETACH);
            tmp_mounts[i][0] = 0;
        }
    }
    for (int i = 0; i < MAX_TMP; i++) {
        if (tmp_dirs[i][0]) {
            itest_rm_rf(tmp_dirs[i]);
            tmp_dirs[i][0] = 0;
        }
    }
}

struct tmp {
    char root[64];  /* /tmp/jtest-<tag>-XXXXXX */
    char data[128]; /* root/data: the server's --data-dir (it creates it) */
    int slot;
};

static void tmp_make(struct tmp *t, const char *tag)
{
    snprintf(t->root, sizeof t->root, "/tmp/jtest-%s-XXXXXX", tag);
    if (!mkdtemp(t->root))
        fail_msg("mkdtemp %s: %s", t->root, strerror(errno));
    snprintf(t->data, sizeof t->data, "%s/data", t->root);
    t->slot = -1;
    for (int i = 0; i < MAX_TMP; i++) {
        if (!tmp_dirs[i][0]) {
            snprintf(tmp_dirs[i], sizeof tmp_dirs[i], "%s", t->root);
            t->slot = i;
            break;
        }
    }
}

static void tmp_remove(struct tmp *t)
{
    itest_rm_rf(t->root);
    if (t->slot >= 0)
        tmp_dirs[t->slot][0] = 0;
}

/* Total bytes of the regular files in dir, and how many there are. */
static uint64_t dir_bytes(const char *dir, size_t *nfiles)
{
    uint64_t total = 0;
    size_t n = 0;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char p[512];
            struct stat sb;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
                total += (uint64_t)sb.st_size;
                n++;
            }
        }
        closedir(d);
    }
    if (nfiles)
        *nfiles = n;
    return total;
}

/* Segment names (*.log) in dir, sorted (they are zero-padded ids). Returns
 * the count. */
static size_t list_segments(const char *dir, char names[][32], size_t cap)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        size_t l = strlen(e->d_name);
        if (l > 4 && l < 32 && strcmp(e->d_name + l - 4, ".log") == 0)
            memcpy(names[n++], e->d_name, l + 1);
    }
    closedir(d);
    for (size_t i = 1; i < n; i++) { /* insertion sort: a handful of names */
        char tmp[32];
        memcpy(tmp, names[i], sizeof tmp);
        size_t j = i;
        while (j > 0 && strcmp(names[j - 1], tmp) > 0) {
            memcpy(names[j], names[j - 1], sizeof tmp);
            j--;
        }
        memcpy(names[j], tmp, sizeof tmp);
    }
    return n;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Reads a whole file (malloc'ed, *len set); NULL on error. */
static unsigned char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return NULL;
    }
    unsigned char *b = malloc((size_t)sb.st_size + 1);
    size_t got = 0;
    while (b && got < (size_t)sb.st_size) {
        ssize_t r = read(fd, b + got, (size_t)sb.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (b && got != (size_t)sb.st_size) {
        free(b);
        b = NULL;
    }
    *len = got;
    return b;
}

/* A segment as a sequence of frames (the CRC is the server's business; this
 * checks the framing only). */
struct seg_scan {
    size_t records;
    uint64_t bytes;
    bool clean; /* the file is exactly a sequence of whole frames */
    uint64_t first_id, last_id;
    uint64_t offsets[256]; /* offsets of the first records (for surgery) */
};

static void scan_segment(const char *path, struct seg_scan *sc)
{
    memset(sc, 0, sizeof *sc);
    size_t len = 0;
    unsigned char *b = read_file(path, &len);
    if (!b)
        fail_msg("cannot read %s: %s", path, strerror(errno));
    sc->bytes = len;
    size_t o = 0;
    while (o + FRAME_HDR + PAYLOAD_HDR <= len && le32(b + o) == JOURNAL_MAGIC) {
        size_t flen = FRAME_HDR + le32(b + o + 4);
        if (o + flen > len)
            break;
        uint64_t id = le64(b + o + FRAME_HDR);
        if (sc->records == 0)
            sc->first_id = id;
        sc->last_id = id;
        if (sc->records < sizeof sc->offsets / sizeof sc->offsets[0])
            sc->offsets[sc->records] = o;
        sc->records++;
        o += flen;
    }
    sc->clean = o == len;
    free(b);
}

/* Records in every segment of dir (asserting each is whole frames). */
static size_t count_records(const char *dir, uint64_t *first_id)
{
    char names[64][32];
    size_t n = list_segments(dir, names, 64), total = 0;
    for (size_t i = 0; i < n; i++) {
        char p[256];
        struct seg_scan sc;
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        scan_segment(p, &sc);
        if (!sc.clean)
            fail_msg("%s is not a sequence of whole records", p);
        if (i == 0 && first_id)
            *first_id = sc.first_id;
        total += sc.records;
    }
    return total;
}

/* ============================================================= server */

/* Reads the server's captured stderr ("" when it is not captured, i.e. with
 * ITEST_SERVER_LOG=1). Returns false then. */
static bool read_log(const struct itest_server *s, char *buf, size_t cap)
{
    buf[0] = 0;
    if (!s->log_path[0])
        return false;
    int fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    return true;
}

/* What journal_open logged ("replayed N records from S segments (last id L,
 * C corrupt skipped, T torn bytes truncated)"); all 0 when nothing. */
struct jstats {
    bool have_log; /* false: stderr not captured, nothing is known */
    bool found;    /* the "replayed" line was there */
    uint64_t records, last_id, corrupt, torn;
    size_t segments;
    char log[16384];
};

static void journal_stats(const struct itest_server *s, struct jstats *js)
{
    memset(js, 0, sizeof *js);
    js->have_log = read_log(s, js->log, sizeof js->log);
    const char *p = strstr(js->log, "replayed ");
    if (!p)
        return;
    int n = sscanf(p,
                   "replayed %" SCNu64 " records from %zu segments (last id %" SCNu64 ", %" SCNu64
                   " corrupt skipped, %" SCNu64 " torn bytes truncated)",
                   &js->records, &js->segments, &js->last_id, &js->corrupt, &js->torn);
    if (n != 5)
        fail_msg("cannot parse the journal line: %.200s", p);
    js->found = true;
}

/* True when the log reports anything repaired or skipped in the journal
 * (its summary line always says "N corrupt skipped", so look for the
 * warnings themselves). */
static bool log_reports_damage(const char *log)
{
    static const char *const needles[] = {"truncating torn tail", "corrupt record",
                                          "corrupt end of an older segment", "not above"};
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        if (strstr(log, needles[i])) {
            fprintf(stderr, "the log reports \"%s\":\n%s\n", needles[i], log);
            return true;
        }
    return false;
}

static struct itest_server start_ok(const char *const *args)
{
    struct itest_server s = itest_server_start(args);
    if (s.pid <= 0)
        fail_msg("the server did not start");
    return s;
}

static void stop_ok(struct itest_server *s)
{
    int st = itest_server_stop(s);
    if (st != 0)
        fail_msg("server exit status %d after SIGTERM", st);
}

/* start_ok, but the server runs with a soft RLIMIT_FSIZE of `fsize` bytes,
 * so a journal write past it fails with EFBIG. */
static struct itest_server start_fsize(const char *const *args, rlim_t fsize)
{
    struct itest_server s = itest_server_start_fsize(args, (unsigned long)fsize);
    if (s.pid <= 0)
        fail_msg("server (RLIMIT_FSIZE %llu) did not start", (unsigned long long)fsize);
    return s;
}

/* ========================================================== publishing */

/* A keep-alive publisher that reconnects when the server closed. */
struct pub {
    int port;
    struct itest_conn c;
    bool open;
};

static void pub_init(struct pub *p, int port)
{
    memset(p, 0, sizeof *p);
    p->port = port;
    p->c.fd = -1;
}

static void pub_close(struct pub *p)
{
    if (p->open)
        itest_conn_close(&p->c);
    p->open = false;
}

/* "/message" with ?room= and &event= as given (NULL: absent). */
static void message_target(char *out, size_t cap, const char *room, const char *event)
{
    snprintf(out, cap, "/message%s%s%s%s%s", room || event ? "?" : "", room ? "room=" : "",
             room ? room : "", room && event ? "&" : "", event ? "event=" : "");
    if (event) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s", event);
    }
}

/* POSTs body; returns the status (-1 on a transport error). On 202 *id is the
 * answer's id. The response goes to *out when given (free it), else is
 * freed. */
static int pub_post(struct pub *p, const char *room, const char *event, const char *body,
                    size_t len, uint64_t *id, struct itest_response *out)
{
    if (!p->open) {
        if (itest_conn_open(&p->c, p->port) != 0)
            return -1;
        p->open = true;
    }
    char target[256], head[512];
    message_target(target, sizeof target, room, event);
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      target, len);
    struct itest_response r;
    if (!itest_conn_sendn(&p->c, head, (size_t)hl) || !itest_conn_sendn(&p->c, body, len) ||
        itest_read_response(&p->c, &r, 0, itest_timeout()) != 0) {
        pub_close(p);
        return -1;
    }
    int status = r.status;
    if (status == 202) {
        uint64_t v = 0;
        if (!itest_json_u64(r.body, "id", &v)) {
            fprintf(stderr, "202 without an id: %.200s\n", r.body);
            status = -1;
        } else if (id) {
            *id = v;
        }
    }
    if (r.closed || itest_header_has_token(&r, "Connection", "close"))
        pub_close(p);
    if (out)
        *out = r;
    else
        itest_response_free(&r);
    return status;
}

/* One message as posted and as it must come back. */
struct msg {
    uint64_t id;
    const char *room;  /* NULL: the default room */
    const char *event; /* NULL: no event type ("message") */
    char data[1200];
    size_t len;
};

static uint64_t post_msg_ok(struct pub *p, struct msg *m)
{
    uint64_t id = 0;
    int st = pub_post(p, m->room, m->event, m->data, m->len, &id, NULL);
    if (st != 202)
        fail_msg("POST room=%s event=%s %.60s: status %d", m->room ? m->room : "(default)",
                 m->event ? m->event : "(none)", m->data, st);
    m->id = id;
    return id;
}

/* {"n":<n>,"p":"xxx"} padded with `pad` x's. */
static void make_padded(struct msg *m, size_t n, size_t pad)
{
    assert_true(pad + 64 < sizeof m->data);
    int l = snprintf(m->data, sizeof m->data, "{\"n\":%zu,\"p\":\"", n);
    memset(m->data + l, 'x', pad);
    memcpy(m->data + (size_t)l + pad, "\"}", 3);
    m->len = (size_t)l + pad + 2;
}

static size_t msg_frame(const struct msg *m)
{
    return frame_size(m->room ? strlen(m->room) : strlen("default"),
                      m->event ? strlen(m->event) : 0, m->len);
}

/* ========================================================= subscribing */

/* "/messages" with ?room= (unless NULL) and an extra query (or NULL). */
static void messages_target(char *out, size_t cap, const char *room, const char *query)
{
    snprintf(out, cap, "/messages%s%s%s%s", room || query ? "?" : "", room ? "room=" : "",
             room ? room : "", room && query ? "&" : "");
    if (query) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s", query);
    }
}

/* Starts a subscriber and waits for its accepted head. */
static void sub_start_ok(struct itest_sub *s, int port, const char *target, const char *hdrs)
{
    if (itest_sub_start(s, port, target, hdrs) != 0 ||
        itest_subs_drive(s, 1, 0, itest_timeout()) != 1)
        fail_msg("subscriber %s: %s", target,
                 s->state == ITEST_SUB_FAILED ? s->error : "no head in time");
}

/* The n of {"n":<n>...}, or -1. */
static long body_n(const char *data, size_t len)
{
    static const char pfx[] = "{\"n\":";
    if (len < sizeof pfx || memcmp(data, pfx, sizeof pfx - 1) != 0)
        return -1;
    char *end;
    long v = strtol(data + sizeof pfx - 1, &end, 10);
    if (end == data + sizeof pfx - 1 || (*end != ',' && *end != '}'))
        return -1;
    return v;
}

/* Waits for exactly n events (at least n in time, then none more within a
 * short settle time) and checks them against m[0..n): id, type, data. */
static void expect_exactly(struct itest_sub *s, struct msg *const *m, size_t n, const char *what)
{
    if (!itest_sub_wait(s, n, itest_ms(5000))) {
        itest_print_events(what, &s->events, 0, 40);
        fail_msg("%s: want %zu events, got %zu (state %d %s)", what, n, s->events.count, s->state,
                 s->error);
    }
    itest_sub_wait(s, n + 1, itest_ms(150)); /* anything more would show now */
    bool ok = s->events.count == n;
    for (size_t i = 0; ok && i < n; i++) {
        const struct ssep_event *ev = &s->events.ev[i];
        uint64_t id = 0;
        const char *type = m[i]->event ? m[i]->event : "message";
        ok = itest_parse_u64(ev->id, &id) && id == m[i]->id && strcmp(ev->type, type) == 0 &&
             ev->data_len == m[i]->len && memcmp(ev->data, m[i]->data, m[i]->len) == 0;
        if (!ok)
            fprintf(stderr, "%s: event %zu: want id %" PRIu64 " type %s data \"%.60s\"\n", what, i,
                    m[i]->id, type, m[i]->data);
    }
    if (!ok) {
        itest_print_events(what, &s->events, 0, 60);
        fail_msg("%s: events differ from what was published (%zu events, want %zu)", what,
                 s->events.count, n);
    }
}

/* Pointers to the messages of one room (room NULL = default) among m[0..n),
 * optionally only those with id > after. Returns the count. */
static size_t select_room(struct msg *m, size_t n, const char *room, uint64_t after,
                          struct msg **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool same = room ? (m[i].room && strcmp(m[i].room, room) == 0) : m[i].room == NULL;
        if (same && m[i].id > after)
            out[k++] = &m[i];
    }
    return k;
}

/* Subscribes with ?history=<big> to each room and checks it replays exactly
 * that room's messages among m[0..n). */
static void expect_history(int port, const char *const *rooms, size_t nrooms, struct msg *m,
                           size_t n, const char *what)
{
    struct msg **sel = calloc(n + 1, sizeof *sel);
    assert_non_null(sel);
    for (size_t r = 0; r < nrooms; r++) {
        char target[128], label[160];
        messages_target(target, sizeof target, rooms[r], "history=100000");
        snprintf(label, sizeof label, "%s: %s", what, target);
        struct itest_sub s;
        sub_start_ok(&s, port, target, NULL);
        expect_exactly(&s, sel, select_room(m, n, rooms[r], 0, sel), label);
        itest_sub_close(&s);
    }
    free(sel);
}

/* ============================================================ rng */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t rng_state;

static int rng_between(int lo, int hi)
{
    return lo + (int)(itest_rng_next(&rng_state) % (uint64_t)(hi - lo + 1));
}

/* ================================================== 1. restart round trip */

static const char *const RT_ROOMS[3] = {"alpha", "beta", NULL};
static const char *const RT_EVENTS[4] = {NULL, "tick", NULL, "status-change"};

static void rt_message(struct msg *m, size_t i, const char *mode)
{
    m->room = RT_ROOMS[i % 3];
    m->event = RT_EVENTS[(i / 3) % 4];
    int l;
    if (i % 7 == 5) /* multi-line data: must come back byte for byte */
        l = snprintf(m->data, sizeof m->data, "{\n  \"n\": %zu,\n  \"mode\": \"%s\"\n}", i, mode);
    else
        l = snprintf(m->data, sizeof m->data,
                     "{\"n\":%zu,\"s\":\"caf\xc3\xa9 \\\"q\\\" \\u2603\",\"mode\":\"%s\"}", i,
                     mode);
    m->len = (size_t)l;
}

static void round_trip(const char *mode)
{
    enum { N1 = 30, N2 = 6 };
    struct tmp t;
    tmp_make(&t, "rt");
    const char *const args[] = {"--data-dir", t.data, "--fsync", mode, NULL};
    struct itest_server srv = start_ok(args);
    struct jstats js;
    journal_stats(&srv, &js);
    assert_false(js.found); /* a fresh directory: nothing replayed */

    struct itest_sub live, sub_x, sub_live, sub_y;
    sub_start_ok(&live, srv.port, "/messages?room=alpha", NULL);
    struct pub p;
    pub_init(&p, srv.port);
    struct msg *m = calloc(N1 + N2, sizeof *m);
    struct msg **sel = calloc(N1 + N2, sizeof *sel);
    assert_non_null(m);
    assert_non_null(sel);
    for (size_t i = 0; i < N1; i++) {
        rt_message(&m[i], i, mode);
        post_msg_ok(&p, &m[i]);
        if (i > 0)
            assert_true(m[i].id > m[i - 1].id);
    }
    pub_close(&p);
    size_t na = select_room(m, N1, "alpha", 0, sel);
    assert_int_equal(na, 10);
    expect_exactly(&live, sel, na, "live alpha subscriber before the restart");
    uint64_t x = sel[3]->id, last_alpha = sel[na - 1]->id;
    itest_sub_close(&live);
    size_t nb = select_room(m, N1, "beta", 0, sel);
    uint64_t y = sel[5]->id;
    assert_true(nb == 10);

    stop_ok(&srv);

    /* Restart: everything comes back, ids, types and bytes. */
    srv = start_ok(args);
    journal_stats(&srv, &js);
    if (js.have_log) {
        assert_true(js.found);
        assert_int_equal(js.records, N1);
        assert_int_equal(js.last_id, m[N1 - 1].id);
        assert_int_equal(js.corrupt, 0);
        assert_int_equal(js.torn, 0);
    }
    expect_history(srv.port, RT_ROOMS, 3, m, N1, "after the restart");
    {
        struct itest_sub h3; /* ?history=3: the last three of the room */
        size_t k = select_room(m, N1, "beta", 0, sel);
        sub_start_ok(&h3, srv.port, "/messages?room=beta&history=3", NULL);
        expect_exactly(&h3, sel + k - 3, 3, "beta ?history=3 after the restart");
        itest_sub_close(&h3);
    }

    /* Resuming with ids from before the restart: exactly the later ones. */
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", x);
    sub_start_ok(&sub_x, srv.port, "/messages?room=alpha", hdr);
    expect_exactly(&sub_x, sel, select_room(m, N1, "alpha", x, sel),
                   "alpha resumed from its 4th message");
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", last_alpha);
    sub_start_ok(&sub_live, srv.port, "/messages?room=alpha", hdr);
    expect_exactly(&sub_live, sel, 0, "alpha resumed from its last message");
    char target[128];
    snprintf(target, sizeof target, "/messages?room=beta&lastEventId=%" PRIu64, y);
    sub_start_ok(&sub_y, srv.port, target, NULL);
    expect_exactly(&sub_y, sel, select_room(m, N1, "beta", y, sel),
                   "beta resumed (?lastEventId=) from its 6th message");

    /* New messages: ids above everything before the restart, delivered live
     * to the resumed subscribers. */
    pub_init(&p, srv.port);
    for (size_t i = N1; i < N1 + N2; i++) {
        rt_message(&m[i], i, mode);
        post_msg_ok(&p, &m[i]);
        assert_true(m[i].id > m[i - 1].id);
    }
    pub_close(&p);
    expect_exactly(&sub_x, sel, select_room(m, N1 + N2, "alpha", x, sel),
                   "alpha resumed from its 4th message, then live");
    expect_exactly(&sub_live, sel, select_room(m, N1 + N2, "alpha", last_alpha, sel),
                   "alpha resumed from its last message, then live");
    expect_exactly(&sub_y, sel, select_room(m, N1 + N2, "beta", y, sel), "beta resumed, then live");
    itest_sub_close(&sub_x);
    itest_sub_close(&sub_live);
    itest_sub_close(&sub_y);
    stop_ok(&srv);

    /* And once more: the messages of the second run are kept too. */
    srv = start_ok(args);
    journal_stats(&srv, &js);
    if (js.have_log) {
        assert_int_equal(js.records, N1 + N2);
        assert_int_equal(js.corrupt, 0);
        assert_int_equal(js.torn, 0);
    }
    expect_history(srv.port, RT_ROOMS, 3, m, N1 + N2, "after the second restart");
    stop_ok(&srv);

    free(sel);
    free(m);
    tmp_remove(&t);
}

static void test_round_trip_always(void **state)
{
    (void)state;
    round_trip("always");
}

static void test_round_trip_batch(void **state)
{
    (void)state;
    round_trip("batch");
}

static void test_round_trip_never(void **state)
{
    (void)state;
    round_trip("never");
}

/* ============================================================ 2. crashes */

#define CRASH_MAX   10000
#define CRASH_KILLS 5
#define CRASH_TAIL  300 /* messages acknowledged after the last restart */

enum { ST_NONE = 0, ST_ACKED = 1, ST_UNANSWERED = 2 };

/* Length of the complete response (head + Content-Length body) at the start
 * of c->buf, 0 while it is incomplete. */
static size_t response_len(const struct itest_conn *c)
{
    if (!c->buf || c->len == 0)
        return 0;
    const char *end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return 0;
    size_t head = (size_t)(end - c->buf) + 4;
    const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
    if (!cl || cl > end)
        return head; /* no body */
    size_t body = (size_t)strtoul(cl + strlen("\r\ncontent-length:"), NULL, 10);
    return c->len >= head + body ? head + body : 0;
}

/* Parses the complete response buffered in c: its status, and the id of a 202. */
static int take_response(struct itest_conn *c, uint64_t *id)
{
    struct itest_response r;
    if (itest_read_response(c, &r, 0, itest_timeout()) != 0)
        return -1;
    int st = r.status;
    if (st == 202 && !itest_json_u64(r.body, "id", id))
        st = -1;
    itest_response_free(&r);
    return st;
}

struct seen {
    uint64_t id;
    long n;
};

struct crash {
    const char *const *args;
    struct itest_server srv;
    struct itest_sub sub;
    struct itest_conn c;
    uint8_t *st;
    uint64_t *ids;
    struct seen *seen;
    size_t nseen;
    uint64_t last_seen; /* the subscriber chain's last event id */
    int kills;
    uint64_t torn_total;
    size_t answered_at_kill;
};

/* Moves the subscriber's events to the chain (asserting they are messages). */
static void crash_take_events(struct crash *cr)
{
    for (size_t i = 0; i < cr->sub.events.count; i++) {
        const struct ssep_event *ev = &cr->sub.events.ev[i];
        if (strcmp(ev->type, "message") != 0)
            fail_msg(
                "subscriber chain: unexpected %s event (data %.60s) after resuming from %" PRIu64,
                ev->type, ev->data, cr->last_seen);
        assert_true(cr->nseen < CRASH_MAX + 16);
        cr->seen[cr->nseen].id = itest_event_id(ev);
        cr->seen[cr->nseen].n = body_n(ev->data, ev->data_len);
        cr->last_seen = cr->seen[cr->nseen].id;
        cr->nseen++;
    }
}

static bool sub_closed(const struct itest_sub *s, void *arg)
{
    (void)arg;
    return s->state == ITEST_SUB_CLOSED || s->state == ITEST_SUB_FAILED;
}

static void crash_start(struct crash *cr)
{
    cr->srv = start_ok(cr->args);
    struct jstats js;
    journal_stats(&cr->srv, &js);
    if (js.have_log) {
        if (js.corrupt != 0)
            fail_msg("corrupt records after a crash:\n%s", js.log);
        cr->torn_total += js.torn;
    }
    if (cr->last_seen) {
        char hdr[64];
        snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", cr->last_seen);
        sub_start_ok(&cr->sub, cr->srv.port, "/messages?room=crash", hdr);
    } else {
        sub_start_ok(&cr->sub, cr->srv.port, "/messages?room=crash&history=20000", NULL);
    }
    assert_int_equal(itest_conn_open(&cr->c, cr->srv.port), 0);
}

/* kill -9 now; `seq` is the message in flight (or -1). Then restart. */
static void crash_kill_restart(struct crash *cr, long seq)
{
    int st = itest_server_signal(&cr->srv, SIGKILL, itest_ms(5000));
    assert_int_equal(st, 128 + SIGKILL);
    cr->kills++;
    if (seq >= 0) {
        /* An answer may have left before the kill: it counts. */
        int64_t deadline = itest_now_ms() + itest_ms(1000);
        while (!cr->c.eof && !response_len(&cr->c) && itest_now_ms() < deadline)
            itest_conn_fill(&cr->c, 100);
        uint64_t id = 0;
        if (response_len(&cr->c) && take_response(&cr->c, &id) == 202) {
            cr->st[seq] = ST_ACKED;
            cr->ids[seq] = id;
            cr->answered_at_kill++;
        }
    }
    itest_conn_close(&cr->c);
    if (!itest_sub_wait_until(&cr->sub, sub_closed, NULL, itest_ms(5000)))
        fail_msg("the subscriber's stream did not end after kill -9");
    crash_take_events(cr);
    itest_sub_close(&cr->sub);
    crash_start(cr);
}

static bool sub_reached(const struct itest_sub *s, void *arg)
{
    const uint64_t *want = arg;
    if (s->state == ITEST_SUB_CLOSED || s->state == ITEST_SUB_FAILED)
        return true; /* give up waiting; the caller's checks say what is wrong */
    if (s->events.count == 0)
        return false;
    uint64_t id = 0;
    return itest_parse_u64(s->events.ev[s->events.count - 1].id, &id) && id >= *want;
}

static void test_crash_kill9(void **state)
{
    (void)state;
    const char *seed_env = getenv("JTEST_SEED");
    uint64_t seed =
        seed_env ? strtoull(seed_env, NULL, 0) : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    rng_state = seed ? seed : 1;
    printf("crash test: seed %" PRIu64 " (JTEST_SEED to repeat)\n", seed);

    struct tmp t;
    tmp_make(&t, "crash");
    const char *const args[] = {"--data-dir", t.data,  "--fsync", "always",
                                "--history",  "20000", NULL};
    struct crash cr;
    memset(&cr, 0, sizeof cr);
    cr.args = args;
    cr.st = calloc(CRASH_MAX, 1);
    cr.ids = calloc(CRASH_MAX, sizeof *cr.ids);
    cr.seen = calloc(CRASH_MAX + 16, sizeof *cr.seen);
    assert_non_null(cr.st);
    assert_non_null(cr.ids);
    assert_non_null(cr.seen);

    int64_t t0 = itest_now_ms();
    crash_start(&cr);
    int64_t kill_at = itest_now_ms() + rng_between(150, 600);
    size_t posted = 0, tail = 0, between = 0;
    int64_t latency_us = 300; /* moving average of an answer's latency */
    while (posted < CRASH_MAX && !(cr.kills == CRASH_KILLS && tail >= CRASH_TAIL)) {
        /* When a kill is due: one time in six between two requests, else
         * 0..2 average latencies after sending one, so that it lands in
         * every phase (not yet read, appended, syncing, answered). */
        int64_t kill_after_us = -1;
        if (cr.kills < CRASH_KILLS &&
            CRASH_MAX - posted <= CRASH_TAIL + 100 * (size_t)(CRASH_KILLS - cr.kills))
            kill_at = 0; /* a very fast disk: keep the kills within CRASH_MAX messages */
        if (cr.kills < CRASH_KILLS && itest_now_ms() >= kill_at) {
            if (rng_between(0, 5) == 0) {
                crash_kill_restart(&cr, -1);
                between++;
                kill_at = itest_now_ms() + rng_between(150, 600);
            } else {
                int64_t span = 2 * latency_us < 5000 ? 2 * latency_us : 5000;
                kill_after_us = rng_between(0, (int)span);
            }
        }
        size_t seq = posted++;
        char req[256];
        int rl = snprintf(req, sizeof req,
                          "POST /message?room=crash HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"n\":%zu}",
                          snprintf(NULL, 0, "{\"n\":%zu}", seq), seq);
        cr.st[seq] = ST_UNANSWERED;
        int64_t sent_us = now_us();
        if (!itest_conn_sendn(&cr.c, req, (size_t)rl))
            fail_msg("cannot send message %zu (server running: %d)", seq,
                     itest_server_running(&cr.srv));
        if (kill_after_us >= 0) {
            while (now_us() - sent_us < kill_after_us)
                ;                               /* a few hundred microseconds at most: spin */
            crash_kill_restart(&cr, (long)seq); /* in flight (or just answered) */
            kill_at = itest_now_ms() + rng_between(150, 600);
            continue;
        }
        int64_t answer_by = itest_now_ms() + itest_timeout();
        for (;;) {
            if (response_len(&cr.c)) {
                uint64_t id = 0;
                int st = take_response(&cr.c, &id);
                if (st != 202)
                    fail_msg("message %zu: status %d", seq, st);
                cr.st[seq] = ST_ACKED;
                cr.ids[seq] = id;
                latency_us = (7 * latency_us + (now_us() - sent_us)) / 8;
                break;
            }
            int64_t now = itest_now_ms();
            if (cr.c.eof || now >= answer_by)
                fail_msg("message %zu: no answer (connection %s)", seq,
                         cr.c.eof ? "closed" : "timed out");
            itest_conn_fill(&cr.c, (int)(answer_by - now));
        }
        itest_sub_step(&cr.sub);
        if (cr.kills == CRASH_KILLS)
            tail++;
    }
    assert_int_equal(cr.kills, CRASH_KILLS);
    itest_conn_close(&cr.c);

    /* The newest message was acknowledged after the last restart. */
    size_t last = posted - 1;
    assert_int_equal(cr.st[last], ST_ACKED);
    uint64_t want = cr.ids[last];
    if (!itest_sub_wait_until(&cr.sub, sub_reached, &want, itest_ms(10000)))
        fail_msg("the last subscriber did not reach id %" PRIu64, want);
    crash_take_events(&cr);
    itest_sub_close(&cr.sub);

    /* Everything the journal holds now. */
    struct itest_sub all;
    sub_start_ok(&all, cr.srv.port, "/messages?room=crash&history=20000", NULL);
    if (!itest_sub_wait_until(&all, sub_reached, &want, itest_ms(10000)))
        fail_msg("the history did not reach id %" PRIu64, want);
    const struct ssep_list *f = &all.events;

    /* Ids strictly increase (so none repeats), every message is one we
     * posted, at most once, in posting order. */
    size_t acked = 0, unanswered = 0, unanswered_present = 0;
    long prev_n = -1;
    uint64_t prev_id = 0;
    uint8_t *present = calloc(posted, 1);
    assert_non_null(present);
    for (size_t i = 0; i < f->count; i++) {
        const struct ssep_event *ev = &f->ev[i];
        if (strcmp(ev->type, "message") != 0)
            fail_msg("history: unexpected %s event at %zu", ev->type, i);
        uint64_t id = itest_event_id(ev);
        long n = body_n(ev->data, ev->data_len);
        if (id <= prev_id || n <= prev_n || n < 0 || (size_t)n >= posted)
            fail_msg("history[%zu]: id %" PRIu64 " n %ld after id %" PRIu64 " n %ld", i, id, n,
                     prev_id, prev_n);
        if (cr.st[n] == ST_ACKED && cr.ids[n] != id)
            fail_msg("message %ld was acknowledged as %" PRIu64 " but replayed as %" PRIu64, n,
                     cr.ids[n], id);
        if (cr.st[n] == ST_UNANSWERED)
            unanswered_present++;
        present[n] = 1;
        prev_id = id;
        prev_n = n;
    }
    /* Every acknowledged message is there; acknowledged ids increase. */
    prev_id = 0;
    for (size_t n = 0; n < posted; n++) {
        if (cr.st[n] == ST_ACKED) {
            acked++;
            if (!present[n])
                fail_msg("acknowledged message %zu (id %" PRIu64 ") is missing", n, cr.ids[n]);
            if (cr.ids[n] <= prev_id)
                fail_msg("acknowledged ids do not increase at message %zu", n);
            prev_id = cr.ids[n];
        } else {
            assert_int_equal(cr.st[n], ST_UNANSWERED);
            unanswered++;
        }
    }
    /* The subscriber chain (resuming with its Last-Event-ID after each
     * crash) saw exactly the journal's messages: no gap, no duplicate. */
    bool same = cr.nseen == f->count;
    for (size_t i = 0; same && i < f->count; i++)
        same = cr.seen[i].id == itest_event_id(&f->ev[i]) &&
               cr.seen[i].n == body_n(f->ev[i].data, f->ev[i].data_len);
    if (!same) {
        size_t i = 0;
        while (i < cr.nseen && i < f->count && cr.seen[i].id == itest_event_id(&f->ev[i]))
            i++;
        fail_msg("subscriber chain saw %zu messages, the journal holds %zu; first difference at "
                 "%zu (chain id %" PRIu64 ", journal id %s)",
                 cr.nseen, f->count, i, i < cr.nseen ? cr.seen[i].id : 0,
                 i < f->count ? f->ev[i].id : "-");
    }
    int64_t elapsed = itest_now_ms() - t0;
    printf("crash test: %zu messages posted in %.1f s, %d kills (kill -9; %zu between two "
           "requests, %d with one in flight), %zu acknowledged (all present; %zu of them answered "
           "as the server died), %zu unanswered (%zu present), "
           "%zu in the journal, %" PRIu64 " torn bytes truncated at restarts; the resuming "
           "subscriber saw all %zu exactly once\n",
           posted, (double)elapsed / 1000.0, cr.kills, between, cr.kills - (int)between, acked,
           cr.answered_at_kill, unanswered, unanswered_present, f->count, cr.torn_total, cr.nseen);
    assert_true(unanswered <= (size_t)CRASH_KILLS);
    /* ?lastEventId=0 is older than the journal: a reset event pointing at
     * its first message, then the same messages. */
    struct itest_sub zero;
    sub_start_ok(&zero, cr.srv.port, "/messages?room=crash&lastEventId=0", NULL);
    if (!itest_sub_wait(&zero, f->count + 1, itest_ms(10000)))
        fail_msg("?lastEventId=0: %zu events, want %zu", zero.events.count, f->count + 1);
    assert_string_equal(zero.events.ev[0].type, "reset");
    assert_string_equal(zero.events.ev[0].data, f->ev[0].id);
    for (size_t i = 0; i < f->count; i++)
        if (strcmp(zero.events.ev[i + 1].id, f->ev[i].id) != 0 ||
            strcmp(zero.events.ev[i + 1].data, f->ev[i].data) != 0)
            fail_msg("?lastEventId=0: event %zu is %s, want %s", i + 1, zero.events.ev[i + 1].id,
                     f->ev[i].id);
    itest_sub_close(&zero);
    itest_sub_close(&all);
    stop_ok(&cr.srv);
    free(present);
    free(cr.st);
    free(cr.ids);
    free(cr.seen);
    tmp_remove(&t);
}

/* =========================================================== 3. torn tail */

static void newest_segment(const char *dir, char *path, size_t cap)
{
    char names[64][32];
    size_t n = list_segments(dir, names, 64);
    if (n == 0)
        fail_msg("no segment in %s", dir);
    snprintf(path, cap, "%s/%s", dir, names[n - 1]);
}

static void truncate_to(const char *path, off_t size)
{
    if (truncate(path, size) != 0)
        fail_msg("truncate %s: %s", path, strerror(errno));
}

static void append_bytes(const char *path, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0 || write(fd, b, n) != (ssize_t)n)
        fail_msg("append to %s: %s", path, strerror(errno));
    close(fd);
}

static void test_torn_tail(void **state)
{
    (void)state;
    enum { N = 20 };
    struct tmp t;
    tmp_make(&t, "torn");
    const char *const args[] = {"--data-dir", t.data, NULL};
    const char *const room[] = {"torn"};
    struct msg m[N + 8];
    memset(m, 0, sizeof m);
    struct itest_server srv = start_ok(args);
    struct pub p;
    pub_init(&p, srv.port);
    for (size_t i = 0; i < N; i++) {
        m[i].room = "torn";
        m[i].event = i % 2 ? "e" : NULL;
        make_padded(&m[i], i, 10 + i);
        post_msg_ok(&p, &m[i]);
    }
    pub_close(&p);
    stop_ok(&srv);

    /* 1. The last record cut 5 bytes short (a crash mid-write). */
    char seg[256];
    newest_segment(t.data, seg, sizeof seg);
    struct seg_scan sc;
    scan_segment(seg, &sc);
    assert_true(sc.clean);
    assert_int_equal(sc.records, N);
    size_t last_frame = msg_frame(&m[N - 1]);
    assert_int_equal(sc.bytes - sc.offsets[N - 1], last_frame);
    truncate_to(seg, (off_t)(sc.bytes - 5));
    uint64_t cut_id = m[N - 1].id;

    srv = start_ok(args);
    struct jstats js;
    journal_stats(&srv, &js);
    if (js.have_log) {
        assert_non_null(strstr(js.log, "truncating torn tail"));
        assert_int_equal(js.torn, last_frame - 5);
        assert_int_equal(js.records, N - 1);
        assert_int_equal(js.corrupt, 0);
    }
    scan_segment(seg, &sc); /* the cut is made on disk at start */
    assert_true(sc.clean);
    assert_int_equal(sc.records, N - 1);
    expect_history(srv.port, room, 1, m, N - 1, "after cutting the last record");
    /* New posts work; their ids are above every earlier one, the lost one
     * included. */
    pub_init(&p, srv.port);
    size_t n = N - 1;
    for (size_t i = 0; i < 4; i++, n++) {
        m[n].room = "torn";
        m[n].event = NULL;
        make_padded(&m[n], 100 + i, 5);
        post_msg_ok(&p, &m[n]);
        assert_true(m[n].id > cut_id);
    }
    pub_close(&p);
    stop_ok(&srv);

    /* 2. Garbage after the last record: a frame header announcing 200
     * bytes of payload, then only 25 bytes of noise. */
    unsigned char junk[37] = {'S', 'S', 'E', 'J', 200, 0, 0, 0};
    for (size_t i = 8; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 37 + 11);
    newest_segment(t.data, seg, sizeof seg);
    append_bytes(seg, junk, sizeof junk);
    srv = start_ok(args);
    journal_stats(&srv, &js);
    if (js.have_log) {
        assert_non_null(strstr(js.log, "truncating torn tail"));
        assert_int_equal(js.torn, sizeof junk);
        assert_int_equal(js.records, n);
        assert_int_equal(js.corrupt, 0);
    }
    expect_history(srv.port, room, 1, m, n, "after appending garbage");
    pub_init(&p, srv.port);
    m[n].room = "torn";
    m[n].event = "after-garbage";
    make_padded(&m[n], 200, 3);
    post_msg_ok(&p, &m[n]);
    assert_true(m[n].id > m[n - 1].id);
    n++;
    pub_close(&p);
    stop_ok(&srv);

    /* It all survives another restart, with nothing left to repair. */
    srv = start_ok(args);
    journal_stats(&srv, &js);
    if (js.have_log) {
        assert_int_equal(js.records, n);
        assert_int_equal(js.torn, 0);
        assert_int_equal(js.corrupt, 0);
    }
    expect_history(srv.port, room, 1, m, n, "after repairs and another restart");
    stop_ok(&srv);

    /* 3. A corrupt record in the middle (one data byte flipped) is skipped
     * and reported; the records around it are kept. */
    newest_segment(t.data, seg, sizeof seg);
    scan_segment(seg, &sc);
    assert_true(sc.clean && sc.records == n);
    size_t victim = 7;
    {
        int fd = open(seg, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        off_t at = (off_t)(sc.offsets[victim] + FRAME_HDR + PAYLOAD_HDR + 4 + 3); /* in data */
        unsigned char b;
        assert_int_equal(pread(fd, &b, 1, at), 1);
        b ^= 0x20;
        assert_int_equal(pwrite(fd, &b, 1, at), 1);
        close(fd);
    }
    srv = start_ok(args);
    journal_stats(&srv, &js);
    if (js.have_log) {
        assert_non_null(strstr(js.log, "corrupt record"));
        assert_int_equal(js.corrupt, 1);
        assert_int_equal(js.torn, 0);
        assert_int_equal(js.records, n - 1);
    }
    struct msg rest[N + 8];
    for (size_t i = 0, k = 0; i < n; i++)
        if (i != victim)
            rest[k++] = m[i];
    expect_history(srv.port, room, 1, rest, n - 1, "after corrupting a middle record");
    stop_ok(&srv);
    tmp_remove(&t);
}

/* ============================================================ 4. disk full */

/* Posts padded messages to room `room` until one is refused with 503 (at
 * most `max`), then `extra` more that must be refused too. The accepted ones
 * go to m[]; returns how many. Checks each 503 is a JSON error. */
static size_t post_until_full(struct pub *p, const char *room, struct msg *m, size_t max,
                              size_t pad, size_t first_n, size_t *refused)
{
    size_t acked = 0;
    *refused = 0;
    for (size_t i = 0; i < max && *refused < 4; i++) {
        struct msg tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.room = room;
        make_padded(&tmp, first_n + i, pad);
        struct itest_response r;
        uint64_t id = 0;
        int st = pub_post(p, room, NULL, tmp.data, tmp.len, &id, &r);
        if (st == 202) {
            if (*refused)
                fail_msg("message %zu accepted after a refusal, with nothing freed", i);
            tmp.id = id;
            m[acked++] = tmp;
        } else if (st == 503) {
            if (!itest_is_json_error(&r) ||
                !itest_header_starts(&r, "Content-Type", "application/json"))
                fail_msg("503 without a JSON error: %.200s", r.body);
            (*refused)++;
        } else {
            fail_msg("message %zu: status %d", i, st);
        }
        if (st > 0)
            itest_response_free(&r);
    }
    return acked;
}

static void expect_healthy(int port)
{
    struct itest_response r;
    assert_int_equal(itest_request(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
    assert_int_equal(r.status, 200);
    itest_response_free(&r);
}

static void test_disk_full_fsize(void **state)
{
    (void)state;
    enum { MAXN = 400 };
    const rlim_t limit = 64 * 1024;
    struct tmp t;
    tmp_make(&t, "full");
    const char *const args[] = {"--data-dir", t.data, "--segment-bytes", "1048576", NULL};
    const char *const room[] = {"full"};
    struct msg *m = calloc(MAXN + 8, sizeof *m);
    assert_non_null(m);

    struct itest_server srv = start_fsize(args, limit);
    struct itest_sub live;
    sub_start_ok(&live, srv.port, "/messages?room=full", NULL);
    struct pub p;
    pub_init(&p, srv.port);
    size_t refused = 0;
    size_t acked = post_until_full(&p, "full", m, MAXN, 600, 0, &refused);
    pub_close(&p);
    printf("disk full (RLIMIT_FSIZE %llu): %zu messages accepted, then %zu refused with 503\n",
           (unsigned long long)limit, acked, refused);
    assert_true(acked > 10);
    assert_int_equal(refused, 4);

    /* Still serving: health, the open stream got exactly the accepted ones. */
    expect_healthy(srv.port);
    struct msg **sel = calloc(MAXN + 8, sizeof *sel);
    assert_non_null(sel);
    size_t ns = select_room(m, acked, "full", 0, sel);
    expect_exactly(&live, sel, ns, "subscriber during the disk-full episode");
    assert_int_equal(live.state, ITEST_SUB_STREAM);
    char log[16384];
    if (read_log(&srv, log, sizeof log))
        assert_non_null(strstr(log, "File too large"));

    /* On disk: exactly the accepted records, within the limit. */
    char seg[256];
    newest_segment(t.data, seg, sizeof seg);
    struct seg_scan sc;
    scan_segment(seg, &sc);
    uint64_t want_bytes = 0;
    for (size_t i = 0; i < acked; i++)
        want_bytes += msg_frame(&m[i]);
    assert_true(sc.clean);
    assert_int_equal(sc.records, acked);
    assert_int_equal(sc.bytes, want_bytes);
    assert_true(sc.bytes <= limit);
    itest_sub_close(&live);
    stop_ok(&srv);

    /* Space returns (no limit): all accepted messages, none refused, no
     * corruption; publishing works again. */
    srv = start_ok(args);
    struct jstats js;
    journal_stats(&srv, &js);
    if (js.have_log) {
        assert_int_equal(js.records, acked);
        assert_int_equal(js.corrupt, 0);
        assert_int_equal(js.torn, 0);
        assert_false(log_reports_damage(js.log));
    }
    expect_history(srv.port, room, 1, m, acked, "after the disk-full episode");
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", m[acked - 1].id);
    sub_start_ok(&live, srv.port, "/messages?room=full", hdr);
    pub_init(&p, srv.port);
    size_t n = acked;
    for (size_t i = 0; i < 5; i++, n++) {
        m[n].room = "full";
        make_padded(&m[n], 1000 + i, 600);
        post_msg_ok(&p, &m[n]);
        assert_true(m[n].id > m[n - 1].id);
    }
    pub_close(&p);
    expect_exactly(&live, sel, select_room(m, n, "full", m[acked - 1].id, sel),
                   "resumed subscriber once space returned");
    itest_sub_close(&live);
    stop_ok(&srv);
    srv = start_ok(args);
    journal_stats(&srv, &js);
    if (js.have_log) {
        assert_int_equal(js.records, n);
        assert_int_equal(js.corrupt, 0);
        assert_int_equal(js.torn, 0);
    }
    expect_history(srv.port, room, 1, m, n, "after recovery and another restart");
    stop_ok(&srv);
    free(sel);
    free(m);
    tmp_remove(&t);
}

static void write_filler(const char *path, size_t bytes)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        fail_msg("create %s: %s", path, strerror(errno));
    char block[4096];
    memset(block, 'f', sizeof block);
    for (size_t done = 0; done < bytes; done += sizeof block)
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block)
            fail_msg("write %s: %s", path, strerror(errno));
    close(fd);
}

static void test_disk_full_tmpfs(void **state)
{
    (void)state;
    enum { MAXN = 600 };
    struct tmp t;
    tmp_make(&t, "enospc");
    char mnt[96], filler[160], data[160];
    snprintf(mnt, sizeof mnt, "%s/mnt", t.root);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,mode=0700") != 0) {
        printf("disk full (ENOSPC on tmpfs): skipped, cannot mount a tmpfs: %s\n", strerror(errno));
        tmp_remove(&t);
        skip();
    }
    snprintf(tmp_mounts[t.slot >= 0 ? t.slot : 0], sizeof tmp_mounts[0], "%s", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    snprintf(data, sizeof data, "%s/data", mnt);
    write_filler(filler, 96 * 1024);

    const char *const args[] = {"--data-dir", data, "--segment-bytes", "1048576", NULL};
    const char *const room[] = {"nospc"};
    struct msg *m = calloc(MAXN + 40, sizeof *m);
    struct msg **sel = calloc(MAXN + 40, sizeof *sel);
    assert_non_null(m);
    assert_non_null(sel);
    struct itest_server srv = start_ok(args);
    struct itest_sub live;
    sub_start_ok(&live, srv.port, "/messages?room=nospc", NULL);
    struct pub p;
    pub_init(&p, srv.port);
    size_t refused = 0;
    size_t acked = post_until_full(&p, "nospc", m, MAXN, 1000, 0, &refused);
    printf("disk full (ENOSPC, 256 KiB tmpfs): %zu messages accepted, then %zu refused with 503\n",
           acked, refused);
    assert_true(acked > 10);
    assert_int_equal(refused, 4);
    expect_healthy(srv.port);
    expect_exactly(&live, sel, select_room(m, acked, "nospc", 0, sel),
                   "subscriber while the disk is full");
    char log[16384];
    if (read_log(&srv, log, sizeof log))
        assert_non_null(strstr(log, "No space left on device"));
    char seg[256];
    newest_segment(data, seg, sizeof seg);
    struct seg_scan sc;
    scan_segment(seg, &sc);
    assert_true(sc.clean); /* a partial write was cut off */
    assert_int_equal(sc.records, acked);

    /* Space returns while the server runs: publishing works again at once. */
    assert_int_equal(unlink(filler), 0);
    size_t n = acked;
    for (size_t i = 0; i < 20; i++, n++) {
        m[n].room = "nospc";
        make_padded(&m[n], 5000 + i, 1000);
        post_msg_ok(&p, &m[n]);
        assert_true(m[n].id > m[n - 1].id);
    }
    pub_close(&p);
    expect_exactly(&live, sel, select_room(m, n, "nospc", 0, sel),
                   "subscriber after space returned");
    itest_sub_close(&live);
    stop_ok(&srv);

    srv = start_ok(args);
    struct jstats js;
    journal_stats(&srv, &js);
    if (js.have_log) {
        assert_int_equal(js.records, n);
        assert_int_equal(js.corrupt, 0);
        assert_int_equal(js.torn, 0);
    }
    expect_history(srv.port, room, 1, m, n, "after ENOSPC and a restart");
    stop_ok(&srv);
    free(sel);
    free(m);
    if (umount2(mnt, 0) != 0)
        umount2(mnt, MNT_DETACH);
    if (t.slot >= 0)
        tmp_mounts[t.slot][0] = 0;
    tmp_remove(&t);
}

/* ============================================================ 5. retention */

/* Retiring old segments keeps each room's last --history messages: a quiet
 * room whose messages are only in the oldest segments still has them after
 * a busy room pushed those segments out, and after a restart. */
static void test_retention_keeps_quiet_rooms(void **state)
{
    (void)state;
    enum { QUIET = 5, BUSY = 1200 };
    struct tmp t;
    tmp_make(&t, "compact");
    const char *const args[] = {
        "--data-dir", t.data, "--segment-bytes", "4096", "--retain-bytes", "16384", "--history",
        "20",         NULL};
    struct msg *m = calloc(QUIET + BUSY, sizeof *m);
    struct msg *quiet[QUIET];
    assert_non_null(m);
    struct itest_server srv = start_ok(args);
    struct pub p;
    pub_init(&p, srv.port);
    for (size_t i = 0; i < QUIET + BUSY; i++) {
        m[i].room = i < QUIET ? "quiet" : "busy";
        make_padded(&m[i], i, 150);
        post_msg_ok(&p, &m[i]);
        if (i < QUIET) {
            quiet[i] = &m[i];
        }
    }
    pub_close(&p);
    size_t files;
    uint64_t bytes = dir_bytes(t.data, &files);
    stop_ok(&srv);
    char names[64][32];
    size_t nseg = list_segments(t.data, names, 64);
    uint64_t first_id = 0;
    size_t on_disk = count_records(t.data, &first_id);
    printf("compaction: %d quiet + %d busy messages; %" PRIu64 " bytes in %zu segments, %zu "
           "records on disk, oldest id %" PRIu64 " (the quiet room's first: %" PRIu64 ")\n",
           QUIET, BUSY, bytes, nseg, on_disk, first_id, m[0].id);
    /* The busy room's old segments went... */
    assert_true(on_disk < QUIET + BUSY);
    assert_true(on_disk <= QUIET + 20 + 16384 / 150 + 4096 / 150 + 2);
    /* ...but the quiet room's messages were carried forward. */
    assert_int_equal(first_id, m[0].id);

    srv = start_ok(args);
    struct itest_sub s;
    sub_start_ok(&s, srv.port, "/messages?room=quiet&history=100", NULL);
    expect_exactly(&s, quiet, QUIET, "a quiet room's history after retention and a restart");
    itest_sub_close(&s);
    /* Resuming in the quiet room from its second message: the rest, no reset. */
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", m[1].id);
    sub_start_ok(&s, srv.port, "/messages?room=quiet", hdr);
    expect_exactly(&s, quiet + 2, QUIET - 2, "resume in the quiet room");
    itest_sub_close(&s);
    stop_ok(&srv);
    free(m);
    tmp_remove(&t);
}

static void test_retention(void **state)
{
    (void)state;
    enum { N = 1500, SEG = 4096, RETAIN = 16384, HISTORY = 10 };
    struct tmp t;
    tmp_make(&t, "retain");
    const char *const args[] = {
        "--data-dir", t.data, "--segment-bytes", "4096", "--retain-bytes", "16384", "--history",
        "10",         NULL};
    struct msg *m = calloc(N, sizeof *m);
    struct msg **sel = calloc(N, sizeof *sel);
    assert_non_null(m);
    assert_non_null(sel);
    struct itest_server srv = start_ok(args);
    struct pub p;
    pub_init(&p, srv.port);
    uint64_t max_bytes = 0;
    size_t max_files = 0, frame = 0;
    char first_name[32] = "";
    for (size_t i = 0; i < N; i++) {
        m[i].room = "ret";
        make_padded(&m[i], i, 180 + i % 40);
        post_msg_ok(&p, &m[i]);
        if (msg_frame(&m[i]) > frame)
            frame = msg_frame(&m[i]);
        if (i % 10 == 9 || i + 1 == N) {
            size_t files;
            uint64_t b = dir_bytes(t.data, &files);
            if (b > max_bytes)
                max_bytes = b;
            if (files > max_files)
                max_files = files;
        }
        if (i == 0) {
            char names[4][32];
            assert_int_equal(list_segments(t.data, names, 4), 1);
            memcpy(first_name, names[0], sizeof first_name);
        }
    }
    pub_close(&p);
    stop_ok(&srv);

    size_t files;
    uint64_t bytes = dir_bytes(t.data, &files);
    char names[64][32];
    size_t nseg = list_segments(t.data, names, 64);
    uint64_t first_id = 0;
    size_t on_disk = count_records(t.data, &first_id);
    printf("retention (--segment-bytes %d --retain-bytes %d): %d messages of <= %zu bytes "
           "framed; directory at most %" PRIu64 " bytes in %zu files while publishing, %" PRIu64
           " bytes in %zu segments at the end holding the newest %zu\n",
           SEG, RETAIN, N, frame, max_bytes, max_files, bytes, nseg, on_disk);
    /* Bounded: the retained segments plus the current one (which rotates
     * once it reaches --segment-bytes, so it may exceed it by one record),
     * plus what compaction carries forward: at most the room's --history
     * (here nothing, since the newest records are all in recent segments).
     * Retention runs on its own thread, one job at a time: while a job runs
     * the segments written meanwhile wait for the next one (a few, here; up
     * to 8 on a loaded machine, as when `make integration` runs two passes
     * side by side on two cores: the loop then outpaces the job's thread).
     * The whole journal of the test is some 400 KB: far above this bound. */
    assert_true(max_bytes <= (uint64_t)RETAIN + 8 * SEG + frame + HISTORY * frame);
    assert_true(bytes <= (uint64_t)RETAIN + SEG + frame + HISTORY * frame);
    assert_int_equal(nseg, files);                 /* nothing but segments */
    assert_true(strcmp(names[0], first_name) > 0); /* the first ones are gone */
    assert_true(on_disk >= (RETAIN - SEG) / frame);
    assert_true(on_disk < N);
    /* The records on disk are the newest ones. */
    assert_int_equal(first_id, m[N - on_disk].id);

    srv = start_ok(args);
    struct jstats js;
    journal_stats(&srv, &js);
    if (js.have_log) {
        assert_int_equal(js.records, on_disk);
        assert_int_equal(js.corrupt, 0);
        assert_int_equal(js.torn, 0);
        assert_int_equal(js.last_id, m[N - 1].id);
    }
    struct itest_sub s;
    sub_start_ok(&s, srv.port, "/messages?room=ret&history=100000", NULL);
    /* The ring takes the newest --history of them. */
    size_t kept = on_disk < HISTORY ? on_disk : HISTORY;
    for (size_t i = 0; i < kept; i++)
        sel[i] = &m[N - kept + i];
    expect_exactly(&s, sel, kept, "history after retention and a restart");
    itest_sub_close(&s);
    /* Resuming from a deleted message: told so (reset to the oldest kept),
     * then everything kept. */
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", m[0].id);
    sub_start_ok(&s, srv.port, "/messages?room=ret", hdr);
    if (!itest_sub_wait(&s, kept + 1, itest_ms(5000)))
        fail_msg("resume from a deleted id: %zu events", s.events.count);
    const struct ssep_event *ev = &s.events.ev[0];
    char want_data[32];
    snprintf(want_data, sizeof want_data, "%" PRIu64, m[N - kept].id);
    if (strcmp(ev->type, "reset") != 0 || strcmp(ev->data, want_data) != 0) {
        itest_print_events("resume from a deleted id", &s.events, 0, 5);
        fail_msg("want a reset event to %s first", want_data);
    }
    assert_int_equal(itest_event_id(&s.events.ev[1]), m[N - kept].id);
    assert_int_equal(itest_event_id(&s.events.ev[kept]), m[N - 1].id);
    itest_sub_close(&s);
    stop_ok(&srv);
    free(sel);
    free(m);
    tmp_remove(&t);
}

/* --retain-records: whole old segments go once the newer ones hold that
 * many records; and a replay restores only the last --history per room. */
static void test_retention_records(void **state)
{
    (void)state;
    enum { N = 600, SEG = 4096, KEEP = 50, HISTORY = 20 };
    struct tmp t;
    tmp_make(&t, "retrec");
    const char *const args[] = {
        "--data-dir", t.data, "--segment-bytes", "4096", "--retain-records", "50", "--history",
        "20",         NULL};
    struct msg *m = calloc(N, sizeof *m);
    struct msg **sel = calloc(N, sizeof *sel);
    assert_non_null(m);
    assert_non_null(sel);
    struct itest_server srv = start_ok(args);
    struct pub p;
    pub_init(&p, srv.port);
    size_t min_frame = SIZE_MAX;
    for (size_t i = 0; i < N; i++) {
        m[i].room = "rr";
        make_padded(&m[i], i, 180 + i % 40);
        post_msg_ok(&p, &m[i]);
        if (msg_frame(&m[i]) < min_frame)
            min_frame = msg_frame(&m[i]);
    }
    pub_close(&p);
    stop_ok(&srv);

    uint64_t first_id = 0;
    size_t on_disk = count_records(t.data, &first_id);
    size_t per_seg = SEG / min_frame + 2; /* most records one segment holds */
    printf("retention (--retain-records %d --segment-bytes %d): %d messages, %zu kept on disk\n",
           KEEP, SEG, N, on_disk);
    assert_true(on_disk >= KEEP);
    /* Compaction runs on a thread, one job at a time, so on a busy machine
     * retention may still be waiting for a running job when the last
     * message arrives: a clean stop finishes it (journal_close). */
    assert_true(on_disk < KEEP + per_seg);
    assert_int_equal(first_id, m[N - on_disk].id); /* the newest ones */

    srv = start_ok(args);
    struct jstats js;
    journal_stats(&srv, &js);
    if (js.have_log) {
        assert_int_equal(js.records, on_disk);
        assert_int_equal(js.corrupt, 0);
        assert_int_equal(js.torn, 0);
    }
    struct itest_sub s;
    sub_start_ok(&s, srv.port, "/messages?room=rr&history=1000", NULL);
    for (size_t i = 0; i < HISTORY; i++)
        sel[i] = &m[N - HISTORY + i];
    expect_exactly(&s, sel, HISTORY, "the last --history messages after a restart");
    itest_sub_close(&s);
    stop_ok(&srv);
    free(sel);
    free(m);
    tmp_remove(&t);
}

/* ==================================================== pipelined publishing */

/*
 * Several POSTs written at once on one connection with --fsync batch: each
 * answer waits for its group commit, and the next request is then handled
 * (on the next loop iteration, with the next commit) without anything else
 * happening on the server. A subscriber gets them all, in order. And a POST
 * that asks to close the connection (or an HTTP/1.0 one) still gets its
 * answer before the close.
 */
static void test_batch_pipelined_posts(void **state)
{
    (void)state;
    enum { N = 5 };
    struct tmp t;
    tmp_make(&t, "pipe");
    const char *const args[] = {"--data-dir", t.data, "--fsync", "batch", NULL};
    struct itest_server srv = start_ok(args);
    char req[N * 200];
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(req + len, sizeof req - len,
                                "POST /message?room=pipe HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                "application/json\r\nContent-Length: 7\r\n\r\n{\"n\":%d}",
                                i);
    struct itest_sub sub;
    assert_int_equal(itest_sub_open(&sub, srv.port, "/messages?room=pipe", itest_timeout()), 0);
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, srv.port), 0);
    assert_true(itest_conn_sendn(&c, req, len));
    uint64_t prev = 0;
    for (int i = 0; i < N; i++) {
        struct itest_response r;
        if (itest_read_response(&c, &r, 0, itest_ms(3000)) != 0)
            fail_msg("pipelined POST %d of %d: no answer", i + 1, N);
        uint64_t id = 0;
        assert_int_equal(r.status, 202);
        assert_true(itest_json_u64(r.body, "id", &id));
        assert_true(id > prev);
        prev = id;
        itest_response_free(&r);
    }
    itest_conn_close(&c);
    assert_true(itest_sub_wait(&sub, N, itest_ms(3000)));
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"n\":%d}", i);
        assert_string_equal(sub.events.ev[i].data, want);
    }
    itest_sub_close(&sub);

    static const char *const closing[] = {
        "POST /message?room=pipe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Length: 7\r\n\r\n{\"c\":1}",
        "POST /message?room=pipe HTTP/1.0\r\nContent-Length: 7\r\n\r\n{\"c\":2}",
    };
    for (size_t i = 0; i < sizeof closing / sizeof closing[0]; i++) {
        struct itest_response r;
        assert_int_equal(itest_request(srv.port, closing[i], &r), 0);
        if (r.status != 202)
            fail_msg("closing POST %zu under --fsync batch: status %d", i, r.status);
        assert_true(r.closed);
        itest_response_free(&r);
    }
    stop_ok(&srv);
    tmp_remove(&t);
}

/* =========================================================== 6. throughput */

/* Publishing 2,000 messages one at a time (each POST waits for its answer)
 * with each --fsync mode, and without a journal for reference. The disk is
 * shared with whatever else runs, so the modes take turns in rounds of 500
 * to share its moods fairly. */
static void test_throughput(void **state)
{
    (void)state;
    enum { N = 2000, ROUND = 500, MODES = 4 };
    static const char *const modes[MODES] = {"always", "batch", "never", NULL};
    struct tmp t[MODES];
    struct itest_server srv[MODES];
    struct pub p[MODES];
    int64_t spent_us[MODES] = {0};
    for (size_t k = 0; k < MODES; k++) {
        tmp_make(&t[k], "tp");
        const char *const with[] = {"--data-dir", t[k].data, "--fsync", modes[k], NULL};
        const char *const without[] = {NULL};
        srv[k] = start_ok(modes[k] ? with : without);
        pub_init(&p[k], srv[k].port);
    }
    struct msg m;
    memset(&m, 0, sizeof m);
    m.room = "tp";
    for (size_t done = 0; done < N; done += ROUND) {
        for (size_t k = 0; k < MODES; k++) {
            int64_t t0 = now_us();
            for (size_t i = done; i < done + ROUND; i++) {
                make_padded(&m, i, 64);
                post_msg_ok(&p[k], &m);
            }
            spent_us[k] += now_us() - t0;
        }
    }
    double rate[MODES];
    for (size_t k = 0; k < MODES; k++) {
        pub_close(&p[k]);
        stop_ok(&srv[k]);
        rate[k] = (double)N * 1e6 / (double)(spent_us[k] > 0 ? spent_us[k] : 1);
        if (modes[k]) {
            uint64_t first = 0;
            assert_int_equal(count_records(t[k].data, &first), N);
        }
        tmp_remove(&t[k]);
    }
    printf("publish throughput, %d messages one in flight (journal in /tmp): --fsync always %.0f "
           "msg/s, batch %.0f msg/s, never %.0f msg/s; without --data-dir %.0f msg/s\n",
           N, rate[0], rate[1], rate[2], rate[3]);
}

/* ================================================================== main */

int main(void)
{
    itest_init(300);
    atexit(cleanup_at_exit);
    /* JTEST_ONLY=<pattern>: run only the matching tests (e.g. "*crash*"). */
    const char *only = getenv("JTEST_ONLY");
    if (only && *only)
        cmocka_set_test_filter(only);
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_always),
        cmocka_unit_test(test_round_trip_batch),
        cmocka_unit_test(test_round_trip_never),
        cmocka_unit_test(test_crash_kill9),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_disk_full_fsize),
        cmocka_unit_test(test_disk_full_tmpfs),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_retention_keeps_quiet_rooms),
        cmocka_unit_test(test_retention_records),
        cmocka_unit_test(test_batch_pipelined_posts),
        cmocka_unit_test(test_throughput),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
