/* GELU on 16 floats in AVX-512 registers: the erf form with act_gelu.h's rational erf,
 * 1/q by rcp14 + one Newton step. Shared by core/act_gelu.c and the GEMM epilogue
 * (core/gemm_kernel.h), so a GELU applied inside a GEMM equals mt_gelu_rows bit for bit.
 * Include only in files built for x86-64 with GCC/Clang. */
#pragma once
#include "core/act_gelu.h"
#include <immintrin.h>

#define MT_GELU_TGT __attribute__((target("avx512f,avx512dq")))

/* erf(u) by the rational form. */
MT_GELU_TGT static inline __m512 mt_erf16(__m512 u) {
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
    return _mm512_min_ps(_mm512_max_ps(e, _mm512_set1_ps(-1.0f)), _mm512_set1_ps(1.0f));
}

MT_GELU_TGT static inline __m512 mt_gelu16(__m512 x) {
    __m512 h = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
    return _mm512_fmadd_ps(h, mt_erf16(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752440f))), h);
}
