/* Per-sample channel gate: x (B, ..., C), g (B, C), y = x * sigmoid(g)[b, c]
 * over every position of sample b (RepMLP's global perceptron, squeeze-excitation).
 * Backward: dx = dy * s;  dg[b, c] = s (1 - s) * sum over positions of dy * x. */
#include "core/ops.h"
#include <math.h>
#include <string.h>

static void channel_gate_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *g = n->in[1], *y = n->out;
    int B = g->shape[0], C = g->shape[1];
    size_t P = x->numel / ((size_t)B * C);
#pragma omp parallel for schedule(static) if (x->numel >= 32768)
    for (int b = 0; b < B; b++) {
        const float *gb = g->data + (size_t)b * C;
        for (int j = 0; j < C; j++) {
            float s = 1.0f / (1.0f + expf(-gb[j]));
            double acc = 0;
            for (size_t p = 0; p < P; p++) {
                size_t k = ((size_t)b * P + p) * C + j;
                if (x->requires_grad) x->grad[k] += y->grad[k] * s;
                acc += (double)y->grad[k] * x->data[k];
            }
            if (g->requires_grad) g->grad[(size_t)b * C + j] += (float)(acc * s * (1.0f - s));
        }
    }
}

Tensor *mt_channel_gate(Ctx *c, Tensor *x, Tensor *g) {
    if (c->failed || !x || !g) return NULL;
    char sx[96], sgs[96];
    if (x->ndim < 2 || g->ndim != 2 || g->shape[0] != x->shape[0] || g->shape[1] != mt_last(x))
        return mt_fail(c, "channel_gate", "x %s, g %s: need x (B, ..., C) and g (B, C)",
                       mt_shape_str(x, sx, sizeof sx), mt_shape_str(g, sgs, sizeof sgs));
    Tensor *y = mt_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    int B = g->shape[0], C = g->shape[1];
    size_t P = x->numel / ((size_t)B * C);
    float *sg = arena_alloc(&c->arena, (size_t)B * C * sizeof(float));
    if (!sg) return NULL;
    for (size_t k = 0; k < (size_t)B * C; k++) sg[k] = 1.0f / (1.0f + expf(-g->data[k]));
#pragma omp parallel for schedule(static) if (x->numel >= 32768)
    for (int b = 0; b < B; b++)
        for (size_t p = 0; p < P; p++) {
            const float *xr = x->data + ((size_t)b * P + p) * C, *sb = sg + (size_t)b * C;
            float *yr = y->data + ((size_t)b * P + p) * C;
            for (int j = 0; j < C; j++) yr[j] = xr[j] * sb[j];
        }
    Tensor *in[2] = {x, g};
    if (mt_needs_grad(c, in, 2)) mt_record(c, "channel_gate", channel_gate_backward, y, in, 2);
    return y;
}
