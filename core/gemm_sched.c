/* The driver of the own GEMM kernels: blocking, threads, work stealing, the K split and
 * batches (layout and loop nest: core/gemm_internal.h).
 *
 * Threads: the caller is never inside an OpenMP region, so we open one. C is split into a
 * tm x tn grid of rectangles (tm * tn = threads, chosen to minimise padded work plus
 * repacking); each thread packs its own A and B into a per-thread buffer allocated once.
 * When the split is by rows only (the models' GEMMs), the row blocks are shared by work
 * stealing (Sched), with a barrier between K blocks; otherwise no barriers. Threads never
 * write the same part of C, except in the K split (weight gradients: small C, long K), where
 * each writes a private partial C and the partials are added at the end. */
#include "core/gemm_internal.h"
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

MtGemmBufs mt_gemm_bufs[MAXT];

/* The epilogue's activation backward over a finished block of C (still in L2): C *= act'(P +
 * pre_bias) row by row, column sums into this thread's partials. A block, not a tile: P is
 * read in long runs the hardware prefetchers follow (32-float pieces of rows ldc apart were
 * latency-bound: dh of 100352 x 256 x 64 on one thread took 110 ms, the GEMM and a
 * separate pass 18 + 30). */
static void act_grad_block(const MtEpilogue *ep, float *C, int ldc, const float *P, int col, int rows, int cols) {
    const float *pb = ep->pre_bias ? ep->pre_bias + col : NULL;
    double *cs = ep->colsum ? ep->colsum + (size_t)omp_get_thread_num() * ep->colsum_stride + col : NULL;
    ep->dact(C, C, P, (size_t)ldc, pb, cs, rows, cols, 0);
}

/* Packs A's block into the thread's buffer unless it already holds it: with a shared A (token
 * mixing's weight, 64-512 samples a call) each thread packs it once a call instead of once a
 * sample. */
static void pack_a_block(const Job *j, MtGemmBufs *buf, int ic, int mc, int pc, int kc) {
    if (j->a_shared && buf->a_call == j->a_shared && buf->a_ic == ic && buf->a_mc == mc && buf->a_pc == pc &&
        buf->a_kc == kc)
        return;
    mt_gemm_pack_a(j->mode, j, ic, mc, pc, kc, buf->a);
    buf->a_call = j->a_shared;
    buf->a_ic = ic, buf->a_mc = mc, buf->a_pc = pc, buf->a_kc = kc;
}

/* One thread's rectangle of C: rows [m0, m1), columns [n0, n1). With a shared schedule all
 * threads call this for the whole of C, each packs B per phase, claims row blocks, and
 * waits for the others before the next K block accumulates onto the same rows. */
static void run_block(const Job *j, int m0, int m1, int n0, int n1, MtGemmBufs *buf, const Sched *sc) {
    uint32_t *pa = buf->a, *pb = buf->b;
    int mode = j->mode, kpw = KPW(mode), kc_max = KCW(mode) * kpw;
    int mc_step = row_step(mode, m1 - m0), nblk = (m1 - m0 + mc_step - 1) / mc_step, phase = 0;
    if (mode == MODE_AMX) mt_gemm_amx_config();
    for (int jc = n0; jc < n1; jc += NC(mode)) {
        int nc = imin(NC(mode), n1 - jc);
        for (int pc = j->k0; pc < j->k1; pc += kc_max, phase++) {
            int kc = imin(kc_max, j->k1 - pc), kw = kwords(mode, kc);
            float beta = pc == j->k0 ? j->beta : 1.0f;
            const MtEpilogue *ep = pc + kc >= j->k1 ? j->ep : NULL;
            mt_gemm_pack_b(mode, j, jc, nc, pc, kc, pb);
            if (sc && pc > j->k0) { /* every row's previous K block must be in C first */
#pragma omp barrier
            }
            int t = sc ? omp_get_thread_num() : 0;
            for (int b = sc ? claim(sc, phase, t) : 0; b >= 0 && b < nblk; b = sc ? claim(sc, phase, t) : b + 1) {
                int ic = m0 + b * mc_step, mc = imin(mc_step, m1 - ic);
                pack_a_block(j, buf, ic, mc, pc, kc);
                size_t at = (size_t)ic * j->ldc + jc;
                mt_gemm_tiles(mode, j, kw, pa, pb, j->C + at, j->ldc, j->R ? j->R + at : NULL, ic, mc, jc, nc, beta,
                              ep);
                if (ep && ep->dact) act_grad_block(ep, j->C + at, j->ldc, j->P + at, jc, mc, nc);
            }
        }
    }
}

/* Threads for a call of `work` multiply-adds: OpenMP's, capped, one below 3e5 (waking the team
 * costs more). */
int mt_gemm_team_size(double work) {
    int T = omp_get_max_threads();
    if (T > MAXT) T = MAXT;
    return work < 300000.0 ? 1 : T;
}

/* Per-thread packing buffers (A block and B block), allocated on first use and kept (the
 * pool is reachable from a global, so leak checkers stay quiet). Returns 0 when out of memory. */
int mt_gemm_bufs_get(int T) {
    for (int t = 0; t < T; t++) {
        if (!mt_gemm_bufs[t].a) mt_gemm_bufs[t].a = aligned_alloc(64, (size_t)MC * KCW_MAX * sizeof(uint32_t));
        if (!mt_gemm_bufs[t].b) mt_gemm_bufs[t].b = aligned_alloc(64, (size_t)NC_MAX * KCW_BF16 * sizeof(uint32_t)); /* 1 MB in either mode */
        if (!mt_gemm_bufs[t].a || !mt_gemm_bufs[t].b) return 0;
    }
    return 1;
}

/* Thread grid: tm x tn rectangles minimising padded microkernel work plus repacking. */
static void choose_grid(int T, int M, int N, int K, int *tm_out, int *tn_out) {
    double best = -1;
    int btm = 1, btn = 1;
    for (int tm = 1; tm <= T; tm++) {
        if (T % tm) continue;
        int tn = T / tm;
        if (tm > 1 && (M + tm - 1) / tm < MR / 2) continue;
        if (tn > 1 && (N + tn - 1) / tn < NR / 2) continue;
        double pm = roundup((M + tm - 1) / tm, MR), pn = roundup((N + tn - 1) / tn, NR);
        double work = pm * pn * K + 4.0 * K * (pm * ((pn + NC_MAX - 1) / NC_MAX) + pn * ((pm + MC - 1) / MC));
        if (best < 0 || work < best) best = work, btm = tm, btn = tn;
    }
    *tm_out = btm;
    *tn_out = btn;
}

static void run_one(const Job *j, int m0, int m1, int n0, int n1, int t, const Sched *sc) {
    run_block(j, m0, m1, n0, n1, &mt_gemm_bufs[t], sc);
}

/* Entry i of a batch: its operands, and the epilogue's matrices in C's layout. */
static Job job_entry(const Job *j, int i, long sA, long sB, long sC) {
    Job ji = *j;
    const MtEpilogue *ep = j->ep;
    ji.A = j->A ? elem(j->A, j->abf, (size_t)(i * sA)) : NULL, ji.B = elem(j->B, j->bbf, (size_t)(i * sB));
    ji.C = j->C + i * sC;
    ji.R = ep && ep->residual ? ep->residual + i * sC : NULL;
    ji.P = ep && ep->dact ? ep->pre + i * sC : NULL;
    return ji;
}

/* ---- K split: a weight gradient's small C over a long K ----
 * dW = dY^T X has K = batch x tokens (6272-100352) and C of 64 x 147 to 512 x 2048. Split by
 * rows, every thread packs all of B for each K block and the threads meet at a barrier per
 * K block, so the GEMM hardly gains from a second thread (token mixing's 256 x 196 x 16384,
 * bf16 on AMX: 3.6 ms on one thread, 4.6 on two). Split by K instead, thread t multiplies its
 * own run of K blocks into a private C (alpha applied), and after one barrier the threads
 * add the partials row by row in thread order: C = beta C + P_0 + P_1 + ... (for a given
 * thread count the result does not depend on scheduling). Intel Xeon, 2 threads, data from
 * memory, medians of 15 alternated calls: bf16 1.15-1.81x on the models' weight gradients
 * (stem 64 x 147 x 100352 98 -> 176 GFLOP/s), fp32 1.01-1.67x. */
static float *g_part[MAXT]; /* per thread: a partial C, M x N floats */
static size_t g_part_n[MAXT];

/* 1 when a K split beats the row/column grid: plain operands (a prologue or a gather would
 * work, but no weight gradient has one), no epilogue (it would need the full sum), at
 * least four K blocks per thread (with two, 2048 x 512 x 1568 lost 10-15% in fp32),
 * partials of at most 4 MB, and the smaller side of C short enough that the grid's
 * duplicated packing of the other operand counts (packing a word costs about as much as
 * 100+ multiply-adds on AMX, ~16 in fp32). */
static int ksplit_ok(const Job *j, int T, int batch) {
    int M = j->M, N = j->N, kc_max = KCW(j->mode) * KPW(j->mode), nkb = (j->K + kc_max - 1) / kc_max;
    size_t mn = (size_t)M * N;
    if (T < 2 || batch != 1 || j->ep || j->pro || j->ga || nkb < 4 * T || mn > ((size_t)1 << 20)) return 0;
    /* wide C (512 x 2048): the row split packs the long side once per thread anyway */
    if (M < N && mn > ((size_t)1 << 19)) return 0;
    return (M < N ? M : N) <= 1024;
}

/* Allocates the partials; 0 when out of memory. */
static int part_get(int T, size_t n) {
    for (int t = 0; t < T; t++) {
        if (g_part_n[t] >= n) continue;
        free(g_part[t]);
        g_part[t] = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
        g_part_n[t] = g_part[t] ? n : 0;
        if (!g_part[t]) return 0;
    }
    return 1;
}

/* C's rows [i0, i1) = beta C + the partials, added in thread order. A swapped job's partials
 * hold C transposed (N x M): read in 32 x 32 squares; otherwise row by row. */
static void ksplit_add_rows(const Job *j, int swap, int nt, int i0, int i1) {
    int M = j->M, N = j->N;
    float beta = j->beta;
    if (!swap) {
        for (int i = i0; i < i1; i++) {
            float *c = j->C + (size_t)i * j->ldc;
            const float *p0 = g_part[0] + (size_t)i * N;
            for (int n = 0; n < N; n++) {
                float v = p0[n];
                for (int u = 1; u < nt; u++) v += g_part[u][(size_t)i * N + n];
                c[n] = beta == 0.0f ? v : v + beta * c[n];
            }
        }
        return;
    }
    for (int ib = i0; ib < i1; ib += 32)
        for (int nb = 0; nb < N; nb += 32)
            for (int i = ib; i < imin(ib + 32, i1); i++) {
                float *c = j->C + (size_t)i * j->ldc;
                for (int n = nb; n < imin(nb + 32, N); n++) {
                    size_t e = (size_t)n * M + i;
                    float v = g_part[0][e];
                    for (int u = 1; u < nt; u++) v += g_part[u][e];
                    c[n] = beta == 0.0f ? v : v + beta * c[n];
                }
            }
}

/* swap: the partials are computed as C^T = op(B)^T op(A)^T. A weight gradient dW = dY^T X
 * packs its transposed operand (a 16 x 16 transpose per block of words) and the other one
 * row-wise (one shuffle per 16 words); swapped, the transpose falls on the narrower of dY
 * and X. Only while C^T's columns fit one column block: past NC the narrow operand would be
 * packed again for every block. 2 threads, bf16, GFLOP/s: 512 x 128 x 6272 (resmlp_tiny's
 * fc1) 278-290 -> 284-339, 256 x 64 x 100352 (poolformer_s12's stage 1) 156-157 -> 193-207,
 * but 2048 x 512 x 6272 350 -> 285-323 had it swapped. Every element is the same sum in the same
 * k order either way, so C is the same to the bit. */
static void run_ksplit(const Job *j, int T) {
    int swap = j->ta && !j->tb && j->M > j->N && j->M <= NC(j->mode) && !j->kseg;
#pragma omp parallel num_threads(T)
    { /* the team may be smaller than asked: shares go by its actual size */
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        Job jt = *j;
        if (swap) {
            jt.A = j->B, jt.lda = j->ldb, jt.abf = j->bbf;
            jt.B = j->A, jt.ldb = j->lda, jt.bbf = j->abf;
            jt.M = j->N, jt.N = j->M;
        }
        /* equal shares of K, cut at multiples of 32 (whole vectors, and k pairs for bf16) */
        jt.k0 = imin(j->K, roundup((int)((long)j->K * t / nt), 32));
        jt.k1 = imin(j->K, roundup((int)((long)j->K * (t + 1) / nt), 32));
        jt.beta = 0.0f, jt.C = g_part[t], jt.ldc = jt.N;
        if (jt.k0 < jt.k1) run_one(&jt, 0, jt.M, 0, jt.N, t, NULL);
        else memset(g_part[t], 0, (size_t)jt.M * jt.N * sizeof(float));
#pragma omp barrier
        ksplit_add_rows(j, swap, nt, j->M * t / nt, j->M * (t + 1) / nt);
    }
}

/* batch GEMMs C_i = alpha op(A_i) op(B_i) + beta C_i with X_i = X + i * strideX.
 * One parallel region: a single GEMM is split into a thread grid of C rectangles; a batch
 * of at least as many GEMMs as threads hands whole GEMMs to threads. No barriers inside.
 * Returns 0 on success, -1 when buffers could not be allocated (C untouched; the caller
 * falls back). */
static int run_jobs(const Job *jp, int batch, long sA, long sB, long sC) {
    Job j = *jp;
    int mode = j.mode, M = j.M, N = j.N, K = j.K;
    const MtEpilogue *ep = j.ep;
    /* per-thread column sums must not depend on who steals which rows */
    int fixed = ep && ep->dact && ep->colsum;
    double work = (double)M * N * K;
    int T = mt_gemm_team_size(work * batch);
    if (!mt_gemm_bufs_get(T)) return -1;
    static uint64_t calls; /* a fresh key a call: between calls the weight may have changed */
    if (batch > 1 && sA == 0) j.a_shared = ++calls;
    if (batch >= T && (batch >= 2 * T || work < 4e7)) { /* whole GEMMs per thread */
        if (T == 1) {
            for (int i = 0; i < batch; i++) {
                Job ji = job_entry(&j, i, sA, sB, sC);
                run_one(&ji, 0, M, 0, N, 0, NULL);
            }
            return 0;
        }
        /* Each thread takes a contiguous run of entries (and, unless the column sums must not
         * depend on scheduling, steals from the back of the others' runs once its own is
         * done). Entries handed out one at a time in turn (schedule(dynamic, 1)) put
         * neighbouring entries on different cores: mixer_tiny's token fc2, 128 entries of
         * 49 x 128 x 64 bf16 on two threads, took 0.43-0.45 ms that way, and 0.71-0.83 ms in
         * some processes, slower than one thread (0.73); contiguous runs take 0.37. */
        if (fixed) {
#pragma omp parallel num_threads(T)
            { /* the team may be smaller than asked: shares go by its actual size */
                int t = omp_get_thread_num(), nt = omp_get_num_threads();
                for (int i = batch * t / nt; i < batch * (t + 1) / nt; i++) {
                    Job ji = job_entry(&j, i, sA, sB, sC);
                    run_one(&ji, 0, M, 0, N, t, NULL);
                }
            }
            return 0;
        }
        uint64_t ranges[MAXT * SCHED_PAD] __attribute__((aligned(64)));
        for (int t = 0; t < T; t++) ranges[t * SCHED_PAD] = pack_range(batch * t / T, batch * (t + 1) / T);
        Sched sc = {ranges, T};
#pragma omp parallel num_threads(T)
        {
            int t = omp_get_thread_num();
            for (int i = claim(&sc, 0, t); i >= 0; i = claim(&sc, 0, t)) {
                Job ji = job_entry(&j, i, sA, sB, sC);
                run_one(&ji, 0, M, 0, N, t, NULL);
            }
        }
        return 0;
    }
    if (ksplit_ok(&j, T, batch) && part_get(T, (size_t)M * N)) {
        run_ksplit(&j, T);
        return 0;
    }
    int tm = 1, tn = 1;
    if (T > 1) choose_grid(T, M, N, K, &tm, &tn);
    T = tm * tn;
    int rows = roundup((M + tm - 1) / tm, MR), cols = roundup((N + tn - 1) / tn, NR);
    /* A row split (the usual case: M is batch x tokens) shares C's row blocks through a
     * counter per (column block, K block) phase instead of fixed halves. */
    int kc_max = KCW(j.mode) * KPW(j.mode);
    int nphase = ((N + NC(j.mode) - 1) / NC(j.mode)) * ((K + kc_max - 1) / kc_max);
    int dyn = T > 1 && tn == 1 && (size_t)nphase * T <= 256 && !fixed;
    uint64_t ranges[256 * SCHED_PAD] __attribute__((aligned(64)));
    for (int i = 0; i < batch; i++) {
        Job ji = job_entry(&j, i, sA, sB, sC);
        if (T == 1) {
            run_one(&ji, 0, M, 0, N, 0, NULL);
            continue;
        }
        if (dyn) {
            int nblk = (M + row_step(mode, M) - 1) / row_step(mode, M);
            for (int p = 0; p < nphase; p++)
                for (int t = 0; t < T; t++)
                    ranges[(p * T + t) * SCHED_PAD] = pack_range(nblk * t / T, nblk * (t + 1) / T);
            Sched sc = {ranges, T};
#pragma omp parallel num_threads(T)
            run_one(&ji, 0, M, 0, N, omp_get_thread_num(), &sc);
            continue;
        }
#pragma omp parallel for num_threads(T) schedule(static, 1)
        for (int cell = 0; cell < T; cell++) {
            int ti = cell / tn, tj = cell % tn;
            int m0 = imin(M, ti * rows), m1 = imin(M, m0 + rows);
            int n0 = imin(N, tj * cols), n1 = imin(N, n0 + cols);
            if (m0 < m1 && n0 < n1) run_one(&ji, m0, m1, n0, n1, omp_get_thread_num(), NULL);
        }
    }
    return 0;
}

int mt_gemm_sched_run(int mode, const MtGemm *g) {
    int abf = !!(g->types & MT_A_BF16), bbf = !!(g->types & MT_B_BF16);
    if (g->sum) {
        /* C = alpha sum_i A_i B_i^T + beta C (A_i M x K, B_i N x K, both k-contiguous) as one
         * GEMM over K' = batch x K whose packing walks the entries (Job.kseg): the batch is
         * never laid out along K in memory. K must be a multiple of 32. */
        if (g->transA || !g->transB || g->pro || g->ga || g->ep || g->K % 32 || (long)g->K * g->batch > 0x7fffffffL)
            return -1;
        int K = g->K * g->batch;
        Job j = {mode, 0, 1, g->M, g->N, K, g->alpha, g->beta, g->A, g->B, g->C, g->lda, g->ldb, g->ldc, NULL, NULL,
                 NULL, NULL, 0, NULL, 0, K, g->K, g->strideA, g->strideB, abf, bbf, 0};
        return run_jobs(&j, 1, 0, 0, 0);
    }
    if ((g->pro || g->ga) && g->transA) return -1; /* the prologue and the gather run in the row-wise packing only */
    if (g->pro && abf) return -1;                  /* the prologue reads fp32 rows */
    const MtEpilogue *ep = g->ep;
    if (ep && ep->dact && !ep->pre) return -1;
    Job j = {mode, g->transA, g->transB, g->M, g->N, g->K, g->alpha, g->beta, g->A, g->B, g->C, g->lda, g->ldb,
             g->ldc, g->pro, g->ga, ep, NULL, tile_gelu(ep), NULL, 0, g->K, 0, 0, 0, abf, bbf, 0};
    return run_jobs(&j, g->batch, g->strideA, g->strideB, g->strideC);
}
