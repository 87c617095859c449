/*
 * http_chunked: the chunked transfer-coding decoder of the http module
 * (declared in http.h), written from RFC 9112 section 7.1. It works in place
 * and keeps its whole state in struct http_chunked, so a body can arrive in
 * pieces of any size. Nothing here allocates or does I/O.
 */
#include "http.h"
#include "http_chars.h"
#include "number.h"

#include <limits.h>
#include <string.h>

/* Internal "carry on" result; the public results are all negative. */
#define STEP_OK 0

/* Chunked coding limits: a size line (size + extensions) and a trailer line. */
#define MAX_CHUNK_LINE 4096
/* 16 hex digits fill a uint64_t, so a longer size is an overflow (or padding). */
#define MAX_CHUNK_SIZE_DIGITS 16
/* The whole trailer section: same budget as the header section. */
#define MAX_TRAILER_BYTES HTTP_MAX_HEADER_BYTES

/*
 * chunked-body = *chunk last-chunk trailer-section CRLF     (RFC 9112 7.1)
 * chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 * chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-value ] )
 * ext-value    = token / quoted-string
 *
 * One state per position in that grammar, so the decoder can stop after any
 * byte. CRLF is required everywhere: tolerating a bare LF inside chunked
 * framing is exactly the kind of disagreement request smuggling exploits.
 */
enum chunk_state {
    CS_SIZE_FIRST = 0, /* first hex digit of a size line (zeroed struct) */
    CS_SIZE,           /* more hex digits */
    CS_EXT_BWS,        /* whitespace, then ';' must follow */
    CS_EXT_NAME_START, /* after ';': BWS then a name */
    CS_EXT_NAME,       /* inside a name */
    CS_EXT_AFTER_NAME, /* BWS after a name: '=' or ';' */
    CS_EXT_VALUE_START,
    CS_EXT_TOKEN,       /* inside a token value */
    CS_EXT_QUOTED,      /* inside a quoted-string value */
    CS_EXT_QUOTED_PAIR, /* after a backslash */
    CS_EXT_AFTER_QUOTED,
    CS_SIZE_LF, /* CR seen, LF must follow */
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILER_START, /* a trailer field or the final CRLF */
    CS_TRAILER_NAME,
    CS_TRAILER_VALUE,
    CS_TRAILER_LF,
    CS_FINAL_LF,
    CS_DONE,
    CS_FAILED_400, /* errors stick: the stream cannot be resynchronised */
    CS_FAILED_413,
};

/* What may follow a complete size, ext-name or ext-value. */
static int ext_boundary(struct http_chunked *d, unsigned char c)
{
    if (is_ows(c))
        d->state = CS_EXT_BWS;
    else if (c == ';')
        d->state = CS_EXT_NAME_START;
    else if (c == '\r')
        d->state = CS_SIZE_LF;
    else
        return 400;
    return 0;
}

/* One byte of a size line: size digits and extensions. */
static int size_line_step(struct http_chunked *d, unsigned char c)
{
    if (c != '\r' && ++d->line_len > MAX_CHUNK_LINE)
        return 400;

    switch (d->state) {
    case CS_SIZE_FIRST:
    case CS_SIZE: {
        int h = number_hex_digit(c);
        if (h >= 0) {
            /* Digits come first on the line, so line_len counts them. */
            if (d->line_len > MAX_CHUNK_SIZE_DIGITS)
                return 400;
            d->chunk_left = d->chunk_left << 4 | (uint64_t)h;
            d->state = CS_SIZE;
            return 0;
        }
        /* An empty size, or one preceded by a sign or whitespace. */
        if (d->state == CS_SIZE_FIRST)
            return 400;
        return ext_boundary(d, c);
    }
    case CS_EXT_BWS:
        if (is_ows(c))
            return 0;
        if (c != ';')
            return 400;
        d->state = CS_EXT_NAME_START;
        return 0;
    case CS_EXT_NAME_START:
        if (is_ows(c))
            return 0;
        if (!is_tchar(c))
            return 400;
        d->state = CS_EXT_NAME;
        return 0;
    case CS_EXT_NAME:
        if (is_tchar(c))
            return 0;
        if (c == '=') {
            d->state = CS_EXT_VALUE_START;
            return 0;
        }
        if (is_ows(c)) {
            d->state = CS_EXT_AFTER_NAME;
            return 0;
        }
        return ext_boundary(d, c);
    case CS_EXT_AFTER_NAME:
        if (is_ows(c))
            return 0;
        if (c == '=')
            d->state = CS_EXT_VALUE_START;
        else if (c == ';')
            d->state = CS_EXT_NAME_START;
        else
            return 400;
        return 0;
    case CS_EXT_VALUE_START:
        if (is_ows(c))
            return 0;
        if (c == '"')
            d->state = CS_EXT_QUOTED;
        else if (is_tchar(c))
            d->state = CS_EXT_TOKEN;
        else
            return 400;
        return 0;
    case CS_EXT_TOKEN:
        if (is_tchar(c))
            return 0;
        return ext_boundary(d, c);
    case CS_EXT_QUOTED:
        /* qdtext = HTAB / SP / VCHAR except '"' and '\' / obs-text */
        if (c == '"')
            d->state = CS_EXT_AFTER_QUOTED;
        else if (c == '\\')
            d->state = CS_EXT_QUOTED_PAIR;
        else if (!is_field_char(c))
            return 400;
        return 0;
    case CS_EXT_QUOTED_PAIR:
        if (!is_field_char(c))
            return 400;
        d->state = CS_EXT_QUOTED;
        return 0;
    case CS_EXT_AFTER_QUOTED:
        return ext_boundary(d, c);
    default:
        return 400;
    }
}

/* The LF ending a size line: start the chunk's data, or the trailer. */
static int size_line_end(struct http_chunked *d, unsigned char c, uint64_t max_body)
{
    if (c != '\n')
        return 400;
    d->line_len = 0;
    if (d->chunk_left == 0) {
        /* Last chunk. chunk_left now counts trailer-section bytes. */
        d->state = CS_TRAILER_START;
        return 0;
    }
    /* Refuse an oversized chunk before reading any of it. */
    if (d->total > max_body || d->chunk_left > max_body - d->total)
        return 413;
    d->state = CS_DATA;
    return 0;
}

/* One byte of the trailer section: fields are syntax-checked, then dropped. */
static int trailer_step(struct http_chunked *d, unsigned char c)
{
    if (++d->chunk_left > MAX_TRAILER_BYTES)
        return 400;
    if (c != '\r' && c != '\n' && ++d->line_len > MAX_CHUNK_LINE)
        return 400;

    switch (d->state) {
    case CS_TRAILER_START:
        if (c == '\r')
            d->state = CS_FINAL_LF;
        else if (is_tchar(c))
            d->state = CS_TRAILER_NAME;
        else
            return 400; /* obs-fold, bare LF, or not a field name */
        return 0;
    case CS_TRAILER_NAME:
        if (c == ':')
            d->state = CS_TRAILER_VALUE;
        else if (!is_tchar(c))
            return 400;
        return 0;
    case CS_TRAILER_VALUE:
        if (c == '\r')
            d->state = CS_TRAILER_LF;
        else if (!is_field_char(c))
            return 400;
        return 0;
    case CS_TRAILER_LF:
        if (c != '\n')
            return 400;
        d->line_len = 0;
        d->state = CS_TRAILER_START;
        return 0;
    case CS_FINAL_LF:
        if (c != '\n')
            return 400;
        d->state = CS_DONE;
        return 0;
    default:
        return 400;
    }
}

/* One byte outside chunk data; returns 0 or the HTTP status of the error. */
static int chunk_step(struct http_chunked *d, unsigned char c, uint64_t max_body)
{
    switch (d->state) {
    case CS_SIZE_LF:
        return size_line_end(d, c, max_body);
    case CS_DATA_CR:
        if (c != '\r')
            return 400;
        d->state = CS_DATA_LF;
        return 0;
    case CS_DATA_LF:
        if (c != '\n')
            return 400;
        d->state = CS_SIZE_FIRST;
        d->line_len = 0;
        d->chunk_left = 0;
        return 0;
    case CS_TRAILER_START:
    case CS_TRAILER_NAME:
    case CS_TRAILER_VALUE:
    case CS_TRAILER_LF:
    case CS_FINAL_LF:
        return trailer_step(d, c);
    default:
        if (d->state >= CS_SIZE_FIRST && d->state <= CS_EXT_AFTER_QUOTED)
            return size_line_step(d, c);
        return 400;
    }
}

int http_chunked_decode(struct http_chunked *dec, char *buf, size_t *len, uint64_t max_body,
                        int *status)
{
    size_t in = *len, r = 0, w = 0;

    if (dec->state == CS_FAILED_400 || dec->state == CS_FAILED_413) {
        *len = 0;
        return http_fail(status, dec->state == CS_FAILED_413 ? 413 : 400);
    }
    if (dec->state == CS_DONE) {
        /* Everything after the end of the body is "after the body". */
        *len = 0;
        if (in > INT_MAX)
            return http_fail(status, 400);
        return (int)in;
    }
    /* The return value must be able to count the bytes after the body. */
    if (in > INT_MAX) {
        *len = 0;
        return http_fail(status, 400);
    }

    while (r < in) {
        if (dec->state == CS_DATA) {
            size_t n = in - r;
            if (n > dec->chunk_left)
                n = (size_t)dec->chunk_left;
            if (w != r)
                memmove(buf + w, buf + r, n);
            w += n;
            r += n;
            dec->chunk_left -= n;
            dec->total += n;
            if (dec->chunk_left == 0)
                dec->state = CS_DATA_CR;
            continue;
        }
        int err = chunk_step(dec, (unsigned char)buf[r++], max_body);
        if (err) {
            dec->state = err == 413 ? CS_FAILED_413 : CS_FAILED_400;
            *len = w;
            return http_fail(status, err);
        }
        if (dec->state == CS_DONE) {
            *len = w;
            return (int)(in - r);
        }
    }
    *len = w;
    return HTTP_PARSE_AGAIN;
}
