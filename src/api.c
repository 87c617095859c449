#include "api.h"

#include "admin.h"
#include "auth.h"
#include "conn.h"
#include "dashboard.h"
#include "http.h"
#include "journal.h"
#include "json.h"
#include "number.h"
#include "log.h"
#include "room.h"
#include "server.h"
#include "sse.h"
#include "response.h"
#include "static_files.h"
#include "stats.h"
#include "worker.h"
#include "buf.h"
#include "cluster.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* What a handler gets: the parsed head and the decoded body. */
struct api_req {
    const struct http_request *http;
    const char *body;
    size_t body_len;
};

/* A query parameter: absent, present (value in buf), or malformed/too long. */
enum param { PARAM_ABSENT, PARAM_OK, PARAM_BAD };

static enum param query_param(const struct http_request *req, const char *name, char *out,
                              size_t cap, size_t *len)
{
    long n = http_query_param(req->query, name, out, cap);
    if (n == -1) {
        return PARAM_ABSENT;
    }
    if (n < 0) {
        return PARAM_BAD;
    }
    *len = (size_t)n;
    return PARAM_OK;
}

/* Answers with a literal body (its length is computed, never counted by hand). */
static void reply_text(struct conn *c, int status, const char *type, const char *body,
                       const char *extra_headers)
{
    conn_reply(c, status, type, body, strlen(body), extra_headers);
}

/* The room a request names: ?room=, else (for a body) a top-level "room"
 * string member, else the default room. A room that is named must be valid:
 * an empty or malformed name is refused, never taken for the default. */
static int resolve_room_name(struct conn *c, const struct http_request *req, const char *body,
                             size_t body_len, char *name, size_t *len)
{
    bool named = true;
    switch (query_param(req, "room", name, ROOM_NAME_MAX + 1, len)) {
    case PARAM_BAD:
        named = false;
        *len = 0;
        break;
    case PARAM_OK:
        break;
    case PARAM_ABSENT: {
        long n =
            body ? json_object_get_string(body, body_len, "room", name, ROOM_NAME_MAX + 1) : -1;
        if (n == JSON_LONE_SURROGATE) {
            /* Valid JSON, but no room name: refused, never altered. */
            conn_reply_error(c, 400,
                             "invalid room name: a lone surrogate escape has no UTF-8 form");
            return -1;
        }
        if (n == -1) {
            memcpy(name, ROOM_DEFAULT, sizeof ROOM_DEFAULT);
            n = sizeof ROOM_DEFAULT - 1;
        } else if (n < 0) {
            named = false;
            n = 0;
        }
        *len = (size_t)n;
        break;
    }
    }
    if (!named || !room_name_valid(name, *len)) {
        conn_reply_error(c, 400, "invalid room name: 1-64 characters of A-Z a-z 0-9 . _ -");
        return -1;
    }
    return 0;
}

/* An optional query parameter that must pass `valid` when present. Returns
 * 0 (absent, with *len 0, or valid), or -1 after answering 400 with `msg`. */
static int optional_param(struct conn *c, const struct http_request *req, const char *name,
                          char *out, size_t cap, size_t *len, bool (*valid)(const char *, size_t),
                          const char *msg)
{
    switch (query_param(req, name, out, cap, len)) {
    case PARAM_ABSENT:
        *len = 0;
        return 0;
    case PARAM_OK:
        if (valid(out, *len)) {
            return 0;
        }
        break;
    case PARAM_BAD:
        break;
    }
    conn_reply_error(c, 400, msg);
    return -1;
}

static int resolve_client(struct conn *c, const struct http_request *req, char *client, size_t *len)
{
    return optional_param(c, req, "client", client, ROOM_CLIENT_MAX + 1, len, room_name_valid,
                          "invalid client id: 1-64 characters of A-Z a-z 0-9 . _ -");
}

static bool event_type_valid(const char *s, size_t len)
{
    return sse_event_type_valid(s, len) != 0;
}

/* Joins the room (hub lock held), replaying what the request asks for. */
static void subscribe(struct worker *wk, struct conn *c, const struct http_request *req,
                      const char *name, size_t name_len, const char *client, size_t client_len)
{
    char num[32];
    size_t n;
    struct room *room = hub_room(wk->srv->hub, name, name_len);
    if (!room) {
        conn_reply_error(c, 503, "too many rooms");
        return;
    }

    /* The header wins over the query: a reconnecting EventSource sends the
     * header but keeps its original URL, whose lastEventId is stale. */
    const struct http_str *hdr = http_request_header(req, "last-event-id");
    struct room_want want = {0};
    if (hdr) {
        want.resume = true;
        if (!number_parse_u64(hdr->ptr, hdr->len, &want.last_id)) {
            want.last_id = UINT64_MAX; /* unknown: answered with a reset */
        }
    } else {
        enum param p = query_param(req, "lastEventId", num, sizeof num, &n);
        if (p != PARAM_ABSENT) {
            want.resume = true;
            if (p == PARAM_BAD || !number_parse_u64(num, n, &want.last_id)) {
                want.last_id = UINT64_MAX;
            }
        }
    }
    if (!want.resume) {
        enum param p = query_param(req, "history", num, sizeof num, &n);
        if (p == PARAM_BAD || (p == PARAM_OK && !number_parse_u64(num, n, &want.history))) {
            conn_reply_error(c, 400, "invalid history: a non-negative integer");
            return;
        }
    }
    if (wk->srv->cluster && !room_ready(room)) {
        /* The ring may not hold what Redis holds yet: the stream starts,
         * the start is computed once loop 0 has read the room. */
        if (conn_stream_park(c) == 0 && cluster_park(wk, c, room, &want, client, client_len) < 0) {
            conn_close(c);
        }
        return;
    }
    struct room_start start = room_start_want(room, &want);
    conn_stream_room(c, room, &start, client, client_len);
}

static void handle_messages(struct worker *wk, struct conn *c, const struct api_req *r)
{
    const struct http_request *req = r->http;
    char name[ROOM_NAME_MAX + 1], client[ROOM_CLIENT_MAX + 1];
    size_t name_len, client_len;

    if (resolve_room_name(c, req, NULL, 0, name, &name_len) < 0 ||
        resolve_client(c, req, client, &client_len) < 0) {
        return;
    }
    int64_t token_exp;
    if (auth_subscribe(wk, c, req, name, name_len, &token_exp) < 0) {
        return;
    }
    /* Under the hub lock from the room's lookup to the subscription: what
     * the start is computed from must still be there when it joins. */
    hub_lock(wk->srv->hub);
    subscribe(wk, c, req, name, name_len, client, client_len);
    hub_unlock(wk->srv->hub);
    if (token_exp) {
        conn_stream_expires(c, token_exp);
    }
}

/* With --publish-token, publishing needs "Authorization: Bearer <token>". */
static bool publish_authorized(const struct server *srv, const struct http_request *req)
{
    const char *token = srv->cfg.publish_token;
    if (!*token) {
        return true;
    }
    const char *p;
    size_t n;
    return auth_bearer(req, &p, &n) && auth_token_equal(p, n, token, strlen(token));
}

/* Logs a journal failure (rate-limited) and answers 503. */
static void journal_refuse(struct worker *wk, struct conn *c, uint64_t id)
{
    static struct log_limit limit;
    counter_add(&wk->srv->stats.journal_errors, 1);
    if (log_limit_allow(&limit, loop_now_ms(wk->loop), 5)) {
        log_error("journal: %s; answering 503", strerror(errno));
    }
    /* The id may have reached the journal before it failed: never reuse it. */
    hub_skip_id(wk->srv->hub, id);
    if (wk->srv->cfg.fsync_mode != FSYNC_BATCH) {
        /* Only this record was cut off. With --fsync batch the iteration's
         * other records may have gone too: on_hub_task answers for them. */
        (void)journal_take_failed(wk->srv->journal);
    }
    conn_reply_error(c, 503, "cannot store the message");
}

/* Appends the message the hub is about to publish to the journal (and, with
 * --fsync always, waits for the disk). On failure answers 503 and returns -1:
 * a message that is not on disk is not published. */
static int journal_record_message(struct worker *wk, struct conn *c, const char *room,
                                  size_t room_len, const char *event, size_t event_len,
                                  const char *body, size_t body_len)
{
    struct journal_record rec = {.id = hub_next_id(wk->srv->hub),
                                 .room = room,
                                 .room_len = room_len,
                                 .event = event,
                                 .event_len = event_len,
                                 .data = body,
                                 .data_len = body_len};
    int rc = journal_append(wk->srv->journal, &rec);
    if (rc == 0 && wk->srv->cfg.fsync_mode == FSYNC_ALWAYS) {
        rc = journal_sync(wk->srv->journal);
        counter_add(&wk->srv->stats.journal_syncs, 1);
    }
    if (rc < 0) {
        journal_refuse(wk, c, rec.id);
        return -1;
    }
    return 0;
}

/* Journals and publishes, under the hub lock: ids are handed out, written
 * to the journal and appended to the rings in one order, whatever loop
 * publishes. 0, or -1 after answering the error. */
static int publish_message(struct worker *wk, struct conn *c, const struct cluster_message *m,
                           struct publish_result *res)
{
    struct server *srv = wk->srv;
    struct room *room = hub_room(srv->hub, m->room, m->room_len);
    if (!room) {
        conn_reply_error(c, 503, "too many rooms");
        return -1;
    }
    if (srv->journal && journal_record_message(wk, c, m->room, m->room_len, m->event, m->event_len,
                                               m->data, m->data_len) < 0) {
        return -1;
    }
    if (room_publish(room, m->event_len ? m->event : NULL, m->event_len, m->data, m->data_len,
                     m->client, m->client_len, res) < 0) {
        bool full = errno == ENOBUFS;
        uint64_t id = hub_next_id(srv->hub);
        /* Answered with an error, so it must not come back at a restart. */
        if (srv->journal && journal_cancel_last(srv->journal, id) < 0) {
            journal_refuse(wk, c, id);
            return -1;
        }
        hub_skip_id(srv->hub, id);
        conn_reply_error(c, 503, full ? "memory full: nothing left to evict" : "out of memory");
        return -1;
    }
    counter_add(&srv->stats.published, 1);
    return 0;
}

static void handle_publish(struct worker *wk, struct conn *c, const struct api_req *r)
{
    const struct http_request *req = r->http;
    const char *body = r->body;
    size_t body_len = r->body_len;
    char name[ROOM_NAME_MAX + 1], client[ROOM_CLIENT_MAX + 1], event[SSE_MAX_EVENT_TYPE + 1];
    size_t name_len, client_len, event_len = 0;
    struct json_error jerr = {0, NULL};

    /* With token keys the room is resolved first, then authorized. */
    if (!wk->srv->keys && !publish_authorized(wk->srv, req)) {
        reply_text(c, 401, "application/json", "{\"error\":\"publishing needs a valid token\"}\n",
                   "WWW-Authenticate: Bearer realm=\"sse-server\"\r\n");
        return;
    }
    if (!json_validate(body, body_len, &jerr)) {
        char msg[128];
        snprintf(msg, sizeof msg, "invalid JSON: %s at byte %zu", jerr.msg ? jerr.msg : "error",
                 jerr.offset);
        conn_reply_error(c, 400, msg);
        return;
    }
    if (optional_param(c, req, "event", event, sizeof event, &event_len, event_type_valid,
                       "invalid event type: 1-64 characters, no control characters") < 0) {
        return;
    }
    if (resolve_room_name(c, req, body, body_len, name, &name_len) < 0 ||
        resolve_client(c, req, client, &client_len) < 0) {
        return;
    }
    if (wk->srv->keys &&
        auth_publish(wk, c, req, name, name_len,
                     *wk->srv->cfg.publish_token && publish_authorized(wk->srv, req)) < 0) {
        return;
    }
    struct cluster_message m = {name, name_len, event,  event_len,
                                body, body_len, client, client_len};
    if (wk->srv->cluster) {
        (void)cluster_publish(wk, c, &m);
        return;
    }
    struct publish_result res;
    hub_lock(wk->srv->hub);
    int rc = publish_message(wk, c, &m, &res);
    hub_unlock(wk->srv->hub);
    if (rc == 0) {
        /* Sent once the message went out to the room (and, with --fsync
         * batch, the iteration's one fdatasync covered it). */
        conn_reply_publish(c, res.id, res.recipients);
    }
}

static void handle_static(struct worker *wk, struct conn *c, const struct api_req *r)
{
    const struct http_request *req = r->http;
    /* Loaded once: a reload may swap the table meanwhile, and the response
     * must borrow from the table the file was found in. */
    struct static_files *files = atomic_load(&wk->srv->files);
    const struct static_file *f = static_files_find(files, req->path.ptr, req->path.len);
    if (!f) {
        conn_reply_error(c, 404, "not found");
        return;
    }
    const struct http_str *inm = http_request_header(req, "if-none-match");
    bool not_modified = false;
    if (inm) {
        size_t elen = strlen(f->etag);
        /* If-None-Match is a list of entity tags, or "*". */
        const char *p = inm->ptr, *end = inm->ptr + inm->len;
        while (p < end && !not_modified) {
            while (p < end && (*p == ' ' || *p == ',' || *p == '\t')) {
                p++;
            }
            const char *q = p;
            while (q < end && *q != ',') {
                q++;
            }
            const char *e = q;
            while (e > p && (e[-1] == ' ' || e[-1] == '\t')) {
                e--;
            }
            size_t tlen = (size_t)(e - p);
            if (tlen >= 2 && p[0] == 'W' && p[1] == '/') {
                p += 2;
                tlen -= 2;
            }
            not_modified = (tlen == 1 && *p == '*') || (tlen == elen && !memcmp(p, f->etag, elen));
            p = q;
        }
    }
    conn_reply_file(c, files, f, not_modified);
}

static void handle_ping(struct worker *wk, struct conn *c, const struct api_req *r)
{
    (void)wk;
    (void)r;
    conn_stream_ping(c);
}

static void handle_healthz(struct worker *wk, struct conn *c, const struct api_req *r)
{
    (void)r;
    /* Answered from the loop itself, so a 200 means the loop is running;
     * a cluster node cannot publish without Redis, so it says so. */
    if (wk->srv->cluster && !cluster_redis_up(wk->srv->cluster)) {
        reply_text(c, 503, "text/plain; charset=utf-8", "redis unavailable\n",
                   "Cache-Control: no-store\r\nRetry-After: 1\r\n");
        return;
    }
    reply_text(c, 200, "text/plain; charset=utf-8", "ok\n", "Cache-Control: no-store\r\n");
}

/* Renders into a fresh buffer and queues it as the answer. */
static void reply_rendered(struct conn *c, struct buf *b, int rc, const char *type)
{
    if (rc < 0) {
        conn_reply_error(c, 503, "out of memory");
    } else {
        conn_reply(c, 200, type, b->data, b->len, "Cache-Control: no-store\r\n");
    }
    buf_free(b);
}

/* The admin endpoints answer as admin.h says: 404 to a remote client under
 * --admin-local, 401 without the --admin-token, 403 with a wrong one. */
static bool admin_refused(struct worker *wk, struct conn *c, const struct http_request *req,
                          enum auth_source *via)
{
    switch (admin_check(&wk->srv->cfg, conn_peer_is_local(c), req, via)) {
    case ADMIN_ALLOWED:
        return false;
    case ADMIN_NOT_LOCAL:
        conn_reply_error(c, 404, "not found");
        break;
    case ADMIN_NO_TOKEN:
        reply_text(c, 401, "application/json", "{\"error\":\"this needs the admin token\"}\n",
                   "WWW-Authenticate: Bearer realm=\"sse-server admin\"\r\n");
        break;
    case ADMIN_BAD_TOKEN:
        conn_reply_error(c, 403, "wrong admin token");
        break;
    }
    return true;
}

static bool stream_flag_valid(const char *s, size_t len)
{
    return len == 1 && (*s == '0' || *s == '1');
}

static void handle_stats(struct worker *wk, struct conn *c, const struct api_req *r)
{
    char name[ROOM_NAME_MAX + 1], stream[2];
    size_t len = 0, stream_len = 0;
    if (admin_refused(wk, c, r->http, NULL) ||
        optional_param(c, r->http, "room", name, sizeof name, &len, room_name_valid,
                       "invalid room name") < 0 ||
        optional_param(c, r->http, "stream", stream, sizeof stream, &stream_len, stream_flag_valid,
                       "invalid stream: 0 or 1") < 0) {
        return;
    }
    if (stream_len && stream[0] == '1') {
        conn_stream_stats(c);
        return;
    }
    struct buf b = {0};
    reply_rendered(c, &b, stats_render_json(wk, name, len, &b), "application/json");
}

/* The page and its script and style, from the binary itself. The page gets
 * a policy that lets it load only those and its own stream. */
static void handle_dashboard(struct worker *wk, struct conn *c, const struct api_req *r)
{
    const struct http_request *req = r->http;
    const struct embedded_file *f = dashboard_find(req->path.ptr, req->path.len);
    if (!f) {
        conn_reply_error(c, 404, "not found");
        return;
    }
    if (strcmp(f->path, "/dashboard") != 0) {
        /* Code and style only, the same for everyone: nothing to guard. */
        conn_reply(c, 200, f->type, (const char *)f->data, f->len, "Cache-Control: no-cache\r\n");
        return;
    }
    enum auth_source via;
    if (admin_refused(wk, c, req, &via)) {
        return;
    }
    char extra[512 + sizeof wk->srv->cfg.admin_token];
    int n = snprintf(extra, sizeof extra,
                     "Cache-Control: no-store\r\nContent-Security-Policy: %s\r\n"
                     "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
                     DASHBOARD_CSP);
    if (via == AUTH_QUERY && admin_token_cookie_safe(wk->srv->cfg.admin_token)) {
        /* A token given in the address also comes back as a cookie, so the
         * page can drop it from the address bar and still reload. */
        snprintf(extra + n, sizeof extra - (size_t)n,
                 "Set-Cookie: " ADMIN_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict\r\n",
                 wk->srv->cfg.admin_token);
    }
    conn_reply(c, 200, f->type, (const char *)f->data, f->len, extra);
}

static void handle_metrics(struct worker *wk, struct conn *c, const struct api_req *r)
{
    struct buf b = {0};
    if (admin_refused(wk, c, r->http, NULL)) {
        return;
    }
    reply_rendered(c, &b, stats_render_prometheus(wk, &b),
                   "text/plain; version=0.0.4; charset=utf-8");
}

typedef void route_fn(struct worker *wk, struct conn *c, const struct api_req *r);

struct route {
    const char *path;
    const char *allow; /* for 405 */
    unsigned methods;  /* bit per enum http_method */
    route_fn *fn;
};

#define M(m)      (1u << (m))
#define READ_ONLY (M(HTTP_GET) | M(HTTP_HEAD) | M(HTTP_OPTIONS))

static const struct route routes[] = {
    {"/messages", "GET, HEAD, OPTIONS", READ_ONLY, handle_messages},
    {"/ping", "GET, HEAD, OPTIONS", READ_ONLY, handle_ping},
    {"/message", "POST, OPTIONS", M(HTTP_POST) | M(HTTP_OPTIONS), handle_publish},
    {"/healthz", "GET, HEAD, OPTIONS", READ_ONLY, handle_healthz},
    {"/stats", "GET, HEAD, OPTIONS", READ_ONLY, handle_stats},
    {"/metrics", "GET, HEAD, OPTIONS", READ_ONLY, handle_metrics},
    {"/dashboard", "GET, HEAD, OPTIONS", READ_ONLY, handle_dashboard},
    {"/dashboard/app.js", "GET, HEAD, OPTIONS", READ_ONLY, handle_dashboard},
    {"/dashboard/style.css", "GET, HEAD, OPTIONS", READ_ONLY, handle_dashboard},
};

static bool path_is(const struct http_request *req, const char *path)
{
    size_t n = strlen(path);
    return req->path.len == n && memcmp(req->path.ptr, path, n) == 0;
}

bool api_publishes(const struct http_request *req)
{
    return req->method == HTTP_POST && path_is(req, "/message");
}

static void reply_not_allowed(struct conn *c, const char *allow)
{
    char extra[64];
    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
    reply_text(c, 405, "application/json", "{\"error\":\"method not allowed\"}\n", extra);
}

void api_handle(struct worker *wk, struct conn *c, const struct http_request *req, const char *body,
                size_t body_len)
{
    const struct api_req ar = {req, body, body_len};
    if (req->method == HTTP_OPTIONS) {
        conn_reply(c, 204, NULL, NULL, 0, RESPONSE_CORS_PREFLIGHT);
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *r = &routes[i];
        if (path_is(req, r->path)) {
            if (r->methods & M(req->method)) {
                r->fn(wk, c, &ar);
            } else {
                reply_not_allowed(c, r->allow);
            }
            return;
        }
    }
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        if (static_files_find(wk->srv->files, req->path.ptr, req->path.len)) {
            reply_not_allowed(c, "GET, HEAD, OPTIONS");
        } else {
            conn_reply_error(c, 404, "not found");
        }
        return;
    }
    handle_static(wk, c, &ar);
}
