/* The tile loop and the tile epilogue the three microkernels share (gemm_kernel_fp32.c,
 * gemm_kernel_bf16.c, gemm_kernel_amx.c), included by those files only. Each defines
 * ukernel(), the microkernel of its mode, and instantiates block_tiles() with the mode as a
 * constant, so the microkernel is inlined into the loop that calls it. C is written with
 * masked stores at the edges, so any M, N, ldc work. */
#pragma once
#include "core/act_gelu_avx512.h"
#include "core/gemm_internal.h"
#include <immintrin.h>

/* C[0..mr, 0..nr) = alpha * (A panel @ B panel) + beta * C (beta == 0: C not read); the
 * AVX-512 kernels multiply `rows` (a constant, >= mr) of the panel's MR rows, the AMX one all.
 * ep (only on the last K block): then C = res + scale[col] * act(C + bias[col] + rbias[row]),
 * bias, scale, rbias and res already offset to this tile; the tile is still in L1 when act
 * and the residual run over it. pa holds MRM(mode) rows (zero-padded), pb one panel. */
TGT static INL void ukernel(int rows, int kw, const uint32_t *pa, const uint32_t *pb, float *C, int ldc, int mr, int nr,
                            float alpha, float beta, const MtEpilogue *ep, int gelu, const float *bias,
                            const float *rbias, const float *scale, const float *res);

/* Masked stores cost more than plain ones on some CPUs even with an all-ones mask (AMD Zen 5:
 * GEMMs 1-12% faster with plain stores for full vectors, the GELU-gradient rows ~1.5x), so
 * full vectors take the plain store. */
TGT static INL void store16(float *p, __mmask16 m, __m512 v) {
    if (m == (__mmask16)0xffff) _mm512_storeu_ps(p, v);
    else _mm512_mask_storeu_ps(p, m, v);
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


/* The epilogue of a 12 x 32 tile held in registers (c[r][0]: columns 0-15 of row r, c[r][1]:
 * 16-31): out_row per valid row, then finish_tile. */
TGT static INL void tile_out(__m512 c[MR][2], float *C, int ldc, int mr, int nr, float alpha, float beta,
                             const MtEpilogue *ep, int gelu, const float *bias, const float *rbias,
                             const float *scale, const float *res) {
    __mmask16 m0 = mask16(nr), m1 = mask16(nr - 16);
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias) bias0 = _mm512_maskz_loadu_ps(m0, bias), bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    /* unrolled, so c[][] stays in registers (a loop over r indexes it on the stack: 24 spills
     * per tile, K = 64 GEMMs 13% slower) */
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        if (r >= mr) break;
        out_row(C + (size_t)r * ldc, c[r][0], c[r][1], m0, m1, alpha, beta, bias, bias0, bias1,
                rbias ? rbias + r : NULL, gelu);
    }
    finish_tile(C, ldc, mr, nr, m0, m1, ep, gelu, scale, res);
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
        /* a block's last rows (token mixing: M = 49 or 64, 12-row tiles) multiply 4 or 8 rows,
         * not 12 with zeros */
        if (mode != MODE_AMX && mr <= 4)
            ukernel(4, kw, a, bp, c, ldc, mr, nr, j->alpha, beta, ep, gelu, bias, rbias, scale, res);
        else if (mode != MODE_AMX && mr <= 8)
            ukernel(8, kw, a, bp, c, ldc, mr, nr, j->alpha, beta, ep, gelu, bias, rbias, scale, res);
        else
            ukernel(MRM(mode), kw, a, bp, c, ldc, mr, nr, j->alpha, beta, ep, gelu, bias, rbias, scale, res);
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

