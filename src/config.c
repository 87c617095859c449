#include "config.h"

#include "log.h"
#include "room_pattern.h"

#include <errno.h>
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
};

struct option_def {
    const char *flag; /* without the leading "--" */
    const char *env;
    enum opt_kind kind;
    size_t offset;
    unsigned long long min, max;
    const char *help;
};

#define FIELD(f) offsetof(struct config, f)

static const struct option_def options[] = {
    {"port", "SSE_PORT", OPT_INT, FIELD(port), 0, 65535,
     "TCP port to listen on; 0 picks a free one"},
    {"bind", "SSE_BIND", OPT_STR, FIELD(bind), 0, 0, "address to listen on"},
    {"static", "SSE_STATIC", OPT_PATH, FIELD(static_dir), 0, 0,
     "directory of static files served at / (default: static/ beside the binary, else ./static)"},
    {"max-body", "SSE_MAX_BODY", OPT_SIZE, FIELD(max_body), 1, 64u << 20,
     "largest accepted request body, bytes (also the largest message)"},
    {"history", "SSE_HISTORY", OPT_INT, FIELD(history), 1, 1u << 24,
     "messages kept per room for replay and resume"},
    {"history-bytes", "SSE_HISTORY_BYTES", OPT_SIZE, FIELD(history_bytes), 1024,
     (unsigned long long)1 << 40, "bytes of encoded messages kept per room"},
    {"max-rooms", "SSE_MAX_ROOMS", OPT_INT, FIELD(max_rooms), 1, 1u << 24,
     "largest number of rooms at once"},
    {"max-memory", "SSE_MAX_MEMORY", OPT_SIZE, FIELD(max_memory), 1u << 20,
     (unsigned long long)1 << 50,
     "bytes of messages kept in all rooms together; the least recently used rooms' oldest go "
     "first"},
    {"retry-ms", "SSE_RETRY_MS", OPT_INT, FIELD(retry_ms), 100, 3600000,
     "reconnection delay suggested to clients, ms (jittered per connection)"},
    {"heartbeat", "SSE_HEARTBEAT", OPT_INT, FIELD(heartbeat_s), 1, 3600,
     "seconds between keep-alive comments on idle streams"},
    {"ping-ms", "SSE_PING_MS", OPT_INT, FIELD(ping_ms), 10, 3600000,
     "interval of the /ping stream's pong events, ms"},
    {"header-timeout", "SSE_HEADER_TIMEOUT", OPT_INT, FIELD(header_timeout_s), 1, 3600,
     "seconds a client has to send a complete request"},
    {"keepalive-timeout", "SSE_KEEPALIVE_TIMEOUT", OPT_INT, FIELD(keepalive_timeout_s), 1, 3600,
     "seconds an idle keep-alive connection is kept"},
    {"max-clients", "SSE_MAX_CLIENTS", OPT_INT, FIELD(max_clients), 0, 1u << 24,
     "most connections at once; 0 derives it from the fd limit"},
    {"log-level", "SSE_LOG_LEVEL", OPT_LOGLEVEL, FIELD(log_level), 0, 0,
     "error, warn, info or debug"},
    {"log-format", "SSE_LOG_FORMAT", OPT_LOGFORMAT, FIELD(log_format), 0, 0, "text or json"},
    {"publish-token", "SSE_PUBLISH_TOKEN", OPT_SECRET, FIELD(publish_token), 0, 0,
     "require 'Authorization: Bearer TOKEN' on POST /message"},
    {"publish-token-file", "SSE_PUBLISH_TOKEN_FILE", OPT_SECRET_FILE, FIELD(publish_token), 0, 0,
     "read the publish token from a file (first line)"},
    {"cors-origin", "SSE_CORS_ORIGIN", OPT_ORIGIN, FIELD(cors_origins), 0, 0,
     "allowed CORS origin (repeatable; the variable takes a comma list; default any)"},
    {"admin-local", "SSE_ADMIN_LOCAL", OPT_FLAG, FIELD(admin_local), 0, 1,
     "serve /metrics and /stats to loopback clients only"},
    {"jwt-key-file", "SSE_JWT_KEY_FILE", OPT_PATH, FIELD(jwt_key_file), 0, 0,
     "HS256 secrets, one a line, optionally kid:secret; tokens (JWT) then authorize "
     "publishing and private rooms; SIGHUP reloads the file"},
    {"jwt-audience", "SSE_JWT_AUDIENCE", OPT_TEXT, FIELD(jwt_audience), 0, 0,
     "require tokens to carry this 'aud'"},
    {"jwt-issuer", "SSE_JWT_ISSUER", OPT_TEXT, FIELD(jwt_issuer), 0, 0,
     "require tokens to carry this 'iss'"},
    {"jwt-leeway", "SSE_JWT_LEEWAY", OPT_INT, FIELD(jwt_leeway_s), 0, 3600,
     "seconds of clock skew allowed on a token's exp and nbf"},
    {"private-rooms", "SSE_PRIVATE_ROOMS", OPT_PATTERNS, FIELD(private_rooms), 0, 0,
     "rooms whose subscribers need a token: names or prefixes ending in * (comma list; * = all)"},
    {"data-dir", "SSE_DATA_DIR", OPT_PATH, FIELD(data_dir), 0, 0,
     "keep a journal of messages there, replayed at start (default: memory only)"},
    {"fsync", "SSE_FSYNC", OPT_FSYNC, FIELD(fsync_mode), 0, 0,
     "journal durability: always, batch (one fdatasync per loop iteration) or never"},
    {"segment-bytes", "SSE_SEGMENT_BYTES", OPT_SIZE, FIELD(segment_bytes), 4096,
     (unsigned long long)1 << 40, "journal segment size before rotation"},
    {"retain-bytes", "SSE_RETAIN_BYTES", OPT_SIZE, FIELD(retain_bytes), 4096,
     (unsigned long long)1 << 50, "most journal bytes kept on disk"},
    {"retain-records", "SSE_RETAIN_RECORDS", OPT_SIZE, FIELD(retain_records), 0,
     (unsigned long long)1 << 40, "journal records kept at least (0: 10 x --history)"},
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

static void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->bind, sizeof cfg->bind, "0.0.0.0");
    cfg->port = 8080;
    default_static_dir(cfg->static_dir, sizeof cfg->static_dir);
    cfg->max_body = 1u << 20;
    cfg->history = 1000;
    cfg->history_bytes = 16u << 20;
    cfg->max_rooms = 10000;
    cfg->max_memory = (size_t)256 << 20;
    cfg->retry_ms = 3000;
    cfg->heartbeat_s = 15;
    cfg->ping_ms = 2000;
    cfg->header_timeout_s = 10;
    cfg->keepalive_timeout_s = 30;
    cfg->max_clients = 0;
    cfg->log_level = LOG_INFO;
    cfg->log_format = LOG_TEXT;
    cfg->fsync_mode = FSYNC_BATCH;
    cfg->segment_bytes = 64u << 20;
    cfg->retain_bytes = (size_t)1 << 30;
}

int config_origin_allowed(const struct config *cfg, const char *origin, size_t len)
{
    for (size_t i = 0; i < cfg->cors_origins_len;) {
        size_t n = strlen(cfg->cors_origins + i);
        if (n == len && memcmp(cfg->cors_origins + i, origin, len) == 0) {
            return 1;
        }
        i += n + 1;
    }
    return 0;
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

/* Reads the first line of a file into out. */
static int read_secret_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        return -1;
    }
    char *line = fgets(out, (int)cap, f);
    fclose(f);
    if (!line) {
        return -1;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return *out ? 0 : -1;
}

/* Parses a decimal number with an optional k/m/g (KiB/MiB/GiB) suffix. */
static int parse_number(const char *s, int allow_suffix, unsigned long long *out)
{
    if (*s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) {
        return -1;
    }
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
        if (v > (~0ULL >> shift)) {
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
        if (strlen(val) >= sizeof cfg->publish_token || strpbrk(val, "\r\n")) {
            goto bad;
        }
        snprintf(field, sizeof cfg->publish_token, "%s", val);
        return 0;
    case OPT_SECRET_FILE:
        if (read_secret_file(val, field, sizeof cfg->publish_token) < 0) {
            fprintf(stderr, "sse-server: cannot read a token from '%s'\n", val);
            return -1;
        }
        return 0;
    case OPT_TEXT:
        if (strlen(val) >= sizeof cfg->jwt_audience || strpbrk(val, "\r\n")) {
            goto bad;
        }
        snprintf(field, sizeof cfg->jwt_audience, "%s", val);
        return 0;
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
    } else {
        fprintf(stderr, "sse-server: invalid value '%s' for %s\n", val, source);
    }
    return -1;
}

static void print_help(void)
{
    printf("Usage: sse-server [OPTION]...\n"
           "Server-Sent Events broadcast server.\n\n"
           "  GET  /messages   event stream of every message (?room= ?lastEventId= ?history=)\n"
           "  POST /message    broadcast a JSON body (?room= ?event=)\n"
           "  GET  /ping       event stream of 'pong' events\n"
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
            [OPT_PATTERNS] = "ROOMS",
        };
        snprintf(flag, sizeof flag, "--%s %s", options[i].flag, metavar[options[i].kind]);
        printf("  %-26s %s [%s]\n", flag, options[i].help, options[i].env);
    }
    printf("  %-26s %s\n  %-26s %s\n", "--help", "show this help and exit", "--version",
           "show the version and exit");
    printf("\nSizes accept k, m and g suffixes (KiB, MiB, GiB).\n");
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

    bool origins_from_flags = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "sse-server: unexpected argument '%s' (see --help)\n", arg);
            return CONFIG_EXIT_ERROR;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const struct option_def *o = NULL;
        for (size_t k = 0; k < NOPTIONS; k++) {
            if (strlen(options[k].flag) == name_len &&
                strncmp(options[k].flag, name, name_len) == 0) {
                o = &options[k];
                break;
            }
        }
        if (!o) {
            fprintf(stderr, "sse-server: unknown option '%s' (see --help)\n", arg);
            return CONFIG_EXIT_ERROR;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val && o->kind == OPT_FLAG) {
            val = "1";
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sse-server: option '%s' needs a value\n", arg);
                return CONFIG_EXIT_ERROR;
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
            return CONFIG_EXIT_ERROR;
        }
    }
    if (*cfg->private_rooms && !*cfg->jwt_key_file) {
        fprintf(stderr, "sse-server: --private-rooms needs --jwt-key-file\n");
        return CONFIG_EXIT_ERROR;
    }
    return CONFIG_RUN;
}
