/*
 * Unit tests for option parsing (src/config.c): defaults, flags in both
 * spellings, size suffixes, ranges, SSE_* environment variables and their
 * precedence, and --help / --version.
 *
 * config_parse prints to stdout and stderr; each call runs with both
 * redirected into a temporary file, so the output can be checked and the
 * test log stays clean.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_capture.h"
#include "log.h"

extern char **environ;

/* ---------------------------------------------------------------- helpers */

static char output[16384]; /* what the last parse printed, stdout then stderr */

/* Removes every SSE_* variable, so the environment of the test run cannot
 * leak into the results. */
static void clear_sse_env(void)
{
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "SSE_", 4) == 0) {
                size_t n = strcspn(*e, "=");
                if (n < sizeof name) {
                    memcpy(name, *e, n);
                    name[n] = '\0';
                }
                break;
            }
        }
        if (!name[0]) {
            return;
        }
        unsetenv(name);
    }
}

static int setup(void **state)
{
    (void)state;
    clear_sse_env();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clear_sse_env();
    return 0;
}

/* Runs config_parse on a NULL-terminated argument list (argv[0] is added)
 * with stdout and stderr captured into `output`. */
static enum config_result parse_argv(struct config *cfg, const char *const *args)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"sse-server";
    for (; args && *args; args++) {
        assert_true(argc < 63);
        argv[argc++] = (char *)*args;
    }
    argv[argc] = NULL;

    return config_parse_captured(cfg, argc, argv, output, sizeof output);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* A parse that must succeed. */
static void parse_ok(struct config *cfg, const char *const *args)
{
    enum config_result r = parse_argv(cfg, args);
    if (r != CONFIG_RUN) {
        fail_msg("config_parse(%s ...) = %d, output: %s", args && args[0] ? args[0] : "", (int)r,
                 output);
    }
}

/* A parse that must fail, with a message on stderr. */
static void parse_err(const char *const *args)
{
    struct config cfg;
    enum config_result r = parse_argv(&cfg, args);
    if (r != CONFIG_EXIT_ERROR) {
        fail_msg("config_parse(%s %s) = %d, want an error", args[0] ? args[0] : "",
                 args[0] && args[1] ? args[1] : "", (int)r);
    }
    assert_non_null(strstr(output, "sse-server:"));
}

/* ---------------------------------------------------------------- defaults */

static void test_defaults(void **state)
{
    (void)state;
    struct config cfg;
    memset(&cfg, 0xA5, sizeof cfg); /* everything is set, nothing left over */
    parse_ok(&cfg, NULL);
    assert_string_equal(output, ""); /* silent */
    assert_string_equal(cfg.bind, "0.0.0.0");
    assert_int_equal(cfg.port, 8080);
    assert_int_equal(cfg.max_body, 1u << 20);
    assert_int_equal(cfg.history, 1000);
    assert_int_equal(cfg.history_bytes, 16u << 20);
    assert_int_equal(cfg.max_rooms, 10000);
    assert_int_equal(cfg.retry_ms, 3000);
    assert_int_equal(cfg.heartbeat_s, 15);
    assert_int_equal(cfg.ping_ms, 2000);
    assert_int_equal(cfg.header_timeout_s, 10);
    assert_int_equal(cfg.keepalive_timeout_s, 30);
    assert_int_equal(cfg.max_clients, 0);
    assert_int_equal(cfg.log_level, LOG_INFO);
    /* static/ beside the binary, else ./static */
    size_t n = strlen(cfg.static_dir);
    assert_true(n >= 6 && n < sizeof cfg.static_dir);
    assert_string_equal(cfg.static_dir + n - 6, "static");
}

/* ---------------------------------------------------------------- flags */

static void test_flags(void **state)
{
    (void)state;
    struct config cfg;

    parse_ok(&cfg, ARGS("--port", "0"));
    assert_int_equal(cfg.port, 0);
    parse_ok(&cfg, ARGS("--port=9000"));
    assert_int_equal(cfg.port, 9000);
    parse_ok(&cfg, ARGS("--port", "080"));
    assert_int_equal(cfg.port, 80);

    parse_ok(&cfg, ARGS("--bind", "127.0.0.1"));
    assert_string_equal(cfg.bind, "127.0.0.1");
    parse_ok(&cfg, ARGS("--bind=::1"));
    assert_string_equal(cfg.bind, "::1");

    parse_ok(&cfg, ARGS("--static", "/srv/www"));
    assert_string_equal(cfg.static_dir, "/srv/www");
    parse_ok(&cfg, ARGS("--static=rel/dir"));
    assert_string_equal(cfg.static_dir, "rel/dir");

    parse_ok(&cfg, ARGS("--history", "5", "--max-rooms", "7", "--retry-ms", "150", "--heartbeat",
                        "2", "--ping-ms=25", "--header-timeout", "3", "--keepalive-timeout=4",
                        "--max-clients", "100"));
    assert_int_equal(cfg.history, 5);
    assert_int_equal(cfg.max_rooms, 7);
    assert_int_equal(cfg.retry_ms, 150);
    assert_int_equal(cfg.heartbeat_s, 2);
    assert_int_equal(cfg.ping_ms, 25);
    assert_int_equal(cfg.header_timeout_s, 3);
    assert_int_equal(cfg.keepalive_timeout_s, 4);
    assert_int_equal(cfg.max_clients, 100);
    /* Options not given keep their defaults. */
    assert_int_equal(cfg.port, 8080);
    assert_int_equal(cfg.max_body, 1u << 20);

    /* A repeated option: the last one wins. */
    parse_ok(&cfg, ARGS("--port", "1", "--port=2", "--port", "3"));
    assert_int_equal(cfg.port, 3);

    /* A value that looks like an option is still a value. */
    parse_ok(&cfg, ARGS("--static", "--port"));
    assert_string_equal(cfg.static_dir, "--port");
    assert_int_equal(cfg.port, 8080);
    /* '=' splits at the first one only. */
    parse_ok(&cfg, ARGS("--static=a=b"));
    assert_string_equal(cfg.static_dir, "a=b");

    static const struct {
        const char *name;
        int level;
    } levels[] = {
        {"error", LOG_ERROR}, {"warn", LOG_WARN}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        parse_ok(&cfg, ARGS("--log-level", levels[i].name));
        assert_int_equal(cfg.log_level, levels[i].level);
    }
}

static void test_size_suffixes(void **state)
{
    (void)state;
    struct config cfg;
    static const struct {
        const char *arg;
        size_t value;
    } v[] = {
        {"--max-body=2k", 2048},
        {"--max-body=2K", 2048},
        {"--max-body=1m", 1u << 20},
        {"--max-body=3M", 3u << 20},
        {"--max-body=64m", 64u << 20},
        {"--max-body=65536k", 64u << 20},
        {"--max-body=1", 1},
        {"--max-body=12345", 12345},
        {"--history-bytes=1k", 1024},
        {"--history-bytes=1g", (size_t)1 << 30},
        {"--history-bytes=1024g", (size_t)1 << 40},
        {"--history-bytes=4096", 4096},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        parse_ok(&cfg, ARGS(v[i].arg));
        size_t got = strncmp(v[i].arg, "--max-body", 10) == 0 ? cfg.max_body : cfg.history_bytes;
        if (got != v[i].value) {
            fail_msg("%s gave %zu, want %zu", v[i].arg, got, v[i].value);
        }
    }
    parse_ok(&cfg, ARGS("--max-body", "2k"));
    assert_int_equal(cfg.max_body, 2048);
    parse_ok(&cfg, ARGS("--max-body", "1m"));
    assert_int_equal(cfg.max_body, 1u << 20);

    /* Suffixes are for sizes only. */
    parse_err(ARGS("--port", "1k"));
    parse_err(ARGS("--history", "1k"));
    /* Unknown, doubled or misplaced suffixes. */
    parse_err(ARGS("--max-body", "1kb"));
    parse_err(ARGS("--max-body", "1t"));
    parse_err(ARGS("--max-body", "1kk"));
    parse_err(ARGS("--max-body", "k"));
    parse_err(ARGS("--max-body", "1 k"));
    parse_err(ARGS("--max-body", "1.5k"));
    /* Past the range after scaling, and overflowing the scaling. */
    parse_err(ARGS("--max-body", "65m"));
    parse_err(ARGS("--max-body", "1g"));
    parse_err(ARGS("--max-body", "65537k"));
    parse_err(ARGS("--history-bytes", "1025g"));
    parse_err(ARGS("--history-bytes", "18446744073709551615k"));
    parse_err(ARGS("--history-bytes", "17179869184g"));       /* 2^34 GiB wraps to 0 */
    parse_err(ARGS("--history-bytes", "17179869185g"));       /* ...and this to 1 GiB */
    parse_err(ARGS("--history-bytes", "18014398509481985k")); /* 2^54 + 1 KiB: to 1 KiB */
    parse_err(ARGS("--retain-records", "17179869184g"));      /* to 0, which is allowed */
}

/* ---------------------------------------------------------------- ranges */

struct range {
    const char *flag;
    const char *min, *max;     /* accepted */
    const char *below, *above; /* rejected (below NULL when min is 0) */
    unsigned long long min_v, max_v;
};

static unsigned long long field_value(const struct config *cfg, const char *flag)
{
    if (!strcmp(flag, "--port")) {
        return (unsigned long long)cfg->port;
    }
    if (!strcmp(flag, "--max-body")) {
        return cfg->max_body;
    }
    if (!strcmp(flag, "--history")) {
        return cfg->history;
    }
    if (!strcmp(flag, "--history-bytes")) {
        return cfg->history_bytes;
    }
    if (!strcmp(flag, "--max-rooms")) {
        return cfg->max_rooms;
    }
    if (!strcmp(flag, "--retry-ms")) {
        return cfg->retry_ms;
    }
    if (!strcmp(flag, "--heartbeat")) {
        return cfg->heartbeat_s;
    }
    if (!strcmp(flag, "--ping-ms")) {
        return cfg->ping_ms;
    }
    if (!strcmp(flag, "--header-timeout")) {
        return cfg->header_timeout_s;
    }
    if (!strcmp(flag, "--keepalive-timeout")) {
        return cfg->keepalive_timeout_s;
    }
    if (!strcmp(flag, "--max-clients")) {
        return cfg->max_clients;
    }
    fail_msg("no field for %s", flag);
    return 0;
}

static void test_ranges(void **state)
{
    (void)state;
    static const struct range ranges[] = {
        {"--port", "0", "65535", NULL, "65536", 0, 65535},
        {"--max-body", "1", "67108864", "0", "67108865", 1, 64u << 20},
        {"--history", "1", "16777216", "0", "16777217", 1, 1u << 24},
        {"--history-bytes", "1024", "1099511627776", "1023", "1099511627777", 1024,
         (unsigned long long)1 << 40},
        {"--max-rooms", "1", "16777216", "0", "16777217", 1, 1u << 24},
        {"--retry-ms", "100", "3600000", "99", "3600001", 100, 3600000},
        {"--heartbeat", "1", "3600", "0", "3601", 1, 3600},
        {"--ping-ms", "10", "3600000", "9", "3600001", 10, 3600000},
        {"--header-timeout", "1", "3600", "0", "3601", 1, 3600},
        {"--keepalive-timeout", "1", "3600", "0", "3601", 1, 3600},
        {"--max-clients", "0", "16777216", NULL, "16777217", 0, 1u << 24},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        const struct range *r = &ranges[i];
        struct config cfg;
        parse_ok(&cfg, ARGS(r->flag, r->min));
        assert_int_equal(field_value(&cfg, r->flag), r->min_v);
        parse_ok(&cfg, ARGS(r->flag, r->max));
        assert_int_equal(field_value(&cfg, r->flag), r->max_v);
        if (r->below) {
            parse_err(ARGS(r->flag, r->below));
        }
        parse_err(ARGS(r->flag, r->above));
        /* Non-numeric values, for every numeric option. */
        static const char *const junk[] = {"",
                                           "abc",
                                           "-1",
                                           "+1",
                                           " 1",
                                           "1 ",
                                           "1.0",
                                           "0x10",
                                           "1e3",
                                           "12abc",
                                           "1,5",
                                           "\xd9\xa1",
                                           "99999999999999999999999",
                                           "18446744073709551616",
                                           "NaN"};
        for (size_t k = 0; k < sizeof junk / sizeof junk[0]; k++) {
            parse_err(ARGS(r->flag, junk[k]));
        }
        /* The message names the option and the range. */
        parse_err(ARGS(r->flag, "abc"));
        assert_non_null(strstr(output, r->flag));
        assert_non_null(strstr(output, r->max));
    }
}

static void test_bad_arguments(void **state)
{
    (void)state;
    /* Unknown options, in every spelling. */
    parse_err(ARGS("--nope"));
    parse_err(ARGS("--nope=1"));
    parse_err(ARGS("--PORT", "1"));
    parse_err(ARGS("--por", "1"));
    parse_err(ARGS("--portx", "1"));
    parse_err(ARGS("---port", "1"));
    parse_err(ARGS("--"));
    parse_err(ARGS("--="));
    parse_err(ARGS("--help=1"));
    parse_err(ARGS("--version=1"));
    /* Not options at all. */
    parse_err(ARGS("-p", "1"));
    parse_err(ARGS("-x"));
    parse_err(ARGS("port"));
    parse_err(ARGS("8080"));
    parse_err(ARGS("-"));
    parse_err(ARGS(""));
    /* A good option followed by a bad one still fails. */
    parse_err(ARGS("--port", "1", "--nope"));
    parse_err(ARGS("--port", "1", "extra"));

    /* A missing value. */
    parse_err(ARGS("--port"));
    parse_err(ARGS("--bind"));
    parse_err(ARGS("--history", "5", "--max-body"));
    parse_err(ARGS("--port="));
    parse_err(ARGS("--max-body="));
    assert_non_null(strstr(output, "--max-body"));

    /* String and path limits. */
    char bind[80];
    memset(bind, 'a', sizeof bind);
    bind[63] = '\0';
    struct config cfg;
    parse_ok(&cfg, ARGS("--bind", bind));
    assert_int_equal(strlen(cfg.bind), 63);
    bind[63] = 'a';
    bind[64] = '\0';
    parse_err(ARGS("--bind", bind));
    parse_err(ARGS("--static", ""));
    parse_err(ARGS("--static="));
    char *longpath = malloc(PATH_MAX + 10);
    assert_non_null(longpath);
    memset(longpath, 'p', PATH_MAX + 9);
    longpath[PATH_MAX] = '\0';
    parse_err(ARGS("--static", longpath));
    longpath[PATH_MAX - 1] = '\0';
    parse_ok(&cfg, ARGS("--static", longpath));
    assert_int_equal(strlen(cfg.static_dir), PATH_MAX - 1);
    free(longpath);

    parse_err(ARGS("--log-level", "loud"));
    parse_err(ARGS("--log-level", "INFO"));
    parse_err(ARGS("--log-level", ""));
}

/* ---------------------------------------------------------------- environment */

static void test_env(void **state)
{
    (void)state;
    struct config cfg;
    setenv("SSE_PORT", "1234", 1);
    setenv("SSE_BIND", "127.0.0.2", 1);
    setenv("SSE_MAX_BODY", "4k", 1);
    setenv("SSE_HISTORY", "7", 1);
    setenv("SSE_HISTORY_BYTES", "2m", 1);
    setenv("SSE_MAX_ROOMS", "9", 1);
    setenv("SSE_RETRY_MS", "500", 1);
    setenv("SSE_HEARTBEAT", "20", 1);
    setenv("SSE_PING_MS", "300", 1);
    setenv("SSE_HEADER_TIMEOUT", "5", 1);
    setenv("SSE_KEEPALIVE_TIMEOUT", "6", 1);
    setenv("SSE_MAX_CLIENTS", "42", 1);
    setenv("SSE_LOG_LEVEL", "warn", 1);
    setenv("SSE_STATIC", "/env/static", 1);
    parse_ok(&cfg, NULL);
    assert_int_equal(cfg.port, 1234);
    assert_string_equal(cfg.bind, "127.0.0.2");
    assert_int_equal(cfg.max_body, 4096);
    assert_int_equal(cfg.history, 7);
    assert_int_equal(cfg.history_bytes, 2u << 20);
    assert_int_equal(cfg.max_rooms, 9);
    assert_int_equal(cfg.retry_ms, 500);
    assert_int_equal(cfg.heartbeat_s, 20);
    assert_int_equal(cfg.ping_ms, 300);
    assert_int_equal(cfg.header_timeout_s, 5);
    assert_int_equal(cfg.keepalive_timeout_s, 6);
    assert_int_equal(cfg.max_clients, 42);
    assert_int_equal(cfg.log_level, LOG_WARN);
    assert_string_equal(cfg.static_dir, "/env/static");

    /* Flags win over the environment; the rest of it still applies. */
    parse_ok(&cfg, ARGS("--port", "4321", "--max-body=8k", "--log-level", "debug"));
    assert_int_equal(cfg.port, 4321);
    assert_int_equal(cfg.max_body, 8192);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfg.history, 7);
    assert_string_equal(cfg.bind, "127.0.0.2");

    /* An invalid variable is an error that names it. */
    clear_sse_env();
    setenv("SSE_PORT", "http", 1);
    parse_err(ARGS("--history", "3"));
    assert_non_null(strstr(output, "SSE_PORT"));
    setenv("SSE_PORT", "70000", 1);
    parse_err(ARGS("--history", "3"));
    setenv("SSE_PORT", "", 1);
    parse_err(ARGS("--history", "3"));
    clear_sse_env();
    setenv("SSE_MAX_BODY", "1t", 1);
    parse_err(ARGS("--history", "3"));
    clear_sse_env();

    /* Unset again: the defaults are back. */
    parse_ok(&cfg, NULL);
    assert_int_equal(cfg.port, 8080);
    assert_int_equal(cfg.max_body, 1u << 20);

    /* Variables that are not options are ignored. */
    setenv("SSE_NOT_AN_OPTION", "x", 1);
    setenv("SSE_port", "1", 1);
    parse_ok(&cfg, NULL);
    assert_int_equal(cfg.port, 8080);
}

/* ---------------------------------------------------------------- help, version */

static void test_help_version(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(parse_argv(&cfg, ARGS("--help")), CONFIG_EXIT_OK);
    assert_non_null(strstr(output, "Usage"));
    static const char *const mention[] = {"--port",
                                          "SSE_PORT",
                                          "--bind",
                                          "--static",
                                          "--max-body",
                                          "--history-bytes",
                                          "--max-rooms",
                                          "--retry-ms",
                                          "--heartbeat",
                                          "--header-timeout",
                                          "--keepalive-timeout",
                                          "--log-level",
                                          "--help",
                                          "--version",
                                          "SSE_MAX_BODY"};
    for (size_t i = 0; i < sizeof mention / sizeof mention[0]; i++) {
        if (!strstr(output, mention[i])) {
            fail_msg("--help does not mention %s", mention[i]);
        }
    }
    assert_null(strstr(output, "sse-server: ")); /* no error message */

    assert_int_equal(parse_argv(&cfg, ARGS("-h")), CONFIG_EXIT_OK);
    assert_non_null(strstr(output, "Usage"));

    assert_int_equal(parse_argv(&cfg, ARGS("--version")), CONFIG_EXIT_OK);
    assert_true(strncmp(output, "sse-server ", 11) == 0);
    size_t n = strlen(output);
    assert_true(n > 12 && output[n - 1] == '\n');
#ifdef SSE_VERSION
    assert_non_null(strstr(output, SSE_VERSION));
#endif

    /* Valid options before it are fine; it wins over what follows. */
    assert_int_equal(parse_argv(&cfg, ARGS("--port", "1", "--help")), CONFIG_EXIT_OK);
    assert_int_equal(parse_argv(&cfg, ARGS("--version", "--nope")), CONFIG_EXIT_OK);
    assert_int_equal(parse_argv(&cfg, ARGS("--help", "--port", "bad")), CONFIG_EXIT_OK);
    /* --help and --version win wherever they are, whatever else is wrong,
     * so a user can always ask for help. */
    assert_int_equal(parse_argv(&cfg, ARGS("--nope", "--help")), CONFIG_EXIT_OK);
    assert_int_equal(parse_argv(&cfg, ARGS("--port", "bad", "--version")), CONFIG_EXIT_OK);
    setenv("SSE_PORT", "bad", 1);
    assert_int_equal(parse_argv(&cfg, ARGS("--help")), CONFIG_EXIT_OK);
    assert_non_null(strstr(output, "Usage"));
    parse_err(ARGS("--port", "1", "--bind", "127.0.0.1", "--nope"));
    unsetenv("SSE_PORT");
}

/* The first --cors-origin flag replaces the list from SSE_CORS_ORIGIN, as
 * every flag wins over its variable; further flags add to it. */
static void test_cors_flags_replace_env(void **state)
{
    (void)state;
    struct config cfg;
    setenv("SSE_CORS_ORIGIN", "https://env.example, https://env2.example", 1);
    parse_ok(&cfg, NULL);
    assert_true(config_origin_allowed(&cfg, "https://env.example", 19));
    assert_true(config_origin_allowed(&cfg, "https://env2.example", 20));

    parse_ok(&cfg, ARGS("--cors-origin", "https://a.example", "--cors-origin=https://b.example"));
    assert_false(config_origin_allowed(&cfg, "https://env.example", 19));
    assert_true(config_origin_allowed(&cfg, "https://a.example", 17));
    assert_true(config_origin_allowed(&cfg, "https://b.example", 17));
    assert_false(config_origin_allowed(&cfg, "https://a.exampl", 16));
    unsetenv("SSE_CORS_ORIGIN");
}

/* ---------------------------------------------------------------- other options */

static void test_other_options(void **state)
{
    (void)state;
    struct config cfg;

    parse_ok(&cfg, NULL);
    assert_int_equal(cfg.log_format, LOG_TEXT);
    assert_string_equal(cfg.publish_token, "");
    assert_int_equal(cfg.cors_origins_len, 0);
    assert_int_equal(cfg.admin_local, 0);
    assert_string_equal(cfg.data_dir, "");
    assert_int_equal(cfg.fsync_mode, FSYNC_BATCH);
    assert_int_equal(cfg.segment_bytes, 64u << 20);
    assert_int_equal(cfg.retain_bytes, (size_t)1 << 30);
    assert_int_equal(cfg.retain_records, 0);

    parse_ok(&cfg, ARGS("--log-format", "json"));
    assert_int_equal(cfg.log_format, LOG_JSON);
    parse_ok(&cfg, ARGS("--log-format=text"));
    assert_int_equal(cfg.log_format, LOG_TEXT);
    parse_err(ARGS("--log-format", "xml"));

    parse_ok(&cfg, ARGS("--fsync", "always"));
    assert_int_equal(cfg.fsync_mode, FSYNC_ALWAYS);
    parse_ok(&cfg, ARGS("--fsync=never"));
    assert_int_equal(cfg.fsync_mode, FSYNC_NEVER);
    parse_ok(&cfg, ARGS("--fsync", "batch"));
    assert_int_equal(cfg.fsync_mode, FSYNC_BATCH);
    parse_err(ARGS("--fsync", "sometimes"));

    /* A flag takes no value, or an explicit boolean after '='. */
    parse_ok(&cfg, ARGS("--admin-local"));
    assert_int_equal(cfg.admin_local, 1);
    parse_ok(&cfg, ARGS("--admin-local=0"));
    assert_int_equal(cfg.admin_local, 0);
    parse_ok(&cfg, ARGS("--admin-local=true", "--port", "5"));
    assert_int_equal(cfg.admin_local, 1);
    assert_int_equal(cfg.port, 5);
    parse_err(ARGS("--admin-local=yes"));
    setenv("SSE_ADMIN_LOCAL", "1", 1);
    parse_ok(&cfg, NULL);
    assert_int_equal(cfg.admin_local, 1);
    parse_ok(&cfg, ARGS("--admin-local=false"));
    assert_int_equal(cfg.admin_local, 0);
    unsetenv("SSE_ADMIN_LOCAL");

    parse_ok(&cfg, ARGS("--data-dir", "/var/lib/sse", "--segment-bytes", "1m", "--retain-bytes=2g",
                        "--retain-records", "0"));
    assert_string_equal(cfg.data_dir, "/var/lib/sse");
    assert_int_equal(cfg.segment_bytes, 1u << 20);
    assert_int_equal(cfg.retain_bytes, (size_t)2 << 30);
    parse_err(ARGS("--segment-bytes", "4095"));
    parse_err(ARGS("--data-dir", ""));

    /* A cluster node: Redis's address, parsed at start; never with a
     * journal of its own, and a password is never echoed. */
    parse_ok(&cfg, ARGS("--redis", "redis://:pw@127.0.0.1:6380/2"));
    assert_true(cfg.has_redis);
    assert_int_equal(cfg.redis.port, 6380);
    assert_int_equal(cfg.redis.db, 2);
    assert_string_equal(cfg.redis.password, "pw");
    parse_ok(&cfg, NULL);
    assert_false(cfg.has_redis);
    parse_err(ARGS("--redis", "redis://:hunter2@example.com"));
    assert_null(strstr(output, "hunter2"));
    parse_err(ARGS("--redis", "redis://localhost", "--data-dir", "/var/lib/sse"));
    assert_non_null(strstr(output, "--data-dir"));
    parse_ok(&cfg, ARGS("--redis-ttl", "86400"));
    assert_int_equal(cfg.redis_ttl_s, 86400);
    parse_err(ARGS("--redis-ttl", "-1"));
    setenv("SSE_REDIS", "redis://localhost:7000", 1);
    parse_ok(&cfg, NULL);
    assert_int_equal(cfg.redis.port, 7000);
    unsetenv("SSE_REDIS");

    /* Publish token, inline or from the first line of a file. */
    parse_ok(&cfg, ARGS("--publish-token", "s3cret"));
    assert_string_equal(cfg.publish_token, "s3cret");
    parse_err(ARGS("--publish-token", "a\nb"));
    char tokfile[] = "/tmp/sse-config-test-XXXXXX";
    int fd = mkstemp(tokfile);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "from-file\r\nsecond line\n", 23), 23);
    close(fd);
    parse_ok(&cfg, ARGS("--publish-token-file", tokfile));
    assert_string_equal(cfg.publish_token, "from-file");
    fd = open(tokfile, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    close(fd);
    parse_err(ARGS("--publish-token-file", tokfile)); /* empty */
    unlink(tokfile);
    parse_err(ARGS("--publish-token-file", tokfile)); /* missing */

    /* The admin token: flag, variable or file, within its own field's size. */
    parse_ok(&cfg, NULL);
    assert_string_equal(cfg.admin_token, "");
    parse_ok(&cfg, ARGS("--admin-token", "adm1n"));
    assert_string_equal(cfg.admin_token, "adm1n");
    assert_string_equal(cfg.publish_token, "");
    setenv("SSE_ADMIN_TOKEN", "from-env", 1);
    parse_ok(&cfg, NULL);
    assert_string_equal(cfg.admin_token, "from-env");
    parse_ok(&cfg, ARGS("--admin-token=flag-wins"));
    assert_string_equal(cfg.admin_token, "flag-wins");
    unsetenv("SSE_ADMIN_TOKEN");
    parse_err(ARGS("--admin-token", "a\rb"));
    char longest[sizeof cfg.admin_token + 1];
    memset(longest, 't', sizeof longest);
    longest[sizeof cfg.admin_token - 1] = '\0';
    parse_ok(&cfg, ARGS("--admin-token", longest));
    assert_int_equal(strlen(cfg.admin_token), sizeof cfg.admin_token - 1);
    longest[sizeof cfg.admin_token - 1] = 't';
    longest[sizeof cfg.admin_token] = '\0';
    parse_err(ARGS("--admin-token", longest));
    char admfile[] = "/tmp/sse-config-test-XXXXXX";
    fd = mkstemp(admfile);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "adm-file\n", 9), 9);
    close(fd);
    parse_ok(&cfg, ARGS("--admin-token-file", admfile));
    assert_string_equal(cfg.admin_token, "adm-file");
    unlink(admfile);
    parse_err(ARGS("--admin-token-file", admfile)); /* missing */

    /* CORS origins: repeatable flags, or a comma list in the variable. */
    parse_ok(&cfg,
             ARGS("--cors-origin", "https://a.example", "--cors-origin", "http://localhost:3000"));
    assert_true(config_origin_allowed(&cfg, "https://a.example", 17));
    assert_true(config_origin_allowed(&cfg, "http://localhost:3000", 21));
    assert_false(config_origin_allowed(&cfg, "https://a.example.evil", 22));
    assert_false(config_origin_allowed(&cfg, "https://a.exampl", 16));
    assert_false(config_origin_allowed(&cfg, "", 0));
    setenv("SSE_CORS_ORIGIN", " https://x.example , https://y.example,,", 1);
    parse_ok(&cfg, NULL);
    assert_true(config_origin_allowed(&cfg, "https://x.example", 17));
    assert_true(config_origin_allowed(&cfg, "https://y.example", 17));
    assert_false(config_origin_allowed(&cfg, " https://x.example", 18));
    unsetenv("SSE_CORS_ORIGIN");
    char many[2048];
    memset(many, 'o', sizeof many);
    many[sizeof many - 1] = '\0';
    parse_err(ARGS("--cors-origin", many));
}

/* ------------------------------------------------------------ token file */

/* Writes len bytes of `bytes` to a new temporary file named in path. */
static void write_temp(char *path, const char *bytes, size_t len)
{
    strcpy(path, "/tmp/sse-config-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    close(fd);
}

/* Expects the token file with these bytes to give a token of want_len bytes
 * (the first want_len bytes of the file), or when want_len is 0 to be refused
 * with `why` in the message. */
static void expect_token_file(const char *bytes, size_t len, size_t want_len, const char *why)
{
    char path[64];
    write_temp(path, bytes, len);
    struct config cfg;
    if (want_len) {
        parse_ok(&cfg, ARGS("--publish-token-file", path));
        assert_int_equal(strlen(cfg.publish_token), want_len);
        assert_memory_equal(cfg.publish_token, bytes, want_len);
    } else {
        parse_err(ARGS("--publish-token-file", path));
        if (!strstr(output, why))
            fail_msg("no \"%s\" in: %s", why, output);
    }
    unlink(path);
}

/* Tokens up to CONFIG_TOKEN_MAX bytes are read in full; a longer one, an
 * empty one or one with a NUL byte stops the start with a message that says
 * which: never a token silently cut short. */
static void test_token_file_sizes(void **state)
{
    (void)state;
    enum { BIG = CONFIG_TOKEN_MAX + 10 };
    char *t = malloc(BIG + 2);
    assert_non_null(t);
    for (size_t i = 0; i < BIG; i++)
        t[i] = (char)('a' + i % 26);
    static const size_t fits[] = {1, 255, 256, 3000, CONFIG_TOKEN_MAX - 1, CONFIG_TOKEN_MAX};
    for (size_t k = 0; k < sizeof fits / sizeof fits[0]; k++) {
        size_t n = fits[k];
        expect_token_file(t, n, n, NULL); /* no line end at all */
        t[n] = '\n';
        expect_token_file(t, n + 1, n, NULL);
        t[n] = '\r';
        t[n + 1] = '\n';
        expect_token_file(t, n + 2, n, NULL);
        expect_token_file(t, BIG, n, NULL); /* a long second line */
        t[n] = (char)('a' + n % 26);
        t[n + 1] = (char)('a' + (n + 1) % 26);
    }
    expect_token_file(t, CONFIG_TOKEN_MAX + 1, 0, "longer than 4096 bytes");
    t[CONFIG_TOKEN_MAX + 1] = '\n';
    expect_token_file(t, CONFIG_TOKEN_MAX + 2, 0, "longer than 4096 bytes");
    t[CONFIG_TOKEN_MAX + 1] = '\r';
    expect_token_file(t, BIG, 0, "longer than 4096 bytes");
    t[CONFIG_TOKEN_MAX + 1] = 'x';
    expect_token_file(t, BIG, 0, "longer than 4096 bytes"); /* no line end at all */
    expect_token_file("", 0, 0, "is empty");
    expect_token_file("\n", 1, 0, "is empty");
    expect_token_file("\r\nsecond line\n", 14, 0, "is empty");
    expect_token_file("ab\0cd\n", 6, 0, "NUL");
    parse_err(ARGS("--publish-token-file", "/nonexistent/sse-token"));
    assert_non_null(strstr(output, "/nonexistent/sse-token"));

    /* Inline, the same limit. */
    struct config cfg;
    t[CONFIG_TOKEN_MAX] = '\0';
    parse_ok(&cfg, ARGS("--publish-token", t));
    assert_int_equal(strlen(cfg.publish_token), CONFIG_TOKEN_MAX);
    t[CONFIG_TOKEN_MAX] = 'x';
    t[CONFIG_TOKEN_MAX + 1] = '\0';
    parse_err(ARGS("--publish-token", t));
    assert_non_null(strstr(output, "longer than 4096 bytes"));
    assert_null(strstr(output, t)); /* the secret is not echoed */
    free(t);
}

/* ------------------------------------------------------------ help defaults */

/* Defaults --help describes in words, not as a value, and the check that
 * config_defaults sets just that. */
static bool descriptive_default(const char *name, const char *shown, const struct config *d)
{
    if (strcmp(name, "static") == 0) {
        size_t n = strlen(d->static_dir);
        return strcmp(shown, "static/ beside the binary if it exists, else ./static") == 0 &&
               n >= 7 && strcmp(d->static_dir + n - 7, "/static") == 0;
    }
    if (strcmp(name, "publish-token") == 0 || strcmp(name, "publish-token-file") == 0)
        return strcmp(shown, "none") == 0 && d->publish_token[0] == '\0';
    if (strcmp(name, "admin-token") == 0 || strcmp(name, "admin-token-file") == 0)
        return strcmp(shown, "none") == 0 && d->admin_token[0] == '\0';
    if (strcmp(name, "cors-origin") == 0)
        return strcmp(shown, "any") == 0 && d->cors_origins_len == 0;
    if (strcmp(name, "admin-local") == 0)
        return strcmp(shown, "off") == 0 && d->admin_local == 0;
    if (strcmp(name, "data-dir") == 0)
        return strcmp(shown, "none") == 0 && d->data_dir[0] == '\0';
    if (strcmp(name, "jwt-key-file") == 0)
        return strcmp(shown, "none") == 0 && d->jwt_key_file[0] == '\0';
    if (strcmp(name, "jwt-audience") == 0)
        return strcmp(shown, "none") == 0 && d->jwt_audience[0] == '\0';
    if (strcmp(name, "jwt-issuer") == 0)
        return strcmp(shown, "none") == 0 && d->jwt_issuer[0] == '\0';
    if (strcmp(name, "private-rooms") == 0)
        return strcmp(shown, "none") == 0 && d->private_rooms[0] == '\0';
    if (strcmp(name, "redis") == 0)
        return strcmp(shown, "none") == 0 && !d->has_redis;
    return false;
}

/*
 * Every option's --help line ends "(default X) [SSE_VAR]", and X is what the
 * defaults are: setting the option to X explicitly changes nothing in the
 * parsed configuration (a help line showing anything else would). The few
 * defaults that are not values are checked one by one.
 */
static void test_help_defaults(void **state)
{
    (void)state;
    struct config defaults, cfg;
    parse_ok(&defaults, NULL);
    assert_int_equal(parse_argv(&cfg, ARGS("--help")), CONFIG_EXIT_OK);
    char help[sizeof output];
    memcpy(help, output, sizeof help);

    size_t options = 0, words = 0;
    for (char *line = strtok(help, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "  --", 4) != 0 || !strstr(line, "[SSE_"))
            continue; /* not an option, or --help / --version */
        char name[64];
        size_t n = strcspn(line + 4, " ");
        assert_true(n < sizeof name);
        memcpy(name, line + 4, n);
        name[n] = '\0';
        const char *d = strstr(line, " (default ");
        const char *end = strstr(line, ") [SSE_");
        if (!d || !end || end < d)
            fail_msg("no \"(default ...)\" before the variable: %s", line);
        char shown[128];
        size_t sl = (size_t)(end - (d + 10));
        assert_true(sl > 0 && sl < sizeof shown);
        memcpy(shown, d + 10, sl);
        shown[sl] = '\0';
        options++;
        if (descriptive_default(name, shown, &defaults)) {
            words++;
            continue;
        }
        char arg[256];
        snprintf(arg, sizeof arg, "--%s=%s", name, shown);
        parse_ok(&cfg, ARGS(arg));
        if (memcmp(&cfg, &defaults, sizeof cfg) != 0)
            fail_msg("--help shows \"%s\" for --%s, but that is not its default", shown, name);
    }
    assert_int_equal(options, 35);
    assert_int_equal(words, 13);

    /* As a user reads it. */
    assert_int_equal(parse_argv(&cfg, ARGS("--help")), CONFIG_EXIT_OK);
    assert_non_null(strstr(output, "messages kept per room for replay and resume (default 1000)"));
    assert_int_equal(defaults.history, 1000);
    assert_non_null(strstr(output, "(default 16m) [SSE_HISTORY_BYTES]"));
    assert_int_equal(defaults.history_bytes, 16u << 20);
}

/* The token options: defaults, values, validation, the environment, and
 * --private-rooms refused without a key file. */
static void test_jwt_options(void **state)
{
    (void)state;
    struct config cfg;
    parse_ok(&cfg, NULL);
    assert_string_equal(cfg.jwt_key_file, "");
    assert_string_equal(cfg.private_rooms, "");
    assert_int_equal(cfg.jwt_leeway_s, 0);

    parse_ok(&cfg, ARGS("--jwt-key-file", "/etc/keys", "--private-rooms", "user-*, team-7",
                        "--jwt-audience", "chat", "--jwt-issuer", "https://auth.example/",
                        "--jwt-leeway", "30"));
    assert_string_equal(cfg.jwt_key_file, "/etc/keys");
    assert_string_equal(cfg.private_rooms, "user-*, team-7");
    assert_string_equal(cfg.jwt_audience, "chat");
    assert_string_equal(cfg.jwt_issuer, "https://auth.example/");
    assert_int_equal(cfg.jwt_leeway_s, 30);
    parse_ok(&cfg, ARGS("--jwt-key-file", "/k", "--private-rooms", "*"));

    parse_err(ARGS("--private-rooms", "a"));
    assert_non_null(strstr(output, "--private-rooms needs --jwt-key-file"));
    parse_err(ARGS("--jwt-key-file", "/k", "--private-rooms", "a*b"));
    parse_err(ARGS("--jwt-key-file", "/k", "--private-rooms", "a,,b"));
    parse_err(ARGS("--jwt-key-file", "/k", "--private-rooms", ""));
    parse_err(ARGS("--jwt-leeway", "3601"));
    parse_err(ARGS("--jwt-audience", "a\nb"));

    setenv("SSE_JWT_KEY_FILE", "/env/keys", 1);
    setenv("SSE_PRIVATE_ROOMS", "secret-*", 1);
    setenv("SSE_JWT_LEEWAY", "5", 1);
    parse_ok(&cfg, NULL);
    assert_string_equal(cfg.jwt_key_file, "/env/keys");
    assert_string_equal(cfg.private_rooms, "secret-*");
    assert_int_equal(cfg.jwt_leeway_s, 5);
    unsetenv("SSE_JWT_KEY_FILE");
    unsetenv("SSE_PRIVATE_ROOMS");
    unsetenv("SSE_JWT_LEEWAY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_suffixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cors_flags_replace_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_file_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwt_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
