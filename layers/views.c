/* Free views: parameters in another shape (sharing data and the persistent gradient), and
 * channels-last grids (B, H, W, C) as token sequences (B, N, C) and back. */
#include "layers/layers.h"
#include <string.h>

static Tensor *view(Ctx *c, Tensor *p, int ndim, const int *shape) {
    if (!p) return NULL;
    Tensor *v = arena_alloc(&c->arena, sizeof *v);
    *v = *p;
    v->ndim = ndim;
    memset(v->shape, 0, sizeof v->shape);
    memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
    return v;
}

Tensor *vec_view(Ctx *c, Tensor *p) {
    if (!p || p->ndim == 1) return p;
    int s[1] = {(int)p->numel};
    return view(c, p, 1, s);
}

Tensor *mat_view(Ctx *c, Tensor *p) {
    if (!p || p->ndim == 2) return p;
    int s[2] = {p->shape[0], (int)(p->numel / (size_t)p->shape[0])};
    return view(c, p, 2, s);
}

Tensor *as_tokens(Ctx *c, Tensor *x) {
    if (!x) return NULL;
    int s[3] = {x->shape[0], x->shape[1] * x->shape[2], x->shape[3]};
    return mt_reshape(c, x, 3, s);
}

Tensor *as_grid(Ctx *c, Tensor *t, const Tensor *like) {
    if (!t || !like) return NULL;
    return mt_reshape(c, t, 4, like->shape);
}
