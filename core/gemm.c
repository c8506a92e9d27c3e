/* mt_gemm_run: dispatch by precision and CPU, and the portable fallbacks. See core/gemm.h
 * for the contract and core/gemm_internal.h for the own AVX-512 kernels' files. */
#include "core/gemm.h"
#include "core/gemm_internal.h"
#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int mt_gemm_amx_native(void) { return g_use_amx && mt_gemm_bf16_native() && mt_gemm_amx_ok(); }
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

/* The own kernel's mode for a precision that runs on it (MODE_*, core/gemm_internal.h). */
static int kmode(int precision) {
    return precision != MT_BF16 ? MODE_F32 : mt_gemm_amx_native() ? MODE_AMX : MODE_BF16;
}

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
            ep->dact(c, c, ep->pre + (size_t)i * ldc, (size_t)ldc, ep->pre_bias, cs, 1, N, 0);
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

/* The own kernels on g, 0 on success (see mt_gemm_sched_run). */
static int native_run(const MtGemm *g) {
    return native_kernel(g->precision) ? mt_gemm_sched_run(kmode(g->precision), g) : -1;
}

/* A single GEMM of fp32 operands without prologue or gather. */
static void run_single(const MtGemm *g) {
    int precision = g->precision, ta = g->transA, tb = g->transB, M = g->M, N = g->N, K = g->K;
    int lda = g->lda, ldb = g->ldb, ldc = g->ldc;
    float alpha = g->alpha, beta = g->beta, *C = g->C;
    const float *A = g->A, *B = g->B;
    if (precision != MT_BF16 && precision != MT_FP32_FAST && precision != MT_FP32) {
        sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
    } else {
        if (native_run(g) == 0) return;
        if (precision == MT_BF16) bf16_emulated(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        else sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
    apply_ep(M, N, C, ldc, g->ep);
}

/* Entry i of a batch as a single GEMM (fp32 operands): operands, C and the epilogue's
 * matrices in C's layout advanced; ei holds the epilogue. */
static MtGemm entry(const MtGemm *g, int i, MtEpilogue *ei) {
    MtGemm e = *g;
    e.batch = 1;
    e.A = g->A ? (const float *)g->A + i * g->strideA : NULL;
    e.B = g->B ? (const float *)g->B + i * g->strideB : NULL;
    e.C = g->C + i * g->strideC;
    if (g->ep) {
        *ei = *g->ep;
        if (ei->residual) ei->residual += i * g->strideC;
        if (ei->pre) ei->pre += i * g->strideC;
        e.ep = ei;
    }
    return e;
}

/* A batch of independent GEMMs of fp32 operands. */
static void run_batched(const MtGemm *g) {
    if (g->K > 0 && g->alpha != 0.0f && native_run(g) == 0) return;
    for (int i = 0; i < g->batch; i++) {
        MtEpilogue ei;
        MtGemm e = entry(g, i, &ei);
        run_single(&e);
    }
}

/* C = alpha sum_i op(A_i) op(B_i) + beta C, fp32 operands. */
static void run_sum(const MtGemm *g) {
    if (g->transA == 0 && g->transB == 1 && native_run(g) == 0) return;
    for (int i = 0; i < g->batch; i++) {
        MtGemm e = entry(g, i, NULL);
        e.sum = 0;
        if (i) e.beta = 1.0f;
        run_single(&e);
    }
}

/* The prologue: in the own kernels' packing, else on a normalised copy of op(A). */
static void run_prologue(const MtGemm *g) {
    MtGemm e = *g;
    e.pro = NULL;
    if (g->K > 0 && g->alpha != 0.0f) {
        if (!g->transA && native_run(g) == 0) return;
        float *a = operand_buffer(g->M, g->K);
        prologue_copy(a, g->transA, g->M, g->K, g->A, g->lda, g->pro);
        e.A = a, e.lda = g->K, e.transA = 0;
    }
    run_single(&e);
}

/* The gather: in the own kernels' packing, else into an M x K buffer. */
static void run_gather(const MtGemm *g) {
    int M = g->M, K = g->K;
    if (K > 0 && g->alpha != 0.0f && native_run(g) == 0) return;
    float *a = K > 0 ? operand_buffer(M, K) : NULL;
#pragma omp parallel for schedule(static) if ((size_t)M * K > 65536)
    for (int i = 0; i < M; i++)
        if (K > 0) g->ga->row(g->ga->ctx, i, 0, K, a + (size_t)i * K);
    MtGemm e = *g;
    e.ga = NULL, e.A = a, e.lda = K;
    run_single(&e);
}

static void bad_descriptor(const MtGemm *g, const char *why) {
    fprintf(stderr, "mixtape: mt_gemm_run: %s (M %d, N %d, K %d, batch %d)\n", why, g->M, g->N, g->K, g->batch);
    abort();
}

void mt_gemm_run(const MtGemm *gp) {
    MtGemm g = *gp;
    if (g.M <= 0 || g.N <= 0) return;
    if (g.batch <= 0) g.batch = 1;
    if (g.sum) g.strideC = 0;
    if (g.sum && (g.pro || g.ga || g.ep)) bad_descriptor(&g, "a batched sum takes no prologue, gather or epilogue");
    if ((g.pro || g.ga) && (g.batch > 1 || g.types)) bad_descriptor(&g, "a prologue or gather needs a single fp32 GEMM");
    if (g.pro && g.ga) bad_descriptor(&g, "a prologue and a gather together");
    if (g.ga && g.transA) bad_descriptor(&g, "a gathered A cannot be transposed");
    if (g.sum && (g.K <= 0 || g.alpha == 0.0f)) { /* nothing to add: C = beta C */
        scale_c(g.M, g.N, g.beta, g.C, g.ldc);
        return;
    }
    if (g.types && g.K > 0 && g.alpha != 0.0f) { /* bf16 operands: the own kernels read them, else widen */
        if ((!g.sum || (!g.transA && g.transB)) && native_run(&g) == 0) return;
        int ta = g.transA, tb = g.transB, M = g.M, N = g.N, K = g.K;
        g.A = widened(&g_wa, &g_wa_n, g.A, g.types & MT_A_BF16, ta ? K : M, ta ? M : K, g.lda, g.strideA, g.batch);
        g.B = widened(&g_wb, &g_wb_n, g.B, g.types & MT_B_BF16, tb ? N : K, tb ? K : N, g.ldb, g.strideB, g.batch);
    }
    g.types = 0;
    if (g.sum) run_sum(&g);
    else if (g.pro) run_prologue(&g);
    else if (g.ga) run_gather(&g);
    else if (g.batch > 1) run_batched(&g);
    else run_single(&g);
}

int mt_gemm_chain_fits(int precision, int K, int N1, int N2) {
    return native_kernel(precision) && mt_gemm_chain_mode_fits(kmode(precision), K, N1, N2);
}

int mt_gemm_chain(int precision, int M, int K, int N1, int N2, const float *A, int lda, const MtPrologue *pro,
                  const float *B1, const MtEpilogue *ep1, const float *B2, float *C, int ldc, const MtEpilogue *ep2) {
    if (!mt_gemm_chain_fits(precision, K, N1, N2)) return -1;
    return mt_gemm_chain_run(kmode(precision), M, K, N1, N2, A, lda, pro, B1, ep1, B2, C, ldc, ep2);
}
