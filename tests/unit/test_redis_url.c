/*
 * Unit tests for src/redis_url.c: what Redis addresses are taken, and that
 * everything else is refused with a message that never shows the password.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "redis_url.h"

static void test_url_parse(void **state)
{
    (void)state;
    struct redis_url u;
    char err[256];

    assert_int_equal(redis_url_parse("redis://127.0.0.1:6380/2", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_false(u.has_password);
    assert_int_equal(((struct sockaddr_in *)&u.addr)->sin_family, AF_INET);

    assert_int_equal(redis_url_parse("redis://localhost", &u, err, sizeof err), 0);
    assert_int_equal(u.port, REDIS_DEFAULT_PORT);
    assert_int_equal(u.db, 0);
    assert_int_equal(redis_url_parse("redis://[::1]:7000/", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(((struct sockaddr_in6 *)&u.addr)->sin6_family, AF_INET6);

    assert_int_equal(redis_url_parse("redis://:s%40cr%3At@127.0.0.1:1", &u, err, sizeof err), 0);
    assert_true(u.has_password);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "s@cr:t");
    assert_int_equal(redis_url_parse("redis://alice:pw@127.0.0.1:1/15", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 15);

    static const char *const bad[] = {
        "http://127.0.0.1:6379",
        "rediss://127.0.0.1:6379",
        "redis://",
        "redis://:6379",
        "redis://example.com:6379",
        "redis://127.0.0.1:0",
        "redis://127.0.0.1:65536",
        "redis://127.0.0.1:x",
        "redis://127.0.0.1:6379/x",
        "redis://127.0.0.1:6379/1/2",
        "redis://127.0.0.1/1?a=b",
        "redis://[::1:6379",
        "redis://[::1]x",
        "redis://secret@127.0.0.1",
        "redis://:%zz@127.0.0.1",
        "redis://:a%00b@127.0.0.1",
        "redis://999.0.0.1",
        "redis://127.0.0.1:-1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (redis_url_parse(bad[i], &u, err, sizeof err) == 0) {
            fail_msg("accepted %s", bad[i]);
        }
        assert_true(strncmp(err, "bad Redis URL: ", 15) == 0);
        /* The message never repeats what may be a password. */
        assert_null(strstr(err, "secret"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
