/* Packing of the own GEMM kernels (layout: core/gemm_internal.h): op(A) into blocks of rows
 * and op(B) into panels of NR columns, as 32-bit words, from fp32 or bf16 operands in any
 * transpose. Rounding fp32 -> bf16 happens here (vcvtne2ps2bf16: round-to-nearest-even, NaN
 * stays NaN, denormals flush to zero). Edges (M, N, odd K) are zero-padded, so the kernels
 * take any M, N, K, lda, ldb. Packing A may normalise its rows on the way (MtPrologue) or
 * take them from a row function instead of a matrix (MtGatherA, the convolution's implicit
 * im2col). One instance per kernel mode, the mode a constant inside. */
#include "core/gemm_internal.h"
#include <immintrin.h>
#include <stdint.h>

/* pack_a fetches the row PFA rows ahead: the packing loop otherwise waits on each row of A
 * (rows are lda apart, one K block of each; 2-7% on the models' MLP GEMMs). */
#define PFA 2
/* The transposed pack_b fetches each column's k run PFB groups of 16 words ahead (the token-
 * mixing weight gradients, whose columns are short rows of many samples: 5-8% from memory). */
#define PFB 2

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
                int kn = (w0 + 16 * PFB) * kpw; /* fetch the columns' k run PFB groups ahead */
                if (kn < kc)
                    for (int t = 0; t < imin(16, ncol); t++) {
                        const char *q = elem(j->B, bf, (size_t)(j0 + jj + t) * j->ldb + kseg_off(k0 + kn, j->kseg, j->sBk));
                        _mm_prefetch(q, _MM_HINT_T0);
                        if (!bf && mode != MODE_F32) _mm_prefetch(q + 64, _MM_HINT_T0);
                    }
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

TGT static void pack_a_f32(const Job *j, int i0, int mc, int k0, int kc, uint32_t *pa) {
    pack_a(MODE_F32, j, i0, mc, k0, kc, pa);
}
TGT static void pack_a_bf16(const Job *j, int i0, int mc, int k0, int kc, uint32_t *pa) {
    pack_a(MODE_BF16, j, i0, mc, k0, kc, pa);
}
TGT static void pack_a_amx(const Job *j, int i0, int mc, int k0, int kc, uint32_t *pa) {
    pack_a(MODE_AMX, j, i0, mc, k0, kc, pa);
}
TGT static void pack_b_f32(const Job *j, int j0, int nc, int k0, int kc, uint32_t *pb) {
    pack_b(MODE_F32, j, j0, nc, k0, kc, pb);
}
TGT static void pack_b_bf16(const Job *j, int j0, int nc, int k0, int kc, uint32_t *pb) {
    pack_b(MODE_BF16, j, j0, nc, k0, kc, pb);
}
TGT static void pack_b_amx(const Job *j, int j0, int nc, int k0, int kc, uint32_t *pb) {
    pack_b(MODE_AMX, j, j0, nc, k0, kc, pb);
}

void mt_gemm_pack_a(int mode, const Job *j, int i0, int mc, int k0, int kc, uint32_t *pa) {
    if (mode == MODE_AMX) pack_a_amx(j, i0, mc, k0, kc, pa);
    else if (mode == MODE_BF16) pack_a_bf16(j, i0, mc, k0, kc, pa);
    else pack_a_f32(j, i0, mc, k0, kc, pa);
}

void mt_gemm_pack_b(int mode, const Job *j, int j0, int nc, int k0, int kc, uint32_t *pb) {
    if (mode == MODE_AMX) pack_b_amx(j, j0, nc, k0, kc, pb);
    else if (mode == MODE_BF16) pack_b_bf16(j, j0, nc, k0, kc, pb);
    else pack_b_f32(j, j0, nc, k0, kc, pb);
}
