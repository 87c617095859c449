/*
 * room_internal: the hub's and rooms' insides, shared by the files of the
 * room module: room.c (rooms, rings, eviction, the memory cap) and
 * room_sub.c (subscriber cursors and the fan-out). Nothing outside
 * src/room*.c includes it; everyone else has include/room.h.
 */
#ifndef SSE_ROOM_INTERNAL_H
#define SSE_ROOM_INTERNAL_H

#include "list.h"
#include "room.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* One encoded message. Frames are owned by their room's ring and freed when
 * evicted; subscribers refer to them by sequence number, never by pointer,
 * so eviction cannot leave a dangling reference. */
struct frame {
    uint64_t id;
    size_t len;         /* encoded bytes in data[0..len) */
    uint8_t client_len; /* publisher's client id follows the frame bytes */
    char data[];
};

/* A room's floor when no live subscriber holds any frame back. */
#define NO_FLOOR UINT64_MAX

struct room {
    struct hub *hub;
    struct room *hash_next;
    struct list idle_node; /* in hub->idle_rooms while it has no subscribers */
    struct list lru_node;  /* in hub->lru, least recently used first */
    struct room *dirty_next;
    bool dirty;

    struct list live;    /* caught-up subscribers */
    struct list waiting; /* subscribers blocked on their socket */
    size_t nsubs;

    struct frame **slots; /* ring; capacity is a power of two */
    size_t slots_cap;
    uint64_t head;    /* sequence the next frame gets */
    uint64_t tail;    /* sequence of the oldest retained frame */
    size_t bytes;     /* sum of retained frames' len */
    uint64_t lost_id; /* messages with ids <= this may be gone */
    /* No live subscriber's cursor is below this sequence (NO_FLOOR when there
     * is none): frames from here on may still be written to a socket that
     * takes them, so eviction stops here. A lower bound, made exact by each
     * flush of the room. */
    uint64_t floor;
    /* Messages published here, and that count when hub_mark_published last
     * ran: the difference is the room's recent traffic, for the stats. */
    uint64_t published;
    uint64_t published_mark;

    uint8_t name_len;
    char name[ROOM_NAME_MAX + 1];
};

struct hub {
    struct hub_limits limits;
    hub_ready_fn *ready;
    hub_schedule_fn *schedule;
    void *arg;

    uint64_t next_id;
    /* Frames with ids from here on are not written to anyone yet: with a
     * group-committed journal they wait for their fsync (hub_commit). */
    uint64_t visible_id;
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
    struct room *dirty_head;
};

static inline struct frame *room_frame(const struct room *room, uint64_t seq)
{
    return room->slots[seq & (room->slots_cap - 1)];
}

/* The frame was published by this subscriber's client, which asked not to
 * get its own messages back. */
static inline bool frame_excludes(const struct frame *f, const struct subscriber *sub)
{
    return f->client_len && f->client_len == sub->client_len &&
           memcmp(f->data + f->len, sub->client, f->client_len) == 0;
}

/* Queues the room for the next flush (and asks the owner for one). */
void mark_dirty(struct hub *hub, struct room *room);
/* Takes the room out of the hub's table and lists (it is not freed). */
void hub_unlink_room(struct hub *hub, struct room *room);
/* Frees the room and its frames. */
void room_destroy(struct room *room);
/* Back to the room's limits, keeping what a live subscriber is owed. */
void room_trim(struct room *room);
/* The room was used: it moves to the most recently used end. */
void room_touch(struct room *room);

#endif
