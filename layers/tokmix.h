/* Token mixers as modules. Each mixer is one file (layers/tokmix_<name>.c) defining one
 * MixerDef, and one line in the table of layers/tokmix.c; names, the --token-mixer list in
 * help and errors, validation, parameter registration, forward, FLOPs and structural
 * re-parameterisation all come from the def. A mixer keeps its parameters in a state
 * struct of its own (one allocation, freed with the model; the tensors belong to the
 * model's ParamList). Mixers see channels-last (B, H, W, C) activations; as_tokens views
 * them as (B, N, C). */
#pragma once
#include "layers/model.h"

typedef struct Norm Norm;
typedef struct FamilyInit FamilyInit;
typedef struct MixerDef MixerDef;

typedef struct TokenMixer {
    const MixerDef *def;
    void *state;                /* the def's own struct, calloc'ed by register */
} TokenMixer;

struct MixerDef {
    const char *name;           /* --token-mixer value */
    const char *about;          /* one line for docs/help */
    /* Module names under a block, where a family follows timm's naming for this mixer:
     * isotropic Mixer/ResMLP-like families, and ViT; NULL = "token_mixer". */
    const char *iso_module, *vit_module;
    int needs_grid;             /* needs the H x W grid (not ViT's class-token sequence) */
    int gmlp_only;              /* only gMLP blocks (the spatial gating unit) */
    int linear_chan_mlp;        /* PoolFormer-family blocks with it use Linear, not 1x1 conv, MLPs */
    /* Extra checks of the config on a stage of `dim` channels; NULL = none. -1 with err. */
    int (*validate)(const ModelConfig *cfg, int dim, char *err, size_t n);
    /* Parameters under prefix (the mixer module's full name) for an h x w grid of C
     * channels (ViT: h = 1, w = tokens). -1 with err. */
    int (*reg)(Model *m, TokenMixer *tm, const char *prefix, int h, int w, int C, const FamilyInit *fi, char *err,
               size_t n);
    /* mixer(x) on (B, H, W, C); with res, res + gamma * mixer(x) (gamma may be NULL), fused
     * into the mixer's last GEMM where it has one. */
    Tensor *(*forward)(Ctx *c, const TokenMixer *tm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma);
    /* Optional: the whole branch x + gamma * mixer(norm(x)) as one op, or NULL when this
     * norm / mode cannot take that path (the block then runs norm and forward). */
    Tensor *(*norm_branch)(Ctx *c, const TokenMixer *tm, const Norm *norm, Tensor *x, Tensor *gamma);
    /* Multiply-adds x 2 on N tokens of C channels of an h x w grid. */
    double (*flops)(const ModelConfig *cfg, int N, int C, int h, int w);
    /* Optional structural re-parameterisation: fold src's training-time parameters into
     * dst (built from the same config in deploy form, parameters already copied). Returns
     * the number of folds. */
    int (*reparam)(const TokenMixer *src, TokenMixer *dst, int h, int w);
};

/* The table: lookup by name (NULL when unknown), iteration, and the names as a list for
 * messages ("mlp, linear, ..."; gmlp-only mixers left out unless with_gmlp). */
const MixerDef *mixer_find(const char *name);
int mixer_count(void);
const MixerDef *mixer_at(int i);
const char *mixer_list(int with_gmlp);

/* Registration through the def: sets tm->def, then def->reg. */
int mixer_register(Model *m, TokenMixer *tm, const MixerDef *def, const char *prefix, int h, int w, int C,
                   const FamilyInit *fi, char *err, size_t n);
/* Module name under a block for this family (timm's naming). */
const char *mixer_module(const MixerDef *def, const char *family);
/* Allocates tm->state of `size` bytes (zeroed); NULL with err. */
void *mixer_state(TokenMixer *tm, size_t size, char *err, size_t n);
