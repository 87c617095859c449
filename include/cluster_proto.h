/*
 * cluster_proto: what the nodes of a cluster store in Redis and say to each
 * other through it, for one room R:
 *
 *     sse:{R}:s   a stream, the room's history: entry "<id>-0" with the
 *                 fields e (event type), c (publisher's client id), d (data)
 *     sse:{R}:m   a hash: epoch (the first id of the room's current life in
 *                 Redis) and top (the newest id)
 *     sse:{R}     the PUB/SUB channel carrying each message as a payload
 *
 * The braces are a Redis Cluster hash tag: the three names of a room hash to
 * one slot, which a script touching both keys needs there.
 *
 * Two Lua scripts do the work, so each is one atomic round trip:
 *   - append: bumps top (or, when the hash is missing because the room is new
 *     or Redis lost it, starts a new epoch at the later of the caller's time
 *     base and Redis's clock, and drops any stream left over), XADDs with
 *     MAXLEN ~, PUBLISHes the
 *     payload, sets the expiry, and answers {top, epoch};
 *   - read: HMGET epoch top and XRANGE after an id, answered together, so the
 *     messages and the top they are judged against come from one instant.
 * Each is sent as EVALSHA once SCRIPT LOAD gave its SHA1, as EVAL before
 * that and after a NOSCRIPT error (Redis restarted, or SCRIPT FLUSH).
 *
 * Pure functions over caller memory, like resp.c: the argument builders fill
 * a caller's struct (argv points into it, so it must not be copied or moved
 * before redis_command has taken the arguments), the parsers hand out views
 * into the reply or payload bytes. Nothing is allocated.
 *
 * Ids and epochs are integers in 1..2^53-1 (exact in a JavaScript number and
 * in a Lua double); every one read from Redis or a payload is checked.
 */
#ifndef SSE_CLUSTER_PROTO_H
#define SSE_CLUSTER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resp.h"
#include "room.h"
#include "sse.h"

/* Largest id or epoch. */
#define CLUSTER_ID_MAX ((UINT64_C(1) << 53) - 1)
/* "sse:{" room "}:s" */
#define CLUSTER_KEY_MAX (ROOM_NAME_MAX + 8)
/* Largest data of one message (the largest --max-body). */
#define CLUSTER_DATA_MAX (UINT64_C(64) << 20)
/* The payload's first byte: its format version. */
#define CLUSTER_PAYLOAD_V1 0x01
/* A payload's bytes besides event, client and data, at most: the version,
 * two 16-digit numbers, two 2-digit lengths, an 8-digit one and five ':'. */
#define CLUSTER_PAYLOAD_OVERHEAD (1 + 16 + 16 + 2 + 2 + 8 + 5)

enum cluster_key { CLUSTER_KEY_STREAM, CLUSTER_KEY_META, CLUSTER_KEY_CHANNEL };
enum cluster_script { CLUSTER_SCRIPT_APPEND, CLUSTER_SCRIPT_READ };

/* Writes the name of one of room's keys (or its channel) to out, which holds
 * CLUSTER_KEY_MAX + 1 bytes, NUL-terminated; returns its length, 0 when the
 * room name is not valid (room_name_valid). */
size_t cluster_proto_key(char *out, enum cluster_key kind, const char *room, size_t room_len);

/* The room named by a channel "sse:{R}" (a view into channel), or NULL when
 * channel is not one of ours. */
const char *cluster_proto_channel_room(const char *channel, size_t len, size_t *room_len);

/* A script's Lua source (NUL-terminated). */
const char *cluster_proto_script(enum cluster_script which);

/* One message, every pointer a view into a reply or a payload. */
struct cluster_msg {
    uint64_t epoch; /* the payload's; in a backfill, the room's */
    uint64_t id;    /* the offset clients see as the event id */
    const char *event;
    size_t event_len; /* 0: no event type */
    const char *client;
    size_t client_len; /* 0: no publisher id */
    const char *data;
    size_t data_len;
};

/* ------------------------------------------------------------ payload */

/* Bytes cluster_proto_payload_encode writes for m (exactly). */
size_t cluster_proto_payload_size(const struct cluster_msg *m);

/*
 * Encodes m into out[0..cap): version byte 0x01, then
 *     <epoch> ':' <id> ':' <event_len> ':' <client_len> ':' <data_len> ':'
 *     event client data
 * the numbers in decimal without leading zeros; data is any bytes, and the
 * lengths must add up to the payload's end exactly, so a cut or padded
 * payload is refused. The append script builds the same bytes in Lua.
 * Returns the size; when it is more than cap nothing is written. 0 when m
 * is not valid (as cluster_proto_payload_decode would refuse it).
 */
size_t cluster_proto_payload_encode(char *out, size_t cap, const struct cluster_msg *m);

/*
 * Decodes a payload whole into m (views into p): 0, or -1 when it is not a
 * valid version-1 payload: another version, a number with a sign, a leading
 * zero, too many digits or out of range, an id below the epoch, an event
 * type sse_event_type_valid refuses, a client id room_name_valid refuses,
 * lengths that do not end where the payload does. m is not touched on
 * failure.
 */
int cluster_proto_payload_decode(const char *p, size_t len, struct cluster_msg *m);

/* ------------------------------------------------------------ scripts */

/*
 * A command's arguments for redis_command(r, a.argc, a.argv, a.lens, ...).
 * argv points into the struct itself and into the caller's strings, which
 * must outlive the call to redis_command (it copies them).
 */
#define CLUSTER_ARGS_MAX 12
struct cluster_args {
    size_t argc;
    const char *argv[CLUSTER_ARGS_MAX];
    size_t lens[CLUSTER_ARGS_MAX];
    char stream[CLUSTER_KEY_MAX + 1], meta[CLUSTER_KEY_MAX + 1], channel[CLUSTER_KEY_MAX + 1];
    char num[3][24];
};

/* SCRIPT LOAD <source>. */
void cluster_proto_load_args(struct cluster_args *a, enum cluster_script which);

/* The SHA1 from a SCRIPT LOAD reply, into sha (41 bytes, NUL-terminated):
 * 0, or -1 when the reply is not 40 lowercase hex digits. */
int cluster_proto_parse_load_reply(const struct resp_value *v, char sha[41]);

/* True for Redis's NOSCRIPT error: send the same command with sha NULL. */
bool cluster_proto_is_noscript(const struct resp_value *v);

struct cluster_append {
    const char *room;
    size_t room_len;
    /* The node's wall clock in microseconds: the epoch if this append
     * starts one, unless Redis's clock is later. */
    uint64_t time_base;
    uint64_t history; /* MAXLEN ~ of the stream, >= 1 */
    uint64_t ttl_s;   /* expiry of both keys, renewed by each append; 0: none */
    const char *event;
    size_t event_len; /* 0: none */
    const char *client;
    size_t client_len; /* 0: none */
    const char *data;
    size_t data_len;
};

/*
 * The append script's command: EVALSHA sha (EVAL <source> when sha is NULL)
 * 2 <stream> <meta> <time_base> <history> <ttl> <channel> <event> <client>
 * <data>. 0, or -1 when an argument is not valid (room, event type, client
 * id as the payload requires, data over CLUSTER_DATA_MAX, time_base out of
 * 1..CLUSTER_ID_MAX, history 0).
 */
int cluster_proto_append_args(struct cluster_args *a, const char *sha,
                              const struct cluster_append *m);

/* The append script's reply {top, epoch}: 0 with the message's id and the
 * room's epoch, or -1 when it is anything else (an error reply included). */
int cluster_proto_parse_append_reply(const struct resp_value *v, struct resp_reader *rest,
                                     uint64_t *id, uint64_t *epoch);

/* ------------------------------------------------------------ backfill */

/*
 * The read script's command: at most count messages with ids after `after`
 * (0: from the oldest retained), with the room's epoch and top. -1 when the
 * room name is not valid or count is 0.
 */
int cluster_proto_backfill_args(struct cluster_args *a, const char *sha, const char *room,
                                size_t room_len, uint64_t after, uint64_t count);

enum cluster_backfill_result {
    CLUSTER_BACKFILL_ERROR = -1, /* not a reply of the read script: nothing called */
    CLUSTER_BACKFILL_DONE = 0,   /* every message after `after` up to top, in order */
    CLUSTER_BACKFILL_MORE,       /* the first ones (a COUNT's worth): ask again after last */
    CLUSTER_BACKFILL_GAP,        /* some are gone, or never were here: nothing called */
};

struct cluster_backfill {
    uint64_t epoch, top; /* the room's, 0 when it has none in Redis */
    uint64_t last;       /* id of the last message handed out, else `after` */
    size_t messages;     /* handed out */
};

typedef void cluster_msg_fn(const struct cluster_msg *m, void *arg);

/*
 * Judges a read script reply for a caller that holds every message up to
 * `after` of epoch `epoch` (0: it knows of none; `after` 0: it holds
 * nothing). GAP when the room has no meta (Redis lost it, or it never had
 * messages) while after is not 0; when its epoch is not the caller's; when
 * after is below the epoch or above top; when the first message is not
 * after + 1, or the ids skip. Otherwise fn is called for each message, in
 * id order (m->epoch is the room's), and DONE or MORE says whether they
 * reach top. The whole reply is checked before fn is first called, so a
 * malformed one hands out nothing.
 */
enum cluster_backfill_result cluster_proto_parse_backfill(const struct resp_value *v,
                                                          struct resp_reader *rest, uint64_t epoch,
                                                          uint64_t after,
                                                          struct cluster_backfill *out,
                                                          cluster_msg_fn *fn, void *arg);

#endif
