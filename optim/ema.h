/* Exponential moving average of the weights, timm's ModelEmaV2:
 *   created as a copy of every parameter, then after each optimizer step
 *   shadow = decay * shadow + (1 - decay) * param      (all parameters, frozen included)
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
    float **shadow;   /* shadow[i]: params->t[i]->numel floats */
    int swapped;      /* 1 while the EMA weights sit in the model */
} Ema;

/* decay in [0, 1]; 0, or -1 with err. */
int ema_create(Ema *e, ParamList *p, double decay, char *err, size_t n);
void ema_free(Ema *e);
/* One update from the current weights. -1 (nothing done) while swapped. */
int ema_update(Ema *e);
/* Exchange EMA weights and model weights (call twice to restore). */
void ema_swap(Ema *e);
/* The EMA copy of parameter i (valid whether swapped or not), NULL on a bad index.
 * For checkpoints: /ema/<params->t[i]->name>. */
float *ema_buf(Ema *e, int param_index);
/* Re-copy the current model weights into the EMA (e.g. after loading a checkpoint without /ema). */
void ema_reset(Ema *e);
