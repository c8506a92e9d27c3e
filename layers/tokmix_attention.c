/* Multi-head self-attention on timm's fused qkv layout: qkv (3A, C) [+ bias on ViT], the
 * heads' softmax(q k^T / sqrt(d)) v, proj (C, A) + bias. Heads and width from the config
 * (attention_dims). timm: blocks.i.attn.* on ViT, token_mixer.* elsewhere. */
#include "layers/layers.h"
#include <stdio.h>
#include <string.h>

typedef struct TokAttn { Tensor *qkv_w, *qkv_b, *proj_w, *proj_b; int heads; } TokAttn;

static int validate(const ModelConfig *cfg, int dim, char *err, size_t n) {
    if (cfg->heads > 0 && dim % cfg->heads)
        return snprintf(err, n, "dim %d is not divisible by heads %d", dim, cfg->heads), -1;
    return 0;
}

static int reg(Model *m, TokenMixer *tm, const char *prefix, int h, int w, int C, const FamilyInit *fi, char *err,
               size_t n) {
    TokAttn *s = mixer_state(tm, sizeof *s, err, n);
    if (!s) return -1;
    int A;
    char p[200];
    attention_dims(&m->cfg, C, &s->heads, &A);
    snprintf(p, sizeof p, "%s.qkv", prefix);
    if (!(s->qkv_w = reg2(m, err, n, fi->weight, p, "weight", 3 * A, C))) return -1;
    if (!strcmp(m->cfg.family, "vit") && !(s->qkv_b = reg1(m, err, n, fi->bias, p, "bias", 3 * A))) return -1;
    snprintf(p, sizeof p, "%s.proj", prefix);
    if (!(s->proj_w = reg2(m, err, n, fi->weight, p, "weight", C, A))) return -1;
    if (!(s->proj_b = reg1(m, err, n, fi->bias, p, "bias", C))) return -1;
    return 0;
}

static Tensor *forward(Ctx *c, const TokenMixer *tm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma) {
    const TokAttn *s = tm->state;
    Tensor *t = mt_linear(c, as_tokens(c, x), s->qkv_w, s->qkv_b);
    t = mt_attention(c, t, s->heads);
    t = as_grid(c, mt_linear(c, t, s->proj_w, s->proj_b), x);
    return res ? mt_residual(c, res, t, gamma) : t;
}

static double flops(const ModelConfig *cfg, int N, int C, int h, int w) {
    int heads, A;
    attention_dims(cfg, C, &heads, &A);
    return 2.0 * N * (double)C * 3 * A + 2.0 * 2.0 * (double)N * N * A + 2.0 * N * (double)A * C;
}

const MixerDef mixer_attention = {
    .name = "attention", .about = "multi-head self-attention", .vit_module = "attn", .linear_chan_mlp = 1,
    .validate = validate, .reg = reg, .forward = forward, .flops = flops,
};
