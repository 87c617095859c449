/*
 * Unit tests for src/journal.c.
 *
 * Every test works in its own mkdtemp directory under /tmp (removed at the
 * end) and checks what reaches the disk as well as what the API reports:
 * replays are compared record by record with what was appended, file sizes
 * and segment names are read back with stat/readdir, and damage is made by
 * editing the segment files directly (truncating, flipping bytes, appending
 * garbage). Failure paths are checked for leaks with the lowest-free-fd trick
 * and, under ASan, for memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"

#define MAX_ROOM  64
#define MAX_EVENT 64
#define MAX_DATA  (64u << 20)
#define FRAME_HDR 12
#define PAYLOAD   14

/* ------------------------------------------------------------ temp dirs */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    assert_int_equal(nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

struct tdir {
    char root[64]; /* the mkdtemp directory */
    char dir[128]; /* the journal directory inside it (created by journal_open) */
};

static void tdir_make(struct tdir *t)
{
    strcpy(t->root, "/tmp/journal-test-XXXXXX");
    assert_non_null(mkdtemp(t->root));
    snprintf(t->dir, sizeof t->dir, "%s/journal", t->root);
}

static void tdir_free(struct tdir *t)
{
    rm_rf(t->root);
}

static void seg_path(char *out, size_t cap, const char *dir, uint64_t id)
{
    snprintf(out, cap, "%s/%020" PRIu64 ".log", dir, id);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

static off_t seg_size(const char *dir, uint64_t id)
{
    char p[256];
    seg_path(p, sizeof p, dir, id);
    return file_size(p);
}

/* The directory's entries, sorted and comma separated ("" when empty). */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_dir(const char *dir, char *out, size_t cap)
{
    char *names[256];
    size_t n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        assert_true(n < 256);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            strncat(out, ",", cap - strlen(out) - 1);
        }
        strncat(out, names[i], cap - strlen(out) - 1);
        free(names[i]);
    }
}

/* Segment names as a list of ids, e.g. "1,4,7" (other files are not expected). */
static void list_segs(const char *dir, char *out, size_t cap)
{
    char raw[8192];
    list_dir(dir, raw, sizeof raw);
    out[0] = '\0';
    char *save = NULL;
    for (char *tok = strtok_r(raw, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        assert_int_equal(strlen(tok), 24);
        assert_string_equal(tok + 20, ".log");
        char num[32];
        snprintf(num, sizeof num, "%s%llu", out[0] ? "," : "", strtoull(tok, NULL, 10));
        strncat(out, num, cap - strlen(out) - 1);
    }
}

static void *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    size_t n = (size_t)sb.st_size;
    char *b = malloc(n > 0 ? n : 1);
    assert_non_null(b);
    assert_int_equal(read(fd, b, n), (ssize_t)n);
    close(fd);
    *len = n;
    return b;
}

static void write_file(const char *path, const void *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, len), (ssize_t)len);
    close(fd);
}

static void append_file(const char *path, const void *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, len), (ssize_t)len);
    close(fd);
}

/* The lowest free descriptor: if it moved, something leaked one. */
static int next_fd(void)
{
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

/* ------------------------------------------------------------ records */

/* A record with owned storage, generated from its id so that expectations
 * can be rebuilt at any time. */
struct gen {
    uint64_t id;
    char room[MAX_ROOM];
    size_t room_len;
    char event[MAX_EVENT];
    size_t event_len; /* 0: NULL event */
    char data[10000];
    size_t data_len;
};

/* Varied records: default/short/64-byte rooms, NULL/short/64-byte events,
 * empty, text, binary (every byte value incl. NUL and newlines) data. */
static void gen_varied(uint64_t id, struct gen *g)
{
    memset(g, 0, sizeof *g);
    g->id = id;
    switch (id % 4) {
    case 0:
        g->room_len = 0;
        break;
    case 1:
        memcpy(g->room, "alpha", 5);
        g->room_len = 5;
        break;
    case 2:
        for (size_t k = 0; k < MAX_ROOM; k++) {
            g->room[k] = (char)('a' + k % 26);
        }
        g->room_len = MAX_ROOM;
        break;
    default:
        g->room_len = (size_t)snprintf(g->room, sizeof g->room, "r%" PRIu64, id);
        break;
    }
    switch (id % 3) {
    case 0:
        g->event_len = 0;
        break;
    case 1:
        memcpy(g->event, "update", 6);
        g->event_len = 6;
        break;
    default:
        for (size_t k = 0; k < MAX_EVENT; k++) {
            g->event[k] = (char)('A' + k % 26);
        }
        g->event_len = MAX_EVENT;
        break;
    }
    switch (id % 5) {
    case 0:
        g->data_len = 0;
        break;
    case 1:
        g->data_len = (size_t)snprintf(g->data, sizeof g->data, "hello %" PRIu64, id);
        break;
    case 2:
        for (size_t k = 0; k < 256; k++) {
            g->data[k] = (char)(k + id);
        }
        g->data_len = 256;
        break;
    case 3:
        g->data[0] = '\n';
        g->data_len = 1;
        break;
    default:
        for (size_t k = 0; k < 300; k++) {
            g->data[k] = (char)('0' + (k + id) % 10);
        }
        g->data_len = 300;
        break;
    }
}

/* Same-size records, for rotation and retention arithmetic. */
#define FIXED_DATA  100
#define FIXED_FRAME (FRAME_HDR + PAYLOAD + 4 + FIXED_DATA)

static void gen_fixed(uint64_t id, struct gen *g)
{
    memset(g, 0, sizeof *g);
    g->id = id;
    memcpy(g->room, "room", 4);
    g->room_len = 4;
    for (size_t k = 0; k < FIXED_DATA; k++) {
        g->data[k] = (char)(id * 7 + k);
    }
    g->data_len = FIXED_DATA;
}

/* Bulky records (about 10 KB, lengths varying so that record boundaries
 * fall all over the reader's 1 MiB chunks). */
static void gen_bulk(uint64_t id, struct gen *g)
{
    memset(g, 0, offsetof(struct gen, data));
    g->id = id;
    g->room_len = (size_t)snprintf(g->room, sizeof g->room, "bulk%" PRIu64, id % 10);
    g->data_len = sizeof g->data - (id % 7) * 13;
    for (size_t k = 0; k < g->data_len; k++) {
        g->data[k] = (char)('a' + (id + k) % 26);
    }
}

static size_t frame_size(const struct gen *g)
{
    return FRAME_HDR + PAYLOAD + g->room_len + g->event_len + g->data_len;
}

static struct journal_record view(const struct gen *g)
{
    struct journal_record r = {
        .id = g->id,
        .room = g->room,
        .room_len = g->room_len,
        .event = g->event_len ? g->event : NULL,
        .event_len = g->event_len,
        .data = g->data,
        .data_len = g->data_len,
    };
    return r;
}

typedef void gen_fn(uint64_t id, struct gen *g);

static void append_ok(struct journal *j, gen_fn *gen, uint64_t id)
{
    struct gen g;
    gen(id, &g);
    struct journal_record r = view(&g);
    assert_int_equal(journal_append(j, &r), 0);
}

/* ------------------------------------------------------------ replay capture */

struct copy {
    uint64_t id;
    char *room, *event, *data;
    size_t room_len, event_len, data_len;
    bool event_null;
};

struct seen {
    struct copy *v;
    size_t n, cap;
    size_t stop_at; /* return -1 on this record (1-based); 0: never */
};

static char *dup_bytes(const char *p, size_t n)
{
    char *b = malloc(n + 1);
    assert_non_null(b);
    if (n > 0) {
        memcpy(b, p, n);
    }
    b[n] = '\0';
    return b;
}

static int capture(void *arg, const struct journal_record *rec)
{
    struct seen *s = arg;
    /* What the header promises about every replayed record. */
    assert_non_null(rec->room);
    assert_true(rec->room_len <= MAX_ROOM);
    assert_true(rec->event_len <= MAX_EVENT);
    assert_true((rec->event == NULL) == (rec->event_len == 0));
    assert_true(rec->data_len <= MAX_DATA);
    assert_true(rec->data != NULL || rec->data_len == 0);
    if (s->n > 0) {
        assert_true(rec->id > s->v[s->n - 1].id);
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = realloc(s->v, s->cap * sizeof s->v[0]);
        assert_non_null(s->v);
    }
    struct copy *c = &s->v[s->n++];
    c->id = rec->id;
    c->room = dup_bytes(rec->room, rec->room_len);
    c->room_len = rec->room_len;
    c->event = dup_bytes(rec->event ? rec->event : "", rec->event_len);
    c->event_len = rec->event_len;
    c->event_null = rec->event == NULL;
    c->data = dup_bytes(rec->data, rec->data_len);
    c->data_len = rec->data_len;
    return s->stop_at != 0 && s->n == s->stop_at ? -1 : 0;
}

static void seen_clear(struct seen *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].room);
        free(s->v[i].event);
        free(s->v[i].data);
    }
    free(s->v);
    memset(s, 0, sizeof *s);
}

static void expect_copy(const struct copy *c, const struct gen *g)
{
    assert_int_equal(c->id, g->id);
    assert_int_equal(c->room_len, g->room_len);
    assert_memory_equal(c->room, g->room, g->room_len);
    assert_int_equal(c->event_len, g->event_len);
    assert_int_equal(c->event_null, g->event_len == 0);
    assert_memory_equal(c->event, g->event, g->event_len);
    assert_int_equal(c->data_len, g->data_len);
    assert_memory_equal(c->data, g->data, g->data_len);
}

/* Checks that the replay was exactly the records with the given ids. */
static void expect_ids(const struct seen *s, gen_fn *gen, const uint64_t *ids, size_t n)
{
    assert_int_equal(s->n, n);
    for (size_t i = 0; i < n; i++) {
        struct gen g;
        gen(ids[i], &g);
        expect_copy(&s->v[i], &g);
    }
}

/* ... the ids first..last (inclusive) except `skip` (0: none). */
static void expect_range(const struct seen *s, gen_fn *gen, uint64_t first, uint64_t last,
                         uint64_t skip)
{
    uint64_t ids[1024];
    size_t n = 0;
    for (uint64_t id = first; id <= last; id++) {
        if (id != skip) {
            assert_true(n < 1024);
            ids[n++] = id;
        }
    }
    expect_ids(s, gen, ids, n);
}

static struct journal_options opts_for(const char *dir)
{
    struct journal_options o = {.dir = dir, .segment_bytes = 1u << 30};
    return o;
}

static struct journal *open_ok(const struct journal_options *o, struct seen *s,
                               struct journal_stats *st)
{
    char err[256] = "";
    seen_clear(s);
    memset(st, 0xA5, sizeof *st); /* every field must be written */
    struct journal *j = journal_open(o, capture, s, st, err, sizeof err);
    if (j == NULL) {
        fail_msg("journal_open(%s): %s", o->dir, err);
    }
    return j;
}

/* Writes n records 1..n with gen into a fresh journal and closes it. */
static void build(const struct journal_options *o, gen_fn *gen, uint64_t n)
{
    struct seen s = {0};
    struct journal_stats st;
    struct journal *j = open_ok(o, &s, &st);
    for (uint64_t id = 1; id <= n; id++) {
        append_ok(j, gen, id);
    }
    journal_close(j);
    seen_clear(&s);
}

/* ------------------------------------------------------------ crc32c */

static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

static void test_crc32c(void **state)
{
    (void)state;
    uint8_t b[32];

    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c(0, "", 0), 0);
    assert_int_equal(crc32c(0, NULL, 0), 0);
    memset(b, 0, sizeof b);
    assert_int_equal(crc32c(0, b, 32), 0x8A9136AAu);
    /* RFC 3720 (iSCSI) B.4 vectors */
    memset(b, 0xFF, sizeof b);
    assert_int_equal(crc32c(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) {
        b[i] = (uint8_t)i;
    }
    assert_int_equal(crc32c(0, b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) {
        b[i] = (uint8_t)(31 - i);
    }
    assert_int_equal(crc32c(0, b, 32), 0x113FDB5Cu);

    /* Slicing-by-8 against bit-at-a-time at every alignment and tail
     * length, and chaining at every split point. */
    uint8_t buf[1100];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; len < 80; len++) {
            assert_int_equal(crc32c(0, buf + off, len), crc_bitwise(0, buf + off, len));
        }
        assert_int_equal(crc32c(0, buf + off, 1090), crc_bitwise(0, buf + off, 1090));
    }
    uint32_t whole = crc32c(0, buf, 200);
    for (size_t cut = 0; cut <= 200; cut++) {
        assert_int_equal(crc32c(crc32c(0, buf, cut), buf + cut, 200 - cut), whole);
    }
}

/* ------------------------------------------------------------ basics */

static void test_empty_journal(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/a/b//c/", t.root); /* mkdir -p, odd slashes */
    struct journal_options o = opts_for(dir);
    struct seen s = {0};
    struct journal_stats st;
    int fd0 = next_fd();

    struct journal *j = open_ok(&o, &s, &st);
    assert_int_equal(s.n, 0);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.corrupt, 0);
    assert_int_equal(st.truncated_bytes, 0);
    assert_int_equal(st.last_id, 0);
    assert_int_equal(st.segments, 0);
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    char names[512];
    snprintf(names, sizeof names, "%s/a", t.root);
    assert_int_equal(stat(names, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    /* The first segment is created lazily, by the first append. */
    list_dir(dir, names, sizeof names);
    assert_string_equal(names, "");
    assert_false(journal_dirty(j));
    assert_int_equal(journal_sync(j), 0);
    journal_close(j);
    list_dir(dir, names, sizeof names);
    assert_string_equal(names, "");
    assert_int_equal(next_fd(), fd0);

    /* Reopening an existing, empty journal is just as empty. */
    j = open_ok(&o, &s, &st);
    assert_int_equal(st.segments, 0);
    append_ok(j, gen_varied, 42);
    list_dir(dir, names, sizeof names);
    assert_string_equal(names, "00000000000000000042.log");
    journal_close(j);
    journal_close(NULL);
    assert_int_equal(next_fd(), fd0);
    seen_clear(&s);
    tdir_free(&t);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    struct seen s = {0};
    struct journal_stats st;

    /* Ids need not be contiguous, only increasing. */
    uint64_t ids[90];
    for (size_t i = 0; i < 90; i++) {
        ids[i] = 3 * i + 1;
    }
    struct journal *j = open_ok(&o, &s, &st);
    for (size_t i = 0; i < 60; i++) {
        append_ok(j, gen_varied, ids[i]);
        assert_true(journal_dirty(j));
    }
    journal_close(j);

    j = open_ok(&o, &s, &st);
    expect_ids(&s, gen_varied, ids, 60);
    assert_int_equal(st.records, 60);
    assert_int_equal(st.last_id, ids[59]);
    assert_int_equal(st.corrupt, 0);
    assert_int_equal(st.truncated_bytes, 0);
    assert_int_equal(st.segments, 1);
    assert_false(journal_dirty(j));
    size_t total = 0;
    for (size_t i = 0; i < 60; i++) {
        struct gen g;
        gen_varied(ids[i], &g);
        total += frame_size(&g);
    }
    assert_int_equal(seg_size(t.dir, 1), total);

    /* Appending after a reopen continues the same journal. */
    for (size_t i = 60; i < 90; i++) {
        append_ok(j, gen_varied, ids[i]);
    }
    journal_close(j);
    j = open_ok(&o, &s, &st);
    expect_ids(&s, gen_varied, ids, 90);
    assert_int_equal(st.last_id, ids[89]);
    journal_close(j);

    /* Without a replay callback the journal is still scanned. */
    char err[128];
    j = journal_open(&o, NULL, NULL, &st, err, sizeof err);
    assert_non_null(j);
    assert_int_equal(st.records, 90);
    journal_close(j);
    seen_clear(&s);
    tdir_free(&t);
}

static void test_append_rejects(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    struct seen s = {0};
    struct journal_stats st;
    struct journal *j = open_ok(&o, &s, &st);
    struct gen g;

    /* Nothing is created by a rejected first append. */
    gen_varied(0, &g);
    struct journal_record r = view(&g);
    errno = 0;
    assert_int_equal(journal_append(j, &r), -1); /* ids start above 0 */
    assert_int_equal(errno, EINVAL);
    char names[256];
    list_dir(t.dir, names, sizeof names);
    assert_string_equal(names, "");

    append_ok(j, gen_varied, 5);
    off_t size = seg_size(t.dir, 5);
    struct {
        uint64_t id;
        size_t room_len, event_len, data_len;
        bool null_room, null_event, null_data;
    } bad[] = {
        {5, 1, 0, 0, false, false, false},             /* id repeated */
        {4, 1, 0, 0, false, false, false},             /* id decreasing */
        {6, MAX_ROOM + 1, 0, 0, false, false, false},  /* room too long */
        {6, 1, MAX_EVENT + 1, 0, false, false, false}, /* event too long */
        {6, 1, 0, MAX_DATA + 1, false, false, false},  /* data too long (never read) */
        {6, 1, 0, 0, true, false, false},              /* NULL room with a length */
        {6, 1, 3, 0, false, true, false},              /* NULL event with a length */
        {6, 1, 0, 3, false, false, true},              /* NULL data with a length */
    };
    static char big[MAX_ROOM + MAX_EVENT + 2];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct journal_record b = {
            .id = bad[i].id,
            .room = bad[i].null_room ? NULL : big,
            .room_len = bad[i].room_len,
            .event = bad[i].null_event ? NULL : big,
            .event_len = bad[i].event_len,
            .data = bad[i].null_data ? NULL : big,
            .data_len = bad[i].data_len,
        };
        errno = 0;
        assert_int_equal(journal_append(j, &b), -1);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(seg_size(t.dir, 5), size);
    }
    /* The limits themselves are fine, and NULL pointers with length 0 too. */
    struct journal_record edge = {
        .id = 6, .room = big, .room_len = MAX_ROOM, .event = big, .event_len = MAX_EVENT};
    assert_int_equal(journal_append(j, &edge), 0);
    journal_close(j);

    j = open_ok(&o, &s, &st);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.v[0].id, 5);
    assert_int_equal(s.v[1].id, 6);
    assert_int_equal(s.v[1].room_len, MAX_ROOM);
    assert_int_equal(s.v[1].event_len, MAX_EVENT);
    assert_int_equal(s.v[1].data_len, 0);
    journal_close(j);
    seen_clear(&s);
    tdir_free(&t);
}

/* The largest record allowed (64 MiB of data) goes through, and a replay
 * with one in the middle keeps its neighbours intact. */
static void test_largest_record(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    struct seen s = {0};
    struct journal_stats st;
    char *big = malloc(MAX_DATA);
    assert_non_null(big);
    for (size_t i = 0; i < MAX_DATA; i++) {
        big[i] = (char)(i * 2654435761u >> 13);
    }

    struct journal *j = open_ok(&o, &s, &st);
    append_ok(j, gen_varied, 1);
    struct journal_record r = {
        .id = 2, .room = "big", .room_len = 3, .data = big, .data_len = MAX_DATA};
    assert_int_equal(journal_append(j, &r), 0);
    append_ok(j, gen_varied, 3);
    journal_close(j);

    j = open_ok(&o, &s, &st);
    assert_int_equal(s.n, 3);
    assert_int_equal(st.corrupt, 0);
    assert_int_equal(s.v[1].id, 2);
    assert_int_equal(s.v[1].data_len, MAX_DATA);
    assert_memory_equal(s.v[1].data, big, MAX_DATA);
    struct gen g;
    gen_varied(3, &g);
    expect_copy(&s.v[2], &g);
    journal_close(j);
    free(big);
    seen_clear(&s);
    tdir_free(&t);
}

/* ------------------------------------------------------------ repair */

/*
 * Cuts the last record of a journal at every byte position: the good
 * records replay, the file is cut back to the last of them, and the journal
 * carries on appending (the appended record is replayed next time).
 */
static void torn_every_byte(uint64_t nrec)
{
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    struct seen s = {0};
    struct journal_stats st;
    char path[256];
    seg_path(path, sizeof path, t.dir, 1);

    build(&o, gen_varied, nrec);
    size_t len;
    char *orig = read_file(path, &len);
    struct gen last;
    gen_varied(nrec, &last);
    size_t start = len - frame_size(&last);

    for (size_t cut = start + 1; cut < len; cut++) {
        write_file(path, orig, cut);
        struct journal *j = open_ok(&o, &s, &st);
        expect_range(&s, gen_varied, 1, nrec - 1, 0);
        assert_int_equal(st.records, nrec - 1);
        assert_int_equal(st.last_id, nrec - 1);
        assert_int_equal(st.corrupt, 0);
        assert_int_equal(st.truncated_bytes, cut - start);
        assert_int_equal(file_size(path), start);

        append_ok(j, gen_varied, 1000);
        journal_close(j);
        j = open_ok(&o, &s, &st);
        uint64_t ids[64];
        for (uint64_t i = 0; i + 1 < nrec; i++) {
            ids[i] = i + 1;
        }
        ids[nrec - 1] = 1000;
        expect_ids(&s, gen_varied, ids, nrec);
        assert_int_equal(st.truncated_bytes, 0);
        assert_int_equal(st.corrupt, 0);
        assert_int_equal(st.last_id, 1000);
        journal_close(j);
    }
    free(orig);
    seen_clear(&s);
    tdir_free(&t);
}

static void test_torn_tail_every_byte(void **state)
{
    (void)state;
    torn_every_byte(7); /* id 7: short room, short event, 256 bytes of binary data */
    torn_every_byte(2); /* id 2: 64-byte room and event */
    torn_every_byte(1); /* the only record: the segment ends up empty */
}

static void test_garbage_tail(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    struct seen s = {0};
    struct journal_stats st;
    char path[256];
    seg_path(path, sizeof path, t.dir, 1);
    build(&o, gen_varied, 5);
    size_t len;
    char *orig = read_file(path, &len);
    struct gen g4;
    gen_varied(4, &g4);
    size_t rec4_len = frame_size(&g4);
    struct gen g5;
    gen_varied(5, &g5);
    const char *rec4 = orig + len - frame_size(&g5) - rec4_len;

    char junk[8192];
    uint32_t x = 99;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1664525u + 1013904223u;
        junk[i] = (char)(x >> 24);
    }
    char zeros[4096] = {0};
    /* a frame header that looks right (magic, sane length) over a bad CRC */
    char fake[64];
    memcpy(fake, orig, sizeof fake);
    fake[8] ^= 0x40;
    /* magic followed by an absurd length */
    char huge[16];
    memcpy(huge, orig, 4);
    memset(huge + 4, 0xFF, sizeof huge - 4);
    /* a copy of record 4 with one payload byte changed */
    char *flipped = malloc(rec4_len);
    assert_non_null(flipped);
    memcpy(flipped, rec4, rec4_len);
    flipped[FRAME_HDR + 3] ^= 0x01;

    struct {
        const char *b;
        size_t n;
    } cases[] = {
        {junk, 1},
        {junk, 11},
        {junk, 12},
        {junk, sizeof junk},
        {zeros, sizeof zeros},
        {fake, sizeof fake},
        {huge, sizeof huge},
        {flipped, rec4_len},
        {orig, 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        write_file(path, orig, len);
        append_file(path, cases[c].b, cases[c].n);
        struct journal *j = open_ok(&o, &s, &st);
        expect_range(&s, gen_varied, 1, 5, 0);
        assert_int_equal(st.truncated_bytes, cases[c].n);
        assert_int_equal(st.corrupt, 0);
        assert_int_equal(file_size(path), len);
        append_ok(j, gen_varied, 6);
        journal_close(j);
        j = open_ok(&o, &s, &st);
        expect_range(&s, gen_varied, 1, 6, 0);
        assert_int_equal(st.truncated_bytes, 0);
        journal_close(j);
    }

    /* A well-formed record whose id does not increase is not a torn tail:
     * it is skipped as corrupt and left in place. */
    write_file(path, orig, len);
    append_file(path, rec4, rec4_len);
    struct journal *j = open_ok(&o, &s, &st);
    expect_range(&s, gen_varied, 1, 5, 0);
    assert_int_equal(st.corrupt, 1);
    assert_int_equal(st.truncated_bytes, 0);
    assert_int_equal(st.last_id, 5);
    assert_int_equal(file_size(path), len + rec4_len);
    journal_close(j);

    free(flipped);
    free(orig);
    seen_clear(&s);
    tdir_free(&t);
}

/* Offset of record `id` (1-based, records 1..) in a segment built by gen. */
static size_t offset_of(gen_fn *gen, uint64_t first, uint64_t id)
{
    size_t off = 0;
    for (uint64_t i = first; i < id; i++) {
        struct gen g;
        gen(i, &g);
        off += frame_size(&g);
    }
    return off;
}

/*
 * One flipped byte anywhere in a middle record (magic, length, CRC or
 * payload) costs exactly that record; one in the first record too. One in
 * the last record of the newest segment makes it a torn tail.
 */
static void test_corrupt_record(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    struct seen s = {0};
    struct journal_stats st;
    char path[256];
    seg_path(path, sizeof path, t.dir, 1);
    build(&o, gen_varied, 9);
    size_t len;
    char *orig = read_file(path, &len);
    char *copy = malloc(len);
    assert_non_null(copy);

    const uint64_t victims[] = {5, 1, 9};
    for (size_t v = 0; v < 3; v++) {
        uint64_t id = victims[v];
        struct gen g;
        gen_varied(id, &g);
        size_t at = offset_of(gen_varied, 1, id);
        for (size_t b = 0; b < frame_size(&g); b++) {
            static const unsigned char masks[] = {0x01, 0x80};
            for (size_t m = 0; m < 2; m++) {
                memcpy(copy, orig, len);
                copy[at + b] ^= (char)masks[m];
                write_file(path, copy, len);
                struct journal *j = open_ok(&o, &s, &st);
                expect_range(&s, gen_varied, 1, 9, id);
                assert_int_equal(st.records, 8);
                if (id == 9) {
                    assert_int_equal(st.corrupt, 0);
                    assert_int_equal(st.truncated_bytes, frame_size(&g));
                    assert_int_equal(st.last_id, 8);
                    assert_int_equal(file_size(path), at);
                } else {
                    assert_int_equal(st.corrupt, 1);
                    assert_int_equal(st.truncated_bytes, 0);
                    assert_int_equal(st.last_id, 9);
                    assert_int_equal(file_size(path), len); /* left as it is */
                }
                journal_close(j);
            }
        }
    }

    /* The journal keeps working after a skipped record, and keeps skipping
     * it the same way. */
    memcpy(copy, orig, len);
    copy[offset_of(gen_varied, 1, 5) + FRAME_HDR + PAYLOAD] ^= 0x10;
    write_file(path, copy, len);
    struct journal *j = open_ok(&o, &s, &st);
    append_ok(j, gen_varied, 10);
    journal_close(j);
    j = open_ok(&o, &s, &st);
    expect_range(&s, gen_varied, 1, 10, 5);
    assert_int_equal(st.corrupt, 1);
    journal_close(j);

    /* Two damaged records far apart count twice. */
    memcpy(copy, orig, len);
    copy[offset_of(gen_varied, 1, 3) + 20] ^= 0x10;
    copy[offset_of(gen_varied, 1, 7) + 1] ^= 0x10;
    write_file(path, copy, len);
    j = open_ok(&o, &s, &st);
    uint64_t ids[] = {1, 2, 4, 5, 6, 8, 9};
    expect_ids(&s, gen_varied, ids, 7);
    assert_int_equal(st.corrupt, 2);
    journal_close(j);

    free(copy);
    free(orig);
    seen_clear(&s);
    tdir_free(&t);
}

/* Damage at the end of an older segment is skipped, never truncated: only
 * the newest segment can have a torn tail. */
static void test_corrupt_older_segment(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    o.segment_bytes = 3 * FIXED_FRAME; /* segments 1, 4, 7: three records each */
    struct seen s = {0};
    struct journal_stats st;
    char path[256];
    seg_path(path, sizeof path, t.dir, 4);
    build(&o, gen_fixed, 9);
    char names[256];
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "1,4,7");
    size_t len;
    char *orig = read_file(path, &len);
    assert_int_equal(len, 3 * FIXED_FRAME);
    char *copy = malloc(len + 100);
    assert_non_null(copy);

    enum { FLIP, CUT, GARBAGE } kinds[] = {FLIP, CUT, GARBAGE};
    for (size_t k = 0; k < 3; k++) {
        size_t n = len;
        memcpy(copy, orig, len);
        if (kinds[k] == FLIP) {
            copy[2 * FIXED_FRAME + FRAME_HDR + PAYLOAD + 10] ^= 0x04; /* record 6's data */
        } else if (kinds[k] == CUT) {
            n = 2 * FIXED_FRAME + FIXED_FRAME / 2; /* half of record 6 */
        } else {
            memset(copy + len, 0x5A, 100);
            n = len + 100;
        }
        write_file(path, copy, n);
        struct journal *j = open_ok(&o, &s, &st);
        expect_range(&s, gen_fixed, 1, 9, kinds[k] == GARBAGE ? 0 : 6);
        assert_int_equal(st.corrupt, 1);
        assert_int_equal(st.truncated_bytes, 0);
        assert_int_equal(st.segments, 3);
        assert_int_equal(seg_size(t.dir, 4), n);
        append_ok(j, gen_fixed, 10); /* full segment 7: rotates to 10 */
        journal_close(j);
        j = open_ok(&o, &s, &st);
        expect_range(&s, gen_fixed, 1, 10, kinds[k] == GARBAGE ? 0 : 6);
        assert_int_equal(st.corrupt, 1);
        assert_int_equal(seg_size(t.dir, 4), n);
        journal_close(j);
        char p10[256];
        seg_path(p10, sizeof p10, t.dir, 10);
        assert_int_equal(unlink(p10), 0);
    }
    free(copy);
    free(orig);
    seen_clear(&s);
    tdir_free(&t);
}

/*
 * Records whose ids do not increase (here: a stray copy of an old segment
 * under a newer name) are skipped as corrupt. Appends then go on in that
 * segment, since a rotation must not create a name that sorts before it.
 */
static void test_ids_not_increasing(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    o.segment_bytes = 3 * FIXED_FRAME;
    struct seen s = {0};
    struct journal_stats st;
    build(&o, gen_fixed, 3);
    char p1[256], p10[256];
    seg_path(p1, sizeof p1, t.dir, 1);
    seg_path(p10, sizeof p10, t.dir, 10);
    size_t len;
    char *b = read_file(p1, &len);
    write_file(p10, b, len);
    free(b);

    struct journal *j = open_ok(&o, &s, &st);
    expect_range(&s, gen_fixed, 1, 3, 0);
    assert_int_equal(st.corrupt, 3);
    assert_int_equal(st.last_id, 3);
    assert_int_equal(st.segments, 2);
    for (uint64_t id = 4; id <= 11; id++) {
        append_ok(j, gen_fixed, id);
    }
    char names[256];
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "1,10,11"); /* 4..10 went into the full segment 10 */
    assert_int_equal(seg_size(t.dir, 10), 10 * FIXED_FRAME);
    journal_close(j);

    j = open_ok(&o, &s, &st);
    expect_range(&s, gen_fixed, 1, 11, 0);
    assert_int_equal(st.corrupt, 3);
    journal_close(j);
    seen_clear(&s);
    tdir_free(&t);
}

/* A crash right after a rotation leaves an empty newest segment: it becomes
 * the current one. */
static void test_empty_newest_segment(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    struct seen s = {0};
    struct journal_stats st;
    build(&o, gen_varied, 3);
    char p4[256];
    seg_path(p4, sizeof p4, t.dir, 4);
    write_file(p4, "", 0);

    struct journal *j = open_ok(&o, &s, &st);
    expect_range(&s, gen_varied, 1, 3, 0);
    assert_int_equal(st.segments, 2);
    assert_int_equal(st.corrupt, 0);
    assert_int_equal(st.truncated_bytes, 0);
    append_ok(j, gen_varied, 4);
    journal_close(j);
    struct gen g;
    gen_varied(4, &g);
    assert_int_equal(seg_size(t.dir, 4), frame_size(&g));
    j = open_ok(&o, &s, &st);
    expect_range(&s, gen_varied, 1, 4, 0);
    journal_close(j);
    seen_clear(&s);
    tdir_free(&t);
}

static void test_ignores_other_files(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    struct seen s = {0};
    struct journal_stats st;
    build(&o, gen_varied, 3);
    const char *others[] = {"README",
                            "1.log",
                            "00000000000000000001.log.tmp",
                            "0000000000000000000x.log",
                            "99999999999999999999.log",
                            "000000000000000000099.log"};
    char p[512];
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", t.dir, others[i]);
        write_file(p, "junk", 4);
    }
    seg_path(p, sizeof p, t.dir, 50);
    assert_int_equal(mkdir(p, 0700), 0); /* a directory with a segment's name */
    seg_path(p, sizeof p, t.dir, 60);
    char target[256];
    seg_path(target, sizeof target, t.dir, 1);
    assert_int_equal(symlink(target, p), 0); /* and a symlink */

    struct journal *j = open_ok(&o, &s, &st);
    expect_range(&s, gen_varied, 1, 3, 0);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.corrupt, 0);
    append_ok(j, gen_varied, 4);
    journal_close(j);
    j = open_ok(&o, &s, &st);
    expect_range(&s, gen_varied, 1, 4, 0);
    journal_close(j);
    char names[1024];
    list_dir(t.dir, names, sizeof names);
    assert_string_equal(names, "00000000000000000001.log,00000000000000000001.log.tmp,"
                               "000000000000000000099.log,0000000000000000000x.log,"
                               "00000000000000000050.log,00000000000000000060.log,1.log,"
                               "99999999999999999999.log,README");
    seen_clear(&s);
    tdir_free(&t);
}

/*
 * A segment of several MiB is read through a window of 1 MiB chunks:
 * records straddling chunk boundaries, damaged records there, and a resync
 * scan across a long run of zeros spanning several chunks must all behave
 * as in a small file.
 */
static void test_large_segment(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    struct seen s = {0};
    struct journal_stats st;
    char path[256];
    seg_path(path, sizeof path, t.dir, 1);
    const uint64_t n = 400;
    build(&o, gen_bulk, n);
    size_t len;
    char *orig = read_file(path, &len);
    assert_true(len > 3u << 20);

    /* The records that straddle the 1 MiB and 2 MiB marks. */
    uint64_t straddle[2] = {0, 0};
    size_t at = 0;
    for (uint64_t id = 1; id <= n; id++) {
        struct gen g;
        gen_bulk(id, &g);
        size_t end = at + frame_size(&g);
        for (int m = 0; m < 2; m++) {
            size_t mark = (size_t)(m + 1) << 20;
            if (at < mark && end > mark) {
                straddle[m] = id;
            }
        }
        at = end;
    }
    assert_int_equal(at, len);
    assert_true(straddle[0] != 0 && straddle[1] != 0);

    /* Untouched: everything replays. */
    struct journal *j = open_ok(&o, &s, &st);
    expect_range(&s, gen_bulk, 1, n, 0);
    journal_close(j);

    /* Damage the straddling records (the byte right after each mark), put
     * 2.5 MiB of zeros after record 300 and tear the last record. */
    const size_t zeros = (5u << 20) / 2;
    size_t at300 = offset_of(gen_bulk, 1, 301), at_last = offset_of(gen_bulk, 1, n);
    char *b = calloc(1, len + zeros);
    assert_non_null(b);
    memcpy(b, orig, at300);
    memcpy(b + at300 + zeros, orig + at300, len - at300);
    b[1u << 20] ^= 0x08;
    b[2u << 20] ^= 0x08;
    size_t cut = at_last + zeros + 5000;
    write_file(path, b, cut);
    j = open_ok(&o, &s, &st);
    uint64_t ids[400];
    size_t k = 0;
    for (uint64_t id = 1; id < n; id++) {
        if (id != straddle[0] && id != straddle[1]) {
            ids[k++] = id;
        }
    }
    expect_ids(&s, gen_bulk, ids, k);
    assert_int_equal(st.corrupt, 3);
    assert_int_equal(st.truncated_bytes, 5000);
    assert_int_equal(file_size(path), at_last + zeros);
    journal_close(j);

    free(b);
    free(orig);
    seen_clear(&s);
    tdir_free(&t);
}

/* ------------------------------------------------------------ rotation and retention */

static void test_rotation(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    o.segment_bytes = 3 * FIXED_FRAME; /* rotate once a segment reaches 3 records */
    struct seen s = {0};
    struct journal_stats st;
    char names[512];

    struct journal *j = open_ok(&o, &s, &st);
    for (uint64_t id = 1; id <= 10; id++) {
        append_ok(j, gen_fixed, id);
    }
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "1,4,7,10");
    assert_int_equal(seg_size(t.dir, 1), 3 * FIXED_FRAME);
    assert_int_equal(seg_size(t.dir, 4), 3 * FIXED_FRAME);
    assert_int_equal(seg_size(t.dir, 7), 3 * FIXED_FRAME);
    assert_int_equal(seg_size(t.dir, 10), FIXED_FRAME);
    journal_close(j);

    j = open_ok(&o, &s, &st);
    expect_range(&s, gen_fixed, 1, 10, 0);
    assert_int_equal(st.segments, 4);
    append_ok(j, gen_fixed, 11); /* into segment 10, which is not full */
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "1,4,7,10");
    journal_close(j);

    /* A limit that is not a multiple of the record size: rotate on the
     * first append that finds the segment at or past it. */
    rm_rf(t.dir);
    o.segment_bytes = 2 * FIXED_FRAME + 1;
    build(&o, gen_fixed, 7);
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "1,4,7");

    /* segment_bytes 1: every record in its own segment. */
    rm_rf(t.dir);
    o.segment_bytes = 1;
    build(&o, gen_fixed, 4);
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "1,2,3,4");
    j = open_ok(&o, &s, &st);
    expect_range(&s, gen_fixed, 1, 4, 0);
    assert_int_equal(st.segments, 4);
    journal_close(j);

    /* segment_bytes 0: never rotate. */
    rm_rf(t.dir);
    o.segment_bytes = 0;
    build(&o, gen_fixed, 20);
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "1");
    assert_int_equal(seg_size(t.dir, 1), 20 * FIXED_FRAME);

    seen_clear(&s);
    tdir_free(&t);
}

/* A rotation that cannot create its segment (here something else already
 * has the name) fails the append and changes nothing; later ids go on. */
/* --fsync never: rotations leave the syncs to the syncer thread (faster
 * than it can keep up with here, so its queue also overflows and the
 * journal syncs itself); every record is there after a close, and no
 * descriptor leaks. */
static void test_rotation_off_loop(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    o.segment_bytes = 3 * FIXED_FRAME;
    o.sync_rotation_off_loop = true;
    struct seen s = {0};
    struct journal_stats st;
    int fd0 = next_fd();

    struct journal *j = open_ok(&o, &s, &st);
    for (uint64_t id = 1; id <= 300; id++) {
        append_ok(j, gen_fixed, id);
        /* The segment just left counts as synced: only the new one's
         * records are dirty. */
        if (id % 3 == 1 && id > 1) {
            assert_true(journal_dirty(j));
        }
    }
    journal_close(j);
    assert_int_equal(next_fd(), fd0);

    j = open_ok(&o, &s, &st);
    expect_range(&s, gen_fixed, 1, 300, 0);
    assert_int_equal(st.segments, 100);
    journal_close(j);
    seen_clear(&s);
    assert_int_equal(next_fd(), fd0);
    tdir_free(&t);
}

static void test_rotation_failure(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    o.segment_bytes = 2 * FIXED_FRAME;
    struct seen s = {0};
    struct journal_stats st;
    char names[256], p5[256];
    build(&o, gen_fixed, 4); /* segments 1 and 3, both full */
    seg_path(p5, sizeof p5, t.dir, 5);
    assert_int_equal(mkdir(p5, 0700), 0);

    struct journal *j = open_ok(&o, &s, &st);
    assert_int_equal(st.segments, 2);
    struct gen g;
    gen_fixed(5, &g);
    struct journal_record r = view(&g);
    errno = 0;
    assert_int_equal(journal_append(j, &r), -1);
    assert_int_equal(errno, EEXIST);
    assert_false(journal_dirty(j));
    assert_int_equal(seg_size(t.dir, 3), 2 * FIXED_FRAME);
    append_ok(j, gen_fixed, 6);
    append_ok(j, gen_fixed, 7);
    journal_close(j);
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "1,3,5,6");
    j = open_ok(&o, &s, &st);
    uint64_t ids[] = {1, 2, 3, 4, 6, 7};
    expect_ids(&s, gen_fixed, ids, 6);
    assert_int_equal(st.segments, 3);
    journal_close(j);
    seen_clear(&s);
    tdir_free(&t);
}

/* Appends 1..n with retention on, checking the segment list after each
 * append against `want` (indexed by id; NULL entries are not checked). */
static void retention_run(uint64_t seg_records, uint64_t retain_records, uint64_t retain_bytes,
                          uint64_t n, const char *const *want, const char *final)
{
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    o.segment_bytes = seg_records * FIXED_FRAME;
    o.retain_records = retain_records;
    o.retain_bytes = retain_bytes;
    struct seen s = {0};
    struct journal_stats st;
    char names[512];

    struct journal *j = open_ok(&o, &s, &st);
    for (uint64_t id = 1; id <= n; id++) {
        append_ok(j, gen_fixed, id);
        list_segs(t.dir, names, sizeof names);
        if (want != NULL && want[id] != NULL && strcmp(names, want[id]) != 0) {
            fail_msg("after id %" PRIu64 ": segments %s, want %s", id, names, want[id]);
        }
    }
    journal_close(j);
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, final);

    /* What is left replays, starting at the oldest kept segment. */
    j = open_ok(&o, &s, &st);
    uint64_t first = strtoull(final, NULL, 10);
    expect_range(&s, gen_fixed, first, n, 0);
    assert_int_equal(st.corrupt, 0);
    journal_close(j);
    seen_clear(&s);
    tdir_free(&t);
}

static void test_retention(void **state)
{
    (void)state;
    /* Three records per segment; rotations at 4, 7, 10, 13, 16, 19. */

    /* By bytes, 7 records' worth: after each rotation the current segment
     * (one record) and the two full ones before it fit, a third does not. */
    const char *bytes7[21] = {
        [3] = "1",        [4] = "1,4",       [7] = "1,4,7",     [9] = "1,4,7",    [10] = "4,7,10",
        [13] = "7,10,13", [18] = "10,13,16", [19] = "13,16,19", [20] = "13,16,19"};
    retention_run(3, 0, 7 * FIXED_FRAME, 20, bytes7, "13,16,19");

    /* By records, 8: the oldest goes once the newer segments alone hold 8. */
    const char *rec8[21] = {
        [10] = "1,4,7,10", [13] = "4,7,10,13", [16] = "7,10,13,16", [19] = "10,13,16,19"};
    retention_run(3, 8, 0, 20, rec8, "10,13,16,19");

    /* Both: whichever deletes more wins (the byte cap here). */
    retention_run(3, 8, 7 * FIXED_FRAME, 20, bytes7, "13,16,19");
    /* A records limit that needs more than the byte cap allows: bytes win. */
    retention_run(3, 100, 7 * FIXED_FRAME, 20, bytes7, "13,16,19");

    /* Limits below one segment never delete the current segment, even
     * when it alone is over the byte limit. */
    const char *only[21] = {[4] = "4", [5] = "4", [7] = "7", [19] = "19", [20] = "19"};
    retention_run(3, 0, 1, 20, only, "19");
    retention_run(3, 1, 0, 20, only, "19");
    const char *each[6] = {[1] = "1", [2] = "2", [3] = "3", [4] = "4", [5] = "5"};
    retention_run(1, 0, 1, 5, each, "5");

    /* No limits: nothing is deleted. */
    retention_run(3, 0, 0, 20, NULL, "1,4,7,10,13,16,19");
}

/* Retention after a reopen works from the per-segment counts found by the
 * replay. */
static void test_retention_after_reopen(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    o.segment_bytes = 3 * FIXED_FRAME;
    struct seen s = {0};
    struct journal_stats st;
    char names[512];
    build(&o, gen_fixed, 20);
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "1,4,7,10,13,16,19");

    o.retain_records = 8;
    struct journal *j = open_ok(&o, &s, &st);
    assert_int_equal(st.segments, 7);
    append_ok(j, gen_fixed, 21); /* segment 19 is not full: no rotation, no retention */
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "1,4,7,10,13,16,19");
    append_ok(j, gen_fixed, 22);
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "13,16,19,22");
    journal_close(j);
    j = open_ok(&o, &s, &st);
    expect_range(&s, gen_fixed, 13, 22, 0);
    journal_close(j);
    seen_clear(&s);
    tdir_free(&t);
}

/* ------------------------------------------------------------ write failures */

struct fsize_guard {
    struct rlimit old;
    struct sigaction old_sa;
};

/* Makes writes past `limit` bytes fail with EFBIG (instead of SIGXFSZ),
 * the closest a test can get to a full disk without one. */
static void fsize_limit(struct fsize_guard *g, rlim_t limit)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    assert_int_equal(sigaction(SIGXFSZ, &sa, &g->old_sa), 0);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &g->old), 0);
    struct rlimit r = {.rlim_cur = limit, .rlim_max = g->old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &r), 0);
}

static void fsize_restore(struct fsize_guard *g)
{
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &g->old), 0);
    assert_int_equal(sigaction(SIGXFSZ, &g->old_sa, NULL), 0);
}

static void test_write_failure(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    struct seen s = {0};
    struct journal_stats st;
    struct fsize_guard guard;
    char path[256];
    seg_path(path, sizeof path, t.dir, 1);

    struct journal *j = open_ok(&o, &s, &st);
    for (uint64_t id = 1; id <= 3; id++) {
        append_ok(j, gen_fixed, id);
    }
    off_t size = file_size(path);

    /* The limit falls inside the record: part of it is written, then the
     * write fails; the part must be gone. Also with no room at all. */
    const rlim_t limits[] = {(rlim_t)size + FIXED_FRAME / 2, (rlim_t)size + 1, (rlim_t)size,
                             (rlim_t)size + FIXED_FRAME - 1};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        struct gen g;
        gen_fixed(4, &g);
        struct journal_record r = view(&g);
        fsize_limit(&guard, limits[i]);
        errno = 0;
        int rc = journal_append(j, &r);
        int e = errno;
        off_t after = file_size(path);
        fsize_restore(&guard);
        assert_int_equal(rc, -1);
        assert_int_equal(e, EFBIG);
        assert_int_equal(after, size);
    }
    /* Room again: the same id goes through. */
    append_ok(j, gen_fixed, 4);
    assert_int_equal(file_size(path), size + FIXED_FRAME);
    journal_close(j);
    j = open_ok(&o, &s, &st);
    expect_range(&s, gen_fixed, 1, 4, 0);
    assert_int_equal(st.corrupt, 0);
    assert_int_equal(st.truncated_bytes, 0);

    /* A failure right after a rotation leaves an empty new segment, which
     * the next append uses. */
    journal_close(j);
    o.segment_bytes = 4 * FIXED_FRAME;
    j = open_ok(&o, &s, &st);
    struct gen g;
    gen_fixed(5, &g);
    struct journal_record r = view(&g);
    fsize_limit(&guard, FIXED_FRAME / 2);
    int rc = journal_append(j, &r);
    int e = errno;
    fsize_restore(&guard);
    assert_int_equal(rc, -1);
    assert_int_equal(e, EFBIG);
    assert_int_equal(seg_size(t.dir, 5), 0);
    append_ok(j, gen_fixed, 5);
    append_ok(j, gen_fixed, 6);
    journal_close(j);
    char names[256];
    list_segs(t.dir, names, sizeof names);
    assert_string_equal(names, "1,5");
    j = open_ok(&o, &s, &st);
    expect_range(&s, gen_fixed, 1, 6, 0);
    assert_int_equal(st.corrupt, 0);
    assert_int_equal(st.truncated_bytes, 0);
    journal_close(j);

    seen_clear(&s);
    tdir_free(&t);
}

/* ------------------------------------------------------------ sync, open failures */

static void test_sync_dirty(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    o.segment_bytes = FIXED_FRAME;
    struct seen s = {0};
    struct journal_stats st;

    struct journal *j = open_ok(&o, &s, &st);
    assert_false(journal_dirty(j));
    assert_int_equal(journal_sync(j), 0);
    append_ok(j, gen_fixed, 1);
    assert_true(journal_dirty(j));
    assert_int_equal(journal_sync(j), 0);
    assert_false(journal_dirty(j));
    assert_int_equal(journal_sync(j), 0);
    assert_false(journal_dirty(j));
    append_ok(j, gen_fixed, 2); /* rotates: still dirty for the new segment */
    append_ok(j, gen_fixed, 3);
    assert_true(journal_dirty(j));
    assert_int_equal(journal_sync(j), 0);
    assert_false(journal_dirty(j));

    /* A rejected append does not make it dirty. */
    struct gen g;
    gen_fixed(3, &g);
    struct journal_record r = view(&g);
    assert_int_equal(journal_append(j, &r), -1);
    assert_false(journal_dirty(j));
    journal_close(j);

    j = open_ok(&o, &s, &st);
    assert_false(journal_dirty(j));
    expect_range(&s, gen_fixed, 1, 3, 0);
    journal_close(j);
    seen_clear(&s);
    tdir_free(&t);
}

static void test_replay_stops(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct journal_options o = opts_for(t.dir);
    o.segment_bytes = 2 * FIXED_FRAME;
    build(&o, gen_fixed, 5);
    struct seen s = {0};
    struct journal_stats st;
    char names[256];
    list_segs(t.dir, names, sizeof names);
    int fd0 = next_fd();

    for (size_t stop = 1; stop <= 5; stop++) {
        char err[256] = "";
        seen_clear(&s);
        s.stop_at = stop;
        struct journal *j = journal_open(&o, capture, &s, &st, err, sizeof err);
        assert_null(j);
        assert_int_equal(s.n, stop);
        assert_non_null(strstr(err, "replay stopped"));
        assert_int_equal(next_fd(), fd0);
    }
    /* Nothing was changed, and the lock was released. */
    char after[256];
    list_segs(t.dir, after, sizeof after);
    assert_string_equal(after, names);
    struct journal *j = open_ok(&o, &s, &st);
    expect_range(&s, gen_fixed, 1, 5, 0);
    journal_close(j);
    assert_int_equal(next_fd(), fd0);
    seen_clear(&s);
    tdir_free(&t);
}

static void test_open_failures(void **state)
{
    (void)state;
    struct tdir t;
    tdir_make(&t);
    struct seen s = {0};
    struct journal_stats st;
    char err[256];
    int fd0 = next_fd();

    /* Two journals on one directory would interleave their appends. */
    struct journal_options o = opts_for(t.dir);
    struct journal *j = open_ok(&o, &s, &st);
    err[0] = '\0';
    assert_null(journal_open(&o, capture, &s, &st, err, sizeof err));
    assert_non_null(strstr(err, "in use"));
    journal_close(j);
    j = open_ok(&o, &s, &st);
    journal_close(j);

    /* The directory is a file, or lies below one. */
    char file[256], below[300];
    snprintf(file, sizeof file, "%s/file", t.root);
    write_file(file, "x", 1);
    snprintf(below, sizeof below, "%s/sub", file);
    const char *bad[] = {file, below, ""};
    for (size_t i = 0; i < 3; i++) {
        o.dir = bad[i];
        err[0] = '\0';
        assert_null(journal_open(&o, capture, &s, &st, err, sizeof err));
        assert_true(strlen(err) > 0);
        assert_null(journal_open(&o, capture, &s, &st, NULL, 0));
    }
    o.dir = NULL;
    assert_null(journal_open(&o, capture, &s, &st, err, sizeof err));
    assert_null(journal_open(NULL, capture, &s, &st, err, sizeof err));
    assert_int_equal(next_fd(), fd0);
    seen_clear(&s);
    tdir_free(&t);
}

int main(void)
{
    /* The journal logs every repair; the tests make plenty on purpose. */
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_empty_journal),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_append_rejects),
        cmocka_unit_test(test_largest_record),
        cmocka_unit_test(test_torn_tail_every_byte),
        cmocka_unit_test(test_garbage_tail),
        cmocka_unit_test(test_corrupt_record),
        cmocka_unit_test(test_corrupt_older_segment),
        cmocka_unit_test(test_ids_not_increasing),
        cmocka_unit_test(test_large_segment),
        cmocka_unit_test(test_empty_newest_segment),
        cmocka_unit_test(test_ignores_other_files),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_rotation_off_loop),
        cmocka_unit_test(test_rotation_failure),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_retention_after_reopen),
        cmocka_unit_test(test_write_failure),
        cmocka_unit_test(test_sync_dirty),
        cmocka_unit_test(test_replay_stops),
        cmocka_unit_test(test_open_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
