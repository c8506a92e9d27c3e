/* Exponential moving average of the weights, timm's ModelEmaV2 / ModelEmaV3:
 *   created as a copy of every parameter, then after each optimizer step
 *   shadow = d * shadow + (1 - d) * param      (all parameters, frozen included)
 * with d = decay (ModelEmaV2), or with warmup on (ModelEmaV3 use_warmup, gamma 1,
 * power 2/3), after optimizer update n (1-based) and t = n - 1:
 *   d = 0 when t <= 0 (the first update copies the weights), else
 *   d = min(decay, 1 - (1 + t)^(-2/3))
 * so a short run averages over its recent past instead of its random init.
 * For evaluation, ema_swap exchanges the contents of the shadow and the
 * model's weights (t->data pointers never change); calling it again swaps
 * back. Free the EMA before the model (ema_free swaps back if needed). */
#pragma once
#include "core/params.h"
#include <stddef.h>

typedef struct Ema {
    ParamList *params;
    int n;
    double decay;
    int warmup;       /* ModelEmaV3 decay warmup */
    float **shadow;   /* shadow[i]: params->t[i]->numel floats */
    int swapped;      /* 1 while the EMA weights sit in the model */
} Ema;

/* decay in [0, 1]; 0, or -1 with err. */
int ema_create(Ema *e, ParamList *p, double decay, char *err, size_t n);
void ema_free(Ema *e);
/* One update from the current weights after optimizer update `n` (1-based, the
 * run's step count after the step; used only with warmup). -1 (nothing done) while swapped. */
int ema_update(Ema *e, long n);
/* The decay ema_update(e, n) applies. */
double ema_decay_at(const Ema *e, long n);
/* Exchange EMA weights and model weights (call twice to restore). */
void ema_swap(Ema *e);
/* The EMA copy of parameter i (valid whether swapped or not), NULL on a bad index.
 * For checkpoints: /ema/<params->t[i]->name>. */
float *ema_buf(Ema *e, int param_index);
/* Re-copy the current model weights into the EMA (e.g. after loading a checkpoint without /ema). */
void ema_reset(Ema *e);
