/* A batch as the data pipeline hands it to training: plain float arrays, no
 * tensors (data/ knows nothing of the tape). */
#pragma once

typedef struct Batch {
    int n, c, h, w;       /* images (n, c, h, w) float32, normalised */
    float *images;
    int *labels;          /* (n) class indices; -1 when unknown */
    float *soft;          /* (n, num_classes) targets after mixup/cutmix/smoothing, or NULL */
    int num_classes;
} Batch;

/* Allocate / free a batch's arrays (soft only when num_classes > 0 and with_soft). */
int batch_alloc(Batch *b, int n, int c, int h, int w, int num_classes, int with_soft);
void batch_free(Batch *b);
