/*
 * static_files: the files of the static directory, loaded into memory once
 * at start and served from there.
 *
 * Requests are answered by exact lookup in this table, so a request path can
 * only ever name a file that the loader found by walking the directory:
 * "..", percent-encoded dots or slashes and NUL bytes cannot reach anything
 * else. The walk skips symbolic links and dot-files, so nothing outside the
 * directory is ever loaded.
 */
#ifndef SSE_STATIC_FILES_H
#define SSE_STATIC_FILES_H

#include <stdbool.h>
#include <stddef.h>

#define STATIC_MAX_FILES 4096
#define STATIC_MAX_BYTES (64u << 20) /* all files together */

struct static_files;

struct static_file {
    char *path;       /* "/index.html": leading slash, no "." or ".." segments */
    const char *type; /* Content-Type */
    char *data;
    size_t len;
    char etag[20]; /* quoted strong validator: a hash of the content */
};

/*
 * Loads every regular file below dir. A missing directory gives an empty
 * table (the API still works); other errors return NULL with a message in err.
 * The table starts with one reference, owned by the caller.
 */
struct static_files *static_files_load(const char *dir, char *err, size_t err_cap);

/* A response that borrows a file's bytes holds a reference on the table
 * until it is written, so reloading (SIGHUP) never frees bytes in flight. */
struct static_files *static_files_ref(struct static_files *files);
/* Drops a reference; the last one frees the table. NULL is ignored. */
void static_files_unref(struct static_files *files);
/* True while a response borrows the table (more than one reference). */
bool static_files_shared(const struct static_files *files);

/*
 * Finds the file for a raw (still percent-encoded) request path. A path
 * ending in '/' names the index.html of that directory. NULL when no such
 * file exists or the path is malformed.
 */
const struct static_file *static_files_find(const struct static_files *files, const char *path,
                                            size_t len);

size_t static_files_count(const struct static_files *files);

/* Content-Type for a file name, by extension. */
const char *static_content_type(const char *name);

#endif
