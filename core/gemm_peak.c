/* The CPU's register peak of the multiply-add the own kernels are built on: every OpenMP
 * thread runs 12 independent accumulator chains of vfmadd (fp32) or vdpbf16ps (bf16) on
 * registers only, so neither memory nor latency limits it. This is the ceiling no GEMM on
 * this CPU can pass (a GEMM also loads and packs); `mixtape bench --sgemm` prints it next to
 * the measured GEMM rates so a whole step's GFLOP/s can be read against the hardware. */
#include "core/clock.h"
#include "core/gemm.h"
#include <immintrin.h>
#include <omp.h>

/* 12 named accumulators (not an array) so the compiler keeps every chain in a register */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECL(i) __m512 c##i = _mm512_set1_ps((float)(i) * 1e-9f);
#define SUM(i) +_mm512_reduce_add_ps(c##i)
#define FMA(i) c##i = _mm512_fmadd_ps(x, y, c##i);
#define DOT(i) c##i = _mm512_dpbf16_ps(c##i, xh, yh);

/* iters rounds of 12 chained ops on this thread; returns a sum so nothing is optimised out */
__attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl"))) static float chains(int bf16, long iters) {
    CHAINS(DECL)
    __m512 x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1e-9f);
    __m512bh xh = (__m512bh)_mm512_set1_epi16(0x3f80), yh = (__m512bh)_mm512_set1_epi16(0x3000);
    if (bf16)
        for (long i = 0; i < iters; i++) { CHAINS(DOT) }
    else
        for (long i = 0; i < iters; i++) { CHAINS(FMA) }
    return 0.0f CHAINS(SUM);
}

double mt_gemm_peak(int precision) {
    int bf16 = precision == MT_BF16;
    /* with AMX, MT_BF16 runs on the tile units, which vdpbf16ps does not bound */
    if (bf16 ? !mt_gemm_bf16_native() || mt_gemm_amx_native() : !mt_gemm_fp32_native()) return 0.0;
    /* flops per op: 16 lanes x 2 (fp32 FMA), 16 lanes x 2 pairs x 2 (bf16 dot product) */
    double per_op = bf16 ? 64.0 : 32.0, best = 0.0;
    long iters = 2000000; /* ~0.1 s per round on one core at 3 GHz */
    for (int round = 0; round < 3; round++) {
        int threads = 1;
        volatile float sink = 0.0f;
        double t0 = mt_seconds();
#pragma omp parallel
        {
            float s = chains(bf16, iters);
#pragma omp critical
            sink += s;
#pragma omp single
            threads = omp_get_num_threads();
        }
        double rate = (double)iters * 12 * per_op * threads / (mt_seconds() - t0) / 1e9;
        if (rate > best) best = rate;
        (void)sink;
    }
    return best;
}
