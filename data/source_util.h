/* Helpers of the data formats layer (src_escape is also used by commands printing names from files). */
#pragma once
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* snprintf into err when err != NULL; always returns -1 for `return seterr(...)`. */
int src_seterr(char *err, size_t errn, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The same with a va_list, for formatters of their own (h5g_fail). */
int src_vseterr(char *err, size_t errn, const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 0)))
#endif
    ;
/* Bounded copy, always NUL terminated. */
void src_strlcpy(char *dst, const char *src, size_t n);
/* Case-insensitive suffix test ("x.JPG" ends with ".jpg"). */
int src_ends_with_ci(const char *s, const char *suffix);
/* 1 for a file name with an image extension (jpg/jpeg/png, any case). */
int src_is_image_name(const char *name);
/* Directory part of path ("." when none), malloc'd. */
char *src_dirname(const char *path);
/* a + "/" + b, malloc'd (b returned as is when absolute or a is "" / "."). */
char *src_join(const char *a, const char *b);
/* 1 regular file, 2 directory, 3 something else (FIFO, device, socket), 0 missing. */
int src_path_kind(const char *path);
/* Opens path read-only when it is a regular file, else -1 with err naming it ("not a regular
 * file (FIFO)"). O_NONBLOCK at open and fstat on the opened descriptor: a FIFO or device named
 * like an input never blocks, and a file swapped after a stat() is still caught. The returned
 * descriptor is blocking and close-on-exec. */
int src_open_regular(const char *path, char *err, size_t errn);
/* fopen(path, "rb") through src_open_regular. NULL with err set otherwise. */
FILE *src_fopen_regular(const char *path, char *err, size_t errn);
/* s with control bytes (< 0x20, 0x7f) written as \n, \t, \r or \xNN, bounded copy into out
 * (ends with "..." when cut). For printing names and paths that came from files. Returns out. */
const char *src_escape(const char *s, char *out, size_t n);
/* 1 when s holds a control byte (< 0x20 or 0x7f). */
int src_has_control(const char *s);
/* Whole regular file into memory (at most max bytes, else error). 0 ok, -1 error. */
int src_read_file(const char *path, size_t max, uint8_t **out, size_t *n, char *err, size_t errn);
/* mkdir -p of a directory path. 0 ok, -1 error. */
int src_mkdirs(const char *dir, char *err, size_t errn);
/* Sort an array of strings with strcmp. */
void src_sort_strings(char **v, int n);
/* "0.5,0.25,0.125" -> out[] (at most max), the count; -1 when malformed or too many. */
int src_parse_floats(const char *s, float *out, int max);
