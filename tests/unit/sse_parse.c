/*
 * sse_parse: reference text/event-stream parser. See sse_parse.h for the
 * rules it implements and where it deliberately differs from a browser.
 *
 * Structure: ssep_feed splits the byte stream into lines (handling the BOM
 * and CR/LF/CRLF, including a CRLF split across chunks), and process_line
 * applies the field rules to each complete line. Lines are accumulated in a
 * growable buffer so a line can arrive in any number of pieces.
 */
#include "sse_parse.h"

#include <stdlib.h>
#include <string.h>

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};

/* ---------------------------------------------------------------- buffers */

/* Makes room for `extra` more bytes plus a NUL terminator. */
static int buf_reserve(struct ssep_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->ptr, cap);
    if (p == NULL)
        return -1;
    b->ptr = p;
    b->cap = cap;
    return 0;
}

static int buf_append(struct ssep_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return -1;
    if (n > 0)
        memcpy(b->ptr + b->len, s, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return 0;
}

static int buf_set(struct ssep_buf *b, const char *s, size_t n)
{
    b->len = 0;
    return buf_append(b, s, n);
}

/* Empties b without freeing it (so a reset never fails). */
static void buf_clear(struct ssep_buf *b)
{
    b->len = 0;
    if (b->ptr != NULL)
        b->ptr[0] = '\0';
}

static void buf_free(struct ssep_buf *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

/* A NUL-terminated view of b, "" when it was never allocated. */
static const char *buf_str(const struct ssep_buf *b)
{
    return b->ptr != NULL ? b->ptr : "";
}

/* ---------------------------------------------------------------- fields */

static int field_is(const char *name, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

/* The "retry" rule: only ASCII digits (at least one), else ignored. */
static void set_retry(struct ssep_parser *p, const char *v, size_t len)
{
    uint64_t ms = 0;

    if (len == 0)
        return;
    for (size_t i = 0; i < len; i++)
        if (v[i] < '0' || v[i] > '9')
            return;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(v[i] - '0');
        ms = ms > (UINT64_MAX - d) / 10 ? UINT64_MAX : ms * 10 + d;
    }
    p->retry_ms = ms;
    p->has_retry = 1;
}

/* The blank-line rule. */
static int dispatch(struct ssep_parser *p)
{
    /* The last event ID string is updated even when nothing is dispatched. */
    if (buf_set(&p->last_id, p->id_buf.ptr, p->id_buf.len) != 0)
        return -1;
    if (p->data.len == 0) {
        buf_clear(&p->type);
        return 0;
    }
    if (p->data.ptr[p->data.len - 1] == '\n')
        p->data.ptr[--p->data.len] = '\0';

    struct ssep_event ev = {
        .type = p->type.len > 0 ? p->type.ptr : "message",
        .type_len = p->type.len > 0 ? p->type.len : strlen("message"),
        .data = p->data.ptr,
        .data_len = p->data.len,
        .id = buf_str(&p->last_id),
        .id_len = p->last_id.len,
    };
    p->events++;
    if (p->on_event != NULL)
        p->on_event(p->ctx, &ev);
    buf_clear(&p->data);
    buf_clear(&p->type);
    return 0;
}

/* Applies one complete line (without its line break). */
static int process_line(struct ssep_parser *p, const char *line, size_t len)
{
    if (len == 0)
        return dispatch(p);

    if (line[0] == ':') {
        p->comments++;
        if (p->on_comment != NULL) {
            /* line lives in p->line, which is NUL-terminated. */
            p->on_comment(p->comment_ctx, line + 1, len - 1);
        }
        return 0;
    }

    const char *colon = memchr(line, ':', len);
    const char *name = line;
    size_t name_len = len;
    const char *value = line + len; /* empty */
    size_t value_len = 0;
    if (colon != NULL) {
        name_len = (size_t)(colon - line);
        value = colon + 1;
        value_len = len - name_len - 1;
        if (value_len > 0 && value[0] == ' ') {
            value++;
            value_len--;
        }
    }

    if (field_is(name, name_len, "event"))
        return buf_set(&p->type, value, value_len);
    if (field_is(name, name_len, "data")) {
        if (buf_append(&p->data, value, value_len) != 0)
            return -1;
        return buf_append(&p->data, "\n", 1);
    }
    if (field_is(name, name_len, "id")) {
        if (memchr(value, '\0', value_len) == NULL)
            return buf_set(&p->id_buf, value, value_len);
        return 0;
    }
    if (field_is(name, name_len, "retry"))
        set_retry(p, value, value_len);
    return 0; /* any other field is ignored */
}

/* ---------------------------------------------------------------- stream */

/* Splits bytes into lines; the BOM has already been dealt with. */
static int feed_lines(struct ssep_parser *p, const char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        if (p->after_cr) {
            p->after_cr = 0;
            if (s[i] == '\n') {
                i++; /* second half of a CRLF whose CR ended the last line */
                continue;
            }
        }
        size_t start = i;
        while (i < len && s[i] != '\r' && s[i] != '\n')
            i++;
        if (buf_append(&p->line, s + start, i - start) != 0)
            return -1;
        if (i == len)
            break; /* line continues in the next chunk */
        p->after_cr = s[i] == '\r';
        i++;
        /* Process from the buffer so every line is NUL-terminated. */
        int rc = process_line(p, buf_str(&p->line), p->line.len);
        buf_clear(&p->line);
        if (rc != 0)
            return -1;
    }
    return 0;
}

void ssep_init(struct ssep_parser *p, ssep_event_fn on_event, void *ctx)
{
    memset(p, 0, sizeof(*p));
    p->on_event = on_event;
    p->ctx = ctx;
}

int ssep_feed(struct ssep_parser *p, const void *buf, size_t len)
{
    const char *s = buf;
    size_t i = 0;

    if (p->failed)
        return -1;
    if (len == 0)
        return 0; /* also keeps NULL + 0 arithmetic out of the way */

    /*
     * Match a BOM at the start of the stream one byte at a time, so it is
     * recognised however the first bytes are chunked. On a mismatch the bytes
     * held back so far were ordinary content and are replayed.
     */
    while (!p->bom_done && i < len) {
        if ((unsigned char)s[i] == BOM[p->bom_matched]) {
            i++;
            if (++p->bom_matched == 3)
                p->bom_done = 1;
            continue;
        }
        p->bom_done = 1;
        if (feed_lines(p, (const char *)BOM, (size_t)p->bom_matched) != 0)
            goto fail;
    }

    if (feed_lines(p, s + i, len - i) != 0)
        goto fail;
    return 0;
fail:
    p->failed = 1;
    return -1;
}

const char *ssep_last_event_id(const struct ssep_parser *p, size_t *len)
{
    if (len != NULL)
        *len = p->last_id.len;
    return buf_str(&p->last_id);
}

void ssep_free(struct ssep_parser *p)
{
    buf_free(&p->line);
    buf_free(&p->data);
    buf_free(&p->type);
    buf_free(&p->id_buf);
    buf_free(&p->last_id);
}

/* ---------------------------------------------------------------- lists */

void ssep_list_init(struct ssep_list *l)
{
    memset(l, 0, sizeof(*l));
}

void ssep_list_add(void *ctx, const struct ssep_event *ev)
{
    struct ssep_list *l = ctx;

    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct ssep_event *v = realloc(l->ev, cap * sizeof(*v));
        if (v == NULL) {
            l->failed = 1;
            return;
        }
        l->ev = v;
        l->cap = cap;
    }

    /* One block per event: type NUL data NUL id NUL. */
    size_t total = ev->type_len + ev->data_len + ev->id_len + 3;
    char *blk = malloc(total);
    if (blk == NULL) {
        l->failed = 1;
        return;
    }
    char *t = blk;
    char *d = t + ev->type_len + 1;
    char *id = d + ev->data_len + 1;
    memcpy(t, ev->type, ev->type_len);
    t[ev->type_len] = '\0';
    memcpy(d, ev->data, ev->data_len);
    d[ev->data_len] = '\0';
    memcpy(id, ev->id, ev->id_len);
    id[ev->id_len] = '\0';

    l->ev[l->count++] = (struct ssep_event){
        .type = t,
        .type_len = ev->type_len,
        .data = d,
        .data_len = ev->data_len,
        .id = id,
        .id_len = ev->id_len,
    };
}

void ssep_list_free(struct ssep_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free((void *)l->ev[i].type); /* the start of the event's block */
    free(l->ev);
    ssep_list_init(l);
}

int ssep_parse_all(const void *buf, size_t len, struct ssep_list *out)
{
    struct ssep_parser p;

    ssep_init(&p, ssep_list_add, out);
    int rc = ssep_feed(&p, buf, len);
    ssep_free(&p);
    return rc != 0 || out->failed ? -1 : 0;
}
