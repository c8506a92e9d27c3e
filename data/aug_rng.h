/* A small explicit random number generator for augmentation: PCG32
 * (O'Neill, XSH-RR 64/32). Every augmentation call takes an AugRng*; there is
 * no global state. The pipeline seeds one generator per sample from
 * (seed, epoch, sample index) with aug_rng_for_sample(), so the output of a
 * sample does not depend on which worker thread handled it. */
#pragma once
#include <math.h>
#include <stdint.h>

typedef struct AugRng {
    uint64_t state, inc;
    double spare;      /* second Box-Muller normal, valid when has_spare */
    int has_spare;
} AugRng;

static inline uint32_t aug_rng_u32(AugRng *r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ull + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

/* splitmix64 finaliser: a good 64-bit mixing function for deriving seeds. */
static inline uint64_t aug_hash64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Seed a generator; different streams give independent sequences. */
static inline void aug_rng_seed(AugRng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (aug_hash64(stream) << 1u) | 1u;
    r->has_spare = 0;
    r->spare = 0;
    aug_rng_u32(r);
    r->state += aug_hash64(seed);
    aug_rng_u32(r);
}

/* The generator for one sample: a function of (seed, epoch, index) only. */
static inline void aug_rng_for_sample(AugRng *r, uint64_t seed, uint64_t epoch, uint64_t index) {
    uint64_t h = aug_hash64(seed ^ aug_hash64(epoch + 0x5851f42d4c957f2dull));
    aug_rng_seed(r, h, index);
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double aug_rng_uniform(AugRng *r) {
    uint64_t a = aug_rng_u32(r) >> 5, b = aug_rng_u32(r) >> 6;
    return (double)(a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

/* Uniform double in [lo, hi) (Python's random.uniform). */
static inline double aug_rng_range(AugRng *r, double lo, double hi) {
    return lo + (hi - lo) * aug_rng_uniform(r);
}

/* Uniform integer in [lo, hi] inclusive (Python's random.randint); hi >= lo. */
static inline int aug_rng_int(AugRng *r, int lo, int hi) {
    if (hi <= lo) return lo;
    uint32_t span = (uint32_t)((int64_t)hi - lo + 1);
    if (span == 0) return (int)((int64_t)lo + aug_rng_u32(r)); /* the full 32-bit range */
    uint64_t m = (uint64_t)aug_rng_u32(r) * span;          /* Lemire's method */
    uint32_t l = (uint32_t)m;
    if (l < span) {
        uint32_t t = (uint32_t)(-span) % span;
        while (l < t) { m = (uint64_t)aug_rng_u32(r) * span; l = (uint32_t)m; }
    }
    return lo + (int)(m >> 32);
}

/* Standard normal (Box-Muller, caching the second value). */
static inline double aug_rng_normal(AugRng *r) {
    if (r->has_spare) { r->has_spare = 0; return r->spare; }
    double u, v, s;
    do {
        u = 2.0 * aug_rng_uniform(r) - 1.0;
        v = 2.0 * aug_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double m = sqrt(-2.0 * log(s) / s);
    r->spare = v * m;
    r->has_spare = 1;
    return u * m;
}

/* Gamma(shape, 1) by Marsaglia-Tsang (shape < 1 boosted by U^(1/shape)). */
static inline double aug_rng_gamma(AugRng *r, double shape) {
    if (shape <= 0) return 0;
    if (shape < 1.0) {
        double u = aug_rng_uniform(r);
        return aug_rng_gamma(r, shape + 1.0) * pow(u > 0 ? u : 1e-300, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do { x = aug_rng_normal(r); v = 1.0 + c * x; } while (v <= 0);
        v = v * v * v;
        double u = aug_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
        if (log(u > 0 ? u : 1e-300) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
    }
}

/* Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
static inline double aug_rng_beta(AugRng *r, double a, double b) {
    double x = aug_rng_gamma(r, a), y = aug_rng_gamma(r, b);
    return (x + y) > 0 ? x / (x + y) : 0.5;
}
