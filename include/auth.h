/*
 * auth: who may subscribe to and publish in a room, per request.
 *
 * The request-side glue between the HTTP layer and the token verifier
 * (jwt.c): where a request's token is, which rooms are private, and the
 * 401 / 403 answers. A room is resolved before it is authorized, so the
 * answer can say which room a token does not cover.
 *
 * Rules (docs/ARCHITECTURE.md, "Private rooms"):
 *  - subscribing to a room named by --private-rooms needs a token whose
 *    sse.subscribe claim covers it; other rooms stay public;
 *  - with --jwt-key-file, publishing needs a token whose sse.publish claim
 *    covers the room, or the --publish-token (an all-rooms token);
 *  - 401 (with WWW-Authenticate: Bearer error="invalid_token") for a
 *    missing, malformed, badly signed, expired or too long token; 403 for a
 *    valid token that does not cover the room.
 */
#ifndef SSE_AUTH_H
#define SSE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct http_request;
struct server;
struct worker;

/* Where a token was found. */
enum auth_source { AUTH_NONE, AUTH_BEARER, AUTH_COOKIE, AUTH_QUERY, AUTH_TOO_LONG };

/* "Authorization: Bearer <token>" (scheme case-insensitive): the token's
 * bytes in the request; false without that header or for other schemes. */
bool auth_bearer(const struct http_request *req, const char **tok, size_t *n);

/*
 * Finds a request's token: "Authorization: Bearer" (wins), else the cookie
 * `cookie_name` (sse_token for rooms, sse_admin for the admin endpoints),
 * else ?token= (decoded; EventSource cannot send headers). Copies it into
 * out[0..cap) NUL-terminated and sets *len. AUTH_TOO_LONG when the token
 * found does not fit (it is then not looked at further).
 */
enum auth_source auth_request_token(const struct http_request *req, const char *cookie_name,
                                    char *out, size_t cap, size_t *len);

/* Compares a given token with a configured secret in time that depends only
 * on the given length, never on how much of a guess was right. True when
 * equal and non-empty. */
bool auth_token_equal(const char *given, size_t given_len, const char *token, size_t token_len);

/* True when subscribing to the room needs a token (--private-rooms). */
bool auth_room_private(const struct server *srv, const char *room, size_t len);

/*
 * Authorizes a subscription. Returns 0 when allowed, with *exp the token's
 * expiry (seconds since the epoch) or 0 when the stream may run for ever;
 * -1 after answering 401 or 403.
 */
int auth_subscribe(struct worker *wk, struct conn *c, const struct http_request *req,
                   const char *room, size_t len, int64_t *exp);

/*
 * Authorizes a publish when --jwt-key-file is set. `static_token_ok` says
 * the request carried the --publish-token. 0 when allowed, -1 after
 * answering 401 or 403.
 */
int auth_publish(struct worker *wk, struct conn *c, const struct http_request *req,
                 const char *room, size_t len, bool static_token_ok);

#endif
