/* AVX-512 GEMM kernels behind mt_gemm: bf16 (vdpbf16ps, fp32 accumulation), fp32 (FMA), and
 * bf16 on AMX tiles (tdpbf16ps; same packing, 32 x 32 microkernel, see ukernel_amx).
 *
 * Goto/BLIS-style blocking, written for row-major C and vectors along N:
 *
 *   for jc (NC columns of C)            each thread owns a rectangle of C (see split below)
 *     for pc (KC of K)                  pack op(B)[pc.., jc..] -> panels of NR=32 columns
 *       for ic (MC rows)                pack op(A)[ic.., pc..] -> MC rows of KCW words
 *         for jr (NR panel), ir (MR rows): 12 x 32 microkernel, 24 zmm accumulators
 *         (AMX: for ir (32 rows), jr (NR panel): 32 x 32 microkernel, 4 accumulator tiles)
 *
 * A "word" is 32 bits: in bf16 mode a pair of bf16 (k even in the low half, k odd in the
 * high half), which is what vdpbf16ps multiplies lane-wise; in fp32 mode one float.
 *   packed B panel: word (w, j) at pb[w * NR + j]      -> two zmm loads per word row
 *   packed A block: word (i, w) at pa[i * KCW + w]     -> one 32-bit broadcast per row,
 *                   KCW is a compile-time stride, so the 12 rows are 12 fixed displacements.
 * Rounding fp32 -> bf16 happens while packing (vcvtne2ps2bf16: round-to-nearest-even,
 * NaN stays NaN, denormals flush to zero). Edges (M, N, odd K) are zero-padded in the packs
 * and C is written with masked stores, so any M, N, K, lda, ldb, ldc work. Packing A may
 * normalise its rows on the way (MtPrologue) or take them from a row function instead of a
 * matrix (MtGatherA, the convolution's implicit im2col).
 *
 * Threads: the caller is never inside an OpenMP region, so we open one. C is split into a
 * tm x tn grid of rectangles (tm * tn = threads, chosen to minimise padded work plus
 * repacking); each thread packs its own A and B into a per-thread buffer allocated once.
 * When the split is by rows only (the models' GEMMs), the row blocks are shared by work
 * stealing (Sched), with a barrier between K blocks; otherwise no barriers. Threads never
 * write the same part of C, except in the K split (weight gradients: small C, long K), where
 * each writes a private partial C and the partials are added at the end. At the end of the
 * file, two GEMMs chained per row block (an MLP whose hidden layer stays in cache). */
#include "core/gemm.h"
#include "core/act_gelu_avx512.h"
#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MR 12
#define NR 32
/* Words per K block: 512 k in both modes (256 bf16 pairs, 512 floats). Each K block after
 * the first re-reads C, so deep blocks pay (2 threads, GFLOP/s: fp32 6272x2048x512 305 at
 * 128 words, 345 at 256, 361 at 512; bf16 620 at 128, 730 at 256 words, but 640 at 512,
 * where the B micro-panel (NR x KCW words) no longer fits L1). A compile-time stride per
 * mode: the microkernel's 12 A rows are 12 fixed displacements. */
#define KCW_BF16 256
#define KCW_F32 512
#define KCW_MAX 512
#define KCW(mode) ((mode) == MODE_F32 ? KCW_F32 : KCW_BF16)
#define KPW(mode) ((mode) == MODE_F32 ? 1 : 2) /* k per word */
#define MC 144     /* rows of A per block (multiple of MR): MC*KCW*4 <= 288 KB, L2-resident */
#define NC(mode) ((mode) == MODE_F32 ? 512 : 1024) /* columns of B per block: NC*KCW*4 = 1 MB */
/* AMX: tiles of 16 rows x 16 words; the microkernel is 2 x 2 tiles = 32 x 32 of C, so rows
 * are padded to 32 and every K block to whole tiles (16 words). */
#define MR_AMX 32
#define MC_AMX 128
#define MRM(mode) ((mode) == MODE_AMX ? MR_AMX : MR)
#define MCM(mode) ((mode) == MODE_AMX ? MC_AMX : MC)
#define NC_MAX 1024
#define MAXT 256
/* pack_a fetches the row PFA rows ahead: the packing loop otherwise waits on each row of A
 * (rows are lda apart, one K block of each; 2-7% on the models' MLP GEMMs). */
#define PFA 2

/* AMX in the target set only lets the AMX kernel inline into the shared driver code; its
 * instructions run only in MODE_AMX, chosen when the CPU and the OS grant the tiles. */
#define TGT __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl,avx512dq,amx-tile,amx-bf16")))
#define INL __attribute__((always_inline)) inline

/* MODE_AMX: the bf16 word layout of MODE_BF16, multiplied by AMX tiles (tdpbf16ps). */
enum { MODE_F32 = 0, MODE_BF16 = 1, MODE_AMX = 2 };

typedef struct {
    int mode, ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    const MtPrologue *pro; /* applied to A's rows while packing (not transposed A), or NULL */
    const MtGatherA *ga;   /* A's rows come from this function instead of A, or NULL */
    const MtEpilogue *ep; /* applied as each block of C gets its last K block, or NULL */
    const float *R;       /* the epilogue's residual for this C (same layout), or NULL */
    int gelu;             /* ep->act is GELU and runs on the tile in registers */
    const float *P;       /* the epilogue's pre-activation for this C (same layout; ep->dact), or NULL */
    int k0, k1;           /* the K range this job multiplies (0, K but for a thread's share of a K split) */
    /* K made of segments of kseg (0: one run): k lives in entry k / kseg of a batch, at k % kseg
     * of that entry's row, the entries sAk (A) and sBk (B) floats apart (mt_gemm_batched_sum) */
    int kseg;
    long sAk, sBk;
    /* A / B stored as bf16 (uint16_t, an fp32's upper half: an activation kept rounded, see
     * mt_gemm_batched_mixed) behind the float pointer; lda, ldb, strides count elements */
    int abf, bbf;
} Job;

static struct {
    uint32_t *a, *b;
} g_pool[MAXT];

static INL int imin(int a, int b) { return a < b ? a : b; }
static INL int roundup(int a, int m) { return (a + m - 1) / m * m; }
static INL __mmask16 mask16(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }
static INL __mmask32 mask32(int n) { return n >= 32 ? (__mmask32)0xffffffffu : n <= 0 ? 0 : (__mmask32)((1u << n) - 1); }
/* Words a K block of kc k values packs into (AMX: whole tiles, the padding words zero). */
static INL int kwords(int mode, int kc) {
    int kw = (kc + KPW(mode) - 1) / KPW(mode);
    return mode == MODE_AMX ? roundup(kw, 16) : kw;
}

/* Masked stores cost more than plain ones on some CPUs even with an all-ones mask (AMD Zen 5:
 * GEMMs 1-12% faster with plain stores for full vectors, the GELU-gradient rows ~1.5x), so
 * full vectors take the plain store. */
TGT static INL void store16(float *p, __mmask16 m, __m512 v) {
    if (m == (__mmask16)0xffff) _mm512_storeu_ps(p, v);
    else _mm512_mask_storeu_ps(p, m, v);
}

/* Element e of an operand stored as fp32 or, when bf, as bf16. */
static INL const void *elem(const float *base, int bf, size_t e) {
    return bf ? (const void *)((const uint16_t *)(const void *)base + e) : (const void *)(base + e);
}

/* 16 bf16 values widened to fp32 (exact: the low half of each float is zero). */
TGT static INL __m512i widen16(__m256i h) { return _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16); }

/* 16 words from a source row whose k run is contiguous: k values src[0 .. kleft) (rest zero),
 * src fp32 or (bf) bf16. bf16 pairs of consecutive k are words as they lie in memory. */
TGT static INL __m512i load_words_k(int mode, const void *src, int bf, int kleft) {
    if (bf)
        return mode == MODE_F32 ? widen16(_mm256_maskz_loadu_epi16(mask16(kleft), src))
                                : _mm512_maskz_loadu_epi16(mask32(kleft), src);
    const float *f = src;
    if (mode != MODE_F32) {
        __m512 x0 = _mm512_maskz_loadu_ps(mask16(kleft), f);
        __m512 x1 = _mm512_maskz_loadu_ps(mask16(kleft - 16), f + 16);
        return (__m512i)_mm512_cvtne2ps_pbh(x1, x0); /* low 16 bf16 from x0, high from x1 */
    }
    return _mm512_castps_si512(_mm512_maskz_loadu_ps(mask16(kleft), f));
}

/* Where k of a row lies, in elements from the row's start (see Job.kseg). Chunks of 16 words
 * start at multiples of 32 k and kseg is a multiple of 32, so a chunk never straddles two
 * entries. */
static INL size_t kseg_off(int k, int kseg, long sk) {
    return kseg ? (size_t)(k / kseg) * (size_t)sk + (size_t)(k % kseg) : (size_t)k;
}

/* The prologue on 16 k values of one row (k past the end masked off, so they stay zero):
 * ((x - m) * rs) * scale + shift, the norm ops' order (no FMA: equal to their output). */
TGT static INL __m512 pro16(__m512 x, __mmask16 km, float m, float rs, const float *scale, const float *shift) {
    x = _mm512_mul_ps(_mm512_sub_ps(x, _mm512_set1_ps(m)), _mm512_set1_ps(rs));
    if (scale) x = _mm512_mul_ps(x, _mm512_maskz_loadu_ps(km, scale));
    if (shift) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(km, shift));
    return _mm512_maskz_mov_ps(km, x);
}

/* load_words_k with the prologue; scale and shift point at this row's k (may be NULL). */
TGT static INL __m512i load_words_k_pro(int mode, const float *src, int kleft, float m, float rs,
                                        const float *scale, const float *shift) {
    __mmask16 k0 = mask16(kleft);
    __m512 x0 = pro16(_mm512_maskz_loadu_ps(k0, src), k0, m, rs, scale, shift);
    if (mode == MODE_F32) return _mm512_castps_si512(x0);
    __mmask16 k1 = mask16(kleft - 16);
    __m512 x1 = pro16(_mm512_maskz_loadu_ps(k1, src + 16), k1, m, rs, scale ? scale + 16 : NULL,
                      shift ? shift + 16 : NULL);
    return (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
}

/* 16 words for 16 consecutive columns c at one word index: rows k (src0) and k+1 (src1,
 * NULL when k+1 is past the end), columns contiguous, cm masks the valid columns; fp32 or
 * (bf) bf16 sources. */
TGT static INL __m512i load_words_cols(int mode, const void *src0, const void *src1, int bf, __mmask16 cm) {
    if (bf) {
        if (mode == MODE_F32) return widen16(_mm256_maskz_loadu_epi16(cm, src0));
        __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(cm, src0));
        return src1 ? _mm512_or_si512(lo, widen16(_mm256_maskz_loadu_epi16(cm, src1))) : lo;
    }
    __m512 r0 = _mm512_maskz_loadu_ps(cm, src0);
    if (mode == MODE_F32) return _mm512_castps_si512(r0);
    __m512 r1 = src1 ? _mm512_maskz_loadu_ps(cm, src1) : _mm512_setzero_ps();
    __m512i v = (__m512i)_mm512_cvtne2ps_pbh(r1, r0); /* [r0 x16 | r1 x16] */
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                         6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, v); /* (r0[j], r1[j]) pairs */
}

/* In-register 16 x 16 transpose of 32-bit words: four butterfly stages of vpermt2d. */
TGT static INL void transpose16(__m512i r[16]) {
    for (int d = 1; d < 16; d <<= 1) {
        int lo[16], hi[16];
        for (int c = 0; c < 16; c++) {
            lo[c] = (c & d) ? 16 + c - d : c;
            hi[c] = (c & d) ? 16 + c : c + d;
        }
        __m512i ilo = _mm512_loadu_si512(lo), ihi = _mm512_loadu_si512(hi);
        for (int j = 0; j < 16; j++) {
            if (j & d) continue;
            __m512i a = r[j], b = r[j + d];
            r[j] = _mm512_permutex2var_epi32(a, ilo, b);
            r[j + d] = _mm512_permutex2var_epi32(a, ihi, b);
        }
    }
}

/* Pack op(A)[i0 .. i0+mc, k0 .. k0+kc) into pa[i * KCW + w], rows padded with zeros to
 * whole microkernel tiles. bf: A stored as bf16 (a constant after inlining, see pack_a). */
TGT static INL void pack_a_as(int mode, int bf, const Job *j, int i0, int mc, int k0, int kc, uint32_t *pa) {
    int kpw = KPW(mode);
    int kw = kwords(mode, kc);
    int mcp = roundup(mc, MRM(mode));
    if (j->ga) { /* rows gathered on demand: fp32 straight into the block, bf16 through a row */
        float row[KCW_MAX * 2 + 32];
        for (int i = 0; i < mc; i++) {
            uint32_t *dst = pa + (size_t)i * KCW(mode);
            float *r = mode != MODE_F32 ? row : (float *)dst;
            j->ga->row(j->ga->ctx, i0 + i, k0, kc, r);
            for (int k = kc; k < roundup(kc, 16 * kpw); k++) r[k] = 0.0f;
            if (mode != MODE_F32)
                for (int w = 0; w < kw; w += 16)
                    _mm512_storeu_si512(dst + w, load_words_k(mode, r + w * kpw, 0, kc - w * kpw));
        }
    } else if (!j->ta) { /* A stored M x K: k contiguous */
        for (int i = 0; i < mc; i++) {
            size_t row = (size_t)(i0 + i) * j->lda;
            if (i + PFA < mc)
                for (int k = 0; k < kc; k += bf ? 32 : 16)
                    _mm_prefetch((const char *)elem(j->A, bf, row + (size_t)PFA * j->lda + kseg_off(k0 + k, j->kseg, j->sAk)),
                                 _MM_HINT_T0);
            uint32_t *dst = pa + (size_t)i * KCW(mode);
            const MtPrologue *p = j->pro;
            if (p) { /* never with kseg or a bf16 A */
                int g = (i0 + i) / p->group_rows;
                for (int w = 0; w < kw; w += 16) {
                    int k = k0 + w * kpw;
                    _mm512_storeu_si512(dst + w, load_words_k_pro(mode, j->A + row + k, kc - w * kpw, p->mean[g],
                                                                  p->rstd[g], p->scale ? p->scale + k : NULL,
                                                                  p->shift ? p->shift + k : NULL));
                }
                continue;
            }
            for (int w = 0; w < kw; w += 16)
                _mm512_storeu_si512(dst + w, load_words_k(mode, elem(j->A, bf, row + kseg_off(k0 + w * kpw, j->kseg, j->sAk)),
                                                          bf, kc - w * kpw));
        }
    } else { /* A stored K x M: rows of A contiguous along a k row. k groups outside, so the
              * block's rows are read one after the other (a gradient's K runs over every
              * token: dy and x stream from memory, and a walk down k per 16 columns left the
              * loads waiting on it, 45% of a 256x64x100352 dW GEMM), the next group's rows
              * fetched while this one is transposed. */
        for (int w0 = 0; w0 < kw; w0 += 16) {
            for (int k = (w0 + 16) * kpw; k < imin(kc, (w0 + 32) * kpw); k++)
                for (int ib = 0; ib < mc; ib += 16)
                    _mm_prefetch((const char *)elem(j->A, bf, (size_t)(k0 + k) * j->lda + i0 + ib), _MM_HINT_T0);
            for (int ib = 0; ib < mcp; ib += 16) {
                __mmask16 cm = mask16(mc - ib);
                int nrow = imin(16, mcp - ib);
                __m512i v[16];
                for (int t = 0; t < 16; t++) {
                    int w = w0 + t, k = w * kpw;
                    if (k >= kc) { v[t] = _mm512_setzero_si512(); continue; }
                    size_t e = (size_t)(k0 + k) * j->lda + i0 + ib;
                    v[t] = load_words_cols(mode, elem(j->A, bf, e),
                                           mode != MODE_F32 && k + 1 < kc ? elem(j->A, bf, e + j->lda) : NULL, bf, cm);
                }
                transpose16(v);
                for (int r = 0; r < nrow; r++) _mm512_storeu_si512(pa + (size_t)(ib + r) * KCW(mode) + w0, v[r]);
            }
        }
        return; /* rows past mc came out of the transposes as zeros */
    }
    for (int i = mc; i < mcp; i++) /* the row-wise packs: pad to whole microkernel rows */
        for (int w = 0; w < kw; w += 16) _mm512_storeu_si512(pa + (size_t)i * KCW(mode) + w, _mm512_setzero_si512());
}

TGT static INL void pack_a(int mode, const Job *j, int i0, int mc, int k0, int kc, uint32_t *pa) {
    if (j->abf) pack_a_as(mode, 1, j, i0, mc, k0, kc, pa);
    else pack_a_as(mode, 0, j, i0, mc, k0, kc, pa);
}

/* Pack op(B)[k0 .. k0+kc, j0 .. j0+nc) into panels of NR columns: word (w, j) of panel p at
 * pb[p * kw * NR + w * NR + j], kw = kwords(); columns past nc and words past kc are zero.
 * bf: B stored as bf16 (see pack_b). */
TGT static INL void pack_b_as(int mode, int bf, const Job *j, int j0, int nc, int k0, int kc, uint32_t *pb) {
    int kpw = KPW(mode);
    int kw = kwords(mode, kc);
    int np = (nc + NR - 1) / NR;
    if (!j->tb) { /* B stored K x N: columns contiguous; k outside, rows read in order (see pack_a) */
        for (int w = 0; w < kw; w++) {
            int k = w * kpw;
            for (int kk = k + 8 * kpw; kk < imin(kc, k + 9 * kpw); kk++)
                for (int jj = 0; jj < nc; jj += bf ? 32 : 16)
                    _mm_prefetch((const char *)elem(j->B, bf, (size_t)(k0 + kk) * j->ldb + j0 + jj), _MM_HINT_T0);
            for (int jj = 0; jj < np * NR; jj += 16) { /* jj: first column of a half panel */
                int ncol = nc - jj;
                __m512i v = _mm512_setzero_si512();
                if (ncol > 0 && k < kc) {
                    size_t e = (size_t)(k0 + k) * j->ldb + j0 + jj;
                    v = load_words_cols(mode, elem(j->B, bf, e),
                                        mode != MODE_F32 && k + 1 < kc ? elem(j->B, bf, e + j->ldb) : NULL, bf,
                                        mask16(ncol));
                }
                _mm512_storeu_si512(pb + (size_t)(jj / NR) * kw * NR + (size_t)w * NR + jj % NR, v);
            }
        }
        return;
    }
    for (int p = 0; p < np; p++) {
        uint32_t *panel = pb + (size_t)p * kw * NR;
        for (int h = 0; h < NR / 16; h++) {
            int jj = p * NR + h * 16; /* first column of this half panel, relative to j0 */
            int ncol = nc - jj;
            for (int w0 = 0; w0 < kw; w0 += 16) { /* B stored N x K: k contiguous per column */
                __m512i v[16];
                for (int t = 0; t < 16; t++)
                    v[t] = t < ncol ? load_words_k(mode,
                                                   elem(j->B, bf,
                                                        (size_t)(j0 + jj + t) * j->ldb +
                                                            kseg_off(k0 + w0 * kpw, j->kseg, j->sBk)),
                                                   bf, kc - w0 * kpw)
                                    : _mm512_setzero_si512();
                transpose16(v);
                int nw = imin(16, kw - w0);
                for (int r = 0; r < nw; r++) _mm512_storeu_si512(panel + (size_t)(w0 + r) * NR + h * 16, v[r]);
            }
        }
    }
}

TGT static INL void pack_b(int mode, const Job *j, int j0, int nc, int k0, int kc, uint32_t *pb) {
    if (j->bbf) pack_b_as(mode, 1, j, j0, nc, k0, kc, pb);
    else pack_b_as(mode, 0, j, j0, nc, k0, kc, pb);
}

/* Fetch a tile's rows of C and of the residual (or NULL). C's rows are ldc apart and, for
 * large outputs, in no cache when the tile is read (beta != 0, every K block after the
 * first) or written: fetched while the K loop runs instead of stalling at the end
 * (6272x2048x512, one thread: fp32 108 -> 153 GFLOP/s, bf16 220 -> 330). The residual the
 * epilogue adds is a block's input, from memory. */
TGT static INL void prefetch_tile(const float *C, const float *res, int ldc, int mr) {
    for (int r = 0; r < mr; r++) {
        _mm_prefetch((const char *)(C + (size_t)r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(C + (size_t)r * ldc + 16), _MM_HINT_T0);
    }
    if (res)
        for (int r = 0; r < mr; r++) {
            _mm_prefetch((const char *)(res + (size_t)r * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(res + (size_t)r * ldc + 16), _MM_HINT_T0);
        }
}

/* One row of a tile out of the accumulators (v0: columns 0-15, v1: 16-31):
 * cr = alpha * v + beta * cr + bias + rb, then GELU when gelu (lanes past nr not stored). */
TGT static INL void out_row(float *cr, __m512 v0, __m512 v1, __mmask16 m0, __mmask16 m1, float alpha, float beta,
                            const float *bias, __m512 bias0, __m512 bias1, const float *rb, int gelu) {
    if (alpha != 1.0f) { /* x * 1 == x */
        __m512 va = _mm512_set1_ps(alpha);
        v0 = _mm512_mul_ps(v0, va), v1 = _mm512_mul_ps(v1, va);
    }
    if (beta != 0.0f) {
        __m512 vb = _mm512_set1_ps(beta);
        v0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, cr), vb, v0);
        v1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, cr + 16), vb, v1);
    }
    if (bias) v0 = _mm512_add_ps(v0, bias0), v1 = _mm512_add_ps(v1, bias1);
    if (rb) {
        __m512 r = _mm512_set1_ps(*rb);
        v0 = _mm512_add_ps(v0, r), v1 = _mm512_add_ps(v1, r);
    }
    if (gelu) v0 = mt_gelu16(v0), v1 = mt_gelu16(v1);
    store16(cr, m0, v0);
    store16(cr + 16, m1, v1);
}

/* The rest of the epilogue over the tile written by out_row (still in L1): a non-register
 * activation, then C = res + scale * C, either term optional. */
TGT static INL void finish_tile(float *C, int ldc, int mr, int nr, __mmask16 m0, __mmask16 m1, const MtEpilogue *ep,
                                int gelu, const float *scale, const float *res) {
    if (ep && ep->act && !gelu) ep->act(C, mr, nr, ldc);
    if (res || scale) {
        __m512 s0 = _mm512_set1_ps(1.0f), s1 = s0;
        if (scale) s0 = _mm512_maskz_loadu_ps(m0, scale), s1 = _mm512_maskz_loadu_ps(m1, scale + 16);
        for (int r = 0; r < mr; r++) {
            float *cr = C + (size_t)r * ldc;
            __m512 v0 = _mm512_maskz_loadu_ps(m0, cr), v1 = _mm512_maskz_loadu_ps(m1, cr + 16);
            if (res) {
                const float *rr = res + (size_t)r * ldc;
                v0 = _mm512_fmadd_ps(s0, v0, _mm512_maskz_loadu_ps(m0, rr));
                v1 = _mm512_fmadd_ps(s1, v1, _mm512_maskz_loadu_ps(m1, rr + 16));
            } else {
                v0 = _mm512_mul_ps(s0, v0), v1 = _mm512_mul_ps(s1, v1);
            }
            store16(cr, m0, v0);
            store16(cr + 16, m1, v1);
        }
    }
}

/* C[0..mr, 0..nr) = alpha * (A panel @ B panel) + beta * C (beta == 0: C not read).
 * ep (only on the last K block): then C = res + scale[col] * act(C + bias[col] + rbias[row]),
 * bias, scale, rbias and res already offset to this tile; the tile is still in L1 when act
 * and the residual run over it. */
TGT static INL void ukernel(int mode, int kw, const uint32_t *pa, const uint32_t *pb, float *C, int ldc, int mr,
                            int nr, float alpha, float beta, const MtEpilogue *ep, int gelu, const float *bias,
                            const float *rbias, const float *scale, const float *res) {
    __m512 c[MR][2];
    for (int r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    prefetch_tile(C, res, ldc, mr);
    if (mode == MODE_BF16) {
        for (int w = 0; w < kw; w++) {
            __m512bh b0 = (__m512bh)_mm512_loadu_si512(pb), b1 = (__m512bh)_mm512_loadu_si512(pb + 16);
            pb += NR;
            for (int r = 0; r < MR; r++) {
                __m512bh a = (__m512bh)_mm512_set1_epi32((int)pa[r * KCW_BF16 + w]);
                c[r][0] = _mm512_dpbf16_ps(c[r][0], a, b0);
                c[r][1] = _mm512_dpbf16_ps(c[r][1], a, b1);
            }
        }
    } else {
        const float *pf = (const float *)pa;
        for (int w = 0; w < kw; w++) {
            __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 16);
            pb += NR;
            for (int r = 0; r < MR; r++) {
                __m512 a = _mm512_set1_ps(pf[r * KCW_F32 + w]);
                c[r][0] = _mm512_fmadd_ps(a, b0, c[r][0]);
                c[r][1] = _mm512_fmadd_ps(a, b1, c[r][1]);
            }
        }
    }
    __mmask16 m0 = mask16(nr), m1 = mask16(nr - 16);
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias) bias0 = _mm512_maskz_loadu_ps(m0, bias), bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    for (int r = 0; r < MR; r++) {
        if (r >= mr) break;
        out_row(C + (size_t)r * ldc, c[r][0], c[r][1], m0, m1, alpha, beta, bias, bias0, bias1,
                rbias ? rbias + r : NULL, gelu);
    }
    finish_tile(C, ldc, mr, nr, m0, m1, ep, gelu, scale, res);
}

/* The AMX microkernel: the same contract as ukernel for a 32 x 32 tile of C (mr <= 32 rows
 * valid; pa holds 32 rows, padded with zeros). Four accumulator tiles (tmm0-3: rows 0-15 /
 * 16-31 x columns 0-15 / 16-31), two A tiles (tmm4-5: 16 rows x 16 words, rows KCW_BF16
 * words apart) and two B tiles (tmm6-7: 16 words x 16 columns of the panel, NR words apart,
 * already in the pair-interleaved layout tdpbf16ps multiplies). kw is a multiple of 16.
 * The tile configuration is loaded by the caller (amx_config). The accumulators go through
 * a 4 KB buffer in L1 to the epilogue. */
TGT static INL void ukernel_amx(int kw, const uint32_t *pa, const uint32_t *pb, float *C, int ldc, int mr, int nr,
                                    float alpha, float beta, const MtEpilogue *ep, int gelu, const float *bias,
                                    const float *rbias, const float *scale, const float *res) {
    prefetch_tile(C, res, ldc, mr);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int w = 0; w < kw; w += 16) {
        _tile_loadd(4, pa + w, KCW_BF16 * 4);
        _tile_loadd(6, pb + (size_t)w * NR, NR * 4);
        _tile_loadd(7, pb + (size_t)w * NR + 16, NR * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, pa + 16 * KCW_BF16 + w, KCW_BF16 * 4);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    float acc[MR_AMX * NR] __attribute__((aligned(64)));
    _tile_stored(0, acc, NR * 4);
    _tile_stored(1, acc + 16, NR * 4);
    _tile_stored(2, acc + 16 * NR, NR * 4);
    _tile_stored(3, acc + 16 * NR + 16, NR * 4);
    __mmask16 m0 = mask16(nr), m1 = mask16(nr - 16);
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias) bias0 = _mm512_maskz_loadu_ps(m0, bias), bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    for (int r = 0; r < mr; r++)
        out_row(C + (size_t)r * ldc, _mm512_load_ps(acc + r * NR), _mm512_load_ps(acc + r * NR + 16), m0, m1, alpha,
                beta, bias, bias0, bias1, rbias ? rbias + r : NULL, gelu);
    finish_tile(C, ldc, mr, nr, m0, m1, ep, gelu, scale, res);
}

/* The AMX tile shapes (palette 1): every tile 16 rows x 64 bytes. Per thread: each thread
 * that runs ukernel_amx loads it first (cheap next to a block of rows). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} AmxConfig;
TGT static void amx_config(void) {
    AmxConfig c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) c.colsb[t] = 64, c.rows[t] = 16;
    _tile_loadconfig(&c);
}

/* Row blocks of one (jc, pc) phase: a static range, or (sc != NULL) shared by work
 * stealing. Thread t owns the contiguous range of blocks [lo, hi) packed into ranges[t]
 * (lo in the low 32 bits); it takes blocks from the front, and once its range is empty it
 * takes them from the back of the others' ranges. The common case keeps the static split's
 * long sequential streams (an interleaved split measured 8-15% slower on 100352-row GEMMs),
 * and a thread slowed down by another process on a shared machine, or by a heavier
 * epilogue, does not hold the others back at the end. */
typedef struct {
    uint64_t *ranges; /* [phase * T + t] */
    int T;
} Sched;

static INL uint64_t pack_range(uint32_t lo, uint32_t hi) { return (uint64_t)hi << 32 | lo; }

/* Next block for thread t in this phase, or -1 when every range is empty. */
static INL int claim(const Sched *sc, int phase, int t) {
    for (int v = 0; v < sc->T; v++) {
        uint64_t *r = &sc->ranges[(size_t)phase * sc->T + (t + v) % sc->T];
        uint64_t cur = __atomic_load_n(r, __ATOMIC_RELAXED);
        for (;;) {
            uint32_t lo = (uint32_t)cur, hi = (uint32_t)(cur >> 32);
            if (lo >= hi) break;
            uint64_t want = v == 0 ? pack_range(lo + 1, hi) : pack_range(lo, hi - 1);
            if (__atomic_compare_exchange_n(r, &cur, want, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                return v == 0 ? (int)lo : (int)hi - 1;
        }
    }
    return -1;
}

/* Rows per block for m rows: balanced blocks of at most MC, a multiple of MR. */
static INL int row_step(int mode, int m) {
    int nic = (m + MCM(mode) - 1) / MCM(mode);
    return roundup((m + nic - 1) / nic, MRM(mode));
}

/* The epilogue's activation backward over a finished block of C (still in L2): C *= act'(P +
 * pre_bias) row by row, column sums into this thread's partials. A block, not a tile: P is
 * read in long runs the hardware prefetchers follow (32-float pieces of rows ldc apart were
 * latency-bound: dh of 100352 x 256 x 64 on one thread took 110 ms, the GEMM and a
 * separate pass 18 + 30). */
static INL void act_grad_block(const MtEpilogue *ep, float *C, int ldc, const float *P, int col, int rows, int cols) {
    const float *pb = ep->pre_bias ? ep->pre_bias + col : NULL;
    double *cs = ep->colsum ? ep->colsum + (size_t)omp_get_thread_num() * ep->colsum_stride + col : NULL;
    for (int r = 0; r < rows; r++)
        ep->dact(C + (size_t)r * ldc, C + (size_t)r * ldc, P + (size_t)r * ldc, pb, cs, cols, 0);
}

/* One NR-column panel of a block of mc rows starting at row ic: microkernel tiles down the
 * rows. C and R (residual, or NULL) point at the block's first row and the panel's first
 * column col; ep (NULL before the last K block) is offset to the tile. */
TGT static INL void panel(int mode, const Job *j, int kw, const uint32_t *pa, const uint32_t *bp, float *C, int ldc,
                          const float *R, int ic, int mc, int col, int nr, float beta, const MtEpilogue *ep) {
    for (int ir = 0; ir < mc; ir += MRM(mode)) {
        const uint32_t *a = pa + (size_t)ir * KCW(mode);
        float *c = C + (size_t)ir * ldc;
        int mr = imin(MRM(mode), mc - ir), gelu = ep && j->gelu;
        const float *bias = ep && ep->bias ? ep->bias + col : NULL;
        const float *rbias = ep && ep->row_bias ? ep->row_bias + ic + ir : NULL;
        const float *scale = ep && ep->col_scale ? ep->col_scale + col : NULL;
        const float *res = ep && R ? R + (size_t)ir * ldc : NULL;
        if (mode == MODE_AMX)
            ukernel_amx(kw, a, bp, c, ldc, mr, nr, j->alpha, beta, ep, gelu, bias, rbias, scale, res);
        else
            ukernel(mode, kw, a, bp, c, ldc, mr, nr, j->alpha, beta, ep, gelu, bias, rbias, scale, res);
    }
}

/* A block of C, mc rows from row ic x nc columns from column col, from the packed A block pa
 * and B block pb (panels of kw words x NR); C and R (or NULL) point at the block's corner. The
 * AVX-512 kernels go panel by panel, each down all the rows (the 12-row A slices stream from
 * L2, the panel stays in L1); the AMX kernel goes row tile by row tile, each across all the
 * panels: its 32-row A slice stays in L1 and B streams in order (one thread, 1.1-2x on the
 * wide GEMMs: 6272 x 1280 x 320 240 -> 480 GFLOP/s per CPU-second, 6272 x 2048 x 512 210 ->
 * 300; no change where N is 64-128). */
TGT static INL void block_tiles(int mode, const Job *j, int kw, const uint32_t *pa, const uint32_t *pb, float *C,
                                int ldc, const float *R, int ic, int mc, int col, int nc, float beta,
                                const MtEpilogue *ep) {
    int rows = mode == MODE_AMX ? MR_AMX : mc;
    for (int ir = 0; ir < mc; ir += rows)
        for (int jr = 0; jr < nc; jr += NR) {
            size_t at = (size_t)ir * ldc + jr;
            panel(mode, j, kw, pa + (size_t)ir * KCW(mode), pb + (size_t)(jr / NR) * kw * NR, C + at, ldc,
                  R ? R + at : NULL, ic + ir, imin(rows, mc - ir), col + jr, imin(NR, nc - jr), beta, ep);
        }
}

/* One thread's rectangle of C: rows [m0, m1), columns [n0, n1). With a shared schedule all
 * threads call this for the whole of C, each packs B per phase, claims row blocks, and
 * waits for the others before the next K block accumulates onto the same rows. */
TGT static INL void run_block(int mode, const Job *j, int m0, int m1, int n0, int n1, uint32_t *pa, uint32_t *pb,
                              const Sched *sc) {
    int kpw = KPW(mode), kc_max = KCW(mode) * kpw;
    int mc_step = row_step(mode, m1 - m0), nblk = (m1 - m0 + mc_step - 1) / mc_step, phase = 0;
    if (mode == MODE_AMX) amx_config();
    for (int jc = n0; jc < n1; jc += NC(mode)) {
        int nc = imin(NC(mode), n1 - jc);
        for (int pc = j->k0; pc < j->k1; pc += kc_max, phase++) {
            int kc = imin(kc_max, j->k1 - pc), kw = kwords(mode, kc);
            float beta = pc == j->k0 ? j->beta : 1.0f;
            const MtEpilogue *ep = pc + kc >= j->k1 ? j->ep : NULL;
            pack_b(mode, j, jc, nc, pc, kc, pb);
            if (sc && pc > j->k0) { /* every row's previous K block must be in C first */
#pragma omp barrier
            }
            int t = sc ? omp_get_thread_num() : 0;
            for (int b = sc ? claim(sc, phase, t) : 0; b >= 0 && b < nblk; b = sc ? claim(sc, phase, t) : b + 1) {
                int ic = m0 + b * mc_step, mc = imin(mc_step, m1 - ic);
                pack_a(mode, j, ic, mc, pc, kc, pa);
                size_t at = (size_t)ic * j->ldc + jc;
                block_tiles(mode, j, kw, pa, pb, j->C + at, j->ldc, j->R ? j->R + at : NULL, ic, mc, jc, nc, beta, ep);
                if (ep && ep->dact) act_grad_block(ep, j->C + at, j->ldc, j->P + at, jc, mc, nc);
            }
        }
    }
}

TGT static void run_block_amx(const Job *j, int m0, int m1, int n0, int n1, uint32_t *pa, uint32_t *pb,
                              const Sched *sc) {
    run_block(MODE_AMX, j, m0, m1, n0, n1, pa, pb, sc);
}
TGT static void run_block_bf16(const Job *j, int m0, int m1, int n0, int n1, uint32_t *pa, uint32_t *pb,
                               const Sched *sc) {
    run_block(MODE_BF16, j, m0, m1, n0, n1, pa, pb, sc);
}
TGT static void run_block_f32(const Job *j, int m0, int m1, int n0, int n1, uint32_t *pa, uint32_t *pb,
                              const Sched *sc) {
    run_block(MODE_F32, j, m0, m1, n0, n1, pa, pb, sc);
}

/* 1 when the CPU has AMX-BF16 and the OS lets this process use the tile registers (Linux
 * hands out the 8 KB of tile state only on request: arch_prctl(ARCH_REQ_XCOMP_PERM,
 * XFEATURE_XTILEDATA), asked once). */
int mt_gemm_avx512_amx_ok(void) {
    static int cached = -1;
    if (cached < 0) {
        unsigned a, b, c, d;
        cached = 0;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1) && (d >> 24 & 1)) /* AMX-BF16, AMX-TILE */
            cached = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    }
    return cached;
}

/* 1 when the epilogue's activation is GELU and the kernel can apply it in registers. */
static int tile_gelu(const MtEpilogue *ep) { return ep && ep->act == mt_gelu_tile && mt_gelu_vector(); }

/* Threads for a call of `work` multiply-adds: OpenMP's, capped, one below 3e5 (waking the team
 * costs more). */
static int team_size(double work) {
    int T = omp_get_max_threads();
    if (T > MAXT) T = MAXT;
    return work < 300000.0 ? 1 : T;
}

/* Per-thread packing buffers (A block and B block), allocated on first use and kept (the
 * pool is reachable from a global, so leak checkers stay quiet). Returns 0 when out of memory. */
static int pool_get(int T) {
    for (int t = 0; t < T; t++) {
        if (!g_pool[t].a) g_pool[t].a = aligned_alloc(64, (size_t)MC * KCW_MAX * sizeof(uint32_t));
        if (!g_pool[t].b) g_pool[t].b = aligned_alloc(64, (size_t)NC_MAX * KCW_BF16 * sizeof(uint32_t)); /* 1 MB in either mode */
        if (!g_pool[t].a || !g_pool[t].b) return 0;
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
    if (j->mode == MODE_AMX) run_block_amx(j, m0, m1, n0, n1, g_pool[t].a, g_pool[t].b, sc);
    else if (j->mode == MODE_BF16) run_block_bf16(j, m0, m1, n0, n1, g_pool[t].a, g_pool[t].b, sc);
    else run_block_f32(j, m0, m1, n0, n1, g_pool[t].a, g_pool[t].b, sc);
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

static void run_ksplit(const Job *j, int T) {
    int M = j->M, N = j->N;
#pragma omp parallel num_threads(T)
    { /* the team may be smaller than asked: shares go by its actual size */
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        Job jt = *j;
        /* equal shares of K, cut at multiples of 32 (whole vectors, and k pairs for bf16) */
        jt.k0 = imin(j->K, roundup((int)((long)j->K * t / nt), 32));
        jt.k1 = imin(j->K, roundup((int)((long)j->K * (t + 1) / nt), 32));
        jt.beta = 0.0f, jt.C = g_part[t], jt.ldc = N;
        if (jt.k0 < jt.k1) run_one(&jt, 0, M, 0, N, t, NULL);
        else memset(g_part[t], 0, (size_t)M * N * sizeof(float));
#pragma omp barrier
        for (int i = M * t / nt; i < M * (t + 1) / nt; i++) {
            float *c = j->C + (size_t)i * j->ldc;
            const float *p0 = g_part[0] + (size_t)i * N;
            for (int n = 0; n < N; n++) {
                float v = p0[n];
                for (int u = 1; u < nt; u++) v += g_part[u][(size_t)i * N + n];
                c[n] = j->beta == 0.0f ? v : v + j->beta * c[n];
            }
        }
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
    int T = team_size(work * batch);
    if (!pool_get(T)) return -1;
    if (batch >= T && (batch >= 2 * T || work < 4e7)) { /* whole GEMMs per thread */
        if (T == 1) {
            for (int i = 0; i < batch; i++) {
                Job ji = job_entry(&j, i, sA, sB, sC);
                run_one(&ji, 0, M, 0, N, 0, NULL);
            }
            return 0;
        }
        if (fixed) {
#pragma omp parallel for num_threads(T) schedule(static, 1)
            for (int i = 0; i < batch; i++) {
                Job ji = job_entry(&j, i, sA, sB, sC);
                run_one(&ji, 0, M, 0, N, omp_get_thread_num(), NULL);
            }
            return 0;
        }
#pragma omp parallel for num_threads(T) schedule(dynamic, 1)
        for (int i = 0; i < batch; i++) {
            Job ji = job_entry(&j, i, sA, sB, sC);
            run_one(&ji, 0, M, 0, N, omp_get_thread_num(), NULL);
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
    uint64_t ranges[256];
    for (int i = 0; i < batch; i++) {
        Job ji = job_entry(&j, i, sA, sB, sC);
        if (T == 1) {
            run_one(&ji, 0, M, 0, N, 0, NULL);
            continue;
        }
        if (dyn) {
            int nblk = (M + row_step(mode, M) - 1) / row_step(mode, M);
            for (int p = 0; p < nphase; p++)
                for (int t = 0; t < T; t++) ranges[p * T + t] = pack_range(nblk * t / T, nblk * (t + 1) / T);
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

int mt_gemm_avx512_run(int mode, int types, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                       int lda, long sA, const float *B, int ldb, long sB, float beta, float *C, int ldc, long sC,
                       int batch, const MtPrologue *pro, const MtGatherA *ga, const MtEpilogue *ep) {
    if ((pro || ga) && ta) return -1; /* the prologue and the gather run in the row-wise packing only */
    if (pro && (types & MT_A_BF16)) return -1; /* the prologue reads fp32 rows */
    if (ep && ep->dact && !ep->pre) return -1;
    Job j = {mode, ta, tb, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, pro, ga, ep, NULL, tile_gelu(ep), NULL, 0, K, 0, 0, 0,
             !!(types & MT_A_BF16), !!(types & MT_B_BF16)};
    return run_jobs(&j, batch, sA, sB, sC);
}

/* C = alpha sum_i A_i B_i^T + beta C (A_i M x K, B_i N x K, both k-contiguous) as one GEMM
 * over K' = batch x K whose packing walks the entries (Job.kseg): the batch is never laid
 * out along K in memory. K must be a multiple of 32; -1 (C untouched) otherwise or when
 * buffers cannot be allocated. */
int mt_gemm_avx512_sum_nt(int mode, int types, int M, int N, int K, float alpha, const float *A, int lda, long sA,
                          const float *B, int ldb, long sB, float beta, float *C, int ldc, int batch) {
    if (K % 32 || (long)K * batch > 0x7fffffffL) return -1;
    Job j = {mode, 0, 1, M, N, K * batch, alpha, beta, A, B, C, lda, ldb, ldc, NULL, NULL, NULL, NULL, 0, NULL,
             0, K * batch, K, sA, sB, !!(types & MT_A_BF16), !!(types & MT_B_BF16)};
    return run_jobs(&j, 1, 0, 0, 0);
}

/* ---- two chained GEMMs: an MLP at inference ----
 * H = ep1(pro(A) @ B1^T) and C = ep2(H @ B2^T), row block by row block: both weights are
 * packed once into one buffer the threads share (each packs some panels), then a thread, per
 * block of rows, packs A and, per chunk of at most one K block of H's columns, writes that
 * chunk of H into its own buffer (L2) and accumulates the second GEMM from there, so H never
 * goes to memory (stage 1 of poolformer_s12: 100352 x 256 floats, 103 MB written and read
 * back per block otherwise). K is one K block and the chunks are the
 * second GEMM's K blocks, so every value is the one the two separate GEMMs give. */

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

int mt_gemm_avx512_chain_fits(int mode, int K, int N1, int N2) {
    return chain_words(mode, K, N1, N2) > 0;
}

/* Thread t of nt's share of the chain: its panels of the weights packed into the shared pw
 * (B2 per chunk), a barrier, then row blocks claimed from sc. fp32: H is written straight in
 * the packed-A layout (rows KCW_F32 apart) and is the second GEMM's A as it stands; bf16: H
 * in fp32, then packed to bf16 words (hb). */
TGT static INL void chain_run(int mode, const Job *j1, const Job *j2, uint32_t *pa, float *h, uint32_t *hb,
                              uint32_t *pw, const Sched *sc, int t, int nt) {
    int kpw = KPW(mode), hcm = KCW(mode) * kpw, K = j1->K, N1 = j1->N, N2 = j2->N, M = j1->M;
    int kw1 = kwords(mode, K);
    if (mode == MODE_AMX) amx_config();
    uint32_t *pb2 = pw + (size_t)roundup(N1, NR) * kw1;
    int np1 = (N1 + NR - 1) / NR, np2 = (N2 + NR - 1) / NR;
    for (int p = t; p < np1; p += nt) /* the threads pack the shared weights panel by panel */
        pack_b(mode, j1, p * NR, imin(NR, N1 - p * NR), 0, K, pw + (size_t)p * kw1 * NR);
    for (int h0 = 0; h0 < N1; h0 += hcm) {
        int hc = imin(hcm, N1 - h0), kwc = kwords(mode, hc);
        uint32_t *b2 = pb2 + (size_t)roundup(N2, NR) * (h0 / kpw);
        for (int p = t; p < np2; p += nt) pack_b(mode, j2, p * NR, imin(NR, N2 - p * NR), h0, hc, b2 + (size_t)p * kwc * NR);
    }
#pragma omp barrier
    int step = row_step(mode, M);
    for (int b = claim(sc, 0, t); b >= 0; b = claim(sc, 0, t)) {
        int ic = b * step, mc = imin(step, M - ic);
        pack_a(mode, j1, ic, mc, 0, K, pa);
        for (int h0 = 0; h0 < N1; h0 += hcm) {
            int hc = imin(hcm, N1 - h0), kwc = kwords(mode, hc), last = h0 + hc >= N1;
            block_tiles(mode, j1, kw1, pa, pw + (size_t)(h0 / NR) * kw1 * NR, h, KCW_F32, NULL, ic, mc, h0, hc, 0.0f,
                        j1->ep);
            const uint32_t *ha = (const uint32_t *)h;
            if (mode != MODE_F32) {
                Job jh = *j2;
                jh.A = h;
                pack_a(mode, &jh, 0, mc, 0, hc, hb);
                ha = hb;
            } else {
                for (int i = mc; i < roundup(mc, MR); i++) memset(h + (size_t)i * KCW_F32, 0, (size_t)hc * sizeof(float));
            }
            const uint32_t *b2 = pb2 + (size_t)roundup(N2, NR) * (h0 / kpw);
            size_t at = (size_t)ic * j2->ldc;
            block_tiles(mode, j2, kwc, ha, b2, j2->C + at, j2->ldc, j2->R ? j2->R + at : NULL, ic, mc, 0, N2,
                        h0 ? 1.0f : 0.0f, last ? j2->ep : NULL);
        }
    }
}

TGT static void chain_f32(const Job *j1, const Job *j2, int t, int nt, const Sched *sc) {
    chain_run(MODE_F32, j1, j2, g_pool[t].a, g_hbuf[t], NULL, g_wbuf, sc, t, nt);
}
TGT static void chain_bf16(const Job *j1, const Job *j2, int t, int nt, const Sched *sc) {
    chain_run(MODE_BF16, j1, j2, g_pool[t].a, g_hbuf[t], (uint32_t *)(g_hbuf[t] + (size_t)MC * KCW_F32), g_wbuf, sc, t,
              nt);
}
TGT static void chain_amx(const Job *j1, const Job *j2, int t, int nt, const Sched *sc) {
    chain_run(MODE_AMX, j1, j2, g_pool[t].a, g_hbuf[t], (uint32_t *)(g_hbuf[t] + (size_t)MC * KCW_F32), g_wbuf, sc, t,
              nt);
}

/* See mt_gemm_chain (core/gemm.h). Returns -1 (nothing written) when the sizes do not fit
 * or buffers cannot be allocated. */
int mt_gemm_avx512_chain(int mode, int M, int K, int N1, int N2, const float *A, int lda, const MtPrologue *pro,
                         const float *B1, const MtEpilogue *ep1, const float *B2, float *C, int ldc,
                         const MtEpilogue *ep2) {
    size_t words = chain_words(mode, K, N1, N2);
    if (M <= 0 || K <= 0 || N1 <= 0 || N2 <= 0 || !words || (ep1 && (ep1->residual || ep1->dact)) ||
        (ep2 && ep2->dact))
        return -1;
    Job j1 = {mode, 0, 1, M, N1, K, 1.0f, 0.0f, A, B1, NULL, lda, K, KCW_F32, pro, NULL, ep1, NULL, tile_gelu(ep1), NULL,
              0, K, 0, 0, 0, 0, 0};
    Job j2 = {mode, 0, 1, M, N2, N1, 1.0f, 0.0f, NULL, B2, C, KCW_F32, N1, ldc, NULL, NULL, ep2,
              ep2 ? ep2->residual : NULL, tile_gelu(ep2), NULL, 0, N1, 0, 0, 0, 0, 0};
    int T = team_size((double)M * N1 * (K + N2));
    int step = row_step(mode, M), nblk = (M + step - 1) / step;
    if (T > nblk) T = nblk;
    if (!pool_get(T)) return -1;
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
    uint64_t ranges[MAXT];
    for (int t = 0; t < T; t++) ranges[t] = pack_range(nblk * t / T, nblk * (t + 1) / T);
    Sched sc = {ranges, T};
#pragma omp parallel num_threads(T)
    { /* the team may be smaller than asked: panels go by the actual size, row blocks are stolen */
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        if (mode == MODE_AMX) chain_amx(&j1, &j2, t, nt, &sc);
        else if (mode == MODE_BF16) chain_bf16(&j1, &j2, t, nt, &sc);
        else chain_f32(&j1, &j2, t, nt, &sc);
    }
    return 0;
}
