#include "data/batch.h"
#include <stdlib.h>
#include <string.h>

int batch_alloc(Batch *b, int n, int c, int h, int w, int num_classes, int with_soft) {
    memset(b, 0, sizeof *b);
    b->n = n; b->c = c; b->h = h; b->w = w;
    b->num_classes = num_classes;
    b->images = malloc((size_t)n * c * h * w * sizeof(float));
    b->labels = malloc((size_t)n * sizeof(int));
    if (with_soft && num_classes > 0) b->soft = malloc((size_t)n * num_classes * sizeof(float));
    if (!b->images || !b->labels || (with_soft && num_classes > 0 && !b->soft)) { batch_free(b); return -1; }
    return 0;
}

void batch_free(Batch *b) {
    free(b->images);
    free(b->labels);
    free(b->soft);
    memset(b, 0, sizeof *b);
}
