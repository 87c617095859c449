/*
 * buf: a growable byte buffer with a read offset, used for a connection's
 * pending output and input. The buffer owns its storage; buf_free releases
 * it and leaves an empty, reusable buffer.
 */
#ifndef SSE_BUF_H
#define SSE_BUF_H

#include <stddef.h>

struct buf {
    char *data;
    size_t len; /* bytes stored, from data[0] */
    size_t off; /* bytes already consumed from the front */
    size_t cap;
};

/* Ensures room for `extra` more bytes. 0, or -1 when out of memory. */
int buf_reserve(struct buf *b, size_t extra) __attribute__((warn_unused_result));
int buf_append(struct buf *b, const void *p, size_t n) __attribute__((warn_unused_result));
int buf_append_str(struct buf *b, const char *s) __attribute__((warn_unused_result));
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)))
__attribute__((warn_unused_result));

/* Bytes not yet consumed. */
static inline size_t buf_pending(const struct buf *b)
{
    return b->len - b->off;
}

static inline const char *buf_head(const struct buf *b)
{
    return b->data + b->off;
}

/* Marks n bytes consumed; when everything is consumed the buffer rewinds. */
void buf_consume(struct buf *b, size_t n);

/* Releases the storage. */
void buf_free(struct buf *b);

#endif
