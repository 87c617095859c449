#include "server_journal.h"

#include "conn.h"
#include "journal.h"
#include "log.h"
#include "room.h"
#include "server.h"

#include <string.h>

struct replay_state {
    struct server *srv;
    bool first;
};

static int replay_record(void *arg, const struct journal_record *rec)
{
    struct replay_state *rs = arg;
    struct hub *hub = rs->srv->hub;
    if (rs->first) {
        hub_restore_from(hub, rec->id);
        rs->first = false;
    }
    if (rec->after_gap) {
        /* The skipped bytes held messages of unknown rooms: a resume from
         * before this record must be told it may have missed some. */
        hub_mark_lost(hub, rec->id - 1);
    }
    const char *name = rec->room_len ? rec->room : ROOM_DEFAULT;
    size_t len = rec->room_len ? rec->room_len : sizeof ROOM_DEFAULT - 1;
    struct room *room = hub_room(hub, name, len);
    if (!room) {
        /* At --max-rooms every room made so far is still marked new; once
         * settled, the least recently used one can make way for this one. */
        hub_flush(hub);
        room = hub_room(hub, name, len);
    }
    if (!room ||
        room_restore(room, rec->id, rec->event, rec->event_len, rec->data, rec->data_len) < 0) {
        log_warn("journal: cannot restore message %llu", (unsigned long long)rec->id);
    }
    return 0;
}

/* What journal retention carries forward: each room's ring, from its oldest
 * message (the default room also under "", its name in older records). */
struct keep_walk {
    struct journal_keep *keep;
    bool failed;
};

static void keep_room(const struct room *room, void *arg)
{
    struct keep_walk *w = arg;
    uint64_t first = room_first_id(room);
    const char *name = room_name(room);
    if (first == UINT64_MAX) {
        return;
    }
    w->failed |= journal_keep_add(w->keep, name, strlen(name), first) != 0;
    if (strcmp(name, ROOM_DEFAULT) == 0) {
        w->failed |= journal_keep_add(w->keep, "", 0, first) != 0;
    }
}

static struct journal_keep *journal_keep_rings(void *arg)
{
    struct server *srv = arg;
    struct keep_walk w = {journal_keep_new(hub_room_count(srv->hub) + 1), false};
    if (w.keep != NULL) {
        hub_foreach_room(srv->hub, keep_room, &w);
    }
    if (w.failed) {
        journal_keep_free(w.keep);
        return NULL;
    }
    return w.keep;
}

int server_open_journal(struct server *srv)
{
    const struct config *cfg = &srv->cfg;
    char err[256];
    struct journal_options opts = {
        .dir = cfg->data_dir,
        .segment_bytes = cfg->segment_bytes,
        .retain_records = cfg->retain_records ? cfg->retain_records : (uint64_t)cfg->history * 10,
        .retain_bytes = cfg->retain_bytes,
        .keep = journal_keep_rings,
        .keep_arg = srv,
        .sync_rotation_off_loop = cfg->fsync_mode == FSYNC_NEVER,
    };
    struct replay_state rs = {srv, true};
    struct journal_stats st = {0};
    srv->journal = journal_open(&opts, replay_record, &rs, &st, err, sizeof err);
    if (!srv->journal) {
        log_error("journal: %s", err);
        return -1;
    }
    /* Ids continue past the highest one on disk, and past the time-based
     * base, so that none is ever issued twice. */
    hub_set_next_id(srv->hub, st.last_id + 1);
    if (st.trailing_gap) {
        hub_mark_lost(srv->hub, hub_next_id(srv->hub) - 1);
    }
    hub_set_deferred_commit(srv->hub, cfg->fsync_mode == FSYNC_BATCH);
    hub_flush(srv->hub); /* frees nothing in use; settles the rooms just made */
    return 0;
}

/* Whether the records of a connection's held messages first..last were
 * cut off by a failed sync (hub lock). */
static enum conn_failed ids_failed(const struct server *srv, uint64_t first, uint64_t last)
{
    enum conn_failed f = CONN_FAILED_NONE;
    for (unsigned i = 0; i < FAILED_RANGES; i++) {
        const struct id_range *r = &srv->failed[i];
        if (first >= r->from && first < r->to) {
            return CONN_FAILED_FIRST;
        }
        if (r->from <= last && r->to > first) {
            f = CONN_FAILED_LATER;
        }
    }
    return f;
}

/* --fsync batch: one sync for what every loop appended since the last one
 * (whoever comes first syncs; the others find the journal clean), then the
 * frames become visible. A failed sync (here, or one a rotation did) cut
 * those records off the journal: their messages are dropped unseen, and the
 * ids are remembered so that their publishers, on whatever loop, are
 * answered 503. Hub lock held. */
void server_group_commit(struct server *srv)
{
    if (journal_dirty(srv->journal)) {
        counter_add(&srv->stats.journal_syncs, 1);
        if (journal_sync(srv->journal) != 0) {
            counter_add(&srv->stats.journal_errors, 1);
        }
    }
    uint64_t failed_from = journal_take_failed(srv->journal);
    if (failed_from != UINT64_MAX) {
        counter_sub(&srv->stats.published, hub_cancel_from(srv->hub, failed_from));
        struct id_range *r = &srv->failed[srv->failed_next++ % FAILED_RANGES];
        r->from = failed_from;
        r->to = hub_next_id(srv->hub);
    }
    hub_commit(srv->hub);
}

enum conn_failed server_held_failed(void *arg, uint64_t first, uint64_t last)
{
    struct server *srv = arg;
    hub_lock(srv->hub);
    enum conn_failed f = ids_failed(srv, first, last);
    hub_unlock(srv->hub);
    return f;
}
