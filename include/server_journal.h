/*
 * server_journal: the server's side of the journal -- replaying it into the
 * hub at start, what retention must carry forward (each room's ring), the
 * group commit of --fsync batch shared by every loop, and which held
 * publishers a failed sync concerns. Everything here runs under the hub
 * lock, which also guards the journal.
 */
#ifndef SSE_SERVER_JOURNAL_H
#define SSE_SERVER_JOURNAL_H

#include "conn.h"

#include <stdint.h>

struct server;

/* Opens --data-dir and replays it into the hub. 0, or -1 after logging. */
int server_open_journal(struct server *srv);

/* --fsync batch, hub lock held: one sync for what every loop appended since
 * the last one, then the frames become visible; a failed sync's messages
 * are dropped and their id range remembered. */
void server_group_commit(struct server *srv);

/* conn_failed_fn over the remembered ranges (takes the hub lock). */
enum conn_failed server_held_failed(void *arg, uint64_t first, uint64_t last);

#endif
