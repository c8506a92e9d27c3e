/* Two GEMMs chained on the own kernels: an MLP at inference (mt_gemm_chain, core/gemm.h).
 * H = ep1(pro(A) @ B1^T) and C = ep2(H @ B2^T), row block by row block: both weights are
 * packed once into one buffer the threads share (each packs some panels), then a thread, per
 * block of rows, packs A and, per chunk of at most one K block of H's columns, writes that
 * chunk of H into its own buffer (L2) and accumulates the second GEMM from there, so H never
 * goes to memory (stage 1 of poolformer_s12: 100352 x 256 floats, 103 MB written and read
 * back per block otherwise). K is one K block and the chunks are the
 * second GEMM's K blocks, so every value is the one the two separate GEMMs give. */
#include "core/gemm_internal.h"
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Words of packed weights (4 MB). Beyond it the weights stream from L3 for every
 * row block and the chain loses (poolformer_s12's stage 4, 8 MB: 2% slower than two GEMMs;
 * stage 3, 3.2 MB: 3% faster). */
#define CHAIN_MAXW (1 << 20)

static float *g_hbuf[MAXT]; /* per thread: a block's chunk of H (MC rows of KCW_F32 floats), then bf16 words */
static uint32_t *g_wbuf;     /* both packed weights, shared by the threads (read-only once packed) */
static size_t g_wcap;

/* Words the two packed weights take, or 0 when the chain does not apply. */
static size_t chain_words(int mode, int K, int N1, int N2) {
    int hcm = KCW(mode) * KPW(mode); /* H's columns per chunk: one K block */
    if (K > hcm) return 0;
    size_t w = (size_t)roundup(N1, NR) * kwords(mode, K) +
               (size_t)roundup(N2, NR) * ((size_t)(N1 / hcm) * KCW(mode) + kwords(mode, N1 % hcm));
    return w <= CHAIN_MAXW ? w : 0;
}

int mt_gemm_chain_mode_fits(int mode, int K, int N1, int N2) { return chain_words(mode, K, N1, N2) > 0; }

/* Thread t of nt's share of the chain: its panels of the weights packed into the shared pw
 * (B2 per chunk), a barrier, then row blocks claimed from sc. fp32: H is written straight in
 * the packed-A layout (rows KCW_F32 apart) and is the second GEMM's A as it stands; bf16: H
 * in fp32, then packed to bf16 words (hb). */
static void chain_run(int mode, const Job *j1, const Job *j2, uint32_t *pa, float *h, uint32_t *hb, uint32_t *pw,
                      const Sched *sc, int t, int nt) {
    int kpw = KPW(mode), hcm = KCW(mode) * kpw, K = j1->K, N1 = j1->N, N2 = j2->N, M = j1->M;
    int kw1 = kwords(mode, K);
    if (mode == MODE_AMX) mt_gemm_amx_config();
    uint32_t *pb2 = pw + (size_t)roundup(N1, NR) * kw1;
    int np1 = (N1 + NR - 1) / NR, np2 = (N2 + NR - 1) / NR;
    for (int p = t; p < np1; p += nt) /* the threads pack the shared weights panel by panel */
        mt_gemm_pack_b(mode, j1, p * NR, imin(NR, N1 - p * NR), 0, K, pw + (size_t)p * kw1 * NR);
    for (int h0 = 0; h0 < N1; h0 += hcm) {
        int hc = imin(hcm, N1 - h0), kwc = kwords(mode, hc);
        uint32_t *b2 = pb2 + (size_t)roundup(N2, NR) * (h0 / kpw);
        for (int p = t; p < np2; p += nt)
            mt_gemm_pack_b(mode, j2, p * NR, imin(NR, N2 - p * NR), h0, hc, b2 + (size_t)p * kwc * NR);
    }
#pragma omp barrier
    int step = row_step(mode, M);
    for (int b = claim(sc, 0, t); b >= 0; b = claim(sc, 0, t)) {
        int ic = b * step, mc = imin(step, M - ic);
        mt_gemm_pack_a(mode, j1, ic, mc, 0, K, pa);
        for (int h0 = 0; h0 < N1; h0 += hcm) {
            int hc = imin(hcm, N1 - h0), kwc = kwords(mode, hc), last = h0 + hc >= N1;
            mt_gemm_tiles(mode, j1, kw1, pa, pw + (size_t)(h0 / NR) * kw1 * NR, h, KCW_F32, NULL, ic, mc, h0, hc,
                          0.0f, j1->ep);
            const uint32_t *ha = (const uint32_t *)h;
            if (mode != MODE_F32) {
                Job jh = *j2;
                jh.A = h;
                mt_gemm_pack_a(mode, &jh, 0, mc, 0, hc, hb);
                ha = hb;
            } else {
                for (int i = mc; i < roundup(mc, MR); i++) memset(h + (size_t)i * KCW_F32, 0, (size_t)hc * sizeof(float));
            }
            const uint32_t *b2 = pb2 + (size_t)roundup(N2, NR) * (h0 / kpw);
            size_t at = (size_t)ic * j2->ldc;
            mt_gemm_tiles(mode, j2, kwc, ha, b2, j2->C + at, j2->ldc, j2->R ? j2->R + at : NULL, ic, mc, 0, N2,
                          h0 ? 1.0f : 0.0f, last ? j2->ep : NULL);
        }
    }
}

/* See mt_gemm_chain (core/gemm.h). Returns -1 (nothing written) when the sizes do not fit
 * or buffers cannot be allocated. */
int mt_gemm_chain_run(int mode, int M, int K, int N1, int N2, const float *A, int lda, const MtPrologue *pro,
                      const float *B1, const MtEpilogue *ep1, const float *B2, float *C, int ldc,
                      const MtEpilogue *ep2) {
    size_t words = chain_words(mode, K, N1, N2);
    if (M <= 0 || K <= 0 || N1 <= 0 || N2 <= 0 || !words || (ep1 && (ep1->residual || ep1->dact)) ||
        (ep2 && ep2->dact))
        return -1;
    Job j1 = {mode, 0, 1, M, N1, K, 1.0f, 0.0f, A, B1, NULL, lda, K, KCW_F32, pro, NULL, ep1, NULL, tile_gelu(ep1), NULL,
              0, K, 0, 0, 0, 0, 0, 0};
    Job j2 = {mode, 0, 1, M, N2, N1, 1.0f, 0.0f, NULL, B2, C, KCW_F32, N1, ldc, NULL, NULL, ep2,
              ep2 ? ep2->residual : NULL, tile_gelu(ep2), NULL, 0, N1, 0, 0, 0, 0, 0, 0};
    int T = mt_gemm_team_size((double)M * N1 * (K + N2));
    int step = row_step(mode, M), nblk = (M + step - 1) / step;
    if (T > nblk) T = nblk;
    if (!mt_gemm_bufs_get(T)) return -1;
    if (g_wcap < words) {
        free(g_wbuf);
        g_wbuf = aligned_alloc(64, words * sizeof(uint32_t));
        g_wcap = g_wbuf ? words : 0;
    }
    if (!g_wbuf) return -1;
    for (int t = 0; t < T; t++) {
        if (!g_hbuf[t]) g_hbuf[t] = aligned_alloc(64, (size_t)MC * (KCW_F32 + KCW_BF16) * sizeof(float));
        if (!g_hbuf[t]) return -1;
    }
    uint64_t ranges[MAXT * SCHED_PAD] __attribute__((aligned(64)));
    for (int t = 0; t < T; t++) ranges[t * SCHED_PAD] = pack_range(nblk * t / T, nblk * (t + 1) / T);
    Sched sc = {ranges, T};
#pragma omp parallel num_threads(T)
    { /* the team may be smaller than asked: panels go by the actual size, row blocks are stolen */
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        uint32_t *hb = mode != MODE_F32 ? (uint32_t *)(g_hbuf[t] + (size_t)MC * KCW_F32) : NULL;
        mt_gemm_bufs[t].a_call = 0; /* its A buffer no longer holds a shared block */
        chain_run(mode, &j1, &j2, mt_gemm_bufs[t].a, g_hbuf[t], hb, g_wbuf, &sc, t, nt);
    }
    return 0;
}
