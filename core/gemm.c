/* mt_gemm: dispatch by precision and CPU. See core/gemm.h for the contract and
 * core/gemm_bf16.c for the AVX-512 kernels. */
#include "core/gemm.h"
#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mode: 0 fp32, 1 bf16 (vdpbf16ps), 2 bf16 on AMX tiles (core/gemm_bf16.c). */
/* types: MT_A_BF16 | MT_B_BF16 (core/gemm.h). */
int mt_gemm_avx512_run(int mode, int types, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                       int lda, long sA, const float *B, int ldb, long sB, float beta, float *C, int ldc, long sC,
                       int batch, const MtPrologue *pro, const MtGatherA *ga, const MtEpilogue *ep);

int mt_gemm_avx512_sum_nt(int mode, int types, int M, int N, int K, float alpha, const float *A, int lda, long sA,
                          const float *B, int ldb, long sB, float beta, float *C, int ldc, int batch);
int mt_gemm_avx512_chain_fits(int mode, int K, int N1, int N2);
int mt_gemm_avx512_chain(int mode, int M, int K, int N1, int N2, const float *A, int lda, const MtPrologue *pro,
                         const float *B1, const MtEpilogue *ep1, const float *B2, float *C, int ldc,
                         const MtEpilogue *ep2);
int mt_gemm_avx512_amx_ok(void);

static int g_force_fallback = 0, g_use_amx = 1;

static int cpu_has_f32(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    }
    return cached;
}
static int cpu_has_bf16(void) {
    static int cached = -1;
    if (cached < 0) cached = cpu_has_f32() && __builtin_cpu_supports("avx512bf16");
    return cached;
}

int mt_gemm_bf16_native(void) { return !g_force_fallback && cpu_has_bf16(); }
int mt_gemm_fp32_native(void) { return !g_force_fallback && cpu_has_f32(); }
void mt_gemm_force_fallback(int on) { g_force_fallback = on; }
int mt_gemm_amx_native(void) { return g_use_amx && mt_gemm_bf16_native() && mt_gemm_avx512_amx_ok(); }
void mt_gemm_use_amx(int on) { g_use_amx = on; }
void mt_gemm_test_path(int p) {
    mt_gemm_force_fallback(p == 2);
    mt_gemm_use_amx(p != 1);
}
const char *mt_gemm_path_name(int p) { return p == 2 ? "fallback " : p == 1 ? "no-amx " : ""; }

const char *mt_gemm_backend(int precision) {
    if (precision == MT_BF16)
        return mt_gemm_amx_native() ? "amx-bf16" : mt_gemm_bf16_native() ? "avx512bf16" : "bf16-emulated+openblas";
    if (precision == MT_FP32 || precision == MT_FP32_FAST) return mt_gemm_fp32_native() ? "avx512f" : "openblas";
    return "openblas";
}

/* The own kernel's mode for a precision that runs on it (see mt_gemm_avx512_run). */
static int kmode(int precision) { return precision != MT_BF16 ? 0 : mt_gemm_amx_native() ? 2 : 1; }

/* 1 if this precision runs on the own AVX-512 kernels on this CPU. */
static int native_kernel(int precision) {
    return (precision == MT_BF16 && mt_gemm_bf16_native()) ||
           ((precision == MT_FP32_FAST || precision == MT_FP32) && mt_gemm_fp32_native());
}

/* Fallback buffers for the bf16-rounded copies and the normalised A (grown on demand, kept). */
static float *g_fa, *g_fb, *g_fp;
static size_t g_fa_n, g_fb_n, g_fp_n;

static float *grow(float **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        float *p = realloc(*buf, n * sizeof(float));
        if (!p) return NULL;
        *buf = p;
        *cap = n;
    }
    return *buf;
}

/* rows x cols stored with leading dimension ld -> bf16-rounded contiguous copy (ld = cols). */
static void round_copy(float *dst, const float *src, int rows, int cols, int ld) {
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > 65536)
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)r * cols + c] = mt_bf16_round(src[(size_t)r * ld + c]);
}

static void sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                lda, B, ldb, beta, C, ldc);
}

/* C = beta * C (beta == 0: zeros, C not read). */
static void scale_c(int M, int N, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)N * sizeof(float));
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++) c[j] *= beta;
    }
}

static void bf16_emulated(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc) {
    int ar = ta ? K : M, ac = ta ? M : K; /* A as stored */
    int br = tb ? N : K, bc = tb ? K : N;
    float *a = grow(&g_fa, &g_fa_n, (size_t)ar * ac), *b = grow(&g_fb, &g_fb_n, (size_t)br * bc);
    if (!a || !b) { /* out of memory: plain fp32 is the closest we can do */
        sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    round_copy(a, A, ar, ac, lda);
    round_copy(b, B, br, bc, ldb);
    sgemm(ta, tb, M, N, K, alpha, a, ac, b, bc, beta, C, ldc);
}

/* The epilogue as a separate pass, for the paths whose GEMM cannot take it. */
static void apply_ep(int M, int N, float *C, int ldc, const MtEpilogue *ep) {
    if (!ep || (!ep->bias && !ep->row_bias && !ep->act && !ep->col_scale && !ep->residual && !ep->dact)) return;
#pragma omp parallel for schedule(static) if ((size_t)M * N > 65536)
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (ep->dact) { /* alone (see gemm.h) */
            double *cs = ep->colsum ? ep->colsum + (size_t)omp_get_thread_num() * ep->colsum_stride : NULL;
            ep->dact(c, c, ep->pre + (size_t)i * ldc, ep->pre_bias, cs, N, 0);
            continue;
        }
        if (ep->bias)
            for (int j = 0; j < N; j++) c[j] += ep->bias[j];
        if (ep->row_bias)
            for (int j = 0; j < N; j++) c[j] += ep->row_bias[i];
        if (ep->act) ep->act(c, 1, N, ldc);
        if (ep->col_scale)
            for (int j = 0; j < N; j++) c[j] *= ep->col_scale[j];
        if (ep->residual) {
            const float *r = ep->residual + (size_t)i * ldc;
            for (int j = 0; j < N; j++) c[j] += r[j];
        }
    }
}

/* The M x K buffer in which the paths without a packing-time prologue or gather build A. */
static float *operand_buffer(int M, int K) {
    float *a = grow(&g_fp, &g_fp_n, (size_t)M * K);
    if (!a) { /* out of memory: nothing sensible to compute */
        fprintf(stderr, "mixtape: out of memory building a %d x %d GEMM operand\n", M, K);
        abort();
    }
    return a;
}

/* op(A) (M x K) with the prologue applied -> dst (M x K, contiguous). */
static void prologue_copy(float *dst, int ta, int M, int K, const float *A, int lda, const MtPrologue *p) {
#pragma omp parallel for schedule(static) if ((size_t)M * K > 65536)
    for (int i = 0; i < M; i++) {
        float m = p->mean[i / p->group_rows], rs = p->rstd[i / p->group_rows], *d = dst + (size_t)i * K;
        for (int k = 0; k < K; k++) d[k] = ((ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) - m) * rs;
        if (p->scale)
            for (int k = 0; k < K; k++) d[k] *= p->scale[k];
        if (p->shift)
            for (int k = 0; k < K; k++) d[k] += p->shift[k];
    }
}

void mt_gemm_fused(int precision, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc, const MtPrologue *pro,
                   const MtEpilogue *ep) {
    if (M <= 0 || N <= 0) return;
    int native = native_kernel(precision);
    if (pro && K > 0 && alpha != 0.0f) {
        if (native && !transA &&
            mt_gemm_avx512_run(kmode(precision), 0, 0, transB, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc,
                               0, 1, pro, NULL, ep) == 0)
            return;
        float *a = operand_buffer(M, K);
        prologue_copy(a, transA, M, K, A, lda, pro);
        A = a, lda = K, transA = 0;
    }
    mt_gemm_ep(precision, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
}

void mt_gemm_gather(int precision, int transB, int M, int N, int K, const MtGatherA *ga, const float *B, int ldb,
                    float beta, float *C, int ldc, const MtEpilogue *ep) {
    if (M <= 0 || N <= 0) return;
    int native = native_kernel(precision);
    if (native && K > 0 &&
        mt_gemm_avx512_run(kmode(precision), 0, 0, transB, M, N, K, 1.0f, NULL, K, 0, B, ldb, 0, beta, C, ldc, 0, 1,
                           NULL, ga, ep) == 0)
        return;
    float *a = K > 0 ? operand_buffer(M, K) : NULL;
#pragma omp parallel for schedule(static) if ((size_t)M * K > 65536)
    for (int i = 0; i < M; i++)
        if (K > 0) ga->row(ga->ctx, i, 0, K, a + (size_t)i * K);
    mt_gemm_ep(precision, 0, transB, M, N, K, 1.0f, a, K, B, ldb, beta, C, ldc, ep);
}

int mt_gemm_chain_fits(int precision, int K, int N1, int N2) {
    return native_kernel(precision) && mt_gemm_avx512_chain_fits(kmode(precision), K, N1, N2);
}

int mt_gemm_chain(int precision, int M, int K, int N1, int N2, const float *A, int lda, const MtPrologue *pro,
                  const float *B1, const MtEpilogue *ep1, const float *B2, float *C, int ldc, const MtEpilogue *ep2) {
    if (!mt_gemm_chain_fits(precision, K, N1, N2)) return -1;
    return mt_gemm_avx512_chain(kmode(precision), M, K, N1, N2, A, lda, pro, B1, ep1, B2, C, ldc, ep2);
}

void mt_gemm_ep(int precision, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc, const MtEpilogue *ep) {
    if (M <= 0 || N <= 0) return;
    if (precision != MT_BF16 && precision != MT_FP32_FAST && precision != MT_FP32) {
        sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
    } else if (precision == MT_BF16) {
        if (mt_gemm_bf16_native() &&
            mt_gemm_avx512_run(kmode(MT_BF16), 0, transA, transB, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0,
                               1, NULL, NULL, ep) == 0)
            return;
        bf16_emulated(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
        if (mt_gemm_fp32_native() &&
            mt_gemm_avx512_run(0, 0, transA, transB, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1, NULL, NULL, ep) == 0)
            return;
        sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
    apply_ep(M, N, C, ldc, ep);
}

void mt_gemm(int precision, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
    mt_gemm_ep(precision, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

void mt_gemm_batched_ep(int precision, int transA, int transB, int M, int N, int K, float alpha, const float *A,
                        int lda, long strideA, const float *B, int ldb, long strideB, float beta, float *C, int ldc,
                        long strideC, int batch, const MtEpilogue *ep) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    int native = native_kernel(precision);
    if (native && K > 0 && alpha != 0.0f &&
        mt_gemm_avx512_run(kmode(precision), 0, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB,
                           beta, C, ldc, strideC, batch, NULL, NULL, ep) == 0)
        return;
    for (int i = 0; i < batch; i++) {
        MtEpilogue ei;
        if (ep) {
            ei = *ep;
            if (ei.residual) ei.residual += i * strideC;
            if (ei.pre) ei.pre += i * strideC;
        }
        mt_gemm_ep(precision, transA, transB, M, N, K, alpha, A ? A + i * strideA : A, lda, B ? B + i * strideB : B,
                   ldb, beta, C + i * strideC, ldc, ep ? &ei : NULL);
    }
}

void mt_gemm_batched(int precision, int transA, int transB, int M, int N, int K, float alpha, const float *A,
                     int lda, long strideA, const float *B, int ldb, long strideB, float beta, float *C, int ldc,
                     long strideC, int batch) {
    mt_gemm_batched_ep(precision, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc,
                       strideC, batch, NULL);
}

void mt_gemm_batched_sum(int precision, int transA, int transB, int M, int N, int K, float alpha, const float *A,
                         int lda, long strideA, const float *B, int ldb, long strideB, float beta, float *C, int ldc,
                         int batch) {
    if (M <= 0 || N <= 0) return;
    if (batch <= 0 || K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    if (native_kernel(precision) && !transA && transB &&
        mt_gemm_avx512_sum_nt(kmode(precision), 0, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc,
                              batch) == 0)
        return;
    for (int i = 0; i < batch; i++)
        mt_gemm(precision, transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb,
                i ? 1.0f : beta, C, ldc);
}

/* ---- operands stored as bf16 ---- */

/* Widened fp32 copies for the paths that cannot read bf16 (grown on demand, kept). */
static float *g_wa, *g_wb;
static size_t g_wa_n, g_wb_n;

/* The fp32 view of an operand: itself, or (bf) a widened copy of the elements a batch of
 * rows x cols matrices (row stride ld, entries stride apart) spans. */
static const float *widened(float **buf, size_t *cap, const void *X, int bf, int rows, int cols, int ld, long stride,
                            int batch) {
    if (!bf) return X;
    size_t n = (size_t)(batch - 1) * (size_t)stride + (size_t)(rows - 1) * (size_t)ld + (size_t)cols;
    float *w = grow(buf, cap, n);
    if (!w) {
        fprintf(stderr, "mixtape: out of memory widening a %d x %d bf16 GEMM operand\n", rows, cols);
        abort();
    }
    const uint16_t *x = X;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i += 4096) mt_bf16_to_f32(w + i, x + i, n - i < 4096 ? n - i : 4096);
    return w;
}

/* 1 when there is something to multiply: the operands will be read. */
static int reads_operands(int M, int N, int K, float alpha, int batch) {
    return M > 0 && N > 0 && K > 0 && batch > 0 && alpha != 0.0f;
}

void mt_gemm_batched_mixed(int precision, int types, int transA, int transB, int M, int N, int K, float alpha,
                           const void *A, int lda, long strideA, const void *B, int ldb, long strideB, float beta,
                           float *C, int ldc, long strideC, int batch, const MtEpilogue *ep) {
    if (types && reads_operands(M, N, K, alpha, batch)) {
        if (native_kernel(precision) &&
            mt_gemm_avx512_run(kmode(precision), types, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb,
                               strideB, beta, C, ldc, strideC, batch, NULL, NULL, ep) == 0)
            return;
        A = widened(&g_wa, &g_wa_n, A, types & MT_A_BF16, transA ? K : M, transA ? M : K, lda, strideA, batch);
        B = widened(&g_wb, &g_wb_n, B, types & MT_B_BF16, transB ? N : K, transB ? K : N, ldb, strideB, batch);
    }
    mt_gemm_batched_ep(precision, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc,
                       strideC, batch, ep);
}

void mt_gemm_batched_sum_mixed(int precision, int types, int transA, int transB, int M, int N, int K, float alpha,
                               const void *A, int lda, long strideA, const void *B, int ldb, long strideB,
                               float beta, float *C, int ldc, int batch) {
    if (types && reads_operands(M, N, K, alpha, batch)) {
        if (native_kernel(precision) && !transA && transB &&
            mt_gemm_avx512_sum_nt(kmode(precision), types, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C,
                                  ldc, batch) == 0)
            return;
        A = widened(&g_wa, &g_wa_n, A, types & MT_A_BF16, transA ? K : M, transA ? M : K, lda, strideA, batch);
        B = widened(&g_wb, &g_wb_n, B, types & MT_B_BF16, transB ? N : K, transB ? K : N, ldb, strideB, batch);
    }
    mt_gemm_batched_sum(precision, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc,
                        batch);
}
