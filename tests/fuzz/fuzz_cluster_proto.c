/*
 * libFuzzer target for src/cluster_proto.c.
 *
 *   - The input as a PUB/SUB payload: decoding it reads only its bytes
 *     (an exact-size copy); an accepted one encodes back to the same bytes
 *     (one spelling per message), its views inside the input.
 *   - The input cut into a message: one the encoder takes decodes to
 *     itself.
 *   - The input as a reply from Redis: when the RESP scanner accepts it, the
 *     append, load and read parsers walk it without reading past it; a read
 *     reply hands out messages only when it is DONE or MORE, then with ids
 *     one apart, inside the reply, as many as it says.
 *   - The input as a channel name.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_proto.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_decode(const uint8_t *data, size_t size)
{
    struct cluster_msg m;
    char *p = copy_exact(data, size);
    if (cluster_proto_payload_decode(p, size, &m) == 0) {
        CHECK(m.epoch >= 1 && m.id >= m.epoch && m.id <= CLUSTER_ID_MAX);
        CHECK(m.data >= p && m.data + m.data_len == p + size);
        CHECK(cluster_proto_payload_size(&m) == size);
        char *out = malloc(size);
        CHECK(out != NULL);
        CHECK(cluster_proto_payload_encode(out, size, &m) == size);
        CHECK(memcmp(out, p, size) == 0);
        free(out);
    }
    free(p);
}

/* Takes the first bytes as numbers and lengths, the rest as strings. */
static void check_encode(const uint8_t *data, size_t size)
{
    if (size < 4) {
        return;
    }
    size_t elen = data[0] % 70, clen = data[1] % 70, rest = size - 4;
    if (elen + clen > rest) {
        return;
    }
    struct cluster_msg m = {
        .epoch = (uint64_t)data[2] * 0x10000000000ULL + 1,
        .id = (uint64_t)data[2] * 0x10000000000ULL + 1 + data[3],
        .event = (const char *)data + 4,
        .event_len = elen,
        .client = (const char *)data + 4 + elen,
        .client_len = clen,
        .data = (const char *)data + 4 + elen + clen,
        .data_len = rest - elen - clen,
    };
    size_t need = cluster_proto_payload_encode(NULL, 0, &m);
    if (need == 0) {
        return; /* refused */
    }
    char *out = malloc(need);
    CHECK(out != NULL);
    CHECK(cluster_proto_payload_encode(out, need, &m) == need);
    struct cluster_msg d;
    CHECK(cluster_proto_payload_decode(out, need, &d) == 0);
    CHECK(d.epoch == m.epoch && d.id == m.id && d.event_len == elen && d.client_len == clen &&
          d.data_len == m.data_len);
    CHECK(memcmp(d.event, m.event, elen) == 0 && memcmp(d.client, m.client, clen) == 0);
    CHECK(m.data_len == 0 || memcmp(d.data, m.data, m.data_len) == 0);
    free(out);
}

struct seen {
    const char *buf;
    size_t len, n;
    uint64_t last;
};

static void on_msg(const struct cluster_msg *m, void *arg)
{
    struct seen *s = arg;
    CHECK(s->n == 0 || m->id == s->last + 1);
    CHECK(m->data >= s->buf && m->data + m->data_len <= s->buf + s->len);
    CHECK(m->event_len <= SSE_MAX_EVENT_TYPE && m->client_len <= ROOM_CLIENT_MAX);
    s->last = m->id;
    s->n++;
}

static void check_reply(const uint8_t *data, size_t size)
{
    struct resp_scanner sc;
    char *buf = copy_exact(data, size);
    resp_scan_init(&sc, NULL);
    long n = resp_scan(&sc, buf, size);
    if (n > 0) {
        struct resp_reader r, start;
        struct resp_value v;
        uint64_t id, epoch;
        char sha[41];
        resp_reader_init(&start, buf, (size_t)n);
        CHECK(resp_read(&start, &v) == 0);
        r = start;
        if (cluster_proto_parse_append_reply(&v, &r, &id, &epoch) == 0)
            CHECK(epoch >= 1 && id >= epoch && id <= CLUSTER_ID_MAX);
        if (cluster_proto_parse_load_reply(&v, sha) == 0)
            CHECK(strlen(sha) == 40);
        (void)cluster_proto_is_noscript(&v);
        /* The caller holds nothing, or everything up to 4096 (the seeds' ids)
         * when a byte follows the reply. */
        uint64_t after = (size_t)n < size ? 0x1000 : 0;
        struct cluster_backfill b;
        struct seen s = {buf, (size_t)n, 0, 0};
        r = start;
        enum cluster_backfill_result res =
            cluster_proto_parse_backfill(&v, &r, 0, after, &b, on_msg, &s);
        if (res == CLUSTER_BACKFILL_DONE || res == CLUSTER_BACKFILL_MORE) {
            CHECK(b.messages == s.n);
            CHECK(s.n == 0 || (s.last == b.last && b.last <= b.top));
        } else {
            CHECK(s.n == 0);
        }
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_decode(data, size);
    check_encode(data, size);
    check_reply(data, size);
    size_t room_len;
    char *ch = copy_exact(data, size);
    const char *room = cluster_proto_channel_room(ch, size, &room_len);
    if (room) {
        CHECK(room_name_valid(room, room_len));
    }
    free(ch);
    return 0;
}
