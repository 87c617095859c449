#include "token_cmd.h"

#include "buf.h"
#include "number.h"
#include "jwt.h"
#include "keyring.h"
#include "room_pattern.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

struct token_args {
    const char *key_file, *kid, *subscribe, *publish, *audience, *issuer;
    uint64_t ttl_s;
};

static void token_usage(FILE *f)
{
    fprintf(f, "Usage: sse-server token --key-file FILE [--kid K] [--subscribe ROOMS]\n"
               "                        [--publish ROOMS] [--ttl DURATION] [--audience A]\n"
               "                        [--issuer I]\n"
               "Prints an HS256 token (JWT) signed with a key of FILE (the first one, or the\n"
               "one with kid K). ROOMS is a comma list of room names or prefixes ending in\n"
               "'*'. DURATION is N, Ns, Nm, Nh or Nd (default 1h); 0 gives no expiry.\n");
}

/* N[s|m|h|d] into seconds. */
static bool parse_ttl(const char *s, uint64_t *out)
{
    size_t len = strlen(s), n = number_span(s, len);
    uint64_t v, mult = 1;
    if (!number_parse_u64(s, n, &v) || len > n + 1) {
        return false;
    }
    switch (s[n]) {
    case '\0':
    case 's':
        break;
    case 'm':
        mult = 60;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    default:
        return false;
    }
    /* Ten years is plenty, and keeps now + ttl far from overflowing. */
    if (v > 315360000 / mult) {
        return false;
    }
    *out = v * mult;
    return true;
}

static int parse_args(int argc, char **argv, struct token_args *a)
{
    static const char *const names[] = {"--key-file", "--kid",      "--subscribe",
                                        "--publish",  "--audience", "--issuer"};
    const char **fields[] = {&a->key_file, &a->kid,      &a->subscribe,
                             &a->publish,  &a->audience, &a->issuer};
    const char *ttl = "1h";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            token_usage(stdout);
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "sse-server token: '%s' needs a value (see --help)\n", argv[i]);
            return -1;
        }
        bool known = strcmp(argv[i], "--ttl") == 0;
        if (known) {
            ttl = argv[i + 1];
        }
        for (size_t k = 0; k < sizeof names / sizeof names[0] && !known; k++) {
            if (strcmp(argv[i], names[k]) == 0) {
                *fields[k] = argv[i + 1];
                known = true;
            }
        }
        if (!known) {
            fprintf(stderr, "sse-server token: unknown option '%s' (see --help)\n", argv[i]);
            return -1;
        }
        i++;
    }
    if (!a->key_file) {
        fprintf(stderr, "sse-server token: --key-file is required (see --help)\n");
        return -1;
    }
    if (!parse_ttl(ttl, &a->ttl_s)) {
        fprintf(stderr, "sse-server token: invalid --ttl '%s'\n", ttl);
        return -1;
    }
    return 0;
}

/* Appends "name":["a","b"] for a comma list of room patterns. */
static int append_rooms(struct buf *b, const char *name, const char *list, bool *first)
{
    if (!list) {
        return 0;
    }
    if (!room_pattern_list_valid(list)) {
        fprintf(stderr, "sse-server token: invalid rooms '%s'\n", list);
        return -1;
    }
    int rc = buf_printf(b, "%s\"%s\":[", *first ? "" : ",", name);
    *first = false;
    const char *p = list;
    for (bool more = true; more && rc == 0; p++) {
        size_t n = strcspn(p, ",");
        more = p[n] == ',';
        const char *e = p;
        while (*e == ' ' || *e == '\t') {
            e++;
            n--;
        }
        while (n && (e[n - 1] == ' ' || e[n - 1] == '\t')) {
            n--;
        }
        rc = buf_printf(b, "%s\"%.*s\"", p == list ? "" : ",", (int)n, e);
        p = e + n + strspn(e + n, " \t");
    }
    return rc == 0 ? buf_append_str(b, "]") : -1;
}

/* The claims as JSON. Audience and issuer are written as JSON strings, so
 * they may not contain quotes, backslashes or control characters. */
static int build_payload(const struct token_args *a, struct buf *b)
{
    bool first = true;
    int64_t now = (int64_t)time(NULL);
    int rc = buf_append_str(b, "{\"sse\":{");
    if (rc == 0 && (append_rooms(b, "subscribe", a->subscribe, &first) < 0 ||
                    append_rooms(b, "publish", a->publish, &first) < 0)) {
        return -1;
    }
    rc = rc ? rc : buf_printf(b, "},\"iat\":%lld", (long long)now);
    if (rc == 0 && a->ttl_s) {
        int64_t exp = now + (int64_t)a->ttl_s;
        rc = buf_printf(b, ",\"exp\":%lld", (long long)exp);
    }
    const char *names[2] = {"aud", "iss"}, *values[2] = {a->audience, a->issuer};
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (!values[i]) {
            continue;
        }
        if (strpbrk(values[i], "\"\\\r\n\t")) {
            fprintf(stderr, "sse-server token: invalid %s '%s'\n", names[i], values[i]);
            return -1;
        }
        rc = buf_printf(b, ",\"%s\":\"%s\"", names[i], values[i]);
    }
    return rc == 0 ? buf_append_str(b, "}") : -1;
}

int token_command(int argc, char **argv)
{
    struct token_args a = {0};
    char err[256], out[JWT_MAX_TOKEN + 1];
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    struct keyring *kr = keyring_load(a.key_file, err, sizeof err);
    if (!kr) {
        fprintf(stderr, "sse-server token: %s\n", err);
        return 2;
    }
    const struct jwt_key *key = keyring_find(kr, a.kid);
    struct buf payload = {0};
    size_t n = 0;
    if (!key) {
        fprintf(stderr, "sse-server token: no key with kid '%s' in %s\n", a.kid, a.key_file);
    } else if (build_payload(&a, &payload) == 0) {
        n = jwt_sign(buf_head(&payload), buf_pending(&payload), key, out, sizeof out);
        if (n == 0) {
            fprintf(stderr, "sse-server token: the token would be longer than %d bytes\n",
                    JWT_MAX_TOKEN);
        }
    }
    buf_free(&payload);
    keyring_free(kr);
    if (n == 0) {
        return 2;
    }
    printf("%s\n", out);
    return 0;
}
