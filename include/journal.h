/*
 * journal: an append-only log of published messages on local disk, so that a
 * restart loses nothing.
 *
 * The journal is a directory of segment files named by the id of their first
 * record (`%020llu.log`). Each record is framed as
 *
 *     magic u32 | length u32 | crc32c u32 | payload (length bytes)
 *
 * (little endian; the CRC is CRC-32C over the payload), and the payload is
 *
 *     id u64 | room_len u8 | event_len u8 | data_len u32 | room | event | data
 *
 * with room and event at most 64 bytes and data at most 64 MiB. A reader
 * trusts nothing it cannot check: a record whose frame or CRC is wrong at the
 * end of the newest segment (nothing valid after it) is a torn write (crash,
 * full disk) and is truncated away; anywhere else -- including the end of an
 * older segment -- it is reported, counted as corrupt and skipped, and
 * reading resumes at the next magic whose frame and CRC check out. A record
 * whose id is not above every id before it is skipped as corrupt too, so a
 * replay always has strictly increasing ids.
 *
 * A journal directory is used by one process at a time (an exclusive flock on
 * the directory, released on close or exit).
 *
 * Appends are plain write(2) calls (to the page cache, so they do not wait
 * for the disk); durability comes from journal_sync (fdatasync), which the
 * server calls according to --fsync: after every append ("always"), once per
 * loop iteration for everything appended in it ("batch"), or never.
 */
#ifndef SSE_JOURNAL_H
#define SSE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal;

struct journal_record {
    uint64_t id;
    const char *room; /* "" (len 0) for the default room */
    size_t room_len;
    const char *event; /* NULL/0 for the default event type */
    size_t event_len;
    const char *data;
    size_t data_len;
    /* On replay: corrupt bytes were skipped just before this record, so
     * messages of any room with ids below it may be lost. */
    bool after_gap;
};

/*
 * What retention carries forward when it retires a segment: per room, the
 * lowest id that room still wants (its ring's oldest message); a room's
 * records below it, and the records of rooms not in the set, may go. Built on
 * the loop by the journal's owner, read by the compaction thread.
 */
struct journal_keep;
struct journal_keep *journal_keep_new(size_t rooms);
/* 0, or -1 on ENOMEM. A room added twice keeps the lower id. */
int journal_keep_add(struct journal_keep *k, const char *room, size_t room_len, uint64_t min_id);
bool journal_keep_wants(const struct journal_keep *k, const char *room, size_t room_len,
                        uint64_t id);
void journal_keep_free(struct journal_keep *k);

/* Returns a new keep set (the journal frees it), or NULL to keep nothing. */
typedef struct journal_keep *journal_keep_fn(void *arg);

struct journal_options {
    const char *dir;         /* created (mode 0700, like mkdir -p) if missing */
    uint64_t segment_bytes;  /* rotate when the current segment reaches this; 0: never */
    uint64_t retain_records; /* keep at least this many newest records ... */
    uint64_t retain_bytes;   /* ... but at most this many bytes of segments */
    /* With keep: a retired segment's wanted records are carried forward
     * into the oldest segment (compaction, on a thread) instead of deleted. */
    journal_keep_fn *keep;
    void *keep_arg;
    /* For --fsync never: a rotation leaves syncing the old segment and the
     * directory to a thread (see journal_syncer.h) instead of the caller. */
    bool sync_rotation_off_loop;
};
/*
 * Retention runs after each rotation and deletes the oldest whole segments,
 * never the current one, while the segments total more than retain_bytes, or
 * while the segments after the oldest still hold retain_records records
 * without it. So at least retain_records records stay unless that would
 * exceed retain_bytes, and whole segments go at once. A limit of 0 is no
 * limit (both 0: nothing is ever deleted).
 */

/* Called for each good record, oldest first. The record's pointers are valid
 * only during the call. Returns 0, or -1 to stop opening (journal_open then
 * fails). */
typedef int journal_replay_fn(void *arg, const struct journal_record *rec);

struct journal_stats {
    uint64_t records;         /* good records replayed */
    uint64_t corrupt;         /* bad stretches and out-of-order records skipped */
    uint64_t truncated_bytes; /* torn tail cut off */
    uint64_t last_id;         /* highest id found, 0 when empty */
    size_t segments;          /* segment files; 0 until the first append creates one */
    bool trailing_gap;        /* corrupt bytes were skipped after the last good record */
};

/*
 * Opens (creating if needed) the journal in opts->dir, replays every good
 * record through `replay` (may be NULL), repairs a torn tail, and prepares the
 * newest segment for appending. Logs what it repaired or skipped. Fills
 * *stats (may be NULL). Returns NULL with a message in err (may be NULL) on
 * failure (unreadable dir, I/O error, directory in use, replay said stop),
 * having released everything it took.
 */
struct journal *journal_open(const struct journal_options *opts, journal_replay_fn *replay,
                             void *arg, struct journal_stats *stats, char *err, size_t err_cap);

/*
 * Appends one record (ids must increase). Rotates to a new segment first when
 * the current one is full, and deletes the oldest whole segments beyond the
 * retention limits. Returns 0, or -1 with errno (ENOSPC, EIO, EFBIG...) after
 * truncating away whatever part of the record reached the file, so a failed
 * append never leaves half a record to be replayed. EINVAL (nothing written)
 * when the id is not above the last one or a part is over its limit. The
 * record is encoded and written with one write(2); a rotation fdatasyncs the
 * segment it leaves if it is dirty, since journal_sync only syncs the current
 * one.
 */
int journal_append(struct journal *j, const struct journal_record *rec)
    __attribute__((warn_unused_result));

/*
 * fdatasyncs the current segment if anything was appended since the last
 * sync. 0, or -1 with errno. When the sync fails, every record appended since
 * the last good sync is cut off the file (see journal_take_failed); appends
 * fail until that cut is itself durable.
 */
int journal_sync(struct journal *j) __attribute__((warn_unused_result));

/* The lowest id cut off after a failed sync since the last call, or
 * UINT64_MAX when none was: messages from there on must not be
 * acknowledged or delivered. */
uint64_t journal_take_failed(struct journal *j);

/*
 * Removes the record just appended (whose id is id), for a message that is
 * then not published after all (out of memory). If it had been synced, the
 * removal is synced too. 0, or -1 with errno.
 */
int journal_cancel_last(struct journal *j, uint64_t id) __attribute__((warn_unused_result));

/* True when records were appended since the last journal_sync. */
bool journal_dirty(const struct journal *j);

/* Takes in a finished compaction, if any, and lets retention go on; appends
 * do this too. Never blocks. */
void journal_poll(struct journal *j);

/* Syncs and closes (waiting for a compaction in progress). */
void journal_close(struct journal *j);

/* CRC-32C (Castagnoli), as used in the record frame. Start with crc = 0. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
