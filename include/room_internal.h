/*
 * room_internal: the hub's and rooms' insides, shared by the files of the
 * room module: room.c (rooms, rings, eviction, the memory cap) and
 * room_sub.c (subscriber cursors and the fan-out). Nothing outside
 * src/room*.c includes it; everyone else has include/room.h.
 */
#ifndef SSE_ROOM_INTERNAL_H
#define SSE_ROOM_INTERNAL_H

#include "list.h"
#include "qsbr.h"
#include "room.h"

#include <pthread.h>
#include <stdatomic.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* One encoded message: immutable once in a ring, read without a lock by
 * every loop that has subscribers in the room. Subscribers refer to frames
 * by ring sequence, never by pointer; an evicted frame is retired (qsbr.h)
 * and freed once no loop can be in the middle of writing from it. */
struct frame {
    struct qsbr_node retire;
    uint64_t seq; /* its ring sequence: a reader that finds another frame
                     in the slot knows its own one was evicted */
    uint64_t id;
    size_t len;         /* encoded bytes in data[0..len) */
    uint8_t client_len; /* publisher's client id follows the frame bytes */
    char data[];
};

/* A ring's slot array; replaced (and the old one retired) when it grows. */
struct ring {
    struct qsbr_node retire;
    size_t cap; /* a power of two */
    _Atomic(struct frame *) slot[];
};

/* A room's floor when no live subscriber holds any frame back. */
#define NO_FLOOR UINT64_MAX

/* What one loop (part) keeps of a room: its own subscribers. Changed only by
 * that loop, under the hub lock; that loop alone walks its lists without
 * the lock (the fan-out), others only under it. */
struct room_part {
    struct list live;    /* caught-up subscribers */
    struct list waiting; /* subscribers blocked on their socket */
    size_t nsubs;
    /* No live subscriber of this part has its cursor below this sequence
     * (NO_FLOOR when there is none): eviction stops at the lowest floor of
     * all parts. A lower bound, made exact by each flush. */
    uint64_t floor;
    struct room *pending_next; /* in the part's pending list */
    bool pending;
};

struct room {
    struct hub *hub;
    struct room *hash_next;
    struct list idle_node; /* in hub->idle_rooms while it has no subscribers */
    struct list lru_node;  /* in hub->lru, least recently used first */
    struct room *uncommitted_next;
    bool uncommitted;  /* holds frames published since the last hub_commit */
    unsigned npending; /* parts whose pending list holds the room */

    size_t nsubs; /* over all parts */
    /* Connections waiting to join until a cluster has read the room
     * (room_park): they keep it watched and alive like subscribers. */
    unsigned parked;
    uint32_t watch_seq; /* bumped each time the room becomes watched */
    bool ready;         /* a cluster has read it since (room_set_ready) */
    uint64_t epoch;     /* the cluster's life of its ids (room_set_epoch) */
    /* Bumped by room_reset: a subscriber of an older one is lagged. */
    _Atomic uint32_t gen;

    /* The ring: written under the hub lock, read without it (head and the
     * slots with acquire loads, see room_frame). */
    _Atomic(struct ring *) ring;
    _Atomic uint64_t head; /* sequence the next frame gets */
    _Atomic uint64_t tail; /* sequence of the oldest retained frame */
    size_t bytes;          /* sum of retained frames' len */
    uint64_t lost_id;      /* messages with ids <= this may be gone */
    /* Messages published here, and that count when hub_mark_published last
     * ran: the difference is the room's recent traffic, for the stats. */
    uint64_t published;
    uint64_t published_mark;

    uint8_t name_len;
    char name[ROOM_NAME_MAX + 1];
    struct room_part parts[];
};

struct hub_part {
    struct room *pending_head; /* rooms this part's flush must look at */
    uint64_t flush_started;    /* flushes that took their list (under lock) */
    _Atomic uint64_t flush_done;
    /* Parts waiting for flush_done to move (hub_flushes_done), as bits. */
    _Atomic uint64_t waiters;
};

struct hub {
    pthread_mutex_t lock;
    struct qsbr qsbr;
    struct hub_limits limits;
    hub_watch_fn *watch;
    void *watch_arg;
    hub_ready_fn *ready;
    hub_schedule_fn *schedule;
    void *arg;

    uint64_t next_id;
    /* Frames with ids from here on are not written to anyone yet: with a
     * group-committed journal they wait for their fsync (hub_commit). Read
     * without the lock by the fan-out. */
    _Atomic uint64_t visible_id;
    bool deferred_commit;
    /* Ids at or below this may belong to messages of a room that was evicted
     * or existed before this process: a room created now cannot vouch for
     * them. */
    uint64_t lost_id;

    struct room **buckets;
    size_t nbuckets; /* power of two */
    size_t nrooms;
    uint64_t hash_seed;

    struct list idle_rooms; /* least recently used first */
    struct list lru;        /* every room, least recently used first */
    size_t memory;          /* frame_cost of every retained frame */
    struct room *uncommitted_head;
    struct hub_part *parts;
};

/* The part (loop) of the calling thread: see hub_bind_part. */
unsigned hub_current_part(void);

/* The frame at ring sequence seq, or NULL when it is no longer retained
 * (evicted, its slot maybe reused). Safe without the lock during a loop
 * iteration: a frame found here is not freed before the iteration ends. */
static inline const struct frame *room_frame_at(const struct room *room, uint64_t seq)
{
    if (seq < atomic_load_explicit(&room->tail, memory_order_acquire)) {
        return NULL;
    }
    const struct ring *ring = atomic_load_explicit(&room->ring, memory_order_acquire);
    const struct frame *f =
        atomic_load_explicit(&ring->slot[seq & (ring->cap - 1)], memory_order_acquire);
    return f && f->seq == seq ? f : NULL;
}

/* Under the hub lock: the retained frame at seq (tail <= seq < head). */
static inline struct frame *room_frame(const struct room *room, uint64_t seq)
{
    const struct ring *ring = atomic_load_explicit(&room->ring, memory_order_relaxed);
    return atomic_load_explicit(&ring->slot[seq & (ring->cap - 1)], memory_order_relaxed);
}

static inline uint64_t room_head(const struct room *room)
{
    return atomic_load_explicit(&room->head, memory_order_acquire);
}

static inline uint64_t room_tail(const struct room *room)
{
    return atomic_load_explicit(&room->tail, memory_order_relaxed);
}

/* The frame was published by this subscriber's client, which asked not to
 * get its own messages back. */
static inline bool frame_excludes(const struct frame *f, const struct subscriber *sub)
{
    return f->client_len && f->client_len == sub->client_len &&
           memcmp(f->data + f->len, sub->client, f->client_len) == 0;
}

/* Queues the room for the part's next flush (and asks the owner for one). */
void mark_pending(struct hub *hub, struct room *room, unsigned part);
/* No subscriber and no parked connection: nobody here listens to it. */
static inline bool room_unwatched(const struct room *room)
{
    return room->nsubs == 0 && room->parked == 0;
}

/* Queues it for every part with subscribers in it. */
void mark_pending_subscribed(struct hub *hub, struct room *room);
/* Takes the room out of the hub's table and lists (it is not freed). */
void hub_unlink_room(struct hub *hub, struct room *room);
/* Frees the room and its frames. */
void room_destroy(struct room *room);
/* Back to the room's limits, keeping what a live subscriber is owed.
 * Returns the number of frames evicted. */
size_t room_trim(struct room *room);
/* The room was used: it moves to the most recently used end. */
void room_touch(struct room *room);
/* The lowest floor of all parts. */
uint64_t room_floor(const struct room *room);
/* The sequence of the first frame nobody may see yet (head when none). */
uint64_t room_visible_head(const struct room *room);

#endif
