/* Small deterministic random numbers for the data pipeline: a 64-bit mixing
 * hash (to derive independent seeds from (seed, epoch, position, ...)), a tiny
 * generator (splitmix64 -> xoshiro256**) and Fisher-Yates permutations.
 * Same seed -> same sequence on every machine; no global state. */
#pragma once
#include <stdint.h>

typedef struct ShufRng { uint64_t s[4]; } ShufRng;

/* Mix any number of 64-bit words into one well-spread 64-bit value. */
uint64_t shuf_hash(uint64_t a, uint64_t b);
static inline uint64_t shuf_hash3(uint64_t a, uint64_t b, uint64_t c) { return shuf_hash(shuf_hash(a, b), c); }
static inline uint64_t shuf_hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    return shuf_hash(shuf_hash(shuf_hash(a, b), c), d);
}

void shuf_rng_seed(ShufRng *r, uint64_t seed);
uint64_t shuf_next(ShufRng *r);
/* Uniform integer in [0, n) (n >= 1), unbiased (rejection). */
uint64_t shuf_below(ShufRng *r, uint64_t n);
/* Uniform float in [0, 1). */
double shuf_uniform(ShufRng *r);
/* Fisher-Yates shuffle of a[0..n) in place (int or long variants). */
void shuf_perm_int(ShufRng *r, int *a, long n);
void shuf_perm_long(ShufRng *r, long *a, long n);
