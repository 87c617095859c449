/*
 * sse: encodes Server-Sent Events frames (WHATWG HTML, "Server-sent events").
 *
 * A frame is encoded once at publish time and written to every subscriber
 * from the same bytes. Payload line breaks (CR, LF or CRLF) start a new
 * `data:` line, so a browser's EventSource reassembles exactly the payload
 * (with every line break normalised to LF, as the spec does).
 */
#ifndef SSE_SSE_H
#define SSE_SSE_H

#include <stddef.h>
#include <stdint.h>

/* Longest event type accepted by sse_event_type_valid. */
#define SSE_MAX_EVENT_TYPE 64

/*
 * Bytes sse_frame_encode will write for this event (exactly). `event` may be
 * NULL or event_len 0: no `event:` line, the browser dispatches "message".
 * `data` may be NULL when data_len is 0. O(data_len).
 */
size_t sse_frame_size(uint64_t id, const char *event, size_t event_len, const char *data,
                      size_t data_len);

/*
 * Writes the frame into out (at least sse_frame_size(...) bytes) and returns
 * the number of bytes written:
 *     id: <id>\n
 *     event: <event>\n          (only when event_len > 0)
 *     data: <line>\n            (one per payload line; an empty payload
 *                                gives one "data: \n")
 *     \n
 * `event` must satisfy sse_event_type_valid (checked by the caller).
 * CRLF counts as one line break; a payload ending in a break gets a final
 * empty data line, so the browser keeps that LF. NUL and U+2028/U+2029 are
 * not SSE line breaks and pass through unchanged. No NUL terminator is
 * written, nothing is allocated, and the output never contains CR.
 */
size_t sse_frame_encode(char *out, uint64_t id, const char *event, size_t event_len,
                        const char *data, size_t data_len);

/* 1 when s[0..len) is a usable event type: 1..SSE_MAX_EVENT_TYPE bytes, none
 * of them CR, LF, NUL or another ASCII control character (0x00-0x1F, 0x7F). */
int sse_event_type_valid(const char *s, size_t len);

/*
 * Writes a comment line ": <text>\n" into out (capacity cap) and returns its
 * length, or 0 if it does not fit (out is then left untouched). Line breaks
 * (CR, LF) in `text` are replaced by spaces so the comment can never end the
 * frame early. A NULL text is an empty comment. No NUL terminator is written.
 */
size_t sse_comment(char *out, size_t cap, const char *text);

/* Writes "retry: <ms>\n" into out (capacity cap); returns its length, or 0
 * if it does not fit (out untouched). No NUL terminator is written. */
size_t sse_retry(char *out, size_t cap, unsigned ms);

#endif
