/*
 * json: a strict RFC 8259 validator and the one field read the server needs.
 *
 * Pure functions over caller-owned bytes; no allocation, no recursion (nesting
 * is tracked in a fixed bit stack, so depth is bounded by JSON_MAX_DEPTH and
 * a hostile document cannot exhaust the C stack).
 */
#ifndef SSE_JSON_H
#define SSE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_MAX_DEPTH 512

/* json_object_get_string: the value holds a lone surrogate escape. */
#define JSON_LONE_SURROGATE (-3)

struct json_error {
    size_t offset;   /* byte offset in the input where the error was found */
    const char *msg; /* static, lower-case, short: "trailing comma", ... */
};

/*
 * True when buf[0..len) is exactly one JSON text per RFC 8259: any value at
 * top level, surrounded by optional whitespace (space, tab, LF, CR), encoded
 * in well-formed UTF-8 (no overlongs, no surrogates U+D800..DFFF encoded
 * directly, nothing above U+10FFFF), with no BOM. Rejected among others:
 * trailing commas, single quotes, leading zeros, "+1", ".5", "1.", NaN,
 * Infinity, comments, unescaped control characters in strings, invalid
 * escapes, nesting deeper than JSON_MAX_DEPTH (that many nested
 * arrays/objects are fine, one more is not), empty input. Any \uXXXX escape
 * is accepted, as the grammar says, including a lone or mis-ordered surrogate
 * (\uD800-\uDFFF) such as JavaScript writes for a string cut inside a pair:
 * only raw bytes must be well-formed UTF-8. On false, *err (if not NULL) says where and
 * why: err->offset is the first byte that cannot be part of a valid document
 * (the start of the offending escape, UTF-8 sequence or literal), or len when
 * the input ends too early ("unexpected end", "empty input").
 */
bool json_validate(const char *buf, size_t len, struct json_error *err);

/*
 * For a document that json_validate accepted: when the top-level value is an
 * object with a member `name` (compared after unescaping; the first such
 * member wins) whose value is a string, unescapes that string (UTF-8) into
 * out[0..out_cap) and returns its length. Returns -1 when the top level is not
 * an object, the member is absent, or its value is not a string; -2 when the
 * unescaped value does not fit in out_cap bytes; JSON_LONE_SURROGATE when
 * it holds a surrogate escape that is not half of a pair, which has no UTF-8
 * form (the caller refuses the field rather than receive altered bytes). A
 * member name with such an escape matches no name.
 *
 * Only members of the top-level object are considered, never nested ones.
 * out is NUL-terminated only when there is room (length < out_cap), and the
 * value may itself contain NUL bytes (\u0000): use the returned length. out
 * may be NULL when out_cap is 0. On a document json_validate rejected the
 * result is unspecified, but nothing outside buf[0..len) is ever read and
 * nothing outside out[0..out_cap) is written.
 */
long json_object_get_string(const char *buf, size_t len, const char *name, char *out,
                            size_t out_cap);

#endif
