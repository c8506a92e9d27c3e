/* gMLP (Liu et al. 2021, "Pay Attention to MLPs", arXiv:2105.08050) as timm's
 * MlpMixer with SpatialGatingBlock and GatedMlp (gmlp_ti16_224, gmlp_s16_224, gmlp_b16_224).
 *
 * Block: x = x + drop_path(mlp_channels(norm(x))), where mlp_channels is
 *   fc1 (W, C) -> act -> spatial gating unit -> fc2 (C, W/2)
 *   SGU: [u | v] = chunk(2, channels); v = LayerNorm(v) (eps 1e-5, torch's default as timm);
 *        v = proj over tokens (N, N) + bias (N); out u * v
 * W = int(mlp_ratio * C) (timm: mlp_ratio 6). With --mlp glu|geglu|swiglu|reglu fc1 is
 * (2h, C) and the GLU gives h = mlp_hidden() channels to the SGU.
 *
 * state_dict order: stem.proj.*, then per block blocks.i.norm.*, blocks.i.mlp_channels.fc1.*,
 * .gate.norm.*, .gate.proj.*, .fc2.*, then norm.*, head.*.
 * Init (timm _init_weights + SpatialGatingUnit.init_weights): xavier-uniform linears,
 * biases normal(1e-6) (all inside "mlp_channels"), gate.proj weight normal(1e-6) and bias
 * ones (the gate starts as the identity), lecun-normal stem, zero head. */
#include "layers/layers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Width of fc1's output after the activation / GLU, i.e. what the SGU splits. */
static int sgu_width(const ModelConfig *cfg, int D, int *gate) { return mlp_hidden(cfg, D, gate); }

int gmlp_build(Model *m, char *err, size_t n) {
    const ModelConfig *cfg = &m->cfg;
    Net *net = m->priv;
    int D = cfg->embed_dim, P = cfg->patch_size, g = cfg->img_size / P, N = g * g;
    NormKind nk = (NormKind)parse_norm(cfg->norm);
    InitSpec xav = init_spec(INIT_XAVIER, 0), tiny = init_spec(INIT_NORMAL, 1e-6f), zero = init_spec(INIT_ZEROS, 0);
    if (cfg->layer_scale) return snprintf(err, n, "model %s: gmlp blocks have no layer scale", cfg->name), -1;
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
    int gate, Wd = sgu_width(cfg, D, &gate), fc1_out = gate < 0 ? Wd : 2 * Wd;
    char pre[64], p[112];
    for (int i = 0; i < cfg->depth; i++) {
        Block *b = &net->blocks[i];
        snprintf(b->name, sizeof b->name, "blocks.%d", i);
        snprintf(pre, sizeof pre, "blocks.%d", i);
        b->gmlp = 1;
        b->mix.def = mixer_find("sgu");
        b->mix_name = "mlp_channels.gate";
        b->mlp_name = "mlp_channels";
        b->drop_path = cfg->drop_path_rate; /* timm MlpMixer: the same rate in every block */
        snprintf(p, sizeof p, "%s.norm", pre);
        if (norm_register(m, &b->norm1, nk, 1e-6f, p, D, err, n)) return -1;
        Mlp *mlp = &b->mlp;
        mlp->gated = gate >= 0;
        mlp->gate = gate >= 0 ? (mt_gate)gate : MT_GATE_SIGMOID;
        mlp->sgu = 1;
        snprintf(p, sizeof p, "%s.mlp_channels.fc1", pre);
        if (!(mlp->fc1_w = reg2(m, err, n, xav, p, "weight", fc1_out, D))) return -1;
        if (!(mlp->fc1_b = reg1(m, err, n, tiny, p, "bias", fc1_out))) return -1;
        snprintf(p, sizeof p, "%s.mlp_channels.gate.norm", pre);
        if (norm_register(m, &mlp->sgu_norm, NORM_LAYERNORM, 1e-5f, p, Wd / 2, err, n)) return -1;
        snprintf(p, sizeof p, "%s.mlp_channels.gate.proj", pre);
        if (!(mlp->sgu_w = reg2(m, err, n, tiny, p, "weight", N, N))) return -1;
        if (!(mlp->sgu_b = reg1(m, err, n, init_spec(INIT_ONES, 0), p, "bias", N))) return -1;
        snprintf(p, sizeof p, "%s.mlp_channels.fc2", pre);
        if (!(mlp->fc2_w = reg2(m, err, n, xav, p, "weight", D, Wd / 2))) return -1;
        if (!(mlp->fc2_b = reg1(m, err, n, tiny, p, "bias", D))) return -1;
    }
    net->norm_before_pool = 1;
    if (norm_register(m, &net->head_norm, nk, 1e-6f, "norm", D, err, n)) return -1;
    if (!(net->head_w = reg2(m, err, n, zero, "head", "weight", cfg->num_classes, D))) return -1;
    if (!(net->head_b = reg1(m, err, n, zero, "head", "bias", cfg->num_classes))) return -1;
    return 0;
}

double gmlp_gflops(const ModelConfig *cfg) {
    int D = cfg->embed_dim, P = cfg->patch_size, g = cfg->img_size / P, N = g * g;
    int gate, Wd = sgu_width(cfg, D, &gate), fc1_out = gate < 0 ? Wd : 2 * Wd;
    double f = 2.0 * N * D * (double)cfg->in_chans * P * P;
    double blk = 2.0 * N * (double)D * fc1_out + 2.0 * (Wd / 2) * (double)N * N + 2.0 * N * (double)(Wd / 2) * D;
    f += cfg->depth * blk + 2.0 * D * cfg->num_classes;
    return f * 1e-9;
}
