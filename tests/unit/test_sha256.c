/*
 * Unit tests for SHA-256 and HMAC-SHA-256 (src/sha256.c): the FIPS 180-4
 * example messages (NIST's "Example Algorithms" for SHA-256) and the seven
 * test cases of RFC 4231, plus split-update and constant-time compare checks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", d[i]);
    }
}

static void unhex(const char *s, unsigned char *out, size_t *n)
{
    size_t len = strlen(s) / 2;
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        sscanf(s + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    *n = len;
}

static void check_digest(const void *msg, size_t len, const char *want)
{
    unsigned char d[SHA256_DIGEST_LEN];
    char got[2 * SHA256_DIGEST_LEN + 1];
    sha256(msg, len, d);
    hex(d, sizeof d, got);
    assert_string_equal(got, want);
}

/* FIPS 180-4 examples: one block, two blocks, and a million 'a's. */
static void test_fips_examples(void **state)
{
    (void)state;
    check_digest("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_digest(two, strlen(two),
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    check_digest("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char *million = malloc(1000000);
    assert_non_null(million);
    memset(million, 'a', 1000000);
    check_digest(million, 1000000,
                 "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(million);
}

/* The digest does not depend on how the input is cut into updates: every
 * split point of a message that crosses the padding boundaries. */
static void test_split_updates(void **state)
{
    (void)state;
    unsigned char msg[200], whole[SHA256_DIGEST_LEN], parts[SHA256_DIGEST_LEN];
    for (size_t i = 0; i < sizeof msg; i++) {
        msg[i] = (unsigned char)(i * 7 + 3);
    }
    for (size_t len = 0; len <= sizeof msg; len += 11) {
        sha256(msg, len, whole);
        for (size_t cut = 0; cut <= len; cut++) {
            struct sha256 s;
            sha256_init(&s);
            sha256_update(&s, msg, cut);
            sha256_update(&s, msg + cut, len - cut);
            sha256_final(&s, parts);
            assert_memory_equal(whole, parts, sizeof whole);
        }
    }
}

struct hmac_case {
    const char *key_hex, *data_hex, *mac_hex;
};

/* RFC 4231 section 4, test cases 1-7 (case 5 is truncated to 128 bits). */
static const struct hmac_case rfc4231[] = {
    {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    {"4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
     "dddddddddddddddd",
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
    {"0102030405060708090a0b0c0d0e0f10111213141516171819",
     "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
     "cdcdcdcdcdcdcdcd",
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
    {"0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "546573742057697468205472756e636174696f6e",
     "a3b6167473100ee06e0c796c2955552b"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaa",
     "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048"
     "617368204b6579204669727374",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaa",
     "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d"
     "73697a65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174"
     "612e20546865206b6579206e6565647320746f20626520686173686564206265666f7265206265696e"
     "6720757365642062792074686520484d414320616c676f726974686d2e",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
};

static void test_rfc4231(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rfc4231 / sizeof rfc4231[0]; i++) {
        unsigned char key[256], data[256], mac[SHA256_DIGEST_LEN];
        size_t key_len, data_len;
        char got[2 * SHA256_DIGEST_LEN + 1];
        unhex(rfc4231[i].key_hex, key, &key_len);
        unhex(rfc4231[i].data_hex, data, &data_len);
        hmac_sha256(key, key_len, data, data_len, mac);
        hex(mac, sizeof mac, got);
        size_t want = strlen(rfc4231[i].mac_hex);
        if (strncmp(got, rfc4231[i].mac_hex, want) != 0) {
            fail_msg("RFC 4231 case %zu: got %s", i + 1, got);
        }
    }
}

static void test_equal_ct(void **state)
{
    (void)state;
    unsigned char a[32] = {0}, b[32] = {0};
    assert_true(sha256_equal_ct(a, b, sizeof a));
    for (size_t i = 0; i < sizeof a; i++) {
        b[i] = 1;
        assert_false(sha256_equal_ct(a, b, sizeof a));
        b[i] = 0;
    }
    assert_true(sha256_equal_ct(a, b, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_examples),
        cmocka_unit_test(test_split_updates),
        cmocka_unit_test(test_rfc4231),
        cmocka_unit_test(test_equal_ct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
