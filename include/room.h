/*
 * room: rooms, their rings of encoded SSE frames, and their subscribers.
 *
 * Each room keeps the last `history` messages (and at most `history_bytes`
 * of frames) as pre-encoded SSE frames in a ring indexed by a room-local
 * sequence number. A subscriber is only a cursor into that ring (sequence of
 * the next frame it is owed, and how many bytes of it were already written),
 * so memory per subscriber does not depend on traffic, fan-out copies
 * nothing, and history, Last-Event-ID resume and live delivery are the same
 * code path.
 *
 * This module does no I/O: it hands out iovecs over frame bytes and is told
 * how many bytes were written. The hub calls `ready` for each caught-up
 * subscriber of a room that received messages, from hub_flush, which the
 * server runs once per loop iteration: several messages published in one
 * iteration then leave in one writev per subscriber.
 *
 * Threads: one hub serves every event loop ("part"). Rooms, rings, ids and
 * limits are changed under the hub lock (hub_lock); each subscriber belongs
 * to the part that subscribed it, and each part flushes only its own
 * subscribers. The fan-out reads frames without the lock (room_sub_iov,
 * room_sub_advance): frames are immutable, ring positions are atomics, and
 * evicted frames are freed through quiescent-state reclamation (qsbr.h),
 * so the hot path costs no lock and no atomic read-modify-write per
 * subscriber per message. Unless said otherwise, a function here must be
 * called with the hub lock held.
 */
#ifndef SSE_ROOM_H
#define SSE_ROOM_H

#include "list.h"
#include "qsbr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define ROOM_NAME_MAX   64
#define ROOM_CLIENT_MAX 64
/* The room of requests that name none: an ordinary room with this name, so
 * it shows in /stats and /metrics like any other. */
#define ROOM_DEFAULT "default"

struct hub;
struct room;

/* Embedded in the connection that owns it. Fields are private to room.c. */
struct subscriber {
    /* What the fan-out reads for every subscriber comes first, so walking a
     * room touches as few cache lines per subscriber as possible. */
    struct list node; /* in the room's live or waiting list */
    struct room *room;
    uint64_t cursor; /* ring sequence of the next frame owed */
    size_t offset;   /* bytes of that frame already written */
    uint32_t gen;    /* the room's generation it joined (room_reset) */
    uint8_t client_len;
    uint8_t part;                 /* the loop it belongs to */
    bool waiting;                 /* its socket refused bytes: waits for EPOLLOUT */
    char client[ROOM_CLIENT_MAX]; /* ?client= id for sender exclusion */
};

/* Called from hub_flush, without the hub lock, for a subscriber of the
 * flushing part that now owes bytes. It may unsubscribe (close) the
 * subscriber. */
typedef void hub_ready_fn(struct subscriber *sub, void *arg);

struct hub_limits {
    unsigned history;     /* frames per room, >= 1 */
    size_t history_bytes; /* frame bytes per room; the newest frame is always kept */
    unsigned max_rooms;
    size_t max_memory; /* all rings together (see hub_memory); 0: no limit */
    unsigned parts;    /* event loops sharing the hub; 0 means 1 */
};

/* Called, with the hub lock held, when part's flush has work; the owner
 * arranges for hub_flush to run on that part's loop soon (from another
 * thread: a wake-up). Called once until that flush has run. */
typedef void hub_schedule_fn(void *arg, unsigned part);

/* Called, with the hub lock held, when a room gets its first subscriber
 * (watched true) or loses its last one (false), whatever loop they are on:
 * a cluster follows exactly the rooms someone here listens to. */
typedef void hub_watch_fn(void *arg, struct room *room, bool watched);
void hub_set_watch(struct hub *hub, hub_watch_fn *fn, void *arg);

/* Creates a hub whose first message id will be first_id. NULL on ENOMEM. */
struct hub *hub_new(const struct hub_limits *limits, uint64_t first_id, hub_ready_fn *ready,
                    hub_schedule_fn *schedule, void *arg);
/* Frees every room and frame; subscribers must have been removed first,
 * and no loop may run any more. */
void hub_free(struct hub *hub);

/* The hub lock (recursive). Held for what a request does to the hub: a
 * publish with its journal record, a subscribe with its start, the stats. */
void hub_lock(struct hub *hub);
void hub_unlock(struct hub *hub);

/* Any thread, no lock: the calling thread serves this part from now on
 * (default 0). Decides whose subscribers hub_flush writes to and who frees
 * a room a request created. */
void hub_bind_part(unsigned part);

/* Any thread, no lock: the reclamation domain of the frames, which the
 * loops' quiescent points drive (qsbr_online/offline with their part as
 * the reader), and which the server also uses for what its loops read
 * without a lock. */
struct qsbr *hub_qsbr(struct hub *hub);

/* 1 when name[0..len) is a valid room name: 1..ROOM_NAME_MAX of [A-Za-z0-9._-]. */
bool room_name_valid(const char *name, size_t len);

/*
 * Finds a room by name (len 0: the default room), creating it when absent.
 * At max_rooms, the least recently used room without subscribers is evicted
 * (with its history) to make space; when every room has subscribers, NULL.
 * The returned room lives while it has subscribers or retained frames, and
 * at least until the end of the current loop iteration.
 */
struct room *hub_room(struct hub *hub, const char *name, size_t len);

size_t hub_room_count(const struct hub *hub);

/* Finds a room without creating it; NULL when absent. */
struct room *hub_room_find(struct hub *hub, const char *name, size_t len);

/* Calls fn for every room (in no particular order). fn must not create or
 * free rooms. */
void hub_foreach_room(const struct hub *hub, void (*fn)(const struct room *room, void *arg),
                      void *arg);
uint64_t hub_last_id(const struct hub *hub);

struct publish_result {
    uint64_t id;       /* the message's id */
    size_t recipients; /* subscribers it will be written to */
};

/*
 * Encodes a message once as an SSE frame and appends it to the room's ring,
 * evicting the oldest frames beyond the limits. `event` (NULL/0 for the
 * default type) must be valid per sse_event_type_valid; `client` (NULL/0 for
 * none) excludes subscribers with the same client id. 0, or -1 with errno
 * ENOMEM, or ENOBUFS when max_memory is reached and nothing can be evicted.
 *
 * Eviction never passes a subscriber whose socket still takes bytes (one not
 * marked waiting): until the next hub_flush has written to it, the frames it
 * is owed stay, even beyond `history` and `history_bytes`. Only a subscriber
 * whose own socket refused bytes can fall out of the ring.
 */
int room_publish(struct room *room, const char *event, size_t event_len, const char *data,
                 size_t data_len, const char *client, size_t client_len, struct publish_result *res)
    __attribute__((warn_unused_result));

/*
 * room_publish with an id given by someone else (a cluster's store, which
 * numbers each room's messages itself): it must be above every id the
 * room retains, else -1 with errno EINVAL and nothing is done; the hub's
 * next id moves past it. Otherwise as room_publish.
 */
int room_publish_id(struct room *room, uint64_t id, const char *event, size_t event_len,
                    const char *data, size_t data_len, const char *client, size_t client_len,
                    struct publish_result *res) __attribute__((warn_unused_result));

/*
 * For journal replay at start-up: appends a message with the id it had
 * (ids must increase within the room; the hub's next id moves past it).
 * 0, or -1 on ENOMEM or an id out of order.
 */
int room_restore(struct room *room, uint64_t id, const char *event, size_t event_len,
                 const char *data, size_t data_len) __attribute__((warn_unused_result));

/*
 * The room's history is gone elsewhere (a cluster's store lost it): every
 * retained frame is dropped, a resume from any id issued or seen so far
 * gets `event: reset`, and every current subscriber, on every loop, counts
 * as lagged from now on, so that its loop closes it at its next flush (it
 * reconnects and is told). New subscribers join the new generation.
 */
void room_reset(struct room *room);

/* ---- for a cluster (cluster.h): the room's copy of what a store holds */

/* A connection waits to join the room until the cluster has read it: like
 * a subscriber, it keeps the room watched (hub_set_watch) and alive. */
void room_park(struct room *room);
void room_unpark(struct room *room);
/* Bumped each time the room becomes watched, so that the answer to a read
 * started for an earlier watch is not taken for the current one. */
uint32_t room_watch_seq(const struct room *room);
/* The ring holds what the store held when it was last read, and follows it
 * since: subscribers may join. Cleared when the room becomes unwatched. */
bool room_ready(const struct room *room);
void room_set_ready(struct room *room, bool ready);
/* The store's life of the room's ids (0: none known), and from which id on
 * the ring is complete: ids up to base may be gone (resumes from below it
 * get a reset). With reset, the ring's frames are dropped and every
 * subscriber closed first (room_reset): the store lost what they had. */
uint64_t room_epoch(const struct room *room);
void room_set_epoch(struct room *room, uint64_t epoch, uint64_t base, bool reset);
/* The newest retained message's id; 0 when none is retained. */
uint64_t room_newest_id(const struct room *room);

/* Before replaying a journal whose first record is first_id: resume requests
 * for older ids get a reset (those messages are gone), newer ones resume. */
void hub_restore_from(struct hub *hub, uint64_t first_id);

/* The id the next published message will get; and raising it (never
 * lowering) before serving, e.g. past a time-based base after a replay. */
uint64_t hub_next_id(const struct hub *hub);
void hub_set_next_id(struct hub *hub, uint64_t id);
/* Never issues `id` (it was spent on a message that failed): the next id
 * moves past it. Unlike hub_set_next_id, hidden frames stay hidden. */
void hub_skip_id(struct hub *hub, uint64_t id);

/*
 * With deferred commit (a journal synced once per loop iteration), published
 * frames are kept back from every subscriber until hub_commit says the
 * journal has them on disk; without it they are visible at once.
 */
void hub_set_deferred_commit(struct hub *hub, bool deferred);
void hub_commit(struct hub *hub);

/* Memory held by every ring (frames, their headers and slots), and the cap. */
size_t hub_memory(const struct hub *hub);
size_t hub_max_memory(const struct hub *hub);

/*
 * Drops every frame with an id from first_id on (published in this loop
 * iteration and not yet visible: their journal sync failed). They must be
 * the newest frames of their rooms. Cursors past the new head are pulled
 * back. Returns the number of frames dropped.
 */
size_t hub_cancel_from(struct hub *hub, uint64_t first_id);

/* Ids at or below `id` may belong to lost messages in any room (a corrupt
 * journal stretch): a resume from below it gets a reset. */
void hub_mark_lost(struct hub *hub, uint64_t id);

/* The oldest retained message's id; UINT64_MAX when none is retained. */
uint64_t room_first_id(const struct room *room);

/* Number of retained frames, and their bytes. */
size_t room_frames(const struct room *room);
size_t room_bytes(const struct room *room);
size_t room_subscribers(const struct room *room);
const char *room_name(const struct room *room);
/* Messages room_publish added to the room since it was created; and those
 * since the last hub_mark_published (which sets every room's mark). */
uint64_t room_published(const struct room *room);
uint64_t room_published_recent(const struct room *room);
void hub_mark_published(struct hub *hub);

/* Where a new subscriber starts. */
struct room_start {
    uint64_t cursor;    /* ring sequence of the first frame to send */
    bool reset;         /* messages after the requested id may be lost */
    uint64_t oldest_id; /* with reset: oldest id retained, or the next id when none */
};

/* Live only: start at the head (before any frame still waiting for its
 * journal sync, which it then gets too). */
struct room_start room_start_live(const struct room *room);
/* The last n retained messages, then live. */
struct room_start room_start_history(const struct room *room, uint64_t n);
/* Everything after last_id that is retained; reset when some of it may be
 * gone (older than the ring, or an id this server never issued). */
struct room_start room_start_after(const struct room *room, uint64_t last_id);

/* What a new subscriber asked for: a resume after last_id, else the last
 * `history` messages (0: live only). */
struct room_want {
    bool resume;
    uint64_t last_id; /* UINT64_MAX: an id that cannot be read, so a reset */
    uint64_t history;
};
/* The start for it: room_start_after, _history or _live. */
struct room_start room_start_want(const struct room *room, const struct room_want *want);

/* Joins the room at start->cursor. The subscriber struct must be zeroed, or
 * previously unsubscribed; client may be NULL. */
void room_subscribe(struct room *room, struct subscriber *sub, const struct room_start *start,
                    const char *client, size_t client_len);
/* Leaves the room; a no-op when not subscribed. Takes the lock itself. */
void room_unsubscribe(struct subscriber *sub);

/*
 * Fills at most max_iov iovecs with the bytes the subscriber is owed, in
 * order, stopping once max_bytes are covered (the last iovec may go past it).
 * Returns the number of iovecs; 0 when it is caught up. The iovecs point into
 * frames that stay valid until the end of the loop iteration. No lock:
 * called by the subscriber's own part.
 */
size_t room_sub_iov(struct subscriber *sub, struct iovec *iov, size_t max_iov, size_t max_bytes);
/* True when no frame is partly written: bytes may go to the stream now. */
static inline bool room_sub_between_frames(const struct subscriber *sub)
{
    return !sub->waiting && sub->offset == 0;
}

/* Records that n bytes of what room_sub_iov handed out were written (no
 * lock, the subscriber's own part).
 * Returns how many frames were thereby written in full: the deliveries. The
 * subscriber's own frames it moves past (sender exclusion) are not counted. */
size_t room_sub_advance(struct subscriber *sub, size_t n);
/* True when the subscriber fell out of the ring: it is owed frames that were
 * evicted, so it can never be served in order and must be closed. No lock. */
bool room_sub_lagged(const struct subscriber *sub);
/* Of those, one whose room was reset (room_reset) since it joined. No lock. */
bool room_sub_was_reset(const struct subscriber *sub);
/* Marks a subscriber as waiting for its socket, which refused bytes (it is
 * then not passed to `ready` until unmarked, and frames it is owed may be
 * evicted), or as writable again. A subscriber that stopped only because of
 * a per-wakeup write budget is not waiting: it stays live. Takes the lock
 * itself, and only when the state changes. */
void room_sub_set_waiting(struct subscriber *sub, bool waiting);

/*
 * Takes the lock itself; runs on the calling thread's part (hub_bind_part).
 * For every room that received frames since the last call: calls `ready` for
 * each live subscriber that is owed frames, then trims the ring back to its
 * limits (never past a live subscriber), then calls `ready` for each waiting
 * subscriber that fell out of the ring (so that a reader that stopped reading
 * is closed even though its socket never becomes writable again). Then frees
 * rooms left with neither subscribers nor frames. Only this part's
 * subscribers; `ready` runs without the lock. Returns the number of
 * `ready` calls.
 */
size_t hub_flush(struct hub *hub);

/*
 * A publisher's answer goes out once every loop has written its message to
 * its caught-up subscribers. hub_flush_targets (lock held, after the
 * publishes) fills targets[0..parts) with, for each part, the flush that
 * will have covered everything published so far: the one running now, or
 * the next one when rooms are queued for it. hub_flushes_done (no lock)
 * says whether every part has finished its target flush; when not, it
 * registers `part` so that `schedule(arg, part)` is called (possibly from
 * another thread, without the lock) once a missing flush finishes.
 */
unsigned hub_parts(const struct hub *hub);
void hub_flush_targets(struct hub *hub, uint64_t *targets);
bool hub_flushes_done(struct hub *hub, const uint64_t *targets, unsigned part);

#endif
