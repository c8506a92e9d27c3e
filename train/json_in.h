/* A strict, bounded JSON reader for untrusted headers and attributes
 * (safetensors headers, the checkpoint's class_names). A cursor over a byte
 * range: no allocation, no recursion beyond the caller's own, every string
 * checked to be valid UTF-8 without raw control characters, numbers limited
 * to what the caller asks for. Errors set in->err with the byte offset. */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct JsonIn {
    const char *p, *begin, *end;
    char err[160];
} JsonIn;

void json_in_init(JsonIn *in, const char *s, size_t n);
/* Skip whitespace; the next byte or -1 at the end. */
int json_peek(JsonIn *in);
/* Consume the character c (after whitespace). 0 ok, -1 with err. */
int json_expect(JsonIn *in, char c);
/* Consume c if it is next: 1 consumed, 0 not. */
int json_accept(JsonIn *in, char c);
/* A string into out (NUL-terminated, at most cap-1 bytes; longer -> error).
 * Escapes decoded (\uXXXX incl. surrogate pairs, \u0000 refused); raw control
 * characters and invalid UTF-8 refused. *len gets the byte length (may be NULL). */
int json_string(JsonIn *in, char *out, size_t cap, size_t *len);
/* A non-negative integer (no sign, fraction or exponent) <= max. */
int json_uint(JsonIn *in, uint64_t max, uint64_t *v);
/* After the value: only whitespace (and, for safetensors, trailing spaces) left. */
int json_end(JsonIn *in);
/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates). */
int json_utf8_valid(const char *s, size_t n);
/* s as a JSON string literal into out (escaping quotes, backslashes, controls).
 * Returns the length it needs (excluding NUL), like snprintf. */
size_t json_quote(const char *s, char *out, size_t cap);
/* A number in JSON's grammar (sign, digits, fraction, exponent; at most 64 characters) that
 * is finite as a double. */
int json_number(JsonIn *in, double *v);
/* Skips one value of any type (strings checked as json_string does), nesting at most depth
 * arrays/objects deep. */
int json_skip(JsonIn *in, int depth);
