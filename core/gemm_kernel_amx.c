/* The own bf16 GEMM microkernel on AMX tiles (tdpbf16ps), the packing and blocking of the
 * AVX512-BF16 kernel with a 32 x 32 tile of C, and the tile setup: what the CPU and the OS
 * must grant before MODE_AMX is chosen, and the tile shapes each thread loads. */
#include "core/gemm_kernel.h"
#include <cpuid.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The AMX microkernel: the contract of ukernel (core/gemm_kernel.h) for a 32 x 32 tile of C (mr <= 32 rows
 * valid; pa holds 32 rows, padded with zeros). Four accumulator tiles (tmm0-3: rows 0-15 /
 * 16-31 x columns 0-15 / 16-31), two A tiles (tmm4-5: 16 rows x 16 words, rows KCW_BF16
 * words apart) and two B tiles (tmm6-7: 16 words x 16 columns of the panel, NR words apart,
 * already in the pair-interleaved layout tdpbf16ps multiplies). kw is a multiple of 16.
 * The tile configuration is loaded by the caller (mt_gemm_amx_config). The accumulators go through
 * a 4 KB buffer in L1 to the epilogue. */
TGT static INL void ukernel(int rows, int kw, const uint32_t *pa, const uint32_t *pb, float *C, int ldc, int mr, int nr,
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

TGT void mt_gemm_tiles_amx(const Job *j, int kw, const uint32_t *pa, const uint32_t *pb, float *C, int ldc,
                           const float *R, int ic, int mc, int col, int nc, float beta, const MtEpilogue *ep) {
    block_tiles(MODE_AMX, j, kw, pa, pb, C, ldc, R, ic, mc, col, nc, beta, ep);
}

/* The AMX tile shapes (palette 1): every tile 16 rows x 64 bytes. Per thread: each thread
 * that runs the AMX tile loop loads it first (cheap next to a block of rows). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} AmxConfig;
TGT void mt_gemm_amx_config(void) {
    AmxConfig c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) c.colsb[t] = 64, c.rows[t] = 16;
    _tile_loadconfig(&c);
}

/* 1 when the CPU has AMX-BF16 and the OS lets this process use the tile registers (Linux
 * hands out the 8 KB of tile state only on request: arch_prctl(ARCH_REQ_XCOMP_PERM,
 * XFEATURE_XTILEDATA), asked once). */
int mt_gemm_amx_ok(void) {
    static int cached = -1;
    if (cached < 0) {
        unsigned a, b, c, d;
        cached = 0;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1) && (d >> 24 & 1)) /* AMX-BF16, AMX-TILE */
            cached = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    }
    return cached;
}

