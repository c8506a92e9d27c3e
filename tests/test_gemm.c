/* mt_gemm: correctness of the bf16 and fp32-fast kernels against double-precision references,
 * for all transpose combinations, odd and tiny sizes, strided views, alpha/beta, NaN in C with
 * beta = 0, and the portable fallback; the MtGemm descriptor's defaults and rules.
 *
 *   test_gemm            correctness checks (ctest)
 *   test_gemm --bench    GFLOP/s of OpenBLAS sgemm vs the bf16 and fp32 kernels on the
 *                        models' GEMM shapes (threads: OMP_NUM_THREADS, default 2) */
#include "core/gemm.h"
#include "core/threads.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float urand(void) { /* uniform in [-1, 1) */
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (float)((rng * 2685821657736338717ull) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}
static int irand(int n) { return (int)(((urand() + 1.0f) * 0.5f) * n) % n; }

static int failures = 0, cases = 0;

/* One case: op(A_b) M x K, op(B_b) K x N for b < batch (entries a few floats apart), padded
 * leading dimensions, C with a sentinel in the padding. sum = 0: one GEMM (batch 1); sum = 1:
 * a batched sum (MtGemm.sum). Checked against a double-precision reference (inputs rounded to bf16
 * for MT_BF16) and, loosely, against OpenBLAS. */
static void check_sum(int prec, int ta, int tb, int M, int N, int K, int batch, int pa, int pb, int pc,
                      float alpha, float beta, int nan_c, int sum, const char *tag) {
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int lda = ac + pa, ldb = bc + pb, ldc = N + pc;
    long sA = (long)ar * lda + 3, sB = (long)br * ldb + 5;
    float *A = malloc(sizeof(float) * (sA * batch + 1));
    float *B = malloc(sizeof(float) * (sB * batch + 1));
    float *C = malloc(sizeof(float) * ((size_t)M * ldc + 1));
    float *C0 = malloc(sizeof(float) * ((size_t)M * ldc + 1));
    float *Cs = malloc(sizeof(float) * ((size_t)M * ldc + 1));
    for (long i = 0; i < sA * batch; i++) A[i] = urand();
    for (long i = 0; i < sB * batch; i++) B[i] = urand();
    for (size_t i = 0; i < (size_t)M * ldc; i++) C0[i] = nan_c ? NAN : urand();
    for (int i = 0; i < M; i++) /* padding columns of C: a sentinel that must survive */
        for (int j = N; j < ldc; j++) C0[(size_t)i * ldc + j] = 12345.0f;
    memcpy(C, C0, sizeof(float) * (size_t)M * ldc);
    memcpy(Cs, C0, sizeof(float) * (size_t)M * ldc);
    MtGemm g = {.precision = prec, .transA = ta, .transB = tb, .M = M, .N = N, .K = K, .alpha = alpha, .A = A,
                .lda = lda, .B = B, .ldb = ldb, .beta = beta, .C = C, .ldc = ldc};
    if (sum) g.batch = batch, g.strideA = sA, g.strideB = sB, g.sum = 1;
    mt_gemm_run(&g);
    for (int b = 0; b < batch; b++)
        mt_gemm_run(&(MtGemm){.precision = MT_FP32_BLAS, .transA = ta, .transB = tb, .M = M, .N = N, .K = K,
                              .alpha = alpha, .A = A + b * sA, .lda = lda, .B = B + b * sB, .ldb = ldb,
                              .beta = b ? 1.0f : beta, .C = Cs, .ldc = ldc});
    int round = prec == MT_BF16;
    double worst = 0, worst_s = 0;
    int bad = 0;
    for (int i = 0; i < M && !bad; i++) {
        for (int j = 0; j < N; j++) {
            double s = 0, sabs = 0;
            for (int b = 0; b < batch; b++)
                for (int k = 0; k < K; k++) {
                    float a = ta ? A[b * sA + (size_t)k * lda + i] : A[b * sA + (size_t)i * lda + k];
                    float v = tb ? B[b * sB + (size_t)j * ldb + k] : B[b * sB + (size_t)k * ldb + j];
                    if (round) a = mt_bf16_round(a), v = mt_bf16_round(v);
                    s += (double)a * v;
                    sabs += fabs((double)a * v);
                }
            double c0 = beta == 0.0f ? 0.0 : C0[(size_t)i * ldc + j];
            double ref = (double)alpha * s + (beta == 0.0f ? 0.0 : (double)beta * c0);
            double scale = fabs(alpha) * sabs + fabs(beta * c0) + 1e-30;
            double got = C[(size_t)i * ldc + j];
            double e = fabs(got - ref) / scale;
            double es = fabs(got - (double)Cs[(size_t)i * ldc + j]) / scale;
            if (!(e <= 1e-5) || !(es <= 1e-2)) {
                if (!bad)
                    fprintf(stderr,
                            "FAIL %s prec=%d ta=%d tb=%d M=%d N=%d K=%d batch=%d sum=%d lda=%d ldb=%d ldc=%d "
                            "alpha=%g beta=%g nan=%d: C[%d,%d]=%.8g ref=%.8g sgemm=%.8g (rel %.3g / %.3g)\n",
                            tag, prec, ta, tb, M, N, K, batch, sum, lda, ldb, ldc, alpha, beta, nan_c, i, j, got,
                            ref, Cs[(size_t)i * ldc + j], e, es);
                bad = 1;
                break;
            }
            if (e > worst) worst = e;
            if (es > worst_s) worst_s = es;
        }
        for (int j = N; j < ldc && !bad; j++)
            if (C[(size_t)i * ldc + j] != 12345.0f) {
                fprintf(stderr, "FAIL %s: padding C[%d,%d] overwritten (ta=%d tb=%d M=%d N=%d K=%d ldc=%d)\n", tag, i,
                        j, ta, tb, M, N, K, ldc);
                bad = 1;
            }
    }
    failures += bad;
    cases++;
    free(A), free(B), free(C), free(C0), free(Cs);
}

static void check_case(int prec, int ta, int tb, int M, int N, int K, int pa, int pb, int pc, float alpha,
                       float beta, int nan_c, const char *tag) {
    check_sum(prec, ta, tb, M, N, K, 1, pa, pb, pc, alpha, beta, nan_c, 0, tag);
}

/* A K-split weight gradient dW = A^T B with more rows than columns is computed as (B^T A)^T
 * (core/gemm_sched.c): it must equal, bit for bit, the transposed problem run as it is. */
static void check_ksplit_swap(int prec, const char *tag) {
    int M = 300, N = 70, K = 4608;
    float *A = malloc(sizeof(float) * K * M), *B = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * N), *D = malloc(sizeof(float) * N * M);
    for (int i = 0; i < K * M; i++) A[i] = urand();
    for (int i = 0; i < K * N; i++) B[i] = urand();
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) C[i * N + n] = D[n * M + i] = urand();
    mt_gemm_run(&(MtGemm){.precision = prec, .transA = MT_TRANS, .M = M, .N = N, .K = K, .alpha = 0.75f, .A = A,
                          .lda = M, .B = B, .ldb = N, .beta = 0.5f, .C = C, .ldc = N});
    mt_gemm_run(&(MtGemm){.precision = prec, .transA = MT_TRANS, .M = N, .N = M, .K = K, .alpha = 0.75f, .A = B,
                          .lda = N, .B = A, .ldb = M, .beta = 0.5f, .C = D, .ldc = M});
    int bad = 0;
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) bad += memcmp(&C[i * N + n], &D[n * M + i], sizeof(float)) != 0;
    if (bad) fprintf(stderr, "FAIL %s K-split swap: %d of %d elements differ from the transposed problem\n", tag, bad, M * N);
    failures += bad != 0;
    cases++;
    free(A), free(B), free(C), free(D);
}

/* A long K (a weight gradient's batch x tokens) splits across threads into partial Cs added
 * at the end; a batched sum walks the entries while packing (K a multiple of 32, NT)
 * or loops over single GEMMs. Two threads at least, so the K split runs. */
static void run_ksplit_suite(int prec, const char *tag) {
    int threads = mt_get_threads();
    mt_set_threads(threads < 2 ? 2 : threads);
    for (int t = 0; t < 4; t++) { /* K split: 8+ K blocks over 2 threads, uneven shares */
        check_case(prec, t & 1, t >> 1, 37, 45, 4100, 3, 1, 2, 0.75f, 0.5f, 0, tag);
        check_case(prec, t & 1, t >> 1, 64, 147, 5000, 0, 0, 0, 1.0f, 0.0f, 1, tag);
    }
    check_case(prec, 1, 0, 300, 70, 4608, 1, 2, 3, -1.0f, 1.0f, 0, tag); /* more rows than a block */
    check_ksplit_swap(prec, tag);
    check_sum(prec, 0, 1, 40, 49, 64, 9, 3, 1, 2, 1.0f, 1.0f, 0, 1, tag);     /* segments, one K block */
    check_sum(prec, 0, 1, 33, 20, 128, 40, 0, 5, 1, 0.5f, 0.0f, 1, 1, tag);   /* segments and K split */
    check_sum(prec, 0, 1, 70, 65, 96, 1, 2, 0, 0, 1.0f, -0.5f, 0, 1, tag);   /* one entry */
    check_sum(prec, 0, 1, 17, 19, 100, 5, 1, 1, 1, 2.0f, 0.25f, 0, 1, tag);  /* K not a multiple of 32 */
    for (int t = 0; t < 3; t++) /* other layouts: the loop */
        check_sum(prec, t & 1, t >> 1, 21, 18, 64, 4, 1, 2, 3, 1.0f, 1.0f, 0, 1, tag);
    mt_set_threads(threads);
}

/* Operands stored as bf16 (MtGemm.types), batched and summed: C must equal, bit
 * for bit, the fp32 call on the same values widened (inputs are drawn bf16-representable).
 * Padded leading dimensions and entry strides; ep adds a bias, a row bias and a residual. */
static void check_mixed(int prec, int types, int ta, int tb, int M, int N, int K, int batch, int sum, int shareA,
                        int with_ep, const char *tag) {
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int lda = ac + 3, ldb = bc + 1, ldc = N + 2;
    long sA = shareA ? 0 : (long)ar * lda + 5, sB = (long)br * ldb + 7, sC = sum ? 0 : (long)M * ldc;
    size_t na = (size_t)(shareA ? 1 : batch) * ((size_t)ar * lda + 5), nb = (size_t)batch * sB;
    size_t nc = (size_t)(sum ? 1 : batch) * M * ldc;
    float *A = malloc(sizeof(float) * na), *B = malloc(sizeof(float) * nb);
    uint16_t *A16 = malloc(2 * na), *B16 = malloc(2 * nb);
    float *C1 = malloc(sizeof(float) * nc), *C2 = malloc(sizeof(float) * nc), *R = malloc(sizeof(float) * nc);
    float *bias = malloc(sizeof(float) * N), *rbias = malloc(sizeof(float) * M);
    for (size_t i = 0; i < na; i++) A[i] = mt_bf16_round(urand());
    for (size_t i = 0; i < nb; i++) B[i] = mt_bf16_round(urand());
    mt_bf16_from_f32(A16, A, na);
    mt_bf16_from_f32(B16, B, nb);
    for (size_t i = 0; i < nc; i++) C1[i] = C2[i] = urand(), R[i] = urand();
    for (int i = 0; i < N; i++) bias[i] = urand();
    for (int i = 0; i < M; i++) rbias[i] = urand();
    MtEpilogue ep = {.bias = bias, .row_bias = rbias, .residual = R};
    const void *a = types & MT_A_BF16 ? (const void *)A16 : A, *b = types & MT_B_BF16 ? (const void *)B16 : B;
    float beta = with_ep ? 0.0f : 0.5f;
    /* the same descriptor on bf16 and on fp32 operands */
    MtGemm g1 = {.precision = prec, .types = types, .transA = ta, .transB = tb, .M = M, .N = N, .K = K,
                 .alpha = 0.75f, .A = a, .lda = lda, .strideA = sA, .B = b, .ldb = ldb, .strideB = sB, .beta = beta,
                 .C = C1, .ldc = ldc, .batch = batch};
    if (sum) g1.sum = 1;
    else g1.strideC = sC, g1.ep = with_ep ? &ep : NULL;
    MtGemm g2 = g1;
    g2.types = 0, g2.A = A, g2.B = B, g2.C = C2;
    mt_gemm_run(&g1);
    mt_gemm_run(&g2);
    int bad = memcmp(C1, C2, sizeof(float) * nc) != 0;
    for (size_t i = 0; i < na && !bad; i++) { /* A holds bf16 values: A16 is their upper halves */
        uint32_t u;
        memcpy(&u, &A[i], 4);
        bad = A16[i] != (uint16_t)(u >> 16);
    }
    if (bad)
        fprintf(stderr, "FAIL %s mixed prec=%d types=%d ta=%d tb=%d M=%d N=%d K=%d batch=%d sum=%d ep=%d\n", tag,
                prec, types, ta, tb, M, N, K, batch, sum, with_ep);
    failures += bad;
    cases++;
    free(A), free(B), free(A16), free(B16), free(C1), free(C2), free(R), free(bias), free(rbias);
}

static void run_mixed_suite(int prec, const char *tag) {
    for (int types = 1; types <= 3; types++)
        for (int t = 0; t < 4; t++) {
            check_mixed(prec, types, t & 1, t >> 1, 37, 45, 67, 1, 0, 0, t == 1, tag);  /* odd sizes */
            check_mixed(prec, types, t & 1, t >> 1, 300, 70, 600, 1, 0, 0, 0, tag);    /* blocks, K blocks */
            check_mixed(prec, types, t & 1, t >> 1, 64, 147, 5000, 1, 0, 0, 0, tag);   /* K split */
            check_mixed(prec, types, t & 1, t >> 1, 147, 64, 5000, 1, 0, 0, 0, tag);   /* K split, swapped when TN */
        }
    check_mixed(prec, MT_B_BF16, 0, 0, 40, 70, 49, 9, 0, 1, 1, tag);  /* token mixing: shared w, bf16 x */
    check_mixed(prec, MT_B_BF16, 0, 1, 33, 20, 128, 40, 1, 0, 0, tag); /* batched sum, segments, K split */
    check_mixed(prec, MT_A_BF16 | MT_B_BF16, 0, 1, 17, 19, 64, 5, 1, 0, 0, tag);
    check_mixed(prec, MT_B_BF16, 0, 1, 17, 19, 100, 5, 1, 0, 0, tag);  /* K not a multiple of 32: the loop */
    check_mixed(prec, MT_A_BF16, 1, 0, 21, 18, 64, 4, 1, 0, 0, tag);   /* another layout: the loop */
}

static const int dims[] = {1, 2, 3, 4, 5, 7, 8, 11, 12, 13, 15, 16, 17, 23, 24, 25, 31, 32, 33, 37, 41, 47, 48, 49,
                           53, 59, 63, 64, 65, 67, 129, 257};
static const int kdims[] = {1, 2, 3, 5, 7, 15, 16, 17, 31, 33, 63, 64, 67, 129, 255, 256, 257, 259, 513};
#define NDIMS ((int)(sizeof dims / sizeof dims[0]))
#define NKDIMS ((int)(sizeof kdims / sizeof kdims[0]))

static void run_suite(int prec, const char *tag, int n_random) {
    /* every small size on each axis at least once, all transpose combos */
    for (int t = 0; t < 4; t++)
        for (int d = 1; d <= 67; d += (d < 20 ? 1 : 3)) {
            int ta = t & 1, tb = t >> 1;
            check_case(prec, ta, tb, d, 1 + (d * 7) % 67, 1 + (d * 13) % 67, d % 3, (d + 1) % 3, d % 2, 1.0f, 0.0f,
                       0, tag);
        }
    /* the blocking edges: more rows than MC, more columns than NC, K spanning K blocks, threads on */
    int big[][3] = {{300, 70, 300}, {13, 2100, 40}, {257, 129, 513}, {150, 300, 257}, {1, 2049, 3}, {400, 1, 259}};
    for (int t = 0; t < 4; t++)
        for (int s = 0; s < 6; s++)
            check_case(prec, t & 1, t >> 1, big[s][0], big[s][1], big[s][2], 5, 3, 7, 0.75f, 0.5f, 0, tag);
    /* three row blocks shared by work stealing over four (column block, K block) phases in fp32 */
    check_case(prec, 0, 1, 400, 560, 530, 5, 3, 7, 0.75f, 0.5f, 0, tag);
    /* random combinations of odd sizes, strides, alpha, beta */
    const float alphas[] = {1.0f, -1.0f, 0.5f, 2.5f}, betas[] = {0.0f, 1.0f, -0.5f, 0.25f};
    for (int r = 0; r < n_random; r++) {
        int ta = irand(2), tb = irand(2);
        int M = dims[irand(NDIMS)], N = dims[irand(NDIMS)], K = kdims[irand(NKDIMS)];
        check_case(prec, ta, tb, M, N, K, irand(3) * 7, irand(3) * 5, irand(3) * 3, alphas[irand(4)],
                   betas[irand(4)], 0, tag);
    }
    /* beta = 0 with NaN in C: must be overwritten */
    for (int t = 0; t < 4; t++) {
        check_case(prec, t & 1, t >> 1, 37, 45, 67, 1, 2, 3, 1.0f, 0.0f, 1, tag);
        check_case(prec, t & 1, t >> 1, 129, 257, 300, 0, 0, 0, 2.0f, 0.0f, 1, tag);
    }
}

/* a batch (MtGemm.batch) == a loop of single GEMMs (bit for bit: the k order per element does not depend
 * on the thread split): attention-like strided heads inside a (N, 3C) buffer, and a shared A. */
static int check_batched(int prec) {
    int bad = 0;
    int Nt = 37, H = 5, D = 13, C3 = 3 * H * D;
    float *qkv = malloc(sizeof(float) * Nt * C3), *P = malloc(sizeof(float) * H * Nt * Nt),
          *Q = malloc(sizeof(float) * H * Nt * Nt);
    for (int i = 0; i < Nt * C3; i++) qkv[i] = urand();
    for (int i = 0; i < H * Nt * Nt; i++) P[i] = Q[i] = urand();
    mt_gemm_run(&(MtGemm){.precision = prec, .transB = MT_TRANS, .M = Nt, .N = Nt, .K = D, .alpha = 0.5f, .A = qkv,
                          .lda = C3, .strideA = D, .B = qkv + H * D, .ldb = C3, .strideB = D, .beta = 1.0f, .C = P,
                          .ldc = Nt, .strideC = (long)Nt * Nt, .batch = H});
    for (int h = 0; h < H; h++)
        mt_gemm_run(&(MtGemm){.precision = prec, .transB = MT_TRANS, .M = Nt, .N = Nt, .K = D, .alpha = 0.5f,
                              .A = qkv + h * D, .lda = C3, .B = qkv + H * D + h * D, .ldb = C3, .beta = 1.0f,
                              .C = Q + h * Nt * Nt, .ldc = Nt});
    if (memcmp(P, Q, sizeof(float) * H * Nt * Nt)) bad++;
    free(qkv), free(P), free(Q);
    /* token mixing: one weight (strideA = 0), 9 samples, big enough for threads */
    int B = 9, N2 = 40, N = 49, Cc = 70;
    float *w = malloc(sizeof(float) * N2 * N), *x = malloc(sizeof(float) * B * N * Cc),
          *y = malloc(sizeof(float) * B * N2 * Cc), *z = malloc(sizeof(float) * B * N2 * Cc);
    for (int i = 0; i < N2 * N; i++) w[i] = urand();
    for (int i = 0; i < B * N * Cc; i++) x[i] = urand();
    for (int i = 0; i < B * N2 * Cc; i++) y[i] = z[i] = NAN;
    mt_gemm_run(&(MtGemm){.precision = prec, .M = N2, .N = Cc, .K = N, .alpha = 1.0f, .A = w, .lda = N, .B = x,
                          .ldb = Cc, .strideB = (long)N * Cc, .C = y, .ldc = Cc, .strideC = (long)N2 * Cc, .batch = B});
    for (int b = 0; b < B; b++)
        mt_gemm_run(&(MtGemm){.precision = prec, .M = N2, .N = Cc, .K = N, .alpha = 1.0f, .A = w, .lda = N,
                              .B = x + (size_t)b * N * Cc, .ldb = Cc, .C = z + (size_t)b * N2 * Cc, .ldc = Cc});
    if (memcmp(y, z, sizeof(float) * B * N2 * Cc)) bad++;
    free(w), free(x), free(y), free(z);
    if (bad) fprintf(stderr, "FAIL batched prec=%d (%d)\n", prec, bad);
    return bad;
}

/* 1 when mt_gemm_run(g) aborts with a message (run in a child process, stderr silenced). */
static int run_aborts(const MtGemm *g) {
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(3);
        mt_gemm_run(g);
        _exit(0);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return 0;
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

/* The descriptor itself: zero-valued fields are the defaults (batch 0 is one GEMM), a batch
 * with an epilogue advances the residual with C, empty batches, the batched sum ignores
 * strideC, and combinations the descriptor rules out abort instead of computing something. */
static int check_descriptor(int prec) {
    int bad = 0, M = 45, N = 70, K = 67, batch = 3;
    long sA = (long)M * K + 7, sC = (long)M * N;
    float *A = malloc(sizeof(float) * sA * batch), *B = malloc(sizeof(float) * N * K);
    float *C = malloc(sizeof(float) * sC * batch), *D = malloc(sizeof(float) * sC * batch);
    float *R = malloc(sizeof(float) * sC * batch), *bias = malloc(sizeof(float) * N);
    for (long i = 0; i < sA * batch; i++) A[i] = urand();
    for (int i = 0; i < N * K; i++) B[i] = urand();
    for (long i = 0; i < sC * batch; i++) C[i] = D[i] = urand(), R[i] = urand();
    for (int i = 0; i < N; i++) bias[i] = urand();
    /* batch 0 (the zero default) is one GEMM, as batch 1 */
    mt_gemm_run(&(MtGemm){.precision = prec, .transB = MT_TRANS, .M = M, .N = N, .K = K, .alpha = 0.5f, .beta = 1.0f,
                          .A = A, .lda = K, .B = B, .ldb = K, .C = C, .ldc = N});
    mt_gemm_run(&(MtGemm){.precision = prec, .transB = MT_TRANS, .M = M, .N = N, .K = K, .alpha = 0.5f, .beta = 1.0f,
                          .A = A, .lda = K, .B = B, .ldb = K, .C = D, .ldc = N, .batch = 1, .strideA = sA,
                          .strideC = sC});
    if (memcmp(C, D, sizeof(float) * sC)) bad++;
    /* a batch sharing B, each entry with its own residual: C_i = R_i + (A_i B^T + bias) */
    MtEpilogue ep = {.bias = bias, .residual = R};
    mt_gemm_run(&(MtGemm){.precision = prec, .transB = MT_TRANS, .M = M, .N = N, .K = K, .alpha = 1.0f, .A = A,
                          .lda = K, .B = B, .ldb = K, .C = C, .ldc = N, .batch = batch, .strideA = sA,
                          .strideC = sC, .ep = &ep});
    for (int b = 0; b < batch; b++) {
        MtEpilogue eb = {.bias = bias, .residual = R + b * sC};
        mt_gemm_run(&(MtGemm){.precision = prec, .transB = MT_TRANS, .M = M, .N = N, .K = K, .alpha = 1.0f,
                              .A = A + b * sA, .lda = K, .B = B, .ldb = K, .C = D + b * sC, .ldc = N, .ep = &eb});
    }
    if (memcmp(C, D, sizeof(float) * sC * batch)) bad++;
    /* alpha 0 on a batched sum: C = beta C, the operands not read */
    memcpy(D, C, sizeof(float) * sC);
    mt_gemm_run(&(MtGemm){.precision = prec, .transB = MT_TRANS, .M = M, .N = N, .K = K, .beta = 2.0f, .C = C,
                          .lda = K, .ldb = K, .ldc = N, .batch = batch, .strideA = sA, .sum = 1});
    for (long i = 0; i < sC; i++) bad += C[i] != 2.0f * D[i];
    /* the batched sum writes only C, whatever strideC says */
    memcpy(D, C, sizeof(float) * sC * batch);
    mt_gemm_run(&(MtGemm){.precision = prec, .transB = MT_TRANS, .M = M, .N = N, .K = 32, .alpha = 1.0f, .A = A,
                          .lda = K, .B = B, .ldb = K, .C = C, .ldc = N, .batch = batch, .strideA = sA,
                          .strideC = sC, .sum = 1});
    mt_gemm_run(&(MtGemm){.precision = prec, .transB = MT_TRANS, .M = M, .N = N, .K = 32, .alpha = 1.0f, .A = A,
                          .lda = K, .B = B, .ldb = K, .C = D, .ldc = N, .batch = batch, .strideA = sA, .sum = 1});
    if (memcmp(C, D, sizeof(float) * sC * batch)) bad++;
    /* ruled-out combinations */
    MtPrologue pro = {.mean = bias, .rstd = bias, .group_rows = 1};
    MtGatherA ga = {0};
    MtGemm g = {.precision = prec, .M = M, .N = N, .K = K, .alpha = 1.0f, .A = A, .lda = K, .B = B, .ldb = N, .C = C,
                .ldc = N};
    MtGemm g1 = g, g2 = g, g3 = g, g4 = g;
    g1.sum = 1, g1.ep = &ep;
    g2.pro = &pro, g2.batch = 2, g2.strideC = sC;
    g3.ga = &ga, g3.transA = MT_TRANS;
    g4.pro = &pro, g4.types = MT_A_BF16;
    if (!run_aborts(&g1) || !run_aborts(&g2) || !run_aborts(&g3) || !run_aborts(&g4)) bad++;
    free(A), free(B), free(C), free(D), free(R), free(bias);
    if (bad) fprintf(stderr, "FAIL descriptor prec=%d (%d)\n", prec, bad);
    cases++;
    return bad;
}

static int check_special(void) {
    int bad = 0;
    /* alpha = 0 and K = 0: C = beta * C, A and B not used (NULL is fine for K = 0) */
    float C[6] = {1, 2, 3, 4, NAN, 6};
    mt_gemm_run(&(MtGemm){.precision = MT_BF16, .M = 2, .N = 2, .alpha = 1.0f, .lda = 1, .ldb = 2, .beta = 2.0f,
                          .C = C, .ldc = 3});
    if (C[0] != 2 || C[1] != 4 || C[3] != 8 || C[2] != 3 || !isnan(C[4])) bad++;
    float A[4] = {1, 2, 3, 4}, B[4] = {INFINITY, 1, 1, 1};
    float D[4] = {NAN, NAN, NAN, NAN};
    mt_gemm_run(&(MtGemm){.precision = MT_BF16, .M = 2, .N = 2, .K = 2, .alpha = 1.0f, .A = A, .lda = 2, .B = B,
                          .ldb = 2, .C = D, .ldc = 2});
    if (!isinf(D[0]) || D[1] != 3 || D[3] != 7) bad++;
    /* NaN in an input propagates (not silently dropped) */
    float An[4] = {NAN, 1, 1, 1}, E[4];
    mt_gemm_run(&(MtGemm){.precision = MT_BF16, .M = 2, .N = 2, .K = 2, .alpha = 1.0f, .A = An, .lda = 2, .B = A,
                          .ldb = 2, .C = E, .ldc = 2});
    if (!isnan(E[0]) || !isnan(E[1]) || isnan(E[2])) bad++;
    /* rounding: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 in bf16 -> even (1) */
    if (mt_bf16_round(1.0f + 1.0f / 256) != 1.0f || mt_bf16_round(1.0f + 3.0f / 256) != 1.0f + 4.0f / 256) bad++;
    float one = 1.0f + 1.0f / 256, x[2] = {one, 0}, y[1] = {0};
    mt_gemm_run(&(MtGemm){.precision = MT_BF16, .M = 1, .N = 1, .K = 1, .alpha = 1.0f, .A = x, .lda = 1, .B = x,
                          .ldb = 1, .C = y, .ldc = 1});
    if (y[0] != 1.0f) bad++;
    /* bf16 storage: the same rounding as mt_bf16_round (ties to even, NaN kept, infinities),
     * over a run that is not a whole number of vectors; widening back is exact */
    float src[21] = {one, 1.0f + 3.0f / 256, NAN, -0.0f, INFINITY, -INFINITY, 3.0e38f, -1.5f, 65504.0f, 1e-20f};
    for (int i = 10; i < 21; i++) src[i] = urand() * 100.0f;
    uint16_t h[21];
    float back[21];
    mt_bf16_from_f32(h, src, 21);
    mt_bf16_to_f32(back, h, 21);
    for (int i = 0; i < 21; i++) {
        float r = mt_bf16_round(src[i]);
        if (isnan(src[i]) ? !isnan(back[i]) : memcmp(&back[i], &r, 4)) bad++;
    }
    if (bad) fprintf(stderr, "FAIL special cases (%d)\n", bad);
    return bad;
}

/* ---------------- benchmark ---------------- */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double bench_one(int prec, int ta, int tb, int M, int N, int K, int batch, int reps, float *A, float *B,
                        float *C) {
    int lda = ta ? M : K, ldb = tb ? K : N;
    MtGemm g = {.precision = prec, .transA = ta, .transB = tb, .M = M, .N = N, .K = K, .alpha = 1.0f, .A = A,
                .lda = lda, .B = B, .ldb = ldb, .C = C, .ldc = N};
    if (batch > 1) g.batch = batch, g.strideB = (long)K * N, g.strideC = (long)M * N;
#define RUN() mt_gemm_run(&g)
    RUN(); /* warm up */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        int iters = 0;
        double t0 = now(), t;
        do {
            RUN();
            iters++;
            t = now() - t0;
        } while (t < 0.15);
        if (t / iters < best) best = t / iters;
    }
    return 2.0 * M * N * K * batch / best * 1e-9;
}

static int bench(int reps) {
    struct { const char *name; int ta, tb, M, N, K, batch; } sh[] = {
        {"mixer-s16 b32 token fc1 (per sample) NN", 0, 0, 256, 512, 196, 1},
        {"mixer-s16 b32 token fc2 (per sample) NN", 0, 0, 196, 512, 256, 1},
        {"mixer token fc1 bwd dx (per sample) TN", 1, 0, 196, 512, 256, 1},
        {"mixer token fc1 bwd dw (per sample) NT", 0, 1, 256, 196, 512, 1},
        {"mixer token fc1 batched x32 NN", 0, 0, 256, 512, 196, 32},
        {"mixer_tiny b128 token fc1 x128 NN", 0, 0, 64, 128, 49, 128},
        {"mixer_tiny b128 token fc2 x128 NN", 0, 0, 49, 128, 64, 128},
        {"mixer_tiny token fc1 bwd dx x128 TN", 1, 0, 49, 128, 64, 128},
        {"attention-like per head x8 NT", 0, 1, 197, 197, 64, 8},
        {"mixer-s16 b32 channel fc1 NT", 0, 1, 6272, 2048, 512, 1},
        {"mixer-s16 b32 channel fc2 NT", 0, 1, 6272, 512, 2048, 1},
        {"mixer channel fc1 bwd dx NN", 0, 0, 6272, 512, 2048, 1},
        {"mixer channel fc1 bwd dw TN", 1, 0, 2048, 512, 6272, 1},
        {"poolformer-s12 b32 stem im2col NT", 0, 1, 100352, 64, 147, 1},
        {"poolformer stem bwd dw TN", 1, 0, 64, 147, 100352, 1},
        {"poolformer s1 fc1 1x1 NT", 0, 1, 100352, 256, 64, 1},
        {"poolformer s1 fc2 1x1 NT", 0, 1, 100352, 64, 256, 1},
        {"poolformer s1 fc2 bwd dx NN", 0, 0, 100352, 256, 64, 1},
        {"poolformer s1 fc1 bwd dw TN", 1, 0, 256, 64, 100352, 1},
        {"poolformer s3 fc1 1x1 NT", 0, 1, 6272, 1280, 320, 1},
        {"poolformer s4 fc2 1x1 NT", 0, 1, 1568, 512, 2048, 1},
        {"poolformer s2 fc1 1x1 NT", 0, 1, 25088, 512, 128, 1},
        {"poolformer s2 fc2 1x1 NT", 0, 1, 25088, 128, 512, 1},
        {"poolformer s3 fc2 1x1 NT", 0, 1, 6272, 320, 1280, 1},
        {"poolformer s4 fc1 1x1 NT", 0, 1, 1568, 2048, 512, 1},
        {"poolformer down1 3x3 s2 im2col NT", 0, 1, 25088, 128, 576, 1},
        {"poolformer down2 3x3 s2 im2col NT", 0, 1, 6272, 320, 1152, 1},
        {"poolformer down3 3x3 s2 im2col NT", 0, 1, 1568, 512, 2880, 1},
        {"resmlp_tiny b128 fc1 NT", 0, 1, 6272, 512, 128, 1},
        {"resmlp_tiny b128 fc2 NT", 0, 1, 6272, 128, 512, 1},
        {"resmlp_tiny fc2 bwd dx NN", 0, 0, 6272, 512, 128, 1},
        {"resmlp_tiny fc1 bwd dx NN", 0, 0, 6272, 128, 512, 1},
        {"resmlp_tiny fc2 bwd dw TN", 1, 0, 128, 512, 6272, 1},
        {"resmlp_tiny fc1 bwd dw TN", 1, 0, 512, 128, 6272, 1},
    };
    int ns = (int)(sizeof sh / sizeof sh[0]);
    size_t maxa = 0, maxb = 0, maxc = 0;
    for (int s = 0; s < ns; s++) {
        int nb = sh[s].batch > 1 ? sh[s].batch : 1;
        size_t a = (size_t)sh[s].M * sh[s].K, b = (size_t)sh[s].K * sh[s].N * nb, c = (size_t)sh[s].M * sh[s].N * nb;
        if (a > maxa) maxa = a;
        if (b > maxb) maxb = b;
        if (c > maxc) maxc = c;
    }
    float *A = malloc(maxa * sizeof(float)), *B = malloc(maxb * sizeof(float)), *C = malloc(maxc * sizeof(float));
    if (!A || !B || !C) return 1;
    for (size_t i = 0; i < maxa; i++) A[i] = urand();
    for (size_t i = 0; i < maxb; i++) B[i] = urand();
    printf("threads %d; bf16: %s; fp32 fast: %s; best of %d\n", mt_get_threads(), mt_gemm_backend(MT_BF16),
           mt_gemm_backend(MT_FP32_FAST), reps);
    printf("%-42s %6s %6s %6s | %8s %8s %8s | %5s %5s\n", "shape", "M", "N", "K", "sgemm", "bf16", "fp32fast",
           "bf16x", "f32x");
    for (int s = 0; s < ns; s++) {
        double g0 = bench_one(MT_FP32_BLAS, sh[s].ta, sh[s].tb, sh[s].M, sh[s].N, sh[s].K, sh[s].batch, reps, A, B, C);
        double g1 = bench_one(MT_BF16, sh[s].ta, sh[s].tb, sh[s].M, sh[s].N, sh[s].K, sh[s].batch, reps, A, B, C);
        double g2 = bench_one(MT_FP32_FAST, sh[s].ta, sh[s].tb, sh[s].M, sh[s].N, sh[s].K, sh[s].batch, reps, A, B, C);
        printf("%-42s %6d %6d %6d | %8.1f %8.1f %8.1f | %5.2f %5.2f\n", sh[s].name, sh[s].M, sh[s].N, sh[s].K, g0,
               g1, g2, g1 / g0, g2 / g0);
        fflush(stdout);
    }
    free(A), free(B), free(C);
    return 0;
}

/* The register peak (bench --sgemm's ceiling): positive where the kernel is native, a bf16 dot
 * product worth 1.3-4.5 fp32 FMAs (2 on the CPUs we know: twice the flops per instruction at
 * the same rate), and 0 when the kernel would not run or AMX runs MT_BF16. */
static int check_peak(void) {
    int bad = 0;
    double b = 0, f = 0; /* alternated, best of each: a busy neighbour slows both alike */
    for (int r = 0; r < 3; r++) {
        double x = mt_gemm_peak(MT_BF16), y = mt_gemm_peak(MT_FP32);
        if (x > b) b = x;
        if (y > f) f = y;
    }
    printf("register peak: bf16 %.1f GFLOP/s, fp32 %.1f GFLOP/s\n", b, f);
    if (mt_gemm_fp32_native() && !(f > 1.0)) bad++, printf("FAIL fp32 peak %.3f on a native CPU\n", f);
    if (mt_gemm_amx_native()) { /* MT_BF16 runs on AMX tiles: no vdpbf16ps bound to report */
        if (b != 0.0) bad++, printf("FAIL bf16 peak %.1f reported where AMX runs the GEMM\n", b);
    } else if (mt_gemm_bf16_native() && mt_gemm_fp32_native() && !(b > 1.3 * f && b < 4.5 * f))
        bad++, printf("FAIL bf16 peak %.1f not in (1.3, 4.5) x fp32 peak %.1f\n", b, f);
    mt_gemm_force_fallback(1);
    if (mt_gemm_peak(MT_BF16) != 0.0 || mt_gemm_peak(MT_FP32) != 0.0) bad++, printf("FAIL peak not 0 under fallback\n");
    mt_gemm_force_fallback(0);
    return bad;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        const char *e = getenv("OMP_NUM_THREADS");
        mt_set_threads(e ? atoi(e) : 2);
        return bench(argc > 2 ? atoi(argv[2]) : 3);
    }
    mt_set_threads(0);
    printf("bf16 backend: %s, fp32-fast backend: %s\n", mt_gemm_backend(MT_BF16), mt_gemm_backend(MT_FP32_FAST));
    failures += check_special() + check_peak();
    for (int p = 0; p < 3; p++) failures += check_batched(p) + check_descriptor(p);
    run_suite(MT_BF16, "bf16", 300);
    run_suite(MT_FP32_FAST, "fp32fast", 100);
    run_ksplit_suite(MT_BF16, "bf16-ksplit");
    run_ksplit_suite(MT_FP32_FAST, "fp32fast-ksplit");
    run_mixed_suite(MT_BF16, "bf16");
    run_mixed_suite(MT_FP32_FAST, "fp32fast");
    if (mt_gemm_amx_native()) { /* the AVX512-BF16 kernel too, where AMX would take MT_BF16 */
        mt_gemm_use_amx(0);
        failures += check_batched(MT_BF16);
        run_suite(MT_BF16, "bf16-avx512", 100);
        run_ksplit_suite(MT_BF16, "bf16-avx512-ksplit");
        run_mixed_suite(MT_BF16, "bf16-avx512");
        mt_gemm_use_amx(1);
    }
    mt_gemm_force_fallback(1);
    failures += check_special();
    for (int p = 0; p < 3; p++) failures += check_batched(p) + check_descriptor(p);
    run_suite(MT_BF16, "bf16-fallback", 40);
    run_suite(MT_FP32_FAST, "fp32fast-fallback", 10);
    run_ksplit_suite(MT_BF16, "bf16-fallback-ksplit");
    run_mixed_suite(MT_BF16, "bf16-fallback");
    run_mixed_suite(MT_FP32_FAST, "fp32fast-fallback");
    mt_gemm_force_fallback(0);
    printf("%d cases, %d failures\n", cases, failures);
    return failures ? 1 : 0;
}
