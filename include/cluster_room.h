/*
 * cluster_room: for one room on one node of a cluster, what to do with what
 * Redis says about it. A pure state machine: no I/O, no clock, no allocation.
 *
 * Inputs: the room gaining or losing its local subscribers (track/untrack),
 * its channel subscribed on Redis or the connection lost, a live PUB/SUB
 * message, the pieces of a backfill reply (its messages, then its verdict).
 * Outputs, through the caller's callback, in the order they must happen:
 *   DELIVER   hand the message to the local ring;
 *   BACKFILL  read the room after an id (cluster_proto's read script);
 *   START     the ring starts at (epoch, base): nothing was held before;
 *   RESET     what the ring holds cannot be continued (Redis lost data, or
 *             the messages after it were trimmed): tell the subscribers, and
 *             go on from (epoch, base).
 * Between two START/RESET actions every DELIVER is base + 1, base + 2, ...:
 * in order, each once, no hole. After a RESET the ids may start lower than
 * before (a new epoch's time base comes from another node's clock).
 *
 * The rules (Centrifugo's design, adapted):
 *   - subscribe first, then read: no backfill goes out before the channel is
 *     subscribed, so nothing published in between can fall through;
 *   - at most one backfill in flight; live messages arriving meanwhile are
 *     kept, copied into the caller's buffer, and applied after the
 *     backfill's messages, those already delivered skipped; when the buffer
 *     is full it is emptied and the room reads again from its last id once
 *     the backfill in flight has answered;
 *   - a live message past last + 1 starts a backfill from last;
 *   - every (re)subscription backfills from the last id;
 *   - an epoch other than the known one means Redis lost the room's data:
 *     RESET, and the new epoch's messages from then on. A live message of
 *     another epoch only starts a backfill: the reply, Redis at one
 *     instant, decides which life is current, so a late message of a life
 *     already gone never resets the ring. Messages of the epoch just left
 *     are ignored.
 *
 * The struct is the caller's (one per room, embedded or not); the buffer for
 * live messages too, so memory is fixed when the room is set up. The
 * callback must not call back into the same room. Not thread-safe: one
 * room is driven by one thread at a time (its loop's).
 */
#ifndef SSE_CLUSTER_ROOM_H
#define SSE_CLUSTER_ROOM_H

#include "cluster_proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Messages are cluster_proto's struct cluster_msg, views into the caller's
 * bytes (epoch: the room life it belongs to, the first id of that life; id:
 * the event id clients see); backfill verdicts its enum
 * cluster_backfill_result. */
enum cluster_room_kind {
    CLUSTER_ROOM_DELIVER,
    CLUSTER_ROOM_BACKFILL,
    CLUSTER_ROOM_START,
    CLUSTER_ROOM_RESET,
};

struct cluster_room_action {
    enum cluster_room_kind kind;
    /* DELIVER: the message, valid during the call only. */
    const struct cluster_msg *msg;
    /* BACKFILL: the epoch the reader holds (0: any) and the id after which
     * to read (0: from the oldest retained), as cluster_proto_parse_backfill
     * takes them. START/RESET: the room's epoch from now on (0 on a RESET:
     * Redis holds nothing for the room). */
    uint64_t epoch;
    uint64_t after;
    /* START/RESET: the next message delivered will be base + 1. */
    uint64_t base;
    /* BACKFILL: handed back with the reply, so a reply to a request the
     * room has since forgotten (connection lost, untracked) is ignored. */
    uint32_t seq;
};

/* Called for each action. For BACKFILL, returns 0 when the command went
 * out, -1 when it could not (not connected, output full): the room then
 * waits for cluster_room_retry, a live message or a new subscription. The
 * return value of the other kinds is ignored. */
typedef int cluster_room_fn(const struct cluster_room_action *a, void *arg);

/* What became of a live message. */
enum cluster_room_verdict {
    CLUSTER_ROOM_DELIVERED, /* delivered now */
    CLUSTER_ROOM_HELD,      /* kept until the backfill it waits for answers */
    CLUSTER_ROOM_DROPPED,   /* buffer full: the backfill after this one reads it */
    CLUSTER_ROOM_OLD,       /* delivered already: a duplicate or older id */
    CLUSTER_ROOM_STALE,     /* of the epoch the room has left */
    CLUSTER_ROOM_UNTRACKED, /* the room has no local subscribers */
};

/* A backfill reply's verdict: the values of cluster_proto's
 * enum cluster_backfill_result. */
enum { CLUSTER_ROOM_IDLE, CLUSTER_ROOM_PENDING, CLUSTER_ROOM_FLIGHT };

/* Fields private to cluster_room.c. */
struct cluster_room {
    cluster_room_fn *fn;
    void *arg;
    unsigned char *buf; /* live messages held during a backfill */
    size_t cap, used;
    uint64_t epoch; /* the room's life as known here, 0: none */
    uint64_t last;  /* the last id delivered, or the base; valid when based */
    uint64_t stale; /* the epoch left at the last change, 0: none */
    uint32_t seq;   /* of the last backfill asked */
    uint8_t fill;   /* CLUSTER_ROOM_IDLE, _PENDING (needed, not sent), _FLIGHT */
    bool tracked, subscribed;
    bool based;    /* the ring was told (epoch, last) */
    bool lost;     /* the next base is a RESET, not a START */
    bool again;    /* read again once the backfill in flight answers */
    bool progress; /* the backfill in flight handed out a message */
};

/* Sets the room up, untracked. buf[0..cap) holds live messages while a
 * backfill is in flight (cap 0: none held, each is read again instead). */
void cluster_room_init(struct cluster_room *r, void *buf, size_t cap, cluster_room_fn *fn,
                       void *arg);

/*
 * The room has local subscribers now: the caller subscribes to its channel.
 * epoch and last say what the local ring already holds of it (0, 0:
 * nothing), so a room tracked again continues from there rather than
 * reading its history again. No effect when already tracked.
 */
void cluster_room_track(struct cluster_room *r, uint64_t epoch, uint64_t last);

/* The room has no local subscribers any more: everything is forgotten, a
 * backfill in flight included; the caller unsubscribes. */
void cluster_room_untrack(struct cluster_room *r);

/* Redis confirmed the subscription to the room's channel (first time or
 * after a reconnect): read from the last id. */
void cluster_room_subscribed(struct cluster_room *r);

/* Someone needs what Redis holds now: a read goes out (once subscribed;
 * after the one in flight, if any), whatever the room believes it has. */
void cluster_room_refresh(struct cluster_room *r);

/* The connection to Redis was lost: the subscription is gone, a backfill in
 * flight will not be answered, held messages are dropped (the backfill
 * after the next subscription reads them). */
void cluster_room_link_down(struct cluster_room *r);

/* Sends a backfill that is needed but could not go out (the callback
 * refused it, or its reply was an error). Call from a timer or when the
 * commands connection is back. */
void cluster_room_retry(struct cluster_room *r);

/* A live message from the room's channel. */
enum cluster_room_verdict cluster_room_message(struct cluster_room *r, const struct cluster_msg *m);

/* One message of the reply to backfill seq, in order, before its end. */
void cluster_room_backfill_msg(struct cluster_room *r, uint32_t seq, const struct cluster_msg *m);

/* The end of the reply to backfill seq: its verdict and the room's epoch and
 * top in Redis when it was read (0, 0: no data; ignored for an error). */
void cluster_room_backfill_end(struct cluster_room *r, uint32_t seq,
                               enum cluster_backfill_result res, uint64_t epoch, uint64_t top);

/* The room's epoch as known here (0: none) and its last id, when the ring
 * has a base (otherwise 0). */
uint64_t cluster_room_epoch(const struct cluster_room *r);
uint64_t cluster_room_last(const struct cluster_room *r);
/* True while a backfill is needed or in flight. */
bool cluster_room_syncing(const struct cluster_room *r);

#endif
