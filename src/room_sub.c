/*
 * room_sub: the subscriber side of the room module (include/room.h): where a
 * new subscriber starts (live, history, after a Last-Event-ID), its cursor
 * through the ring, the iovecs it is written from, and the flush that fans
 * a room's new frames out to its caught-up subscribers.
 */
#include "room.h"
#include "room_internal.h"

#include <stdlib.h>
#include <string.h>

/* A start never lies past a frame nobody may see yet (one waiting for its
 * journal sync): such a frame may still be taken back (hub_cancel_from),
 * and no cursor must then point past the head. */
struct room_start room_start_live(const struct room *room)
{
    struct room_start st = {.cursor = room_visible_head(room)};
    return st;
}

struct room_start room_start_history(const struct room *room, uint64_t n)
{
    uint64_t head = room_visible_head(room);
    uint64_t retained = head - room_tail(room);
    struct room_start st = {.cursor = head - (n < retained ? n : retained)};
    return st;
}

/* Oldest retained id, or the next id when nothing is retained. */
static uint64_t room_oldest_id(const struct room *room)
{
    if (room_frames(room) == 0) {
        return room->hub->next_id;
    }
    return room_frame(room, room_tail(room))->id;
}

struct room_start room_start_after(const struct room *room, uint64_t last_id)
{
    struct room_start st = {.cursor = room_tail(room)};
    if (last_id < room->lost_id || last_id >= room->hub->next_id) {
        /* Older than what the ring can vouch for, or never issued here. */
        st.reset = true;
        st.oldest_id = room_oldest_id(room);
        return st;
    }
    /* Ids increase along the ring: binary search for the first id > last_id. */
    uint64_t lo = room_tail(room), hi = room_visible_head(room);
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (room_frame(room, mid)->id <= last_id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    st.cursor = lo;
    return st;
}

struct room_start room_start_want(const struct room *room, const struct room_want *want)
{
    if (want->resume) {
        return room_start_after(room, want->last_id);
    }
    return want->history ? room_start_history(room, want->history) : room_start_live(room);
}

/* Before a subscriber or a parked connection is counted: the room becomes
 * watched when it is the first. */
static void room_watch_gained(struct room *room)
{
    struct hub *hub = room->hub;
    if (!room_unwatched(room)) {
        return;
    }
    if (list_linked(&room->idle_node)) {
        list_remove(&room->idle_node);
    }
    room->watch_seq++;
    if (hub->watch) {
        hub->watch(hub->watch_arg, room, true);
    }
}

/* After one left: when it was the last, the room is unwatched, idle, and
 * freed by part's next flush if it holds nothing either. */
static void room_watch_lost(struct room *room, unsigned part)
{
    struct hub *hub = room->hub;
    if (!room_unwatched(room)) {
        return;
    }
    room->ready = false;
    if (hub->watch) {
        hub->watch(hub->watch_arg, room, false);
    }
    list_push_back(&hub->idle_rooms, &room->idle_node);
    if (room_frames(room) == 0) {
        mark_pending(hub, room, part); /* so the flush frees it */
    }
}

void room_park(struct room *room)
{
    room_watch_gained(room);
    room->parked++;
}

void room_unpark(struct room *room)
{
    room->parked--;
    room_watch_lost(room, hub_current_part());
}

void room_subscribe(struct room *room, struct subscriber *sub, const struct room_start *start,
                    const char *client, size_t client_len)
{
    struct hub *hub = room->hub;
    unsigned part = hub_current_part();
    struct room_part *p = &room->parts[part];
    uint64_t tail = room_tail(room);
    sub->room = room;
    sub->part = (uint8_t)part;
    sub->gen = atomic_load_explicit(&room->gen, memory_order_relaxed);
    sub->cursor = start->cursor < tail ? tail : start->cursor;
    sub->offset = 0;
    if (client_len > ROOM_CLIENT_MAX) {
        client_len = ROOM_CLIENT_MAX;
    }
    sub->client_len = (uint8_t)client_len;
    if (client_len) {
        memcpy(sub->client, client, client_len);
    }
    sub->waiting = false;
    list_push_back(&p->live, &sub->node);
    p->nsubs++;
    room_touch(room);
    if (sub->cursor < p->floor) {
        p->floor = sub->cursor;
    }
    room_watch_gained(room);
    room->nsubs++;
    if (sub->cursor < room_head(room)) {
        /* Owed a replay: let the flush hand it to its connection. */
        mark_pending(hub, room, part);
    }
}

void room_unsubscribe(struct subscriber *sub)
{
    struct room *room = sub->room;
    if (!room) {
        return;
    }
    struct hub *hub = room->hub;
    struct room_part *p = &room->parts[sub->part];
    hub_lock(hub);
    list_remove(&sub->node);
    sub->room = NULL;
    p->nsubs--;
    if (list_empty(&p->live)) {
        p->floor = NO_FLOOR;
    }
    room->nsubs--;
    room_watch_lost(room, sub->part);
    hub_unlock(hub);
}

static uint64_t visible_id(const struct room *room)
{
    return atomic_load_explicit(&room->hub->visible_id, memory_order_acquire);
}

/* Moves the cursor past frames this subscriber must not receive (never past
 * one nobody may see yet). No lock: the subscriber's own part. */
static void skip_excluded(struct subscriber *sub)
{
    const struct room *room = sub->room;
    if (!sub->client_len || sub->offset != 0) {
        return;
    }
    uint64_t head = room_head(room), visible = visible_id(room);
    while (sub->cursor < head) {
        const struct frame *f = room_frame_at(room, sub->cursor);
        if (!f || f->id >= visible || !frame_excludes(f, sub)) {
            return;
        }
        sub->cursor++;
    }
}

size_t room_sub_iov(struct subscriber *sub, struct iovec *iov, size_t max_iov, size_t max_bytes)
{
    const struct room *room = sub->room;
    if (!room) {
        return 0;
    }
    size_t n = 0, bytes = 0;
    size_t offset = sub->offset;
    uint64_t head = room_head(room), visible = visible_id(room);
    for (uint64_t seq = sub->cursor; seq < head && n < max_iov && bytes < max_bytes; seq++) {
        const struct frame *f = room_frame_at(room, seq);
        if (!f) {
            return 0; /* evicted under it: room_sub_lagged says so */
        }
        if (f->id >= visible) {
            break; /* ids increase along the ring: the rest waits too */
        }
        if (offset == 0 && frame_excludes(f, sub)) {
            continue;
        }
        iov[n].iov_base = (void *)(f->data + offset);
        iov[n].iov_len = f->len - offset;
        bytes += iov[n].iov_len;
        n++;
        offset = 0;
    }
    return n;
}

size_t room_sub_advance(struct subscriber *sub, size_t n)
{
    const struct room *room = sub->room;
    size_t written = 0;
    skip_excluded(sub);
    while (n > 0 && sub->cursor < room_head(room)) {
        const struct frame *f = room_frame_at(room, sub->cursor);
        if (!f) {
            break; /* evicted meanwhile: the subscriber is closed as lagged */
        }
        size_t left = f->len - sub->offset;
        if (n < left) {
            sub->offset += n;
            return written;
        }
        n -= left;
        sub->cursor++;
        sub->offset = 0;
        written++;
        skip_excluded(sub);
    }
    return written;
}

bool room_sub_lagged(const struct subscriber *sub)
{
    const struct room *room = sub->room;
    if (!room) {
        return false;
    }
    if (sub->cursor < atomic_load_explicit(&room->tail, memory_order_acquire) ||
        sub->gen != atomic_load_explicit(&room->gen, memory_order_acquire)) {
        return true;
    }
    /* Its frame's slot may have been reused by a newer one. */
    return sub->cursor < room_head(room) && !room_frame_at(room, sub->cursor);
}

bool room_sub_was_reset(const struct subscriber *sub)
{
    return sub->room && sub->gen != atomic_load_explicit(&sub->room->gen, memory_order_acquire);
}

void room_sub_set_waiting(struct subscriber *sub, bool waiting)
{
    struct room *room = sub->room;
    if (!room || sub->waiting == waiting) {
        return;
    }
    struct room_part *p = &room->parts[sub->part];
    hub_lock(room->hub);
    sub->waiting = waiting;
    list_remove(&sub->node);
    list_push_back(waiting ? &p->waiting : &p->live, &sub->node);
    if (!waiting && sub->cursor < p->floor) {
        p->floor = sub->cursor;
    } else if (waiting && list_empty(&p->live)) {
        p->floor = NO_FLOOR;
    }
    hub_unlock(room->hub);
}

/* A flush is done with the room (hub lock held): it drops its hold, and
 * frees the room if nothing else keeps it. */
static void room_release(struct hub *hub, struct room *room)
{
    room->npending--;
    if (room_unwatched(room) && room_frames(room) == 0 && room->npending == 0 &&
        !room->uncommitted) {
        hub_unlink_room(hub, room);
        room_destroy(room);
    }
}

/*
 * Writes to the part's live subscribers first and only then trims the ring,
 * so a burst of more than a ring's worth of messages in one loop iteration
 * reaches every subscriber whose socket takes it. What is left over the
 * limits after that is owed only to subscribers whose sockets are full (or
 * to another part's live ones, which its own flush writes to).
 *
 * The part's lists change only on this thread, so they are walked without
 * the lock; `ready` may close the subscriber (unlinking it) or move it to
 * the waiting list, but touches no other one, so iterating with a saved
 * next pointer is safe. A closed subscriber's memory outlives the batch.
 */
static size_t room_flush(struct hub *hub, struct room *room, unsigned part)
{
    struct room_part *p = &room->parts[part];
    size_t calls = 0;
    uint64_t floor = NO_FLOOR;
    struct list *pos, *tmp;
    list_for_each_safe(pos, tmp, &p->live)
    {
        struct subscriber *sub = container_of(pos, struct subscriber, node);
        skip_excluded(sub);
        if (sub->cursor < room_head(room) || room_sub_lagged(sub)) {
            hub->ready(sub, hub->arg);
            calls++;
        }
        if (sub->room == room && !sub->waiting && sub->cursor < floor) {
            floor = sub->cursor;
        }
    }
    hub_lock(hub);
    p->floor = floor;
    if (room_trim(room)) {
        /* Other parts' waiting subscribers may have fallen out. */
        for (unsigned i = 0; i < hub->limits.parts; i++) {
            if (i != part && !list_empty(&room->parts[i].waiting)) {
                mark_pending(hub, room, i);
            }
        }
    }
    bool waiting = !list_empty(&p->waiting);
    if (!waiting) {
        room_release(hub, room);
    }
    hub_unlock(hub);
    if (!waiting) {
        return calls;
    }
    /* Still held (npending): closing the last subscriber here must not let
     * another loop evict the room (--max-rooms) under this walk. */
    list_for_each_safe(pos, tmp, &p->waiting)
    {
        struct subscriber *sub = container_of(pos, struct subscriber, node);
        if (room_sub_lagged(sub)) {
            hub->ready(sub, hub->arg);
            calls++;
        }
    }
    hub_lock(hub);
    room_release(hub, room);
    hub_unlock(hub);
    return calls;
}

size_t hub_flush(struct hub *hub)
{
    unsigned part = hub_current_part();
    size_t calls = 0;
    /* Detach the list first: callbacks may publish or subscribe, which
     * queues rooms again for the next flush. A detached room stays pending
     * (and so alive) until its own turn. */
    struct hub_part *hp = &hub->parts[part];
    hub_lock(hub);
    struct room *room = hp->pending_head;
    hp->pending_head = NULL;
    uint64_t flush = ++hp->flush_started;
    hub_unlock(hub);
    while (room) {
        struct room_part *p = &room->parts[part];
        /* Read while the flag still keeps the room out of other lists. */
        struct room *next = p->pending_next;
        hub_lock(hub);
        /* From here a publish queues it again; the count still holds it
         * alive until room_flush is done with it. */
        p->pending = false;
        p->pending_next = NULL;
        hub_unlock(hub);
        calls += room_flush(hub, room, part);
        room = next;
    }
    /* Then wake the loops whose publishers wait for this flush. The store
     * and the exchange are sequentially consistent, as is the waiter's
     * register-then-check: one of the two sees the other. */
    atomic_store(&hp->flush_done, flush);
    uint64_t waiters = atomic_exchange(&hp->waiters, 0);
    while (waiters && hub->schedule) {
        unsigned w = (unsigned)__builtin_ctzll(waiters);
        waiters &= waiters - 1;
        hub->schedule(hub->arg, w);
    }
    return calls;
}

unsigned hub_parts(const struct hub *hub)
{
    return hub->limits.parts;
}

void hub_flush_targets(struct hub *hub, uint64_t *targets)
{
    for (unsigned i = 0; i < hub->limits.parts; i++) {
        const struct hub_part *hp = &hub->parts[i];
        targets[i] = hp->flush_started + (hp->pending_head != NULL);
    }
}

bool hub_flushes_done(struct hub *hub, const uint64_t *targets, unsigned part)
{
    for (unsigned i = 0; i < hub->limits.parts; i++) {
        struct hub_part *hp = &hub->parts[i];
        if (atomic_load(&hp->flush_done) >= targets[i]) {
            continue;
        }
        atomic_fetch_or(&hp->waiters, (uint64_t)1 << part);
        if (atomic_load(&hp->flush_done) < targets[i]) {
            return false;
        }
    }
    return true;
}
