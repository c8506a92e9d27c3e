/* External Attention (Guo et al. 2021, arXiv:2105.02358): two bias-free linear layers with
 * learned memories M_k (S, C) and M_v (C, S), S = --mem-units, and the double
 * normalisation: out = mv(double_norm(mk(x))) (softmax over tokens, then l1 over units). */
#include "layers/layers.h"
#include <stdio.h>

typedef struct TokExt { Tensor *mk_w, *mv_w; } TokExt;

static int reg(Model *m, TokenMixer *tm, const char *prefix, int h, int w, int C, const FamilyInit *fi, char *err,
               size_t n) {
    TokExt *s = mixer_state(tm, sizeof *s, err, n);
    if (!s) return -1;
    char p[200];
    int S = m->cfg.mem_units;
    snprintf(p, sizeof p, "%s.mk", prefix);
    if (!(s->mk_w = reg2(m, err, n, fi->weight, p, "weight", S, C))) return -1;
    snprintf(p, sizeof p, "%s.mv", prefix);
    if (!(s->mv_w = reg2(m, err, n, fi->weight, p, "weight", C, S))) return -1;
    return 0;
}

static Tensor *forward(Ctx *c, const TokenMixer *tm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma) {
    const TokExt *s = tm->state;
    Tensor *a = mt_linear(c, as_tokens(c, x), s->mk_w, NULL);
    a = mt_double_norm(c, a, 1e-9f);
    Tensor *t = as_grid(c, mt_linear(c, a, s->mv_w, NULL), x);
    return res ? mt_residual(c, res, t, gamma) : t;
}

static double flops(const ModelConfig *cfg, int N, int C, int h, int w) {
    return 2.0 * 2.0 * N * (double)C * cfg->mem_units;
}

const MixerDef mixer_external = {
    .name = "external", .about = "External Attention: two learned memories, double normalisation",
    .reg = reg, .forward = forward, .flops = flops,
};
