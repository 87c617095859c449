/*
 * redis_harness: helpers for the Redis client's tests (test_redis.c against
 * a real redis-server, test_redis_fault.c against a fake one).
 *
 * Each redis-server runs on a free loopback port (found by binding port 0
 * and releasing it; retried if another process takes it first) in a fresh
 * temporary directory, with no persistence unless asked (durable: an
 * append-only file synced before every reply), and is killed by its PID. The
 * tests drive the event loop themselves: wait_for runs it until a condition
 * holds or a deadline passes.
 */
#ifndef SSE_REDIS_HARNESS_H
#define SSE_REDIS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop.h"
#include "redis.h"

extern struct loop *loop;

struct rserver {
    pid_t pid;
    int port;
    char dir[64];
    /* appendonly yes + appendfsync always: a kill -9 loses nothing Redis
     * answered, and a restart in the same directory loads it all back. */
    bool durable;
};

/* A loopback port nobody listens on (at the time of asking). */
int free_port(void);
/* Starts redis-server on s->port; false when it exited (the port was taken). */
bool rs_spawn(struct rserver *s, const char *password);
/* Starts one on a free port in a new temporary directory (requirepass when
 * password is not NULL). */
void rs_start(struct rserver *s, const char *password);
/* rs_start with s->durable set. */
void rs_start_durable(struct rserver *s);
/* Sends sig and reaps it (it may be started again with rs_spawn). */
void rs_kill(struct rserver *s, int sig);
/* Starts it again after rs_kill, on the same port and in the same directory
 * (a durable one reloads its append-only file); fails the test when the port
 * was taken meanwhile. */
void rs_restart(struct rserver *s);
/* Kills it and removes its directory and everything in it. */
void rs_stop(struct rserver *s);

/* One redis-server for a whole group of tests: cmocka group set-up and
 * teardown (shared_rs_setup starts it, shared_url is its URL). */
extern struct rserver shared_rs;
extern char shared_url[128];
int shared_rs_setup(void **state);
int shared_rs_teardown(void **state);

/* Runs the loop until cond(arg) or ms pass; returns cond(arg). */
bool wait_for(bool (*cond)(void *), void *arg, uint64_t ms);
void run_for(uint64_t ms);
uint64_t now_us(void);

/* A client and what its callbacks saw. */
struct tc {
    struct redis *r;
    int ready, down;
    char why[160];
    int messages;
    int subscribed; /* SUBSCRIBE confirmations, the last one's channel */
    char subscribed_to[64];
    char channel[64], payload[256];
    size_t payload_len;
    /* Subscriber: channels to subscribe to on every on_ready. */
    const char *resubscribe;
};

void tc_open(struct tc *c, const char *url, enum redis_mode mode, const struct redis_options *opt);
/* Conditions for wait_for, on a struct tc. */
bool is_ready(void *arg);
bool nothing_awaited(void *arg);
bool is_down(void *arg);
bool got_message(void *arg);

void url_of(char *out, size_t cap, const char *auth, int port, const char *db);

/* One reply, copied out of the callback. */
struct reply {
    bool done, lost;
    enum resp_type type;
    bool null;
    int64_t integer;
    char str[4096];
    size_t len, count;
};

void on_reply(struct redis *r, const struct resp_value *v, struct resp_reader *rest, void *arg);
bool reply_done(void *arg);

/* Sends a command and waits for its reply. */
#define CALL(c, rep, ...)                                                                          \
    do {                                                                                           \
        memset((rep), 0, sizeof *(rep));                                                           \
        assert_int_equal(redis_command_str((c)->r, on_reply, (rep), __VA_ARGS__, (char *)NULL),    \
                         0);                                                                       \
        assert_true(wait_for(reply_done, (rep), 5000));                                            \
    } while (0)

#endif
