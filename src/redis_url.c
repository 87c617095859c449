#include "redis_url.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "http.h"

static int url_fail(char *err, size_t cap, const char *msg)
{
    snprintf(err, cap, "bad Redis URL: %s", msg);
    return -1;
}

/* Percent-decodes s[0..n) into out (NUL-terminated, at most cap - 1 bytes). */
static int url_decode(const char *s, size_t n, char *out, size_t cap)
{
    if (n >= cap) {
        return -1;
    }
    long k = http_percent_decode(s, n, out, cap - 1);
    if (k < 0 || memchr(out, '\0', (size_t)k)) {
        return -1;
    }
    out[k] = '\0';
    return 0;
}

/* "user:password" (user may be empty); a password is required. */
static int url_userinfo(const char *s, size_t n, struct redis_url *u, char *err, size_t cap)
{
    const char *colon = memchr(s, ':', n);
    if (!colon) {
        return url_fail(err, cap,
                        "write the password as redis://:PASSWORD@host or "
                        "redis://USER:PASSWORD@host");
    }
    size_t ulen = (size_t)(colon - s);
    if (url_decode(s, ulen, u->user, sizeof u->user) < 0 ||
        url_decode(colon + 1, n - ulen - 1, u->password, sizeof u->password) < 0) {
        return url_fail(err, cap, "user or password too long, or a bad %-escape in them");
    }
    u->has_password = true;
    return 0;
}

/* A decimal number in [lo, hi], digits only. */
static int url_number(const char *s, size_t n, long lo, long hi, int *out)
{
    long v = 0;
    if (n == 0 || n > 9) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Numeric only: a name would need getaddrinfo, which blocks. */
static int url_address(struct redis_url *u, char *err, size_t cap)
{
    const char *h = strcmp(u->host, "localhost") == 0 ? "127.0.0.1" : u->host;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&u->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&u->addr;

    memset(&u->addr, 0, sizeof u->addr);
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)u->port);
        u->addr_len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)u->port);
        u->addr_len = sizeof *a6;
        return 0;
    }
    return url_fail(err, cap,
                    "the host must be an IPv4 address, an IPv6 address in [] or "
                    "localhost (host names are not resolved)");
}

/* host, [v6host], with an optional :port. */
static int url_hostport(const char *s, size_t n, struct redis_url *u, char *err, size_t cap)
{
    const char *host = s, *port = NULL;
    size_t hlen = n;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close) {
            return url_fail(err, cap, "unclosed [ in the host");
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < s + n) {
            if (close[1] != ':') {
                return url_fail(err, cap, "junk after ]");
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
        }
    }
    if (hlen == 0 || hlen >= sizeof u->host) {
        return url_fail(err, cap, "missing or overlong host");
    }
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    u->port = REDIS_DEFAULT_PORT;
    if (port && url_number(port, (size_t)(s + n - port), 1, 65535, &u->port) < 0) {
        return url_fail(err, cap, "the port must be a number from 1 to 65535");
    }
    return url_address(u, err, cap);
}

int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t err_cap)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof *out);
    if (strncmp(url, "rediss://", 9) == 0) {
        return url_fail(err, err_cap, "rediss:// (TLS) is not supported");
    }
    if (strncmp(url, scheme, sizeof scheme - 1) != 0) {
        return url_fail(err, err_cap, "it must start with redis://");
    }
    const char *s = url + sizeof scheme - 1;
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++) {
        at = s[i] == '@' ? s + i : at;
    }
    if (at) {
        if (url_userinfo(s, (size_t)(at - s), out, err, err_cap) < 0) {
            return -1;
        }
        alen -= (size_t)(at + 1 - s);
        s = at + 1;
    }
    if (url_hostport(s, alen, out, err, err_cap) < 0) {
        return -1;
    }
    if (slash && slash[1] != '\0' &&
        url_number(slash + 1, strlen(slash + 1), 0, 1 << 20, &out->db) < 0) {
        return url_fail(err, err_cap, "the db after / must be a number (and nothing after it)");
    }
    return 0;
}
