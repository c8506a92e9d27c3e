/* gMLP's spatial gating unit. It lives inside the channel MLP (Mlp.sgu, layers/mlp.c), so
 * the block has no token-mixer branch; this entry names it for --token-mixer and
 * validation (gMLP only, and gMLP only with it). */
#include "layers/layers.h"

static Tensor *forward(Ctx *c, const TokenMixer *tm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma) {
    return res ? mt_residual(c, res, x, gamma) : x;
}

static double flops(const ModelConfig *cfg, int N, int C, int h, int w) { return 0; }

const MixerDef mixer_sgu = {
    .name = "sgu", .about = "gMLP's spatial gating unit (gmlp models only)",
    .gmlp_only = 1, .forward = forward, .flops = flops,
};
