/* Building blocks shared by every family: norms, MLPs, token mixers and the
 * MetaFormer block, as parameter registration + forward on the tape.
 * Activations are channels-last: blocks see (B, H, W, C); mixers that work on
 * the token axis view it as (B, N, C) with N = H*W (a free reshape). */
#include "layers/layers.h"
#include <stdio.h>
#include <string.h>

/* ---- registration ---- */

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

/* ---- views of parameters (share data and the persistent grad buffer) ---- */

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

/* ---- forward ---- */

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

/* fc2(act(fc1(nm(x)))) over the last axis (nm NULL: x as is); 1x1 conv weights are viewed
 * as (out, in). Gated: fc2(glu(fc1(x))). gMLP: fc2(sgu(act(fc1(x)))).
 * A LayerNorm or GroupNorm(1) nm is folded into fc1 (applied while its GEMM packs x, when
 * nothing is recorded). With res: res + gamma * fc2(...) (gamma may be NULL), the residual
 * in fc2's epilogue; with a foldable norm too, the whole MLP is one op
 * (mt_norm_mlp_residual: fc1 and fc2 chained per block of rows). */
Tensor *mlp_forward(Ctx *c, const Mlp *mlp, const Norm *nm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma) {
    Tensor *h;
    int foldable = nm && !mlp->gated && (nm->kind == NORM_LAYERNORM || nm->kind == NORM_GROUPNORM);
    if (foldable && res && !mlp->sgu)
        return mt_norm_mlp_residual(c, x, nm->kind == NORM_GROUPNORM, nm->w, nm->b, nm->eps, mat_view(c, mlp->fc1_w),
                                    mlp->fc1_b, act, mat_view(c, mlp->fc2_w), mlp->fc2_b, res, gamma);
    /* training with drop path (no residual here) and MLPs without a norm to fold */
    if (!mlp->gated && !mlp->sgu && (!nm || (foldable && c->grad_enabled)))
        return mt_mlp_residual(c, nm ? norm_forward(c, nm, x) : x, mat_view(c, mlp->fc1_w), mlp->fc1_b, act,
                               mat_view(c, mlp->fc2_w), mlp->fc2_b, res, gamma);
    if (foldable) {
        h = mt_norm_linear_act(c, x, nm->kind == NORM_GROUPNORM, nm->w, nm->b, nm->eps, mat_view(c, mlp->fc1_w),
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

static Tensor *as_tokens(Ctx *c, Tensor *x) {
    if (!x) return NULL;
    int s[3] = {x->shape[0], x->shape[1] * x->shape[2], x->shape[3]};
    return mt_reshape(c, x, 3, s);
}

static Tensor *as_grid(Ctx *c, Tensor *t, const Tensor *like) {
    if (!t || !like) return NULL;
    return mt_reshape(c, t, 4, like->shape);
}

/* Token mixers without a GEMM of their own to fuse into (pool, attention, ...). */
static Tensor *token_mixer_plain(Ctx *c, const TokenMixer *tm, Tensor *x) {
    Tensor *t;
    switch (tm->kind) {
    case MIX_IDENTITY: return x;
    case MIX_POOL: return mt_avgpool2d(c, x, tm->pool_size, 1);
    case MIX_ATTENTION:
        t = mt_linear(c, as_tokens(c, x), tm->qkv_w, tm->qkv_b);
        t = mt_attention(c, t, tm->heads);
        t = mt_linear(c, t, tm->proj_w, tm->proj_b);
        return as_grid(c, t, x);
    case MIX_EXTERNAL: return as_grid(c, external_forward(c, tm, as_tokens(c, x)), x);
    case MIX_REPMLP: return repmlp_forward(c, tm, x);
    case MIX_SGU: return x; /* gMLP: the gating unit lives in the channel MLP */
    case MIX_MLP:
    case MIX_LINEAR:
    case MIX_RANDOM: break; /* token_mixer_forward */
    }
    return x;
}

/* The token mixer's output; with res, res + gamma * output (gamma may be NULL), fused into
 * the last token GEMM where there is one. */
static Tensor *token_mixer_forward(Ctx *c, const TokenMixer *tm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma) {
    Tensor *t;
    switch (tm->kind) {
    case MIX_MLP:
        return as_grid(c, mt_token_mlp_residual(c, as_tokens(c, x), tm->mlp.fc1_w, tm->mlp.fc1_b, act, tm->mlp.fc2_w,
                                                tm->mlp.fc2_b, res ? as_tokens(c, res) : NULL, gamma),
                       x);
    case MIX_LINEAR:
    case MIX_RANDOM:
        if (res) return as_grid(c, mt_token_linear_residual(c, as_tokens(c, x), tm->w, tm->b, as_tokens(c, res), gamma), x);
        return as_grid(c, mt_token_linear(c, as_tokens(c, x), tm->w, tm->b), x);
    default: break;
    }
    t = token_mixer_plain(c, tm, x);
    return res ? mt_residual(c, res, t, gamma) : t;
}

/* x + gamma * (pool(norm1(x)) - norm1(x)) as one op when norm1 is GroupNorm(1) or affine:
 * recorded, mt_norm_pool_residual (one tape node, saves only the norm's statistics); without a
 * tape, one pass of mt_pool_residual (the norm folds into per-sample and per-channel scales).
 * NULL when this block cannot take that path. */
static Tensor *pool_branch_fused(Ctx *c, const Block *blk, Tensor *x, Tensor *gamma) {
    const Norm *nm = &blk->norm1;
    if (blk->mix.kind != MIX_POOL || (nm->kind != NORM_GROUPNORM && nm->kind != NORM_AFFINE) || !x) return NULL;
    Tensor *in[4] = {x, nm->w, nm->b, gamma};
    if (mt_needs_grad(c, in, 4))
        return mt_norm_pool_residual(c, x, nm->kind == NORM_GROUPNORM, vec_view(c, nm->w), vec_view(c, nm->b), nm->eps,
                                     blk->mix.pool_size, gamma);
    int B = x->shape[0], C = mt_last(x);
    float *chan = arena_alloc(&c->arena, (size_t)C * sizeof(float)), *samp = NULL;
    for (int j = 0; j < C; j++) chan[j] = nm->w->data[j] * (gamma ? gamma->data[j] : 1.0f);
    if (nm->kind == NORM_GROUPNORM) {
        samp = arena_alloc(&c->arena, (size_t)B * sizeof(float));
        if (mt_groupnorm1_stats(c, x, nm->eps, NULL, samp)) return NULL;
    }
    return mt_pool_residual(c, x, blk->mix.pool_size, chan, samp);
}

/* x + gamma * drop_path(y): the residual join when drop path is drawn. */
static Tensor *join(Ctx *c, const Block *blk, Tensor *x, Tensor *y, Tensor *gamma) {
    return mt_residual(c, x, mt_drop_path(c, y, blk->drop_path), gamma);
}

/* Drop path sits between a branch and its residual; when it is off (inference, or rate 0)
 * the residual is handed to the branch, whose last GEMM adds it in its epilogue. */
Tensor *block_forward(Ctx *c, const Block *blk, Tensor *x, mt_act act) {
    int dp = c->training && blk->drop_path > 0;
    if (blk->gmlp) { /* timm SpatialGatingBlock: x + drop_path(mlp_channels(norm(x))) */
        mt_scope(c, "%s.norm+%s", blk->name, blk->mlp_name);
        if (!dp) return mlp_forward(c, &blk->mlp, &blk->norm1, x, act, x, NULL);
        return join(c, blk, x, mlp_forward(c, &blk->mlp, &blk->norm1, x, act, NULL, NULL), NULL);
    }
    Tensor *ls1 = vec_view(c, blk->ls1), *ls2 = vec_view(c, blk->ls2), *y, *fused = NULL;
    mt_scope(c, "%s.%s", blk->name, blk->mix_name);
    if (!dp) fused = pool_branch_fused(c, blk, x, ls1);
    if (fused || c->failed) x = fused;
    else {
        mt_scope(c, "%s.norm1", blk->name);
        y = norm_forward(c, &blk->norm1, x);
        mt_scope(c, "%s.%s", blk->name, blk->mix_name);
        if (!dp) x = token_mixer_forward(c, &blk->mix, y, act, x, ls1);
        else x = join(c, blk, x, token_mixer_forward(c, &blk->mix, y, act, NULL, NULL), ls1);
    }
    mt_scope(c, "%s.norm2+%s", blk->name, blk->mlp_name);
    if (!dp) return mlp_forward(c, &blk->mlp, &blk->norm2, x, act, x, ls2);
    return join(c, blk, x, mlp_forward(c, &blk->mlp, &blk->norm2, x, act, NULL, NULL), ls2);
}

/* ---- flops ---- */

double mixer_flops(const ModelConfig *cfg, int kind, int N, int C, int h, int w) {
    (void)h, (void)w;
    switch (kind) {
    case MIX_MLP: {
        double Nh = (int)((double)cfg->mlp_ratio_tokens * C);
        return 2.0 * C * (2.0 * N * Nh);
    }
    case MIX_LINEAR:
    case MIX_RANDOM: return 2.0 * C * (double)N * N;
    case MIX_ATTENTION: {
        int heads, A;
        attention_dims(cfg, C, &heads, &A);
        return 2.0 * N * (double)C * 3 * A + 2.0 * 2.0 * (double)N * N * A + 2.0 * N * (double)A * C;
    }
    case MIX_EXTERNAL: return 2.0 * 2.0 * N * (double)C * cfg->mem_units;
    case MIX_REPMLP: {
        double f = 2.0 * C * (double)N * N;
        for (int i = 0; !cfg->rep_deploy && i < MT_MAX_STAGES && cfg->rep_kernels[i]; i++)
            f += 2.0 * C * (double)N * cfg->rep_kernels[i] * cfg->rep_kernels[i];
        return f;
    }
    default: return 0; /* pool, identity: no multiply-adds worth counting */
    }
}

/* ---- token mixer and MLP registration ---- */

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

int mixer_register(Model *m, TokenMixer *tm, MixKind kind, const char *prefix, int N, int C, FamilyInit fi,
                   char *err, size_t n) {
    memset(tm, 0, sizeof *tm);
    tm->kind = kind;
    tm->pool_size = m->cfg.pool_size;
    char p[200];
    switch (kind) {
    case MIX_MLP: /* timm Mixer: hidden = int(mlp_ratio_tokens * C), over the N tokens */
        return mlp_register(m, &tm->mlp, prefix, N, (int)((double)m->cfg.mlp_ratio_tokens * C), 0, fi, err, n);
    case MIX_LINEAR: {
        InitSpec bi = strstr(prefix, "mlp") ? fi.mlp_bias : fi.bias;
        if (!(tm->w = reg2(m, err, n, fi.weight, prefix, "weight", N, N))) return -1;
        if (!(tm->b = reg1(m, err, n, bi, prefix, "bias", N))) return -1;
        return 0;
    }
    case MIX_RANDOM: /* RandFormer: frozen softmax(rand(N, N)) */
        if (!(tm->w = reg2(m, err, n, init_spec(INIT_RANDOM_MIX, 0), prefix, "random_matrix", N, N))) return -1;
        tm->w->requires_grad = 0;
        return 0;
    case MIX_ATTENTION: {
        int A;
        attention_dims(&m->cfg, C, &tm->heads, &A);
        snprintf(p, sizeof p, "%s.qkv", prefix);
        if (!(tm->qkv_w = reg2(m, err, n, fi.weight, p, "weight", 3 * A, C))) return -1;
        if (!strcmp(m->cfg.family, "vit") && !(tm->qkv_b = reg1(m, err, n, fi.bias, p, "bias", 3 * A))) return -1;
        snprintf(p, sizeof p, "%s.proj", prefix);
        if (!(tm->proj_w = reg2(m, err, n, fi.weight, p, "weight", C, A))) return -1;
        if (!(tm->proj_b = reg1(m, err, n, fi.bias, p, "bias", C))) return -1;
        return 0;
    }
    case MIX_EXTERNAL: return external_register(m, tm, prefix, C, fi, err, n);
    case MIX_REPMLP: {
        int h = 1;
        while (h * h < N) h++;
        if (h * h != N) return snprintf(err, n, "model %s: %s: repmlp needs a square grid, got %d tokens", m->cfg.name,
                                        prefix, N), -1;
        return repmlp_register(m, tm, prefix, h, h, C, fi, err, n);
    }
    case MIX_POOL:
    case MIX_IDENTITY:
    case MIX_SGU: return 0;
    }
    return 0;
}
