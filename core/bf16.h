/* bfloat16 storage: a uint16_t holding the upper half of an fp32 (sign, 8-bit exponent, 7-bit
 * mantissa). Activations that only feed MT_BF16 GEMMs are kept this way (the GEMMs round
 * their inputs to bf16 while packing anyway): half the memory and half the bytes moved. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Round-to-nearest-even to bfloat16, returned as the fp32 value (NaN stays NaN). */
float mt_bf16_round(float x);
/* dst[i] = src[i] rounded to bf16, to nearest even, NaN kept a NaN. On CPUs with AVX512-BF16
 * by its conversion instruction, the one the GEMM's packing uses (denormals become zero
 * there), else by mt_bf16_round. Serial. */
void mt_bf16_from_f32(uint16_t *dst, const float *src, size_t n);
/* dst[i] = src[i] as fp32 (exact). Serial. */
void mt_bf16_to_f32(float *dst, const uint16_t *src, size_t n);
