/* Models for the whole-model tests (test_fusion.c, test_mixers.c): built from a preset and
 * initialised with weights that let every parameter reach the loss, and a fixed input. */
#pragma once
#include "layers/model.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Builds cfg and initialises it (seed 7), then spreads the weights with a fixed LCG: the
 * zero-initialised head and the tiny layer scales get values of order 0.5 (else the parts
 * before them would get no gradient), every other weight a small perturbation. 0 or -1 with
 * err set. */
static inline int testmodel_build(Model *m, const ModelConfig *cfg, char *err, size_t n) {
    if (model_build(m, cfg, err, n)) return -1;
    model_init(m, 7);
    uint64_t st = 99;
    for (int i = 0; i < m->params.n; i++) {
        Tensor *t = m->params.t[i];
        for (size_t k = 0; k < t->numel; k++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            float u = (float)(st >> 40) / 16777216.0f - 0.5f;
            if (strstr(t->name, "head") || strstr(t->name, "ls") || strstr(t->name, "scale")) t->data[k] = 0.5f * u;
            else t->data[k] += 0.05f * u;
        }
    }
    return 0;
}

/* A smooth, non-periodic input image batch of n values. */
static inline void testmodel_input(float *img, size_t n) {
    for (size_t i = 0; i < n; i++) img[i] = sinf(0.37f * (float)i) + 0.3f * cosf(1.7f * (float)i);
}
