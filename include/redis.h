/*
 * redis: a non-blocking Redis client (RESP2) on the event loop.
 *
 * One struct redis is one connection, in one of two modes:
 *   - REDIS_COMMANDS: a pipeline. Each command is written to a bounded
 *     output buffer at once; replies come back in order, each to the
 *     callback given with its command.
 *   - REDIS_SUBSCRIBER: SUBSCRIBE / UNSUBSCRIBE only; every published
 *     message goes to the on_message callback. Redis forbids other commands
 *     on such a connection, so the cluster keeps one of each.
 *
 * Connecting never blocks: the address is a numeric IPv4 or IPv6 address or
 * "localhost" (taken as 127.0.0.1); names are refused, because getaddrinfo
 * blocks and resolving them belongs before the loop runs (see redis_url_parse).
 * After the TCP connect, AUTH and SELECT run first; on_ready is then called,
 * which is where the user (re)subscribes: every new connection starts with no
 * subscription.
 *
 * A connection is dropped on EOF, a socket error, a malformed reply, a
 * refused AUTH or SELECT, or a reply timeout (no reply for reply_timeout_ms
 * while at least one is awaited, or a connect that takes as long; with
 * idle_ping_ms, a PING makes an idle connection await one too). Then every
 * awaited reply's callback is called with NULL, on_down says why, and a new
 * connection is tried after an exponential backoff with jitter (half the
 * delay fixed, half random), from backoff_min_ms doubling to backoff_max_ms;
 * a connection that reaches on_ready resets it.
 *
 * Callbacks run on the loop's thread, from the client's own I/O and timer
 * handlers; they may issue commands, but must not call redis_free.
 */
#ifndef SSE_REDIS_H
#define SSE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis_url.h"
#include "resp.h"

struct loop;
struct redis;

enum redis_mode { REDIS_COMMANDS, REDIS_SUBSCRIBER };

struct redis_options {
    size_t max_output;         /* bytes of commands not yet written; default 1 MiB */
    uint64_t reply_timeout_ms; /* default 5000 */
    uint64_t backoff_min_ms;   /* default 100 */
    uint64_t backoff_max_ms;   /* default 5000 */
    /* A PING after this long without a byte from Redis, so that a dead peer
     * (a cable pulled, a host gone) shows as a reply timeout even when
     * nothing else is awaited, as on an idle subscriber. 0: never. */
    uint64_t idle_ping_ms;
    struct resp_limits limits; /* replies; zeroes: resp_default_limits */
};

/*
 * A reply: v is its first element, and for an array `rest` reads the
 * elements that follow (resp_read). Both are views into the client's input,
 * valid until the callback returns. v is NULL (and rest too) when the reply
 * will never come: the connection was lost first. An error reply from Redis
 * is a reply (v->type == RESP_ERR), not a NULL.
 */
typedef void redis_reply_fn(struct redis *r, const struct resp_value *v, struct resp_reader *rest,
                            void *arg);

struct redis_callbacks {
    /* Connected, authenticated and on the right db. */
    void (*on_ready)(struct redis *r, void *arg);
    /* A connection, or an attempt, ended; a new one is scheduled. */
    void (*on_down)(struct redis *r, const char *why, void *arg);
    /* REDIS_SUBSCRIBER: a message published on a subscribed channel. */
    void (*on_message)(struct redis *r, const char *channel, size_t channel_len,
                       const char *payload, size_t payload_len, void *arg);
    /* REDIS_SUBSCRIBER: Redis confirmed a SUBSCRIBE to channel. */
    void (*on_subscribed)(struct redis *r, const char *channel, size_t channel_len, void *arg);
    void *arg;
};

/* Creates a client (nothing connects before redis_start). opt may be NULL.
 * NULL when out of memory. */
struct redis *redis_new(struct loop *loop, const struct redis_url *url, enum redis_mode mode,
                        const struct redis_options *opt, const struct redis_callbacks *cb);
/* Starts the first connection attempt. */
void redis_start(struct redis *r);
/* Closes the connection and frees; awaited replies are not called back. */
void redis_free(struct redis *r);

/* Connected and past AUTH / SELECT. */
bool redis_is_ready(const struct redis *r);
/* Connections that reached on_ready since redis_new. */
uint64_t redis_connections(const struct redis *r);
/* Replies awaited (commands) or confirmations awaited (subscriber). */
size_t redis_awaited(const struct redis *r);

/*
 * Queues a command (argc binary-safe arguments) in REDIS_COMMANDS mode;
 * fn(r, reply, rest, arg) is called with its reply (fn may be NULL: the reply
 * is dropped). 0, or -1 with errno: ENOTCONN (not ready: nothing is queued
 * while disconnected, the caller decides), ENOBUFS (the output buffer is
 * full), EINVAL (subscriber mode, or argc 0), ENOMEM.
 */
int redis_command(struct redis *r, size_t argc, const char *const argv[], const size_t lens[],
                  redis_reply_fn *fn, void *arg);
/* The same with NUL-terminated arguments, ended by NULL (at most 32). */
int redis_command_str(struct redis *r, redis_reply_fn *fn, void *arg, ...)
    __attribute__((sentinel));

/* REDIS_SUBSCRIBER mode: subscribes to / unsubscribes from one channel.
 * 0, or -1 with errno as redis_command (EINVAL in commands mode). */
int redis_subscribe(struct redis *r, const char *channel, size_t len);
int redis_unsubscribe(struct redis *r, const char *channel, size_t len);

#endif
