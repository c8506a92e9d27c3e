/* The own fp32 GEMM microkernel (AVX-512 FMA): a 12 x 32 tile of C in 24 zmm accumulators,
 * per word of K one broadcast of each of the 12 packed A rows (fixed displacements KCW_F32
 * apart) against two vectors of the packed B panel. With its tile loop (core/gemm_kernel.h),
 * called by the driver (core/gemm_sched.c) once per block. */
#include "core/gemm_kernel.h"

TGT static INL void ukernel(int rows, int kw, const uint32_t *pa, const uint32_t *pb, float *C, int ldc, int mr, int nr,
                            float alpha, float beta, const MtEpilogue *ep, int gelu, const float *bias,
                            const float *rbias, const float *scale, const float *res) {
    __m512 c[MR][2];
    for (int r = 0; r < rows; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    prefetch_tile(C, res, ldc, mr);
    const float *pf = (const float *)pa;
    for (int w = 0; w < kw; w++) {
        __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 16);
        pb += NR;
        for (int r = 0; r < rows; r++) {
            __m512 a = _mm512_set1_ps(pf[r * KCW_F32 + w]);
            c[r][0] = _mm512_fmadd_ps(a, b0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(a, b1, c[r][1]);
        }
    }
    tile_out(c, C, ldc, mr, nr, alpha, beta, ep, gelu, bias, rbias, scale, res);
}

TGT void mt_gemm_tiles_f32(const Job *j, int kw, const uint32_t *pa, const uint32_t *pb, float *C, int ldc,
                           const float *R, int ic, int mc, int col, int nc, float beta, const MtEpilogue *ep) {
    block_tiles(MODE_F32, j, kw, pa, pb, C, ldc, R, ic, mc, col, nc, beta, ep);
}
