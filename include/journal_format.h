/*
 * journal_format: the journal's on-disk format, shared by the journal and
 * its compaction thread: record framing, segment names, CRC-32C, and a
 * reader that finds and checks records in a segment file. Pure functions
 * over a file descriptor; no state but the CRC table, built once.
 *
 * Record (all integers little endian):
 *
 *     frame:   magic u32 | length u32 | crc32c u32 | payload (length bytes)
 *     payload: id u64 | room_len u8 | event_len u8 | data_len u32 | room | event | data
 *
 * length must equal 14 + room_len + event_len + data_len exactly, and each
 * part is bounded, so a reader can tell a record from noise without trusting
 * anything it has not checked. The CRC covers the whole payload.
 */
#ifndef SSE_JOURNAL_FORMAT_H
#define SSE_JOURNAL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "SSEJ" as bytes on disk; an arbitrary value that is unlikely in text. */
#define JOURNAL_MAGIC 0x4A455353u
#define FRAME_HDR     12u
#define PAYLOAD_HDR   14u
#define MAX_ROOM      64u
#define MAX_EVENT     64u
#define MAX_DATA      (64u << 20)
#define MAX_PAYLOAD   (PAYLOAD_HDR + MAX_ROOM + MAX_EVENT + MAX_DATA)
/* "%020llu.log": UINT64_MAX has 20 digits. */
#define SEG_NAME_LEN 24u
/* Reads are done in chunks of this much (or the whole record if larger). */
#define READ_CHUNK (1u << 20)

static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

/* "%020llu.log" for the segment whose first record has this id. */
void journal_segment_name(char out[SEG_NAME_LEN + 1], uint64_t id);
/* Parses a segment file name; false for anything else in the directory. */
bool journal_segment_parse(const char *name, uint64_t *id);

/*
 * A forward-moving window over one segment file, filled with pread(2). It
 * holds at most a chunk or one record, so replaying a large segment needs
 * neither the whole file in memory nor mmap (whose SIGBUS on a shrinking or
 * failing file would be harder to handle than a read error).
 */
struct journal_reader {
    int fd;
    uint64_t size; /* file size when opened */
    uint8_t *buf;
    size_t cap, len;
    uint64_t base; /* file offset of buf[0] */
};

/* Makes bytes [off, off+n) available at *out (valid until the next call).
 * 1 on success, 0 when the file ends before off+n, -1 on a read error. */
int journal_reader_get(struct journal_reader *r, uint64_t off, size_t n, const uint8_t **out);

/* One record as found in a file; the pointers are into the reader's buffer. */
struct journal_frame {
    uint64_t id;
    const uint8_t *room, *event, *data;
    size_t room_len, event_len, data_len;
    uint64_t frame_len; /* FRAME_HDR + payload */
};

/*
 * Checks the frame at pos: magic, a plausible length that fits in the file,
 * a payload whose parts add up to the length, and the CRC. 1 and *d filled
 * when it is a record, 0 when not, -1 on a read error.
 */
int journal_frame_at(struct journal_reader *r, uint64_t pos, struct journal_frame *d);

/* Finds the first valid frame at or after `from`: 1 with *at and *d set, 0
 * when there is none before the end of the file, -1 on a read error. */
int journal_frame_find(struct journal_reader *r, uint64_t from, uint64_t *at,
                       struct journal_frame *d);

#endif
