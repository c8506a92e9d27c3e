/* PoolFormer (Yu et al. 2022, "MetaFormer is Actually What You Need for
 * Vision") as timm's metaformer.py MetaFormer with poolformer_* settings.
 *
 * state_dict order:
 *   stem.conv.{weight,bias}                          conv k7 s4 p2 (Cin -> dims[0])
 *   stages.s.downsample.conv.{weight,bias}           conv 3x3 s2 p1, when dims[s-1] != dims[s]
 *   stages.s.blocks.j.norm1.{weight,bias}            GroupNorm(1 group), eps 1e-5
 *   stages.s.blocks.j.token_mixer.*                  pooling has none; ablations add theirs
 *   stages.s.blocks.j.layer_scale1.scale
 *   stages.s.blocks.j.norm2.*, .mlp.fc1/fc2.*        1x1 convs (hidden, dim, 1, 1); Linear (2-D)
 *                                                    in attention stages, as timm (use_nchw False)
 *   stages.s.blocks.j.layer_scale2.scale
 *   head.norm.{weight,bias}                          LayerNorm eps 1e-6 after global pooling
 *   head.fc.{weight,bias} */
#include "layers/layers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int poolformer_build(Model *m, char *err, size_t n) {
    const ModelConfig *cfg = &m->cfg;
    Net *net = m->priv;
    NormKind nk = (NormKind)parse_norm(cfg->norm);
    /* timm MetaFormer._init_weights: trunc_normal(std .02) conv/linear weights, zero biases */
    FamilyInit fi = {init_spec(INIT_TRUNC_NORMAL, 0.02f), init_spec(INIT_ZEROS, 0), init_spec(INIT_ZEROS, 0)};
    InitSpec zero = init_spec(INIT_ZEROS, 0);
    float eps = nk == NORM_GROUPNORM ? 1e-5f : 1e-6f;

    net->stem_k = cfg->stem_kernel;
    net->stem_s = cfg->stem_stride;
    net->stem_p = cfg->stem_pad;
    int C0 = cfg->dims[0];
    if (!(net->stem_w = reg4(m, err, n, fi.weight, "stem.conv", "weight", C0, cfg->in_chans, net->stem_k,
                             net->stem_k)))
        return -1;
    if (!(net->stem_b = reg1(m, err, n, zero, "stem.conv", "bias", C0))) return -1;
    int h = conv_out(cfg->img_size, net->stem_k, net->stem_s, net->stem_p);

    int total = 0;
    for (int s = 0; s < cfg->num_stages; s++) total += cfg->depths[s];
    net->nstages = cfg->num_stages;
    net->nblocks = total;
    net->blocks = calloc((size_t)total, sizeof *net->blocks);
    int bi = 0;
    char pre[64], p[112];
    for (int s = 0; s < cfg->num_stages; s++) {
        Stage *st = &net->stages[s];
        int dim = cfg->dims[s], prev = s ? cfg->dims[s - 1] : cfg->dims[0];
        if (prev != dim) { /* timm: no downsample when the width does not change */
            snprintf(p, sizeof p, "stages.%d.downsample.conv", s);
            if (!(st->ds_w = reg4(m, err, n, fi.weight, p, "weight", dim, prev, 3, 3))) return -1;
            if (!(st->ds_b = reg1(m, err, n, zero, p, "bias", dim))) return -1;
            h = conv_out(h, 3, 2, 1);
        }
        st->h = st->w = h;
        st->dim = dim;
        st->first = bi;
        st->nblocks = cfg->depths[s];
        const MixerDef *mk = mixer_find(cfg->token_mixer[s]);
        for (int j = 0; j < cfg->depths[s]; j++, bi++) {
            Block *b = &net->blocks[bi];
            snprintf(pre, sizeof pre, "stages.%d.blocks.%d", s, j);
            snprintf(b->name, sizeof b->name, "%s", pre);
            b->mix_name = "token_mixer";
            b->mlp_name = "mlp";
            b->drop_path = total > 1 ? cfg->drop_path_rate * (float)bi / (float)(total - 1) : 0.0f;
            InitSpec ls = init_spec(INIT_CONST, cfg->layer_scale_init);
            snprintf(p, sizeof p, "%s.norm1", pre);
            if (norm_register(m, &b->norm1, nk, eps, p, dim, err, n)) return -1;
            snprintf(p, sizeof p, "%s.token_mixer", pre);
            if (mixer_register(m, &b->mix, mk, p, h, h, dim, &fi, err, n)) return -1;
            if (cfg->layer_scale) {
                snprintf(p, sizeof p, "%s.layer_scale1", pre);
                if (!(b->ls1 = reg1(m, err, n, ls, p, "scale", dim))) return -1;
            }
            snprintf(p, sizeof p, "%s.norm2", pre);
            if (norm_register(m, &b->norm2, nk, eps, p, dim, err, n)) return -1;
            snprintf(p, sizeof p, "%s.mlp", pre);
            if (chan_mlp_register(m, &b->mlp, p, dim, !mk->linear_chan_mlp, fi, err, n)) return -1;
            if (cfg->layer_scale) {
                snprintf(p, sizeof p, "%s.layer_scale2", pre);
                if (!(b->ls2 = reg1(m, err, n, ls, p, "scale", dim))) return -1;
            }
        }
    }
    int F = cfg->dims[cfg->num_stages - 1];
    net->norm_before_pool = 0;
    if (norm_register(m, &net->head_norm, NORM_LAYERNORM, 1e-6f, "head.norm", F, err, n)) return -1;
    if (!(net->head_w = reg2(m, err, n, fi.weight, "head.fc", "weight", cfg->num_classes, F))) return -1;
    if (!(net->head_b = reg1(m, err, n, zero, "head.fc", "bias", cfg->num_classes))) return -1;
    return 0;
}

double poolformer_gflops(const ModelConfig *cfg) {
    int h = conv_out(cfg->img_size, cfg->stem_kernel, cfg->stem_stride, cfg->stem_pad);
    double f = 2.0 * h * h * (double)cfg->dims[0] * cfg->in_chans * cfg->stem_kernel * cfg->stem_kernel;
    for (int s = 0; s < cfg->num_stages; s++) {
        int dim = cfg->dims[s], prev = s ? cfg->dims[s - 1] : dim;
        if (prev != dim) {
            h = conv_out(h, 3, 2, 1);
            f += 2.0 * h * h * (double)dim * prev * 9;
        }
        int N = h * h;
        double blk = mixer_find(cfg->token_mixer[s])->flops(cfg, N, dim, h, h) + chan_mlp_flops(cfg, N, dim);
        f += cfg->depths[s] * blk;
    }
    f += 2.0 * cfg->dims[cfg->num_stages - 1] * cfg->num_classes;
    return f * 1e-9;
}
