/* The loader's HDF5 source (private to loader.c): an h5data file whose labels are read at
 * open, and whose images are held in memory when they fit (LOADER_H5_MAX_BYTES), else read
 * row by row (under a lock: one HDF5 handle shared by the workers). */
#pragma once
#include "data/h5data.h"
#include <pthread.h>
#include <stddef.h>

#define LOADER_H5_MAX_BYTES ((size_t)2 << 30)

typedef struct H5Source {
    H5Data d;
    int opened;
    long n;
    int c, h, w;
    int *labels;          /* n labels (-1 when the file has none) */
    int max_label;        /* -1 when none */
    float *data;          /* all images (n*c*h*w) or NULL */
    pthread_mutex_t mu;
} H5Source;

/* num_classes > 0: every label must be below it (else the error names file and index). */
int h5src_open(H5Source *s, const char *path, int num_classes, char *err, size_t errn);
/* Image of row i (c*h*w floats) into out. 0 ok, -1 error (err). Thread safe. */
int h5src_read(H5Source *s, long i, float *out, char *err, size_t errn);
void h5src_close(H5Source *s);
