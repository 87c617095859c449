/*
 * config: every option of the server, from flags and SSE_* environment
 * variables (flags win), with defaults and the --help text.
 */
#ifndef SSE_CONFIG_H
#define SSE_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "redis_url.h"

/* Longest publish token, bytes: a longer one is refused at start, never cut. */
#define CONFIG_TOKEN_MAX 4096

struct config {
    char bind[64];
    int port;                  /* 0: the kernel picks one */
    char static_dir[PATH_MAX]; /* resolved default: static/ beside the binary, else ./static */
    size_t max_body;           /* bytes of a request body */
    unsigned history;          /* frames kept per room */
    size_t history_bytes;      /* frame bytes kept per room */
    unsigned max_rooms;
    size_t max_memory;         /* all rooms' rings together */
    unsigned retry_ms;         /* reconnection delay hinted to EventSource */
    unsigned heartbeat_s;      /* comment on idle streams every this often */
    unsigned ping_ms;          /* /ping cadence */
    unsigned header_timeout_s; /* complete request head within this */
    unsigned keepalive_timeout_s;
    unsigned max_clients; /* 0: derived from the fd limit */
    unsigned threads;     /* event loops; 0: auto, see config_threads */
    int log_level;
    int log_format; /* enum log_format */

    char publish_token[CONFIG_TOKEN_MAX + 1]; /* "" = publishing needs no token */
    /* Allowed CORS origins, NUL-separated ("" = any origin, answered "*"). */
    char cors_origins[1024];
    size_t cors_origins_len;
    int admin_local; /* /metrics, /stats and /dashboard only for loopback peers */
    char admin_token[CONFIG_TOKEN_MAX +
                     1]; /* "" = the admin endpoints need no token (see admin.h) */

    /* Private rooms and per-room tokens (HS256 JWTs; see auth.h). */
    char jwt_key_file[PATH_MAX]; /* "" = no tokens are accepted */
    char jwt_audience[256];      /* "" = "aud" not required */
    char jwt_issuer[256];        /* "" = "iss" not required */
    unsigned jwt_leeway_s;       /* clock skew allowed on exp and nbf */
    char private_rooms[1024];    /* comma-separated room patterns; "" = none */

    char data_dir[PATH_MAX]; /* "" = no journal */
    int fsync_mode;          /* enum config_fsync */
    size_t segment_bytes;
    size_t retain_bytes;
    size_t retain_records; /* 0: derived from --history */

    /* A cluster: every node given the same Redis serves as one (cluster.h). */
    bool has_redis;
    struct redis_url redis;
    unsigned redis_ttl_s; /* a room's keys expire this long after its last message; 0: never */
};

enum config_fsync { FSYNC_BATCH = 0, FSYNC_ALWAYS, FSYNC_NEVER };

/* True when origin[0..len) is one of the configured CORS origins. */
int config_origin_allowed(const struct config *cfg, const char *origin, size_t len);

/*
 * The Access-Control-Allow-Origin value for a request whose Origin header is
 * origin[0..len) (origin NULL: it sent none): "*" when no origin is
 * configured, the matching configured origin (a string inside cfg) when it is
 * one of them, else NULL: no header. Every answer uses this one rule.
 */
const char *config_cors_origin(const struct config *cfg, const char *origin, size_t len);

/* The most event loops --threads accepts, and what auto is capped at. */
#define CONFIG_THREADS_MAX 64

/*
 * The number of event loops to run: --threads N when given, else (auto) the
 * number of CPUs this process may run on (its affinity mask, so a taskset or
 * a container's cpuset is honoured, not the machine's count), 1 when that
 * cannot be read, at most CONFIG_THREADS_MAX.
 */
unsigned config_threads(const struct config *cfg);

/* What config_parse decided. */
enum config_result { CONFIG_RUN, CONFIG_EXIT_OK, CONFIG_EXIT_ERROR };

/*
 * Fills *cfg from defaults, then the environment, then argv. Prints --help or
 * --version to stdout (CONFIG_EXIT_OK) or an error to stderr
 * (CONFIG_EXIT_ERROR).
 */
enum config_result config_parse(struct config *cfg, int argc, char **argv);

#endif
