/* An HDF5 dataset file for exact, preprocessing-free runs:
 *   images (N, C, H, W) float32 (already normalised)
 *   labels (N) any integer type, each in [0, classes) or -1 (no label) (optional: absent -> every label -1)
 * Rows are read in chunks [i, i+n) with hyperslabs, never the whole file.
 * The file is untrusted: both datasets are opened through data/h5guard.h (no
 * links or storage outside the file, declared sizes backed by stored bytes),
 * ranks, classes, sizes and label ranges are checked. Plain arrays only (no tensors). */
#pragma once
#include "data/batch.h"
#include <stddef.h>
#include <stdint.h>

typedef struct H5Data {
    int64_t file, images, labels;   /* hid_t, -1 when closed / absent */
    long n;                         /* samples */
    int c, h, w;
    int has_labels;
    int num_classes;                /* labels must be below it; 0: below H5DATA_MAX_CLASSES (set after open) */
    char path[512];
} H5Data;

#define H5DATA_MAX_CLASSES (1 << 20)   /* the --num-classes limit */

/* 1 when path is an HDF5 file (by signature), 0 otherwise. */
int h5data_probe(const char *path);
/* 0 ok, -1 with err naming the path and what is wrong. */
int h5data_open(H5Data *d, const char *path, char *err, size_t errn);
/* Rows [start, start + count) into b (allocated for at least count rows of
 * d's c,h,w). Sets b->n = count; labels -1 when the file has none. A label
 * outside [0, num_classes) other than -1 (no label) is an error naming the file
 * and the index. 0 ok, -1 error. */
int h5data_read(H5Data *d, long start, int count, Batch *b, char *err, size_t errn);
/* Only the labels of rows [start, start + count) (the 'labels' dataset alone). */
int h5data_read_labels(H5Data *d, long start, int count, int *out, char *err, size_t errn);
/* Sets num_classes and checks every label against it up front (labels only). */
int h5data_check_labels(H5Data *d, int num_classes, char *err, size_t errn);
void h5data_close(H5Data *d);
