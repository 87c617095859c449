/*
 * journal: segment files of CRC-checked records; see include/journal.h, and
 * include/journal_format.h for the record layout. This file appends, syncs,
 * rotates and retires segments; journal_replay.c opens and replays them.
 *
 * In memory the journal keeps one small entry per segment (first id, bytes,
 * good records) so rotation and retention never have to look at the disk.
 */
#include "journal.h"
#include "journal_compact.h"
#include "journal_internal.h"
#include "journal_syncer.h"
#include "journal_format.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An append buffer larger than this is freed after use rather than kept. */
#define SCRATCH_KEEP (1u << 20)

int journal_seg_reserve(struct journal *j)
{
    if (j->nseg < j->seg_cap) {
        return 0;
    }
    size_t cap = j->seg_cap ? j->seg_cap * 2 : 16;
    struct segment *s = realloc(j->segs, cap * sizeof *s);
    if (s == NULL) {
        return -1;
    }
    memset(s + j->seg_cap, 0, (cap - j->seg_cap) * sizeof *s);
    j->segs = s;
    j->seg_cap = cap;
    return 0;
}

void journal_free(struct journal *j)
{
    compact_reap(&j->job);
    syncer_free(j->syncer); /* before dirfd goes: it syncs the directory */
    if (j->fd >= 0) {
        close(j->fd);
    }
    if (j->dirfd >= 0) {
        close(j->dirfd); /* also drops the flock */
    }
    free(j->segs);
    free(j->scratch);
    free(j->dir);
    free(j);
}

/* ------------------------------------------------------------ writing */

static void mark_synced(struct journal *j);

/*
 * Leaves the current segment for the one just opened (new_fd). Without a
 * syncer the old segment was synced before the new one was opened, so a
 * close error has nothing left to lose. With one, the syncer syncs and
 * closes it, then syncs the directory, off the loop; the journal counts it
 * as synced now (in that mode nothing waits for durability).
 */
static void leave_segment(struct journal *j, int new_fd, bool off_loop)
{
    if (j->fd >= 0 && off_loop) {
        mark_synced(j);
        if (!syncer_submit(j->syncer, j->fd)) {
            /* The syncer is behind: do it here rather than queue without end. */
            if (fdatasync(j->fd) != 0 || fsync(j->dirfd) != 0) {
                log_error("journal: sync at rotation in %s: %s", j->dir, strerror(errno));
            }
            close(j->fd);
        }
    } else if (j->fd >= 0) {
        close(j->fd);
    }
    j->fd = new_fd;
}

/*
 * Makes a new, empty segment named by `id` the current one. The previous
 * segment is synced first if it holds unsynced appends: journal_sync only
 * knows the current fd, so they would otherwise never be made durable.
 * With a syncer (--fsync never) that and the directory sync are left to
 * its thread. On failure nothing changes (the new file, if created, is
 * removed).
 */
static int rotate(struct journal *j, uint64_t id)
{
    if (journal_seg_reserve(j) != 0) {
        errno = ENOMEM;
        return -1;
    }
    /* A broken journal repairs on the loop, as journal_sync does. */
    bool off_loop = j->syncer != NULL && j->fd >= 0 && !j->broken;
    if (j->fd >= 0 && !off_loop && journal_sync(j) != 0) {
        return -1;
    }
    char name[SEG_NAME_LEN + 1];
    journal_segment_name(name, id);
    /* O_EXCL: never append to a file this journal did not account for. */
    int fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    /* The new name must survive a crash, or records written to it could
     * vanish with the directory entry. */
    if (!off_loop && fsync(j->dirfd) != 0) {
        int e = errno;
        close(fd);
        unlinkat(j->dirfd, name, 0);
        errno = e;
        return -1;
    }
    leave_segment(j, fd, off_loop);
    j->ragged = false;
    j->fresh_segment = false;
    j->synced_bytes = 0;
    j->synced_records = 0;
    /* journal_seg_reserve above guaranteed room in j->segs; the analyzer cannot see it. */
    // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
    j->segs[j->nseg++] = (struct segment){.first_id = id};
    return 0;
}

/* The segment being appended to; NULL only before the first one is opened. */
static struct segment *current_segment(struct journal *j)
{
    return j->segs != NULL && j->nseg > 0 ? &j->segs[j->nseg - 1] : NULL;
}

static void drop_segment(struct journal *j, size_t i)
{
    j->nseg--;
    memmove(j->segs + i, j->segs + i + 1, (j->nseg - i) * sizeof j->segs[0]);
}

/* Hands the oldest n segments to the compaction thread; false if it could
 * not start (they then stay, and retention tries again later). */
static bool compact_begin(struct journal *j, size_t n)
{
    struct compact_job *job = &j->job;
    job->dirfd = j->dirfd;
    job->nfiles = n;
    for (size_t i = 0; i < n; i++) {
        journal_segment_name(job->files[i], j->segs[i].first_id);
    }
    job->keep = j->keep(j->keep_arg);
    if (job->keep == NULL || compact_start(job) != 0) {
        log_warn("journal: cannot start compacting %s: %s", j->dir,
                 job->keep ? strerror(errno) : "out of memory");
        journal_keep_free(job->keep);
        job->keep = NULL;
        return false;
    }
    return true;
}

/* True while the journal is over its limits with segments [0, first) gone:
 * over retain_bytes, or the segments after `first` still hold
 * retain_records records. */
static bool over_limits(const struct journal *j, size_t first)
{
    uint64_t total = 0, newer = 0;
    for (size_t i = first; i < j->nseg; i++) {
        total += j->segs[i].bytes;
        if (i > first) {
            newer += j->segs[i].records;
        }
    }
    return (j->retain_bytes > 0 && total > j->retain_bytes) ||
           (j->retain_records > 0 && newer >= j->retain_records);
}

/*
 * Retires the oldest segments, never the current one, while the journal is
 * over retain_bytes or while the segments after the oldest still hold
 * retain_records records. A limit of 0 is no limit. Without a keep function
 * retired segments are deleted whole; with one, they go (all at once) to the
 * compaction thread, which merges the records each room still wants into
 * the oldest one, so quiet rooms keep their history. What it carries forward
 * does not count against the limits: it is bounded by the rooms' rings.
 */
static void retain(struct journal *j)
{
    if (j->job.running) {
        return;
    }
    if (j->keep == NULL) {
        while (j->nseg > 1 && over_limits(j, 0)) {
            char name[SEG_NAME_LEN + 1];
            journal_segment_name(name, j->segs[0].first_id);
            if (unlinkat(j->dirfd, name, 0) != 0 && errno != ENOENT) {
                /* Keep it listed and try again after the next rotation. */
                log_warn("journal: cannot delete %s/%s: %s", j->dir, name, strerror(errno));
                break;
            }
            log_debug("journal: deleted %s/%s (%" PRIu64 " records, %" PRIu64 " bytes)", j->dir,
                      name, j->segs[0].records, j->segs[0].bytes);
            drop_segment(j, 0);
        }
        return;
    }
    /* A compacted base is not counted: it is what each room still wants. */
    size_t first = j->nseg > 0 && j->segs[0].compacted ? 1 : 0;
    size_t end = first;
    while (end + 1 < j->nseg && end < COMPACT_MAX_FILES - 1 && over_limits(j, end)) {
        end++;
    }
    if (end > first) {
        compact_begin(j, end);
    }
}

/* Takes in a finished compaction's result: the oldest segment now holds
 * what was carried forward, the others it merged are gone. */
static void compact_finish(struct journal *j)
{
    struct compact_job *job = &j->job;
    compact_reap(job);
    if (job->err != 0) {
        log_error("journal: compacting %s: %s: %s", j->dir, job->what, strerror(job->err));
        return;
    }
    log_info("journal: %s: retired %zu segments: %" PRIu64 " records carried forward, %" PRIu64
             " dropped",
             j->dir, job->nfiles, job->out_records, job->dropped);
    size_t gone = job->nfiles;
    if (job->out_records > 0) {
        j->segs[0].bytes = job->out_bytes;
        j->segs[0].records = job->out_records;
        j->segs[0].compacted = true;
        gone--;
    }
    for (size_t i = 0; i < gone; i++) {
        drop_segment(j, job->out_records > 0 ? 1 : 0);
    }
}

void journal_poll(struct journal *j)
{
    int e;
    unsigned failed = j->syncer ? syncer_take_errors(j->syncer, &e) : 0;
    if (failed) {
        log_error("journal: %u syncs after rotation in %s failed: %s", failed, j->dir, strerror(e));
    }
    if (compact_done(&j->job)) {
        compact_finish(j);
        retain(j);
    }
}

static int journal_repair(struct journal *j);

static void scratch_trim(struct journal *j)
{
    if (j->scratch_cap > SCRATCH_KEEP) {
        free(j->scratch);
        j->scratch = NULL;
        j->scratch_cap = 0;
    }
}

static bool record_valid(const struct journal *j, const struct journal_record *rec)
{
    return rec != NULL && rec->id > j->last_id && rec->room_len <= MAX_ROOM &&
           rec->event_len <= MAX_EVENT && rec->data_len <= MAX_DATA &&
           (rec->room != NULL || rec->room_len == 0) &&
           (rec->event != NULL || rec->event_len == 0) && (rec->data != NULL || rec->data_len == 0);
}

/* Encodes the record into j->scratch; returns its size, 0 when out of
 * memory. Encoding comes first so that a failure leaves no trace on disk. */
static size_t record_encode(struct journal *j, const struct journal_record *rec)
{
    size_t len = PAYLOAD_HDR + rec->room_len + rec->event_len + rec->data_len;
    size_t total = FRAME_HDR + len;
    if (total > j->scratch_cap) {
        uint8_t *b = malloc(total);
        if (b == NULL) {
            errno = ENOMEM;
            return 0;
        }
        free(j->scratch);
        j->scratch = b;
        j->scratch_cap = total;
    }
    uint8_t *b = j->scratch, *p = b + FRAME_HDR;
    put_le64(p, rec->id);
    p[8] = (uint8_t)rec->room_len;
    p[9] = (uint8_t)rec->event_len;
    put_le32(p + 10, (uint32_t)rec->data_len);
    size_t o = PAYLOAD_HDR;
    if (rec->room_len > 0) {
        memcpy(p + o, rec->room, rec->room_len);
        o += rec->room_len;
    }
    if (rec->event_len > 0) {
        memcpy(p + o, rec->event, rec->event_len);
        o += rec->event_len;
    }
    if (rec->data_len > 0) {
        memcpy(p + o, rec->data, rec->data_len);
    }
    put_le32(b, JOURNAL_MAGIC);
    put_le32(b + 4, (uint32_t)len);
    put_le32(b + 8, crc32c(0, p, len));
    return total;
}

/*
 * Makes the current segment ready to take a record with this id: repairs
 * what a failed sync or a torn append left, and rotates when the segment is
 * full, but only to a name above the current one: segments are ordered by
 * name, and the current segment can be named above the next id when its
 * first record was lost (a torn append, or unsynced records of the previous
 * segment lost in a crash while the new name survived). Such a segment just
 * grows past segment_bytes until the ids catch up with its name.
 */
static int segment_ready(struct journal *j, uint64_t id, bool *rotated)
{
    if (j->broken && journal_repair(j) != 0) {
        return -1;
    }
    if (j->fd >= 0 && j->ragged) {
        /* An earlier failed append left part of a record behind. */
        if (ftruncate(j->fd, (off_t)j->segs[j->nseg - 1].bytes) != 0) {
            return -1;
        }
        j->ragged = false;
    }
    const struct segment *last = current_segment(j);
    bool full =
        j->segment_bytes > 0 && last != NULL && last->bytes > 0 && last->bytes >= j->segment_bytes;
    if (last == NULL || ((full || j->fresh_segment) && id > last->first_id)) {
        if (rotate(j, id) != 0) {
            return -1;
        }
        *rotated = true;
    }
    return 0;
}

/* Writes the encoded record at the end of the current segment, whole or not
 * at all: whatever part of it made it to the file on a failure is cut off,
 * so a later append does not follow half a record. */
static int record_write(struct journal *j, size_t total)
{
    struct segment *cur = &j->segs[j->nseg - 1];
    size_t done = 0;
    while (done < total) {
        ssize_t w = write(j->fd, j->scratch + done, total - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            if (w == 0) {
                errno = EIO; /* no progress and no reason: do not spin */
            }
            int e = errno;
            if (done > 0 && ftruncate(j->fd, (off_t)cur->bytes) != 0) {
                log_error("journal: cannot remove a partial record from %s: %s", j->dir,
                          strerror(errno));
                j->ragged = true;
            }
            errno = e;
            return -1;
        }
        done += (size_t)w;
    }
    j->last_bytes = cur->bytes;
    cur->bytes += total;
    cur->records++;
    return 0;
}

int journal_append(struct journal *j, const struct journal_record *rec)
{
    if (j == NULL) {
        errno = EINVAL;
        return -1;
    }
    journal_poll(j);
    if (!record_valid(j, rec)) {
        errno = EINVAL;
        return -1;
    }
    bool rotated = false;
    size_t total = record_encode(j, rec);
    int ret = -1;
    if (total > 0 && segment_ready(j, rec->id, &rotated) == 0 && record_write(j, total) == 0) {
        j->last_id = rec->id;
        if (!j->dirty) {
            j->unsynced_first_id = rec->id;
        }
        j->dirty = true;
        ret = 0;
    }
    int e = errno;
    if (rotated) {
        retain(j);
    }
    scratch_trim(j);
    errno = e;
    return ret;
}

static void mark_synced(struct journal *j)
{
    const struct segment *cur = current_segment(j);
    if (cur == NULL) {
        return;
    }
    j->dirty = false;
    j->synced_bytes = cur->bytes;
    j->synced_records = cur->records;
}

/*
 * After a failed fdatasync the kernel may already have dropped the pages it
 * could not write and marked them clean, so a later fdatasync can succeed
 * without them (PostgreSQL learned this in 2018): nothing written since the
 * last good sync is trusted. It is cut off (the truncation itself synced, so
 * the records cannot come back at a restart) and the next append starts a
 * new segment file. While the cut cannot be made durable, every append fails.
 */
static int journal_repair(struct journal *j)
{
    struct segment *cur = current_segment(j);
    if (cur == NULL) {
        errno = EIO;
        return -1;
    }
    if (ftruncate(j->fd, (off_t)j->synced_bytes) != 0 || fdatasync(j->fd) != 0) {
        log_error("journal: cannot cut unsynced records from %s: %s", j->dir, strerror(errno));
        errno = EIO;
        return -1;
    }
    cur->bytes = j->synced_bytes;
    cur->records = j->synced_records;
    j->broken = false;
    j->ragged = false;
    j->dirty = false;
    j->fresh_segment = true;
    return 0;
}

/* Cuts back to the last good sync after a failure; with `unsynced_from`
 * (0: none) the sync point moves back so that id and everything after it
 * go too. */
static int journal_fail(struct journal *j, uint64_t unsynced_from)
{
    if (unsynced_from && (!j->dirty || unsynced_from < j->unsynced_first_id)) {
        j->unsynced_first_id = unsynced_from;
    }
    j->broken = true;
    if (j->unsynced_first_id < j->failed_from) {
        j->failed_from = j->unsynced_first_id;
    }
    return journal_repair(j);
}

int journal_sync(struct journal *j)
{
    if (j->broken) {
        return journal_repair(j);
    }
    if (!j->dirty) {
        return 0;
    }
    if (fdatasync(j->fd) != 0) {
        int e = errno;
        log_error("journal: fdatasync %s: %s; dropping the records since the last sync", j->dir,
                  strerror(e));
        (void)journal_fail(j, 0);
        errno = e;
        return -1;
    }
    mark_synced(j);
    return 0;
}

uint64_t journal_take_failed(struct journal *j)
{
    uint64_t f = j->failed_from;
    j->failed_from = UINT64_MAX;
    return f;
}

int journal_cancel_last(struct journal *j, uint64_t id)
{
    struct segment *cur = current_segment(j);
    if (j->broken || cur == NULL || id != j->last_id || cur->bytes == j->last_bytes) {
        errno = EINVAL; /* not the last record, or already cancelled */
        return -1;
    }
    bool was_synced = j->synced_bytes > j->last_bytes;
    if (was_synced) {
        /* The record was durable: so must its removal be. */
        j->synced_bytes = j->last_bytes;
        j->synced_records = cur->records - 1;
    }
    if (ftruncate(j->fd, (off_t)j->last_bytes) != 0 || (was_synced && fdatasync(j->fd) != 0)) {
        return journal_fail(j, id);
    }
    cur->bytes = j->last_bytes;
    cur->records--;
    return 0;
}

bool journal_dirty(const struct journal *j)
{
    return j->dirty;
}

void journal_close(struct journal *j)
{
    if (j == NULL) {
        return;
    }
    /* A compaction still running holds back the retention that waited for
     * it (journal_poll would run it at the next append): finish both, as
     * often as that starts another, waiting for the thread each time. */
    for (int rounds = 0; j->job.running && rounds < 64; rounds++) {
        compact_finish(j); /* waits for the thread */
        retain(j);
    }
    if (j->job.running) {
        compact_finish(j);
    }
    if (journal_sync(j) != 0) {
        log_error("journal: cannot sync %s: %s", j->dir, strerror(errno));
    }
    journal_free(j);
}
