/*
 * number: digits in text, strictly. The one decimal parser (no sign, no
 * blanks, no overflow) and the one hex-digit value, for the HTTP parser,
 * the JSON validator, the API, the configuration, the journal's file names
 * and the token code alike.
 */
#ifndef SSE_NUMBER_H
#define SSE_NUMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses s[0..len) as one or more decimal digits whose value fits in a
 * uint64 (leading zeros allowed). False, *out untouched, on anything else,
 * the empty string included. */
bool number_parse_u64(const char *s, size_t len, uint64_t *out);

/* The number of leading decimal digits of s[0..len). */
size_t number_span(const char *s, size_t len);

/* The value of one hex digit (either case), or -1. */
int number_hex_digit(unsigned char c);

#endif
