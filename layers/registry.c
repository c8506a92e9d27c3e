/* The model registry: timm's named models with timm's defaults, plus small
 * presets for 28-32 px images (Fashion-MNIST, CIFAR). */
#include "layers/model.h"
#include <stdio.h>
#include <string.h>

typedef struct Entry {
    const char *name;
    const char *family;
    /* isotropic */
    int patch, dim, depth;
    /* hierarchical */
    int depths[MT_MAX_STAGES], dims[MT_MAX_STAGES];
    float ls_init;
    int img, classes, chans;
    int stem_k, stem_s, stem_p;
    int heads;          /* vit: attention heads */
    float mlp_ratio;    /* 0: 4 */
} Entry;

#define MIXER(n, p, d, l) {n, "mixer", p, d, l, {0}, {0}, 1e-4f, 224, 1000, 3, 0, 0, 0, 0, 0}
#define RESMLP(n, p, d, l, ls) {n, "resmlp", p, d, l, {0}, {0}, ls, 224, 1000, 3, 0, 0, 0, 0, 0}
/* gMLP (timm MlpMixer with SpatialGatingBlock / GatedMlp): patch 16, 30 blocks, mlp_ratio 6 */
#define GMLP(n, d) {n, "gmlp", 16, d, 30, {0}, {0}, 1e-4f, 224, 1000, 3, 0, 0, 0, 0, 6.0f}
#define VIT(n, d, l, h) {n, "vit", 16, d, l, {0}, {0}, 1e-5f, 224, 1000, 3, 0, 0, 0, h, 4.0f}
#define POOL(n, a, b, c_, d_, e, f, g, h, ls) \
    {n, "poolformer", 0, 0, 0, {a, b, c_, d_}, {e, f, g, h}, ls, 224, 1000, 3, 7, 4, 2, 0, 0}

static const Entry entries[] = {
    MIXER("mixer_s32_224", 32, 512, 8),
    MIXER("mixer_s16_224", 16, 512, 8),
    MIXER("mixer_b32_224", 32, 768, 12),
    MIXER("mixer_b16_224", 16, 768, 12),
    MIXER("mixer_l32_224", 32, 1024, 24),
    MIXER("mixer_l16_224", 16, 1024, 24),
    /* timm: ResBlock init_values 1e-4 for resmlp_12 (the default), 1e-5 / 1e-6 for deeper ones */
    RESMLP("resmlp_12_224", 16, 384, 12, 1e-4f),
    RESMLP("resmlp_24_224", 16, 384, 24, 1e-5f),
    RESMLP("resmlp_36_224", 16, 384, 36, 1e-6f),
    RESMLP("resmlp_big_24_224", 8, 768, 24, 1e-6f),
    POOL("poolformer_s12", 2, 2, 6, 2, 64, 128, 320, 512, 1e-5f),
    POOL("poolformer_s24", 4, 4, 12, 4, 64, 128, 320, 512, 1e-5f),
    POOL("poolformer_s36", 6, 6, 18, 6, 64, 128, 320, 512, 1e-6f),
    POOL("poolformer_m36", 6, 6, 18, 6, 96, 192, 384, 768, 1e-6f),
    POOL("poolformer_m48", 8, 8, 24, 8, 96, 192, 384, 768, 1e-6f),
    GMLP("gmlp_ti16_224", 128),
    GMLP("gmlp_s16_224", 256),
    GMLP("gmlp_b16_224", 512),
    VIT("vit_tiny_patch16_224", 192, 12, 3),
    VIT("vit_small_patch16_224", 384, 12, 6),
    VIT("vit_base_patch16_224", 768, 12, 12),
    VIT("deit_tiny_patch16_224", 192, 12, 3),
    VIT("deit_small_patch16_224", 384, 12, 6),
    /* presets for 28x28 grayscale, 10 classes (override img-size 32 / in-chans 3 for CIFAR) */
    {"mixer_tiny", "mixer", 4, 128, 4, {0}, {0}, 1e-4f, 28, 10, 1, 0, 0, 0, 0, 0},
    {"resmlp_tiny", "resmlp", 4, 128, 4, {0}, {0}, 0.1f, 28, 10, 1, 0, 0, 0, 0, 0},
    {"poolformer_tiny", "poolformer", 0, 0, 0, {2, 2, 4, 2}, {32, 64, 128, 256}, 1e-5f, 28, 10, 1, 3, 2, 1, 0, 0},
    {"gmlp_tiny", "gmlp", 4, 128, 4, {0}, {0}, 1e-4f, 28, 10, 1, 0, 0, 0, 0, 6.0f},
    {"vit_tiny_28", "vit", 4, 128, 4, {0}, {0}, 1e-5f, 28, 10, 1, 0, 0, 0, 4, 4.0f},
    {"repmlp_tiny", "repmlp", 4, 128, 4, {0}, {0}, 1e-4f, 28, 10, 1, 0, 0, 0, 0, 4.0f},
    /* 32x32 RGB (CIFAR-10): patch 4 -> 8x8 tokens */
    {"repmlp_tiny_32", "repmlp", 4, 128, 4, {0}, {0}, 1e-4f, 32, 10, 3, 0, 0, 0, 0, 4.0f},
};
#define NENTRIES ((int)(sizeof entries / sizeof entries[0]))

int model_count(void) { return NENTRIES; }

const char *model_name(int i) { return i >= 0 && i < NENTRIES ? entries[i].name : NULL; }

static void set_all_mixers(ModelConfig *cfg, const char *mixer) {
    for (int s = 0; s < MT_MAX_STAGES; s++) snprintf(cfg->token_mixer[s], sizeof cfg->token_mixer[s], "%s", mixer);
}

int model_config_default(const char *name, ModelConfig *cfg, char *err, size_t n) {
    const Entry *e = NULL;
    for (int i = 0; i < NENTRIES; i++)
        if (name && strcmp(entries[i].name, name) == 0) e = &entries[i];
    if (!e) {
        int k = snprintf(err, n, "unknown model '%s'; known models:", name ? name : "(null)");
        for (int i = 0; i < NENTRIES && k > 0 && (size_t)k < n; i++)
            k += snprintf(err + k, n - (size_t)k, " %s", entries[i].name);
        return -1;
    }
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->name, sizeof cfg->name, "%s", e->name);
    snprintf(cfg->family, sizeof cfg->family, "%s", e->family);
    cfg->num_classes = e->classes;
    cfg->img_size = e->img;
    cfg->in_chans = e->chans;
    cfg->mlp_ratio_tokens = 0.5f;
    cfg->mlp_ratio = e->mlp_ratio > 0 ? e->mlp_ratio : 4.0f;
    cfg->pool_size = 3;
    cfg->heads = e->heads;
    snprintf(cfg->mlp, sizeof cfg->mlp, "mlp");
    cfg->mlp_hidden_scale = 0;
    cfg->mem_units = 64;
    cfg->rep_kernels[0] = 1, cfg->rep_kernels[1] = 3;
    cfg->rep_reduction = 4;
    snprintf(cfg->act, sizeof cfg->act, "gelu");
    cfg->layer_scale_init = e->ls_init;
    if (strcmp(e->family, "poolformer") == 0) {
        cfg->num_stages = MT_MAX_STAGES;
        memcpy(cfg->depths, e->depths, sizeof cfg->depths);
        memcpy(cfg->dims, e->dims, sizeof cfg->dims);
        cfg->stem_kernel = e->stem_k;
        cfg->stem_stride = e->stem_s;
        cfg->stem_pad = e->stem_p;
        set_all_mixers(cfg, "pool");
        snprintf(cfg->norm, sizeof cfg->norm, "groupnorm");
        cfg->layer_scale = 1;
    } else {
        cfg->patch_size = e->patch;
        cfg->embed_dim = e->dim;
        cfg->depth = e->depth;
        int res = strcmp(e->family, "resmlp") == 0;
        const char *fam = e->family;
        set_all_mixers(cfg, res ? "linear"
                            : !strcmp(fam, "gmlp") ? "sgu"
                            : !strcmp(fam, "vit") ? "attention"
                            : !strcmp(fam, "repmlp") ? "repmlp" : "mlp");
        snprintf(cfg->norm, sizeof cfg->norm, "%s", res ? "affine" : "layernorm");
        cfg->layer_scale = res;
    }
    return 0;
}
