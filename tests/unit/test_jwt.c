/*
 * Unit tests for the token verifier (src/jwt.c), room patterns
 * (src/room_pattern.c), the key file (src/keyring.c) and the decimal parser
 * (src/number.c): base64url, the HS256-only rule, signatures, kid
 * selection, exp/nbf with and without leeway, aud/iss, the "sse" claim,
 * and malformed input of every part.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "number.h"
#include "sha256.h"
#include "jwt.h"
#include "keyring.h"
#include "room_pattern.h"

#define NOW 1700000000

static const struct jwt_key key1 = {"", (const unsigned char *)"secret-one", 10};
static const struct jwt_key key2 = {"k2", (const unsigned char *)"secret-two", 10};

static struct jwt_claims claims;

static enum jwt_result verify_with(const char *tok, const struct jwt_key *keys, size_t n,
                                   const struct jwt_policy *p)
{
    return jwt_verify(tok, strlen(tok), keys, n, p, &claims);
}

static enum jwt_result verify(const char *tok)
{
    const struct jwt_key keys[2] = {key1, key2};
    const struct jwt_policy p = {.now = NOW};
    return verify_with(tok, keys, 2, &p);
}

/* Signs a payload with key k into a static buffer. */
static const char *sign(const char *payload, const struct jwt_key *k)
{
    static char tok[JWT_MAX_TOKEN + 1];
    size_t n = jwt_sign(payload, strlen(payload), k, tok, sizeof tok);
    assert_true(n > 0);
    assert_int_equal(strlen(tok), n);
    return tok;
}

/* A token with a hand-made header and payload, signed with k (or with an
 * empty signature when k is NULL). */
static const char *forge(const char *header, const char *payload, const struct jwt_key *k)
{
    static char tok[JWT_MAX_TOKEN * 2];
    size_t o = jwt_b64url_encode((const unsigned char *)header, strlen(header), tok, sizeof tok);
    tok[o++] = '.';
    o +=
        jwt_b64url_encode((const unsigned char *)payload, strlen(payload), tok + o, sizeof tok - o);
    if (k) {
        unsigned char mac[SHA256_DIGEST_LEN];
        hmac_sha256(k->secret, k->secret_len, tok, o, mac);
        tok[o++] = '.';
        o += jwt_b64url_encode(mac, sizeof mac, tok + o, sizeof tok - o);
    } else {
        tok[o++] = '.';
    }
    tok[o] = '\0';
    return tok;
}

static void test_b64url(void **state)
{
    (void)state;
    char out[64];
    unsigned char dec[64];
    /* RFC 4648 section 10 vectors, without padding. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        size_t n =
            jwt_b64url_encode((const unsigned char *)plain[i], strlen(plain[i]), out, sizeof out);
        assert_int_equal(n, strlen(enc[i]));
        assert_memory_equal(out, enc[i], n);
        assert_int_equal(jwt_b64url_decode(enc[i], n, dec, sizeof dec), strlen(plain[i]));
        assert_memory_equal(dec, plain[i], strlen(plain[i]));
    }
    /* The URL-safe alphabet, not '+' and '/'. */
    const unsigned char ff[] = {0xfb, 0xff};
    assert_int_equal(jwt_b64url_encode(ff, 2, out, sizeof out), 3);
    assert_memory_equal(out, "-_8", 3);
    assert_int_equal(jwt_b64url_decode("+/8", 3, dec, sizeof dec), -1);
    assert_int_equal(jwt_b64url_decode("Zg==", 4, dec, sizeof dec), -1); /* padding */
    assert_int_equal(jwt_b64url_decode("Z", 1, dec, sizeof dec), -1);    /* 6 bits */
    assert_int_equal(jwt_b64url_decode("Zh", 2, dec, sizeof dec), -1);   /* stray bits */
    assert_int_equal(jwt_b64url_decode("Zm9v", 4, dec, 2), -1);          /* too small */
    assert_int_equal(jwt_b64url_encode((const unsigned char *)"foo", 3, out, 4), 4);
    assert_int_equal(jwt_b64url_encode((const unsigned char *)"foo", 3, out, 2), 0);
}

/* Tokens minted by Debian's python3-jwt (PyJWT 2.6.0) verify here. */
static void test_pyjwt_tokens(void **state)
{
    (void)state;
    const char *t1 = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzc2UiOnsic3Vic2NyaWJlIjpbInVzZXIt"
                     "NDIiLCJ0ZWFtLTctKiJdLCJwdWJsaXNoIjpbIm5ld3MiXX0sImV4cCI6NDEwMjQ0NDgwMH0."
                     "x2bANcmGp6RWzcSU-NNQQra5rcJJQ8P27Q08CoU4PzA";
    assert_int_equal(verify(t1), JWT_OK);
    assert_true(claims.has_exp);
    assert_int_equal(claims.exp, 4102444800);
    assert_true(jwt_claims_allow(&claims, JWT_SUBSCRIBE, "user-42", 7));
    assert_false(jwt_claims_allow(&claims, JWT_SUBSCRIBE, "user-4", 6));
    assert_false(jwt_claims_allow(&claims, JWT_SUBSCRIBE, "user-421", 8));
    assert_true(jwt_claims_allow(&claims, JWT_SUBSCRIBE, "team-7-ops", 10));
    assert_true(jwt_claims_allow(&claims, JWT_SUBSCRIBE, "team-7-", 7));
    assert_false(jwt_claims_allow(&claims, JWT_SUBSCRIBE, "team-8-ops", 10));
    assert_false(jwt_claims_allow(&claims, JWT_SUBSCRIBE, "news", 4));
    assert_true(jwt_claims_allow(&claims, JWT_PUBLISH, "news", 4));
    assert_false(jwt_claims_allow(&claims, JWT_PUBLISH, "user-42", 7));

    const char *t2 = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsyIiwidHlwIjoiSldUIn0.eyJzc2UiOnsic3Vic2Ny"
                     "aWJlIjpbIioiXX19.EfOkED2DGawASVfxjy5Y_FfPRPoxbytMB1rjNpUg_TM";
    assert_int_equal(verify(t2), JWT_OK);
    assert_false(claims.has_exp);
    assert_true(jwt_claims_allow(&claims, JWT_SUBSCRIBE, "anything", 8));
    assert_false(jwt_claims_allow(&claims, JWT_PUBLISH, "anything", 8));
    /* kid "k2" picks key2 only: key1 alone does not know that kid. */
    const struct jwt_policy p = {.now = NOW};
    assert_int_equal(verify_with(t2, &key1, 1, &p), JWT_NO_KEY);
    /* Without a kid every key is tried; with the wrong one, none fits. */
    assert_int_equal(verify_with(t1, &key2, 1, &p), JWT_SIGNATURE);
}

static void test_sign_round_trip(void **state)
{
    (void)state;
    const char *tok = sign("{\"sse\":{\"publish\":[\"a\",\"b-*\"]},\"exp\":1700000100}", &key2);
    assert_int_equal(verify(tok), JWT_OK);
    assert_true(jwt_claims_allow(&claims, JWT_PUBLISH, "b-1", 3));
    assert_false(jwt_claims_allow(&claims, JWT_SUBSCRIBE, "a", 1));
    char buf[40];
    assert_int_equal(jwt_sign("{}", 2, &key1, buf, sizeof buf), 0); /* does not fit */
}

static void test_alg_from_config_only(void **state)
{
    (void)state;
    const char *payload = "{\"sse\":{\"subscribe\":[\"*\"]}}";
    assert_int_equal(verify(forge("{\"alg\":\"none\"}", payload, NULL)), JWT_ALG);
    assert_int_equal(verify(forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, &key1)), JWT_ALG);
    assert_int_equal(verify(forge("{\"alg\":\"RS256\"}", payload, &key1)), JWT_ALG);
    assert_int_equal(verify(forge("{\"alg\":\"HS512\"}", payload, &key1)), JWT_ALG);
    assert_int_equal(verify(forge("{\"alg\":\"hs256\"}", payload, &key1)), JWT_ALG);
    assert_int_equal(verify(forge("{\"typ\":\"JWT\"}", payload, &key1)), JWT_ALG);
    assert_int_equal(verify(forge("{\"alg\":[\"HS256\"]}", payload, &key1)), JWT_ALG);
    assert_int_equal(verify(forge("{\"alg\":\"HS256\",\"crit\":[\"b64\"]}", payload, &key1)),
                     JWT_ALG);
    assert_int_equal(verify(forge("{\"alg\":\"HS256\"}", payload, &key1)), JWT_OK);
}

static void test_tampering(void **state)
{
    (void)state;
    char tok[1024];
    snprintf(tok, sizeof tok, "%s", sign("{\"sse\":{\"subscribe\":[\"user-1\"]}}", &key1));
    assert_int_equal(verify(tok), JWT_OK);
    char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
    /* Every single-character change of the payload or signature fails. */
    for (char *p = dot1 + 1; *p; p++) {
        if (p == dot2) {
            continue;
        }
        char saved = *p;
        *p = *p == 'A' ? 'B' : 'A';
        enum jwt_result r = verify(tok);
        assert_true(r == JWT_SIGNATURE || r == JWT_MALFORMED);
        *p = saved;
    }
    /* A payload swapped for another's, signature kept. */
    char other[1024];
    snprintf(other, sizeof other, "%s", sign("{\"sse\":{\"subscribe\":[\"*\"]}}", &key1));
    char spliced[2048];
    snprintf(spliced, sizeof spliced, "%.*s%.*s%s", (int)(dot1 - tok), tok,
             (int)(strrchr(other, '.') - strchr(other, '.')), strchr(other, '.'), dot2);
    assert_int_equal(verify(spliced), JWT_SIGNATURE);
    /* Truncated signature, empty signature. */
    tok[strlen(tok) - 1] = '\0';
    assert_int_not_equal(verify(tok), JWT_OK);
    dot2[1] = '\0';
    assert_int_equal(verify(tok), JWT_SIGNATURE);
}

static void test_times(void **state)
{
    (void)state;
    const struct jwt_policy strict = {.now = NOW}, lenient = {.now = NOW, .leeway = 30};
    const struct jwt_key keys[1] = {key1};
    /* exp is the first second the token is no longer valid. */
    assert_int_equal(verify_with(sign("{\"exp\":1700000001}", &key1), keys, 1, &strict), JWT_OK);
    assert_int_equal(verify_with(sign("{\"exp\":1700000000}", &key1), keys, 1, &strict),
                     JWT_EXPIRED);
    assert_int_equal(verify_with(sign("{\"exp\":1699999980}", &key1), keys, 1, &lenient), JWT_OK);
    assert_int_equal(verify_with(sign("{\"exp\":1699999970}", &key1), keys, 1, &lenient),
                     JWT_EXPIRED);
    assert_int_equal(verify_with(sign("{\"exp\":1700000000.9}", &key1), keys, 1, &strict),
                     JWT_EXPIRED);
    assert_int_equal(verify_with(sign("{\"exp\":-5}", &key1), keys, 1, &strict), JWT_EXPIRED);
    assert_int_equal(verify_with(sign("{\"nbf\":1700000000}", &key1), keys, 1, &strict), JWT_OK);
    assert_int_equal(verify_with(sign("{\"nbf\":1700000001}", &key1), keys, 1, &strict),
                     JWT_NOT_YET);
    assert_int_equal(verify_with(sign("{\"nbf\":1699999999.5}", &key1), keys, 1, &strict), JWT_OK);
    assert_int_equal(verify_with(sign("{\"nbf\":1700000020}", &key1), keys, 1, &lenient), JWT_OK);
    assert_int_equal(verify_with(sign("{\"exp\":\"soon\"}", &key1), keys, 1, &strict),
                     JWT_MALFORMED);
    assert_int_equal(verify_with(sign("{\"exp\":1.7e9}", &key1), keys, 1, &strict), JWT_MALFORMED);
    assert_int_equal(
        verify_with(sign("{\"exp\":99999999999999999999999}", &key1), keys, 1, &strict),
        JWT_MALFORMED);
}

static void test_audience_issuer(void **state)
{
    (void)state;
    const struct jwt_key keys[1] = {key1};
    const struct jwt_policy p = {.now = NOW, .audience = "chat", .issuer = "auth.example"};
    assert_int_equal(
        verify_with(sign("{\"aud\":\"chat\",\"iss\":\"auth.example\"}", &key1), keys, 1, &p),
        JWT_OK);
    assert_int_equal(verify_with(sign("{\"aud\":[\"x\",\"chat\"],\"iss\":\"auth.example\"}", &key1),
                                 keys, 1, &p),
                     JWT_OK);
    assert_int_equal(
        verify_with(sign("{\"aud\":\"chat2\",\"iss\":\"auth.example\"}", &key1), keys, 1, &p),
        JWT_AUDIENCE);
    assert_int_equal(verify_with(sign("{\"iss\":\"auth.example\"}", &key1), keys, 1, &p),
                     JWT_AUDIENCE);
    assert_int_equal(verify_with(sign("{\"aud\":\"chat\"}", &key1), keys, 1, &p), JWT_ISSUER);
    assert_int_equal(verify_with(sign("{\"aud\":\"chat\",\"iss\":\"evil\"}", &key1), keys, 1, &p),
                     JWT_ISSUER);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "a.b",
        "a.b.c.d",
        "eyJ.eyJ.abc",
        /* header not JSON, not an object, trailing garbage */
        "bm90IGpzb24.e30.AAAA",
        "WzFd.e30.AAAA",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum jwt_result r = verify(bad[i]);
        if (r != JWT_MALFORMED) {
            fail_msg("'%s' gave %d", bad[i], r);
        }
    }
    /* Payloads: signed correctly, but not an object or with a bad claim. */
    assert_int_equal(verify(forge("{\"alg\":\"HS256\"}", "[1]", &key1)), JWT_MALFORMED);
    assert_int_equal(verify(forge("{\"alg\":\"HS256\"}", "{\"a\":1", &key1)), JWT_MALFORMED);
    assert_int_equal(verify(sign("{\"sse\":[]}", &key1)), JWT_MALFORMED);
    assert_int_equal(verify(sign("{\"sse\":{\"subscribe\":\"room\"}}", &key1)), JWT_MALFORMED);
    assert_int_equal(verify(sign("{\"sse\":{\"subscribe\":[\"a\",1]}}", &key1)), JWT_MALFORMED);
    assert_int_equal(verify(forge("{\"alg\":\"HS256\",\"kid\":7}", "{}", &key1)), JWT_MALFORMED);
    /* Too long: refused before anything is decoded. */
    char *big = malloc(JWT_MAX_TOKEN + 2);
    memset(big, 'A', JWT_MAX_TOKEN + 1);
    big[JWT_MAX_TOKEN + 1] = '\0';
    assert_int_equal(verify(big), JWT_TOO_LONG);
    free(big);
    /* Nested values and escapes are skipped correctly when finding claims. */
    assert_int_equal(
        verify(sign("{\"x\":{\"sse\":{\"subscribe\":[\"*\"]}},\"y\":\"\\\"}\",\"sse\":{"
                    "\"subscribe\":[\"r\\\"\",\"ok\"]}}",
                    &key1)),
        JWT_OK);
    assert_true(jwt_claims_allow(&claims, JWT_SUBSCRIBE, "ok", 2));
    assert_false(jwt_claims_allow(&claims, JWT_SUBSCRIBE, "zz", 2));
    assert_string_equal(jwt_result_str(JWT_EXPIRED), "token expired");
}

static void test_room_patterns(void **state)
{
    (void)state;
    assert_true(room_pattern_match("*", 1, "a", 1));
    assert_true(room_pattern_match("a*", 2, "a", 1));
    assert_true(room_pattern_match("ab", 2, "ab", 2));
    assert_false(room_pattern_match("ab", 2, "abc", 3));
    assert_false(room_pattern_match("ab*", 3, "a", 1));
    assert_true(room_pattern_valid("*", 1));
    assert_true(room_pattern_valid("team-7-*", 8));
    assert_false(room_pattern_valid("", 0));
    assert_false(room_pattern_valid("a*b", 3));
    assert_false(room_pattern_valid("**", 2));
    assert_true(room_pattern_list_match("a, team-*", "team-1", 6));
    assert_true(room_pattern_list_match("a, team-*", "a", 1));
    assert_false(room_pattern_list_match("a, team-*", "b", 1));
    assert_false(room_pattern_list_match("", "b", 1));
    assert_true(room_pattern_list_valid("a, team-*,*"));
    assert_false(room_pattern_list_valid("a,,b"));
    assert_false(room_pattern_list_valid(""));
    assert_false(room_pattern_list_valid("a b"));
}

static void test_keyring(void **state)
{
    (void)state;
    char path[] = "/tmp/keyring-XXXXXX", err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "# rotated monthly\nplain-secret\r\n\nk2:secret:with:colons\n"
                        "not a kid:x\n";
    assert_int_equal(write(fd, text, sizeof text - 1), sizeof text - 1);
    close(fd);
    struct keyring *kr = keyring_load(path, err, sizeof err);
    assert_non_null(kr);
    size_t n;
    const struct jwt_key *k = keyring_keys(kr, &n);
    assert_int_equal(n, 3);
    assert_string_equal(k[0].kid, "");
    assert_memory_equal(k[0].secret, "plain-secret", 12);
    assert_int_equal(k[0].secret_len, 12);
    assert_string_equal(k[1].kid, "k2");
    assert_int_equal(k[1].secret_len, strlen("secret:with:colons"));
    assert_string_equal(k[2].kid, "");
    assert_int_equal(k[2].secret_len, strlen("not a kid:x"));
    assert_ptr_equal(keyring_find(kr, "k2"), &k[1]);
    assert_ptr_equal(keyring_find(kr, NULL), &k[0]);
    assert_null(keyring_find(kr, "k3"));
    keyring_free(kr);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "# nothing\n\n", 11), 11);
    close(fd);
    assert_null(keyring_load(path, err, sizeof err));
    assert_non_null(strstr(err, "no key"));
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "k1:\n", 4), 4);
    close(fd);
    assert_null(keyring_load(path, err, sizeof err));
    unlink(path);
    assert_null(keyring_load(path, err, sizeof err));
}

static void test_decimal(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_true(number_parse_u64("18446744073709551615", 20, &v));
    assert_true(v == UINT64_MAX);
    assert_false(number_parse_u64("18446744073709551616", 20, &v));
    assert_false(number_parse_u64("", 0, &v));
    assert_false(number_parse_u64("-1", 2, &v));
    assert_false(number_parse_u64("1 ", 2, &v));
    assert_true(number_parse_u64("042", 3, &v));
    assert_true(v == 42);
    assert_int_equal(number_span("123abc", 6), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),          cmocka_unit_test(test_pyjwt_tokens),
        cmocka_unit_test(test_sign_round_trip), cmocka_unit_test(test_alg_from_config_only),
        cmocka_unit_test(test_tampering),       cmocka_unit_test(test_times),
        cmocka_unit_test(test_audience_issuer), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_room_patterns),   cmocka_unit_test(test_keyring),
        cmocka_unit_test(test_decimal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
