/* No token mixing: the MetaFormer ablation whose only spatial information is the patch. */
#include "layers/layers.h"

static Tensor *forward(Ctx *c, const TokenMixer *tm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma) {
    return res ? mt_residual(c, res, x, gamma) : x;
}

static double flops(const ModelConfig *cfg, int N, int C, int h, int w) { return 0; }

const MixerDef mixer_identity = {
    .name = "identity", .about = "no token mixing (MetaFormer ablation)", .forward = forward, .flops = flops,
};
