/* Norms: registration under timm's names and the forward on the tape. */
#include "layers/layers.h"
#include <string.h>

int norm_register(Model *m, Norm *nm, NormKind kind, float eps, const char *prefix, int dim, char *err, size_t n) {
    memset(nm, 0, sizeof *nm);
    nm->kind = kind;
    nm->eps = eps;
    InitSpec one = init_spec(INIT_ONES, 0), zero = init_spec(INIT_ZEROS, 0);
    switch (kind) {
    case NORM_LAYERNORM:
    case NORM_GROUPNORM:
        if (!(nm->w = reg1(m, err, n, one, prefix, "weight", dim))) return -1;
        if (!(nm->b = reg1(m, err, n, zero, prefix, "bias", dim))) return -1;
        break;
    case NORM_AFFINE: { /* timm's Affine: alpha, beta of shape (1, 1, dim) */
        int s[3] = {1, 1, dim};
        if (!(nm->w = reg_param(m, err, n, one, prefix, "alpha", 3, s))) return -1;
        if (!(nm->b = reg_param(m, err, n, zero, prefix, "beta", 3, s))) return -1;
        break;
    }
    case NORM_RMSNORM:
        if (!(nm->w = reg1(m, err, n, one, prefix, "weight", dim))) return -1;
        break;
    case NORM_NONE: break;
    }
    return 0;
}

Tensor *norm_forward(Ctx *c, const Norm *nm, Tensor *x) {
    switch (nm->kind) {
    case NORM_LAYERNORM: return mt_layernorm(c, x, nm->w, nm->b, nm->eps);
    case NORM_GROUPNORM: return mt_groupnorm1(c, x, nm->w, nm->b, nm->eps);
    case NORM_AFFINE: return mt_affine(c, x, vec_view(c, nm->w), vec_view(c, nm->b));
    case NORM_RMSNORM: return mt_rmsnorm(c, x, nm->w, nm->eps);
    case NORM_NONE: return x;
    }
    return x;
}
