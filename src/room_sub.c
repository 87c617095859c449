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

struct room_start room_start_live(const struct room *room)
{
    struct room_start st = {.cursor = room->head};
    return st;
}

struct room_start room_start_history(const struct room *room, uint64_t n)
{
    struct room_start st = {.cursor = room->head};
    uint64_t retained = room->head - room->tail;
    st.cursor = room->head - (n < retained ? n : retained);
    return st;
}

/* Oldest retained id, or the next id when nothing is retained. */
static uint64_t room_oldest_id(const struct room *room)
{
    if (room->head == room->tail) {
        return room->hub->next_id;
    }
    return room_frame(room, room->tail)->id;
}

struct room_start room_start_after(const struct room *room, uint64_t last_id)
{
    struct room_start st = {.cursor = room->tail};
    if (last_id < room->lost_id || last_id >= room->hub->next_id) {
        /* Older than what the ring can vouch for, or never issued here. */
        st.reset = true;
        st.oldest_id = room_oldest_id(room);
        return st;
    }
    /* Ids increase along the ring: binary search for the first id > last_id. */
    uint64_t lo = room->tail, hi = room->head;
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

void room_subscribe(struct room *room, struct subscriber *sub, const struct room_start *start,
                    const char *client, size_t client_len)
{
    struct hub *hub = room->hub;
    sub->room = room;
    sub->cursor = start->cursor < room->tail ? room->tail : start->cursor;
    sub->offset = 0;
    if (client_len > ROOM_CLIENT_MAX) {
        client_len = ROOM_CLIENT_MAX;
    }
    sub->client_len = (uint8_t)client_len;
    if (client_len) {
        memcpy(sub->client, client, client_len);
    }
    sub->waiting = false;
    list_push_back(&room->live, &sub->node);
    room_touch(room);
    if (sub->cursor < room->floor) {
        room->floor = sub->cursor;
    }
    if (room->nsubs++ == 0 && list_linked(&room->idle_node)) {
        list_remove(&room->idle_node);
    }
    if (sub->cursor < room->head) {
        /* Owed a replay: let the flush hand it to its connection. */
        mark_dirty(hub, room);
    }
}

void room_unsubscribe(struct subscriber *sub)
{
    struct room *room = sub->room;
    if (!room) {
        return;
    }
    list_remove(&sub->node);
    sub->room = NULL;
    if (list_empty(&room->live)) {
        room->floor = NO_FLOOR;
    }
    if (--room->nsubs == 0) {
        list_push_back(&room->hub->idle_rooms, &room->idle_node);
        if (room->head == room->tail) {
            mark_dirty(room->hub, room); /* so the flush frees it */
        }
    }
}

/* Moves the cursor past frames this subscriber must not receive. */
static void skip_excluded(struct subscriber *sub)
{
    const struct room *room = sub->room;
    if (!sub->client_len) {
        return;
    }
    while (sub->offset == 0 && sub->cursor >= room->tail && sub->cursor < room->head &&
           frame_excludes(room_frame(room, sub->cursor), sub)) {
        sub->cursor++;
    }
}

size_t room_sub_iov(struct subscriber *sub, struct iovec *iov, size_t max_iov, size_t max_bytes)
{
    const struct room *room = sub->room;
    if (!room || sub->cursor < room->tail) {
        return 0;
    }
    size_t n = 0, bytes = 0;
    size_t offset = sub->offset;
    uint64_t visible = room->hub->visible_id;
    for (uint64_t seq = sub->cursor; seq < room->head && n < max_iov && bytes < max_bytes; seq++) {
        const struct frame *f = room_frame(room, seq);
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
    while (n > 0 && sub->cursor < room->head) {
        const struct frame *f = room_frame(room, sub->cursor);
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
    return sub->room && sub->cursor < sub->room->tail;
}

void room_sub_set_waiting(struct subscriber *sub, bool waiting)
{
    struct room *room = sub->room;
    if (!room || sub->waiting == waiting) {
        return;
    }
    sub->waiting = waiting;
    list_remove(&sub->node);
    list_push_back(waiting ? &room->waiting : &room->live, &sub->node);
    if (!waiting && sub->cursor < room->floor) {
        room->floor = sub->cursor;
    } else if (waiting && list_empty(&room->live)) {
        room->floor = NO_FLOOR;
    }
}

/*
 * Writes to the live subscribers first and only then trims the ring, so a
 * burst of more than a ring's worth of messages in one loop iteration reaches
 * every subscriber whose socket takes it. What is left over the limits after
 * that is owed only to subscribers whose sockets are full.
 */
static size_t room_flush(struct hub *hub, struct room *room)
{
    size_t calls = 0;
    uint64_t floor = NO_FLOOR;
    struct list *pos, *tmp;
    /* The callback may close the subscriber (unlinking it) or move it to the
     * waiting list, but touches no other one, so iterating with a saved next
     * pointer is safe. A closed subscriber's memory outlives the batch. */
    list_for_each_safe(pos, tmp, &room->live)
    {
        struct subscriber *sub = container_of(pos, struct subscriber, node);
        skip_excluded(sub);
        if (sub->cursor < room->head) {
            hub->ready(sub, hub->arg);
            calls++;
        }
        if (sub->room == room && !sub->waiting && sub->cursor < floor) {
            floor = sub->cursor;
        }
    }
    room->floor = floor;
    room_trim(room);
    list_for_each_safe(pos, tmp, &room->waiting)
    {
        struct subscriber *sub = container_of(pos, struct subscriber, node);
        if (room_sub_lagged(sub)) {
            hub->ready(sub, hub->arg);
            calls++;
        }
    }
    return calls;
}

size_t hub_flush(struct hub *hub)
{
    size_t calls = 0;
    /* Detach the list first: callbacks may publish or subscribe, which marks
     * rooms dirty again for the next flush. */
    struct room *room = hub->dirty_head;
    hub->dirty_head = NULL;
    while (room) {
        struct room *next = room->dirty_next;
        room->dirty = false;
        room->dirty_next = NULL;
        calls += room_flush(hub, room);
        if (room->nsubs == 0 && room->head == room->tail && !room->dirty) {
            hub_unlink_room(hub, room);
            room_destroy(room);
        }
        room = next;
    }
    return calls;
}
