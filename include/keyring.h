/*
 * keyring: the HS256 secrets of --jwt-key-file.
 *
 * One secret per line, optionally "kid:secret" (kid: 1-64 characters of
 * A-Z a-z 0-9 . _ -); blank lines and lines starting with '#' are skipped.
 * A secret that itself contains ':' must be given with a kid. Several keys
 * let tokens signed with an old and a new secret both pass while a key is
 * rotated; SIGHUP loads the file again (see server.c).
 */
#ifndef SSE_KEYRING_H
#define SSE_KEYRING_H

#include "jwt.h"

#include <stddef.h>

/* The largest key file read. */
#define KEYRING_MAX_FILE ((size_t)1 << 20)

struct keyring;

/* Loads the file; NULL with the reason in err on failure (unreadable, too
 * large, no key, a malformed kid). Blocking file I/O: call it at start-up
 * or on an operator's signal only. */
struct keyring *keyring_load(const char *path, char *err, size_t err_cap);

/* Frees the ring and wipes its secrets; NULL is fine. */
void keyring_free(struct keyring *kr);

/* The keys in file order; valid until keyring_free. */
const struct jwt_key *keyring_keys(const struct keyring *kr, size_t *n);

/* The key with that kid, or with kid NULL the first key; NULL if none. */
const struct jwt_key *keyring_find(const struct keyring *kr, const char *kid);

#endif
