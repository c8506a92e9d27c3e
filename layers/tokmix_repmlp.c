/* RepMLP (Ding et al. 2021, arXiv:2105.01883; RepMLPNet arXiv:2112.11081), a simple variant
 * with the whole feature map as one partition and no BatchNorm:
 *   out = (fc3(x) + sum_k repconv_k(x)) * sigmoid(gp(x))
 *   gp     global perceptron: mean over tokens -> fc1 (C/r, C) -> ReLU -> fc2 (C, C/r)
 *   fc3    partition perceptron: one (N, N) linear over the tokens, shared by the channels
 *   repconv_k  local perceptron: one k x k conv (stride 1, pad k/2, with bias) shared by the
 *          channels, i.e. applied to every channel's H x W map
 * A shared conv on an H x W map is a linear map of the N tokens, so after training every
 * repconv_k folds into fc3 (the reparam hook, `mixtape reparam`): the deployed model has
 * only gp and fc3 and computes the same function. */
#include "layers/layers.h"
#include <stdio.h>
#include <string.h>

typedef struct TokRep {
    Mlp gp;
    Tensor *fc3_w, *fc3_b;
    Tensor *conv_w[MT_MAX_STAGES], *conv_b[MT_MAX_STAGES];
    int nconv, conv_k[MT_MAX_STAGES];
} TokRep;

static int reg(Model *m, TokenMixer *tm, const char *prefix, int h, int w, int C, const FamilyInit *fi, char *err,
               size_t n) {
    TokRep *s = mixer_state(tm, sizeof *s, err, n);
    if (!s) return -1;
    const ModelConfig *cfg = &m->cfg;
    char p[200];
    int N = h * w, hid = C / cfg->rep_reduction > 0 ? C / cfg->rep_reduction : 1;
    snprintf(p, sizeof p, "%s.gp", prefix);
    if (mlp_register(m, &s->gp, p, C, hid, 0, *fi, err, n)) return -1;
    snprintf(p, sizeof p, "%s.fc3", prefix);
    if (!(s->fc3_w = reg2(m, err, n, fi->weight, p, "weight", N, N))) return -1;
    if (!(s->fc3_b = reg1(m, err, n, fi->bias, p, "bias", N))) return -1;
    if (cfg->rep_deploy) return 0;
    /* conv init as the family's convs: lecun normal (Mixer's _init_weights), trunc normal .02 (MetaFormer) */
    InitSpec ci = strcmp(cfg->family, "poolformer") ? init_spec(INIT_LECUN, 0) : fi->weight;
    for (int i = 0; i < MT_MAX_STAGES && cfg->rep_kernels[i]; i++) {
        int k = cfg->rep_kernels[i];
        snprintf(p, sizeof p, "%s.repconv%d", prefix, k);
        if (!(s->conv_w[i] = reg4(m, err, n, ci, p, "weight", 1, 1, k, k))) return -1;
        if (!(s->conv_b[i] = reg1(m, err, n, init_spec(INIT_ZEROS, 0), p, "bias", 1))) return -1;
        s->conv_k[i] = k;
        s->nconv = i + 1;
    }
    return 0;
}

static Tensor *forward(Ctx *c, const TokenMixer *tm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma) {
    const TokRep *s = tm->state;
    if (!x) return NULL;
    int B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3], N = H * W;
    int s3[3] = {B, N, C};
    Tensor *t = mt_reshape(c, x, 3, s3);
    /* global perceptron -> (B, C) gate logits */
    Tensor *g = mt_mean_tokens(c, t);
    g = mt_linear(c, g, s->gp.fc1_w, NULL);
    g = mt_bias_act(c, g, s->gp.fc1_b, MT_ACT_RELU);
    g = mt_linear(c, g, s->gp.fc2_w, s->gp.fc2_b);
    /* partition perceptron */
    Tensor *y = mt_token_linear(c, t, s->fc3_w, s->fc3_b);
    if (s->nconv) { /* local perceptron: every channel's map as a 1-channel image */
        Tensor *xc = mt_nhwc_to_nchw(c, x);
        int si[4] = {B * C, 1, H, W};
        xc = mt_reshape(c, xc, 4, si);
        Tensor *sum = NULL;
        for (int i = 0; i < s->nconv; i++) {
            Tensor *o = mt_conv2d(c, xc, MT_NCHW, s->conv_w[i], s->conv_b[i], 1, s->conv_k[i] / 2);
            sum = sum ? mt_add(c, sum, o) : o;
        }
        int sc[4] = {B, C, H, W};
        sum = mt_nchw_to_nhwc(c, mt_reshape(c, sum, 4, sc));
        y = mt_add(c, y, mt_reshape(c, sum, 3, s3));
    }
    y = mt_channel_gate(c, y, g);
    Tensor *out = y ? mt_reshape(c, y, 4, x->shape) : NULL;
    return res ? mt_residual(c, res, out, gamma) : out;
}

static double flops(const ModelConfig *cfg, int N, int C, int h, int w) {
    double f = 2.0 * C * (double)N * N;
    for (int i = 0; !cfg->rep_deploy && i < MT_MAX_STAGES && cfg->rep_kernels[i]; i++)
        f += 2.0 * C * (double)N * cfg->rep_kernels[i] * cfg->rep_kernels[i];
    return f;
}

/* fc3 (N, N) += the token-mixing matrix of a shared k x k conv (cross-correlation, zero
 * padding k/2) on an h x w map; bias += the conv's bias. */
static void fold_conv(float *W, float *b, const float *K, float kb, int k, int h, int w) {
    int N = h * w, r = k / 2;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            float *row = W + (size_t)(i * w + j) * N;
            for (int u = 0; u < k; u++)
                for (int v = 0; v < k; v++) {
                    int ii = i + u - r, jj = j + v - r;
                    if (ii >= 0 && ii < h && jj >= 0 && jj < w) row[ii * w + jj] += K[u * k + v];
                }
            b[i * w + j] += kb;
        }
}

static int reparam(const TokenMixer *src, TokenMixer *dst, int h, int w) {
    const TokRep *a = src->state;
    TokRep *b = dst->state;
    for (int k = 0; k < a->nconv; k++)
        fold_conv(b->fc3_w->data, b->fc3_b->data, a->conv_w[k]->data, a->conv_b[k]->data[0], a->conv_k[k], h, w);
    return a->nconv;
}

const MixerDef mixer_repmlp = {
    .name = "repmlp", .about = "RepMLP: token fc3 + re-parameterisable convs, gated by a global perceptron",
    .needs_grid = 1, .reg = reg, .forward = forward, .flops = flops, .reparam = reparam,
};
