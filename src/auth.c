#include "auth.h"

#include "conn.h"
#include "http.h"
#include "jwt.h"
#include "keyring.h"
#include "room_pattern.h"
#include "server.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define UNAUTHORIZED_HEADERS "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n"
#define COOKIE_NAME          "sse_token"

bool auth_bearer(const struct http_request *req, const char **tok, size_t *n)
{
    const struct http_str *auth = http_request_header(req, "authorization");
    if (!auth || auth->len < 7 || strncasecmp(auth->ptr, "bearer ", 7) != 0) {
        return false;
    }
    const char *p = auth->ptr + 7;
    size_t len = auth->len - 7;
    while (len && *p == ' ') {
        p++;
        len--;
    }
    *tok = p;
    *n = len;
    return true;
}

/* The value of cookie `name` among "a=b; c=d" pairs of every Cookie header. */
static bool cookie(const struct http_request *req, const char *name, const char **tok, size_t *n)
{
    size_t nlen = strlen(name);
    for (size_t h = 0; h < req->num_headers; h++) {
        const struct http_header *hd = &req->headers[h];
        if (!http_str_eq_nocase(hd->name, "cookie")) {
            continue;
        }
        const char *p = hd->value.ptr, *end = p + hd->value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';')) {
                p++;
            }
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi ? semi : end;
            if ((size_t)(stop - p) > nlen && p[nlen] == '=' && memcmp(p, name, nlen) == 0) {
                p += nlen + 1;
                /* RFC 6265 allows the value in double quotes. */
                if (stop - p >= 2 && *p == '"' && stop[-1] == '"') {
                    p++;
                    stop--;
                }
                *tok = p;
                *n = (size_t)(stop - p);
                return true;
            }
            p = stop;
        }
    }
    return false;
}

enum auth_source auth_request_token(const struct http_request *req, const char *cookie_name,
                                    char *out, size_t cap, size_t *len)
{
    const char *tok;
    size_t n;
    enum auth_source src = AUTH_NONE;
    if (auth_bearer(req, &tok, &n)) {
        src = AUTH_BEARER;
    } else if (cookie(req, cookie_name, &tok, &n)) {
        src = AUTH_COOKIE;
    } else {
        long q = http_query_param(req->query, "token", out, cap - 1);
        if (q == -1) {
            return AUTH_NONE;
        }
        if (q < 0) {
            return AUTH_TOO_LONG;
        }
        out[q] = '\0';
        *len = (size_t)q;
        return AUTH_QUERY;
    }
    if (n >= cap) {
        return AUTH_TOO_LONG;
    }
    memcpy(out, tok, n);
    out[n] = '\0';
    *len = n;
    return src;
}

bool auth_token_equal(const char *given, size_t given_len, const char *token, size_t token_len)
{
    unsigned char diff = given_len != token_len;
    for (size_t i = 0; i < given_len; i++) {
        /* Cycling over the token keeps the loop's length the caller's own. */
        diff |= (unsigned char)(given[i] ^ token[i % (token_len ? token_len : 1)]);
    }
    return diff == 0 && token_len > 0;
}

bool auth_room_private(const struct server *srv, const char *room, size_t len)
{
    return room_pattern_list_match(srv->cfg.private_rooms, room, len);
}

static void reply_json(struct conn *c, int status, const char *msg, const char *headers)
{
    char body[256];
    /* msg is ours and room names are plain characters: nothing to escape. */
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", msg);
    conn_reply(c, status, "application/json", body, (size_t)n, headers);
}

/* Finds and verifies the request's token into *claims; answers 401 and
 * returns -1 when there is none or it is not valid. */
static int verified_claims(struct worker *wk, struct conn *c, const struct http_request *req,
                           const char *action, struct jwt_claims *claims)
{
    char tok[JWT_MAX_TOKEN + 1], msg[128];
    size_t len = 0, nkeys;
    enum auth_source src = auth_request_token(req, COOKIE_NAME, tok, sizeof tok, &len);
    enum jwt_result r = JWT_TOO_LONG;
    if (src == AUTH_NONE) {
        snprintf(msg, sizeof msg, "%s needs a token", action);
        reply_json(c, 401, msg, UNAUTHORIZED_HEADERS);
        return -1;
    }
    if (src != AUTH_TOO_LONG) {
        const struct jwt_key *keys = keyring_keys(wk->srv->keys, &nkeys);
        const struct jwt_policy policy = {
            .now = (int64_t)time(NULL),
            .leeway = wk->srv->cfg.jwt_leeway_s,
            .audience = wk->srv->cfg.jwt_audience,
            .issuer = wk->srv->cfg.jwt_issuer,
        };
        r = jwt_verify(tok, len, keys, nkeys, &policy, claims);
    }
    memset(tok, 0, sizeof tok);
    if (r != JWT_OK) {
        counter_add(&wk->stats.auth_refused, 1);
        reply_json(c, 401, jwt_result_str(r), UNAUTHORIZED_HEADERS);
        return -1;
    }
    return 0;
}

static int forbidden(struct worker *wk, struct conn *c, const char *action, const char *room,
                     size_t len)
{
    char msg[160];
    snprintf(msg, sizeof msg, "the token does not allow %s room '%.*s'", action, (int)len, room);
    counter_add(&wk->stats.auth_refused, 1);
    reply_json(c, 403, msg, NULL);
    return -1;
}

int auth_subscribe(struct worker *wk, struct conn *c, const struct http_request *req,
                   const char *room, size_t len, int64_t *exp)
{
    /* The claims (a few KiB) live in the server, not on the stack: one
     * loop, one request at a time. */
    struct jwt_claims *claims = &wk->claims;
    *exp = 0;
    if (!auth_room_private(wk->srv, room, len)) {
        return 0;
    }
    if (verified_claims(wk, c, req, "subscribing to a private room", claims) < 0) {
        return -1;
    }
    if (!jwt_claims_allow(claims, JWT_SUBSCRIBE, room, len)) {
        return forbidden(wk, c, "subscribing to", room, len);
    }
    *exp = claims->has_exp ? claims->exp : 0;
    return 0;
}

int auth_publish(struct worker *wk, struct conn *c, const struct http_request *req,
                 const char *room, size_t len, bool static_token_ok)
{
    struct jwt_claims *claims = &wk->claims;
    if (static_token_ok) {
        return 0;
    }
    if (verified_claims(wk, c, req, "publishing", claims) < 0) {
        return -1;
    }
    if (!jwt_claims_allow(claims, JWT_PUBLISH, room, len)) {
        return forbidden(wk, c, "publishing to", room, len);
    }
    return 0;
}
