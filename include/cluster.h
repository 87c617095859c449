/*
 * cluster: this node's part in a cluster over Redis (--redis). Every node
 * given the same Redis serves as one: a message posted to any node reaches
 * every subscriber of its room on every node, under one id, in one order.
 *
 * Redis is the store (cluster_proto.h: per room a stream, a hash with the
 * epoch and top id, a PUB/SUB channel; an append script gives each message
 * its id atomically). Each loop has its own commands connection, so a POST
 * is answered by the loop that read it: the append goes out, Redis's reply
 * brings the id for the 202 -- or a 503 with Retry-After when Redis is out
 * of reach -- and pipelined publishes go out meanwhile, their answers in
 * request order.
 *
 * Loop 0 follows the rooms someone on this node listens to: it SUBSCRIBEs to
 * their channels on one subscriber connection, and drives one cluster_room
 * state machine per room (subscribe, then read, then merge; read again after
 * a gap or a reconnect; reset when Redis lost the room). What it delivers is
 * appended to the room's ring with Redis's id (room_publish_id), and every
 * loop fans it out as on one node.
 *
 * A room is followed while it is watched (hub_set_watch: a subscriber or a
 * parked connection on any loop). A subscriber to a room that is not ready
 * (not read since it became watched) is parked: its stream starts at once,
 * and it joins -- with its history or resume computed from a complete
 * ring -- when loop 0 has read the room; its loop is woken for that.
 */
#ifndef SSE_CLUSTER_H
#define SSE_CLUSTER_H

#include "room.h"

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct server;
struct worker;
struct cluster;

/* Sets up the connections of every worker (none connects yet) and the
 * hub's watch. 0, or -1 after logging why. */
int cluster_init(struct server *srv);
/* Starts connecting; before the loops run. */
void cluster_start(struct cluster *cl);
/* After the loops stopped. */
void cluster_free(struct cluster *cl);

/* Any thread: Redis is reachable (loop 0's two connections are ready). */
bool cluster_redis_up(const struct cluster *cl);

/* A message to publish, as the request gave it (views); one node's publish
 * path (api.c) takes the same. */
struct cluster_message {
    const char *room;
    size_t room_len;
    const char *event;
    size_t event_len;
    const char *data;
    size_t data_len;
    const char *client;
    size_t client_len;
};

/*
 * Sends the append for c's POST on its loop's connection. 0: the answer
 * comes with Redis's reply, in its place among c's answers (c may read and
 * send more publishes meanwhile, up to CLUSTER_PIPELINE_MAX; anything else
 * it pipelines waits for those answers); -1: Redis is not reachable, c was
 * answered 503.
 */
#define CLUSTER_PIPELINE_MAX 64
int cluster_publish(struct worker *wk, struct conn *c, const struct cluster_message *m);

/* c has publishes awaiting Redis: true, and *limit is how many bytes of its
 * output may be written before the oldest one's answer. */
bool cluster_output_limit(const struct conn *c, size_t *limit);
/* n bytes of c's output were written. */
void cluster_output_consumed(struct conn *c, size_t n);
/* c's publishes awaiting Redis. */
size_t cluster_publishes_awaited(const struct conn *c);

/*
 * With the hub lock held, for a subscriber whose room is not ready: parks c
 * (whose stream has begun) until loop 0 has read the room, when it joins
 * with want and its client id. -1 when out of memory (nothing parked).
 */
int cluster_park(struct worker *wk, struct conn *c, struct room *room, const struct room_want *want,
                 const char *client, size_t client_len);

/* c closes while it waits: a publish's reply will find nobody, a parked
 * subscriber leaves. */
void cluster_cancel(struct conn *c);

/* On worker wk's loop: the cluster has something for it (the inbox). */
void cluster_on_wake(struct worker *wk);

#endif
