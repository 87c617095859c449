/*
 * cluster_internal: what the cluster's two source files share --
 * cluster.c (set-up, the commands connections, publishing, parked
 * subscribers) and cluster_follow.c (loop 0 following rooms: the
 * subscriber connection, the per-room state machines, the reads).
 */
#ifndef SSE_CLUSTER_INTERNAL_H
#define SSE_CLUSTER_INTERNAL_H

#include "cluster.h"
#include "cluster_proto.h"
#include "cluster_room.h"
#include "list.h"
#include "loop.h"
#include "redis.h"
#include "room.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Messages asked for per read (a reply is at most this many). */
#define CLUSTER_READ_COUNT 512
/* Live messages a room keeps while a read is in flight (more: read again). */
#define CLUSTER_HELD_BYTES 4096
/* How often loop 0 retries reads that failed. */
#define CLUSTER_RETRY_MS 1000

/* One worker's side: its commands connection (with the scripts' SHA1s
 * once loaded: "" means EVAL) and its parked subscribers. */
struct cluster_link {
    struct cluster *cl;
    struct worker *wk;
    struct redis *cmd;
    char sha[2][41]; /* indexed by enum cluster_script */
    bool ready;      /* counted in links_ready */
    /* struct cluster_wait, touched by this worker's thread only: the
     * parked subscribers, and the publishes awaiting their reply. */
    struct list parked, publishing;
};

/* A room loop 0 follows, or followed and still has a read in flight. */
struct cluster_entry {
    struct cluster_entry *next; /* hash chain */
    struct cluster *cl;
    struct cluster_room cr;
    uint32_t watch_seq;   /* the room's, when it last became watched */
    unsigned reads;       /* reads sent and not answered */
    unsigned subscribing; /* SUBSCRIBEs sent and not confirmed */
    bool tracked;         /* the room is watched */
    bool confirmed;       /* its channel is subscribed */
    uint8_t name_len;
    char name[ROOM_NAME_MAX + 1];
    size_t channel_len;
    char channel[CLUSTER_KEY_MAX + 1];
    unsigned char held[CLUSTER_HELD_BYTES];
};

/* For loop 0, from any thread: a room became watched or unwatched, or a
 * subscriber needs it read now. */
enum cluster_event_kind { CLUSTER_WATCHED, CLUSTER_UNWATCHED, CLUSTER_READ };
struct cluster_event {
    struct cluster_event *next;
    uint32_t watch_seq;
    enum cluster_event_kind kind;
    uint8_t name_len;
    char name[ROOM_NAME_MAX + 1];
};

struct cluster {
    struct server *srv;
    struct cluster_link *links; /* one per worker */
    size_t nlinks;
    /* Redis is reachable when every loop can publish and loop 0 follows. */
    atomic_size_t links_ready;
    atomic_bool sub_ready;
    bool said_up; /* loop 0: what the log last said */

    /* Loop 0's. */
    struct redis *sub;
    struct cluster_entry **buckets;
    size_t nbuckets, nentries;
    uint64_t seed;
    struct loop_timer retry;
    bool retry_armed;
    struct list reads; /* struct cluster_read in flight */

    /* Watch events, any thread to loop 0. */
    pthread_mutex_t events_lock;
    struct cluster_event *events, **events_tail;
};

/* ---- cluster.c ---- */

/* Loop 0: one of its connections reached Redis: the others try at once. */
void cluster_redis_back(struct cluster *cl);
/* Wakes worker i's loop (any thread): it runs cluster_on_wake. */
void cluster_wake(struct cluster *cl, size_t i);
/* Loop 0: one of its connections went up or down: says so in the log when
 * Redis as a whole became reachable or not. */
void cluster_log_up(struct cluster *cl);
/* The SHA1 of a script for the command, NULL (send EVAL) when not loaded. */
const char *cluster_link_sha(const struct cluster_link *l, enum cluster_script which);
/* A reply said NOSCRIPT: load the scripts again. */
void cluster_link_reload(struct cluster_link *l);

/* ---- cluster_follow.c ---- */

/* Loop 0's part of cluster_init / cluster_free. 0, or -1 on ENOMEM. */
int cluster_follow_init(struct cluster *cl);
void cluster_follow_free(struct cluster *cl);
/* The hub's watch (hub lock held, any thread). */
void cluster_on_watch(void *arg, struct room *room, bool watched);
/* Hub lock held, any thread: loop 0 reads the room again, after which
 * room_reads_done passes the room's current room_reads_sent. */
void cluster_request_read(struct cluster *cl, struct room *room);
/* Loop 0: takes the watch events queued so far. */
void cluster_follow_events(struct cluster *cl);
/* Loop 0: its commands connection is ready again. */
void cluster_follow_link_ready(struct cluster *cl);

#endif
