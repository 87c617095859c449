/*
 * http_chars: the character classes and the error helper that the request
 * head parser (http.c) and the chunked body decoder (http_chunked.c) share.
 * Internal to the http module: nothing outside src/http*.c includes it.
 */
#ifndef SSE_HTTP_CHARS_H
#define SSE_HTTP_CHARS_H

#include <stdbool.h>

#include "http.h"

static inline int http_fail(int *status, int code)
{
    if (status)
        *status = code;
    return HTTP_PARSE_ERROR;
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 9110 section 5.6.2: tchar. */
static inline bool is_tchar(unsigned char c)
{
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return is_alpha(c) || is_digit(c);
    }
}

static inline bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* field-vchar / SP / HTAB: VCHAR, obs-text (0x80-0xFF), SP and HTAB. */
static inline bool is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

#endif
