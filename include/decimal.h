/*
 * decimal: unsigned decimal numbers from text, strictly (digits only, no
 * sign, no blanks, no overflow).
 */
#ifndef SSE_DECIMAL_H
#define SSE_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses s[0..len) as 1 to 20 decimal digits whose value fits in a uint64.
 * False (and *out untouched) on anything else, the empty string included. */
bool decimal_parse_u64(const char *s, size_t len, uint64_t *out);

/* The number of leading decimal digits of s[0..len). */
size_t decimal_span(const char *s, size_t len);

#endif
