/*
 * journal_replay: opening a journal directory (created if missing, locked
 * against a second server), listing its segments, and replaying them in id
 * order into the caller's rooms, cutting a torn tail and marking every gap.
 * Part of the journal module (include/journal.h).
 */
#include "journal.h"
#include "journal_format.h"
#include "journal_internal.h"
#include "journal_syncer.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (err == NULL || cap == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

struct open_ctx {
    struct journal *j;
    journal_replay_fn *replay;
    void *arg;
    bool gap; /* a corrupt stretch was skipped since the last good record */
    struct journal_stats st;
    char *err;
    size_t err_cap;
};

static void log_skip(const struct open_ctx *c, const char *name, uint64_t from, uint64_t to,
                     const char *why)
{
    log_warn("journal: %s/%s: skipped %" PRIu64 " bytes at offset %" PRIu64 " (%s)", c->j->dir,
             name, to - from, from, why);
}

/* Out-of-order records come in runs (a whole stray segment, say): one log
 * line per run rather than per record. */
struct stale_run {
    uint64_t n, from, first_id, floor;
};

static void stale_flush(const struct open_ctx *c, const char *name, struct stale_run *run)
{
    if (run->n > 0) {
        log_warn("journal: %s/%s: skipped %" PRIu64 " records from offset %" PRIu64
                 " (first id %" PRIu64 ", not above %" PRIu64 ")",
                 c->j->dir, name, run->n, run->from, run->first_id, run->floor);
        run->n = 0;
    }
}

static int segment_open(struct open_ctx *c, const char *name, struct journal_reader *r)
{
    r->fd = openat(c->j->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    if (r->fd < 0 || fstat(r->fd, &sb) != 0) {
        set_err(c->err, c->err_cap, "journal: cannot open %s/%s: %s", c->j->dir, name,
                strerror(errno));
        if (r->fd >= 0) {
            close(r->fd);
        }
        return -1;
    }
    r->size = (uint64_t)sb.st_size;
    return 0;
}

/*
 * At a frame that does not check out: finds the next valid one (skipping a
 * corrupt record marks a gap), or ends the segment there: the torn tail of
 * the newest segment is cut (an append that never completed), the corrupt end
 * of an older one marks a gap. 1: *d is the next valid frame, at *pos; 0: the
 * segment ends; -1: a read error.
 */
static int skip_corrupt(struct open_ctx *c, const char *name, struct journal_reader *r, bool newest,
                        uint64_t *pos, struct journal_frame *d)
{
    uint64_t next;
    int rc = journal_frame_find(r, *pos + 1, &next, d);
    if (rc < 0) {
        return -1;
    }
    if (rc > 0) {
        log_skip(c, name, *pos, next, "corrupt record");
        c->st.corrupt++;
        c->gap = true;
        *pos = next;
        return 1;
    }
    if (newest) {
        log_warn("journal: %s/%s: truncating torn tail of %" PRIu64 " bytes at offset %" PRIu64,
                 c->j->dir, name, r->size - *pos, *pos);
        c->st.truncated_bytes += r->size - *pos;
        r->size = *pos;
    } else {
        log_skip(c, name, *pos, r->size, "corrupt end of an older segment");
        c->st.corrupt++;
        c->gap = true;
    }
    return 0;
}

/* Hands one valid, in-order frame to the replay callback. */
static int replay_frame(struct open_ctx *c, struct segment *seg, const struct journal_frame *d)
{
    struct journal_record rec = {
        .id = d->id,
        .room = d->room_len ? (const char *)d->room : "",
        .room_len = d->room_len,
        .event = d->event_len ? (const char *)d->event : NULL,
        .event_len = d->event_len,
        .data = (const char *)d->data,
        .data_len = d->data_len,
        .after_gap = c->gap,
    };
    c->gap = false;
    if (c->replay != NULL && c->replay(c->arg, &rec) != 0) {
        set_err(c->err, c->err_cap, "journal: replay stopped at record %" PRIu64, d->id);
        return -1;
    }
    c->j->last_id = d->id;
    seg->records++;
    c->st.records++;
    return 0;
}

/*
 * Replays one segment and sets *keep to the size it must be cut to: its size,
 * unless it is the newest segment and its tail is torn.
 */
static int replay_segment(struct open_ctx *c, struct segment *seg, bool newest, uint64_t *keep)
{
    char name[SEG_NAME_LEN + 1];
    journal_segment_name(name, seg->first_id);
    struct journal_reader r = {.fd = -1};
    if (segment_open(c, name, &r) != 0) {
        return -1;
    }
    int rc = 0;
    uint64_t pos = 0;
    struct stale_run run = {0};
    while (pos < r.size) {
        struct journal_frame d;
        rc = journal_frame_at(&r, pos, &d);
        if (rc == 0) {
            stale_flush(c, name, &run);
            rc = skip_corrupt(c, name, &r, newest, &pos, &d);
            if (rc == 0) {
                break;
            }
        }
        if (rc < 0) {
            set_err(c->err, c->err_cap, "journal: cannot read %s/%s: %s", c->j->dir, name,
                    strerror(errno));
            break;
        }
        if (d.id <= c->j->last_id) {
            /* Well-formed but out of order (a stray or duplicated segment):
             * replaying it would break the promise that ids increase. */
            if (run.n++ == 0) {
                run.from = pos;
                run.first_id = d.id;
                run.floor = c->j->last_id;
            }
            c->st.corrupt++;
            pos += d.frame_len;
            continue;
        }
        stale_flush(c, name, &run);
        if ((rc = replay_frame(c, seg, &d)) != 0) {
            break;
        }
        pos += d.frame_len;
    }
    free(r.buf);
    close(r.fd);
    if (rc < 0) {
        return -1;
    }
    stale_flush(c, name, &run);
    seg->bytes = r.size;
    *keep = r.size;
    return 0;
}

static int cmp_seg(const void *a, const void *b)
{
    uint64_t x = ((const struct segment *)a)->first_id, y = ((const struct segment *)b)->first_id;
    return x < y ? -1 : x > y;
}

/* Fills j->segs with the segment files in the directory, oldest first. */
static int list_segments(struct journal *j, char *err, size_t err_cap)
{
    int fd = openat(j->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        set_err(err, err_cap, "journal: cannot list %s: %s", j->dir, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    int ret = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0) {
                set_err(err, err_cap, "journal: cannot list %s: %s", j->dir, strerror(errno));
                ret = -1;
            }
            break;
        }
        uint64_t id;
        if (!journal_segment_parse(e->d_name, &id)) {
            continue;
        }
        /* Only regular files (not followed through symlinks) are segments. */
        struct stat sb;
        if (fstatat(j->dirfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode)) {
            log_warn("journal: %s/%s: not a regular file, ignored", j->dir, e->d_name);
            continue;
        }
        if (journal_seg_reserve(j) != 0) {
            set_err(err, err_cap, "journal: out of memory");
            ret = -1;
            break;
        }
        j->segs[j->nseg++] = (struct segment){.first_id = id};
    }
    closedir(d);
    if (ret == 0 && j->nseg > 1) {
        qsort(j->segs, j->nseg, sizeof j->segs[0], cmp_seg);
    }
    return ret;
}

/* mkdir -p with mode 0700 for every directory it creates. */
static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') {
            continue;
        }
        if (buf[i - 1] == '/') {
            continue; /* repeated slash */
        }
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
            /* e.g. EACCES or EROFS on a parent that exists already: only an
             * error if it is not there as a directory. */
            int e = errno;
            struct stat sb;
            if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
                errno = e;
                return -1;
            }
        }
        buf[i] = saved;
    }
    return 0;
}

struct journal *journal_open(const struct journal_options *opts, journal_replay_fn *replay,
                             void *arg, struct journal_stats *stats, char *err, size_t err_cap)
{
    if (opts == NULL || opts->dir == NULL || opts->dir[0] == '\0') {
        set_err(err, err_cap, "journal: no directory given");
        return NULL;
    }
    struct journal *j = calloc(1, sizeof *j);
    if (j == NULL || (j->dir = strdup(opts->dir)) == NULL) {
        set_err(err, err_cap, "journal: out of memory");
        free(j);
        return NULL;
    }
    j->fd = -1;
    j->dirfd = -1;
    j->failed_from = UINT64_MAX;
    j->segment_bytes = opts->segment_bytes;
    j->retain_records = opts->retain_records;
    j->retain_bytes = opts->retain_bytes;
    j->keep = opts->keep;
    j->keep_arg = opts->keep_arg;

    if (mkdir_p(opts->dir) != 0) {
        set_err(err, err_cap, "journal: cannot create %s: %s", opts->dir, strerror(errno));
        goto fail;
    }
    j->dirfd = open(opts->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        set_err(err, err_cap, "journal: cannot open %s: %s", opts->dir, strerror(errno));
        goto fail;
    }
    /* Two writers appending to the same segment would interleave records;
     * the lock goes away with the process, so a crash never leaves it. */
    if (flock(j->dirfd, LOCK_EX | LOCK_NB) != 0) {
        set_err(err, err_cap, "journal: %s: %s", opts->dir,
                errno == EWOULDBLOCK ? "in use by another process" : strerror(errno));
        goto fail;
    }
    if (opts->sync_rotation_off_loop && (j->syncer = syncer_new(j->dirfd)) == NULL) {
        set_err(err, err_cap, "journal: cannot start a thread: %s", strerror(errno));
        goto fail;
    }
    /* A compaction that a crash interrupted: its old files are intact. */
    unlinkat(j->dirfd, COMPACT_TMP_NAME, 0);
    if (list_segments(j, err, err_cap) != 0) {
        goto fail;
    }

    /* Open the newest segment for appending before replaying anything, so
     * a journal that cannot be written fails before the caller sees records. */
    char name[SEG_NAME_LEN + 1];
    if (j->nseg > 0) {
        journal_segment_name(name, j->segs[j->nseg - 1].first_id);
        j->fd = openat(j->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
        if (j->fd < 0) {
            set_err(err, err_cap, "journal: cannot open %s/%s: %s", opts->dir, name,
                    strerror(errno));
            goto fail;
        }
    }

    struct open_ctx c = {.j = j, .replay = replay, .arg = arg, .err = err, .err_cap = err_cap};
    uint64_t keep = 0;
    for (size_t i = 0; i < j->nseg; i++) {
        if (replay_segment(&c, &j->segs[i], i + 1 == j->nseg, &keep) != 0) {
            goto fail;
        }
    }
    if (c.st.truncated_bytes > 0) {
        /* Make the cut durable before anything is appended after it. */
        if (ftruncate(j->fd, (off_t)keep) != 0 || fsync(j->fd) != 0) {
            set_err(err, err_cap, "journal: cannot truncate %s/%s: %s", opts->dir, name,
                    strerror(errno));
            goto fail;
        }
    }
    c.st.last_id = j->last_id;
    c.st.segments = j->nseg;
    c.st.trailing_gap = c.gap;
    if (j->nseg > 0) {
        j->synced_bytes = keep;
        j->synced_records = j->segs[j->nseg - 1].records;
    }
    if (c.st.records > 0 || c.st.corrupt > 0 || c.st.truncated_bytes > 0) {
        log_info("journal: %s: replayed %" PRIu64 " records from %zu segments (last id %" PRIu64
                 ", %" PRIu64 " corrupt skipped, %" PRIu64 " torn bytes truncated)",
                 opts->dir, c.st.records, j->nseg, j->last_id, c.st.corrupt, c.st.truncated_bytes);
    }
    if (stats != NULL) {
        *stats = c.st;
    }
    return j;

fail:
    journal_free(j);
    return NULL;
}
