#include "admin.h"

#include "auth.h"

#include "config.h"
#include "http.h"

#include <string.h>

bool admin_token_cookie_safe(const char *token)
{
    for (const unsigned char *p = (const unsigned char *)token; *p; p++) {
        if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == ',' || *p == ';' || *p == '\\') {
            return false;
        }
    }
    return *token != '\0';
}

enum admin_access admin_check(const struct config *cfg, bool peer_local,
                              const struct http_request *req, enum auth_source *via)
{
    if (via) {
        *via = AUTH_NONE;
    }
    if (cfg->admin_local && !peer_local) {
        return ADMIN_NOT_LOCAL;
    }
    if (!cfg->admin_token[0]) {
        return ADMIN_ALLOWED;
    }
    char tok[sizeof cfg->admin_token];
    size_t len = 0;
    enum auth_source found = auth_request_token(req, ADMIN_COOKIE, tok, sizeof tok, &len);
    if (found == AUTH_NONE) {
        return ADMIN_NO_TOKEN;
    }
    bool ok = found != AUTH_TOO_LONG &&
              auth_token_equal(tok, len, cfg->admin_token, strlen(cfg->admin_token));
    memset(tok, 0, sizeof tok);
    if (!ok) {
        return ADMIN_BAD_TOKEN;
    }
    if (via) {
        *via = found;
    }
    return ADMIN_ALLOWED;
}
