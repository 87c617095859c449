/*
 * cluster_proto: the per-room data model in Redis and its wire formats (see
 * include/cluster_proto.h). Pure: no I/O, no allocation, no globals but the
 * script sources.
 */
#include "cluster_proto.h"

#include <stdio.h>
#include <string.h>

/*
 * The append script. KEYS: stream, meta. ARGV: time base, history, ttl,
 * channel, event, client, data.
 *
 * Ids never go through Lua arithmetic: epoch and top are read from the hash
 * as strings (HINCRBY's answer would be a Lua double, and concatenating a
 * 16-digit double prints 14 significant digits). The lengths concatenated
 * into the payload have at most 8 digits, which Lua prints exactly.
 *
 * A hash without both fields starts a new epoch and drops the stream: what
 * is left of it (the hash evicted alone, or deleted by hand) belongs to an
 * old epoch whose ids may be above the new ones, where XADD would refuse
 * them. The new epoch is the later of the caller's time base and Redis's
 * own clock (TIME, seconds and microseconds joined as strings): a node whose
 * clock is behind must not start an epoch below ids that clients of the old
 * one still hold, where their Last-Event-ID would be taken as one of the new
 * epoch's instead of a gap.
 *
 * Nothing is written before the checks that can fail are done, except the
 * top: should XADD still fail (out of memory), the id it took is skipped,
 * which a backfill reports as a gap rather than hides.
 */
static const char append_lua[] =
    "local s, m = KEYS[1], KEYS[2]\n"
    "local v = redis.call('HMGET', m, 'epoch', 'top')\n"
    "local epoch, top = v[1], v[2]\n"
    "if epoch and top then\n"
    "  redis.call('HINCRBY', m, 'top', 1)\n"
    "  top = redis.call('HGET', m, 'top')\n"
    "else\n"
    "  local t = redis.call('TIME')\n"
    "  local now = t[1] .. string.rep('0', 6 - #t[2]) .. t[2]\n"
    "  epoch = ARGV[1]\n"
    "  if #now > #epoch or (#now == #epoch and now > epoch) then epoch = now end\n"
    "  top = epoch\n"
    "  redis.call('DEL', s, m)\n"
    "  redis.call('HSET', m, 'epoch', epoch, 'top', top)\n"
    "end\n"
    "redis.call('XADD', s, 'MAXLEN', '~', ARGV[2], top .. '-0',\n"
    "           'e', ARGV[5], 'c', ARGV[6], 'd', ARGV[7])\n"
    "redis.call('PUBLISH', ARGV[4], '\\1' .. epoch .. ':' .. top .. ':' .. #ARGV[5] .. ':' ..\n"
    "           #ARGV[6] .. ':' .. #ARGV[7] .. ':' .. ARGV[5] .. ARGV[6] .. ARGV[7])\n"
    "if ARGV[3] ~= '0' then\n"
    "  redis.call('EXPIRE', s, ARGV[3])\n"
    "  redis.call('EXPIRE', m, ARGV[3])\n"
    "end\n"
    "return {top, epoch}\n";

/* The read script. KEYS: stream, meta. ARGV: XRANGE start, count. A missing
 * hash answers false for each field, which Redis sends as null. */
static const char read_lua[] =
    "local v = redis.call('HMGET', KEYS[2], 'epoch', 'top')\n"
    "return {v[1], v[2], redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])}\n";

const char *cluster_proto_script(enum cluster_script which)
{
    return which == CLUSTER_SCRIPT_APPEND ? append_lua : read_lua;
}

/* ------------------------------------------------------------ names */

size_t cluster_proto_key(char *out, enum cluster_key kind, const char *room, size_t room_len)
{
    static const char *const suffix[] = {"}:s", "}:m", "}"};
    if (!room_name_valid(room, room_len)) {
        return 0;
    }
    return (size_t)snprintf(out, CLUSTER_KEY_MAX + 1, "sse:{%.*s%s", (int)room_len, room,
                            suffix[kind]);
}

const char *cluster_proto_channel_room(const char *channel, size_t len, size_t *room_len)
{
    if (len < 7 || memcmp(channel, "sse:{", 5) != 0 || channel[len - 1] != '}' ||
        !room_name_valid(channel + 5, len - 6)) {
        return NULL;
    }
    *room_len = len - 6;
    return channel + 5;
}

/* ------------------------------------------------------------ numbers */

/* Decimal digits of v (v >= 0) written backwards from end; returns the count. */
static size_t put_dec(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    return n;
}

/*
 * Parses p[0..len) as a whole decimal number in 0..max: digits only, no
 * leading zero (so each value has one spelling). 0, or -1.
 */
static int parse_dec(const char *p, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20 || (p[0] == '0' && len > 1)) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        /* max <= 2^53, so v * 10 + 9 cannot wrap while v <= max. */
        v = v * 10 + (uint64_t)(p[i] - '0');
        if (v > max) {
            return -1;
        }
    }
    *out = v;
    return 0;
}

/* Reads a number ended by ':' from p[*at..len), advancing *at past the ':'. */
static int read_field(const char *p, size_t len, size_t *at, uint64_t max, uint64_t *out)
{
    const char *colon = memchr(p + *at, ':', len - *at);
    if (!colon || parse_dec(p + *at, (size_t)(colon - (p + *at)), max, out) < 0) {
        return -1;
    }
    *at = (size_t)(colon - p) + 1;
    return 0;
}

/* ------------------------------------------------------------ payload */

static bool event_ok(const char *e, size_t len)
{
    return len == 0 || sse_event_type_valid(e, len);
}

static bool client_ok(const char *c, size_t len)
{
    return len == 0 || (len <= ROOM_CLIENT_MAX && room_name_valid(c, len));
}

static bool msg_ok(const struct cluster_msg *m)
{
    return m->epoch >= 1 && m->epoch <= CLUSTER_ID_MAX && m->id >= m->epoch &&
           m->id <= CLUSTER_ID_MAX && m->data_len <= CLUSTER_DATA_MAX &&
           event_ok(m->event, m->event_len) && client_ok(m->client, m->client_len);
}

size_t cluster_proto_payload_size(const struct cluster_msg *m)
{
    char tmp[24];
    return 1 + put_dec(tmp, m->epoch) + 1 + put_dec(tmp, m->id) + 1 + put_dec(tmp, m->event_len) +
           1 + put_dec(tmp, m->client_len) + 1 + put_dec(tmp, m->data_len) + 1 + m->event_len +
           m->client_len + m->data_len;
}

static size_t put_bytes(char *out, size_t at, const char *s, size_t n)
{
    if (n > 0) {
        memcpy(out + at, s, n);
    }
    return at + n;
}

size_t cluster_proto_payload_encode(char *out, size_t cap, const struct cluster_msg *m)
{
    if (!msg_ok(m)) {
        return 0;
    }
    size_t need = cluster_proto_payload_size(m);
    if (need > cap) {
        return need;
    }
    const uint64_t nums[5] = {m->epoch, m->id, m->event_len, m->client_len, m->data_len};
    size_t at = 0;
    out[at++] = CLUSTER_PAYLOAD_V1;
    for (int i = 0; i < 5; i++) {
        at += put_dec(out + at, nums[i]);
        out[at++] = ':';
    }
    at = put_bytes(out, at, m->event, m->event_len);
    at = put_bytes(out, at, m->client, m->client_len);
    put_bytes(out, at, m->data, m->data_len);
    return need;
}

int cluster_proto_payload_decode(const char *p, size_t len, struct cluster_msg *m)
{
    struct cluster_msg d;
    uint64_t elen, clen, dlen;
    size_t at = 1;
    if (len < 1 || (unsigned char)p[0] != CLUSTER_PAYLOAD_V1 ||
        read_field(p, len, &at, CLUSTER_ID_MAX, &d.epoch) < 0 ||
        read_field(p, len, &at, CLUSTER_ID_MAX, &d.id) < 0 ||
        read_field(p, len, &at, SSE_MAX_EVENT_TYPE, &elen) < 0 ||
        read_field(p, len, &at, ROOM_CLIENT_MAX, &clen) < 0 ||
        read_field(p, len, &at, CLUSTER_DATA_MAX, &dlen) < 0 || len - at != elen + clen + dlen) {
        return -1;
    }
    d.event = p + at;
    d.event_len = (size_t)elen;
    d.client = d.event + elen;
    d.client_len = (size_t)clen;
    d.data = d.client + clen;
    d.data_len = (size_t)dlen;
    if (!msg_ok(&d)) {
        return -1;
    }
    *m = d;
    return 0;
}

/* ------------------------------------------------------------ scripts */

static void arg(struct cluster_args *a, const char *s, size_t len)
{
    a->argv[a->argc] = s;
    a->lens[a->argc++] = len;
}

static void arg_num(struct cluster_args *a, int slot, uint64_t v)
{
    arg(a, a->num[slot], put_dec(a->num[slot], v));
}

/* EVALSHA sha 2 stream meta, or EVAL <source> 2 stream meta. */
static int script_head(struct cluster_args *a, enum cluster_script which, const char *sha,
                       const char *room, size_t room_len)
{
    a->argc = 0;
    size_t slen = cluster_proto_key(a->stream, CLUSTER_KEY_STREAM, room, room_len);
    size_t mlen = cluster_proto_key(a->meta, CLUSTER_KEY_META, room, room_len);
    if (slen == 0 || mlen == 0) {
        return -1;
    }
    if (sha) {
        arg(a, "EVALSHA", 7);
        arg(a, sha, strlen(sha));
    } else {
        const char *src = cluster_proto_script(which);
        arg(a, "EVAL", 4);
        arg(a, src, strlen(src));
    }
    arg(a, "2", 1);
    arg(a, a->stream, slen);
    arg(a, a->meta, mlen);
    return 0;
}

void cluster_proto_load_args(struct cluster_args *a, enum cluster_script which)
{
    const char *src = cluster_proto_script(which);
    a->argc = 0;
    arg(a, "SCRIPT", 6);
    arg(a, "LOAD", 4);
    arg(a, src, strlen(src));
}

int cluster_proto_parse_load_reply(const struct resp_value *v, char sha[41])
{
    if (!v || v->type != RESP_BULK || v->null || v->len != 40) {
        return -1;
    }
    for (size_t i = 0; i < 40; i++) {
        char c = v->str[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return -1;
        }
    }
    memcpy(sha, v->str, 40);
    sha[40] = '\0';
    return 0;
}

bool cluster_proto_is_noscript(const struct resp_value *v)
{
    return v && v->type == RESP_ERR && v->len >= 8 && memcmp(v->str, "NOSCRIPT", 8) == 0;
}

int cluster_proto_append_args(struct cluster_args *a, const char *sha,
                              const struct cluster_append *m)
{
    if (m->time_base < 1 || m->time_base > CLUSTER_ID_MAX || m->history < 1 ||
        m->data_len > CLUSTER_DATA_MAX || !event_ok(m->event, m->event_len) ||
        !client_ok(m->client, m->client_len) ||
        script_head(a, CLUSTER_SCRIPT_APPEND, sha, m->room, m->room_len) < 0) {
        a->argc = 0;
        return -1;
    }
    arg_num(a, 0, m->time_base);
    arg_num(a, 1, m->history);
    arg_num(a, 2, m->ttl_s);
    arg(a, a->channel, cluster_proto_key(a->channel, CLUSTER_KEY_CHANNEL, m->room, m->room_len));
    /* Empty strings stand for "none"; a NULL pointer with length 0 is fine
     * for redis_command, but give it bytes anyway. */
    arg(a, m->event_len ? m->event : "", m->event_len);
    arg(a, m->client_len ? m->client : "", m->client_len);
    arg(a, m->data_len ? m->data : "", m->data_len);
    return 0;
}

/* A number in a reply: a bulk string (what the scripts return) or an
 * integer, in 1..CLUSTER_ID_MAX. */
static int reply_id(const struct resp_value *v, uint64_t *out)
{
    if (v->type == RESP_INTEGER) {
        if (v->integer < 1 || (uint64_t)v->integer > CLUSTER_ID_MAX) {
            return -1;
        }
        *out = (uint64_t)v->integer;
        return 0;
    }
    if (v->type != RESP_BULK || v->null || parse_dec(v->str, v->len, CLUSTER_ID_MAX, out) < 0) {
        return -1;
    }
    return *out >= 1 ? 0 : -1;
}

int cluster_proto_parse_append_reply(const struct resp_value *v, struct resp_reader *rest,
                                     uint64_t *id, uint64_t *epoch)
{
    struct resp_value t, e;
    uint64_t top, ep;
    if (!v || v->type != RESP_ARRAY || v->null || v->count != 2 || resp_read(rest, &t) < 0 ||
        resp_read(rest, &e) < 0 || reply_id(&t, &top) < 0 || reply_id(&e, &ep) < 0 || top < ep) {
        return -1;
    }
    *id = top;
    *epoch = ep;
    return 0;
}

/* ------------------------------------------------------------ backfill */

int cluster_proto_backfill_args(struct cluster_args *a, const char *sha, const char *room,
                                size_t room_len, uint64_t after, uint64_t count)
{
    if (count < 1 || after > CLUSTER_ID_MAX ||
        script_head(a, CLUSTER_SCRIPT_READ, sha, room, room_len) < 0) {
        a->argc = 0;
        return -1;
    }
    /* "(" makes the start exclusive (Redis 6.2 and later). */
    if (after == 0) {
        arg(a, "-", 1);
    } else {
        char *p = a->num[0];
        p[0] = '(';
        size_t n = 1 + put_dec(p + 1, after);
        p[n++] = '-';
        p[n++] = '0';
        arg(a, p, n);
    }
    arg_num(a, 1, count);
    return 0;
}

/* The next element, which must be a bulk string equal to name. */
static bool read_name(struct resp_reader *r, const char *name)
{
    struct resp_value v;
    return resp_read(r, &v) == 0 && v.type == RESP_BULK && resp_str_eq(&v, name);
}

static int read_bulk(struct resp_reader *r, const char **s, size_t *len)
{
    struct resp_value v;
    if (resp_read(r, &v) < 0 || v.type != RESP_BULK || v.null) {
        return -1;
    }
    *s = v.str;
    *len = v.len;
    return 0;
}

/* One stream entry: ["<id>-0", ["e", event, "c", client, "d", data]]. */
static int read_entry(struct resp_reader *r, struct cluster_msg *m)
{
    struct resp_value v;
    const char *id;
    size_t id_len;
    if (resp_read(r, &v) < 0 || v.type != RESP_ARRAY || v.null || v.count != 2 ||
        read_bulk(r, &id, &id_len) < 0 || id_len < 3 || memcmp(id + id_len - 2, "-0", 2) != 0 ||
        parse_dec(id, id_len - 2, CLUSTER_ID_MAX, &m->id) < 0 || m->id < 1 ||
        resp_read(r, &v) < 0 || v.type != RESP_ARRAY || v.null || v.count != 6 ||
        !read_name(r, "e") || read_bulk(r, &m->event, &m->event_len) < 0 || !read_name(r, "c") ||
        read_bulk(r, &m->client, &m->client_len) < 0 || !read_name(r, "d") ||
        read_bulk(r, &m->data, &m->data_len) < 0) {
        return -1;
    }
    return event_ok(m->event, m->event_len) && client_ok(m->client, m->client_len) ? 0 : -1;
}

/* The hash's field: null (no hash) gives 0. */
static int read_meta(struct resp_reader *r, uint64_t *out)
{
    struct resp_value v;
    if (resp_read(r, &v) < 0) {
        return -1;
    }
    if (v.type == RESP_BULK && v.null) {
        *out = 0;
        return 0;
    }
    return reply_id(&v, out);
}

struct walk {
    size_t n;
    uint64_t first, last;
    bool contiguous;
};

/* Reads n entries; fn (when not NULL) gets each. -1 on a malformed one. */
static int walk_entries(struct resp_reader *r, size_t n, uint64_t epoch, struct walk *w,
                        cluster_msg_fn *fn, void *arg)
{
    w->n = n;
    w->contiguous = true;
    for (size_t i = 0; i < n; i++) {
        struct cluster_msg m = {.epoch = epoch};
        if (read_entry(r, &m) < 0) {
            return -1;
        }
        if (i == 0) {
            w->first = m.id;
        } else if (m.id != w->last + 1) {
            w->contiguous = false;
        }
        w->last = m.id;
        if (fn) {
            fn(&m, arg);
        }
    }
    return 0;
}

/* The verdict on a well-formed reply, before anything is handed out. */
static enum cluster_backfill_result judge(const struct cluster_backfill *b, const struct walk *w,
                                          uint64_t epoch, uint64_t after)
{
    if (b->epoch == 0) {
        /* No hash: only a caller holding nothing loses nothing. Entries
         * without a hash are an old epoch's, which nobody can place. */
        return after == 0 && w->n == 0 ? CLUSTER_BACKFILL_DONE : CLUSTER_BACKFILL_GAP;
    }
    if (w->n > 0 && (w->first < b->epoch || w->last > b->top)) {
        return CLUSTER_BACKFILL_ERROR; /* entries the hash cannot have made */
    }
    if ((epoch != 0 && epoch != b->epoch) || !w->contiguous) {
        return CLUSTER_BACKFILL_GAP;
    }
    if (after == 0) {
        return w->n == 0 || w->last == b->top ? CLUSTER_BACKFILL_DONE : CLUSTER_BACKFILL_MORE;
    }
    if (after < b->epoch || after > b->top) {
        return CLUSTER_BACKFILL_GAP;
    }
    if (after == b->top) {
        return w->n == 0 ? CLUSTER_BACKFILL_DONE : CLUSTER_BACKFILL_ERROR;
    }
    if (w->n == 0 || w->first != after + 1) {
        return CLUSTER_BACKFILL_GAP; /* trimmed, or the stream is gone */
    }
    return w->last == b->top ? CLUSTER_BACKFILL_DONE : CLUSTER_BACKFILL_MORE;
}

enum cluster_backfill_result cluster_proto_parse_backfill(const struct resp_value *v,
                                                          struct resp_reader *rest, uint64_t epoch,
                                                          uint64_t after,
                                                          struct cluster_backfill *out,
                                                          cluster_msg_fn *fn, void *arg)
{
    struct cluster_backfill b = {0};
    struct resp_value list;
    struct walk w = {0};
    if (!v || v->type != RESP_ARRAY || v->null || v->count != 3 || read_meta(rest, &b.epoch) < 0 ||
        read_meta(rest, &b.top) < 0 || (b.epoch == 0) != (b.top == 0) || b.top < b.epoch ||
        resp_read(rest, &list) < 0 || list.type != RESP_ARRAY || list.null) {
        return CLUSTER_BACKFILL_ERROR;
    }
    /* A copy of the reader walks again to hand the messages out. */
    struct resp_reader again = *rest;
    if (walk_entries(rest, list.count, b.epoch, &w, NULL, NULL) < 0) {
        return CLUSTER_BACKFILL_ERROR;
    }
    enum cluster_backfill_result res = judge(&b, &w, epoch, after);
    b.last = after;
    if (res == CLUSTER_BACKFILL_DONE || res == CLUSTER_BACKFILL_MORE) {
        walk_entries(&again, list.count, b.epoch, &w, fn, arg);
        b.messages = w.n;
        b.last = w.n > 0 ? w.last : after;
    }
    if (out) {
        *out = b;
    }
    return res;
}
