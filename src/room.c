#include "room.h"
#include "room_internal.h"

#include "hash.h"
#include "sse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
    hub->ready = ready;
    hub->schedule = schedule;
    hub->arg = arg;
    hub->next_id = first_id ? first_id : 1;
    hub->visible_id = hub->next_id;
    hub->lost_id = hub->next_id - 1;
    hub->nbuckets = 64;
    hub->buckets = calloc(hub->nbuckets, sizeof *hub->buckets);
    if (!hub->buckets) {
        free(hub);
        return NULL;
    }
    hub->hash_seed = first_id * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)hub;
    list_init(&hub->idle_rooms);
    list_init(&hub->lru);
    return hub;
}

/* What a retained frame costs: its allocation and its slot in the ring. */
static size_t frame_cost(const struct frame *f)
{
    return sizeof *f + f->len + f->client_len + sizeof(struct frame *);
}

static void frame_free_range(struct room *room)
{
    for (uint64_t s = room->tail; s < room->head; s++) {
        struct frame *f = room->slots[s & (room->slots_cap - 1)];
        room->hub->memory -= frame_cost(f);
        free(f);
    }
}

void room_destroy(struct room *room)
{
    frame_free_range(room);
    free(room->slots);
    free(room);
}

void hub_free(struct hub *hub)
{
    if (!hub) {
        return;
    }
    for (size_t i = 0; i < hub->nbuckets; i++) {
        struct room *r = hub->buckets[i];
        while (r) {
            struct room *next = r->hash_next;
            room_destroy(r);
            r = next;
        }
    }
    free(hub->buckets);
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

void mark_dirty(struct hub *hub, struct room *room)
{
    if (room->dirty) {
        return;
    }
    room->dirty = true;
    room->dirty_next = hub->dirty_head;
    hub->dirty_head = room;
    if (hub->schedule) {
        hub->schedule(hub->arg);
    }
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

/* Evicts the least recently used room without subscribers. A dirty room is
 * still referenced by the dirty list, so it is skipped. */
static bool hub_evict_idle_room(struct hub *hub)
{
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &hub->idle_rooms)
    {
        struct room *r = container_of(pos, struct room, idle_node);
        if (r->dirty) {
            continue;
        }
        if (r->head > 0) {
            struct frame *newest = r->slots[(r->head - 1) & (r->slots_cap - 1)];
            if (r->head > r->tail && newest->id > hub->lost_id) {
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
    room = calloc(1, sizeof *room);
    if (!room) {
        return NULL;
    }
    room->hub = hub;
    memcpy(room->name, name, len);
    room->name_len = (uint8_t)len;
    list_init(&room->live);
    list_init(&room->waiting);
    list_init(&room->idle_node);
    list_push_back(&hub->idle_rooms, &room->idle_node);
    list_push_back(&hub->lru, &room->lru_node);
    room->lost_id = hub->lost_id;
    room->floor = NO_FLOOR;
    room->hash_next = NULL;
    *pp = room;
    hub->nrooms++;
    if (hub->nrooms > hub->nbuckets) {
        hub_grow_buckets(hub);
    }
    /* A room nobody ends up using must still be freed: the flush checks it. */
    mark_dirty(hub, room);
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
    return (size_t)(room->head - room->tail);
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
    return room->head == room->tail ? UINT64_MAX : room_frame(room, room->tail)->id;
}

static void room_evict_oldest(struct room *room)
{
    struct frame *f = room_frame(room, room->tail);
    room->bytes -= f->len;
    room->hub->memory -= frame_cost(f);
    room->lost_id = f->id;
    free(f);
    room->tail++;
}

/* The oldest frame may go: no live subscriber is still owed it. */
static bool room_tail_evictable(const struct room *room)
{
    return room->head > room->tail && room->tail < room->floor;
}

/* True when the ring, with `frames` and `bytes` more, is over its limits. */
static bool room_over_limits(const struct room *room, size_t frames, size_t bytes)
{
    const struct hub_limits *lim = &room->hub->limits;
    return room->head - room->tail + frames > lim->history ||
           room->bytes + bytes > lim->history_bytes;
}

/* Back to the room's limits after a flush, keeping the newest frame and
 * whatever a live subscriber is still owed. */
void room_trim(struct room *room)
{
    while (room->head - room->tail > 1 && room_over_limits(room, 0, 0) &&
           room_tail_evictable(room)) {
        room_evict_oldest(room);
    }
}

void room_touch(struct room *room)
{
    list_remove(&room->lru_node);
    list_push_back(&room->hub->lru, &room->lru_node);
}

/*
 * Evicts the oldest frames of the least recently used rooms until `need`
 * more bytes fit under max_memory. Frames a live subscriber is owed stay.
 * Rooms that lost frames are marked dirty, so the flush closes subscribers
 * that fell out of them and frees those left empty. True when it fits.
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
        uint64_t tail = r->tail;
        while (hub->memory + need > cap && room_tail_evictable(r)) {
            room_evict_oldest(r);
        }
        if (r->tail != tail) {
            mark_dirty(hub, r);
        }
    }
    return hub->memory + need <= cap;
}

/* Makes room for one more frame in the slot array. */
static int room_reserve_slot(struct room *room)
{
    size_t count = (size_t)(room->head - room->tail);
    if (count < room->slots_cap) {
        return 0;
    }
    size_t cap = room->slots_cap ? room->slots_cap * 2 : 8;
    struct frame **s = malloc(cap * sizeof *s);
    if (!s) {
        return -1;
    }
    for (uint64_t q = room->tail; q < room->head; q++) {
        s[q & (cap - 1)] = room_frame(room, q);
    }
    free(room->slots);
    room->slots = s;
    room->slots_cap = cap;
    return 0;
}

static size_t count_recipients(const struct room *room, const struct frame *f)
{
    if (!f->client_len) {
        return room->nsubs;
    }
    size_t n = 0;
    const struct list *lists[2] = {&room->live, &room->waiting};
    for (int i = 0; i < 2; i++) {
        for (const struct list *p = lists[i]->next; p != lists[i]; p = p->next) {
            const struct subscriber *s = container_of(p, const struct subscriber, node);
            n += !frame_excludes(f, s);
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
    f->client_len = (uint8_t)client_len;
    if (client_len) {
        memcpy(f->data + f->len, client, client_len);
    }
    /* Evict before growing the slot array, so it never grows past the
     * history it has to hold. */
    while (room_tail_evictable(room) && room_over_limits(room, 1, f->len)) {
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
    room->slots[room->head & (room->slots_cap - 1)] = f;
    room->head++;
    room->bytes += f->len;
    if (id >= hub->next_id) {
        hub->next_id = id + 1;
    }
    if (!hub->deferred_commit) {
        hub->visible_id = hub->next_id;
    }
    if (room->nsubs == 0 && list_linked(&room->idle_node)) {
        /* Recently used: move to the back of the eviction order. */
        list_remove(&room->idle_node);
        list_push_back(&hub->idle_rooms, &room->idle_node);
    }
    return f;
}

int room_publish(struct room *room, const char *event, size_t event_len, const char *data,
                 size_t data_len, const char *client, size_t client_len, struct publish_result *res)
{
    struct hub *hub = room->hub;
    if (client_len > ROOM_CLIENT_MAX) {
        client_len = ROOM_CLIENT_MAX;
    }
    struct frame *f =
        room_append(room, hub->next_id, event, event_len, data, data_len, client, client_len);
    if (!f) {
        return -1;
    }
    mark_dirty(hub, room);
    room->published++;
    res->id = f->id;
    res->recipients = count_recipients(room, f);
    return 0;
}

int room_restore(struct room *room, uint64_t id, const char *event, size_t event_len,
                 const char *data, size_t data_len)
{
    if (room->head > room->tail && room_frame(room, room->head - 1)->id >= id) {
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
    hub->visible_id = hub->next_id;
}

void hub_skip_id(struct hub *hub, uint64_t id)
{
    if (id >= hub->next_id) {
        hub->next_id = id + 1;
        if (!hub->deferred_commit) {
            hub->visible_id = hub->next_id;
        }
    }
}

void hub_set_deferred_commit(struct hub *hub, bool deferred)
{
    hub->deferred_commit = deferred;
    if (!deferred) {
        hub->visible_id = hub->next_id;
    }
}

void hub_commit(struct hub *hub)
{
    hub->visible_id = hub->next_id;
}

size_t hub_memory(const struct hub *hub)
{
    return hub->memory;
}

size_t hub_max_memory(const struct hub *hub)
{
    return hub->limits.max_memory;
}

/* Pulls cursors that point past the head (at dropped frames) back to it. */
static void clamp_cursors(struct list *subs, uint64_t head)
{
    for (struct list *p = subs->next; p != subs; p = p->next) {
        struct subscriber *sub = container_of(p, struct subscriber, node);
        if (sub->cursor > head) {
            sub->cursor = head;
            sub->offset = 0;
        }
    }
}

size_t hub_cancel_from(struct hub *hub, uint64_t first_id)
{
    size_t dropped = 0;
    /* Frames are published only into rooms that are then dirty until the
     * flush, which has not run yet for these. */
    for (struct room *r = hub->dirty_head; r; r = r->dirty_next) {
        uint64_t head = r->head;
        while (r->head > r->tail && room_frame(r, r->head - 1)->id >= first_id) {
            struct frame *f = room_frame(r, r->head - 1);
            r->bytes -= f->len;
            hub->memory -= frame_cost(f);
            free(f);
            r->head--;
            dropped++;
        }
        if (r->head != head) {
            r->published -= head - r->head; /* they never happened */
            clamp_cursors(&r->live, r->head);
            clamp_cursors(&r->waiting, r->head);
            if (r->floor != NO_FLOOR && r->floor > r->head) {
                r->floor = r->head;
            }
        }
    }
    return dropped;
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
