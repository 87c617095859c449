#include "room_pattern.h"

#include "room.h"

#include <string.h>

bool room_pattern_match(const char *pattern, size_t plen, const char *room, size_t rlen)
{
    if (plen > 0 && pattern[plen - 1] == '*') {
        return rlen >= plen - 1 && memcmp(pattern, room, plen - 1) == 0;
    }
    return plen == rlen && memcmp(pattern, room, rlen) == 0;
}

bool room_pattern_valid(const char *pattern, size_t plen)
{
    if (plen > 0 && pattern[plen - 1] == '*') {
        plen--;
        if (plen == 0) {
            return true;
        }
    }
    return room_name_valid(pattern, plen);
}

/* Calls fn on each trimmed entry of the list until it returns true. */
static bool list_any(const char *list, bool (*fn)(const char *, size_t, const void *),
                     const void *arg)
{
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *e = p;
        while (n && (*e == ' ' || *e == '\t')) {
            e++;
            n--;
        }
        while (n && (e[n - 1] == ' ' || e[n - 1] == '\t')) {
            n--;
        }
        if (fn(e, n, arg)) {
            return true;
        }
        if (!comma) {
            return false;
        }
        p = comma + 1;
    }
}

struct room_ref {
    const char *name;
    size_t len;
};

static bool entry_matches(const char *e, size_t n, const void *arg)
{
    const struct room_ref *r = arg;
    return n > 0 && room_pattern_match(e, n, r->name, r->len);
}

static bool entry_invalid(const char *e, size_t n, const void *arg)
{
    (void)arg;
    return !room_pattern_valid(e, n);
}

bool room_pattern_list_match(const char *list, const char *room, size_t rlen)
{
    const struct room_ref r = {room, rlen};
    return *list && list_any(list, entry_matches, &r);
}

bool room_pattern_list_valid(const char *list)
{
    return *list && !list_any(list, entry_invalid, NULL);
}
