#include "train/synthetic_batch.h"
#include <stdlib.h>
#include <string.h>

int synthetic_batch(SyntheticBatch *sb, const ModelConfig *cfg, int B, uint64_t seed) {
    size_t nimg = (size_t)B * cfg->in_chans * cfg->img_size * cfg->img_size;
    sb->images = malloc(nimg * sizeof(float));
    sb->labels = malloc((size_t)B * sizeof(int));
    if (!sb->images || !sb->labels) {
        synthetic_batch_free(sb);
        return -1;
    }
    uint64_t s = seed; /* xorshift64 */
    for (size_t i = 0; i < nimg; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        sb->images[i] = (float)(s >> 40) / 16777216.0f * 2.0f - 1.0f;
    }
    for (int i = 0; i < B; i++) sb->labels[i] = i % cfg->num_classes;
    int shape[4] = {B, cfg->in_chans, cfg->img_size, cfg->img_size};
    memcpy(sb->shape, shape, sizeof shape);
    return 0;
}

void synthetic_batch_free(SyntheticBatch *sb) {
    free(sb->images);
    free(sb->labels);
    sb->images = NULL;
    sb->labels = NULL;
}
