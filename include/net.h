/*
 * net: the listening socket and the accept policy around it.
 */
#ifndef SSE_NET_H
#define SSE_NET_H

#include <stddef.h>

/*
 * Opens a non-blocking TCP listener on addr:port (IPv4 or IPv6 literal, or
 * "localhost"), with SO_REUSEADDR. Writes the bound port (the real one when
 * port is 0) to *bound_port. Returns the fd, or -1 with a message in err.
 */
int net_listen(const char *addr, int port, int *bound_port, char *err, size_t err_cap);

/* Result of net_accept besides a valid fd (>= 0). */
#define NET_AGAIN  (-1) /* nothing to accept now */
#define NET_NO_FDS (-2) /* EMFILE/ENFILE: out of descriptors */
#define NET_FAILED (-3) /* another error, errno set */

/*
 * Accepts one connection, non-blocking and close-on-exec, with TCP_NODELAY
 * set. Retries EINTR and skips connections that were reset before they could
 * be accepted.
 */
int net_accept(int listen_fd);

/*
 * Sheds one pending connection when out of descriptors: the spare fd kept in
 * *spare (from net_spare_open) is closed, one connection is accepted, handed
 * to answer(fd, arg) (which must not block nor close it) and closed at once,
 * and the spare is reopened. Without this a level-triggered listener at
 * EMFILE would wake the loop forever. Returns 1 if a connection was shed, 0
 * otherwise.
 */
int net_shed_one(int listen_fd, int *spare, void (*answer)(int fd, void *arg), void *arg);

/* Opens the spare fd (on /dev/null). -1 on failure. */
int net_spare_open(void);

/* Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the new soft limit. */
size_t net_raise_fd_limit(void);

#endif
