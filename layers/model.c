/* The model interface: build (dispatch to the family), forward, flops, free.
 * One forward serves every family:
 *   stem conv (NCHW in, channels-last out) -> per stage: [downsample conv] + blocks
 *   -> isotropic: norm, mean over tokens | hierarchical: mean over H x W, norm
 *   -> dropout (drop_rate) -> head linear */
#include "layers/layers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_hier(const ModelConfig *cfg) { return strcmp(cfg->family, "poolformer") == 0; }

/* Registers the parameters (shapes only when dry). */
static int build_family(Model *m, const ModelConfig *cfg, int dry, char *err, size_t n) {
    memset(m, 0, sizeof *m);
    m->params.dry = dry;
    m->cfg = *cfg;
    Net *net = calloc(1, sizeof *net);
    if (!net) return snprintf(err, n, "out of memory"), -1;
    m->priv = net;
    net->act = (mt_act)parse_act(cfg->act);
    return is_hier(cfg)                     ? poolformer_build(m, err, n)
           : !strcmp(cfg->family, "gmlp") ? gmlp_build(m, err, n)
           : !strcmp(cfg->family, "vit")  ? vit_build(m, err, n)
                                          : isotropic_build(m, err, n);
}

int model_build(Model *m, const ModelConfig *cfg, char *err, size_t n) {
    memset(m, 0, sizeof *m);
    if (config_validate(cfg, err, n)) return -1;
    /* Count with a dry run first (shapes, no buffers): the size limit holds before anything is allocated. */
    Model dry;
    int rc = build_family(&dry, cfg, 1, err, n);
    size_t total = dry.params.total;
    model_free(&dry);
    if (rc) return -1;
    if (total > MODEL_MAX_PARAMS)
        return snprintf(err, n, "model %s: %zu parameters, more than the limit of %zu", cfg->name, total,
                        (size_t)MODEL_MAX_PARAMS), -1;
    if (build_family(m, cfg, 0, err, n)) {
        model_free(m);
        return -1;
    }
    return 0;
}

void model_free(Model *m) {
    Net *net = m->priv;
    if (net) {
        free(net->init);
        for (int i = 0; net->blocks && i < net->nblocks; i++) free(net->blocks[i].mix.state);
        free(net->blocks);
        free(net);
    }
    mt_params_free(&m->params);
    m->priv = NULL;
}

double model_gflops(const ModelConfig *cfg) {
    if (is_hier(cfg)) return poolformer_gflops(cfg);
    if (!strcmp(cfg->family, "gmlp")) return gmlp_gflops(cfg);
    if (!strcmp(cfg->family, "vit")) return vit_gflops(cfg);
    return isotropic_gflops(cfg);
}

Tensor *model_forward(Ctx *c, Model *m, Tensor *images) {
    Net *net = m->priv;
    const ModelConfig *cfg = &m->cfg;
    if (c->failed || !images) return NULL;
    if (!net) return mt_fail(c, "model_forward", "model %s was not built", cfg->name);
    char s[96];
    if (images->ndim != 4 || images->shape[1] != cfg->in_chans || images->shape[2] != cfg->img_size ||
        images->shape[3] != cfg->img_size)
        return mt_fail(c, "model_forward", "model %s expects images (B, %d, %d, %d) NCHW, got %s", cfg->name,
                       cfg->in_chans, cfg->img_size, cfg->img_size, mt_shape_str(images, s, sizeof s));
    mt_scope(c, "%s", is_hier(cfg) ? "stem.conv" : net->cls_token ? "patch_embed.proj" : "stem.proj");
    Tensor *x = mt_conv2d(c, images, MT_NCHW, net->stem_w, net->stem_b, net->stem_s, net->stem_p);
    if (net->cls_token && x) { /* ViT: [cls; patches] + pos_embed, run as a (B, 1, N+1, D) grid */
        int B = x->shape[0], D = x->shape[3], N = x->shape[1] * x->shape[2];
        mt_scope(c, "cls_token");
        x = mt_prepend_token(c, mt_reshape(c, x, 3, (int[]){B, N, D}), net->cls_token);
        mt_scope(c, "pos_embed");
        x = mt_bias_add(c, mt_reshape(c, x, 2, (int[]){B, (N + 1) * D}), vec_view(c, net->pos_embed));
        x = mt_reshape(c, x, 4, (int[]){B, 1, N + 1, D});
    }
    for (int si = 0; si < net->nstages; si++) {
        const Stage *st = &net->stages[si];
        if (st->ds_w) {
            mt_scope(c, "stages.%d.downsample.conv", si);
            x = mt_conv2d(c, x, MT_NHWC, st->ds_w, st->ds_b, 2, 1);
        }
        for (int j = 0; j < st->nblocks; j++) x = block_forward(c, &net->blocks[st->first + j], x, net->act);
    }
    if (net->cls_token) { /* timm global_pool='token': norm, then the class token */
        mt_scope(c, "norm");
        x = norm_forward(c, &net->head_norm, x);
        mt_scope(c, "head");
        x = mt_narrow(c, x, 2, 0, 1);
        if (x) x = mt_reshape(c, x, 2, (int[]){x->shape[0], x->shape[3]});
    } else if (net->norm_before_pool) {
        mt_scope(c, "norm");
        x = norm_forward(c, &net->head_norm, x);
        mt_scope(c, "head");
        x = mt_mean_tokens(c, x);
    } else {
        mt_scope(c, "head.norm");
        x = mt_mean_tokens(c, x);
        x = norm_forward(c, &net->head_norm, x);
    }
    mt_scope(c, "%s", is_hier(cfg) ? "head.fc" : "head");
    if (cfg->drop_rate > 0) x = mt_dropout(c, x, cfg->drop_rate);
    x = mt_linear(c, x, net->head_w, net->head_b);
    if (x) mt_scope(c, "%s", "");
    return x;
}

/* Structural re-parameterisation: dst (built from src's config in deploy form) gets src's
 * parameters, then every block's mixer folds its training-time branches (MixerDef.reparam). */
int model_reparam(const Model *src, Model *dst, char *err, size_t n) {
    const Net *sn = src->priv;
    Net *dn = dst->priv;
    if (!sn || !dn || !dst->cfg.rep_deploy || sn->nblocks != dn->nblocks)
        return snprintf(err, n, "reparam: destination model must be built from the source config with rep_deploy = 1"),
               -1;
    for (int i = 0; i < dst->params.n; i++) {
        Tensor *d = dst->params.t[i], *s = mt_param_find((ParamList *)&src->params, d->name);
        if (!s || s->numel != d->numel)
            return snprintf(err, n, "reparam: parameter %s missing or of another size in the source", d->name), -1;
        memcpy(d->data, s->data, d->numel * sizeof(float));
    }
    int folded = 0;
    for (int si = 0; si < sn->nstages; si++) {
        const Stage *st = &sn->stages[si];
        for (int j = 0; j < st->nblocks; j++) {
            const TokenMixer *a = &sn->blocks[st->first + j].mix;
            TokenMixer *b = &dn->blocks[st->first + j].mix;
            if (a->def && a->def->reparam && b->def == a->def) folded += a->def->reparam(a, b, st->h, st->w);
        }
    }
    return folded;
}
