/* Files for the C tests that write their own inputs into a temporary directory. */
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The whole file in a malloc'd buffer (one spare byte after it, for a terminator), its size in
 * *n; NULL (and *n = 0) if it cannot be opened. */
static inline uint8_t *tf_read_all(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* Writes n bytes to path; exits naming the file if it cannot (the test's own setup failed). */
static inline void tf_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* "dir/name" in one of 8 rotating static buffers: up to 8 paths can be live in one call. */
static inline char *tf_path(const char *dir, const char *name) {
    static char buf[8][640];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}
