#include "keyring.h"

#include "room.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct keyring {
    size_t n;
    size_t size; /* of the whole allocation, to wipe it */
    struct jwt_key *keys;
    char *text; /* the file's bytes, cut into NUL-terminated kids and secrets */
};

/* Reads the whole file into a fresh NUL-terminated buffer. */
static char *read_file(const char *path, size_t *len, char *err, size_t err_cap)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, err_cap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(KEYRING_MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, KEYRING_MAX_FILE + 1, f) : 0;
    bool failed = !buf || ferror(f);
    fclose(f);
    if (failed || n > KEYRING_MAX_FILE) {
        snprintf(err, err_cap, "%s: %s", path, failed ? "cannot read" : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    /* Keep only what the file holds, not the 1 MiB read buffer. */
    char *fit = realloc(buf, n + 1);
    if (!fit) {
        return buf;
    }
    return fit;
}

/* Cuts one line into kid and secret (in place); false when it holds none. */
static bool parse_line(char *line, struct jwt_key *key)
{
    line[strcspn(line, "\r")] = '\0';
    if (!*line || *line == '#') {
        return false;
    }
    char *colon = strchr(line, ':');
    key->kid = "";
    key->secret = (const unsigned char *)line;
    if (colon && colon - line <= JWT_MAX_KID && room_name_valid(line, (size_t)(colon - line))) {
        *colon = '\0';
        key->kid = line;
        key->secret = (const unsigned char *)colon + 1;
    }
    key->secret_len = strlen((const char *)key->secret);
    return true;
}

struct keyring *keyring_load(const char *path, char *err, size_t err_cap)
{
    size_t len;
    char *text = read_file(path, &len, err, err_cap);
    if (!text) {
        return NULL;
    }
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) {
        lines += text[i] == '\n';
    }
    struct keyring *kr = calloc(1, sizeof *kr + lines * sizeof(struct jwt_key));
    if (!kr) {
        snprintf(err, err_cap, "out of memory");
        free(text);
        return NULL;
    }
    kr->keys = (struct jwt_key *)(kr + 1);
    kr->text = text;
    kr->size = len;
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        struct jwt_key *k = &kr->keys[kr->n];
        if (!parse_line(line, k)) {
            continue;
        }
        if (k->secret_len == 0) {
            snprintf(err, err_cap, "%s: key %zu has an empty secret", path, kr->n + 1);
            keyring_free(kr);
            return NULL;
        }
        kr->n++;
    }
    if (kr->n == 0) {
        snprintf(err, err_cap, "%s: no key in the file", path);
        keyring_free(kr);
        return NULL;
    }
    return kr;
}

void keyring_free(struct keyring *kr)
{
    if (!kr) {
        return;
    }
    /* Secrets should not outlive their use in freed heap memory. */
    memset(kr->text, 0, kr->size);
    free(kr->text);
    free(kr);
}

const struct jwt_key *keyring_keys(const struct keyring *kr, size_t *n)
{
    *n = kr ? kr->n : 0;
    return kr ? kr->keys : NULL;
}

const struct jwt_key *keyring_find(const struct keyring *kr, const char *kid)
{
    for (size_t i = 0; kr && i < kr->n; i++) {
        if (!kid || strcmp(kr->keys[i].kid, kid) == 0) {
            return &kr->keys[i];
        }
    }
    return NULL;
}
