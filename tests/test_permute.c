/* --permute tables (data/permute.h): every table is a bijection; `patches` moves whole patches
 * (each output patch is one input patch, its pixels reordered by one in-patch permutation shared
 * by all patches) and so keeps every patch's pixel multiset; the table is a pure function of
 * (mode, seed, side, patch); gather and in-place gather agree on every channel; hostile configs
 * are refused with messages naming the flag and the sizes. */
#include "data/permute.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "check.h"


static int32_t *table(int mode, uint64_t seed, int side, int patch) {
    PermuteConfig c = {.mode = mode, .seed = seed, .patch = patch};
    char err[256];
    int32_t *t = permute_table(&c, side, err, sizeof err);
    if (!t) { printf("permute_table(%d, %llu, %d, %d): %s\n", mode, (unsigned long long)seed, side, patch, err); exit(1); }
    return t;
}

static int is_bijection(const int32_t *t, long n) {
    unsigned char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (long i = 0; i < n && ok; i++) {
        if (t[i] < 0 || t[i] >= n || seen[t[i]]) ok = 0;
        else seen[t[i]] = 1;
    }
    free(seen);
    return ok;
}

static long moved(const int32_t *t, long n) {
    long m = 0;
    for (long i = 0; i < n; i++) m += t[i] != i;
    return m;
}

static int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Every output patch comes from one input patch, offsets mapped by one shared permutation;
 * and an image's patches keep their sorted pixel values. */
static void check_patches(int side, int p, uint64_t seed) {
    int32_t *t = table(PERMUTE_PATCHES, seed, side, p);
    int g = side / p, hw = side * side;
    CHECK(is_bijection(t, hw), "patches %d/%d seed %llu: not a bijection", side, p, (unsigned long long)seed);
    int *shared = malloc((size_t)p * p * sizeof *shared), ok_whole = 1, ok_shared = 1;
    for (int q = 0; q < g * g; q++) {
        int qy = q / g, qx = q % g, src_cell = -1;
        for (int o = 0; o < p * p; o++) {
            int y = qy * p + o / p, x = qx * p + o % p, s = t[y * side + x];
            int sy = s / side, sx = s % side, cell = (sy / p) * g + sx / p, so = (sy % p) * p + sx % p;
            if (src_cell < 0) src_cell = cell;
            if (cell != src_cell) ok_whole = 0;
            if (q == 0) shared[o] = so;
            else if (shared[o] != so) ok_shared = 0;
        }
    }
    CHECK(ok_whole, "patches %d/%d: an output patch mixes input patches", side, p);
    CHECK(ok_shared, "patches %d/%d: in-patch permutation differs between patches", side, p);
    if (g > 1) CHECK(moved(t, hw) > hw / 2, "patches %d/%d: only %ld of %d pixels moved", side, p, moved(t, hw), hw);
    /* pixel multisets, on a 3-channel image of distinct values */
    float *img = malloc((size_t)3 * hw * sizeof *img), *out = malloc((size_t)3 * hw * sizeof *out);
    float *a = malloc((size_t)p * p * sizeof *a), *b = malloc((size_t)p * p * sizeof *b);
    for (int i = 0; i < 3 * hw; i++) img[i] = (float)((i * 7919L) % (3L * hw));
    permute_apply(t, 3, hw, img, out);
    int ok_multiset = 1;
    for (int ch = 0; ch < 3; ch++)
        for (int q = 0; q < g * g; q++) {
            int qy = q / g, qx = q % g;
            /* the input patch this output patch came from */
            int s0 = t[(qy * p) * side + qx * p], sy0 = (s0 / side) / p * p, sx0 = (s0 % side) / p * p;
            for (int o = 0; o < p * p; o++) {
                a[o] = out[(size_t)ch * hw + (qy * p + o / p) * side + qx * p + o % p];
                b[o] = img[(size_t)ch * hw + (sy0 + o / p) * side + sx0 + o % p];
            }
            qsort(a, (size_t)p * p, sizeof *a, cmpf);
            qsort(b, (size_t)p * p, sizeof *b, cmpf);
            if (memcmp(a, b, (size_t)p * p * sizeof *a)) ok_multiset = 0;
        }
    CHECK(ok_multiset, "patches %d/%d: a patch's pixel values changed", side, p);
    free(img); free(out); free(a); free(b); free(shared); free(t);
}

int main(void) {
    /* bijections, both modes, several sizes (including a one-patch image and p = 1) */
    static const int sizes[][2] = {{8, 4}, {16, 4}, {32, 4}, {28, 7}, {28, 14}, {32, 16}, {224, 16}, {8, 8}, {6, 1}};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int s = sizes[k][0], p = sizes[k][1];
        check_patches(s, p, 0);
        check_patches(s, p, 12345);
        int32_t *t = table(PERMUTE_GLOBAL, 3, s, 0);
        CHECK(is_bijection(t, (long)s * s), "global %d: not a bijection", s);
        CHECK(moved(t, (long)s * s) > (long)s * s / 2, "global %d: only %ld pixels moved", s, moved(t, (long)s * s));
        free(t);
    }
    /* global moves pixels across patches (it is not a patch permutation) */
    {
        int32_t *t = table(PERMUTE_GLOBAL, 1, 32, 0);
        int cross = 0;
        for (int i = 0; i < 16 && !cross; i++) {   /* first row of pixels of patch 0 (p = 4) */
            int y = i / 4, x = i % 4, s = t[y * 32 + x];
            if ((s / 32) / 4 != 0 || (s % 32) / 4 != 0) cross = 1;
        }
        CHECK(cross, "global: patch 0 kept its pixels");
        free(t);
    }
    /* a pure function of (mode, seed, side, patch) */
    {
        int32_t *a = table(PERMUTE_PATCHES, 7, 32, 4), *b = table(PERMUTE_PATCHES, 7, 32, 4);
        int32_t *c = table(PERMUTE_PATCHES, 8, 32, 4), *d = table(PERMUTE_GLOBAL, 7, 32, 0);
        int32_t *e = table(PERMUTE_GLOBAL, 7, 32, 0), *f = table(PERMUTE_GLOBAL, 4294967295ull, 32, 0);
        size_t n = 32 * 32 * sizeof *a;
        CHECK(!memcmp(a, b, n), "same seed: different patches tables");
        CHECK(memcmp(a, c, n), "seeds 7 and 8: the same patches table");
        CHECK(!memcmp(d, e, n), "same seed: different global tables");
        CHECK(memcmp(d, f, n), "seeds 7 and 2^32-1: the same global table");
        CHECK(memcmp(a, d, n), "patches and global: the same table");
        /* a known value pins the generator: a change of it changes every recorded permutation */
        long sum = 0;
        for (int i = 0; i < 32 * 32; i++) sum += (long)i * a[i];
        printf("patches seed 7 32/4 checksum %ld, table[0..3] %d %d %d %d\n", sum, a[0], a[1], a[2], a[3]);
        free(a); free(b); free(c); free(d); free(e); free(f);
    }
    /* gather and in-place gather agree, every channel through the same table */
    {
        int side = 16, hw = side * side;
        int32_t *t = table(PERMUTE_PATCHES, 99, side, 4);
        float x[3 * 256], y[3 * 256], z[3 * 256], scratch[256];
        for (int i = 0; i < 3 * hw; i++) x[i] = (float)i;
        memcpy(z, x, sizeof x);
        permute_apply(t, 3, hw, x, y);
        permute_apply_inplace(t, 3, hw, z, scratch);
        CHECK(!memcmp(y, z, sizeof y), "in-place gather differs from gather");
        int same = 1;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < hw; i++) same &= y[ch * hw + i] == (float)(ch * hw + t[i]);
        CHECK(same, "a channel was permuted differently");
        free(t);
    }
    /* none: no table, no error */
    {
        PermuteConfig c = {.mode = PERMUTE_NONE};
        char err[256] = "";
        CHECK(!permute_table(&c, 32, err, sizeof err) && !err[0], "none: a table or an error (%s)", err);
        CHECK(permute_mode_parse("patches") == PERMUTE_PATCHES && permute_mode_parse("global") == PERMUTE_GLOBAL &&
              permute_mode_parse("none") == PERMUTE_NONE && permute_mode_parse("Global") < 0 &&
              permute_mode_parse("") < 0 && permute_mode_parse(NULL) < 0, "mode names");
    }
    /* hostile configs: refused, the message names the flag and the sizes */
    {
        struct { PermuteConfig c; int side; const char *want1, *want2; } bad[] = {
            {{PERMUTE_PATCHES, 0, 0, 0}, 32, "--permute-patch 0", "32"},
            {{PERMUTE_PATCHES, 0, 5, 0}, 32, "--permute-patch 5", "image side 32"},
            {{PERMUTE_PATCHES, 0, 64, 0}, 32, "--permute-patch 64", "32"},
            {{PERMUTE_PATCHES, 0, -4, 0}, 32, "--permute-patch -4", "32"},
            {{PERMUTE_GLOBAL, 4294967296ull, 0, 0}, 32, "--permute-seed 4294967296", "4294967295"},
            {{PERMUTE_PATCHES, ~0ull, 4, 0}, 32, "--permute-seed", "4294967295"},
            {{7, 0, 4, 0}, 32, "--permute 7", "none, patches or global"},
            {{-1, 0, 4, 0}, 32, "--permute -1", "global"},
            {{PERMUTE_GLOBAL, 0, 0, 0}, 0, "image side 0", "--permute global"},
            {{PERMUTE_GLOBAL, 0, 0, 0}, 100000, "image side 100000", "--permute global"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            char err[256] = "";
            int32_t *t = permute_table(&bad[i].c, bad[i].side, err, sizeof err);
            CHECK(!t && permute_check(&bad[i].c, bad[i].side, err, sizeof err) == -1, "bad config %zu accepted", i);
            CHECK(strstr(err, bad[i].want1) && strstr(err, bad[i].want2), "bad config %zu: message '%s' lacks '%s' / '%s'",
                  i, err, bad[i].want1, bad[i].want2);
            free(t);
        }
    }
    /* speed of the gather (printed, not asserted): one 3x224x224 image per call */
    {
        int side = 224, hw = side * side, reps = 50;
        int32_t *t = table(PERMUTE_GLOBAL, 1, side, 0);
        float *x = calloc((size_t)3 * hw, sizeof *x), *y = malloc((size_t)3 * hw * sizeof *y);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int r = 0; r < reps; r++) { x[r] = (float)r; permute_apply(t, 3, hw, x, y); }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double us = ((t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3) / reps;
        printf("permute_apply global 3x224x224: %.1f us per image (%.2f ns per value; y[0] %g)\n", us, us * 1e3 / (3.0 * hw), y[0]);
        free(x); free(y); free(t);
    }
    return check_summary("test_permute");
}
