/* The model interface the commands use. A model is a config (family, sizes,
 * overrides, ablation switches), the parameters it registers under timm's
 * state_dict names, and a forward pass on the tape. */
#pragma once
#include "core/ops.h"
#include "core/params.h"
#include <stddef.h>
#include <stdint.h>

#define MT_MAX_STAGES 4

typedef struct ModelConfig {
    char name[64];          /* registry name, e.g. "mixer_s16_224" */
    char family[16];        /* "mixer" | "resmlp" | "poolformer" | "gmlp" | "vit" | "repmlp" */
    int num_classes, img_size, in_chans;
    float drop_rate, drop_path_rate;
    /* isotropic families (mixer, resmlp) */
    int patch_size, embed_dim, depth;
    float mlp_ratio_tokens, mlp_ratio;   /* mixer: (0.5, 4.0); resmlp: mlp_ratio 4 */
    /* hierarchical (poolformer / metaformer) */
    int num_stages, depths[MT_MAX_STAGES], dims[MT_MAX_STAGES], pool_size;
    /* ablation switches; token_mixer per stage (isotropic models use [0] for all blocks):
     * "mlp" | "linear" | "pool" | "identity" | "random" | "attention" | "external" | "repmlp";
     * gmlp's blocks are "sgu" (the spatial gating unit inside the channel MLP) */
    char token_mixer[MT_MAX_STAGES][16];
    char norm[16];          /* "layernorm" | "groupnorm" | "affine" | "rmsnorm" | "none" */
    char act[16];           /* "gelu" | "relu" | "silu" | "gelu_tanh" */
    int layer_scale;        /* 1 = on */
    float layer_scale_init;
    int heads;              /* attention mixer: 0 = timm's head_dim 32 rule, else heads of dim/heads */
    /* hierarchical stem conv (poolformer: 7, 4, 2); the tiny preset uses 3, 2, 1 */
    int stem_kernel, stem_stride, stem_pad;
    /* channel MLPs: "mlp" | "glu" | "geglu" | "swiglu" | "reglu" (timm GluMlp layout: fc1 (2h, C),
     * value half first, gate half second); hidden h = int(mlp_ratio * C * scale), scale 0 = auto
     * (1 for mlp, 2/3 for the gated variants: the same parameter count) */
    char mlp[16];
    float mlp_hidden_scale;
    int mem_units;          /* external attention: S memory units (default 64) */
    /* RepMLP token mixer: local-perceptron conv kernels (0-terminated list, default 1,3),
     * global-perceptron reduction (default 4), deploy = 1 after `mixtape reparam` (fc3 only) */
    int rep_kernels[MT_MAX_STAGES];
    int rep_reduction;
    int rep_deploy;
} ModelConfig;

typedef struct Model {
    ModelConfig cfg;
    ParamList params;
    void *priv;             /* family-specific layer table, owned */
} Model;

/* Registry. */
int model_count(void);
const char *model_name(int i);
/* Defaults of a registered model (timm's), or -1 with err naming the unknown model. */
int model_config_default(const char *name, ModelConfig *cfg, char *err, size_t n);
/* One override by its command-line name without dashes: "num-classes", "img-size",
 * "in-chans", "drop", "drop-path", "patch-size", "embed-dim", "depth", "depths",
 * "dims", "mlp-ratio", "pool-size", "token-mixer", "norm", "act", "layer-scale",
 * "layer-scale-init", "heads", "mlp", "mlp-hidden-scale", "mem-units", "rep-kernels",
 * "rep-reduction", "rep-deploy". -1 with err naming key and value when invalid. */
int model_config_set(ModelConfig *cfg, const char *key, const char *value, char *err, size_t n);
/* NULL-terminated list of the keys model_config_set accepts. */
const char *const *model_override_keys(void);
/* The override flags for the command line: type 'i' integer, 'f' number, 'l' comma list of
 * integers, 'r' one ratio or two (tokens,channels), 'c' one of choices, 'm' token mixer(s),
 * each value (or list item) in [lo, hi]; scope 'a' every model, 'h' hierarchical
 * (poolformer) only, 'i' isotropic only. Terminated by key NULL; same order as the keys. */
typedef struct ModelOverride {
    const char *key;
    char type, scope;
    double lo, hi;
    const char *choices, *help;
} ModelOverride;
const ModelOverride *model_overrides(void);
/* Flat JSON object of every field; round-trips through model_config_from_json. */
int model_config_to_json(const ModelConfig *cfg, char *buf, size_t n);
int model_config_from_json(const char *json, ModelConfig *cfg, char *err, size_t n);
/* One line for the start of a run: every switch and its value. */
void model_config_describe(const ModelConfig *cfg, char *buf, size_t n);

/* Largest model model_build accepts (elements of all parameters, 4 GiB of float32;
 * training holds about 4x that with gradients and AdamW state). */
#define MODEL_MAX_PARAMS ((size_t)1 << 30)

/* Build: validates the config (limits, shapes divisible, etc.), counts the
 * parameters without allocating (at most MODEL_MAX_PARAMS), then registers every
 * parameter in timm's state_dict order, zero-filled. -1 with err on a bad config. */
int model_build(Model *m, const ModelConfig *cfg, char *err, size_t n);
/* timm's initialisation, deterministic in seed. */
void model_init(Model *m, uint64_t seed);
/* images (B, in_chans, img_size, img_size) NCHW -> logits (B, num_classes).
 * Dropout / drop path follow c->training. NULL on error (c->err). */
Tensor *model_forward(Ctx *c, Model *m, Tensor *images);
/* Forward GFLOPs for one image (multiply-add = 2 FLOPs), GEMM/conv dominated. */
double model_gflops(const ModelConfig *cfg);
void model_free(Model *m);
/* RepMLP structural re-parameterisation: `dst` must be built from src's config with
 * rep_deploy = 1. Copies every shared parameter and folds each RepMLP mixer's conv
 * branches into its fc3 (N, N) weight and bias. -1 with err on a mismatch. */
int model_reparam(const Model *src, Model *dst, char *err, size_t n);
