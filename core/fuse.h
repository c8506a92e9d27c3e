/* Where fusion is decided: one rule per fused kernel, consulted by every fused entry point.
 *
 * A fused entry point (mt_linear_act, mt_norm_mlp_residual, the pool branch, ...) either runs
 * one of the fused kernels below or its composed reference: the unfused primitives (linear,
 * token_linear, bias_act, activation, residual, layernorm, groupnorm1, affine, avgpool2d)
 * called in sequence, each recording its own node when a tape is on. mt_fuse_ok is the only
 * place that chooses; the entry points keep only the preconditions a kernel has on its
 * arguments (sizes that fit mt_gemm_chain, a layer scale the node cannot take).
 * mt_pool_residual takes its norm already folded into raw scales, so its caller (the pool
 * mixer's norm_branch hook) asks MT_FUSE_POOL_RESIDUAL and otherwise lets the block run the
 * norm layer and the mixer's plain forward.
 *
 * Reference mode: c->fuse = 0 (MIXTAPE_FUSION=0 in the environment at mt_ctx_init) makes every
 * rule say no, so the same model code builds the unfused graph in training and evaluation;
 * tests/test_fusion.c compares the two for every preset and token mixer. */
#pragma once
#include "core/tape.h"

typedef enum MtFuse {
    MT_FUSE_LINEAR_EPILOGUE,       /* eval: bias, activation, layer scale, residual in a linear's GEMM epilogue */
    MT_FUSE_TOKEN_EPILOGUE,        /* eval: the same for a token-mixing linear */
    MT_FUSE_NORM_PROLOGUE,         /* LayerNorm / GroupNorm(1) applied while fc1's GEMM packs x */
    MT_FUSE_MLP_CHAIN,             /* eval: norm + fc1 + fc2 + residual chained per block of rows */
    MT_FUSE_ACT_LINEAR_RESIDUAL,   /* bias_act + linear + residual as one node */
    MT_FUSE_TOKEN_ACT_LINEAR_RESIDUAL, /* activation + token_linear + residual as one node */
    MT_FUSE_POOL_RESIDUAL,         /* eval: norm + pool - n + residual in one pass (mt_pool_residual) */
    MT_FUSE_NORM_POOL_RESIDUAL,    /* norm + pool - n + residual as one node (mt_norm_pool_residual) */
    MT_FUSE_COUNT
} MtFuse;

/* Should the fused kernel f run? taped: the op records a node (mt_needs_grad). */
int mt_fuse_ok(const Ctx *c, MtFuse f, int taped);
/* The rule's name and the primitives it replaces (for messages and the test's report). */
const char *mt_fuse_name(MtFuse f);
const char *mt_fuse_replaces(MtFuse f);
/* The default of c->fuse: 0 when MIXTAPE_FUSION is "0", else 1. */
int mt_fuse_default(void);
