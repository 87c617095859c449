/*
 * admin: who may see the operator endpoints (/stats, /metrics, /dashboard).
 *
 * Two independent gates, both applied when both are configured:
 *   --admin-local        the peer must be a loopback address (others get
 *                        404, as if the endpoint did not exist);
 *   --admin-token TOKEN  the request must carry TOKEN, as
 *                        "Authorization: Bearer TOKEN", the cookie
 *                        "sse_admin=TOKEN" or the query parameter ?token=
 *                        (401 when none is given, 403 when it is wrong).
 * Behind a reverse proxy every client looks local, so --admin-local alone
 * lets everyone in through the proxy: there the token is what tells the
 * operator apart. With neither, the endpoints are open.
 */
#ifndef SSE_ADMIN_H
#define SSE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"

struct config;
struct http_request;

enum admin_access {
    ADMIN_ALLOWED,
    ADMIN_NOT_LOCAL, /* --admin-local and the peer is not loopback: 404 */
    ADMIN_NO_TOKEN,  /* a token is required and none was given: 401 */
    ADMIN_BAD_TOKEN, /* the token given is wrong: 403 */
};

/* The cookie that carries the admin token. */
#define ADMIN_COOKIE "sse_admin"

/* Decides whether a request may see the admin endpoints. `via` (may be NULL)
 * tells where the accepted token was found (AUTH_NONE: none was needed). */
enum admin_access admin_check(const struct config *cfg, bool peer_local,
                              const struct http_request *req, enum auth_source *via);

/* True when the token can be sent back as a cookie value unquoted and
 * unencoded (RFC 6265 cookie-octets), so Set-Cookie may carry it. */
bool admin_token_cookie_safe(const char *token);

#endif
