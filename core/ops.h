/* Differentiable ops. Each takes the context, returns a new arena tensor (or
 * NULL after recording an error in c->err naming the op, scope and shapes),
 * and records a tape node when an input requires grad.
 *
 * Layout convention: activations are channels-last. Image-like tensors are
 * (B, H, W, C); token tensors are (B, N, C) with N = H*W. Only the network input
 * is NCHW, and conv2d reads it directly (MT_NCHW). Weights keep timm's layouts:
 * linear (out, in), conv (out, in, kh, kw). */
#pragma once
#include "core/tape.h"

/* Fused entry points (mt_linear_act, mt_*_residual, mt_norm_*, the token and pool variants)
 * ask core/fuse.h's rules whether to run a fused kernel; with c->fuse 0 (MIXTAPE_FUSION=0)
 * each runs its composed reference, the primitives it stands for, taped or not. */

/* ---- GEMM family (OpenBLAS sgemm with transpose flags, never a copy) ---- */
/* y = x @ w^T + b over the last axis. x (..., in), w (out, in), b (out) or NULL. */
Tensor *mt_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b);
/* Mixing along the token axis: y[b] = w @ x[b] + b[:,None]. x (B, N, C), w (N2, N), b (N2) or NULL. */
Tensor *mt_token_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b);
/* Batched matmul over all leading axes: a (..., M, K) or (..., K, M) if ta;
 * b (..., K, N) or (..., N, K) if tb; leading axes equal. Result (..., M, N). */
Tensor *mt_bmm(Ctx *c, Tensor *a, Tensor *b, int ta, int tb);

/* ---- element-wise and per-channel (channel = last axis) ---- */
Tensor *mt_add(Ctx *c, Tensor *a, Tensor *b);                  /* same shapes */
Tensor *mt_mul(Ctx *c, Tensor *a, Tensor *b);                  /* same shapes */
Tensor *mt_bias_add(Ctx *c, Tensor *x, Tensor *bias);          /* bias (C) */
Tensor *mt_scale(Ctx *c, Tensor *x, Tensor *gamma);            /* x * gamma, gamma (C): layer scale */
Tensor *mt_affine(Ctx *c, Tensor *x, Tensor *alpha, Tensor *beta); /* alpha*x + beta: ResMLP Aff */
/* Fused residual: res + gamma * x (gamma may be NULL: res + x). */
Tensor *mt_residual(Ctx *c, Tensor *res, Tensor *x, Tensor *gamma);

/* ---- normalisation ---- */
/* The norm a fused op applies itself (mt_norm_linear_act, mt_norm_mlp_residual,
 * mt_norm_pool_residual): LayerNorm over the last axis, GroupNorm with one group, timm's Affine
 * (x * w + b, no statistics; the pool branch only). */
typedef enum MtNormKind { MT_NORM_LAYER = 0, MT_NORM_GROUP1 = 1, MT_NORM_AFFINE = 2 } MtNormKind;
/* LayerNorm over the last axis; w, b (C) or NULL. */
Tensor *mt_layernorm(Ctx *c, Tensor *x, Tensor *w, Tensor *b, float eps);
/* GroupNorm with one group: statistics over every element of a sample (all axes
 * but the first), affine per channel (last axis). PoolFormer's GroupNorm1. */
Tensor *mt_groupnorm1(Ctx *c, Tensor *x, Tensor *w, Tensor *b, float eps);
/* GroupNorm(1)'s per-sample statistics alone: mean[B] (or NULL) and rstd[B] = 1/sqrt(var + eps).
 * 0, or -1 with the error recorded. */
int mt_groupnorm1_stats(Ctx *c, Tensor *x, float eps, float *mean, float *rstd);
/* The statistics of LayerNorm (MT_NORM_LAYER: mean[rows], rstd[rows]) or GroupNorm(1)
 * (MT_NORM_GROUP1: mean[B], rstd[B]) after the norm op's own checks of x, its weight w and bias b (either NULL)
 * and eps, errors recorded under op's name (for ops that apply the norm elsewhere). 0 or -1. */
int mt_norm_stats(Ctx *c, const char *op, Tensor *x, MtNormKind kind, const Tensor *w, const Tensor *b, float eps,
                  float *mean, float *rstd);
/* The norm's output from those statistics into y (fp32) or, when y16 is not NULL, y16 (bf16),
 * as mt_layernorm / mt_groupnorm1 compute it (the same bits). Threaded, no tape. */
void mt_norm_apply(MtNormKind kind, const Tensor *x, const Tensor *w, const Tensor *b, const float *mean,
                   const float *rstd, float *y, uint16_t *y16);
/* The norm's backward for an op that applied the norm itself (mean and rstd as above): dy
 * (x's shape) -> x's gradient (through mt_grad_accumulate: the calling node must overwrite x)
 * and w's, b's; the norm ops' own backward runs the same code. */
void mt_norm_backward(Ctx *c, MtNormKind kind, Tensor *x, Tensor *w, Tensor *b, const float *mean, const float *rstd,
                      const float *dy);
/* RMSNorm over the last axis; w (C) or NULL. */
Tensor *mt_rmsnorm(Ctx *c, Tensor *x, Tensor *w, float eps);

/* ---- activations ---- */
typedef enum { MT_ACT_GELU, MT_ACT_GELU_TANH, MT_ACT_RELU, MT_ACT_SILU, MT_ACT_NONE } mt_act;
Tensor *mt_activation(Ctx *c, Tensor *x, mt_act act);
Tensor *mt_gelu(Ctx *c, Tensor *x);       /* erf form (PyTorch approximate="none"): 0.5 x (1 + erf(x / sqrt 2)), erf to 4e-7 (act_gelu.h) */
Tensor *mt_gelu_tanh(Ctx *c, Tensor *x);  /* PyTorch approximate='tanh' */
Tensor *mt_relu(Ctx *c, Tensor *x);
Tensor *mt_silu(Ctx *c, Tensor *x);
/* Fused y = act(x + bias) (the linear layer's epilogue). */
Tensor *mt_bias_act(Ctx *c, Tensor *x, Tensor *bias, mt_act act);
/* y = act(x @ w^T + b), b (out) or NULL. Without a tape (inference, or no input needing a
 * gradient) bias and activation run inside the GEMM's epilogue in one pass over y; with
 * one it is exactly mt_linear(x, w, NULL) followed by mt_bias_act / mt_activation. */
Tensor *mt_linear_act(Ctx *c, Tensor *x, Tensor *w, Tensor *b, mt_act act);
/* In-place activation of a rows x cols tile with row stride ld, serial (NULL for MT_ACT_NONE):
 * GEMM epilogues. */
typedef void (*mt_act_tile)(float *x, int rows, int cols, int ld);
mt_act_tile mt_act_tile_fn(mt_act a);
/* The activation's backward over rows x n, rows ld apart (MtEpilogue.dact): g = dy * act'(x +
 * bias), dx = g (acc 0) or dx += g, dbias += g (column sums, double); bias, dbias may be NULL,
 * dx may be dy. */
typedef void (*mt_act_grad_rows)(float *dx, const float *dy, const float *x, size_t ld, const float *bias,
                                 double *dbias, int rows, int n, int acc);
mt_act_grad_rows mt_act_grad_rows_fn(mt_act a);
/* y = act(x + bias) over rows x C floats (bias (C) or NULL), threaded; no tape. */
void mt_bias_act_rows(mt_act act, float *y, const float *x, const float *bias, size_t rows, int C);
/* The same with y stored as bf16 (core/bf16.h): an activation only MT_BF16 GEMMs read. */
void mt_bias_act_rows_bf16(mt_act act, uint16_t *y, const float *x, const float *bias, size_t rows, int C);
/* res + gamma * (x @ w^T + b) (gamma (out) or NULL): a block's last linear layer and its
 * residual. Without a tape one GEMM with the rest in its epilogue; with one
 * mt_act_linear_residual(x, NULL, MT_ACT_NONE, ...). */
Tensor *mt_linear_residual(Ctx *c, Tensor *x, Tensor *w, Tensor *b, Tensor *res, Tensor *gamma);
/* res + gamma * (act(h + b1) @ w^T + b), every term but h and w optional (gamma needs res): an
 * MLP's last layer in training as one node, the equal of mt_bias_act + mt_linear +
 * mt_residual without their intermediate tensors (op_linear.c says how). */
Tensor *mt_act_linear_residual(Ctx *c, Tensor *h, Tensor *b1, mt_act act, Tensor *w, Tensor *b, Tensor *res,
                               Tensor *gamma);
/* [res + gamma *] (act(x @ w1^T + b1) @ w2^T + b2), res and gamma optional: an MLP and its
 * residual. With a tape mt_linear(x, w1) and mt_act_linear_residual; without, mt_linear_act
 * and mt_linear_residual (or mt_linear), the epilogues doing the rest. */
Tensor *mt_mlp_residual(Ctx *c, Tensor *x, Tensor *w1, Tensor *b1, mt_act act, Tensor *w2, Tensor *b2, Tensor *res,
                        Tensor *gamma);
/* act(norm(x) @ w^T + b), norm = LayerNorm or GroupNorm(1) (kind) with
 * weight nw and bias nb (either may be NULL). Without a tape the norm is applied while the
 * GEMM packs x (the normalised x is never stored; same result); with one, the norm op and
 * mt_linear_act are recorded as separate ops. */
Tensor *mt_norm_linear_act(Ctx *c, Tensor *x, MtNormKind kind, Tensor *nw, Tensor *nb, float eps, Tensor *w,
                           Tensor *b, mt_act act);
/* res + gamma * (act(norm(x) @ w1^T + b1) @ w2^T + b2): a MetaFormer block's norm2, MLP and
 * residual. Without a tape, where the sizes allow (mt_gemm_chain), the hidden layer is kept
 * a block of rows at a time in cache and never stored; same result as the composition
 * mt_linear_residual(mt_norm_linear_act(...)), which it is otherwise. With a tape the norm
 * op and mt_mlp_residual. */
Tensor *mt_norm_mlp_residual(Ctx *c, Tensor *x, MtNormKind kind, Tensor *nw, Tensor *nb, float eps, Tensor *w1,
                             Tensor *b1, mt_act act, Tensor *w2, Tensor *b2, Tensor *res, Tensor *gamma);
/* [res +] w @ act(h[b]) + bias[:, None] on h (B, N, C), w (N2, N), bias (N2) or NULL, res
 * (B, N2, C) or NULL, act not MT_ACT_NONE: the token MLP's fc2 in training as one node (the
 * equal of mt_activation + mt_token_linear + mt_residual; op_linear.c says how). */
Tensor *mt_token_act_linear_residual(Ctx *c, Tensor *h, mt_act act, Tensor *w, Tensor *bias, Tensor *res);
/* [res + gamma *] token_linear(act(token_linear(x, w1, b1)), w2, b2): the token MLP and its
 * residual (res and gamma optional, gamma needs res). With a tape and no gamma,
 * mt_token_linear and mt_token_act_linear_residual; otherwise the ops below. */
Tensor *mt_token_mlp_residual(Ctx *c, Tensor *x, Tensor *w1, Tensor *b1, mt_act act, Tensor *w2, Tensor *b2,
                              Tensor *res, Tensor *gamma);
/* Token mixing with the same fusions: act(token_linear(x)) and res + gamma * token_linear(x);
 * with a tape exactly the unfused ops. */
Tensor *mt_token_linear_act(Ctx *c, Tensor *x, Tensor *w, Tensor *bias, mt_act act);
Tensor *mt_token_linear_residual(Ctx *c, Tensor *x, Tensor *w, Tensor *bias, Tensor *res, Tensor *gamma);
int mt_act_valid(mt_act a); /* 1 for a known mt_act value */

/* ---- convolution and pooling ---- */
typedef enum { MT_NHWC = 0, MT_NCHW = 1 } mt_layout;
/* conv2d via im2col + sgemm. x (B,C,H,W) if layout==MT_NCHW else (B,H,W,C);
 * w (Cout, Cin, kh, kw); b (Cout) or NULL. Output (B, OH, OW, Cout). */
Tensor *mt_conv2d(Ctx *c, Tensor *x, mt_layout layout, Tensor *w, Tensor *b, int stride, int pad);
/* Average pool k x k, stride 1, padding k/2, count_include_pad=False, on (B,H,W,C).
 * subtract_input: return pool(x) - x (PoolFormer's token mixer). */
Tensor *mt_avgpool2d(Ctx *c, Tensor *x, int k, int subtract_input);
/* y = x + chan[ch] * samp[b] * (avgpool2d(x) - x), either scale NULL for 1: PoolFormer's
 * token-mixer branch with its residual in one pass, for inference. A GroupNorm(1) or affine
 * norm before the pool folds into the scales: its bias cancels in pool(n) - n and, the window
 * mean of an affine map being the map of the mean, pool(n) - n = w * rstd_b * (pool(x) - x).
 * No backward: fails when a gradient would be needed. */
Tensor *mt_pool_residual(Ctx *c, Tensor *x, int k, const float *chan, const float *samp);
/* x + gamma * (avgpool2d(n) - n) with n = GroupNorm(1)(x) * w + b (MT_NORM_GROUP1, eps) or
 * n = x * w + b (MT_NORM_AFFINE, timm's Affine): PoolFormer's norm1 + pool token mixer + layer-scaled
 * residual as one taped op ("groupnorm1_pool_residual" / "affine_pool_residual"). x (B, H, W, C);
 * w, b, gamma (C) or NULL (ones, zeros, ones); k odd. Saves only the per-sample mean and rstd;
 * values are the composition mt_residual(x, mt_avgpool2d(norm(x), k, 1), gamma)'s to rounding. */
Tensor *mt_norm_pool_residual(Ctx *c, Tensor *x, MtNormKind kind, Tensor *w, Tensor *b, float eps, int k,
                              Tensor *gamma);
/* Mean over the token axis: (B, N, C) -> (B, C). Also global average over H x W of (B,H,W,C). */
Tensor *mt_mean_tokens(Ctx *c, Tensor *x);

/* ---- layout ---- */
Tensor *mt_nchw_to_nhwc(Ctx *c, Tensor *x);  /* (B,C,H,W) -> (B,H,W,C) */
Tensor *mt_nhwc_to_nchw(Ctx *c, Tensor *x);  /* (B,H,W,C) -> (B,C,H,W) */
/* Same data, new shape (numel must match). */
Tensor *mt_reshape(Ctx *c, Tensor *x, int ndim, const int *shape);
/* Swap axes 1 and 2 of a (A, B, C, D...) tensor: (A, B, C, rest) -> (A, C, B, rest). */
Tensor *mt_transpose12(Ctx *c, Tensor *x);

/* ---- softmax, attention, loss ---- */
Tensor *mt_softmax(Ctx *c, Tensor *x);  /* over the last axis */
/* Multi-head self-attention core on a fused qkv (B, N, 3C) laid out as timm's
 * qkv linear: [q | k | v], each split into `heads` heads of C/heads.
 * Returns softmax(q k^T * scale) v merged back to (B, N, C). */
Tensor *mt_attention(Ctx *c, Tensor *qkv, int heads);
/* Mean softmax cross-entropy over the batch. logits (B, K). Exactly one of:
 * labels (B) hard class indices with optional label smoothing, or
 * soft (B, K) target distributions (mixup / cutmix). Returns a scalar (1). */
Tensor *mt_cross_entropy(Ctx *c, Tensor *logits, const int *labels, const float *soft, float smoothing);

/* ---- regularisation (active only when c->training) ---- */
Tensor *mt_dropout(Ctx *c, Tensor *x, float p);
/* Stochastic depth: zero whole samples (axis 0) with prob p, scale kept ones by 1/(1-p). */
Tensor *mt_drop_path(Ctx *c, Tensor *x, float p);

/* ---- channel splitting, gating, tokens (gMLP, GLU MLPs, ViT, RepMLP, External Attention) ---- */
/* torch.narrow: elements [start, start + len) of one axis (negative axis counts from the end).
 * A copy; backward adds into that slice of x's gradient. Chunking channels, slicing the cls token. */
Tensor *mt_narrow(Ctx *c, Tensor *x, int axis, int start, int len);
/* Gated linear unit on the last axis, timm GluMlp (gate_last): x (..., 2h) = [a | g]
 * -> a * act(g) (..., h). act: sigmoid (GLU), gelu (erf, GEGLU), silu (SwiGLU), relu (ReGLU). */
typedef enum { MT_GATE_SIGMOID, MT_GATE_GELU, MT_GATE_SILU, MT_GATE_RELU } mt_gate;
Tensor *mt_glu(Ctx *c, Tensor *x, mt_gate act);
/* Class token: x (B, N, C), tok (numel C, e.g. timm's (1,1,C)) -> (B, N+1, C) with tok first. */
Tensor *mt_prepend_token(Ctx *c, Tensor *x, Tensor *tok);
/* External attention's double normalisation on x (B, N, S): softmax over the token axis N,
 * then each token's row divided by its sum over the S memory units (+ eps). */
Tensor *mt_double_norm(Ctx *c, Tensor *x, float eps);
/* Per-sample channel gate (squeeze-excitation): x (B, ..., C), g (B, C) -> x * sigmoid(g)[b, c]. */
Tensor *mt_channel_gate(Ctx *c, Tensor *x, Tensor *g);
