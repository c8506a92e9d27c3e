/* Private helpers of the data formats layer (not part of the public API). */
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
/* 1 regular file, 2 directory, 0 missing / other. */
int src_path_kind(const char *path);
/* Whole file into memory (at most max bytes, else error). 0 ok, -1 error. */
int src_read_file(const char *path, size_t max, uint8_t **out, size_t *n, char *err, size_t errn);
/* mkdir -p of a directory path. 0 ok, -1 error. */
int src_mkdirs(const char *dir, char *err, size_t errn);
/* Sort an array of strings with strcmp. */
void src_sort_strings(char **v, int n);
