/*
 * redis_url: parses the address of a Redis server,
 * redis://[user:password@]host[:port][/db], into what the client needs to
 * connect without blocking: the host must be numeric (IPv4, or IPv6 in
 * brackets) or "localhost", so no name is ever resolved (getaddrinfo blocks,
 * and the client runs on the event loop).
 */
#ifndef SSE_REDIS_URL_H
#define SSE_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define REDIS_DEFAULT_PORT 6379

/* A parsed redis://[user:password@]host[:port][/db] address. */
struct redis_url {
    char host[64]; /* as written, without brackets */
    int port;
    int db;
    bool has_password;
    char user[256];     /* empty: the default user */
    char password[512]; /* percent-decoded */
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

/*
 * Parses url into *out. 0, or -1 with a message in err (which never repeats
 * the password). user and password are percent-decoded, so '@', ':' and '/'
 * in them are written %40, %3A and %2F. Refuses rediss:// (no TLS), host
 * names other than localhost, ports outside 1..65535, a db that is not a
 * decimal number, and anything after the db.
 */
int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t err_cap);

#endif
