/*
 * stats: the server's figures, rendered for GET /stats (JSON, for people and
 * the chat page) and GET /metrics (Prometheus text exposition format 0.0.4).
 */
#ifndef SSE_STATS_H
#define SSE_STATS_H

#include <stddef.h>

struct worker;
struct buf;

/* Rooms listed by name in /metrics and /stats; the rest are summed as
 * "other", so a client creating rooms cannot blow up metric cardinality. */
#define STATS_TOP_ROOMS 10

/* Appends the JSON document. `room` (len 0: none) adds that room's figures
 * and makes "clients" count its subscribers only. 0, or -1 on ENOMEM. */
int stats_render_json(struct worker *wk, const char *room, size_t room_len, struct buf *out);

/* GET /stats?stream=1 sends one snapshot this often. */
#define STATS_STREAM_MS 1000

/* Appends one event of the stats stream: "data: " and the JSON document on
 * one line (plus "rates_window_seconds" and "busy_rooms", the rooms with
 * the most messages since the previous window, with messages_per_second),
 * then the blank line. Renews the rate window when it is a second old.
 * 0, or -1 on ENOMEM. */
int stats_render_event(struct worker *wk, struct buf *out);

/* Appends the Prometheus exposition. 0, or -1 on ENOMEM. */
int stats_render_prometheus(struct worker *wk, struct buf *out);

#endif
