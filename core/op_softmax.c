/* Softmax over the last axis, numerically stable (the row maximum is
 * subtracted before exp). Backward: dx = y * (dy - sum(dy * y)). */
#include "core/ops.h"
#include <math.h>

/* Below this many elements of work a loop runs on one thread: waking the team costs more. */
#define PAR_MIN 32768

static void softmax_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad) return;
    int K = mt_last(y);
    size_t rows = mt_rows(y);
#pragma omp parallel for schedule(static) if ((size_t)(y->numel) >= PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y->data + r * K, *dyr = y->grad + r * K;
        float *dxr = x->grad + r * K;
        float dot = 0.0f;
        for (int j = 0; j < K; j++) dot += dyr[j] * yr[j];
        for (int j = 0; j < K; j++) dxr[j] += yr[j] * (dyr[j] - dot);
    }
}

Tensor *mt_softmax(Ctx *c, Tensor *x) {
    if (c->failed || !x) return NULL;
    Tensor *y = mt_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    int K = mt_last(x);
    size_t rows = mt_rows(x);
#pragma omp parallel for schedule(static) if ((size_t)(x->numel) >= PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x->data + r * K;
        float *yr = y->data + r * K;
        float m = xr[0];
        for (int j = 1; j < K; j++) m = xr[j] > m ? xr[j] : m;
        float s = 0.0f;
        for (int j = 0; j < K; j++) {
            yr[j] = expf(xr[j] - m);
            s += yr[j];
        }
        float inv = 1.0f / s;
        for (int j = 0; j < K; j++) yr[j] *= inv;
    }
    if (mt_needs_grad(c, &x, 1)) mt_record(c, "softmax", softmax_backward, y, &x, 1);
    return y;
}
