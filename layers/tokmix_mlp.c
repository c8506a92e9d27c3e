/* MLP-Mixer's token MLP: fc2(act(fc1(x))) over the N tokens, shared by the channels;
 * hidden width int(mlp_ratio_tokens * C). timm: blocks.i.mlp_tokens.fc{1,2}. */
#include "layers/layers.h"

typedef struct TokMlp { Mlp mlp; } TokMlp;

static int reg(Model *m, TokenMixer *tm, const char *prefix, int h, int w, int C, const FamilyInit *fi, char *err,
               size_t n) {
    TokMlp *s = mixer_state(tm, sizeof *s, err, n);
    if (!s) return -1;
    return mlp_register(m, &s->mlp, prefix, h * w, (int)((double)m->cfg.mlp_ratio_tokens * C), 0, *fi, err, n);
}

static Tensor *forward(Ctx *c, const TokenMixer *tm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma) {
    const Mlp *p = &((const TokMlp *)tm->state)->mlp;
    Tensor *y = mt_token_mlp_residual(c, as_tokens(c, x), p->fc1_w, p->fc1_b, act, p->fc2_w, p->fc2_b,
                                      res ? as_tokens(c, res) : NULL, gamma);
    return as_grid(c, y, x);
}

static double flops(const ModelConfig *cfg, int N, int C, int h, int w) {
    double Nh = (int)((double)cfg->mlp_ratio_tokens * C);
    return 2.0 * C * (2.0 * N * Nh);
}

const MixerDef mixer_mlp = {
    .name = "mlp", .about = "MLP over the tokens (MLP-Mixer)", .iso_module = "mlp_tokens",
    .reg = reg, .forward = forward, .flops = flops,
};
