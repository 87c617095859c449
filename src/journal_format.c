#include "journal_format.h"
#include "journal.h"
#include "number.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ crc32c */

/*
 * Slicing-by-8 tables for the reflected Castagnoli polynomial 0x82F63B78:
 * crc_table[0][n] is the register after shifting in byte n, and
 * crc_table[k][n] is byte n followed by k zero bytes. Built once, on first
 * use (the compaction thread may be that first user, hence pthread_once);
 * the unit tests check crc32c against a bit-at-a-time reference.
 */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_build(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = (c >> 1) ^ ((c & 1) ? 0x82F63B78u : 0);
        }
        crc_table[0][n] = c;
    }
    for (int k = 1; k < 8; k++) {
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t prev = crc_table[k - 1][n];
            crc_table[k][n] = (prev >> 8) ^ crc_table[0][prev & 0xFF];
        }
    }
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_table_build);
    const uint8_t *p = buf;
    /* The register is kept inverted between calls so that chaining
     * crc32c(crc32c(0, a), b) equals crc32c(0, a || b). */
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ le32(p);
        uint32_t hi = le32(p + 4);
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
              crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^
              crc_table[2][(hi >> 8) & 0xFF] ^ crc_table[1][(hi >> 16) & 0xFF] ^
              crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
        len--;
    }
    return ~crc;
}

/* ------------------------------------------------------------ names */

void journal_segment_name(char out[SEG_NAME_LEN + 1], uint64_t id)
{
    snprintf(out, SEG_NAME_LEN + 1, "%020" PRIu64 ".log", id);
}

/* Parses a segment file name; false for anything else in the directory. */
bool journal_segment_parse(const char *name, uint64_t *id)
{
    if (strlen(name) != SEG_NAME_LEN || strcmp(name + 20, ".log") != 0) {
        return false;
    }
    return number_parse_u64(name, 20, id); /* 20 digits can exceed UINT64_MAX */
}

/* ------------------------------------------------------------ reading */

/* Makes bytes [off, off+n) available at *out (valid until the next call).
 * 1 on success, 0 when the file ends before off+n, -1 on a read error. */
int journal_reader_get(struct journal_reader *r, uint64_t off, size_t n, const uint8_t **out)
{
    if (off > r->size || n > r->size - off) {
        return 0;
    }
    if (off >= r->base && off - r->base <= r->len && n <= r->len - (size_t)(off - r->base)) {
        *out = r->buf + (off - r->base);
        return 1;
    }
    /* Keep what is already buffered from off on, drop what precedes it. */
    size_t keep = 0;
    if (off >= r->base && off - r->base < r->len) {
        keep = r->len - (size_t)(off - r->base);
        memmove(r->buf, r->buf + (off - r->base), keep);
    }
    r->base = off;
    r->len = keep;
    if (n > r->cap) {
        size_t cap = r->size < READ_CHUNK ? (size_t)r->size : READ_CHUNK;
        if (cap < n) {
            cap = n;
        }
        uint8_t *b = realloc(r->buf, cap);
        if (b == NULL) {
            return -1;
        }
        r->buf = b;
        r->cap = cap;
    }
    while (r->len < n) {
        /* Fill as much of the buffer as the file allows, to read in chunks
         * rather than record by record. */
        size_t want = r->cap - r->len;
        uint64_t left = r->size - (r->base + r->len);
        if (want > left) {
            want = (size_t)left;
        }
        ssize_t got = pread(r->fd, r->buf + r->len, want, (off_t)(r->base + r->len));
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (got == 0) {
            /* The file shrank under us: what is gone is a torn tail. */
            r->size = r->base + r->len;
            return 0;
        }
        r->len += (size_t)got;
    }
    *out = r->buf;
    return 1;
}

/*
 * Checks the frame at pos: magic, a plausible length that fits in the file,
 * a payload whose parts add up to the length, and the CRC. 1 and *d filled
 * (pointing into the reader's buffer) when it is a record, 0 when not, -1 on
 * a read error.
 */
int journal_frame_at(struct journal_reader *r, uint64_t pos, struct journal_frame *d)
{
    const uint8_t *h;
    int rc = journal_reader_get(r, pos, FRAME_HDR, &h);
    if (rc <= 0) {
        return rc;
    }
    if (le32(h) != JOURNAL_MAGIC) {
        return 0;
    }
    uint32_t len = le32(h + 4);
    if (len < PAYLOAD_HDR || len > MAX_PAYLOAD) {
        return 0;
    }
    rc = journal_reader_get(r, pos, FRAME_HDR + (size_t)len, &h);
    if (rc <= 0) {
        return rc;
    }
    const uint8_t *p = h + FRAME_HDR;
    size_t room_len = p[8], event_len = p[9];
    uint32_t data_len = le32(p + 10);
    /* The structure is checked before the CRC: it is cheaper and rejects
     * most noise (a resync tries every magic it finds). */
    if (room_len > MAX_ROOM || event_len > MAX_EVENT || data_len > MAX_DATA ||
        PAYLOAD_HDR + room_len + event_len + (uint64_t)data_len != len) {
        return 0;
    }
    if (crc32c(0, p, len) != le32(h + 8)) {
        return 0;
    }
    d->id = le64(p);
    d->room = p + PAYLOAD_HDR;
    d->room_len = room_len;
    d->event = d->room + room_len;
    d->event_len = event_len;
    d->data = d->event + event_len;
    d->data_len = data_len;
    d->frame_len = FRAME_HDR + (uint64_t)len;
    return 1;
}

/* Finds the first valid frame at or after `from`: 1 with *at and *d set, 0
 * when there is none before the end of the file, -1 on a read error. */
int journal_frame_find(struct journal_reader *r, uint64_t from, uint64_t *at,
                       struct journal_frame *d)
{
    static const uint8_t magic[4] = {JOURNAL_MAGIC & 0xFF, (JOURNAL_MAGIC >> 8) & 0xFF,
                                     (JOURNAL_MAGIC >> 16) & 0xFF, JOURNAL_MAGIC >> 24};
    uint64_t p = from;
    for (;;) {
        const uint8_t *b;
        int rc = journal_reader_get(r, p, FRAME_HDR, &b);
        if (rc <= 0) {
            return rc; /* fewer than a frame header's bytes left: nothing */
        }
        /* Look for the magic in everything already buffered (at least a
         * header's worth) instead of refilling byte by byte. */
        size_t avail = (size_t)(r->base + r->len - p);
        const uint8_t *m = memmem(b, avail, magic, sizeof magic);
        if (m == NULL) {
            /* A magic may straddle the end of the buffer. */
            p += avail - (sizeof magic - 1);
            continue;
        }
        p += (size_t)(m - b);
        rc = journal_frame_at(r, p, d);
        if (rc != 0) {
            *at = p;
            return rc;
        }
        p++;
    }
}
