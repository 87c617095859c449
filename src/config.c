#include "config.h"

#include "number.h"

#include "log.h"
#include "room_pattern.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SSE_VERSION
#define SSE_VERSION "dev"
#endif

enum opt_kind {
    OPT_STR,
    OPT_INT,
    OPT_SIZE,
    OPT_PATH,
    OPT_LOGLEVEL,
    OPT_LOGFORMAT,
    OPT_SECRET,
    OPT_SECRET_FILE,
    OPT_ORIGIN,
    OPT_FLAG,
    OPT_FSYNC,
    OPT_TEXT,     /* up to 255 bytes, no line breaks */
    OPT_PATTERNS, /* comma-separated room patterns */
    OPT_AUTO_INT, /* "auto" (stored as 0) or a number in min..max */
    OPT_REDIS,    /* redis://[user:password@]host[:port][/db] */
};

struct option_def {
    const char *flag; /* without the leading "--" */
    const char *env;
    enum opt_kind kind;
    size_t offset;
    unsigned long long min, max;
    const char *help;
    /* The default, written as the option's value: config_defaults applies it
     * through set_option and --help shows it, so the two cannot differ. NULL:
     * the field stays zero (or, for --static, is found at start). */
    const char *dflt;
    /* What --help shows instead, for a default that is not a value. */
    const char *dflt_text;
};

#define FIELD(f) offsetof(struct config, f)

_Static_assert(CONFIG_TOKEN_MAX == 4096, "the token messages below say 4096");
_Static_assert(sizeof((struct config *)0)->admin_token == sizeof((struct config *)0)->publish_token,
               "every secret option is stored in a field of CONFIG_TOKEN_MAX + 1 bytes");

static const struct option_def options[] = {
    {"port", "SSE_PORT", OPT_INT, FIELD(port), 0, 65535,
     "TCP port to listen on; 0 picks a free one", "8080", NULL},
    {"bind", "SSE_BIND", OPT_STR, FIELD(bind), 0, 0, "address to listen on", "0.0.0.0", NULL},
    {"static", "SSE_STATIC", OPT_PATH, FIELD(static_dir), 0, 0,
     "directory of static files served at /", NULL,
     "static/ beside the binary if it exists, else ./static"},
    {"max-body", "SSE_MAX_BODY", OPT_SIZE, FIELD(max_body), 1, 64u << 20,
     "largest accepted request body in bytes, also the largest message", "1m", NULL},
    {"history", "SSE_HISTORY", OPT_INT, FIELD(history), 1, 1u << 24,
     "messages kept per room for replay and resume", "1000", NULL},
    {"history-bytes", "SSE_HISTORY_BYTES", OPT_SIZE, FIELD(history_bytes), 1024,
     (unsigned long long)1 << 40, "bytes of encoded messages kept per room", "16m", NULL},
    {"max-rooms", "SSE_MAX_ROOMS", OPT_INT, FIELD(max_rooms), 1, 1u << 24,
     "largest number of rooms at once", "10000", NULL},
    {"max-memory", "SSE_MAX_MEMORY", OPT_SIZE, FIELD(max_memory), 1u << 20,
     (unsigned long long)1 << 50,
     "bytes of messages kept in all rooms together; the least recently used rooms' oldest go "
     "first",
     "256m", NULL},
    {"retry-ms", "SSE_RETRY_MS", OPT_INT, FIELD(retry_ms), 100, 3600000,
     "reconnection delay suggested to clients in ms, jittered per connection", "3000", NULL},
    {"heartbeat", "SSE_HEARTBEAT", OPT_INT, FIELD(heartbeat_s), 1, 3600,
     "seconds between keep-alive comments on idle streams", "15", NULL},
    {"ping-ms", "SSE_PING_MS", OPT_INT, FIELD(ping_ms), 10, 3600000,
     "interval of the /ping stream's pong events, ms", "2000", NULL},
    {"header-timeout", "SSE_HEADER_TIMEOUT", OPT_INT, FIELD(header_timeout_s), 1, 3600,
     "seconds a client has to send a complete request", "10", NULL},
    {"keepalive-timeout", "SSE_KEEPALIVE_TIMEOUT", OPT_INT, FIELD(keepalive_timeout_s), 1, 3600,
     "seconds an idle keep-alive connection is kept", "30", NULL},
    {"max-clients", "SSE_MAX_CLIENTS", OPT_INT, FIELD(max_clients), 0, 1u << 24,
     "most connections at once; 0 derives it from the fd limit", "0", NULL},
    {"threads", "SSE_THREADS", OPT_AUTO_INT, FIELD(threads), 1, CONFIG_THREADS_MAX,
     "event loops, 1 to 64; auto runs one per CPU this process may use (at most 64)", "auto", NULL},
    {"log-level", "SSE_LOG_LEVEL", OPT_LOGLEVEL, FIELD(log_level), 0, 0,
     "error, warn, info or debug", "info", NULL},
    {"log-format", "SSE_LOG_FORMAT", OPT_LOGFORMAT, FIELD(log_format), 0, 0, "text or json", "text",
     NULL},
    {"publish-token", "SSE_PUBLISH_TOKEN", OPT_SECRET, FIELD(publish_token), 0, 0,
     "require 'Authorization: Bearer TOKEN' on POST /message", NULL, "none"},
    {"publish-token-file", "SSE_PUBLISH_TOKEN_FILE", OPT_SECRET_FILE, FIELD(publish_token), 0, 0,
     "read the publish token from the first line of a file", NULL, "none"},
    {"cors-origin", "SSE_CORS_ORIGIN", OPT_ORIGIN, FIELD(cors_origins), 0, 0,
     "allowed CORS origin, repeatable; the variable takes a comma list", NULL, "any"},
    {"admin-local", "SSE_ADMIN_LOCAL", OPT_FLAG, FIELD(admin_local), 0, 1,
     "serve /metrics, /stats and /dashboard to loopback clients only", NULL, "off"},
    {"admin-token", "SSE_ADMIN_TOKEN", OPT_SECRET, FIELD(admin_token), 0, 0,
     "require TOKEN (Bearer, cookie sse_admin or ?token=) for /metrics, /stats and /dashboard",
     NULL, "none"},
    {"admin-token-file", "SSE_ADMIN_TOKEN_FILE", OPT_SECRET_FILE, FIELD(admin_token), 0, 0,
     "read the admin token from the first line of a file", NULL, "none"},
    {"jwt-key-file", "SSE_JWT_KEY_FILE", OPT_PATH, FIELD(jwt_key_file), 0, 0,
     "HS256 secrets, one a line, optionally kid:secret; tokens (JWT) then authorize "
     "publishing and private rooms; SIGHUP reloads the file",
     NULL, "none"},
    {"jwt-audience", "SSE_JWT_AUDIENCE", OPT_TEXT, FIELD(jwt_audience), 0, 0,
     "require tokens to carry this 'aud'", NULL, "none"},
    {"jwt-issuer", "SSE_JWT_ISSUER", OPT_TEXT, FIELD(jwt_issuer), 0, 0,
     "require tokens to carry this 'iss'", NULL, "none"},
    {"jwt-leeway", "SSE_JWT_LEEWAY", OPT_INT, FIELD(jwt_leeway_s), 0, 3600,
     "seconds of clock skew allowed on a token's exp and nbf", "0", NULL},
    {"private-rooms", "SSE_PRIVATE_ROOMS", OPT_PATTERNS, FIELD(private_rooms), 0, 0,
     "rooms whose subscribers need a token: names or prefixes ending in * (comma list; * = all)",
     NULL, "none"},
    {"data-dir", "SSE_DATA_DIR", OPT_PATH, FIELD(data_dir), 0, 0,
     "keep a journal of messages there, replayed at start; without it, memory only", NULL, "none"},
    {"fsync", "SSE_FSYNC", OPT_FSYNC, FIELD(fsync_mode), 0, 0,
     "journal durability: always, batch (one fdatasync per loop iteration) or never", "batch",
     NULL},
    {"segment-bytes", "SSE_SEGMENT_BYTES", OPT_SIZE, FIELD(segment_bytes), 4096,
     (unsigned long long)1 << 40, "journal segment size before rotation", "64m", NULL},
    {"retain-bytes", "SSE_RETAIN_BYTES", OPT_SIZE, FIELD(retain_bytes), 4096,
     (unsigned long long)1 << 50, "most journal bytes kept on disk", "1g", NULL},
    {"retain-records", "SSE_RETAIN_RECORDS", OPT_SIZE, FIELD(retain_records), 0,
     (unsigned long long)1 << 40, "journal records kept at least; 0 means 10 x --history", "0",
     NULL},
    {"redis", "SSE_REDIS", OPT_REDIS, FIELD(redis), 0, 0,
     "run as one node of a cluster over this Redis: redis://[user:password@]host[:port][/db] "
     "(numeric host or localhost); every node given the same Redis serves as one",
     NULL, "none"},
    {"redis-ttl", "SSE_REDIS_TTL", OPT_INT, FIELD(redis_ttl_s), 0, 1u << 30,
     "seconds a room's history stays in Redis after its last message; 0 keeps it", "0", NULL},
};

#define NOPTIONS (sizeof options / sizeof options[0])

/* static/ beside the binary (a build tree), else ../share/sse-server/static
 * relative to it (an installed binary, whatever the prefix), else ./static. */
static void default_static_dir(char *out, size_t cap)
{
    static const char *const beside[] = {"static", "../share/sse-server/static"};
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? memrchr(exe, '/', (size_t)n) : NULL;
    if (slash) {
        *slash = '\0';
        for (size_t i = 0; i < sizeof beside / sizeof beside[0]; i++) {
            if ((size_t)snprintf(out, cap, "%s/%s", exe, beside[i]) < cap &&
                access(out, R_OK | X_OK) == 0) {
                return;
            }
        }
    }
    snprintf(out, cap, "./static");
}

/* The configured origin equal to origin[0..len), or NULL. */
static const char *find_origin(const struct config *cfg, const char *origin, size_t len)
{
    for (size_t i = 0; i < cfg->cors_origins_len;) {
        const char *o = cfg->cors_origins + i;
        size_t n = strlen(o);
        if (n == len && memcmp(o, origin, len) == 0) {
            return o;
        }
        i += n + 1;
    }
    return NULL;
}

int config_origin_allowed(const struct config *cfg, const char *origin, size_t len)
{
    return find_origin(cfg, origin, len) != NULL;
}

const char *config_cors_origin(const struct config *cfg, const char *origin, size_t len)
{
    if (!cfg->cors_origins_len) {
        return "*";
    }
    return origin ? find_origin(cfg, origin, len) : NULL;
}

/* Adds one origin, or a comma-separated list of them. */
static int add_origins(struct config *cfg, const char *val)
{
    const char *p = val;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && *p == ' ') {
            p++;
            n--;
        }
        while (n && p[n - 1] == ' ') {
            n--;
        }
        if (n) {
            if (memchr(p, '\r', n) || memchr(p, '\n', n) ||
                cfg->cors_origins_len + n + 1 > sizeof cfg->cors_origins) {
                return -1;
            }
            memcpy(cfg->cors_origins + cfg->cors_origins_len, p, n);
            cfg->cors_origins_len += n;
            cfg->cors_origins[cfg->cors_origins_len++] = '\0';
        }
        if (!comma) {
            return 0;
        }
        p = comma + 1;
    }
}

/*
 * Reads the publish token, the first line of a file (up to the first CR or
 * LF), into out[0..CONFIG_TOKEN_MAX]. A token that cannot be used whole is
 * refused with the reason: one silently cut short would lock every
 * publisher out, and an empty one would turn the check off.
 */
static int read_secret_file(const char *path, char *out)
{
    char buf[CONFIG_TOKEN_MAX + 2]; /* the longest token and a byte more */
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "sse-server: cannot read the publish token file '%s': %s\n", path,
                strerror(errno));
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "sse-server: cannot read the publish token file '%s'\n", path);
        return -1;
    }
    size_t len = 0;
    while (len < n && buf[len] != '\r' && buf[len] != '\n') {
        len++;
    }
    const char *why = NULL;
    if (len > CONFIG_TOKEN_MAX) {
        why = "holds a token longer than 4096 bytes";
    } else if (len == 0) {
        why = "is empty (the token is its first line)";
    } else if (memchr(buf, '\0', len)) {
        why = "holds a NUL byte in its first line";
    }
    if (why) {
        fprintf(stderr, "sse-server: the publish token file '%s' %s\n", path, why);
        return -1;
    }
    memcpy(out, buf, len);
    out[len] = '\0';
    return 0;
}

/* Parses a decimal number with an optional k/m/g (KiB/MiB/GiB) suffix. */
static int parse_number(const char *s, int allow_suffix, unsigned long long *out)
{
    size_t len = strlen(s), digits = number_span(s, len);
    uint64_t v;
    if (!number_parse_u64(s, digits, &v)) {
        return -1;
    }
    const char *end = s + digits;
    if (allow_suffix && *end) {
        unsigned shift = 0;
        switch (*end) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            return -1;
        }
        end++;
        if (v > (UINT64_MAX >> shift)) {
            return -1;
        }
        v <<= shift;
    }
    if (*end) {
        return -1;
    }
    *out = v;
    return 0;
}

static int set_option(struct config *cfg, const struct option_def *o, const char *val,
                      const char *source)
{
    char *field = (char *)cfg + o->offset;
    unsigned long long v;

    switch (o->kind) {
    case OPT_STR:
        if (strlen(val) >= sizeof cfg->bind) {
            goto bad;
        }
        snprintf(field, sizeof cfg->bind, "%s", val);
        return 0;
    case OPT_PATH:
        if (strlen(val) >= PATH_MAX || !*val) {
            goto bad;
        }
        snprintf(field, PATH_MAX, "%s", val);
        return 0;
    case OPT_LOGLEVEL: {
        int l = log_level_parse(val);
        if (l < 0) {
            goto bad;
        }
        *(int *)(void *)field = l;
        return 0;
    }
    case OPT_LOGFORMAT:
        if (strcmp(val, "text") != 0 && strcmp(val, "json") != 0) {
            goto bad;
        }
        *(int *)(void *)field = strcmp(val, "json") == 0 ? LOG_JSON : LOG_TEXT;
        return 0;
    case OPT_FSYNC:
        if (strcmp(val, "batch") == 0) {
            *(int *)(void *)field = FSYNC_BATCH;
        } else if (strcmp(val, "always") == 0) {
            *(int *)(void *)field = FSYNC_ALWAYS;
        } else if (strcmp(val, "never") == 0) {
            *(int *)(void *)field = FSYNC_NEVER;
        } else {
            goto bad;
        }
        return 0;
    case OPT_SECRET:
        if (strlen(val) > CONFIG_TOKEN_MAX) {
            /* Not echoed: it is a secret. */
            fprintf(stderr, "sse-server: the token of %s is longer than 4096 bytes\n", source);
            return -1;
        }
        if (strpbrk(val, "\r\n")) {
            goto bad;
        }
        snprintf(field, CONFIG_TOKEN_MAX + 1, "%s", val);
        return 0;
    case OPT_SECRET_FILE:
        return read_secret_file(val, field);
    case OPT_TEXT:
        if (strlen(val) >= sizeof cfg->jwt_audience || strpbrk(val, "\r\n")) {
            goto bad;
        }
        snprintf(field, sizeof cfg->jwt_audience, "%s", val);
        return 0;
    case OPT_REDIS: {
        char err[160];
        /* Its own message: the URL may hold a password, never echoed. */
        if (redis_url_parse(val, &cfg->redis, err, sizeof err) < 0) {
            fprintf(stderr, "sse-server: %s: %s\n", source, err);
            return -1;
        }
        cfg->has_redis = true;
        return 0;
    }
    case OPT_PATTERNS:
        if (strlen(val) >= sizeof cfg->private_rooms || !room_pattern_list_valid(val)) {
            goto bad;
        }
        snprintf(field, sizeof cfg->private_rooms, "%s", val);
        return 0;
    case OPT_ORIGIN:
        if (add_origins(cfg, val) < 0) {
            goto bad;
        }
        return 0;
    case OPT_FLAG:
        if (strcmp(val, "1") == 0 || strcmp(val, "true") == 0) {
            *(int *)(void *)field = 1;
        } else if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0) {
            *(int *)(void *)field = 0;
        } else {
            goto bad;
        }
        return 0;
    case OPT_AUTO_INT:
        if (strcmp(val, "auto") == 0) {
            *(unsigned *)(void *)field = 0;
            return 0;
        }
        if (parse_number(val, 0, &v) < 0 || v < o->min || v > o->max) {
            goto bad;
        }
        *(unsigned *)(void *)field = (unsigned)v;
        return 0;
    case OPT_INT:
    case OPT_SIZE:
        if (parse_number(val, o->kind == OPT_SIZE, &v) < 0 || v < o->min || v > o->max) {
            goto bad;
        }
        if (o->kind == OPT_SIZE) {
            *(size_t *)(void *)field = (size_t)v;
        } else if (o->offset == FIELD(port) || o->offset == FIELD(log_level)) {
            *(int *)(void *)field = (int)v;
        } else {
            *(unsigned *)(void *)field = (unsigned)v;
        }
        return 0;
    }
bad:
    if (o->kind == OPT_INT || o->kind == OPT_SIZE) {
        fprintf(stderr, "sse-server: invalid value '%s' for %s (expected %llu..%llu)\n", val,
                source, o->min, o->max);
    } else if (o->kind == OPT_AUTO_INT) {
        fprintf(stderr, "sse-server: invalid value '%s' for %s (expected auto or %llu..%llu)\n",
                val, source, o->min, o->max);
    } else {
        fprintf(stderr, "sse-server: invalid value '%s' for %s\n", val, source);
    }
    return -1;
}

unsigned config_threads(const struct config *cfg)
{
    if (cfg->threads) {
        return cfg->threads;
    }
    /* The affinity mask, not sysconf(_SC_NPROCESSORS_ONLN): under taskset or
     * a cpuset-limited container the process may use fewer CPUs than the
     * machine has, and a loop per unusable CPU would only add contention.
     * A fixed cpu_set_t covers 1024 CPUs; on a larger machine the call
     * fails and one loop is the safe answer. */
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        return 1;
    }
    int n = CPU_COUNT(&set);
    if (n < 1) {
        return 1;
    }
    return n > CONFIG_THREADS_MAX ? CONFIG_THREADS_MAX : (unsigned)n;
}

/* The table's defaults; --static's is looked up beside the binary. */
static void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (options[i].dflt && set_option(cfg, &options[i], options[i].dflt, "a default") < 0) {
            abort(); /* a bad entry in the table: the unit tests catch it */
        }
    }
    default_static_dir(cfg->static_dir, sizeof cfg->static_dir);
}

static void print_help(void)
{
    printf("Usage: sse-server [OPTION]...\n"
           "Server-Sent Events broadcast server.\n\n"
           "  GET  /messages   event stream of every message (?room= ?lastEventId= ?history=)\n"
           "  POST /message    broadcast a JSON body (?room= ?event=)\n"
           "  GET  /ping       event stream of 'pong' events\n"
           "  GET  /dashboard  live figures of this server, for people (like /stats: --admin-*)\n"
           "  GET  /           the chat page and other files of the static directory\n\n"
           "  sse-server token --key-file FILE [--kid K] [--subscribe ROOMS] [--publish ROOMS]\n"
           "                   [--ttl 1h]   print a signed token for --jwt-key-file\n\n"
           "Options (each also read from the environment variable shown):\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        char flag[48];
        static const char *const metavar[] = {
            [OPT_STR] = "ADDR",       [OPT_INT] = "N",
            [OPT_SIZE] = "N",         [OPT_PATH] = "DIR",
            [OPT_LOGLEVEL] = "LEVEL", [OPT_LOGFORMAT] = "FORMAT",
            [OPT_SECRET] = "TOKEN",   [OPT_SECRET_FILE] = "FILE",
            [OPT_ORIGIN] = "ORIGIN",  [OPT_FLAG] = "",
            [OPT_FSYNC] = "MODE",     [OPT_TEXT] = "TEXT",
            [OPT_PATTERNS] = "ROOMS", [OPT_AUTO_INT] = "N|auto",
            [OPT_REDIS] = "URL",
        };
        snprintf(flag, sizeof flag, "--%s %s", options[i].flag, metavar[options[i].kind]);
        const char *dflt = options[i].dflt_text ? options[i].dflt_text : options[i].dflt;
        printf("  %-26s %s (default %s) [%s]\n", flag, options[i].help, dflt, options[i].env);
    }
    printf("  %-26s %s\n  %-26s %s\n", "--help", "show this help and exit", "--version",
           "show the version and exit");
    printf("\nSizes accept k, m and g suffixes (KiB, MiB, GiB).\n");
}

/* The option a flag names ("--name" or "--name=value"); NULL when none. */
static const struct option_def *find_flag(const char *arg)
{
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    for (size_t k = 0; k < NOPTIONS; k++) {
        if (strlen(options[k].flag) == name_len && strncmp(options[k].flag, name, name_len) == 0) {
            return &options[k];
        }
    }
    return NULL;
}

/* The command line, over what the environment set: 0, or -1 after saying
 * why. */
static int parse_flags(struct config *cfg, int argc, char **argv)
{
    bool origins_from_flags = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "sse-server: unexpected argument '%s' (see --help)\n", arg);
            return -1;
        }
        const struct option_def *o = find_flag(arg);
        if (!o) {
            fprintf(stderr, "sse-server: unknown option '%s' (see --help)\n", arg);
            return -1;
        }
        const char *eq = strchr(arg + 2, '=');
        const char *val = eq ? eq + 1 : o->kind == OPT_FLAG ? "1" : NULL;
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sse-server: option '%s' needs a value\n", arg);
                return -1;
            }
            val = argv[++i];
        }
        if (o->kind == OPT_ORIGIN && !origins_from_flags) {
            /* Flags win over the environment: the first --cors-origin
             * replaces the list from SSE_CORS_ORIGIN; later ones add. */
            origins_from_flags = true;
            cfg->cors_origins_len = 0;
        }
        if (set_option(cfg, o, val, arg) < 0) {
            return -1;
        }
    }
    return 0;
}

enum config_result config_parse(struct config *cfg, int argc, char **argv)
{
    config_defaults(cfg);

    /* --help and --version work whatever the environment holds. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help();
            return CONFIG_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("sse-server %s\n", SSE_VERSION);
            return CONFIG_EXIT_OK;
        }
    }

    for (size_t i = 0; i < NOPTIONS; i++) {
        const char *val = getenv(options[i].env);
        if (val && set_option(cfg, &options[i], val, options[i].env) < 0) {
            return CONFIG_EXIT_ERROR;
        }
    }
    if (parse_flags(cfg, argc, argv) < 0) {
        return CONFIG_EXIT_ERROR;
    }
    if (*cfg->private_rooms && !*cfg->jwt_key_file) {
        fprintf(stderr, "sse-server: --private-rooms needs --jwt-key-file\n");
        return CONFIG_EXIT_ERROR;
    }
    if (cfg->has_redis && *cfg->data_dir) {
        /* One durable store: in a cluster it is Redis (with its AOF). */
        fprintf(stderr, "sse-server: --redis and --data-dir cannot be used together: in a cluster "
                        "Redis keeps the history (run it with appendonly yes)\n");
        return CONFIG_EXIT_ERROR;
    }
    return CONFIG_RUN;
}
