/* One (N, N) matrix over the tokens, shared by the channels: ResMLP's linear token mixer
 * (learned, with bias; timm: blocks.i.linear_tokens), and RandFormer's frozen random
 * mixing matrix softmax(rand(N, N)) (token_mixer.random_matrix, no bias, no gradient). */
#include "layers/layers.h"
#include <string.h>

typedef struct TokLinear { Tensor *w, *b; } TokLinear;

static int reg_linear(Model *m, TokenMixer *tm, const char *prefix, int h, int w, int C, const FamilyInit *fi,
                      char *err, size_t n) {
    TokLinear *s = mixer_state(tm, sizeof *s, err, n);
    if (!s) return -1;
    int N = h * w;
    InitSpec bi = strstr(prefix, "mlp") ? fi->mlp_bias : fi->bias;
    if (!(s->w = reg2(m, err, n, fi->weight, prefix, "weight", N, N))) return -1;
    if (!(s->b = reg1(m, err, n, bi, prefix, "bias", N))) return -1;
    return 0;
}

static int reg_random(Model *m, TokenMixer *tm, const char *prefix, int h, int w, int C, const FamilyInit *fi,
                      char *err, size_t n) {
    TokLinear *s = mixer_state(tm, sizeof *s, err, n);
    if (!s) return -1;
    int N = h * w;
    if (!(s->w = reg2(m, err, n, init_spec(INIT_RANDOM_MIX, 0), prefix, "random_matrix", N, N))) return -1;
    s->w->requires_grad = 0;
    return 0;
}

static Tensor *forward(Ctx *c, const TokenMixer *tm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma) {
    const TokLinear *s = tm->state;
    if (res) return as_grid(c, mt_token_linear_residual(c, as_tokens(c, x), s->w, s->b, as_tokens(c, res), gamma), x);
    return as_grid(c, mt_token_linear(c, as_tokens(c, x), s->w, s->b), x);
}

static double flops(const ModelConfig *cfg, int N, int C, int h, int w) { return 2.0 * C * (double)N * N; }

const MixerDef mixer_linear = {
    .name = "linear", .about = "one learned (N, N) matrix over the tokens (ResMLP)", .iso_module = "linear_tokens",
    .reg = reg_linear, .forward = forward, .flops = flops,
};

const MixerDef mixer_random = {
    .name = "random", .about = "a frozen random (N, N) mixing matrix (RandFormer)",
    .reg = reg_random, .forward = forward, .flops = flops,
};
