/*
 * journal_syncer: with --fsync never, a rotation hands the segment it leaves
 * to this thread, which fdatasyncs and closes it and then fsyncs the
 * directory (making the new segment's name durable), so that none of these
 * stalls the loop: with nothing synced before, the old segment can hold
 * up to --segment-bytes of dirty pages.
 *
 * Nothing waits for these syncs (that mode promises no durability); a
 * failure is counted and reported on the loop by syncer_take_errors.
 */
#ifndef SSE_JOURNAL_SYNCER_H
#define SSE_JOURNAL_SYNCER_H

#include <stdbool.h>

struct journal_syncer;

/* Starts the thread; dirfd is borrowed and must outlive the syncer. NULL
 * with errno on failure. */
struct journal_syncer *syncer_new(int dirfd);
/* Hands fd over (the syncer closes it). False when the queue is full: the
 * caller keeps fd and must sync and close it itself. */
bool syncer_submit(struct journal_syncer *s, int fd);
/* Failed syncs since the last call; *err gets the errno of the last one. */
unsigned syncer_take_errors(struct journal_syncer *s, int *err);
/* Syncs what is queued, stops the thread and frees. NULL is ignored. */
void syncer_free(struct journal_syncer *s);

#endif
