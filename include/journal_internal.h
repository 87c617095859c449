/*
 * journal_internal: the journal's state, shared by the files of the journal
 * module: journal.c (appends, syncs, rotation, retention) and
 * journal_replay.c (opening a directory and replaying it). Nothing outside
 * src/journal*.c includes it; everyone else has include/journal.h.
 */
#ifndef SSE_JOURNAL_INTERNAL_H
#define SSE_JOURNAL_INTERNAL_H

#include "journal.h"
#include "journal_compact.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal_syncer;

struct segment {
    uint64_t first_id; /* from the file name */
    uint64_t bytes;    /* file size (after any repair) */
    uint64_t records;  /* good records in it */
    bool compacted;    /* holds only records carried forward from retired segments */
};

struct journal {
    char *dir;            /* for log messages */
    int dirfd;            /* *at() calls, directory fsync, and the exclusive flock */
    int fd;               /* newest segment, O_WRONLY|O_APPEND; -1 while there is none */
    bool dirty;           /* appended since the last fdatasync */
    bool ragged;          /* a failed append could not truncate its partial record away */
    struct segment *segs; /* oldest first; the last one is the current segment */
    size_t nseg, seg_cap;
    uint64_t last_id;
    /* What the last successful fdatasync made durable in the current
     * segment, and the first record appended after it. */
    uint64_t synced_bytes, synced_records, unsynced_first_id;
    uint64_t last_bytes;  /* the current segment's size before the last append */
    bool broken;          /* a sync failed and its records are not cut away yet */
    bool fresh_segment;   /* the next append starts a new segment */
    uint64_t failed_from; /* lowest id dropped after a failed sync; UINT64_MAX: none */
    uint64_t segment_bytes, retain_records, retain_bytes;
    journal_keep_fn *keep;
    void *keep_arg;
    struct compact_job job; /* at most one compaction at a time */
    /* With opts->sync_rotation_off_loop: syncs the segments rotation leaves. */
    struct journal_syncer *syncer;
    uint8_t *scratch; /* encode buffer for appends */
    size_t scratch_cap;
};

/* Makes room for one more entry in j->segs; -1 when out of memory. */
int journal_seg_reserve(struct journal *j);

/* Releases everything the journal holds, without syncing. */
void journal_free(struct journal *j);

#endif
