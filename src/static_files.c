#include "static_files.h"

#include "hash.h"
#include "http.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATIC_MAX_DEPTH 16

struct static_files {
    /* Responses on any loop borrow the table: counted atomically. */
    atomic_uint refs;
    struct static_file *files; /* sorted by path for binary search */
    size_t count, cap;
    size_t bytes;
};

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff2", "font/woff2"},
    {"woff", "font/woff"},
    {"wasm", "application/wasm"},
    {"webmanifest", "application/manifest+json"},
};

const char *static_content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (dot && (!slash || dot > slash)) {
        for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++) {
            if (strcasecmp(dot + 1, content_types[i].ext) == 0) {
                return content_types[i].type;
            }
        }
    }
    return "application/octet-stream";
}

static void make_etag(struct static_file *f)
{
    uint64_t h = hash_fnv1a(0, f->data, f->len);
    snprintf(f->etag, sizeof f->etag, "\"%016llx\"", (unsigned long long)h);
}

/* Reads a whole regular file at start-up (blocking I/O is fine before the
 * loop runs). */
static int read_file(int dirfd, const char *name, size_t size, char **out)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    char *data = malloc(size ? size : 1);
    if (!data) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (got != size) {
        free(data);
        return -1;
    }
    *out = data;
    return 0;
}

static int add_file(struct static_files *t, const char *path, char *data, size_t len)
{
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct static_file *f = realloc(t->files, cap * sizeof *f);
        if (!f) {
            return -1;
        }
        t->files = f;
        t->cap = cap;
    }
    struct static_file *f = &t->files[t->count];
    f->path = strdup(path);
    if (!f->path) {
        return -1;
    }
    f->data = data;
    f->len = len;
    f->type = static_content_type(path);
    make_etag(f);
    t->count++;
    t->bytes += len;
    return 0;
}

static int walk(struct static_files *t, int dirfd, const char *prefix, int depth, char *err,
                size_t err_cap)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        int e = errno;
        char eb[96];
        close(dirfd);
        /* strerror_r: loading also runs on the reload thread. */
        snprintf(err, err_cap, "cannot read %s: %s", *prefix ? prefix : "/",
                 strerror_r(e, eb, sizeof eb));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue; /* ".", "..", and dot-files are never served */
        }
        struct stat st;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            continue;
        }
        char path[1024];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", prefix, e->d_name) >= sizeof path) {
            continue;
        }
        if (S_ISDIR(st.st_mode) && depth < STATIC_MAX_DEPTH) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                rc = walk(t, sub, path, depth + 1, err, err_cap);
            }
        } else if (S_ISREG(st.st_mode)) {
            /* Symbolic links fail S_ISREG under AT_SYMLINK_NOFOLLOW, so a link
             * pointing out of the directory is never loaded. */
            if (t->count >= STATIC_MAX_FILES || t->bytes + (size_t)st.st_size > STATIC_MAX_BYTES) {
                snprintf(err, err_cap, "static directory too large (limits: %d files, %u bytes)",
                         STATIC_MAX_FILES, STATIC_MAX_BYTES);
                rc = -1;
                break;
            }
            char *data;
            if (read_file(dirfd, e->d_name, (size_t)st.st_size, &data) < 0) {
                continue;
            }
            if (add_file(t, path, data, (size_t)st.st_size) < 0) {
                free(data);
                snprintf(err, err_cap, "out of memory");
                rc = -1;
            }
        }
    }
    closedir(d);
    return rc;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const struct static_file *)a)->path, ((const struct static_file *)b)->path);
}

struct static_files *static_files_load(const char *dir, char *err, size_t err_cap)
{
    struct static_files *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    atomic_init(&t->refs, 1);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return t;
        }
        char eb[96];
        snprintf(err, err_cap, "cannot open static directory %s: %s", dir,
                 strerror_r(errno, eb, sizeof eb));
        free(t);
        return NULL;
    }
    if (walk(t, fd, "", 0, err, err_cap) < 0) {
        static_files_unref(t);
        return NULL;
    }
    if (t->count > 1) {
        qsort(t->files, t->count, sizeof *t->files, cmp_file);
    }
    return t;
}

struct static_files *static_files_ref(struct static_files *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void static_files_unref(struct static_files *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) > 1) {
        return;
    }
    for (size_t i = 0; i < t->count; i++) {
        free(t->files[i].path);
        free(t->files[i].data);
    }
    free(t->files);
    free(t);
}

bool static_files_shared(const struct static_files *t)
{
    return atomic_load(&t->refs) > 1;
}

size_t static_files_count(const struct static_files *t)
{
    return t->count;
}

const struct static_file *static_files_find(const struct static_files *t, const char *path,
                                            size_t len)
{
    char decoded[1024 + 16];
    if (len == 0 || len >= 1024 || path[0] != '/') {
        return NULL;
    }
    long n = http_percent_decode(path, len, decoded, sizeof decoded);
    if (n <= 0 || memchr(decoded, '\0', (size_t)n)) {
        return NULL;
    }
    if (decoded[n - 1] == '/') {
        memcpy(decoded + n, "index.html", sizeof "index.html");
    } else {
        decoded[n] = '\0';
    }
    size_t lo = 0, hi = t->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->files[mid].path, decoded);
        if (c == 0) {
            return &t->files[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}
