#include "admin.h"

#include "config.h"
#include "http.h"

#include <string.h>
#include <strings.h>

bool admin_token_equal(const char *given, size_t given_len, const char *token, size_t token_len)
{
    unsigned char diff = given_len != token_len;
    for (size_t i = 0; i < given_len; i++) {
        /* Cycling over the token keeps the loop's length the caller's own. */
        diff |= (unsigned char)(given[i] ^ token[i % (token_len ? token_len : 1)]);
    }
    return diff == 0 && token_len > 0;
}

bool admin_token_cookie_safe(const char *token)
{
    for (const unsigned char *p = (const unsigned char *)token; *p; p++) {
        if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == ',' || *p == ';' || *p == '\\') {
            return false;
        }
    }
    return *token != '\0';
}

/* The value of cookie `name` in one Cookie header ("a=b; c=d"), or NULL. */
static const char *cookie_value(const struct http_str *h, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    const char *p = h->ptr, *end = h->ptr + h->len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ';')) {
            p++;
        }
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        if ((size_t)(stop - p) > nlen && p[nlen] == '=' && memcmp(p, name, nlen) == 0) {
            *len = (size_t)(stop - p) - nlen - 1;
            return p + nlen + 1;
        }
        p = stop;
    }
    return NULL;
}

/* The token a request carries, from the header, a cookie or the query, in
 * that order. Returns where it was found (NONE: nowhere); a query value that
 * does not fit or does not decode is returned as an empty token, which never
 * matches. */
static enum admin_via find_token(const struct http_request *req, char *buf, size_t cap,
                                 const char **tok, size_t *len)
{
    const struct http_str *auth = http_request_header(req, "authorization");
    if (auth && auth->len >= 7 && strncasecmp(auth->ptr, "bearer ", 7) == 0) {
        *tok = auth->ptr + 7;
        *len = auth->len - 7;
        while (*len && **tok == ' ') {
            (*tok)++;
            (*len)--;
        }
        return ADMIN_VIA_HEADER;
    }
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (h->name.len == 6 && strncasecmp(h->name.ptr, "cookie", 6) == 0 &&
            (*tok = cookie_value(&h->value, ADMIN_COOKIE, len)) != NULL) {
            return ADMIN_VIA_COOKIE;
        }
    }
    long n = http_query_param(req->query, "token", buf, cap);
    if (n == -1) {
        return ADMIN_VIA_NONE;
    }
    *tok = buf;
    *len = n < 0 ? 0 : (size_t)n;
    return ADMIN_VIA_QUERY;
}

enum admin_access admin_check(const struct config *cfg, bool peer_local,
                              const struct http_request *req, enum admin_via *via)
{
    if (via) {
        *via = ADMIN_VIA_NONE;
    }
    if (cfg->admin_local && !peer_local) {
        return ADMIN_NOT_LOCAL;
    }
    if (!cfg->admin_token[0]) {
        return ADMIN_ALLOWED;
    }
    char buf[sizeof cfg->admin_token];
    const char *tok = NULL;
    size_t len = 0;
    enum admin_via found = find_token(req, buf, sizeof buf, &tok, &len);
    if (found == ADMIN_VIA_NONE) {
        return ADMIN_NO_TOKEN;
    }
    if (!admin_token_equal(tok, len, cfg->admin_token, strlen(cfg->admin_token))) {
        return ADMIN_BAD_TOKEN;
    }
    if (via) {
        *via = found;
    }
    return ADMIN_ALLOWED;
}
