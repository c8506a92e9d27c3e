/* GELU kernels (see core/act_gelu.h): AVX-512 with a run-time check, scalar otherwise. */
#include "core/act_gelu.h"
#include "core/bf16.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "core/act_gelu_avx512.h"
#define HAVE_AVX512_PATH 1
#define TGT __attribute__((target("avx512f,avx512dq")))

/* exp(x) for x <= 0 (the normal density's exponent), as mt_exp_fast: x = n ln2 + r, degree-7
 * Taylor of e^r, 2^n by scalef; clamped at -87. */
TGT static inline __m512 exp16_neg(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* y = gelu(x + bias) row by row: full vectors, then the tail under a mask. STORE(p, m, v)
 * writes 16 results (m: the lanes, all set for full vectors) to p of type YT. */
#define GELU_ROWS(NAME, ATTR, YT, STORE)                                                                          \
    ATTR static void NAME(YT *y, size_t ldy, const float *x, size_t ldx, const float *bias, size_t rows,        \
                          int cols) {                                                                           \
        __mmask16 tail = (__mmask16)((1u << (cols & 15)) - 1), all = (__mmask16)0xffff;                          \
        int full = cols & ~15;                                                                                  \
        for (size_t r = 0; r < rows; r++) {                                                                     \
            const float *xr = x + r * ldx;                                                                      \
            YT *yr = y + r * ldy;                                                                               \
            int j = 0;                                                                                          \
            for (; j < full; j += 16) {                                                                         \
                __m512 v = _mm512_loadu_ps(xr + j);                                                             \
                if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + j));                                      \
                STORE(yr + j, all, mt_gelu16(v));                                                               \
            }                                                                                                   \
            if (tail) {                                                                                         \
                __m512 v = _mm512_maskz_loadu_ps(tail, xr + j);                                                 \
                if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(tail, bias + j));                          \
                STORE(yr + j, tail, mt_gelu16(v));                                                              \
            }                                                                                                   \
        }                                                                                                       \
    }
/* full vectors by plain stores (masked ones cost more on some CPUs even with every lane set) */
#define STORE_F32(p, m, v) ((m) == 0xffff ? _mm512_storeu_ps(p, v) : _mm512_mask_storeu_ps(p, m, v))
/* bf16 by vcvtneps2bf16, the rounding of the GEMM's packing */
#define STORE_BF16(p, m, v)                                                                                     \
    ((m) == 0xffff ? _mm256_storeu_si256((__m256i *)(p), (__m256i)_mm512_cvtneps_pbh(v))                        \
                   : _mm256_mask_storeu_epi16(p, m, (__m256i)_mm512_cvtneps_pbh(v)))
GELU_ROWS(gelu_rows_avx512, TGT, float, STORE_F32)
GELU_ROWS(gelu_rows_bf16_avx512, __attribute__((target("avx512f,avx512dq,avx512bf16,avx512bw,avx512vl"))), uint16_t,
          STORE_BF16)

/* g = dy * (Phi(v) + v phi(v)), v = x + bias, for the lanes in m. */
TGT static inline __m512 gelu_grad16(const float *dy, const float *x, const float *bias, __mmask16 m) {
    __m512 v = _mm512_maskz_loadu_ps(m, x);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias));
    __m512 cdf = _mm512_fmadd_ps(_mm512_set1_ps(0.5f), mt_erf16(_mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752440f))),
                                 _mm512_set1_ps(0.5f));
    __m512 pdf = exp16_neg(_mm512_mul_ps(_mm512_mul_ps(v, v), _mm512_set1_ps(-0.5f)));
    __m512 d = _mm512_fmadd_ps(_mm512_mul_ps(v, _mm512_set1_ps(0.39894228040143267794f)), pdf, cdf);
    return _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy), d);
}

/* dx += g; dbias += g in double. Full vectors use plain loads and stores, the tail masked ones,
 * in two loops on purpose: folded into one loop with a run-time mask (masked loads of x, dy,
 * dx and of the dbias the previous row just stored), poolformer_s12's bias_act backward took
 * 100 ms per step instead of 45-50 on AMD Zen 5. */
TGT static void gelu_grad_row_avx512(float *dx, const float *dy, const float *x, const float *bias, double *dbias,
                                     int n, int acc) {
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 g = gelu_grad16(dy + j, x + j, bias ? bias + j : NULL, (__mmask16)0xffff);
        if (dx) _mm512_storeu_ps(dx + j, acc ? _mm512_add_ps(_mm512_loadu_ps(dx + j), g) : g);
        if (dbias) {
            __m512d g0 = _mm512_cvtps_pd(_mm512_castps512_ps256(g));
            __m512d g1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(g), 1)));
            _mm512_storeu_pd(dbias + j, _mm512_add_pd(_mm512_loadu_pd(dbias + j), g0));
            _mm512_storeu_pd(dbias + j + 8, _mm512_add_pd(_mm512_loadu_pd(dbias + j + 8), g1));
        }
    }
    if (j < n) {
        __mmask16 m = (__mmask16)((1u << (n - j)) - 1);
        __m512 g = gelu_grad16(dy + j, x + j, bias ? bias + j : NULL, m);
        if (dx) _mm512_mask_storeu_ps(dx + j, m, acc ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, dx + j), g) : g);
        if (dbias) {
            __mmask8 lo = (__mmask8)m, hi = (__mmask8)(m >> 8);
            __m512d g0 = _mm512_cvtps_pd(_mm512_castps512_ps256(g));
            __m512d g1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(g), 1)));
            _mm512_mask_storeu_pd(dbias + j, lo, _mm512_add_pd(_mm512_maskz_loadu_pd(lo, dbias + j), g0));
            _mm512_mask_storeu_pd(dbias + j + 8, hi, _mm512_add_pd(_mm512_maskz_loadu_pd(hi, dbias + j + 8), g1));
        }
    }
}

static int has_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    }
    return cached;
}
static int has_avx512_bf16(void) {
    static int cached = -1;
    if (cached < 0)
        cached = has_avx512() && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl");
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

void mt_gelu_rows_bf16(uint16_t *y, size_t ldy, const float *x, size_t ldx, const float *bias, size_t rows,
                       int cols) {
#ifdef HAVE_AVX512_PATH
    if (!g_force_scalar && has_avx512_bf16()) {
        gelu_rows_bf16_avx512(y, ldy, x, ldx, bias, rows, cols);
        return;
    }
#endif
    enum { RUN = 512 }; /* through an fp32 run in L1 */
    float tmp[RUN];
    for (size_t r = 0; r < rows; r++)
        for (int j0 = 0; j0 < cols; j0 += RUN) {
            int n = cols - j0 < RUN ? cols - j0 : RUN;
            mt_gelu_rows(tmp, RUN, x + r * ldx + j0, ldx, bias ? bias + j0 : NULL, 1, n);
            mt_bf16_from_f32(y + r * ldy + j0, tmp, (size_t)n);
        }
}

void mt_gelu_tile(float *x, int rows, int cols, int ld) { mt_gelu_rows(x, (size_t)ld, x, (size_t)ld, NULL, (size_t)rows, cols); }

int mt_gelu_vector(void) {
#ifdef HAVE_AVX512_PATH
    return !g_force_scalar && has_avx512();
#else
    return 0;
#endif
}

void mt_gelu_grad_row(float *dx, const float *dy, const float *x, const float *bias, double *dbias, int n, int acc) {
#ifdef HAVE_AVX512_PATH
    if (!g_force_scalar && has_avx512()) {
        gelu_grad_row_avx512(dx, dy, x, bias, dbias, n, acc);
        return;
    }
#endif
    for (int j = 0; j < n; j++) {
        float g = dy[j] * mt_gelu_grad_scalar(x[j] + (bias ? bias[j] : 0.0f));
        if (dx) dx[j] = acc ? dx[j] + g : g;
        if (dbias) dbias[j] += g;
    }
}
