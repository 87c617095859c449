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

/* Where a token was found. */
enum auth_source { AUTH_NONE, AUTH_BEARER, AUTH_COOKIE, AUTH_QUERY, AUTH_TOO_LONG };

/*
 * Finds a request's token: "Authorization: Bearer" (wins), else the cookie
 * sse_token, else ?token= (decoded; EventSource cannot send headers). Copies
 * it into out[0..cap) NUL-terminated and sets *len. AUTH_TOO_LONG when the
 * token found does not fit (it is then not looked at further).
 */
enum auth_source auth_request_token(const struct http_request *req, char *out, size_t cap,
                                    size_t *len);

/* True when subscribing to the room needs a token (--private-rooms). */
bool auth_room_private(const struct server *srv, const char *room, size_t len);

/*
 * Authorizes a subscription. Returns 0 when allowed, with *exp the token's
 * expiry (seconds since the epoch) or 0 when the stream may run for ever;
 * -1 after answering 401 or 403.
 */
int auth_subscribe(struct server *srv, struct conn *c, const struct http_request *req,
                   const char *room, size_t len, int64_t *exp);

/*
 * Authorizes a publish when --jwt-key-file is set. `static_token_ok` says
 * the request carried the --publish-token. 0 when allowed, -1 after
 * answering 401 or 403.
 */
int auth_publish(struct server *srv, struct conn *c, const struct http_request *req,
                 const char *room, size_t len, bool static_token_ok);

#endif
