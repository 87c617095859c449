/*
 * libFuzzer target for src/journal.c: whatever is on disk, opening the
 * journal must replay only well-formed records in increasing id order, repair
 * what it can, and leave a journal that appends and replays correctly.
 *
 * Input layout: flags u8 | split u16 (little endian) | segment bytes.
 *
 *   flags & 1  before writing, recompute the CRC of every frame whose magic
 *              and length fit, so the fuzzer (which cannot forge CRC-32C)
 *              still reaches the payload checks behind the CRC;
 *   flags & 2  write the bytes as two segments, cut at split % (len + 1),
 *              so damage at the end of an older segment is exercised;
 *   flags & 4  use a 1-byte segment limit, so the append rotates.
 *
 * Per input: write the segment file(s) into a directory made once per
 * process (emptied each time), journal_open with a replay callback that
 * checks every record, append one record, close, reopen, and check that the
 * reopened journal replays what the first open did plus the new record,
 * last. Descriptor leaks are caught with the lowest-free-fd trick, memory
 * leaks by LeakSanitizer. Any violation traps.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAGIC     0x4A455353u
#define FRAME_HDR 12u
#define MAX_ROOM  64u
#define MAX_EVENT 64u
#define MAX_DATA  (64u << 20)

static char dir[64];

/* A fresh directory per process: on tmpfs when there is one, since every
 * input syncs the journal and a disk would make that the bottleneck. */
static void remove_dir(void)
{
    rmdir(dir); /* emptied after every input */
}

static void make_dir(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/fuzz-journal-XXXXXX", base);
    CHECK(mkdtemp(dir) != NULL);
    atexit(remove_dir);
}

static void clear_dir(void)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            CHECK(unlinkat(dirfd(d), e->d_name, 0) == 0);
        }
    }
    closedir(d);
}

static void write_seg(uint64_t id, const uint8_t *b, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%020llu.log", dir, (unsigned long long)id);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK(n == 0 || write(fd, b, n) == (ssize_t)n);
    close(fd);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Gives every frame that fits in b[0..n) a correct CRC. */
static void fix_crcs(uint8_t *b, size_t n)
{
    size_t pos = 0;
    while (n >= FRAME_HDR && pos <= n - FRAME_HDR) {
        uint32_t len = rd32(b + pos + 4);
        if (rd32(b + pos) != MAGIC || len > n - pos - FRAME_HDR) {
            pos++;
            continue;
        }
        uint32_t c = crc32c(0, b + pos + FRAME_HDR, len);
        b[pos + 8] = (uint8_t)c;
        b[pos + 9] = (uint8_t)(c >> 8);
        b[pos + 10] = (uint8_t)(c >> 16);
        b[pos + 11] = (uint8_t)(c >> 24);
        pos += FRAME_HDR + len;
    }
}

struct check {
    uint64_t count, last_id;
    /* the record appended after the first open, to be found last */
    const struct journal_record *want;
    bool want_seen;
};

static int on_record(void *arg, const struct journal_record *rec)
{
    struct check *c = arg;
    CHECK(c->count == 0 || rec->id > c->last_id);
    CHECK(rec->id > 0);
    CHECK(rec->room != NULL && rec->room_len <= MAX_ROOM);
    CHECK((rec->event == NULL) == (rec->event_len == 0) && rec->event_len <= MAX_EVENT);
    CHECK(rec->data != NULL && rec->data_len <= MAX_DATA);
    /* Touch every byte so ASan sees any out-of-bounds pointer. */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < rec->room_len; i++) {
        sink ^= (uint8_t)rec->room[i];
    }
    for (size_t i = 0; i < rec->event_len; i++) {
        sink ^= (uint8_t)rec->event[i];
    }
    for (size_t i = 0; i < rec->data_len; i++) {
        sink ^= (uint8_t)rec->data[i];
    }
    (void)sink;
    CHECK(!c->want_seen); /* nothing after the appended record */
    if (c->want != NULL && rec->id == c->want->id) {
        const struct journal_record *w = c->want;
        CHECK(rec->room_len == w->room_len && memcmp(rec->room, w->room, w->room_len) == 0);
        CHECK(rec->event_len == w->event_len && memcmp(rec->event, w->event, w->event_len) == 0);
        CHECK(rec->data_len == w->data_len && memcmp(rec->data, w->data, w->data_len) == 0);
        c->want_seen = true;
    }
    c->count++;
    c->last_id = rec->id;
    return 0;
}

static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    close(fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dir[0] == '\0') {
        make_dir();
        log_set_level(LOG_ERROR); /* every repair is logged at warn */
    }
    int fd0 = lowest_free_fd();
    clear_dir();

    unsigned flags = 0, split = 0;
    if (size >= 3) {
        flags = data[0];
        split = (unsigned)data[1] | (unsigned)data[2] << 8;
        data += 3;
        size -= 3;
    }
    uint8_t *body = malloc(size > 0 ? size : 1);
    CHECK(body != NULL);
    if (size > 0) {
        memcpy(body, data, size);
    }
    size_t cut = (flags & 2) ? split % (size + 1) : size;
    if (flags & 1) {
        fix_crcs(body, cut);
        fix_crcs(body + cut, size - cut);
    }
    write_seg(1, body, cut);
    if (flags & 2) {
        write_seg(2, body + cut, size - cut);
    }
    free(body);

    struct journal_options o = {
        .dir = dir,
        .segment_bytes = (flags & 4) ? 1 : 1u << 20,
    };
    char err[256];
    struct journal_stats st1, st2;
    struct check c1 = {0};
    struct journal *j = journal_open(&o, on_record, &c1, &st1, err, sizeof err);
    CHECK(j != NULL);
    CHECK(st1.records == c1.count);
    CHECK(st1.last_id == (c1.count ? c1.last_id : 0));
    CHECK(st1.segments == ((flags & 2) ? 2u : 1u));
    CHECK(!journal_dirty(j));

    static const char room[] = "fuzz-room", event[] = "appended";
    char payload[64];
    struct journal_record add = {
        .id = st1.last_id + 1,
        .room = room,
        .room_len = sizeof room - 1,
        .event = event,
        .event_len = sizeof event - 1,
        .data = payload,
        .data_len = (size_t)snprintf(payload, sizeof payload, "after %llu records",
                                     (unsigned long long)st1.records),
    };
    bool appended = st1.last_id != UINT64_MAX;
    if (appended) {
        CHECK(journal_append(j, &add) == 0);
        CHECK(journal_dirty(j));
    } else {
        /* No id above the last one: the append must be refused. */
        add.id = st1.last_id;
        errno = 0;
        CHECK(journal_append(j, &add) == -1 && errno == EINVAL);
    }
    /* An id that does not increase is always refused. */
    struct journal_record stale = add;
    errno = 0;
    CHECK(journal_append(j, &stale) == -1 && errno == EINVAL);
    journal_close(j);

    struct check c2 = {.want = appended ? &add : NULL};
    j = journal_open(&o, on_record, &c2, &st2, err, sizeof err);
    CHECK(j != NULL);
    CHECK(st2.records == st1.records + (appended ? 1 : 0));
    CHECK(st2.corrupt == st1.corrupt);
    CHECK(st2.truncated_bytes == 0); /* the first open repaired everything */
    CHECK(c2.want_seen == appended);
    CHECK(st2.last_id == (appended ? add.id : st1.last_id));
    journal_close(j);

    clear_dir();
    CHECK(lowest_free_fd() == fd0);
    return 0;
}
