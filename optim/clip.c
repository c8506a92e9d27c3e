#include "optim/clip.h"
#include <math.h>
#include <stdio.h>

#define OMP_MIN 32768

float grad_global_norm(const ParamList *p) {
    double s = 0;
    for (int i = 0; i < p->n; i++) {
        const Tensor *t = p->t[i];
        if (!t->requires_grad || !t->grad) continue;
        const float *g = t->grad;
        const long N = (long)t->numel;
        double si = 0;
#pragma omp parallel for schedule(static) reduction(+ : si) if (N >= OMP_MIN)
        for (long j = 0; j < N; j++) si += (double)g[j] * g[j];
        s += si;
    }
    return (float)sqrt(s);
}

void grads_scale(ParamList *p, float s) {
    for (int i = 0; i < p->n; i++) {
        Tensor *t = p->t[i];
        if (!t->requires_grad || !t->grad) continue;
        float *g = t->grad;
        const long N = (long)t->numel;
#pragma omp parallel for schedule(static) if (N >= OMP_MIN)
        for (long j = 0; j < N; j++) g[j] *= s;
    }
}

float clip_grad_norm(ParamList *p, float max_norm) {
    float total = grad_global_norm(p);
    if (max_norm > 0 && isfinite(total) && total > max_norm) grads_scale(p, (float)((double)max_norm / total));
    return total;
}

void clip_grad_value(ParamList *p, float clip) {
    if (!(clip >= 0)) return;
    for (int i = 0; i < p->n; i++) {
        Tensor *t = p->t[i];
        if (!t->requires_grad || !t->grad) continue;
        float *g = t->grad;
        const long N = (long)t->numel;
#pragma omp parallel for schedule(static) if (N >= OMP_MIN)
        for (long j = 0; j < N; j++) g[j] = g[j] > clip ? clip : g[j] < -clip ? -clip : g[j];
    }
}

int accum_backward(Ctx *c, Tensor *loss, int k) {
    if (k < 1) {
        mt_fail(c, "accum_backward", "accumulation steps must be >= 1, got %d", k);
        return -1;
    }
    if (c->failed) return -1;
    if (loss && loss->numel != 1) {
        char s[96];
        mt_fail(c, "accum_backward", "loss must be a scalar, got shape %s", mt_shape_str(loss, s, sizeof s));
        return -1;
    }
    if (k == 1) return mt_backward(c, loss);
    float seed = 1.0f / (float)k;
    return mt_backward_seed(c, loss, &seed);
}
