#include "optim/ema.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OMP_MIN 32768

int ema_create(Ema *e, ParamList *p, double decay, char *err, size_t n) {
    memset(e, 0, sizeof *e);
    if (!(decay >= 0 && decay <= 1)) {
        snprintf(err, n, "model EMA: decay must be in [0, 1], got %g", decay);
        return -1;
    }
    e->params = p;
    e->n = p->n;
    e->decay = decay;
    e->shadow = calloc((size_t)(p->n ? p->n : 1), sizeof(float *));
    if (!e->shadow) goto oom;
    for (int i = 0; i < p->n; i++) {
        e->shadow[i] = malloc((p->t[i]->numel ? p->t[i]->numel : 1) * sizeof(float));
        if (!e->shadow[i]) goto oom;
    }
    ema_reset(e);
    return 0;
oom:
    snprintf(err, n, "model EMA: out of memory for a copy of %zu parameters", mt_params_count(p));
    ema_free(e);
    return -1;
}

void ema_free(Ema *e) {
    if (e->swapped) ema_swap(e); /* restore the model's own weights (the params must still exist) */
    if (e->shadow)
        for (int i = 0; i < e->n; i++) free(e->shadow[i]);
    free(e->shadow);
    memset(e, 0, sizeof *e);
}

void ema_reset(Ema *e) {
    for (int i = 0; i < e->n; i++) {
        Tensor *t = e->params->t[i];
        if (e->swapped) memcpy(t->data, e->shadow[i], t->numel * sizeof(float));
        else memcpy(e->shadow[i], t->data, t->numel * sizeof(float));
    }
}

double ema_decay_at(const Ema *e, long n) {
    if (!e->warmup) return e->decay;
    long t = n - 1;
    if (t <= 0) return 0.0;
    double d = 1.0 - pow(1.0 + (double)t, -2.0 / 3.0);
    return d < e->decay ? d : e->decay;
}

int ema_update(Ema *e, long n) {
    if (e->swapped) return -1;
    const double dd = ema_decay_at(e, n);
    const float d = (float)dd, a = (float)(1.0 - dd); /* as timm: scalars rounded once */
    for (int i = 0; i < e->n; i++) {
        const float *w = e->params->t[i]->data;
        float *s = e->shadow[i];
        const long N = (long)e->params->t[i]->numel;
#pragma omp parallel for schedule(static) if (N >= OMP_MIN)
        for (long j = 0; j < N; j++) s[j] = d * s[j] + a * w[j];
    }
    return 0;
}

void ema_swap(Ema *e) {
    /* swap the contents, not the pointers: other code may hold t->data */
    for (int i = 0; i < e->n; i++) {
        float *w = e->params->t[i]->data, *s = e->shadow[i];
        const long N = (long)e->params->t[i]->numel;
#pragma omp parallel for schedule(static) if (N >= OMP_MIN)
        for (long j = 0; j < N; j++) {
            float tmp = w[j];
            w[j] = s[j];
            s[j] = tmp;
        }
    }
    e->swapped = !e->swapped;
}

float *ema_buf(Ema *e, int i) {
    if (i < 0 || i >= e->n) return NULL;
    return e->swapped ? e->params->t[i]->data : e->shadow[i];
}
