/* GELU, erf form, for the activation ops and the GEMM epilogue:
 *   gelu(x) = x/2 (1 + erf(x / sqrt 2)),
 * its derivative (a piecewise polynomial, core/act_gelu.c), and the branch-free float exp
 * that the other activations share.
 *
 * erf(u) = u P(u^2) / Q(u^2) on |u| <= 4, P and Q of degree 5 in u^2 (our own fit:
 * least squares reweighted towards minimax against double-precision erf), clamped to
 * [-1, 1]; past |u| = 4 erf is +-1 in float anyway. No exp and no branch, so one zmm of
 * GELU is ~20 vector ops, where an erfc-with-exp form costs ~37 and a divide.
 * Accuracy in float arithmetic: |erf error| <= 4e-7, |gelu error| <= 8e-7 over all x,
 * the class of PyTorch's own vectorised CPU GELU (Abramowitz-Stegun 7.1.26, 1.5e-7
 * plus rounding). Relative accuracy is lost only where gelu(x) is tiny (x < -4). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define MT_ERF_P0 1.1283789768196506f
#define MT_ERF_P1 0.1962374530340234f
#define MT_ERF_P2 0.05346604374567271f
#define MT_ERF_P3 0.004003169199979043f
#define MT_ERF_P4 0.00028803365711042167f
#define MT_ERF_P5 1.974961113759832e-06f
#define MT_ERF_Q1 0.5072420773845032f
#define MT_ERF_Q2 0.11647174022130709f
#define MT_ERF_Q3 0.015443475096661484f
#define MT_ERF_Q4 0.0012162492598794703f
#define MT_ERF_Q5 3.7481806389183525e-05f

/* Scalar form (vectorises under `omp simd`, with a true division). */
static inline float mt_erf_fast(float u) {
    u = u < -4.0f ? -4.0f : u;
    u = u > 4.0f ? 4.0f : u;
    float s = u * u;
    float p = ((((MT_ERF_P5 * s + MT_ERF_P4) * s + MT_ERF_P3) * s + MT_ERF_P2) * s + MT_ERF_P1) * s + MT_ERF_P0;
    float q = ((((MT_ERF_Q5 * s + MT_ERF_Q4) * s + MT_ERF_Q3) * s + MT_ERF_Q2) * s + MT_ERF_Q1) * s + 1.0f;
    float e = u * p / q;
    e = e < -1.0f ? -1.0f : e;
    return e > 1.0f ? 1.0f : e;
}

/* exp(x) for float, ~2 ulp; inputs clamped to [-87, 88] (results stay normal floats). */
static inline float mt_exp_fast(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* n = round(x / ln 2) with the 1.5 * 2^23 trick; r = x - n ln 2 in two parts */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187045e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* NaN input: keep n finite for the integer conversion; p is NaN and carries it out */
    n = n == n ? n : 0.0f;
    union { uint32_t i; float f; } sc;
    sc.i = (uint32_t)((int32_t)n + 127) << 23;
    return p * sc.f;
}

static inline float mt_gelu_scalar(float x) {
    float h = 0.5f * x;
    return h + h * mt_erf_fast(x * 0.70710678118654752440f);
}

/* y[r*ldy + j] = gelu(x[r*ldx + j] + bias[j]) for r < rows, j < cols; bias may be NULL;
 * y may be x (in place, same ld). Serial: callers split rows over threads. AVX-512 where
 * the CPU has it (reciprocal by rcp14 + one Newton step), else the scalar form. */
void mt_gelu_rows(float *y, size_t ldy, const float *x, size_t ldx, const float *bias, size_t rows, int cols);
/* mt_gelu_rows with y stored as bf16 (core/bf16.h's rounding). */
void mt_gelu_rows_bf16(uint16_t *y, size_t ldy, const float *x, size_t ldx, const float *bias, size_t rows, int cols);
/* In-place GELU of a rows x cols tile with row stride ld (the GEMM epilogue's activation).
 * The own AVX-512 GEMM kernels recognise this function and apply the same GELU to the tile
 * in registers before storing it, when mt_gelu_vector() says the vector form is in use. */
void mt_gelu_tile(float *x, int rows, int cols, int ld);
int mt_gelu_vector(void);
/* Column sums of gradients over many rows (a bias's, a norm's weight's) add in float over at
 * most this many rows, then in double: this kernel's and the norms' (core/op_util.h,
 * Partials). Tests' tolerances on those sums assume it. */
#define MT_FLOAT_SUM_ROWS 16
/* Backward over rows x n (dx, dy and x rows ld apart): g = dy[j] * gelu'(x[j] + bias[j]);
 * dx[j] += g, or dx[j] = g when acc is 0 (dx not read; dx may be NULL, or dy), and dbias[j] += g
 * (dbias may be NULL; bias may be NULL): the AVX-512 form sums in float over at most
 * MT_FLOAT_SUM_ROWS rows, then in double, the scalar form in double. Serial, same dispatch. */
void mt_gelu_grad_rows(float *dx, const float *dy, const float *x, size_t ld, const float *bias, double *dbias,
                       int rows, int n, int acc);
/* Tests: 1 forces the scalar form on every CPU, 0 goes back to the CPU check. */
void mt_gelu_force_scalar(int on);
