#include "data/loader_h5.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int h5src_open(H5Source *s, const char *path, int num_classes, char *err, size_t errn) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->max_label = -1;
    if (h5data_open(&s->d, path, err, errn)) return -1;
    s->opened = 1;
    s->d.num_classes = num_classes > 0 ? num_classes : 0;
    s->n = s->d.n; s->c = s->d.c; s->h = s->d.h; s->w = s->d.w;
    size_t row = (size_t)s->c * s->h * s->w;
    s->labels = malloc((size_t)(s->n > 0 ? s->n : 1) * sizeof *s->labels);
    if (!s->labels) { snprintf(err, errn, "%s: out of memory for %ld labels", path, s->n); return -1; }
    int keep = row * sizeof(float) * (size_t)s->n <= LOADER_H5_MAX_BYTES;
    if (keep && !(s->data = malloc(row * sizeof(float) * (size_t)(s->n > 0 ? s->n : 1)))) keep = 0;
    /* One pass in chunks: the labels dataset alone, plus the images when they are kept in memory
     * (h5data_open checked that the file really stores what both declare). */
    int chunk = 4096;
    Batch b;
    memset(&b, 0, sizeof b);
    for (long i = 0; i < s->n; i += chunk) {
        int k = (int)(s->n - i < chunk ? s->n - i : chunk);
        if (keep) {
            b.c = s->c; b.h = s->h; b.w = s->w;
            b.images = s->data + (size_t)i * row;
            b.labels = s->labels + i;
            if (h5data_read(&s->d, i, k, &b, err, errn)) return -1;
        } else if (h5data_read_labels(&s->d, i, k, s->labels + i, err, errn)) {
            return -1;
        }
        for (int j = 0; j < k; j++)
            if (s->labels[i + j] > s->max_label) s->max_label = s->labels[i + j];
    }
    return 0;
}

int h5src_read(H5Source *s, long i, float *out, char *err, size_t errn) {
    size_t row = (size_t)s->c * s->h * s->w;
    if (i < 0 || i >= s->n) { snprintf(err, errn, "row %ld outside %ld", i, s->n); return -1; }
    if (s->data) { memcpy(out, s->data + (size_t)i * row, row * sizeof(float)); return 0; }
    int lab;
    Batch b;
    memset(&b, 0, sizeof b);
    b.c = s->c; b.h = s->h; b.w = s->w; b.images = out; b.labels = &lab;
    pthread_mutex_lock(&s->mu);
    int rc = h5data_read(&s->d, i, 1, &b, err, errn);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void h5src_close(H5Source *s) {
    if (s->opened) h5data_close(&s->d);
    free(s->labels);
    free(s->data);
    pthread_mutex_destroy(&s->mu);
    memset(s, 0, sizeof *s);
}
