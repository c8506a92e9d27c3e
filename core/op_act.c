/* Activations (GELU exact and tanh, ReLU, SiLU) and the fused linear epilogue
 * y = act(x + bias). Backward recomputes the derivative from the kept input
 * (and bias), so no pre-activation copy is stored. */
#include "core/ops.h"
#include "core/op_util.h"
#include "core/act_gelu.h"
#include "core/bf16.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>

#define PAR_MIN 16384

static const char *act_name(mt_act a) {
    switch (a) {
    case MT_ACT_GELU: return "gelu";
    case MT_ACT_GELU_TANH: return "gelu_tanh";
    case MT_ACT_RELU: return "relu";
    case MT_ACT_SILU: return "silu";
    case MT_ACT_NONE: return "none";
    }
    return "unknown";
}

/* ---- scalar forms: value and derivative ----
 * libm's erff/expf/tanhf are not vectorised without -ffast-math, so exp and erf
 * are core/act_gelu.h's branch-free float forms, which the `omp simd` loops turn
 * into vector instructions; GELU itself has explicit AVX-512 kernels there. */

#define SQRT_2_OVER_PI 0.79788456080286535588f
#define GELU_TANH_K 0.044715f

static inline float sigmoid(float x) { return 1.0f / (1.0f + mt_exp_fast(-x)); }

/* 0.5 x (1 + tanh u) = x sigmoid(2u), and 1 - tanh(u)^2 = 4 s (1 - s) with s = sigmoid(2u). */
static inline float gelu_tanh_f(float x) {
    float u = SQRT_2_OVER_PI * (x + GELU_TANH_K * x * x * x);
    return x * sigmoid(2.0f * u);
}
static inline float gelu_tanh_d(float x) {
    float u = SQRT_2_OVER_PI * (x + GELU_TANH_K * x * x * x);
    float s = sigmoid(2.0f * u);
    float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_K * x * x);
    return s + 2.0f * x * s * (1.0f - s) * du;
}
static inline float relu_f(float x) { return x > 0.0f ? x : 0.0f; }
static inline float relu_d(float x) { return x > 0.0f ? 1.0f : 0.0f; }
static inline float none_f(float x) { return x; }
static inline float none_d(float x) { return 1.0f; }
static inline float silu_f(float x) { return x * sigmoid(x); }
static inline float silu_d(float x) {
    float s = sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
}

/* ---- tile kernels for GEMM epilogues: serial (they run on the GEMM's own threads) ---- */

#define ACT_TILE(NAME, F)                                                                                        \
    static void NAME(float *x, int rows, int cols, int ld) {                                                     \
        for (int r = 0; r < rows; r++) {                                                                         \
            float *xr = x + (size_t)r * ld;                                                                      \
            _Pragma("omp simd") for (int i = 0; i < cols; i++) xr[i] = F(xr[i]);                                 \
        }                                                                                                        \
    }
ACT_TILE(gelu_tanh_tile, gelu_tanh_f)
ACT_TILE(relu_tile, relu_f)
ACT_TILE(silu_tile, silu_f)

mt_act_tile mt_act_tile_fn(mt_act a) {
    switch (a) {
    case MT_ACT_GELU: return mt_gelu_tile;
    case MT_ACT_GELU_TANH: return gelu_tanh_tile;
    case MT_ACT_RELU: return relu_tile;
    case MT_ACT_SILU: return silu_tile;
    case MT_ACT_NONE: return NULL;
    }
    return NULL;
}

/* ---- rows kernels of the backward, for the GEMM epilogue (mt_act_grad_rows_fn) ---- */

/* g = dy * act'(x + bias); dx = g (acc 0) or dx += g; dbias += g. In place (dx == dy) is fine. */
#define ACT_GRAD_ROW(NAME, D)                                                                                  \
    static void NAME(float *dx, const float *dy, const float *x, size_t ld, const float *bias, double *dbias,  \
                     int rows, int n, int acc) {                                                               \
        for (int r = 0; r < rows; r++, dy += ld, x += ld, dx = dx ? dx + ld : NULL) {                          \
            _Pragma("omp simd") for (int j = 0; j < n; j++) {                                                  \
                float g = dy[j] * D(x[j] + (bias ? bias[j] : 0.0f));                                           \
                if (dx) dx[j] = acc ? dx[j] + g : g;                                                           \
                if (dbias) dbias[j] += g;                                                                      \
            }                                                                                                  \
        }                                                                                                      \
    }
ACT_GRAD_ROW(gelu_tanh_grad_row, gelu_tanh_d)
ACT_GRAD_ROW(relu_grad_row, relu_d)
ACT_GRAD_ROW(silu_grad_row, silu_d)
ACT_GRAD_ROW(none_grad_row, none_d)

mt_act_grad_rows mt_act_grad_rows_fn(mt_act a) {
    switch (a) {
    case MT_ACT_GELU: return mt_gelu_grad_rows;
    case MT_ACT_GELU_TANH: return gelu_tanh_grad_row;
    case MT_ACT_RELU: return relu_grad_row;
    case MT_ACT_SILU: return silu_grad_row;
    case MT_ACT_NONE: return none_grad_row;
    }
    return NULL;
}

/* ---- plain activations: one flat loop per kind so each vectorises on its own ---- */

#define ACT_LOOP(F, dst, src, N)                                                                                 \
    _Pragma("omp parallel for simd if (N >= PAR_MIN) schedule(static)") for (size_t i = 0; i < N; i++)        \
        dst[i] = F(src[i])
#define ACT_GRAD_LOOP(D, gx, dy, x, N)                                                                           \
    _Pragma("omp parallel for simd if (N >= PAR_MIN) schedule(static)") for (size_t i = 0; i < N; i++)        \
        gx[i] += dy[i] * D(x[i])

/* GELU over n contiguous floats in chunks of 4096 (as 1-row tiles of the vector kernel). */
static void gelu_flat(float *y, const float *x, size_t N) {
    const size_t CH = 4096;
    size_t nch = (N + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (N >= PAR_MIN)
    for (size_t k = 0; k < nch; k++) {
        size_t i = k * CH, n = N - i < CH ? N - i : CH;
        mt_gelu_rows(y + i, CH, x + i, CH, NULL, 1, (int)n);
    }
}

static void act_forward(mt_act a, float *restrict y, const float *x, size_t N) {
    switch (a) {
    case MT_ACT_GELU: gelu_flat(y, x, N); break;
    case MT_ACT_GELU_TANH: ACT_LOOP(gelu_tanh_f, y, x, N); break;
    case MT_ACT_RELU: ACT_LOOP(relu_f, y, x, N); break;
    case MT_ACT_SILU: ACT_LOOP(silu_f, y, x, N); break;
    case MT_ACT_NONE: ACT_LOOP(none_f, y, x, N); break;
    }
}

/* What an activation or bias_act node keeps: which activation. */
typedef struct ActSaved {
    mt_act act;
} ActSaved;

static void act_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0];
    if (!x->requires_grad) return;
    const float *dy = n->out->grad, *px = x->data;
    float *gx = x->grad;
    size_t N = x->numel;
    switch (((const ActSaved *)n->saved)->act) {
    case MT_ACT_GELU: { /* the node overwrites (see mt_activation) */
        int acc = mt_grad_accumulate(x);
        const size_t CH = 4096; /* chunks of the vector kernel */
        size_t nch = (N + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (N >= PAR_MIN)
        for (size_t k = 0; k < nch; k++) {
            size_t i = k * CH;
            mt_gelu_grad_rows(gx + i, dy + i, px + i, CH, NULL, NULL, 1, (int)(N - i < CH ? N - i : CH), acc);
        }
        break;
    }
    case MT_ACT_GELU_TANH: ACT_GRAD_LOOP(gelu_tanh_d, gx, dy, px, N); break;
    case MT_ACT_RELU: ACT_GRAD_LOOP(relu_d, gx, dy, px, N); break;
    case MT_ACT_SILU: ACT_GRAD_LOOP(silu_d, gx, dy, px, N); break;
    case MT_ACT_NONE: ACT_GRAD_LOOP(none_d, gx, dy, px, N); break;
    }
}

int mt_act_valid(mt_act a) { return (int)a >= (int)MT_ACT_GELU && (int)a <= (int)MT_ACT_NONE; }

Tensor *mt_activation(Ctx *c, Tensor *x, mt_act act) {
    if (c->failed || !x) return NULL;
    if (!mt_act_valid(act)) {
        char sx[96];
        return mt_fail(c, "activation", "unknown activation %d for x %s", (int)act, mt_shape_str(x, sx, sizeof sx));
    }
    if (act == MT_ACT_NONE) return x; /* identity: no copy, no node */
    Tensor *y = mt_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    act_forward(act, y->data, x->data, x->numel);
    Tensor *in[1] = {x};
    if (mt_needs_grad(c, in, 1)) {
        Node *n = mt_record(c, act_name(act), act_backward, y, in, 1);
        mt_save(c, n, &(ActSaved){act}, sizeof(ActSaved));
        n->overwrites = act == MT_ACT_GELU; /* x */
    }
    return y;
}

Tensor *mt_gelu(Ctx *c, Tensor *x) { return mt_activation(c, x, MT_ACT_GELU); }
Tensor *mt_gelu_tanh(Ctx *c, Tensor *x) { return mt_activation(c, x, MT_ACT_GELU_TANH); }
Tensor *mt_relu(Ctx *c, Tensor *x) { return mt_activation(c, x, MT_ACT_RELU); }
Tensor *mt_silu(Ctx *c, Tensor *x) { return mt_activation(c, x, MT_ACT_SILU); }

/* ---- fused y = act(x + bias), bias (C) per last-axis channel or NULL ---- */


/* By the activation's rows kernel, 64 rows a call: g = dy * act'(x + b); dx gets g (GELU
 * overwrites a fresh buffer, see mt_bias_act; the others add); the thread's partial db += g. */
static void bias_act_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *bias = n->in[1];
    mt_act act = ((const ActSaved *)n->saved)->act;
    size_t rows = mt_rows(x);
    int C = mt_last(x);
    int want_dx = x->requires_grad, want_db = bias->requires_grad;
    const float *dy = n->out->grad, *px = x->data, *pb = bias->data; /* bias is never NULL here */
    float *gx = want_dx ? x->grad : NULL;
    int acc = act == MT_ACT_GELU && want_dx ? mt_grad_accumulate(x) : 1; /* GELU overwrites (mt_bias_act) */
    mt_act_grad_rows grad = mt_act_grad_rows_fn(act);
    Partials p = want_db ? partials_new(c, 1, C) : (Partials){0};
    enum { RB = 64 }; /* rows per call */
    size_t nb = (rows + RB - 1) / RB;
#pragma omp parallel if (x->numel >= PAR_MIN)
    {
        double *pdb = p.buf ? p.buf + (size_t)omp_get_thread_num() * p.stride : NULL;
#pragma omp for schedule(static)
        for (size_t k = 0; k < nb; k++) {
            size_t r = k * RB;
            int nr = (int)(rows - r < RB ? rows - r : RB);
            grad(gx ? gx + r * C : NULL, dy + r * C, px + r * C, (size_t)C, pb, pdb, nr, C, acc);
        }
    }
    if (want_db) partials_flush(&p, 0, C, bias->grad);
}

/* GELU over rows x C into py (fp32) or py16 (bf16), a block of rows per thread. */
static void gelu_rows_threaded(float *py, uint16_t *py16, const float *px, const float *pb, size_t rows, int C) {
    int nt = omp_get_max_threads();
    size_t per = (rows + (size_t)nt - 1) / (size_t)nt;
#pragma omp parallel for schedule(static, 1) if (rows * C >= PAR_MIN)
    for (int t = 0; t < nt; t++) {
        size_t r0 = (size_t)t * per, r1 = r0 + per < rows ? r0 + per : rows;
        if (r0 >= r1) continue;
        if (py16) mt_gelu_rows_bf16(py16 + r0 * C, (size_t)C, px + r0 * C, (size_t)C, pb, r1 - r0, C);
        else mt_gelu_rows(py + r0 * C, (size_t)C, px + r0 * C, (size_t)C, pb, r1 - r0, C);
    }
}

/* y = act(x + b) over one run of n floats (b may be NULL), serial. */
#define BIAS_ACT_RUN(F)                                                                                          \
    _Pragma("omp simd") for (int j = 0; j < n; j++) y[j] = F(x[j] + (b ? b[j] : 0.0f));                         \
    break
static void bias_act_run(mt_act act, float *restrict y, const float *x, const float *b, int n) {
    switch (act) {
    case MT_ACT_GELU: mt_gelu_rows(y, (size_t)n, x, (size_t)n, b, 1, n); break;
    case MT_ACT_GELU_TANH: BIAS_ACT_RUN(gelu_tanh_f);
    case MT_ACT_RELU: BIAS_ACT_RUN(relu_f);
    case MT_ACT_SILU: BIAS_ACT_RUN(silu_f);
    case MT_ACT_NONE: BIAS_ACT_RUN(none_f);
    }
}

/* y = act(x + b) over rows x C into py (fp32) or py16 (bf16), threaded. GELU by whole blocks
 * of rows (converted in registers for bf16); the others row by row, bf16 through a run of
 * fp32 in L1. */
static void bias_act_rows_to(mt_act act, float *py, uint16_t *py16, const float *px, const float *pb, size_t rows,
                             int C) {
    if (act == MT_ACT_GELU) {
        gelu_rows_threaded(py, py16, px, pb, rows, C);
        return;
    }
    enum { RUN = 512 };
#pragma omp parallel for schedule(static) if (rows * C >= PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        if (!py16) {
            bias_act_run(act, py + r * C, px + r * C, pb, C);
            continue;
        }
        float tmp[RUN];
        for (int j0 = 0; j0 < C; j0 += RUN) {
            int n = C - j0 < RUN ? C - j0 : RUN;
            bias_act_run(act, tmp, px + r * C + j0, pb ? pb + j0 : NULL, n);
            mt_bf16_from_f32(py16 + r * C + j0, tmp, (size_t)n);
        }
    }
}

void mt_bias_act_rows(mt_act act, float *py, const float *px, const float *pb, size_t rows, int C) {
    bias_act_rows_to(act, py, NULL, px, pb, rows, C);
}

void mt_bias_act_rows_bf16(mt_act act, uint16_t *py, const float *px, const float *pb, size_t rows, int C) {
    bias_act_rows_to(act, NULL, py, px, pb, rows, C);
}

Tensor *mt_bias_act(Ctx *c, Tensor *x, Tensor *bias, mt_act act) {
    if (c->failed || !x) return NULL;
    char sx[96], sb[96];
    if (!mt_act_valid(act))
        return mt_fail(c, "bias_act", "unknown activation %d for x %s", (int)act, mt_shape_str(x, sx, sizeof sx));
    if (bias && (bias->ndim != 1 || bias->shape[0] != mt_last(x)))
        return mt_fail(c, "bias_act", "x %s, bias %s%s%s%s: bias must be (C) = (%d), the last axis of x",
                       mt_shape_str(x, sx, sizeof sx), mt_shape_str(bias, sb, sizeof sb),
                       bias->is_param && bias->name ? " [" : "", bias->is_param && bias->name ? bias->name : "",
                       bias->is_param && bias->name ? "]" : "", mt_last(x));
    if (!bias) return mt_activation(c, x, act);
    if (act == MT_ACT_NONE) return mt_bias_add(c, x, bias);
    Tensor *y = mt_new(c, x->ndim, x->shape);
    if (!y) return NULL;
    mt_bias_act_rows(act, y->data, x->data, bias->data, mt_rows(x), mt_last(x));
    Tensor *in[2] = {x, bias};
    if (mt_needs_grad(c, in, 2)) {
        Node *n = mt_record(c, "bias_act", bias_act_backward, y, in, 2);
        mt_save(c, n, &(ActSaved){act}, sizeof(ActSaved));
        n->overwrites = act == MT_ACT_GELU; /* x */
    }
    return y;
}
