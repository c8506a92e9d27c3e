/* One GEMM entry point for every op, mt_gemm_run on a descriptor (MtGemm): row-major
 * C = alpha * op(A) @ op(B) + beta * C, with exactly cblas_sgemm's semantics (op(A) is M x K,
 * op(B) is K x N; lda/ldb/ldc are row strides of the matrices as stored, so views into wider
 * buffers work). Every caller names the fields it uses in a designated initialiser; there
 * are no positional variants. Implementation: core/gemm.c (dispatch, fallbacks),
 * core/gemm_internal.h (the own kernels' files).
 *
 * precision
 *   MT_FP32       own AVX-512 fp32 kernel where available, else cblas_sgemm (see below).
 *   MT_FP32_BLAS  cblas_sgemm (OpenBLAS, its own threads).
 *   MT_BF16       inputs rounded to bfloat16 (round-to-nearest-even) while being packed,
 *                 products accumulated in fp32 (vdpbf16ps), result fp32. Own kernel,
 *                 OpenMP threads (omp_get_max_threads()). On CPUs without AVX512_BF16
 *                 the same numbers are produced by rounding copies of A and B to bf16
 *                 and calling cblas_sgemm (products of two bf16 values are exact in fp32,
 *                 so only the summation order differs).
 *   MT_FP32_FAST  own AVX-512 fp32 kernel (same blocking as the bf16 one); falls back to
 *                 cblas_sgemm without AVX-512F.
 *
 * beta == 0 overwrites C without reading it (NaN in C does not propagate), as in BLAS.
 * alpha == 0 or K == 0 only scales C by beta.
 * Never call a GEMM from inside an OpenMP parallel region (it opens its own).
 * Not reentrant from several threads at once (packing buffers are a per-OpenMP-thread pool). */
#pragma once
#include "core/bf16.h"

/* MT_FP32 (the default) runs the own AVX-512 fp32 kernel where the CPU has AVX-512F and
 * OpenBLAS otherwise: with OpenBLAS's threads and OpenMP's threads both spin-waiting on the
 * same cores, a step that alternates GEMMs and element-wise ops runs 2-4x slower than with
 * one pool (measured: mixer_tiny, 2 threads, 226 vs 811 img/s). MT_FP32_FAST is the same as
 * MT_FP32; MT_FP32_BLAS always calls OpenBLAS. */
enum { MT_FP32 = 0, MT_BF16 = 1, MT_FP32_FAST = 2, MT_FP32_BLAS = 3 };
enum { MT_NOTRANS = 0, MT_TRANS = 1 };

/* Epilogue fused into the GEMM (MtGemm.ep):
 *   C[i, j] = residual[i, j] + col_scale[j] * act(alpha op(A) op(B) + beta C + bias[j] + row_bias[i]),
 * applied to each tile of C right after its last K block, while it is still in L1 (a
 * linear layer's bias, activation and residual-with-layer-scale without extra passes over
 * the output). Every field may be NULL (term left out). bias and col_scale have N floats,
 * row_bias M (a token-mixing layer's bias, the same for every GEMM of a batch); residual
 * has C's layout (ldc, and C's stride in a batch) and must not overlap C. act rewrites a
 * rows x cols tile with row stride ld in place (a whole tile per call, so a vector
 * activation overlaps many independent rows). */
typedef struct {
    const float *bias, *row_bias;
    void (*act)(float *tile, int rows, int cols, int ld);
    const float *col_scale, *residual;
    /* The backward of y = act(pre + pre_bias), applied last (use it alone, beta 0): every row
     * of C becomes C * act'(pre + pre_bias), pre in C's layout, pre_bias N floats or NULL, by
     * dact(C, C, pre, ldc, pre_bias, partial, rows, cols, 0) over blocks of rows
     * (mt_act_grad_rows_fn); partial is NULL or thread t's row of column sums, colsum + t *
     * colsum_stride doubles (t < omp_get_max_threads(); rows split over threads in a fixed
     * way when it is set, so the sums do not depend on scheduling). Not for mt_gemm_chain. */
    void (*dact)(float *dx, const float *dy, const float *x, size_t ld, const float *bias, double *dbias, int rows,
                 int n, int acc);
    const float *pre, *pre_bias;
    double *colsum;
    int colsum_stride;
} MtEpilogue;
/* Prologue (MtGemm.pro): a normalisation applied to op(A)'s rows while the GEMM packs them, so that
 * norm(x) @ W^T never stores the normalised x (LayerNorm: a group per row; GroupNorm(1): a
 * group per sample's rows):
 *   A'[i, k] = ((A[i, k] - mean[g]) * rstd[g]) * scale[k] + shift[k],  g = i / group_rows,
 * the same operations in the same order as the norm ops, so A' equals their output bit for
 * bit. mean and rstd are required; scale and shift (K floats) may be NULL. */
typedef struct {
    const float *mean, *rstd;
    int group_rows;
    const float *scale, *shift;
} MtPrologue;
/* A given row by row instead of as a matrix (an implicit im2col): row(ctx, i, k0, kc, dst)
 * writes A[i, k0 .. k0+kc) into dst[0 .. kc). Called from several threads at once. The
 * native kernels gather while packing, so A is never stored; the other paths build it in a
 * buffer of M x K floats first (MtGemm.ga). */
typedef struct {
    void (*row)(const void *ctx, int i, int k0, int kc, float *dst);
    const void *ctx;
} MtGatherA;
/* Operands stored as bf16 (core/bf16.h) instead of fp32: MT_A_BF16 | MT_B_BF16. */
enum { MT_A_BF16 = 1, MT_B_BF16 = 2 };

/* One GEMM, a batch of them, or a sum over a batch, described field by field. Zero is the
 * default of every field but M, N, K, alpha, the operands and their leading dimensions, so
 * a designated initialiser names only what a call uses:
 *   mt_gemm_run(&(MtGemm){.precision = p, .transB = MT_TRANS, .M = m, .N = n, .K = k,
 *                         .alpha = 1.0f, .A = x, .lda = k, .B = w, .ldb = k, .C = y, .ldc = n,
 *                         .ep = &(MtEpilogue){.bias = b}});
 * Paths: the own kernels take every combination below directly; the portable fallbacks (no
 * AVX-512, MT_FP32_BLAS, layouts the kernels reject) build what they need first (a widened
 * or bf16-rounded copy, the normalised or gathered A) and apply the epilogue as a pass. */
typedef struct {
    int precision;      /* MT_FP32, MT_BF16, MT_FP32_FAST, MT_FP32_BLAS */
    int transA, transB; /* MT_NOTRANS / MT_TRANS: op(X) = X or X^T */
    int M, N, K;        /* op(A) M x K, op(B) K x N, C M x N; M or N <= 0: nothing happens */
    float alpha, beta;  /* beta 0: C is not read; alpha 0 or K <= 0: C = beta C (+ epilogue) */
    /* Operands: float, or uint16_t bf16 where types says so; leading dimensions and strides
     * count elements. A is not read with a gather. */
    const void *A;
    int lda;
    const void *B;
    int ldb;
    float *C;
    int ldc;
    int types; /* MT_A_BF16 | MT_B_BF16: the own kernels read bf16 while packing (in MT_BF16 the
                * words packing the widened values gives, so results equal the fp32 call on the
                * widened operands bit for bit); other paths widen a copy first */
    /* batch GEMMs, X_i = X + i * strideX (0 counts as 1). Independent GEMMs (the C_i must not
     * overlap; the epilogue's residual and pre advance with C) run in one parallel region,
     * whole GEMMs handed to threads when batch >= threads (per-sample token mixing, attention
     * heads, bmm), so small GEMMs do not pay a fork/join each. */
    int batch;
    long strideA, strideB, strideC;
    /* 1: C = alpha * sum_i op(A_i) @ op(B_i) + beta * C over the batch (strideC unused): a
     * weight shared by a batch of GEMMs gets its gradient in one GEMM (token mixing: dW =
     * sum_b dY_b X_b^T). The own kernels (transA 0, transB 1, K a multiple of 32) treat it as
     * one GEMM over K' = batch x K whose packing walks the entries, so the batch is never
     * copied out along K; other cases loop. No prologue, gather or epilogue. */
    int sum;
    const MtPrologue *pro; /* or NULL; a single GEMM of fp32 A */
    const MtGatherA *ga;   /* or NULL; a single GEMM, transA 0, A and lda unused */
    const MtEpilogue *ep;  /* or NULL */
} MtGemm;
/* Runs g (see MtGemm). A combination the descriptor rules out (a sum with an epilogue, a
 * prologue or gather with a batch, bf16 operands or, for the gather, a transposed A) is a
 * programming error: a message and abort(). */
void mt_gemm_run(const MtGemm *g);

/* Two GEMMs chained, an MLP at inference: H = ep1(pro(A) @ B1^T), C = ep2(H @ B2^T), with
 * A M x K (row stride lda), B1 N1 x K and B2 N2 x N1 (linear-layer weights), C M x N2.
 * H lives only a block of rows (and 512 of its columns) at a time in a thread's cache; the
 * values equal those of two mt_gemm_run calls (prologue and ep1 into an H, then ep2). Runs on the own
 * AVX-512 kernels when K fits one K block and both packed weights fit 4 MB
 * (mt_gemm_chain_fits); returns -1 with nothing written otherwise (and if its buffers cannot
 * be allocated), and the caller runs the two GEMMs. ep1 has no residual; pro may be NULL. */
int mt_gemm_chain_fits(int precision, int K, int N1, int N2);
int mt_gemm_chain(int precision, int M, int K, int N1, int N2, const float *A, int lda, const MtPrologue *pro,
                  const float *B1, const MtEpilogue *ep1, const float *B2, float *C, int ldc, const MtEpilogue *ep2);

/* The register peak in GFLOP/s over all OpenMP threads of the own kernels' multiply-add
 * (MT_BF16: vdpbf16ps, MT_FP32: vfmadd), measured (~0.3 s): the ceiling of any GEMM on
 * this CPU. 0 where that kernel does not run, and for MT_BF16 where AMX runs it
 * (core/gemm_peak.c). */
double mt_gemm_peak(int precision);

/* 1 if this CPU runs the native bf16 kernel (AVX512_BF16), 0 if MT_BF16 uses the fallback. */
int mt_gemm_bf16_native(void);
/* 1 if this CPU runs the own fp32 AVX-512 kernel for MT_FP32_FAST. */
int mt_gemm_fp32_native(void);
/* 1 if MT_BF16 multiplies on AMX tiles (tdpbf16ps: Intel AMX-BF16, granted by the OS),
 * with the same packing, blocking and epilogue as the AVX512-BF16 kernel. */
int mt_gemm_amx_native(void);
/* Use AMX for MT_BF16 where the CPU has it (1, the default) or the AVX512-BF16 kernel (0):
 * tests of both paths, benchmarks. */
void mt_gemm_use_amx(int on);
/* Tests: run GEMMs on code path p of MT_GEMM_PATHS: 0 the best this CPU has, 1 the same
 * without AMX (AVX512-BF16 for MT_BF16; equal to 0 on CPUs without AMX), 2 the portable
 * fallbacks; mt_gemm_path_name(p) is "", "no-amx " or "fallback " for test names. */
#define MT_GEMM_PATHS 3
void mt_gemm_test_path(int p);
const char *mt_gemm_path_name(int p);
/* Tests: force the portable fallbacks (1) or go back to the CPU check (0). */
void mt_gemm_force_fallback(int on);
/* Name of the code path used for a precision, e.g. "avx512bf16", "bf16-emulated+sgemm", "openblas". */
const char *mt_gemm_backend(int precision);
