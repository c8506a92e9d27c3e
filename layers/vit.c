/* ViT / DeiT baseline (Dosovitskiy et al. 2021, arXiv:2010.11929; Touvron et al. 2021,
 * arXiv:2012.12877) as timm's VisionTransformer with class-token pooling:
 *   patch_embed.proj conv P x P stride P -> prepend cls_token -> + pos_embed
 *   -> blocks (pre-norm attention + MLP) -> norm -> x[:, 0] -> dropout -> head
 *
 * Tokens run as a (B, 1, N + 1, D) "grid", so the shared MetaFormer block works
 * unchanged; mixers that need the image grid (pool, repmlp) are rejected.
 *
 * state_dict order (timm: a module's own parameters before its children's):
 *   cls_token (1,1,D), pos_embed (1,N+1,D), patch_embed.proj.{weight,bias},
 *   blocks.i.norm1.*, blocks.i.attn.qkv.{weight,bias}, blocks.i.attn.proj.*, [blocks.i.ls1.gamma],
 *   blocks.i.norm2.*, blocks.i.mlp.fc1.*, blocks.i.mlp.fc2.*, [blocks.i.ls2.gamma], norm.*, head.*
 * (another --token-mixer registers under blocks.i.token_mixer.*).
 * Init (timm init_weights, mode ''): pos_embed trunc-normal .02, cls_token normal 1e-6, every
 * Linear trunc-normal .02 with zero bias, patch conv PyTorch's default (uniform +-1/sqrt(fan_in)
 * for weight and bias), LayerNorm 1/0. Drop path: linspace(0, rate, depth). */
#include "layers/layers.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vit_build(Model *m, char *err, size_t n) {
    const ModelConfig *cfg = &m->cfg;
    Net *net = m->priv;
    int D = cfg->embed_dim, P = cfg->patch_size, g = cfg->img_size / P, N = g * g, T = N + 1;
    NormKind nk = (NormKind)parse_norm(cfg->norm);
    const MixerDef *mk = mixer_find(cfg->token_mixer[0]);
    FamilyInit fi = {init_spec(INIT_TRUNC_NORMAL, 0.02f), init_spec(INIT_ZEROS, 0), init_spec(INIT_ZEROS, 0)};
    float eps = nk == NORM_GROUPNORM ? 1e-5f : 1e-6f;
    if (!(net->cls_token = reg_param(m, err, n, init_spec(INIT_NORMAL, 1e-6f), "", "cls_token", 3, (int[]){1, 1, D})))
        return -1;
    if (!(net->pos_embed = reg_param(m, err, n, fi.weight, "", "pos_embed", 3, (int[]){1, T, D}))) return -1;
    InitSpec conv = init_spec(INIT_UNIFORM, (float)(1.0 / sqrt((double)cfg->in_chans * P * P)));
    net->stem_k = net->stem_s = P;
    net->stem_p = 0;
    if (!(net->stem_w = reg4(m, err, n, conv, "patch_embed.proj", "weight", D, cfg->in_chans, P, P))) return -1;
    if (!(net->stem_b = reg1(m, err, n, conv, "patch_embed.proj", "bias", D))) return -1;
    net->nstages = 1;
    net->nblocks = cfg->depth;
    net->blocks = calloc((size_t)cfg->depth, sizeof *net->blocks);
    Stage *st = &net->stages[0];
    st->first = 0;
    st->nblocks = cfg->depth;
    st->h = 1;
    st->w = T;
    st->dim = D;
    char pre[64], p[112];
    for (int i = 0; i < cfg->depth; i++) {
        Block *b = &net->blocks[i];
        snprintf(b->name, sizeof b->name, "blocks.%d", i);
        snprintf(pre, sizeof pre, "blocks.%d", i);
        b->mix_name = mixer_module(mk, cfg->family);
        b->mlp_name = "mlp";
        b->drop_path = cfg->depth > 1 ? cfg->drop_path_rate * (float)i / (float)(cfg->depth - 1) : 0.0f;
        snprintf(p, sizeof p, "%s.norm1", pre);
        if (norm_register(m, &b->norm1, nk, eps, p, D, err, n)) return -1;
        snprintf(p, sizeof p, "%s.%s", pre, b->mix_name);
        if (mixer_register(m, &b->mix, mk, p, 1, T, D, &fi, err, n)) return -1;
        InitSpec ls = init_spec(INIT_CONST, cfg->layer_scale_init);
        if (cfg->layer_scale) {
            snprintf(p, sizeof p, "%s.ls1", pre);
            if (!(b->ls1 = reg1(m, err, n, ls, p, "gamma", D))) return -1;
        }
        snprintf(p, sizeof p, "%s.norm2", pre);
        if (norm_register(m, &b->norm2, nk, eps, p, D, err, n)) return -1;
        snprintf(p, sizeof p, "%s.mlp", pre);
        if (chan_mlp_register(m, &b->mlp, p, D, 0, fi, err, n)) return -1;
        if (cfg->layer_scale) {
            snprintf(p, sizeof p, "%s.ls2", pre);
            if (!(b->ls2 = reg1(m, err, n, ls, p, "gamma", D))) return -1;
        }
    }
    net->norm_before_pool = 1;
    if (norm_register(m, &net->head_norm, nk, eps, "norm", D, err, n)) return -1;
    if (!(net->head_w = reg2(m, err, n, fi.weight, "head", "weight", cfg->num_classes, D))) return -1;
    if (!(net->head_b = reg1(m, err, n, fi.bias, "head", "bias", cfg->num_classes))) return -1;
    return 0;
}

double vit_gflops(const ModelConfig *cfg) {
    int D = cfg->embed_dim, P = cfg->patch_size, g = cfg->img_size / P, N = g * g, T = N + 1;
    double f = 2.0 * N * D * (double)cfg->in_chans * P * P;
    double blk = mixer_find(cfg->token_mixer[0])->flops(cfg, T, D, 1, T) + chan_mlp_flops(cfg, T, D);
    f += cfg->depth * blk + 2.0 * D * cfg->num_classes;
    return f * 1e-9;
}
