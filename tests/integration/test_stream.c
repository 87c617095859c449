/*
 * test_stream: the event streams of the real server -- /ping and /messages
 * heads and first bytes, the ping cadence, POST /message reaching
 * subscribers byte-exactly (as a WHATWG parser sees it), a 100 x 50 broadcast,
 * payloads with line breaks, invalid JSON never broadcast, subscriber counts.
 * Every test gets a fresh server, so ids and counts are its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

/* What a WHATWG parser gives back for a payload sent as data: lines: every
 * CRLF or lone CR becomes LF. Returns a malloc'd string, length in *out_len. */
static char *normalise(const char *p, size_t len, size_t *out_len)
{
    char *out = malloc(len + 1);
    assert_non_null(out);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\r') {
            out[n++] = '\n';
            if (i + 1 < len && p[i + 1] == '\n')
                i++;
        } else {
            out[n++] = p[i];
        }
    }
    out[n] = 0;
    *out_len = n;
    return out;
}

/* Asserts that event ev carries exactly `payload` (normalised) and id. */
static void check_event(const struct ssep_event *ev, const char *payload, size_t len, uint64_t id)
{
    size_t want_len;
    char *want = normalise(payload, len, &want_len);
    char idstr[32];
    snprintf(idstr, sizeof idstr, "%" PRIu64, id);
    if (ev->data_len != want_len || memcmp(ev->data, want, want_len) != 0 ||
        strcmp(ev->id, idstr) != 0) {
        itest_print_escaped("expected data", want, want_len, SIZE_MAX);
        itest_print_escaped("received data", ev->data, ev->data_len, SIZE_MAX);
        fprintf(stderr, "expected id %s, received id \"%s\"\n", idstr, ev->id);
    }
    assert_int_equal(ev->data_len, want_len);
    assert_memory_equal(ev->data, want, want_len);
    assert_string_equal(ev->id, idstr);
    assert_string_equal(ev->type, "message");
    free(want);
}

/* Asserts the stream starts at once with a retry field and a comment. */
static void check_first_bytes(struct itest_sub *s)
{
    bool ok = itest_sub_wait_until(s, itest_sub_has_preamble, NULL, itest_ms(1000));
    if (!ok)
        itest_print_escaped("first bytes", s->raw, s->raw_len, SIZE_MAX);
    assert_true(ok);
    assert_true(s->first_byte_ms > 0);
    assert_true(s->first_byte_ms - s->opened_ms <= itest_ms(1000));
    assert_non_null(strstr(s->raw, "retry:"));
}

/* ------------------------------------------------------------------ tests */

static void test_ping_head_and_first_bytes(void **state)
{
    struct itest_sub s;
    assert_int_equal(itest_sub_open(&s, itest_state_port(state), "/ping", itest_timeout()), 0);
    assert_int_equal(s.head.status, 200);
    assert_true(itest_header_starts(&s.head, "Content-Type", "text/event-stream"));
    assert_string_equal(itest_header_or_absent(&s.head, "Access-Control-Allow-Origin"), "*");
    assert_null(itest_header(&s.head, "Content-Length"));
    check_first_bytes(&s);
    itest_sub_close(&s);
}

static void test_ping_cadence(void **state)
{
    struct itest_sub s;
    assert_int_equal(itest_sub_open(&s, itest_state_port(state), "/ping", itest_timeout()), 0);
    bool got = itest_sub_wait(&s, 3, itest_ms(10000));
    if (!got)
        fprintf(stderr, "got %zu ping events\n", s.events.count);
    assert_true(got);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(s.events.ev[i].data, "pong");
        assert_string_equal(s.events.ev[i].type, "message");
    }
    /* The first within one period (plus tolerance), then every 2 s +- 0.5 s. */
    int64_t first = s.event_ms[0] - s.opened_ms;
    int64_t d1 = s.event_ms[1] - s.event_ms[0];
    int64_t d2 = s.event_ms[2] - s.event_ms[1];
    fprintf(stderr, "ping: first after %" PRId64 " ms, then %" PRId64 " ms, %" PRId64 " ms\n",
            first, d1, d2);
    assert_true(first <= 2500);
    assert_true(d1 >= 1500 && d1 <= 2500);
    assert_true(d2 >= 1500 && d2 <= 2500);
    itest_sub_close(&s);
}

static void test_messages_head_and_first_bytes(void **state)
{
    struct itest_sub s;
    assert_int_equal(itest_sub_open(&s, itest_state_port(state), "/messages", itest_timeout()), 0);
    assert_int_equal(s.head.status, 200);
    assert_true(itest_header_starts(&s.head, "Content-Type", "text/event-stream"));
    assert_true(itest_header_has_token(&s.head, "Cache-Control", "no-cache"));
    assert_string_equal(itest_header_or_absent(&s.head, "X-Accel-Buffering"), "no");
    assert_string_equal(itest_header_or_absent(&s.head, "Access-Control-Allow-Origin"), "*");
    assert_null(itest_header(&s.head, "Content-Length"));
    check_first_bytes(&s);
    /* Nothing is dispatched on a fresh server. */
    assert_false(itest_sub_wait(&s, 1, 300));
    assert_int_equal(s.events.count, 0);
    itest_sub_close(&s);
}

static void test_one_subscriber(void **state)
{
    int port = itest_state_port(state);
    struct itest_sub s;
    assert_int_equal(itest_sub_open(&s, port, "/messages", itest_timeout()), 0);

    static const char body[] = "{\"hello\":\"world\",\"n\":[1,2.5,-3e2,true,null]}";
    char raw[512];
    snprintf(raw, sizeof raw,
             "POST /message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             sizeof body - 1, body);
    struct itest_response r;
    assert_int_equal(itest_request(port, raw, &r), 0);
    assert_int_equal(r.status, 202);
    assert_true(itest_header_starts(&r, "Content-Type", "application/json"));
    assert_string_equal(itest_header_or_absent(&r, "Access-Control-Allow-Origin"), "*");
    uint64_t id = 0, clients = 0;
    assert_true(itest_json_u64(r.body, "id", &id));
    assert_true(itest_json_u64(r.body, "clients", &clients));
    char want_body[96];
    snprintf(want_body, sizeof want_body, "{\"id\":%" PRIu64 ",\"clients\":1}", id);
    /* Exactly that object (trailing blanks allowed). */
    size_t bl = r.body_len;
    while (bl > 0 && strchr(" \t\r\n", r.body[bl - 1]))
        bl--;
    r.body[bl] = 0;
    assert_string_equal(r.body, want_body);
    itest_response_free(&r);
    assert_int_equal(clients, 1);

    assert_true(itest_sub_wait(&s, 1, itest_timeout()));
    check_event(&s.events.ev[0], body, sizeof body - 1, id);

    /* The next message has the next id. */
    uint64_t id2 = 0;
    long c2 = -1;
    assert_int_equal(itest_post_message(port, NULL, "[]", 2, &id2, &c2), 202);
    assert_int_equal(c2, 1);
    assert_int_equal(id2, id + 1);
    assert_true(itest_sub_wait(&s, 2, itest_timeout()));
    check_event(&s.events.ev[1], "[]", 2, id2);
    size_t lid_len;
    const char *lid = ssep_last_event_id(&s.parser, &lid_len);
    char idstr[32];
    snprintf(idstr, sizeof idstr, "%" PRIu64, id2);
    assert_string_equal(lid, idstr);

    /* Each message arrived exactly once. */
    assert_false(itest_sub_wait(&s, 3, 300));
    assert_int_equal(s.events.count, 2);
    itest_sub_close(&s);
}

#define NSUBS 100
#define NMSGS 50

static void test_broadcast_100x50(void **state)
{
    int port = itest_state_port(state);
    struct itest_sub *subs = calloc(NSUBS, sizeof *subs);
    assert_non_null(subs);
    assert_int_equal(itest_subs_open(subs, NSUBS, port, "/messages", itest_ms(10000)), NSUBS);

    char bodies[NMSGS][128];
    uint64_t ids[NMSGS];
    struct itest_conn c;
    assert_int_equal(itest_conn_open(&c, port), 0);
    for (int m = 0; m < NMSGS; m++) {
        snprintf(bodies[m], sizeof bodies[m],
                 "{\"m\":%d,\"text\":\"message number %d\",\"x\":[%d]}", m, m, m * 7);
        long clients = -1;
        int st = itest_post_message_conn(&c, NULL, bodies[m], strlen(bodies[m]), &ids[m], &clients);
        assert_int_equal(st, 202);
        assert_int_equal(clients, NSUBS);
        if (m > 0)
            assert_int_equal(ids[m], ids[m - 1] + 1);
        itest_subs_drive(subs, NSUBS, NMSGS, 0); /* read what has arrived */
    }
    itest_conn_close(&c);

    size_t done = itest_subs_drive(subs, NSUBS, NMSGS, itest_ms(20000));
    if (done != NSUBS)
        for (size_t i = 0; i < NSUBS; i++)
            if (subs[i].events.count != NMSGS)
                fprintf(stderr, "subscriber %zu: %zu events, state %d %s\n", i,
                        subs[i].events.count, (int)subs[i].state, subs[i].error);
    assert_int_equal(done, NSUBS);
    /* Give duplicates a chance to show up. */
    itest_subs_drive(subs, NSUBS, NMSGS + 1, 300);
    for (size_t i = 0; i < NSUBS; i++) {
        assert_int_equal(subs[i].state, ITEST_SUB_STREAM);
        assert_int_equal(subs[i].events.count, NMSGS);
        for (int m = 0; m < NMSGS; m++)
            check_event(&subs[i].events.ev[m], bodies[m], strlen(bodies[m]), ids[m]);
    }
    for (size_t i = 0; i < NSUBS; i++)
        itest_sub_close(&subs[i]);
    free(subs);
}

static void test_line_breaks_and_bytes(void **state)
{
    int port = itest_state_port(state);
    static const char *const payloads[] = {
        "{\n \"a\": 1\r\n}",
        "\r\n{\"b\":\r2}\r\n",
        "[1,\n\n2]",
        "\n\n{}\n\n",
        "\r\r[]\r\r",
        " 1 ",
        "\t{}\t",
        "\"\"",
        "{\"s\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac\"}",
        "{\"s\":\"data: x\\nid: 7\\n\\nevent: y\\r\\n\"}",
        "{\"s\":\":not a comment\",\"t\":\"retry: 1\"}",
        "{\"esc\":\"\\u0000\\u001f\\\"\\\\\\/\\b\\f\\n\\r\\t\\ud83d\\ude00\"}",
    };
    size_t n = sizeof payloads / sizeof payloads[0];
    uint64_t ids[16];
    struct itest_sub s;
    assert_int_equal(itest_sub_open(&s, port, "/messages", itest_timeout()), 0);
    for (size_t i = 0; i < n; i++) {
        long clients = -1;
        int st =
            itest_post_message(port, NULL, payloads[i], strlen(payloads[i]), &ids[i], &clients);
        if (st != 202)
            itest_print_escaped("payload refused", payloads[i], strlen(payloads[i]), SIZE_MAX);
        assert_int_equal(st, 202);
        assert_int_equal(clients, 1);
    }
    assert_true(itest_sub_wait(&s, n, itest_timeout()));
    for (size_t i = 0; i < n; i++)
        check_event(&s.events.ev[i], payloads[i], strlen(payloads[i]), ids[i]);
    assert_false(itest_sub_wait(&s, n + 1, 300));
    itest_sub_close(&s);
}

static void test_large_message(void **state)
{
    int port = itest_state_port(state);
    struct itest_sub s;
    assert_int_equal(itest_sub_open(&s, port, "/messages", itest_timeout()), 0);
    /* 32 KB of JSON over several lines. */
    size_t cap = 40000, len = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    body[len++] = '[';
    for (int i = 0; len < 32000; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s\"item %d abcdefghijklmnop\"%s",
                                i ? "," : "", i, i % 10 == 9 ? "\r\n" : "");
    body[len++] = ']';
    uint64_t id;
    long clients = -1;
    assert_int_equal(itest_post_message(port, NULL, body, len, &id, &clients), 202);
    assert_int_equal(clients, 1);
    assert_true(itest_sub_wait(&s, 1, itest_timeout()));
    check_event(&s.events.ev[0], body, len, id);
    free(body);
    itest_sub_close(&s);
}

/* Lone surrogate escapes are valid JSON (RFC 8259's grammar takes any
 * \uXXXX; JavaScript's JSON.stringify writes one for a string cut inside a
 * pair): such a message is broadcast byte for byte. A room named with one
 * is refused, since the name has no UTF-8 form, and nothing is broadcast. */
static void test_lone_surrogate_escapes(void **state)
{
    int port = itest_state_port(state);
    static const char *const bodies[] = {
        "{\"data\":\"\\ud83d\"}",
        "\"\\udc00\\ud800\"",
        "[\"\\uDE00\",\"cut \\uD83D\",{\"\\uDBFF\":\"\\uDFFF\\uD83D\\uDE00\"}]",
    };
    enum { NB = sizeof bodies / sizeof bodies[0] };
    struct itest_sub s;
    assert_int_equal(itest_sub_open(&s, port, "/messages", itest_timeout()), 0);
    uint64_t ids[NB];
    for (size_t i = 0; i < NB; i++) {
        long clients = -1;
        assert_int_equal(
            itest_post_message(port, NULL, bodies[i], strlen(bodies[i]), &ids[i], &clients), 202);
        assert_int_equal(clients, 1);
    }
    assert_true(itest_sub_wait(&s, NB, itest_timeout()));
    for (size_t i = 0; i < NB; i++)
        check_event(&s.events.ev[i], bodies[i], strlen(bodies[i]), ids[i]);

    static const char room_body[] = "{\"room\":\"\\ud83d\",\"data\":1}";
    char raw[256];
    int hl = snprintf(raw, sizeof raw,
                      "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                      sizeof room_body - 1, room_body);
    struct itest_response r;
    assert_int_equal(itest_request_n(port, raw, (size_t)hl, 0, &r), 0);
    if (r.status != 400)
        itest_show_response("room named with a lone surrogate", &r, 300);
    assert_int_equal(r.status, 400);
    assert_true(itest_is_json_error(&r));
    assert_non_null(strstr(r.body, "invalid room name: a lone surrogate"));
    itest_response_free(&r);
    assert_false(itest_sub_wait(&s, NB + 1, 300));
    itest_sub_close(&s);
}

static void test_invalid_json_not_broadcast(void **state)
{
    int port = itest_state_port(state);
    static const struct {
        const char *body;
        size_t len;
    } bad[] = {
#define B(s) {s, sizeof s - 1}
        B("{\"a\":1,}"),
        B("{'a':1}"),
        B("{\"a\":01}"),
        B("{\"a\":\"\xff\"}"),
        B("{\"a\":\"\xc0\xaf\"}"),
        B("\"\xed\xa0\xbd\""), /* a surrogate as raw bytes is not UTF-8 */
        B("{\"a\":\"\\ud83d\xed\xb8\x80\"}"),
        B(""),
        B("   "),
        B("{\"a\":1}{\"b\":2}"),
        B("[1,2"),
        B("nul"),
        B("{\"a\":1} x"),
        B("\xef\xbb\xbf{}"),
        B("{\"a\":\"\\x41\"}"),
        B("{\"a\":\"tab\there\"}"),
        B("{\"a\":NaN}"),
        B("[.5]"),
        B("{\"a\":1}\0"),
#undef B
    };
    struct itest_sub s;
    assert_int_equal(itest_sub_open(&s, port, "/messages", itest_timeout()), 0);

    uint64_t a = 0, b = 0;
    size_t closed = 0;
    assert_int_equal(itest_post_message(port, NULL, "{\"before\":1}", 12, &a, NULL), 202);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char raw[256];
        int hl = snprintf(raw, sizeof raw,
                          "POST /message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          bad[i].len);
        memcpy(raw + hl, bad[i].body, bad[i].len);
        struct itest_response r;
        assert_int_equal(itest_request_n(port, raw, (size_t)hl + bad[i].len, 0, &r), 0);
        if (r.status != 400 || !itest_is_json_error(&r))
            itest_print_escaped("invalid JSON accepted or badly refused", bad[i].body, bad[i].len,
                                SIZE_MAX);
        assert_int_equal(r.status, 400);
        assert_true(itest_header_starts(&r, "Content-Type", "application/json"));
        assert_true(itest_is_json_error(&r));
        /* The body was framed correctly and read in full, so the connection
         * stays usable. Checked last, so a miss here does not hide a
         * broadcast. */
        if (itest_header_has_token(&r, "Connection", "close")) {
            itest_print_escaped("400 for invalid JSON closed the connection, for", bad[i].body,
                                bad[i].len, SIZE_MAX);
            closed++;
        }
        itest_response_free(&r);
    }
    assert_int_equal(itest_post_message(port, NULL, "{\"after\":2}", 11, &b, NULL), 202);
    assert_int_equal(b, a + 1);

    assert_true(itest_sub_wait(&s, 2, itest_timeout()));
    assert_false(itest_sub_wait(&s, 3, 300));
    if (s.events.count != 2)
        for (size_t i = 0; i < s.events.count; i++)
            itest_print_escaped("received", s.events.ev[i].data, s.events.ev[i].data_len, SIZE_MAX);
    assert_int_equal(s.events.count, 2);
    check_event(&s.events.ev[0], "{\"before\":1}", 12, a);
    check_event(&s.events.ev[1], "{\"after\":2}", 11, b);
    itest_sub_close(&s);
    assert_int_equal(closed, 0);

    /* The same connection answers the next request after the 400. */
    struct itest_conn c;
    struct itest_response r;
    assert_int_equal(itest_conn_open(&c, port), 0);
    assert_true(itest_conn_send(&c, "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n"
                                    "{\"a\":1,}"
                                    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 400);
    itest_response_free(&r);
    assert_int_equal(itest_read_response(&c, &r, 0, itest_timeout()), 0);
    assert_int_equal(r.status, 200);
    itest_response_free(&r);
    itest_conn_close(&c);
}

static void test_request_content_type_ignored(void **state)
{
    int port = itest_state_port(state);
    struct itest_sub s;
    assert_int_equal(itest_sub_open(&s, port, "/messages", itest_timeout()), 0);
    static const char *const raws[] = {
        "POST /message HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        "Content-Length: 5\r\n\r\n[1,2]",
        "POST /message HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n[3,4]",
        "POST /message HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 5\r\n\r\n[5,6]",
    };
    for (size_t i = 0; i < 3; i++) {
        struct itest_response r;
        assert_int_equal(itest_request(port, raws[i], &r), 0);
        assert_int_equal(r.status, 202);
        itest_response_free(&r);
    }
    assert_true(itest_sub_wait(&s, 3, itest_timeout()));
    assert_string_equal(s.events.ev[0].data, "[1,2]");
    assert_string_equal(s.events.ev[1].data, "[3,4]");
    assert_string_equal(s.events.ev[2].data, "[5,6]");
    itest_sub_close(&s);
}

/* POSTs until the answer says `want` clients (a departure may take the server
 * a moment to notice); returns the last count. */
static long post_until_clients(int port, long want)
{
    int64_t deadline = itest_now_ms() + itest_ms(2000);
    long clients = -1;
    do {
        assert_int_equal(itest_post_message(port, NULL, "{}", 2, NULL, &clients), 202);
        if (clients == want)
            break;
        itest_sleep_ms(10);
    } while (itest_now_ms() < deadline);
    return clients;
}

static void test_clients_count(void **state)
{
    int port = itest_state_port(state);
    long clients = -1;
    assert_int_equal(itest_post_message(port, NULL, "{}", 2, NULL, &clients), 202);
    assert_int_equal(clients, 0);

    struct itest_sub subs[3], ping;
    assert_int_equal(itest_subs_open(subs, 3, port, "/messages", itest_timeout()), 3);
    assert_int_equal(itest_sub_open(&ping, port, "/ping", itest_timeout()), 0);
    /* /ping listeners are not message subscribers. */
    assert_int_equal(itest_post_message(port, NULL, "{}", 2, NULL, &clients), 202);
    assert_int_equal(clients, 3);

    itest_sub_close(&subs[0]); /* FIN */
    assert_int_equal(post_until_clients(port, 2), 2);
    itest_sub_abort(&subs[1]); /* RST */
    assert_int_equal(post_until_clients(port, 1), 1);

    /* The remaining subscriber got every message; the ping listener none. */
    assert_true(itest_sub_wait(&subs[2], 3, itest_timeout()));
    for (size_t i = 0; i < subs[2].events.count; i++)
        assert_string_equal(subs[2].events.ev[i].data, "{}");
    itest_subs_drive(&ping, 1, 1000, 200);
    for (size_t i = 0; i < ping.events.count; i++)
        assert_string_equal(ping.events.ev[i].data, "pong");
    itest_sub_close(&subs[2]);
    itest_sub_close(&ping);
    assert_int_equal(post_until_clients(port, 0), 0);
}

int main(void)
{
    itest_init(300);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ping_head_and_first_bytes, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_ping_cadence, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_messages_head_and_first_bytes, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_one_subscriber, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_broadcast_100x50, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_line_breaks_and_bytes, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_large_message, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_lone_surrogate_escapes, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_invalid_json_not_broadcast, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_request_content_type_ignored, itest_setup_server,
                                        itest_teardown_server),
        cmocka_unit_test_setup_teardown(test_clients_count, itest_setup_server,
                                        itest_teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
