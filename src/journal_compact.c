#include "journal_compact.h"
#include "hash.h"
#include "journal.h"
#include "thread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ keep set */

struct keep_room {
    uint64_t min_id;
    uint8_t len;
    bool used;
    char name[MAX_ROOM];
};

/* Open addressing, at most half full, fixed at creation. */
struct journal_keep {
    size_t cap, n; /* cap a power of two */
    struct keep_room rooms[];
};

struct journal_keep *journal_keep_new(size_t rooms)
{
    size_t cap = 16;
    while (cap < rooms * 2 + 2) {
        cap *= 2;
    }
    struct journal_keep *k = calloc(1, sizeof *k + cap * sizeof k->rooms[0]);
    if (k != NULL) {
        k->cap = cap;
    }
    return k;
}

static struct keep_room *keep_slot(const struct journal_keep *k, const char *room, size_t len)
{
    size_t i = (size_t)hash_bucket(0, room, len) & (k->cap - 1);
    for (;;) {
        struct keep_room *r = (struct keep_room *)&k->rooms[i];
        if (!r->used || (r->len == len && memcmp(r->name, room, len) == 0)) {
            return r;
        }
        i = (i + 1) & (k->cap - 1);
    }
}

int journal_keep_add(struct journal_keep *k, const char *room, size_t room_len, uint64_t min_id)
{
    if (room_len > MAX_ROOM) {
        errno = EINVAL;
        return -1;
    }
    struct keep_room *r = keep_slot(k, room, room_len);
    if (r->used) {
        if (min_id < r->min_id) {
            r->min_id = min_id;
        }
        return 0;
    }
    if ((k->n + 1) * 2 > k->cap) {
        errno = ENOMEM;
        return -1;
    }
    r->used = true;
    r->len = (uint8_t)room_len;
    memcpy(r->name, room, room_len);
    r->min_id = min_id;
    k->n++;
    return 0;
}

bool journal_keep_wants(const struct journal_keep *k, const char *room, size_t room_len,
                        uint64_t id)
{
    if (k == NULL || room_len > MAX_ROOM) {
        return false;
    }
    const struct keep_room *r = keep_slot(k, room, room_len);
    return r->used && id >= r->min_id;
}

void journal_keep_free(struct journal_keep *k)
{
    free(k);
}

/* ------------------------------------------------------------ the job */

/* Output is written in pieces of about this size. */
#define OUT_CHUNK ((size_t)256 * 1024)

struct out {
    int fd;
    uint8_t *buf;
    size_t len;
    uint64_t bytes, records;
};

static int out_flush(struct out *o)
{
    size_t done = 0;
    while (done < o->len) {
        ssize_t w = write(o->fd, o->buf + done, o->len - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            if (w == 0) {
                errno = EIO;
            }
            return -1;
        }
        done += (size_t)w;
    }
    o->len = 0;
    return 0;
}

static int out_frame(struct out *o, const uint8_t *frame, size_t n)
{
    if (o->len + n > OUT_CHUNK && out_flush(o) != 0) {
        return -1;
    }
    if (n > OUT_CHUNK) {
        o->len = 0;
        size_t done = 0;
        while (done < n) {
            ssize_t w = write(o->fd, frame + done, n - done);
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                errno = w == 0 ? EIO : errno;
                return -1;
            }
            done += (size_t)w;
        }
    } else {
        memcpy(o->buf + o->len, frame, n);
        o->len += n;
    }
    o->bytes += n;
    o->records++;
    return 0;
}

/* Copies the wanted records of one segment file, skipping what does not
 * check out (corrupt stretches, ids not above the last one copied). */
static int copy_wanted(struct compact_job *job, const char *name, struct out *o, uint64_t *last_id)
{
    struct journal_reader r = {.fd = -1};
    r.fd = openat(job->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    if (r.fd < 0 || fstat(r.fd, &sb) != 0) {
        int e = errno;
        if (r.fd >= 0) {
            close(r.fd);
        }
        errno = e;
        return -1;
    }
    r.size = (uint64_t)sb.st_size;
    int ret = 0;
    uint64_t pos = 0;
    while (pos < r.size) {
        struct journal_frame d;
        int rc = journal_frame_at(&r, pos, &d);
        if (rc == 0) {
            rc = journal_frame_find(&r, pos + 1, &pos, &d);
            if (rc == 0) {
                break;
            }
        }
        if (rc < 0) {
            ret = -1;
            break;
        }
        if (d.id > *last_id &&
            journal_keep_wants(job->keep, (const char *)d.room, d.room_len, d.id)) {
            const uint8_t *frame;
            if (journal_reader_get(&r, pos, (size_t)d.frame_len, &frame) <= 0 ||
                out_frame(o, frame, (size_t)d.frame_len) != 0) {
                ret = -1;
                break;
            }
            *last_id = d.id;
        } else {
            job->dropped++;
        }
        pos += d.frame_len;
    }
    int e = errno;
    free(r.buf);
    close(r.fd);
    errno = e;
    return ret;
}

static int fail(struct compact_job *job, const char *what)
{
    job->err = errno ? errno : EIO;
    snprintf(job->what, sizeof job->what, "%s", what);
    return -1;
}

/* Removes every file after the first (and the first too when nothing was
 * kept), then makes that durable. */
static int unlink_retired(struct compact_job *job, bool all)
{
    for (size_t i = all ? 0 : 1; i < job->nfiles; i++) {
        if (unlinkat(job->dirfd, job->files[i], 0) != 0 && errno != ENOENT) {
            return fail(job, "unlink a retired segment");
        }
    }
    return fsync(job->dirfd) != 0 ? fail(job, "sync the directory") : 0;
}

static int compact_run(struct compact_job *job)
{
    unlinkat(job->dirfd, COMPACT_TMP_NAME, 0);
    struct out o = {.fd = -1};
    o.buf = malloc(OUT_CHUNK);
    o.fd = openat(job->dirfd, COMPACT_TMP_NAME,
                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (o.buf == NULL || o.fd < 0) {
        free(o.buf);
        if (o.fd >= 0) {
            close(o.fd);
        }
        return fail(job, "create " COMPACT_TMP_NAME);
    }
    uint64_t last_id = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < job->nfiles; i++) {
        if (copy_wanted(job, job->files[i], &o, &last_id) != 0) {
            rc = fail(job, "read a retired segment");
        }
    }
    if (rc == 0 && (out_flush(&o) != 0 || fsync(o.fd) != 0)) {
        rc = fail(job, "write " COMPACT_TMP_NAME);
    }
    close(o.fd);
    free(o.buf);
    if (rc == 0 && o.records > 0 &&
        renameat(job->dirfd, COMPACT_TMP_NAME, job->dirfd, job->files[0]) != 0) {
        rc = fail(job, "rename " COMPACT_TMP_NAME);
    }
    if (rc != 0 || o.records == 0) {
        unlinkat(job->dirfd, COMPACT_TMP_NAME, 0);
    }
    if (rc != 0) {
        return rc;
    }
    job->out_bytes = o.bytes;
    job->out_records = o.records;
    return unlink_retired(job, o.records == 0);
}

static void *compact_thread(void *arg)
{
    struct compact_job *job = arg;
    errno = 0;
    (void)compact_run(job);
    atomic_store_explicit(&job->done, true, memory_order_release);
    return NULL;
}

int compact_start(struct compact_job *job)
{
    job->out_bytes = job->out_records = job->dropped = 0;
    job->err = 0;
    job->what[0] = '\0';
    atomic_store_explicit(&job->done, false, memory_order_relaxed);
    int rc = thread_start(&job->thread, compact_thread, job);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    job->running = true;
    return 0;
}

bool compact_done(struct compact_job *job)
{
    return job->running && atomic_load_explicit(&job->done, memory_order_acquire);
}

void compact_reap(struct compact_job *job)
{
    if (!job->running) {
        return;
    }
    pthread_join(job->thread, NULL);
    job->running = false;
    journal_keep_free(job->keep);
    job->keep = NULL;
}
