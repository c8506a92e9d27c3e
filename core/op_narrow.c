/* narrow: y = x[..., start:start+len, ...] along one axis (a copy).
 * x viewed as (outer, D, inner): y (outer, len, inner) copies inner*len contiguous
 * floats per outer index; backward adds them back into x's gradient. */
#include "core/ops.h"
#include <string.h>

static void dims3(const Tensor *x, int axis, size_t *outer, size_t *inner) {
    *outer = 1, *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= (size_t)x->shape[i];
    for (int i = axis + 1; i < x->ndim; i++) *inner *= (size_t)x->shape[i];
}

/* What a narrow node keeps: the slice [start, start + len) of axis. */
typedef struct NarrowSaved {
    int axis, start, len;
} NarrowSaved;

static void narrow_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *y = n->out;
    if (!x->requires_grad) return;
    const NarrowSaved *s = n->saved;
    int axis = s->axis, start = s->start, len = s->len, D = x->shape[axis];
    size_t outer, inner;
    dims3(x, axis, &outer, &inner);
    size_t run = (size_t)len * inner;
#pragma omp parallel for schedule(static) if (y->numel >= 32768)
    for (size_t o = 0; o < outer; o++) {
        float *dx = x->grad + (o * D + start) * inner;
        const float *dy = y->grad + o * run;
        for (size_t k = 0; k < run; k++) dx[k] += dy[k];
    }
}

Tensor *mt_narrow(Ctx *c, Tensor *x, int axis, int start, int len) {
    if (c->failed || !x) return NULL;
    int ax = axis < 0 ? axis + x->ndim : axis;
    char s[96];
    if (ax < 0 || ax >= x->ndim || start < 0 || len < 1 || start + len > x->shape[ax])
        return mt_fail(c, "narrow", "x %s, axis %d, start %d, len %d: need 0 <= start, len >= 1, start + len <= size",
                       mt_shape_str(x, s, sizeof s), axis, start, len);
    int shape[MT_MAXDIM];
    memcpy(shape, x->shape, sizeof shape);
    shape[ax] = len;
    Tensor *y = mt_new(c, x->ndim, shape);
    if (!y) return NULL;
    size_t outer, inner;
    dims3(x, ax, &outer, &inner);
    size_t run = (size_t)len * inner, D = (size_t)x->shape[ax];
#pragma omp parallel for schedule(static) if (y->numel >= 32768)
    for (size_t o = 0; o < outer; o++) memcpy(y->data + o * run, x->data + (o * D + start) * inner, run * sizeof(float));
    if (mt_needs_grad(c, &x, 1)) {
        Node *nd = mt_record(c, "narrow", narrow_backward, y, &x, 1);
        mt_save(c, nd, &(NarrowSaved){.axis = ax, .start = start, .len = len}, sizeof(NarrowSaved));
    }
    return y;
}
