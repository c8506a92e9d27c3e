/* GELU kernels (see core/act_gelu.h): AVX-512 with a run-time check, scalar otherwise. */
#include "core/act_gelu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_PATH 1
#define TGT __attribute__((target("avx512f")))

TGT static inline __m512 gelu16(__m512 x) {
    __m512 u = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752440f));
    u = _mm512_min_ps(_mm512_max_ps(u, _mm512_set1_ps(-4.0f)), _mm512_set1_ps(4.0f));
    __m512 s = _mm512_mul_ps(u, u);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(MT_ERF_P5), s, _mm512_set1_ps(MT_ERF_P4));
    __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(MT_ERF_Q5), s, _mm512_set1_ps(MT_ERF_Q4));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(MT_ERF_P3));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(MT_ERF_Q3));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(MT_ERF_P2));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(MT_ERF_Q2));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(MT_ERF_P1));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(MT_ERF_Q1));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(MT_ERF_P0));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(1.0f));
    /* 1/q: q is in [1, 3.3], rcp14 + one Newton step is accurate to ~1 ulp */
    __m512 r = _mm512_rcp14_ps(q);
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f)));
    __m512 e = _mm512_mul_ps(_mm512_mul_ps(u, p), r);
    e = _mm512_min_ps(_mm512_max_ps(e, _mm512_set1_ps(-1.0f)), _mm512_set1_ps(1.0f));
    __m512 h = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
    return _mm512_fmadd_ps(h, e, h);
}

TGT static void gelu_rows_avx512(float *y, size_t ldy, const float *x, size_t ldx, const float *bias, size_t rows,
                                 int cols) {
    __mmask16 tail = (__mmask16)((1u << (cols & 15)) - 1);
    int full = cols & ~15;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        int j = 0;
        for (; j < full; j += 16) {
            __m512 v = _mm512_loadu_ps(xr + j);
            if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + j));
            _mm512_storeu_ps(yr + j, gelu16(v));
        }
        if (tail) {
            __m512 v = _mm512_maskz_loadu_ps(tail, xr + j);
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(tail, bias + j));
            _mm512_mask_storeu_ps(yr + j, tail, gelu16(v));
        }
    }
}

static int has_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f");
    }
    return cached;
}
#endif

static int g_force_scalar;
void mt_gelu_force_scalar(int on) { g_force_scalar = on; }

void mt_gelu_rows(float *y, size_t ldy, const float *x, size_t ldx, const float *bias, size_t rows, int cols) {
#ifdef HAVE_AVX512_PATH
    if (!g_force_scalar && has_avx512()) {
        gelu_rows_avx512(y, ldy, x, ldx, bias, rows, cols);
        return;
    }
#endif
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        if (bias) {
#pragma omp simd
            for (int j = 0; j < cols; j++) yr[j] = mt_gelu_scalar(xr[j] + bias[j]);
        } else {
#pragma omp simd
            for (int j = 0; j < cols; j++) yr[j] = mt_gelu_scalar(xr[j]);
        }
    }
}
