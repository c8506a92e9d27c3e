/* PoolFormer's token mixer: pool(x) - x, average pooling (stride 1, pad k/2, padding not
 * counted, timm's count_include_pad=False) minus the input. */
#include "layers/layers.h"
#include "core/fuse.h"

typedef struct TokPool { int k; } TokPool;

static int reg(Model *m, TokenMixer *tm, const char *prefix, int h, int w, int C, const FamilyInit *fi, char *err,
               size_t n) {
    TokPool *s = mixer_state(tm, sizeof *s, err, n);
    if (!s) return -1;
    s->k = m->cfg.pool_size;
    return 0;
}

static Tensor *forward(Ctx *c, const TokenMixer *tm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma) {
    Tensor *t = mt_avgpool2d(c, x, ((const TokPool *)tm->state)->k, 1);
    return res ? mt_residual(c, res, t, gamma) : t;
}

/* x + gamma * (pool(n) - n), n = norm(x), as one op when the norm is GroupNorm(1) or affine:
 * with a tape mt_norm_pool_residual (one node saving only the norm's statistics); without,
 * one pass of mt_pool_residual (the norm folds into per-sample and per-channel scales). NULL
 * when the rule (core/fuse.h) says no: the block then runs the norm layer and forward. */
static Tensor *norm_branch(Ctx *c, const TokenMixer *tm, const Norm *nm, Tensor *x, Tensor *gamma) {
    if ((nm->kind != NORM_GROUPNORM && nm->kind != NORM_AFFINE) || !x) return NULL;
    int k = ((const TokPool *)tm->state)->k;
    Tensor *in[4] = {x, nm->w, nm->b, gamma};
    int taped = mt_needs_grad(c, in, 4);
    if (!mt_fuse_ok(c, taped ? MT_FUSE_NORM_POOL_RESIDUAL : MT_FUSE_POOL_RESIDUAL, taped)) return NULL;
    if (taped)
        return mt_norm_pool_residual(c, x, nm->kind == NORM_GROUPNORM ? MT_NORM_GROUP1 : MT_NORM_AFFINE,
                                     vec_view(c, nm->w), vec_view(c, nm->b), nm->eps, k, gamma);
    int B = x->shape[0], C = mt_last(x);
    float *chan = arena_alloc(&c->arena, (size_t)C * sizeof(float)), *samp = NULL;
    for (int j = 0; j < C; j++) chan[j] = nm->w->data[j] * (gamma ? gamma->data[j] : 1.0f);
    if (nm->kind == NORM_GROUPNORM) {
        samp = arena_alloc(&c->arena, (size_t)B * sizeof(float));
        if (mt_groupnorm1_stats(c, x, nm->eps, NULL, samp)) return NULL;
    }
    return mt_pool_residual(c, x, k, chan, samp);
}

static double flops(const ModelConfig *cfg, int N, int C, int h, int w) { return 0; }

const MixerDef mixer_pool = {
    .name = "pool", .about = "average pooling minus the input (PoolFormer)", .needs_grid = 1,
    .reg = reg, .forward = forward, .norm_branch = norm_branch, .flops = flops,
};
