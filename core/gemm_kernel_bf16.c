/* The own bf16 GEMM microkernel (AVX512-BF16): a 12 x 32 tile of C in 24 zmm fp32
 * accumulators; per word of K (a pair of bf16 k values) one 32-bit broadcast of each of the
 * 12 packed A rows (KCW_BF16 words apart) against two vectors of the packed B panel, multiplied
 * pairwise and added by vdpbf16ps. With its tile loop (core/gemm_kernel.h), called by the
 * driver (core/gemm_sched.c) once per block. */
#include "core/gemm_kernel.h"

TGT static INL void ukernel(int rows, int kw, const uint32_t *pa, const uint32_t *pb, float *C, int ldc, int mr, int nr,
                            float alpha, float beta, const MtEpilogue *ep, int gelu, const float *bias,
                            const float *rbias, const float *scale, const float *res) {
    __m512 c[MR][2];
    for (int r = 0; r < rows; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    prefetch_tile(C, res, ldc, mr);
    for (int w = 0; w < kw; w++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(pb), b1 = (__m512bh)_mm512_loadu_si512(pb + 16);
        pb += NR;
        for (int r = 0; r < rows; r++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)pa[r * KCW_BF16 + w]);
            c[r][0] = _mm512_dpbf16_ps(c[r][0], a, b0);
            c[r][1] = _mm512_dpbf16_ps(c[r][1], a, b1);
        }
    }
    tile_out(c, C, ldc, mr, nr, alpha, beta, ep, gelu, bias, rbias, scale, res);
}

TGT void mt_gemm_tiles_bf16(const Job *j, int kw, const uint32_t *pa, const uint32_t *pb, float *C, int ldc,
                            const float *R, int ic, int mc, int col, int nc, float beta, const MtEpilogue *ep) {
    block_tiles(MODE_BF16, j, kw, pa, pb, C, ldc, R, ic, mc, col, nc, beta, ep);
}
