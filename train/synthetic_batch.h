/* A fixed pseudo-random batch for timing a model (bench, --precision auto): images uniform in
 * [-1, 1), labels cycling over the classes, so only compute is measured. */
#pragma once
#include "layers/model.h"
#include <stdint.h>

typedef struct SyntheticBatch {
    float *images; /* [B, in_chans, img_size, img_size] */
    int *labels;   /* [B] */
    int shape[4];
} SyntheticBatch;

/* 0, or -1 when out of memory (nothing left allocated). */
int synthetic_batch(SyntheticBatch *sb, const ModelConfig *cfg, int B, uint64_t seed);
void synthetic_batch_free(SyntheticBatch *sb);
