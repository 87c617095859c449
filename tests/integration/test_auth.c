/*
 * test_auth: private rooms and per-room tokens against the real server --
 * where a token may come from (Bearer wins, cookie, ?token=), 401 and 403
 * with their reasons, public rooms beside private ones, publishing with a
 * room-scoped token or the old publish token, the room resolved from the
 * JSON body, "alg": "none" and RS256 refused, tampered and foreign tokens,
 * exp / nbf / leeway, aud / iss, oversized and malformed tokens (no
 * crash), a stream whose token expires mid-stream (token-expired event,
 * then a reconnect with Last-Event-ID that loses nothing), key rotation by
 * SIGHUP, a query token never logged, and the cross-check with Debian's
 * python3-jwt in both directions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

#define PYTHON "/usr/bin/python3"

static struct itest_server srv;
static char keyfile[64];

/* ------------------------------------------------------------ helpers */

static void write_keys(const char *text)
{
    assert_int_equal(itest_write_file(keyfile, text, strlen(text)), 0);
}

static void start(const char *const *extra)
{
    const char *args[24];
    size_t n = 0;
    args[n++] = "--jwt-key-file";
    args[n++] = keyfile;
    for (; extra && *extra; extra++) {
        args[n++] = *extra;
    }
    args[n] = NULL;
    srv = itest_server_start(args);
    if (srv.pid <= 0)
        fail_msg("the server did not start");
}

static int setup(void **state)
{
    (void)state;
    snprintf(keyfile, sizeof keyfile, "/tmp/auth-keys-XXXXXX");
    int fd = mkstemp(keyfile);
    assert_true(fd >= 0);
    close(fd);
    write_keys("secret-one\nk2:secret-two\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (srv.pid > 0)
        itest_server_stop(&srv);
    memset(&srv, 0, sizeof srv);
    unlink(keyfile);
    return 0;
}

/* Runs a command and returns its first stdout line (static buffer). */
static const char *run_line(const char *cmd)
{
    static char line[8192];
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    line[0] = 0;
    if (!fgets(line, sizeof line, p))
        line[0] = 0;
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("'%s' failed (status %d)", cmd, st);
    line[strcspn(line, "\n")] = 0;
    return line;
}

/* A token from `sse-server token` with these arguments (static buffer). */
static const char *mint(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' token --key-file '%s' %s", getenv("SSE_SERVER"), keyfile, args);
    return run_line(cmd);
}

/* A token made by python3-jwt: `expr` is a Python expression with jwt and
 * time imported, and forge(header, payload, key) making a token by hand
 * (HMAC-SHA-256 with key, or no signature when key is None) (static
 * buffer). */
static const char *py(const char *expr)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             PYTHON
             " -c 'import jwt, time, json, base64, hmac, hashlib; "
             "b = lambda x: base64.urlsafe_b64encode(x).decode().rstrip(\"=\"); "
             "s = lambda h, p: b(json.dumps(h).encode()) + \".\" + b(json.dumps(p).encode()); "
             "forge = lambda h, p, k: s(h, p) + \".\" + (b(hmac.new(k.encode(), "
             "s(h, p).encode(), hashlib.sha256).digest()) if k else \"\"); "
             "print(%s)'",
             expr);
    return run_line(cmd);
}

/* Sends a request and returns its status; the response is left in *r. */
static int get(const char *target, const char *headers, struct itest_response *r)
{
    char req[32768];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n", target,
             headers ? headers : "");
    assert_int_equal(itest_request(srv.port, req, r), 0);
    return r->status;
}

/* The status of a stream request; the response (head only) is freed. */
static int sub_status(const char *target, const char *headers)
{
    struct itest_response r;
    char req[32768];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n", target,
             headers ? headers : "");
    assert_int_equal(itest_request_n(srv.port, req, strlen(req), ITEST_RESP_HEAD_ONLY, &r), 0);
    int status = r.status;
    itest_response_free(&r);
    return status;
}

static int post(const char *target, const char *headers, const char *body, char *answer, size_t cap)
{
    char req[32768];
    struct itest_response r;
    snprintf(req, sizeof req,
             "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             target, headers ? headers : "", strlen(body), body);
    assert_int_equal(itest_request(srv.port, req, &r), 0);
    int status = r.status;
    if (answer)
        snprintf(answer, cap, "%s", r.body);
    itest_response_free(&r);
    return status;
}

static void bearer(char *out, size_t cap, const char *tok)
{
    snprintf(out, cap, "Authorization: Bearer %s\r\n", tok);
}

/* 401 with the Bearer challenge and a JSON reason containing `why`. */
static void expect_401(const char *target, const char *headers, const char *why)
{
    struct itest_response r;
    int status = get(target, headers, &r);
    if (status != 401 || !strstr(r.body, why)) {
        itest_show_response(target, &r, 300);
        fail_msg("expected 401 '%s'", why);
    }
    assert_string_equal(itest_header_or_absent(&r, "WWW-Authenticate"),
                        "Bearer error=\"invalid_token\"");
    assert_true(itest_is_json_error(&r));
    itest_response_free(&r);
}

/* ------------------------------------------------------------ tests */

static void test_token_sources(void **state)
{
    (void)state;
    const char *args[] = {"--private-rooms", "user-*,team-7", NULL};
    start(args);
    char tok[4096], hdr[4200];
    snprintf(tok, sizeof tok, "%s", mint("--subscribe user-42"));

    /* Public rooms need nothing; private ones need a token. */
    assert_int_equal(sub_status("/messages?room=lobby", NULL), 200);
    assert_int_equal(sub_status("/messages", NULL), 200);
    expect_401("/messages?room=user-42", NULL, "needs a token");
    expect_401("/messages?room=team-7", NULL, "needs a token");

    bearer(hdr, sizeof hdr, tok);
    assert_int_equal(sub_status("/messages?room=user-42", hdr), 200);
    snprintf(hdr, sizeof hdr, "Cookie: theme=dark; sse_token=%s; x=y\r\n", tok);
    assert_int_equal(sub_status("/messages?room=user-42", hdr), 200);
    char target[4300];
    snprintf(target, sizeof target, "/messages?room=user-42&token=%s", tok);
    assert_int_equal(sub_status(target, NULL), 200);

    /* The header wins: a bad Bearer token is not rescued by a good query. */
    assert_int_equal(sub_status(target, "Authorization: Bearer nope\r\n"), 401);
    /* A token for another room: 403, saying which room. */
    struct itest_response r;
    bearer(hdr, sizeof hdr, tok);
    assert_int_equal(get("/messages?room=user-43", hdr, &r), 403);
    assert_non_null(strstr(r.body, "user-43"));
    assert_true(itest_is_json_error(&r));
    itest_response_free(&r);
    assert_int_equal(get("/messages?room=team-7", hdr, &r), 403);
    itest_response_free(&r);
}

static void test_publish_rules(void **state)
{
    (void)state;
    const char *args[] = {"--publish-token", "old-shared-token", NULL};
    start(args);
    char hdr[4200], answer[256];

    /* With a key, publishing needs a token that covers the room. */
    assert_int_equal(post("/message?room=news", NULL, "{}", answer, sizeof answer), 401);
    assert_non_null(strstr(answer, "publishing needs a token"));
    bearer(hdr, sizeof hdr, mint("--publish 'news,alerts-*'"));
    assert_int_equal(post("/message?room=news", hdr, "{}", NULL, 0), 202);
    assert_int_equal(post("/message?room=alerts-eu", hdr, "{}", NULL, 0), 202);
    assert_int_equal(post("/message?room=sports", hdr, "{}", answer, sizeof answer), 403);
    assert_non_null(strstr(answer, "sports"));
    /* The room comes from the JSON body when the query names none. */
    assert_int_equal(post("/message", hdr, "{\"room\":\"news\"}", NULL, 0), 202);
    assert_int_equal(post("/message", hdr, "{\"room\":\"sports\"}", NULL, 0), 403);
    /* Without a room: the default room, which this token does not cover. */
    assert_int_equal(post("/message", hdr, "{}", NULL, 0), 403);
    /* A subscribe-only token cannot publish. */
    bearer(hdr, sizeof hdr, mint("--subscribe news"));
    assert_int_equal(post("/message?room=news", hdr, "{}", NULL, 0), 403);
    /* The shared publish token still publishes anywhere. */
    assert_int_equal(
        post("/message?room=sports", "Authorization: Bearer old-shared-token\r\n", "{}", NULL, 0),
        202);
    /* Publishing with the token in a cookie or the query works too. */
    char target[4300];
    snprintf(target, sizeof target, "/message?room=news&token=%s", mint("--publish news"));
    assert_int_equal(post(target, NULL, "{}", NULL, 0), 202);
}

static void test_bad_tokens(void **state)
{
    (void)state;
    const char *args[] = {"--private-rooms", "*", NULL};
    start(args);
    char hdr[30000];
    const char *room = "/messages?room=r";

    /* alg none, with or without a signature; RS256; HS512. */
    bearer(hdr, sizeof hdr,
           py("forge({\"alg\":\"none\"}, {\"sse\":{\"subscribe\":[\"*\"]}}, None)"));
    expect_401(room, hdr, "algorithm");
    bearer(hdr, sizeof hdr,
           py("forge({\"alg\":\"none\"}, {\"sse\":{\"subscribe\":[\"*\"]}}, \"secret-one\")"));
    expect_401(room, hdr, "algorithm");
    bearer(
        hdr, sizeof hdr,
        py("jwt.encode({\"sse\":{\"subscribe\":[\"*\"]}}, \"secret-one\", algorithm=\"HS512\")"));
    expect_401(room, hdr, "algorithm");
    /* An RS256 header over an HMAC made with our secret: algorithm
     * confusion is refused on the header alone. */
    bearer(hdr, sizeof hdr,
           py("forge({\"alg\":\"RS256\",\"typ\":\"JWT\"}, {\"sse\":{\"subscribe\":[\"*\"]}}, "
              "\"secret-one\")"));
    expect_401(room, hdr, "algorithm");
    /* The same by hand with HS256 passes: the forging itself is right. */
    bearer(hdr, sizeof hdr,
           py("forge({\"alg\":\"HS256\"}, {\"sse\":{\"subscribe\":[\"*\"]}}, \"secret-one\")"));
    assert_int_equal(sub_status(room, hdr), 200);

    /* Tampered payload: another payload under the original signature. */
    char tok[2048], other[2048];
    snprintf(tok, sizeof tok, "%s", mint("--subscribe nothing"));
    snprintf(other, sizeof other, "%s", mint("--subscribe '*'"));
    char *p1 = strchr(tok, '.'), *p2 = strrchr(tok, '.');
    char spliced[4096];
    snprintf(spliced, sizeof spliced, "%.*s%.*s%s", (int)(p1 - tok), tok,
             (int)(strrchr(other, '.') - strchr(other, '.')), strchr(other, '.'), p2);
    bearer(hdr, sizeof hdr, spliced);
    expect_401(room, hdr, "signature");
    /* Signed with a key we do not have; with an unknown kid. */
    bearer(hdr, sizeof hdr,
           py("jwt.encode({\"sse\":{\"subscribe\":[\"*\"]}}, \"other\", algorithm=\"HS256\")"));
    expect_401(room, hdr, "signature");
    bearer(hdr, sizeof hdr,
           py("jwt.encode({\"sse\":{\"subscribe\":[\"*\"]}}, \"secret-two\", algorithm=\"HS256\", "
              "headers={\"kid\":\"k9\"})"));
    expect_401(room, hdr, "key id");

    /* Malformed base64url, JSON, structure. */
    static const char *const junk[] = {"abc", "a.b.c", "!!!.???.***", "e30.e30",
                                       "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.AAAA"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        bearer(hdr, sizeof hdr, junk[i]);
        assert_int_equal(sub_status(room, hdr), 401);
    }
    /* Oversized: a 5000-byte token is 401, a 20000-byte header 431; the
     * server lives on. */
    char big[20001];
    memset(big, 'A', sizeof big - 1);
    big[5000] = 0;
    bearer(hdr, sizeof hdr, big);
    expect_401(room, hdr, "too long");
    char target[20100];
    snprintf(target, sizeof target, "/messages?room=r&token=%s", big);
    expect_401(target, NULL, "too long");
    big[5000] = 'A';
    big[20000] = 0;
    bearer(hdr, sizeof hdr, big);
    assert_int_equal(sub_status(room, hdr), 431);
    assert_true(itest_server_running(&srv));
    bearer(hdr, sizeof hdr, mint("--subscribe r"));
    assert_int_equal(sub_status(room, hdr), 200);
}

static void test_time_rules(void **state)
{
    (void)state;
    const char *args[] = {"--private-rooms", "r", "--jwt-audience", "chat", "--jwt-issuer",
                          "auth.example",    NULL};
    start(args);
    char hdr[4200];
    const char *room = "/messages?room=r";
#define CLAIMS "\"sse\":{\"subscribe\":[\"r\"]},\"aud\":\"chat\",\"iss\":\"auth.example\""
    bearer(hdr, sizeof hdr,
           py("jwt.encode({" CLAIMS ",\"exp\":int(time.time())+60}, \"secret-one\")"));
    assert_int_equal(sub_status(room, hdr), 200);
    bearer(hdr, sizeof hdr,
           py("jwt.encode({" CLAIMS ",\"exp\":int(time.time())-2}, \"secret-one\")"));
    expect_401(room, hdr, "expired");
    bearer(hdr, sizeof hdr,
           py("jwt.encode({" CLAIMS ",\"nbf\":int(time.time())+30}, \"secret-one\")"));
    expect_401(room, hdr, "not valid yet");
    bearer(hdr, sizeof hdr,
           py("jwt.encode({\"sse\":{\"subscribe\":[\"r\"]},\"aud\":\"other\",\"iss\":"
              "\"auth.example\"}, \"secret-one\")"));
    expect_401(room, hdr, "audience");
    bearer(hdr, sizeof hdr,
           py("jwt.encode({\"sse\":{\"subscribe\":[\"r\"]},\"aud\":[\"x\",\"chat\"]}, "
              "\"secret-one\")"));
    expect_401(room, hdr, "issuer");
    bearer(hdr, sizeof hdr, mint("--subscribe r --audience chat --issuer auth.example"));
    assert_int_equal(sub_status(room, hdr), 200);
    itest_server_stop(&srv);

    /* --jwt-leeway lets a token expired 2 s ago (clock skew) through. */
    const char *lenient[] = {"--private-rooms", "r", "--jwt-leeway", "10", NULL};
    start(lenient);
    bearer(hdr, sizeof hdr,
           py("jwt.encode({\"sse\":{\"subscribe\":[\"r\"]},\"exp\":int(time.time())-2}, "
              "\"secret-one\")"));
    assert_int_equal(sub_status(room, hdr), 200);
    bearer(hdr, sizeof hdr,
           py("jwt.encode({\"sse\":{\"subscribe\":[\"r\"]},\"exp\":int(time.time())-30}, "
              "\"secret-one\")"));
    expect_401(room, hdr, "expired");
#undef CLAIMS
}

static bool sub_closed(const struct itest_sub *s, void *arg)
{
    (void)arg;
    return s->state == ITEST_SUB_CLOSED;
}

/* Publishes {"n":n} to room r with a publish token; returns its id. */
static uint64_t publish_r(int n)
{
    char hdr[4200], body[32], answer[256];
    uint64_t id = 0;
    bearer(hdr, sizeof hdr, mint("--publish r"));
    snprintf(body, sizeof body, "{\"n\":%d}", n);
    assert_int_equal(post("/message?room=r", hdr, body, answer, sizeof answer), 202);
    assert_true(itest_json_u64(answer, "id", &id));
    return id;
}

/* A stream whose token expires gets event: token-expired and is closed; a
 * reconnect with a new token and Last-Event-ID gets what it missed. */
static void test_expiry_mid_stream(void **state)
{
    (void)state;
    const char *args[] = {"--private-rooms", "r", NULL};
    start(args);
    char hdr[4200];
    uint64_t id1, id2;
    /* Expires within 2-3 s: exp is whole seconds. */
    bearer(hdr, sizeof hdr,
           py("jwt.encode({\"sse\":{\"subscribe\":[\"r\"]},\"exp\":int(time.time())+3}, "
              "\"secret-one\")"));
    struct itest_sub s;
    assert_int_equal(itest_sub_start(&s, srv.port, "/messages?room=r", hdr), 0);
    assert_true(itest_sub_wait_until(&s, itest_sub_has_preamble, NULL, itest_timeout()));
    assert_int_equal(s.state, ITEST_SUB_STREAM);
    id1 = publish_r(1);
    assert_true(itest_sub_wait(&s, 1, itest_timeout()));
    int64_t t0 = itest_now_ms();
    assert_true(itest_sub_wait_until(&s, sub_closed, NULL, itest_ms(6000)));
    assert_true(itest_now_ms() - t0 < itest_ms(4000));
    assert_int_equal(s.events.count, 2);
    const struct ssep_event *ev = &s.events.ev[1];
    assert_int_equal(ev->type_len, strlen("token-expired"));
    assert_memory_equal(ev->type, "token-expired", ev->type_len);
    /* No id: the page's Last-Event-ID stays that of message 1. */
    assert_int_equal(itest_event_id(ev), id1);
    itest_sub_close(&s);

    /* Published while the page fetched a new token. */
    id2 = publish_r(2);
    char hdr2[4400];
    snprintf(hdr2, sizeof hdr2, "Authorization: Bearer %s\r\nLast-Event-ID: %" PRIu64 "\r\n",
             mint("--subscribe r"), id1);
    assert_int_equal(itest_sub_start(&s, srv.port, "/messages?room=r", hdr2), 0);
    assert_true(itest_sub_wait(&s, 1, itest_timeout()));
    assert_int_equal(itest_event_id(&s.events.ev[0]), id2);
    itest_sub_close(&s);
}

static void test_key_rotation_sighup(void **state)
{
    (void)state;
    write_keys("k1:first-secret\n");
    const char *args[] = {"--private-rooms", "r", NULL};
    start(args);
    char old_hdr[4200], new_hdr[4200];
    bearer(old_hdr, sizeof old_hdr, mint("--subscribe r"));
    assert_int_equal(sub_status("/messages?room=r", old_hdr), 200);

    /* Rotation: the new key joins; both kinds of token pass. */
    write_keys("k1:first-secret\nk2:second-secret\n");
    bearer(new_hdr, sizeof new_hdr, mint("--kid k2 --subscribe r"));
    assert_int_equal(sub_status("/messages?room=r", new_hdr), 401);
    assert_int_equal(kill(srv.pid, SIGHUP), 0);
    int64_t deadline = itest_now_ms() + itest_timeout();
    while (sub_status("/messages?room=r", new_hdr) != 200 && itest_now_ms() < deadline)
        itest_sleep_ms(20);
    assert_int_equal(sub_status("/messages?room=r", new_hdr), 200);
    assert_int_equal(sub_status("/messages?room=r", old_hdr), 200);

    /* The old key leaves: its tokens stop working. */
    write_keys("k2:second-secret\n");
    assert_int_equal(kill(srv.pid, SIGHUP), 0);
    deadline = itest_now_ms() + itest_timeout();
    while (sub_status("/messages?room=r", old_hdr) != 401 && itest_now_ms() < deadline)
        itest_sleep_ms(20);
    assert_int_equal(sub_status("/messages?room=r", old_hdr), 401);
    assert_int_equal(sub_status("/messages?room=r", new_hdr), 200);

    /* A broken file keeps the keys in use. */
    write_keys("# being rewritten\n");
    assert_int_equal(kill(srv.pid, SIGHUP), 0);
    itest_sleep_ms(itest_ms(300));
    assert_int_equal(sub_status("/messages?room=r", new_hdr), 200);
    assert_true(itest_server_running(&srv));
}

static void test_query_token_never_logged(void **state)
{
    (void)state;
    const char *args[] = {"--private-rooms", "r", "--log-level", "debug", NULL};
    start(args);
    char tok[4096], target[4300];
    snprintf(tok, sizeof tok, "%s", mint("--subscribe other"));
    snprintf(target, sizeof target, "/messages?room=r&token=%s", tok);
    struct itest_response r;
    assert_int_equal(get(target, NULL, &r), 403);
    itest_response_free(&r);
    snprintf(target, sizeof target, "/messages?room=r&%%74oken=%s", tok);
    assert_int_equal(get(target, NULL, &r), 403);
    itest_response_free(&r);
    snprintf(target, sizeof target, "/message?token=%s&room=r", tok);
    assert_int_equal(post(target, NULL, "{}", NULL, 0), 403);
    /* Each access line is written before its answer is sent. */
    FILE *f = fopen(srv.log_path, "re");
    assert_non_null(f);
    char line[8192];
    int redacted = 0;
    const char *sig = strrchr(tok, '.') + 1;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, sig) || strstr(line, tok))
            fail_msg("the token reached the log: %s", line);
        redacted += strstr(line, "oken=REDACTED") != NULL;
    }
    fclose(f);
    assert_int_equal(redacted, 3);
}

/* Both directions with an independent implementation. */
static void test_pyjwt_cross_check(void **state)
{
    (void)state;
    const char *args[] = {"--private-rooms", "team-*", NULL};
    start(args);
    char hdr[4200], cmd[8192];
    bearer(hdr, sizeof hdr,
           py("jwt.encode({\"sse\":{\"subscribe\":[\"team-*\"],\"publish\":[\"team-1\"]},"
              "\"exp\":int(time.time())+600}, \"secret-two\", algorithm=\"HS256\", "
              "headers={\"kid\":\"k2\"})"));
    assert_int_equal(sub_status("/messages?room=team-9", hdr), 200);
    assert_int_equal(post("/message?room=team-1", hdr, "{}", NULL, 0), 202);

    const char *ours = mint("--kid k2 --subscribe 'team-*,a' --publish b --ttl 10m "
                            "--audience chat --issuer ops");
    snprintf(cmd, sizeof cmd,
             PYTHON " -c 'import jwt, sys; c = jwt.decode(sys.argv[1], \"secret-two\", "
                    "algorithms=[\"HS256\"], audience=\"chat\", issuer=\"ops\", "
                    "options={\"require\": [\"exp\", \"iat\"]}); "
                    "assert jwt.get_unverified_header(sys.argv[1])[\"kid\"] == \"k2\"; "
                    "print(c[\"sse\"][\"subscribe\"], c[\"sse\"][\"publish\"], "
                    "c[\"exp\"] - c[\"iat\"])' '%s'",
             ours);
    assert_string_equal(run_line(cmd), "['team-*', 'a'] ['b'] 600");
}

static void test_config_errors(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' --private-rooms x 2>/dev/null; echo $?", getenv("SSE_SERVER"));
    assert_string_equal(run_line(cmd), "2");
    snprintf(cmd, sizeof cmd, "'%s' --jwt-key-file /nonexistent --port 0 2>/dev/null; echo $?",
             getenv("SSE_SERVER"));
    assert_string_equal(run_line(cmd), "1");
    snprintf(cmd, sizeof cmd, "'%s' --private-rooms 'a*b' --jwt-key-file '%s' 2>/dev/null; echo $?",
             getenv("SSE_SERVER"), keyfile);
    assert_string_equal(run_line(cmd), "2");
}

/* Where anyone may read /stats and /metrics, a private room's name (a user
 * id, say) is not listed there: it is summed into "~other". Where the admin
 * endpoints are guarded (here --admin-local, the test being on loopback),
 * the operator sees it. */
static void test_stats_hide_private_rooms(void **state)
{
    (void)state;
    for (int guarded = 0; guarded <= 1; guarded++) {
        const char *open_args[] = {"--private-rooms", "user-*", NULL};
        const char *guarded_args[] = {"--private-rooms", "user-*", "--admin-local", NULL};
        start(guarded ? guarded_args : open_args);
        char target[4300];
        snprintf(target, sizeof target, "/messages?room=user-42&token=%s",
                 mint("--subscribe user-42"));
        struct itest_sub priv, pub;
        assert_int_equal(itest_sub_open(&priv, srv.port, target, itest_timeout()), 0);
        assert_int_equal(itest_sub_open(&pub, srv.port, "/messages?room=lobby", itest_timeout()),
                         0);

        struct itest_response st, me, one;
        assert_int_equal(get("/stats", NULL, &st), 200);
        assert_int_equal(get("/metrics", NULL, &me), 200);
        assert_int_equal(get("/stats?room=user-42", NULL, &one), 200);
        assert_non_null(strstr(st.body, "\"lobby\""));
        assert_non_null(strstr(me.body, "room=\"lobby\""));
        if (guarded) {
            assert_non_null(strstr(st.body, "\"name\":\"user-42\""));
            assert_non_null(strstr(me.body, "room=\"user-42\""));
            assert_non_null(strstr(one.body, "\"clients\":1,"));
        } else {
            assert_null(strstr(st.body, "user-42"));
            assert_null(strstr(me.body, "user-42"));
            assert_non_null(strstr(me.body, "sse_subscribers{room=\"~other\"} 1"));
            assert_non_null(strstr(one.body, "\"clients\":0,"));
        }
        assert_non_null(strstr(st.body, "\"subscribers\":2,"));
        itest_response_free(&st);
        itest_response_free(&me);
        itest_response_free(&one);
        itest_sub_close(&priv);
        itest_sub_close(&pub);
        itest_server_stop(&srv);
        memset(&srv, 0, sizeof srv);
    }
}

int main(void)
{
    itest_init(240);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_rotation_sighup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_token_never_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pyjwt_cross_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_hide_private_rooms, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
