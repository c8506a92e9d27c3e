/* Isotropic families: MLP-Mixer (Tolstikhin et al. 2021) and ResMLP (Touvron
 * et al. 2021), as timm's MlpMixer with MixerBlock / ResBlock.
 *
 * state_dict order per block (a module's own parameters come before its children's):
 *   [blocks.i.ls1, blocks.i.ls2]          layer scale (ResMLP; Mixer with layer-scale on)
 *   blocks.i.norm1.*                      weight/bias (LayerNorm) or alpha/beta (Affine)
 *   blocks.i.mlp_tokens.fc1/fc2.*         Mixer token MLP, fc1 (int(0.5*C), N)
 *   | blocks.i.linear_tokens.*            ResMLP token linear (N, N)
 *   | blocks.i.token_mixer.*              other ablations (random_matrix, qkv, proj)
 *   blocks.i.norm2.*, blocks.i.mlp_channels.fc1/fc2.*
 * around them stem.proj.{weight,bias} first and norm.*, head.{weight,bias} last.
 * The repmlp family is this skeleton with the RepMLP token mixer (blocks.i.token_mixer.*). */
#include "layers/layers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int isotropic_build(Model *m, char *err, size_t n) {
    const ModelConfig *cfg = &m->cfg;
    Net *net = m->priv;
    int D = cfg->embed_dim, P = cfg->patch_size, g = cfg->img_size / P;
    NormKind nk = (NormKind)parse_norm(cfg->norm);
    const MixerDef *mk = mixer_find(cfg->token_mixer[0]);
    /* timm _init_weights: xavier-uniform linears, normal(1e-6) biases inside "mlp"
     * modules, zero other biases; lecun-normal conv stem; zero head. */
    FamilyInit fi = {init_spec(INIT_XAVIER, 0), init_spec(INIT_NORMAL, 1e-6f), init_spec(INIT_ZEROS, 0)};
    InitSpec zero = init_spec(INIT_ZEROS, 0);

    net->stem_k = net->stem_s = P;
    net->stem_p = 0;
    if (!(net->stem_w = reg4(m, err, n, init_spec(INIT_LECUN, 0), "stem.proj", "weight", D, cfg->in_chans, P, P)))
        return -1;
    if (!(net->stem_b = reg1(m, err, n, zero, "stem.proj", "bias", D))) return -1;

    net->nstages = 1;
    net->nblocks = cfg->depth;
    net->blocks = calloc((size_t)cfg->depth, sizeof *net->blocks);
    Stage *st = &net->stages[0];
    st->first = 0;
    st->nblocks = cfg->depth;
    st->h = st->w = g;
    st->dim = D;
    float eps = nk == NORM_GROUPNORM ? 1e-5f : 1e-6f;
    char pre[64], p[96];
    for (int i = 0; i < cfg->depth; i++) {
        Block *b = &net->blocks[i];
        snprintf(b->name, sizeof b->name, "blocks.%d", i);
        snprintf(pre, sizeof pre, "blocks.%d", i);
        b->mix_name = mixer_module(mk, cfg->family);
        b->mlp_name = "mlp_channels";
        b->drop_path = cfg->drop_path_rate; /* timm's MlpMixer: the same rate in every block */
        if (cfg->layer_scale) {
            InitSpec ls = init_spec(INIT_CONST, cfg->layer_scale_init);
            if (!(b->ls1 = reg1(m, err, n, ls, pre, "ls1", D))) return -1;
            if (!(b->ls2 = reg1(m, err, n, ls, pre, "ls2", D))) return -1;
        }
        snprintf(p, sizeof p, "%s.norm1", pre);
        if (norm_register(m, &b->norm1, nk, eps, p, D, err, n)) return -1;
        snprintf(p, sizeof p, "%s.%s", pre, b->mix_name);
        if (mixer_register(m, &b->mix, mk, p, g, g, D, &fi, err, n)) return -1;
        snprintf(p, sizeof p, "%s.norm2", pre);
        if (norm_register(m, &b->norm2, nk, eps, p, D, err, n)) return -1;
        snprintf(p, sizeof p, "%s.mlp_channels", pre);
        if (chan_mlp_register(m, &b->mlp, p, D, 0, fi, err, n)) return -1;
    }
    net->norm_before_pool = 1;
    if (norm_register(m, &net->head_norm, nk, eps, "norm", D, err, n)) return -1;
    if (!(net->head_w = reg2(m, err, n, zero, "head", "weight", cfg->num_classes, D))) return -1;
    if (!(net->head_b = reg1(m, err, n, zero, "head", "bias", cfg->num_classes))) return -1;
    return 0;
}

double isotropic_gflops(const ModelConfig *cfg) {
    int D = cfg->embed_dim, P = cfg->patch_size, g = cfg->img_size / P, N = g * g;
    double f = 2.0 * N * D * (double)cfg->in_chans * P * P;                        /* stem */
    double blk = mixer_find(cfg->token_mixer[0])->flops(cfg, N, D, g, g) + chan_mlp_flops(cfg, N, D);
    f += cfg->depth * blk + 2.0 * D * cfg->num_classes;
    return f * 1e-9;
}
