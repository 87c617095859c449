/*
 * room_pattern: which rooms a pattern names -- the form shared by
 * --private-rooms and the rooms of a token's claims.
 *
 * A pattern is an exact room name ("user-42") or a prefix ending in '*'
 * ("team-7-*"); "*" alone names every room. Nothing else is special: there
 * is no '*' in the middle and no escaping, since room names never contain
 * one.
 */
#ifndef SSE_ROOM_PATTERN_H
#define SSE_ROOM_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

/* True when pattern[0..plen) names the room room[0..rlen). */
bool room_pattern_match(const char *pattern, size_t plen, const char *room, size_t rlen);

/* True when pattern[0..plen) is well formed: a valid room name, optionally
 * followed by '*', or "*" alone. */
bool room_pattern_valid(const char *pattern, size_t plen);

/* For a comma-separated list of patterns (blanks around entries allowed):
 * true when one of them names the room. */
bool room_pattern_list_match(const char *list, const char *room, size_t rlen);

/* True when every entry of a comma-separated list is well formed and there
 * is at least one. */
bool room_pattern_list_valid(const char *list);

#endif
