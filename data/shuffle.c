#include "data/shuffle.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t shuf_hash(uint64_t a, uint64_t b) {
    uint64_t x = a * 0xD6E8FEB86659FD93ull ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
    uint64_t y = splitmix64(&x);
    return y ^ splitmix64(&x);
}

void shuf_rng_seed(ShufRng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t shuf_next(ShufRng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return out;
}

uint64_t shuf_below(ShufRng *r, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;   /* reject the biased tail */
    uint64_t x;
    do x = shuf_next(r); while (x >= lim);
    return x % n;
}

double shuf_uniform(ShufRng *r) { return (double)(shuf_next(r) >> 11) * 0x1.0p-53; }

void shuf_perm_int(ShufRng *r, int *a, long n) {
    for (long i = n - 1; i > 0; i--) {
        long j = (long)shuf_below(r, (uint64_t)i + 1);
        int t = a[i]; a[i] = a[j]; a[j] = t;
    }
}

void shuf_perm_long(ShufRng *r, long *a, long n) {
    for (long i = n - 1; i > 0; i--) {
        long j = (long)shuf_below(r, (uint64_t)i + 1);
        long t = a[i]; a[i] = a[j]; a[j] = t;
    }
}
