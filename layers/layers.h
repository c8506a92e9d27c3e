/* Internals of the model zoo, shared by the files in layers/ (not a public API).
 *
 * Every model is the same skeleton, a MetaFormer:
 *   stem conv -> stages of [downsample conv] + blocks -> head
 * and every block is
 *   x = x + drop_path(ls1 * token_mixer(norm1(x)))
 *   x = x + drop_path(ls2 * mlp(norm2(x)))
 * Mixer and ResMLP are one isotropic stage with a patch-embedding stem; PoolFormer
 * has up to four stages. The families differ only in parameter names, their
 * order, the defaults and the init, which the family files (mixer.c,
 * poolformer.c) decide when they register the parameters. */
#pragma once
#include "layers/model.h"
#include "layers/tokmix.h"

/* ---- parameter init specs (init.c) ---- */
typedef enum {
    INIT_ZEROS, INIT_ONES, INIT_CONST,  /* v */
    INIT_XAVIER,                        /* xavier_uniform_ */
    INIT_LECUN,                         /* timm lecun_normal_: truncated normal, fan_in */
    INIT_TRUNC_NORMAL,                  /* trunc_normal_(std=v, a=-2, b=2) */
    INIT_NORMAL,                        /* normal_(std=v) */
    INIT_RANDOM_MIX,                    /* softmax(rand(N, N), -1): RandFormer's frozen matrix */
    INIT_UNIFORM                        /* uniform(-v, v): PyTorch's default conv init (ViT patch embed) */
} InitKind;
typedef struct InitSpec { InitKind kind; float v; } InitSpec;

/* ---- string switches ---- */
typedef enum { NORM_LAYERNORM, NORM_GROUPNORM, NORM_AFFINE, NORM_RMSNORM, NORM_NONE } NormKind;
int parse_norm(const char *s);   /* -1 when unknown */
int parse_act(const char *s);    /* mt_act or -1 */
int parse_mlp(const char *s);    /* 0 mlp, 1 glu, 2 geglu, 3 swiglu, 4 reglu, -1 unknown */
/* Hidden width h of a channel MLP on `dim` channels (fc1 is (2h, dim) when gated);
 * *gate (may be NULL) = mt_gate of the variant or -1 for the plain MLP. */
int mlp_hidden(const ModelConfig *cfg, int dim, int *gate);
const char *norm_str(int k);

/* ---- layers ---- */
typedef struct Norm { NormKind kind; Tensor *w, *b; float eps; } Norm;
typedef struct Mlp {
    Tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b; /* weights may be 1x1 convs */
    int gated;               /* GLU variant: fc1 gives [value | gate], y = value * gate_act(gate) */
    mt_gate gate;
    /* gMLP's spatial gating unit after the activation: [u | v], v = norm(v),
     * v = proj over tokens (N, N) + bias, out u * v */
    int sgu;
    Norm sgu_norm;
    Tensor *sgu_w, *sgu_b;
} Mlp;
typedef struct Block {
    Norm norm1, norm2;
    TokenMixer mix;
    Mlp mlp;
    Tensor *ls1, *ls2;       /* layer scale (C) or NULL */
    float drop_path;
    char name[64];           /* "blocks.3" / "stages.1.blocks.0", for error scopes */
    const char *mix_name;    /* "mlp_tokens" | "linear_tokens" | "token_mixer" */
    const char *mlp_name;    /* "mlp_channels" | "mlp" */
    int gmlp;                /* gMLP block: x + drop_path(mlp(norm1(x))), no token mixer branch */
} Block;
typedef struct Stage {
    Tensor *ds_w, *ds_b;     /* downsample conv 3x3 s2 p1, or NULL */
    int first, nblocks;      /* blocks[first .. first + nblocks) */
    int h, w, dim;           /* feature map of the blocks */
} Stage;

typedef struct Net {
    InitSpec *init;          /* parallel to Model.params */
    int init_cap;
    mt_act act;
    Tensor *stem_w, *stem_b;
    int stem_k, stem_s, stem_p;
    int nstages;
    Stage stages[MT_MAX_STAGES];
    Block *blocks;
    int nblocks;
    int norm_before_pool;    /* isotropic: norm(x) then mean; hierarchical: mean then norm */
    Norm head_norm;
    Tensor *head_w, *head_b;
    Tensor *cls_token, *pos_embed; /* ViT: (1, 1, D), (1, N + 1, D); pooled by the class token */
} Net;

/* Register a parameter "prefix.leaf" with its init; NULL (err filled) on failure. */
Tensor *reg_param(Model *m, char *err, size_t n, InitSpec init, const char *prefix, const char *leaf, int ndim,
                  const int *shape);
Tensor *reg1(Model *m, char *err, size_t n, InitSpec init, const char *prefix, const char *leaf, int d0);
Tensor *reg2(Model *m, char *err, size_t n, InitSpec init, const char *prefix, const char *leaf, int d0, int d1);
Tensor *reg4(Model *m, char *err, size_t n, InitSpec init, const char *prefix, const char *leaf, int d0, int d1,
             int d2, int d3);
static inline InitSpec init_spec(InitKind k, float v) { InitSpec s = {k, v}; return s; }

/* Norm registration: layernorm/groupnorm weight+bias (C); affine alpha+beta as
 * ResMLP's (1,1,C); rmsnorm weight (C); none nothing. */
int norm_register(Model *m, Norm *nm, NormKind kind, float eps, const char *prefix, int dim, char *err, size_t n);

/* Init of one family: weights, biases of modules whose name contains "mlp", other biases. */
typedef struct FamilyInit { InitSpec weight, mlp_bias, bias; } FamilyInit;
/* fc1 (hidden, in[,1,1]), fc2 (in, hidden[,1,1]) with biases; conv1x1 adds the 1x1 kernel axes. */
int mlp_register(Model *m, Mlp *mlp, const char *prefix, int in, int hidden, int conv1x1, FamilyInit fi,
                 char *err, size_t n);
/* The channel MLP of a block: plain or GLU variant per cfg->mlp (width from mlp_hidden). */
int chan_mlp_register(Model *m, Mlp *mlp, const char *prefix, int in, int conv1x1, FamilyInit fi, char *err,
                      size_t n);
/* FLOPs of one channel MLP on N tokens of C channels. */
double chan_mlp_flops(const ModelConfig *cfg, int N, int C);
/* ---- views (views.c), norms (norm.c), MLPs (mlp.c), the block (blocks.c) ---- */
/* 1-D (C) view of a parameter of numel C (ResMLP's (1,1,C) affine). */
Tensor *vec_view(Ctx *c, Tensor *p);
/* 2-D (out, in) view of a (out, in, 1, 1) 1x1 conv weight; 2-D weights pass through. */
Tensor *mat_view(Ctx *c, Tensor *p);
/* (B, H, W, C) as (B, H*W, C), and a (B, N, C) result back in like's (B, H, W, C). */
Tensor *as_tokens(Ctx *c, Tensor *x);
Tensor *as_grid(Ctx *c, Tensor *t, const Tensor *like);
Tensor *norm_forward(Ctx *c, const Norm *nm, Tensor *x);
/* fc2(act(fc1(nm(x)))), nm NULL or a norm folded into fc1 where it can be; with res (and gamma or
 * NULL): res + gamma * fc2(...) in one fused GEMM. */
Tensor *mlp_forward(Ctx *c, const Mlp *mlp, const Norm *nm, Tensor *x, mt_act act, Tensor *res, Tensor *gamma);
/* x (B, H, W, C) channels-last -> same shape. */
Tensor *block_forward(Ctx *c, const Block *blk, Tensor *x, mt_act act);

/* ---- family builders / flops ---- */
int isotropic_build(Model *m, char *err, size_t n);   /* mixer, resmlp (mixer.c) */
int poolformer_build(Model *m, char *err, size_t n);  /* poolformer.c */
int gmlp_build(Model *m, char *err, size_t n);        /* gmlp.c */
int vit_build(Model *m, char *err, size_t n);         /* vit.c */
double gmlp_gflops(const ModelConfig *cfg);
double vit_gflops(const ModelConfig *cfg);
double isotropic_gflops(const ModelConfig *cfg);
double poolformer_gflops(const ModelConfig *cfg);
/* Validation shared by the families (config.c); -1 with err. */
int config_validate(const ModelConfig *cfg, char *err, size_t n);
/* Heads and attention width for the attention mixer on `dim` channels. */
void attention_dims(const ModelConfig *cfg, int dim, int *heads, int *attn_dim);
/* Spatial size after the poolformer stem / a stage's downsample. */
int conv_out(int in, int k, int s, int p);
