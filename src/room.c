#include "room.h"
#include "room_internal.h"

#include "hash.h"
#include "sse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local unsigned current_part;

void hub_bind_part(unsigned part)
{
    current_part = part;
}

unsigned hub_current_part(void)
{
    return current_part;
}

static uint64_t name_hash(const struct hub *hub, const char *s, size_t len)
{
    return hash_bucket(hub->hash_seed, s, len);
}

struct hub *hub_new(const struct hub_limits *limits, uint64_t first_id, hub_ready_fn *ready,
                    hub_schedule_fn *schedule, void *arg)
{
    struct hub *hub = calloc(1, sizeof *hub);
    if (!hub) {
        return NULL;
    }
    hub->limits = *limits;
    if (hub->limits.history == 0) {
        hub->limits.history = 1;
    }
    if (hub->limits.parts == 0) {
        hub->limits.parts = 1;
    }
    hub->parts = calloc(hub->limits.parts, sizeof *hub->parts);
    if (!hub->parts || qsbr_init(&hub->qsbr, hub->limits.parts) < 0) {
        free(hub->parts);
        free(hub);
        return NULL;
    }
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&hub->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    hub->ready = ready;
    hub->schedule = schedule;
    hub->arg = arg;
    hub->next_id = first_id ? first_id : 1;
    atomic_init(&hub->visible_id, hub->next_id);
    hub->lost_id = hub->next_id - 1;
    hub->nbuckets = 64;
    hub->buckets = calloc(hub->nbuckets, sizeof *hub->buckets);
    if (!hub->buckets) {
        hub_free(hub);
        return NULL;
    }
    hub->hash_seed = first_id * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)hub;
    list_init(&hub->idle_rooms);
    list_init(&hub->lru);
    return hub;
}

void hub_lock(struct hub *hub)
{
    pthread_mutex_lock(&hub->lock);
}

void hub_unlock(struct hub *hub)
{
    pthread_mutex_unlock(&hub->lock);
}

struct qsbr *hub_qsbr(struct hub *hub)
{
    return &hub->qsbr;
}

void hub_set_watch(struct hub *hub, hub_watch_fn *fn, void *arg)
{
    hub->watch = fn;
    hub->watch_arg = arg;
}

/* What a retained frame costs: its allocation and its slot in the ring. */
static size_t frame_cost(const struct frame *f)
{
    return sizeof *f + f->len + f->client_len + sizeof(struct frame *);
}

static void free_retired(struct qsbr_node *node)
{
    free(node); /* the node is the first member of a frame and of a ring */
}

/* A room without subscribers has no reader left: its frames and ring go
 * at once. */
void room_destroy(struct room *room)
{
    uint64_t head = room_head(room);
    for (uint64_t s = room_tail(room); s < head; s++) {
        struct frame *f = room_frame(room, s);
        room->hub->memory -= frame_cost(f);
        free(f);
    }
    free(atomic_load_explicit(&room->ring, memory_order_relaxed));
    free(room);
}

void hub_free(struct hub *hub)
{
    if (!hub) {
        return;
    }
    for (size_t i = 0; hub->buckets && i < hub->nbuckets; i++) {
        struct room *r = hub->buckets[i];
        while (r) {
            struct room *next = r->hash_next;
            room_destroy(r);
            r = next;
        }
    }
    free(hub->buckets);
    qsbr_destroy(&hub->qsbr);
    pthread_mutex_destroy(&hub->lock);
    free(hub->parts);
    free(hub);
}

bool room_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > ROOM_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

void mark_pending(struct hub *hub, struct room *room, unsigned part)
{
    struct room_part *p = &room->parts[part];
    if (p->pending) {
        return;
    }
    p->pending = true;
    room->npending++;
    struct hub_part *hp = &hub->parts[part];
    bool was_empty = hp->pending_head == NULL;
    p->pending_next = hp->pending_head;
    hp->pending_head = room;
    if (was_empty && hub->schedule) {
        hub->schedule(hub->arg, part);
    }
}

void mark_pending_subscribed(struct hub *hub, struct room *room)
{
    if (room->nsubs == 0) {
        return;
    }
    for (unsigned i = 0; i < hub->limits.parts; i++) {
        if (room->parts[i].nsubs) {
            mark_pending(hub, room, i);
        }
    }
}

uint64_t room_floor(const struct room *room)
{
    uint64_t floor = NO_FLOOR;
    for (unsigned i = 0; i < room->hub->limits.parts; i++) {
        if (room->parts[i].floor < floor) {
            floor = room->parts[i].floor;
        }
    }
    return floor;
}

uint64_t room_visible_head(const struct room *room)
{
    uint64_t visible = atomic_load_explicit(&room->hub->visible_id, memory_order_relaxed);
    uint64_t seq = room_head(room), tail = room_tail(room);
    while (seq > tail && room_frame(room, seq - 1)->id >= visible) {
        seq--;
    }
    return seq;
}

static struct room **room_slot(struct hub *hub, const char *name, size_t len)
{
    struct room **pp = &hub->buckets[name_hash(hub, name, len) & (hub->nbuckets - 1)];
    while (*pp && !((*pp)->name_len == len && memcmp((*pp)->name, name, len) == 0)) {
        pp = &(*pp)->hash_next;
    }
    return pp;
}

void hub_unlink_room(struct hub *hub, struct room *room)
{
    struct room **pp = room_slot(hub, room->name, room->name_len);
    if (*pp == room) {
        *pp = room->hash_next;
    }
    if (list_linked(&room->idle_node)) {
        list_remove(&room->idle_node);
    }
    list_remove(&room->lru_node);
    /* A room made later under this name cannot vouch for what this one lost. */
    if (room->lost_id > hub->lost_id) {
        hub->lost_id = room->lost_id;
    }
    hub->nrooms--;
}

static void hub_grow_buckets(struct hub *hub)
{
    size_t n = hub->nbuckets * 2;
    struct room **b = calloc(n, sizeof *b);
    if (!b) {
        return; /* longer chains, still correct */
    }
    for (size_t i = 0; i < hub->nbuckets; i++) {
        struct room *r = hub->buckets[i];
        while (r) {
            struct room *next = r->hash_next;
            size_t k = name_hash(hub, r->name, r->name_len) & (n - 1);
            r->hash_next = b[k];
            b[k] = r;
            r = next;
        }
    }
    free(hub->buckets);
    hub->buckets = b;
    hub->nbuckets = n;
}

/* Evicts the least recently used room without subscribers. A room in a
 * pending or uncommitted list is still referenced there, so it is skipped. */
static bool hub_evict_idle_room(struct hub *hub)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &hub->idle_rooms)
    {
        struct room *r = container_of(pos, struct room, idle_node);
        if (r->npending || r->uncommitted) {
            continue;
        }
        uint64_t head = room_head(r);
        if (head > room_tail(r)) {
            struct frame *newest = room_frame(r, head - 1);
            if (newest->id > hub->lost_id) {
                hub->lost_id = newest->id;
            }
        }
        hub_unlink_room(hub, r);
        room_destroy(r);
        return true;
    }
    return false;
}

struct room *hub_room_find(struct hub *hub, const char *name, size_t len)
{
    return *room_slot(hub, name, len);
}

struct room *hub_room(struct hub *hub, const char *name, size_t len)
{
    struct room **pp = room_slot(hub, name, len);
    struct room *room = *pp;
    if (room) {
        return room;
    }
    if (hub->nrooms >= hub->limits.max_rooms) {
        if (!hub_evict_idle_room(hub)) {
            return NULL;
        }
        pp = room_slot(hub, name, len);
    }
    room = calloc(1, sizeof *room + hub->limits.parts * sizeof room->parts[0]);
    if (!room) {
        return NULL;
    }
    struct ring *ring = calloc(1, sizeof *ring + 8 * sizeof ring->slot[0]);
    if (!ring) {
        free(room);
        return NULL;
    }
    ring->cap = 8;
    atomic_init(&room->ring, ring);
    for (unsigned i = 0; i < hub->limits.parts; i++) {
        list_init(&room->parts[i].live);
        list_init(&room->parts[i].waiting);
        room->parts[i].floor = NO_FLOOR;
    }
    room->hub = hub;
    memcpy(room->name, name, len);
    room->name_len = (uint8_t)len;
    list_init(&room->idle_node);
    list_push_back(&hub->idle_rooms, &room->idle_node);
    list_push_back(&hub->lru, &room->lru_node);
    room->lost_id = hub->lost_id;
    room->hash_next = NULL;
    *pp = room;
    hub->nrooms++;
    if (hub->nrooms > hub->nbuckets) {
        hub_grow_buckets(hub);
    }
    /* A room nobody ends up using must still be freed: the flush checks it. */
    mark_pending(hub, room, current_part);
    return room;
}

size_t hub_room_count(const struct hub *hub)
{
    return hub->nrooms;
}

void hub_foreach_room(const struct hub *hub, void (*fn)(const struct room *room, void *arg),
                      void *arg)
{
    for (size_t i = 0; i < hub->nbuckets; i++) {
        for (const struct room *r = hub->buckets[i]; r; r = r->hash_next) {
            fn(r, arg);
        }
    }
}

uint64_t hub_last_id(const struct hub *hub)
{
    return hub->next_id - 1;
}

size_t room_frames(const struct room *room)
{
    return (size_t)(room_head(room) - room_tail(room));
}

size_t room_bytes(const struct room *room)
{
    return room->bytes;
}

size_t room_subscribers(const struct room *room)
{
    return room->nsubs;
}

const char *room_name(const struct room *room)
{
    return room->name;
}

uint64_t room_published(const struct room *room)
{
    return room->published;
}

uint64_t room_published_recent(const struct room *room)
{
    return room->published - room->published_mark;
}

void hub_mark_published(struct hub *hub)
{
    for (size_t i = 0; i < hub->nbuckets; i++) {
        for (struct room *r = hub->buckets[i]; r; r = r->hash_next) {
            r->published_mark = r->published;
        }
    }
}

uint64_t room_first_id(const struct room *room)
{
    uint64_t tail = room_tail(room);
    return room_head(room) == tail ? UINT64_MAX : room_frame(room, tail)->id;
}

/* The oldest frame leaves the ring; a loop may be writing from it right
 * now (a waiting subscriber's), so it is retired, not freed. */
static void room_evict_oldest(struct room *room)
{
    uint64_t tail = room_tail(room);
    struct frame *f = room_frame(room, tail);
    room->bytes -= f->len;
    room->hub->memory -= frame_cost(f);
    room->lost_id = f->id;
    atomic_store(&room->tail, tail + 1);
    qsbr_retire(&room->hub->qsbr, &f->retire, free_retired);
}

/* The oldest frame may go: no live subscriber is still owed it. */
static bool room_tail_evictable(const struct room *room, uint64_t floor)
{
    uint64_t tail = room_tail(room);
    return room_head(room) > tail && tail < floor;
}

/* True when the ring, with `frames` and `bytes` more, is over its limits. */
static bool room_over_limits(const struct room *room, size_t frames, size_t bytes)
{
    const struct hub_limits *lim = &room->hub->limits;
    return room_frames(room) + frames > lim->history || room->bytes + bytes > lim->history_bytes;
}

/* Back to the room's limits after a flush, keeping the newest frame and
 * whatever a live subscriber is still owed. */
size_t room_trim(struct room *room)
{
    uint64_t floor = room_floor(room);
    size_t n = 0;
    while (room_frames(room) > 1 && room_over_limits(room, 0, 0) &&
           room_tail_evictable(room, floor)) {
        room_evict_oldest(room);
        n++;
    }
    return n;
}

void room_touch(struct room *room)
{
    list_remove(&room->lru_node);
    list_push_back(&room->hub->lru, &room->lru_node);
}

/*
 * Evicts the oldest frames of the least recently used rooms until `need`
 * more bytes fit under max_memory. Frames a live subscriber is owed stay.
 * Rooms that lost frames are queued for their parts' flushes, which close
 * subscribers that fell out of them. True when it fits.
 */
static bool hub_reclaim(struct hub *hub, size_t need)
{
    size_t cap = hub->limits.max_memory;
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &hub->lru)
    {
        if (hub->memory + need <= cap) {
            break;
        }
        struct room *r = container_of(pos, struct room, lru_node);
        uint64_t tail = room_tail(r), floor = room_floor(r);
        while (hub->memory + need > cap && room_tail_evictable(r, floor)) {
            room_evict_oldest(r);
        }
        if (room_tail(r) != tail) {
            mark_pending_subscribed(hub, r);
        }
    }
    return hub->memory + need <= cap;
}

/* Makes room for one more frame in the slot array. The old array may be
 * being read by a loop: it is retired, not freed. */
static int room_reserve_slot(struct room *room)
{
    struct ring *old = atomic_load_explicit(&room->ring, memory_order_relaxed);
    if (room_frames(room) < old->cap) {
        return 0;
    }
    size_t cap = old->cap * 2;
    struct ring *ring = calloc(1, sizeof *ring + cap * sizeof ring->slot[0]);
    if (!ring) {
        return -1;
    }
    ring->cap = cap;
    uint64_t head = room_head(room);
    for (uint64_t q = room_tail(room); q < head; q++) {
        atomic_init(&ring->slot[q & (cap - 1)], room_frame(room, q));
    }
    atomic_store_explicit(&room->ring, ring, memory_order_release);
    qsbr_retire(&room->hub->qsbr, &old->retire, free_retired);
    return 0;
}

static size_t count_recipients(const struct room *room, const struct frame *f)
{
    if (!f->client_len) {
        return room->nsubs;
    }
    size_t n = 0;
    for (unsigned part = 0; part < room->hub->limits.parts; part++) {
        const struct list *lists[2] = {&room->parts[part].live, &room->parts[part].waiting};
        for (int i = 0; i < 2; i++) {
            for (const struct list *p = lists[i]->next; p != lists[i]; p = p->next) {
                const struct subscriber *s = container_of(p, const struct subscriber, node);
                n += !frame_excludes(f, s);
            }
        }
    }
    return n;
}

/* Encodes a frame with the given id and appends it to the ring, evicting
 * the oldest frames beyond the limits (the new frame itself is always kept). */
static struct frame *room_append(struct room *room, uint64_t id, const char *event,
                                 size_t event_len, const char *data, size_t data_len,
                                 const char *client, size_t client_len)
{
    struct hub *hub = room->hub;
    size_t flen = sse_frame_size(id, event, event_len, data, data_len);
    struct frame *f = malloc(sizeof *f + flen + client_len);
    if (!f) {
        errno = ENOMEM;
        return NULL;
    }
    f->id = id;
    f->len = sse_frame_encode(f->data, id, event, event_len, data, data_len);
    memset(&f->retire, 0, sizeof f->retire);
    f->client_len = (uint8_t)client_len;
    if (client_len) {
        memcpy(f->data + f->len, client, client_len);
    }
    /* Evict before growing the slot array, so it never grows past the
     * history it has to hold. */
    uint64_t floor = room_floor(room);
    while (room_tail_evictable(room, floor) && room_over_limits(room, 1, f->len)) {
        room_evict_oldest(room);
    }
    room_touch(room);
    size_t cost = frame_cost(f);
    if (hub->limits.max_memory && hub->memory + cost > hub->limits.max_memory &&
        !hub_reclaim(hub, cost)) {
        free(f);
        errno = ENOBUFS;
        return NULL;
    }
    if (room_reserve_slot(room) < 0) {
        free(f);
        errno = ENOMEM;
        return NULL;
    }
    hub->memory += cost;
    uint64_t head = room_head(room);
    f->seq = head;
    struct ring *ring = atomic_load_explicit(&room->ring, memory_order_relaxed);
    /* Published to the lock-free readers by the release store of head. */
    atomic_store_explicit(&ring->slot[head & (ring->cap - 1)], f, memory_order_release);
    atomic_store_explicit(&room->head, head + 1, memory_order_release);
    room->bytes += f->len;
    if (id >= hub->next_id) {
        hub->next_id = id + 1;
    }
    if (!hub->deferred_commit) {
        atomic_store(&hub->visible_id, hub->next_id);
    } else if (!room->uncommitted) {
        room->uncommitted = true;
        room->uncommitted_next = hub->uncommitted_head;
        hub->uncommitted_head = room;
    }
    if (room_unwatched(room) && list_linked(&room->idle_node)) {
        /* Recently used: move to the back of the eviction order. */
        list_remove(&room->idle_node);
        list_push_back(&hub->idle_rooms, &room->idle_node);
    }
    return f;
}

int room_publish(struct room *room, const char *event, size_t event_len, const char *data,
                 size_t data_len, const char *client, size_t client_len, struct publish_result *res)
{
    return room_publish_id(room, room->hub->next_id, event, event_len, data, data_len, client,
                           client_len, res);
}

/* The newest retained message's id; 0 when none is retained. */
uint64_t room_newest_id(const struct room *room)
{
    return room_frames(room) ? room_frame(room, room_head(room) - 1)->id : 0;
}

int room_publish_id(struct room *room, uint64_t id, const char *event, size_t event_len,
                    const char *data, size_t data_len, const char *client, size_t client_len,
                    struct publish_result *res)
{
    struct hub *hub = room->hub;
    if (client_len > ROOM_CLIENT_MAX) {
        client_len = ROOM_CLIENT_MAX;
    }
    if (id <= room_newest_id(room)) {
        errno = EINVAL; /* ids increase along the ring */
        return -1;
    }
    struct frame *f = room_append(room, id, event, event_len, data, data_len, client, client_len);
    if (!f) {
        return -1;
    }
    mark_pending_subscribed(hub, room);
    room->published++;
    res->id = f->id;
    res->recipients = count_recipients(room, f);
    return 0;
}

int room_restore(struct room *room, uint64_t id, const char *event, size_t event_len,
                 const char *data, size_t data_len)
{
    if (id <= room_newest_id(room)) {
        return -1; /* ids must increase along the ring */
    }
    return room_append(room, id, event, event_len, data, data_len, NULL, 0) ? 0 : -1;
}

void hub_restore_from(struct hub *hub, uint64_t first_id)
{
    /* Messages before the journal's first record are gone for good. */
    hub->lost_id = first_id ? first_id - 1 : 0;
}

uint64_t hub_next_id(const struct hub *hub)
{
    return hub->next_id;
}

void hub_set_next_id(struct hub *hub, uint64_t id)
{
    if (id > hub->next_id) {
        hub->next_id = id;
    }
    /* Used before serving (after a journal replay): all there is is on disk. */
    atomic_store(&hub->visible_id, hub->next_id);
}

void hub_skip_id(struct hub *hub, uint64_t id)
{
    if (id >= hub->next_id) {
        hub->next_id = id + 1;
        if (!hub->deferred_commit) {
            atomic_store(&hub->visible_id, hub->next_id);
        }
    }
}

void hub_set_deferred_commit(struct hub *hub, bool deferred)
{
    hub->deferred_commit = deferred;
    if (!deferred) {
        hub_commit(hub);
    }
}

/* The frames of the rooms published to since the last commit become
 * visible: their parts' flushes must run again (they may have run already
 * and written nothing). */
void hub_commit(struct hub *hub)
{
    atomic_store(&hub->visible_id, hub->next_id);
    struct room *r = hub->uncommitted_head;
    hub->uncommitted_head = NULL;
    while (r) {
        struct room *next = r->uncommitted_next;
        r->uncommitted = false;
        r->uncommitted_next = NULL;
        mark_pending_subscribed(hub, r);
        r = next;
    }
}

size_t hub_memory(const struct hub *hub)
{
    return hub->memory;
}

size_t hub_max_memory(const struct hub *hub)
{
    return hub->limits.max_memory;
}

size_t hub_cancel_from(struct hub *hub, uint64_t first_id)
{
    size_t dropped = 0;
    /* Invisible frames are only in rooms published to since the last
     * commit. No cursor is past them (a cursor never passes a frame nobody
     * may see yet), so none needs moving; but a loop may have read one to
     * find it invisible, hence retired, not freed. */
    for (struct room *r = hub->uncommitted_head; r; r = r->uncommitted_next) {
        uint64_t head = room_head(r), h = head;
        while (h > room_tail(r) && room_frame(r, h - 1)->id >= first_id) {
            struct frame *f = room_frame(r, h - 1);
            r->bytes -= f->len;
            hub->memory -= frame_cost(f);
            atomic_store(&r->head, h - 1);
            qsbr_retire(&hub->qsbr, &f->retire, free_retired);
            h--;
            dropped++;
        }
        r->published -= head - h; /* they never happened */
    }
    return dropped;
}

void room_reset(struct room *room)
{
    struct hub *hub = room->hub;
    while (room_frames(room) > 0) {
        room_evict_oldest(room); /* retired: a loop may be writing from it */
    }
    /* Whatever came after any id known so far, the newest included, may
     * be gone: a resume from any of them is told. */
    room->lost_id = hub->next_id;
    atomic_fetch_add_explicit(&room->gen, 1, memory_order_release);
    for (unsigned i = 0; i < hub->limits.parts; i++) {
        room->parts[i].floor = NO_FLOOR;
        if (room->parts[i].nsubs) {
            mark_pending(hub, room, i);
        }
    }
}

void hub_mark_lost(struct hub *hub, uint64_t id)
{
    if (id > hub->lost_id) {
        hub->lost_id = id;
    }
    for (size_t i = 0; i < hub->nbuckets; i++) {
        for (struct room *r = hub->buckets[i]; r; r = r->hash_next) {
            if (id > r->lost_id) {
                r->lost_id = id;
            }
        }
    }
}

uint32_t room_watch_seq(const struct room *room)
{
    return room->watch_seq;
}

bool room_ready(const struct room *room)
{
    return room->ready;
}

void room_set_ready(struct room *room, bool ready)
{
    room->ready = ready;
}

uint64_t room_epoch(const struct room *room)
{
    return room->epoch;
}

void room_set_epoch(struct room *room, uint64_t epoch, uint64_t base, bool reset)
{
    if (reset) {
        room_reset(room);
    }
    room->epoch = epoch;
    /* A resume from base continues; from below it, the messages are gone.
     * A room's ids come from its own epoch, not from this process's clock:
     * what the hub assumed lost for a new room does not apply. After a
     * reset, every id known before stays lost unless the new life starts
     * above it. */
    if (!reset || base > room->lost_id) {
        room->lost_id = base;
    }
    /* The store issued the ids up to base: a resume from one of them is
     * not from an id "never issued here". */
    hub_skip_id(room->hub, base);
}
