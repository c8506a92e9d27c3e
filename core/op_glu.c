/* Gated linear units (Shazeer 2020, "GLU Variants Improve Transformer") on the
 * last axis, laid out as timm's GluMlp with gate_last: x (..., 2h) = [a | g],
 *   y = a * act(g),  da = dy * act(g),  dg = dy * a * act'(g). */
#include "core/ops.h"
#include <math.h>

static inline float gate_f(int act, float g, float *d) {
    switch (act) {
    case MT_GATE_SIGMOID: {
        float s = 1.0f / (1.0f + expf(-g));
        *d = s * (1.0f - s);
        return s;
    }
    case MT_GATE_GELU: {
        float cdf = 0.5f * (1.0f + erff(g * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * g * g);
        *d = cdf + g * pdf;
        return g * cdf;
    }
    case MT_GATE_SILU: {
        float s = 1.0f / (1.0f + expf(-g));
        *d = s * (1.0f + g * (1.0f - s));
        return g * s;
    }
    default: /* relu */
        *d = g > 0 ? 1.0f : 0.0f;
        return g > 0 ? g : 0.0f;
    }
}

/* What a glu node keeps: the gate's activation. */
typedef struct GluSaved {
    int act;
} GluSaved;

static void glu_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad) return;
    int h = mt_last(y), act = ((const GluSaved *)n->saved)->act;
    size_t rows = mt_rows(y);
#pragma omp parallel for schedule(static) if (y->numel >= 16384)
    for (size_t r = 0; r < rows; r++) {
        const float *xa = x->data + r * 2 * h, *xg = xa + h, *dy = y->grad + r * h;
        float *da = x->grad + r * 2 * h, *dg = da + h;
        for (int j = 0; j < h; j++) {
            float d, v = gate_f(act, xg[j], &d);
            da[j] += dy[j] * v;
            dg[j] += dy[j] * xa[j] * d;
        }
    }
}

Tensor *mt_glu(Ctx *c, Tensor *x, mt_gate act) {
    if (c->failed || !x) return NULL;
    char s[96];
    if (mt_last(x) % 2 || act < MT_GATE_SIGMOID || act > MT_GATE_RELU)
        return mt_fail(c, "glu", "x %s, act %d: the last axis must be even (value | gate halves)",
                       mt_shape_str(x, s, sizeof s), (int)act);
    int shape[MT_MAXDIM];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    int h = shape[x->ndim - 1] /= 2;
    Tensor *y = mt_new(c, x->ndim, shape);
    if (!y) return NULL;
    size_t rows = mt_rows(y);
#pragma omp parallel for schedule(static) if (y->numel >= 16384)
    for (size_t r = 0; r < rows; r++) {
        const float *xa = x->data + r * 2 * h, *xg = xa + h;
        float *yr = y->data + r * h, d;
        for (int j = 0; j < h; j++) yr[j] = xa[j] * gate_f(act, xg[j], &d);
    }
    if (mt_needs_grad(c, &x, 1)) mt_save(c, mt_record(c, "glu", glu_backward, y, &x, 1), &(GluSaved){act}, sizeof(GluSaved));
    return y;
}
