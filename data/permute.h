/* Fixed pixel permutations of the input images (the MLP-Mixer paper's invariance experiment,
 * Sec. 3.4 / Appendix: "patch + pixel shuffling" and "global shuffling"):
 *
 *   patches: one permutation of the (S/p)^2 patch positions and one permutation of the p^2
 *            pixels inside a patch, the same for every patch;
 *   global:  one permutation of all S*S pixel positions.
 *
 * The permutation is the same for every channel and every image, and a pure function of
 * (mode, seed, side, patch): built once per loader with the project's RNG (data/shuffle.h),
 * so every run, thread and rank applies the same one. Applying it is a gather through the
 * table, after decode / augmentation / resize (pixel-wise, so before or after normalisation
 * alike). */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { PERMUTE_NONE = 0, PERMUTE_PATCHES = 1, PERMUTE_GLOBAL = 2 } PermuteMode;

#define PERMUTE_SEED_MAX 4294967295ull  /* the range of --seed */
#define PERMUTE_PATCH_MAX 8192          /* the range of --img-size */

typedef struct PermuteConfig {
    int mode;          /* PermuteMode */
    uint64_t seed;     /* 0..PERMUTE_SEED_MAX */
    int patch;         /* patches: patch side (0 = not resolved yet: the model's patch) */
    int given;         /* set on the command line (or a run's args.yaml): wins over a checkpoint's */
} PermuteConfig;

/* "none" | "patches" | "global"; -1 for anything else. */
int permute_mode_parse(const char *s);
const char *permute_mode_name(int mode);

/* Check c against an image of side x side: known mode, seed in range, and for patches a
 * patch in 1..side dividing side. 0 ok, -1 with a message naming the flag and the sizes. */
int permute_check(const PermuteConfig *c, int side, char *err, size_t errn);

/* The table for an image of side x side (malloc'd, side*side entries, NULL with err on a bad
 * config or OOM; NULL without error for mode none): output pixel i takes input pixel table[i]. */
int32_t *permute_table(const PermuteConfig *c, int side, char *err, size_t errn);

/* dst[ch*hw + i] = src[ch*hw + table[i]] for every channel; src and dst must not overlap. */
void permute_apply(const int32_t *table, int chans, int hw, const float *src, float *dst);
/* The same in place, through scratch (hw floats). */
void permute_apply_inplace(const int32_t *table, int chans, int hw, float *x, float *scratch);
