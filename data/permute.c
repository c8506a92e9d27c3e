#include "data/permute.h"
#include "data/shuffle.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_PERMUTE 0x5045524d55ull  /* keeps this stream apart from the loader's shuffles */

static const char *const NAMES[] = {"none", "patches", "global"};

int permute_mode_parse(const char *s) {
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, NAMES[i])) return i;
    return -1;
}

const char *permute_mode_name(int mode) { return mode >= 0 && mode < 3 ? NAMES[mode] : "?"; }

int permute_check(const PermuteConfig *c, int side, char *err, size_t errn) {
    if (c->mode < PERMUTE_NONE || c->mode > PERMUTE_GLOBAL) {
        snprintf(err, errn, "--permute %d: want none, patches or global", c->mode);
        return -1;
    }
    if (c->mode == PERMUTE_NONE) return 0;
    if (c->seed > PERMUTE_SEED_MAX) {
        snprintf(err, errn, "--permute-seed %llu: must be in [0, %llu]", (unsigned long long)c->seed, PERMUTE_SEED_MAX);
        return -1;
    }
    if (side < 1 || side > PERMUTE_PATCH_MAX) {
        snprintf(err, errn, "--permute %s: image side %d outside [1, %d]", NAMES[c->mode], side, PERMUTE_PATCH_MAX);
        return -1;
    }
    if (c->mode == PERMUTE_PATCHES && (c->patch < 1 || c->patch > side || side % c->patch)) {
        snprintf(err, errn, "--permute patches: --permute-patch %d does not divide the image side %d "
                 "(want a divisor of %d)", c->patch, side, side);
        return -1;
    }
    return 0;
}

int32_t *permute_table(const PermuteConfig *c, int side, char *err, size_t errn) {
    if (permute_check(c, side, err, errn)) return NULL;
    if (c->mode == PERMUTE_NONE) return NULL;
    long hw = (long)side * side;
    int p = c->mode == PERMUTE_PATCHES ? c->patch : 1;
    long g = side / p;                     /* grid side; global = patches of one pixel */
    int32_t *t = malloc((size_t)hw * sizeof *t);
    int *cells = malloc((size_t)(g * g) * sizeof *cells), *pix = malloc((size_t)p * p * sizeof *pix);
    if (!t || !cells || !pix) {
        free(t); free(cells); free(pix);
        snprintf(err, errn, "--permute %s: out of memory for a %dx%d table", NAMES[c->mode], side, side);
        return NULL;
    }
    ShufRng r;
    shuf_rng_seed(&r, shuf_hash4(TAG_PERMUTE, c->seed, (uint64_t)c->mode, shuf_hash((uint64_t)side, (uint64_t)p)));
    for (long i = 0; i < g * g; i++) cells[i] = (int)i;
    for (long i = 0; i < (long)p * p; i++) pix[i] = (int)i;
    shuf_perm_int(&r, cells, g * g);
    shuf_perm_int(&r, pix, (long)p * p);
    /* output pixel (cell q, offset o) <- input pixel (cell cells[q], offset pix[o]) */
    for (long y = 0; y < side; y++)
        for (long x = 0; x < side; x++) {
            long q = (y / p) * g + x / p, o = (y % p) * p + x % p;
            long sq = cells[q], so = pix[o];
            long sy = (sq / g) * p + so / p, sx = (sq % g) * p + so % p;
            t[y * side + x] = (int32_t)(sy * side + sx);
        }
    free(cells);
    free(pix);
    return t;
}

void permute_apply(const int32_t *table, int chans, int hw, const float *src, float *dst) {
    for (int ch = 0; ch < chans; ch++) {
        const float *s = src + (size_t)ch * hw;
        float *d = dst + (size_t)ch * hw;
        for (int i = 0; i < hw; i++) d[i] = s[table[i]];
    }
}

void permute_apply_inplace(const int32_t *table, int chans, int hw, float *x, float *scratch) {
    for (int ch = 0; ch < chans; ch++) {
        float *c = x + (size_t)ch * hw;
        memcpy(scratch, c, (size_t)hw * sizeof *c);
        permute_apply(table, 1, hw, scratch, c);
    }
}
