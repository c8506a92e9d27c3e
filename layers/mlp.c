/* Channel MLPs (plain, GLU variants, gMLP's spatial gating) and the MLP registration that
 * token mixers share: parameters under timm's names, the forward with the fusion paths. */
#include "layers/layers.h"
#include <stdio.h>
#include <string.h>

int mlp_register(Model *m, Mlp *mlp, const char *prefix, int in, int hidden, int conv1x1, FamilyInit fi,
                 char *err, size_t n) {
    char p[200];
    int k = conv1x1 ? 4 : 2;
    int s1[4] = {hidden, in, 1, 1}, s2[4] = {in, hidden, 1, 1};
    InitSpec bi = strstr(prefix, "mlp") ? fi.mlp_bias : fi.bias;
    snprintf(p, sizeof p, "%s.fc1", prefix);
    if (!(mlp->fc1_w = reg_param(m, err, n, fi.weight, p, "weight", k, s1))) return -1;
    if (!(mlp->fc1_b = reg1(m, err, n, bi, p, "bias", hidden))) return -1;
    snprintf(p, sizeof p, "%s.fc2", prefix);
    if (!(mlp->fc2_w = reg_param(m, err, n, fi.weight, p, "weight", k, s2))) return -1;
    if (!(mlp->fc2_b = reg1(m, err, n, bi, p, "bias", in))) return -1;
    return 0;
}

int chan_mlp_register(Model *m, Mlp *mlp, const char *prefix, int in, int conv1x1, FamilyInit fi, char *err,
                      size_t n) {
    int gate, h = mlp_hidden(&m->cfg, in, &gate);
    memset(mlp, 0, sizeof *mlp);
    if (gate < 0) return mlp_register(m, mlp, prefix, in, h, conv1x1, fi, err, n);
    /* timm GluMlp: fc1 (2h, in) -> [value | gate], fc2 (in, h) */
    char p[200];
    int k = conv1x1 ? 4 : 2;
    int s1[4] = {2 * h, in, 1, 1}, s2[4] = {in, h, 1, 1};
    InitSpec bi = strstr(prefix, "mlp") ? fi.mlp_bias : fi.bias;
    mlp->gated = 1;
    mlp->gate = (mt_gate)gate;
    snprintf(p, sizeof p, "%s.fc1", prefix);
    if (!(mlp->fc1_w = reg_param(m, err, n, fi.weight, p, "weight", k, s1))) return -1;
    if (!(mlp->fc1_b = reg1(m, err, n, bi, p, "bias", 2 * h))) return -1;
    snprintf(p, sizeof p, "%s.fc2", prefix);
    if (!(mlp->fc2_w = reg_param(m, err, n, fi.weight, p, "weight", k, s2))) return -1;
    if (!(mlp->fc2_b = reg1(m, err, n, bi, p, "bias", in))) return -1;
    return 0;
}

double chan_mlp_flops(const ModelConfig *cfg, int N, int C) {
    int gate, h = mlp_hidden(cfg, C, &gate);
    return gate < 0 ? 2.0 * N * 2.0 * C * h : 2.0 * N * 3.0 * C * h;
}

/* fc2(act(fc1(nm(x)))) over the last axis (nm NULL: x as is); 1x1 conv weights are viewed
 * as (out, in). Gated: fc2(glu(fc1(x))). gMLP: fc2(sgu(act(fc1(x)))).
 * A LayerNorm or GroupNorm(1) nm is folded into fc1 (applied while its GEMM packs x, when
 * nothing is recorded). With res: res + gamma * fc2(...) (gamma may be NULL), the residual
 * in fc2's epilogue; with a foldable norm too, the whole MLP is one op
 * (mt_norm_mlp_residual: fc1 and fc2 chained per block of rows). This picks entry points by
 * the layer's shape; whether each runs fused or as its primitives is core/fuse.c's rule. */
Tensor *mlp_forward(Ctx *c, const Mlp *mlp, const Norm *nm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma) {
    Tensor *h;
    int foldable = nm && !mlp->gated && (nm->kind == NORM_LAYERNORM || nm->kind == NORM_GROUPNORM);
    MtNormKind nk = nm && nm->kind == NORM_GROUPNORM ? MT_NORM_GROUP1 : MT_NORM_LAYER;
    if (foldable && res && !mlp->sgu)
        return mt_norm_mlp_residual(c, x, nk, nm->w, nm->b, nm->eps, mat_view(c, mlp->fc1_w),
                                    mlp->fc1_b, act, mat_view(c, mlp->fc2_w), mlp->fc2_b, res, gamma);
    /* training with drop path (no residual here) and MLPs without a norm to fold */
    if (!mlp->gated && !mlp->sgu && (!nm || (foldable && c->grad_enabled)))
        return mt_mlp_residual(c, nm ? norm_forward(c, nm, x) : x, mat_view(c, mlp->fc1_w), mlp->fc1_b, act,
                               mat_view(c, mlp->fc2_w), mlp->fc2_b, res, gamma);
    if (foldable) {
        h = mt_norm_linear_act(c, x, nk, nm->w, nm->b, nm->eps, mat_view(c, mlp->fc1_w),
                               mlp->fc1_b, act);
    } else if (nm) {
        return mlp_forward(c, mlp, NULL, norm_forward(c, nm, x), act, res, gamma);
    } else if (mlp->gated) {
        h = mt_linear(c, x, mat_view(c, mlp->fc1_w), mlp->fc1_b);
        h = mt_glu(c, h, mlp->gate);
    } else h = mt_linear_act(c, x, mat_view(c, mlp->fc1_w), mlp->fc1_b, act);
    if (mlp->sgu && h) {
        int B = h->shape[0], W = mt_last(h), half = W / 2;
        int s3[3] = {B, (int)(h->numel / ((size_t)B * W)), W};
        Tensor *t = mt_reshape(c, h, 3, s3);
        Tensor *u = mt_narrow(c, t, 2, 0, half), *v = mt_narrow(c, t, 2, half, half);
        v = norm_forward(c, &mlp->sgu_norm, v);
        v = mt_token_linear(c, v, mlp->sgu_w, mlp->sgu_b);
        t = mt_mul(c, u, v);
        if (!t) return NULL;
        int s[MT_MAXDIM];
        memcpy(s, h->shape, sizeof s);
        s[h->ndim - 1] = half;
        h = mt_reshape(c, t, h->ndim, s);
    }
    if (res) return mt_linear_residual(c, h, mat_view(c, mlp->fc2_w), mlp->fc2_b, res, gamma);
    return mt_linear(c, h, mat_view(c, mlp->fc2_w), mlp->fc2_b);
}
