/*
 * journal_compact: carries the records each room still wants out of a
 * segment that retention retires, on a thread of its own, so that neither
 * the reading, the writing, the fsync nor the unlink ever stalls the loop.
 *
 * A job merges the oldest segments (the first of them possibly the product
 * of earlier compactions): the records that the keep set wants are copied,
 * frames unchanged, in id order into a temporary file, which is synced and
 * renamed over the oldest one; the others are then unlinked and the
 * directory synced. A crash at any point leaves either the old files or the
 * new ones (a renamed file plus segments not yet unlinked only repeats
 * records, which replay skips as out of order).
 */
#ifndef SSE_JOURNAL_COMPACT_H
#define SSE_JOURNAL_COMPACT_H

#include "journal_format.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct journal_keep;

/* The temporary file a job writes; a leftover from a crash is removed at open. */
#define COMPACT_TMP_NAME "compact.tmp"

/* Segments one job retires at most. */
#define COMPACT_MAX_FILES 64

struct compact_job {
    /* Set by the caller before compact_start; owned by the job until reaped.
     * files[0] is the base (the oldest segment; the merged file takes its
     * name), the others are retired segments in id order and are unlinked. */
    int dirfd;
    char files[COMPACT_MAX_FILES][SEG_NAME_LEN + 1];
    size_t nfiles;             /* >= 1 */
    struct journal_keep *keep; /* freed by compact_reap */

    /* Results, valid once compact_done. */
    uint64_t out_bytes, out_records; /* of the merged file (0 records: none kept) */
    uint64_t dropped;                /* records not carried forward */
    int err;                         /* 0, or the errno that stopped the job */
    char what[48];                   /* the step that failed */

    atomic_bool done;
    bool running;
    pthread_t thread;
};

/* Starts the job's thread. 0, or -1 with errno (nothing was started). */
int compact_start(struct compact_job *job);
/* True once a started job has finished (never blocks). */
bool compact_done(struct compact_job *job);
/* Waits for a started job to finish, then frees its keep set. */
void compact_reap(struct compact_job *job);

#endif
