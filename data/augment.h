/* Training and evaluation transforms as timm builds them
 * (transforms_imagenet_train / transforms_imagenet_eval / Mixup), in plain C
 * on 8-bit HWC images (data/image.h) and float arrays (data/batch.h).
 *
 * Per sample (worker threads, any order):
 *   AugRng r; aug_rng_for_sample(&r, seed, epoch, index);
 *   aug_train(&cfg, &img, &r, out_chw, err, sizeof err);   // c*S*S floats
 *   aug_eval(&cfg, &img, out_chw, err, sizeof err);        // deterministic
 * Per batch (once the n samples are collated, in the batch's order):
 *   AugRng br; aug_rng_for_sample(&br, seed ^ 0xB, epoch, batch_index);
 *   aug_mix_batch(&cfg, &batch, &br);    // mixup/cutmix (+ smoothing) -> batch.soft
 *
 * Train = RandomResizedCrop(img_size, scale, ratio, interpolation)
 *       → hflip(p) → vflip(p) → [RandAugment (--aa) | ColorJitter (--color-jitter)]
 *       → ToTensor + Normalize(mean, std) → RandomErasing (--reprob)
 * Eval  = Resize(shorter side = floor(img_size / crop_pct)) → CenterCrop(img_size)
 *       → ToTensor + Normalize.
 * The output channel count is cfg->in_chans; an input with the other channel
 * count is converted (gray replicated to RGB, RGB to luma as PIL's convert("L")).
 * Details and differences from timm: docs/augment.md. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "data/aug_rng.h"
#include "data/batch.h"
#include "data/image.h"
#include "data/permute.h"

typedef enum { AUG_INTERP_BILINEAR = 0, AUG_INTERP_BICUBIC = 1, AUG_INTERP_RANDOM = 2 } AugInterp;
typedef enum { AUG_REMODE_CONST = 0, AUG_REMODE_RAND = 1, AUG_REMODE_PIXEL = 2 } AugReMode;

/* RandAugment as parsed from timm's "rand-m9-n2-mstd0.5-mmax10-inc1-p0.5-w0". */
typedef struct AugRandAugment {
    int enabled;
    int num_ops;        /* n: ops per image, default 2 (chosen with replacement) */
    float magnitude;    /* m: 0..mmax, default 10 */
    float mstd;         /* mstd: gaussian noise std on m per op; INFINITY (mstd>100) = uniform(0, m) */
    float mmax;         /* mmax: upper clamp of the noisy magnitude, default 10 */
    float prob;         /* p: probability each chosen op is applied, default 0.5 */
    int increasing;     /* inc1: ops whose severity grows with m */
    int weighted;       /* w0: timm's _RAND_CHOICE_WEIGHTS_0 (chosen without replacement) */
} AugRandAugment;

typedef struct AugConfig {
    int img_size;          /* --img-size 224 */
    int in_chans;          /* --in-chans 3 (1 = gray) */
    float scale[2];        /* --scale 0.08 1.0 */
    float ratio[2];        /* --ratio 0.75 1.3333 */
    float hflip;           /* --hflip 0.5 */
    float vflip;           /* --vflip 0 */
    char aa[96];           /* --aa "" / "none" = off; parsed into ra */
    AugRandAugment ra;
    float color_jitter[3]; /* --color-jitter 0.4 (brightness, contrast, saturation); only without --aa */
    float reprob;          /* --reprob 0 */
    AugReMode remode;      /* --remode pixel */
    int recount;           /* --recount 1 */
    float mixup;           /* --mixup 0 (alpha) */
    float cutmix;          /* --cutmix 0 (alpha) */
    float cutmix_minmax[2];/* --cutmix-minmax (off when has_cutmix_minmax = 0) */
    int has_cutmix_minmax;
    float mixup_prob;      /* --mixup-prob 1.0 */
    float mixup_switch_prob; /* --mixup-switch-prob 0.5 */
    float smoothing;       /* --smoothing 0.1 */
    AugInterp interpolation;       /* --interpolation bicubic (eval; train too unless set) */
    AugInterp train_interpolation; /* --train-interpolation random (timm's default) */
    float crop_pct;        /* --crop-pct 0.875 */
    float mean[3];         /* --mean 0.485 0.456 0.406 */
    float std[3];          /* --std 0.229 0.224 0.225 */
    int n_mean, n_std;     /* 1 or 3 values given */
    const char *norm_src;  /* for messages: where mean/std came from when neither flags nor a
                              checkpoint gave them (the data's dataset.json); NULL: the defaults */
    float translate_pct;   /* RandAugment TranslateRel range, timm hparam 0.45 */
    PermuteConfig permute; /* --permute: fixed pixel permutation after the transform (data/permute.h);
                              applied by the loader to every source, not by aug_train / aug_eval */
} AugConfig;

/* timm's defaults (train.py + the model's default data config). */
void aug_config_default(AugConfig *cfg);

/* Parse an --aa string into cfg->ra (and cfg->aa). "" / "none" / NULL turn it
 * off. Returns 0, or -1 with a message in err, e.g.
 * "--aa 'rand-m9-xx': unknown field 'xx'". Only the 'rand' policy is supported. */
int aug_config_parse_aa(AugConfig *cfg, const char *aa, char *err, size_t n);

/* Set one option by its timm flag name ("--reprob" or "reprob"; value as text,
 * lists as "0.08,1" or "0.08 1"). Returns 0 ok, 1 when the flag is not an
 * augmentation flag (the caller tries its own), -1 bad value (message in err). */
int aug_config_set(AugConfig *cfg, const char *flag, const char *value, char *err, size_t n);

/* The value of one option as aug_config_set takes it back ("0.08,1", "none",
 * "bicubic"), floats in their shortest exact form. 0 ok, 1 unknown flag. */
int aug_config_get(const AugConfig *cfg, const char *flag, char *buf, size_t n);

/* Check the whole config (ranges, mean/std count); 0 ok, -1 with message. */
int aug_config_check(const AugConfig *cfg, char *err, size_t n);

/* Mean/std used for channel ch when producing `chans` channels (a 3-value
 * mean used for 1 channel gives the average of the three). */
float aug_mean(const AugConfig *cfg, int chans, int ch);
float aug_std(const AugConfig *cfg, int chans, int ch);

/* True when aug_mix_batch will mix (mixup or cutmix alpha > 0 and prob > 0):
 * the batch then needs soft targets (batch_alloc with_soft = 1) and the loss
 * should be soft-target cross-entropy, as timm's train.py. */
int aug_mixup_active(const AugConfig *cfg);

/* Train transform. in: any size, c = 1 or 3. out_chw: in_chans*S*S floats,
 * S = img_size. Returns 0, or -1 with a message (bad image / config, OOM). */
int aug_train(const AugConfig *cfg, const Image *in, AugRng *rng, float *out_chw, char *err, size_t n);

/* Eval transform (deterministic). Returns 0 or -1 with a message. */
int aug_eval(const AugConfig *cfg, const Image *in, float *out_chw, char *err, size_t n);

/* Batch-level mixup / cutmix (timm's Mixup, mode 'batch': one lambda per
 * batch, sample i paired with n-1-i), in place on b->images and writing
 * b->soft (n, num_classes). Targets: one-hot with off = smoothing/K,
 * on = 1 - smoothing + off, mixed lam * y_i + (1 - lam) * y_{n-1-i}.
 * When mixing is off (aug_mixup_active false, or not drawn this batch) and
 * b->soft != NULL, b->soft receives the label-smoothed one-hot targets (lam 1);
 * with b->soft == NULL nothing happens (hard labels; the loss then applies
 * --smoothing itself, as timm's LabelSmoothingCrossEntropy).
 * Labels < 0 contribute nothing to the soft row. An odd n leaves the middle
 * sample paired with itself. Returns the lambda used (1 = no mixing). */
float aug_mix_batch(const AugConfig *cfg, Batch *b, AugRng *rng);

/* Write label-smoothed one-hot targets for labels into soft (n, k). */
void aug_smooth_targets(const int *labels, int n, int k, float smoothing, float *soft);

/* ---- building blocks (exposed for tests and tools) ---- */

/* torchvision RandomResizedCrop.get_params: box (x, y, w, h) inside w x h. */
void aug_rrc_params(int img_w, int img_h, const float scale[2], const float ratio[2], AugRng *rng,
                    int *x, int *y, int *w, int *h);

/* Resample the box (bx, by, bw, bh) of src (inside src) to a dst of size
 * dst->w x dst->h (dst allocated by the caller, dst->c == src->c), with PIL's
 * antialiased separable filters (support scaled by the factor when shrinking).
 * Identical sizes copy exactly. Returns 0 or -1 (OOM / bad box). */
int aug_resize_box(const Image *src, int bx, int by, int bw, int bh, Image *dst, AugInterp interp);

/* Resize src to (rw, rh) conceptually and write its window starting at
 * (ox, oy) of size dst->w x dst->h into dst; pixels of the window outside the
 * resized image are 0 (torchvision CenterCrop padding). */
int aug_resize_window(const Image *src, int rw, int rh, int ox, int oy, Image *dst, AugInterp interp);

void aug_hflip(Image *im);
void aug_vflip(Image *im);

/* RandAugment op names in timm's order; op index for aug_apply_op. */
enum {
    AUG_OP_AUTOCONTRAST, AUG_OP_EQUALIZE, AUG_OP_INVERT, AUG_OP_ROTATE, AUG_OP_POSTERIZE,
    AUG_OP_SOLARIZE, AUG_OP_SOLARIZE_ADD, AUG_OP_COLOR, AUG_OP_CONTRAST, AUG_OP_BRIGHTNESS,
    AUG_OP_SHARPNESS, AUG_OP_SHEARX, AUG_OP_SHEARY, AUG_OP_TRANSLATEX_REL, AUG_OP_TRANSLATEY_REL,
    AUG_NUM_OPS
};
const char *aug_op_name(int op, int increasing);
/* Apply one RandAugment op at magnitude m (0..10 scale) to im in place
 * (random sign / interpolation drawn from rng). fill: per-channel fill value
 * for geometric ops. Returns 0 or -1 (OOM). */
int aug_apply_op(Image *im, int op, float m, int increasing, const uint8_t fill[3],
                 float translate_pct, AugInterp interp, AugRng *rng);
/* Full RandAugment on im in place. */
int aug_randaugment(const AugRandAugment *ra, Image *im, const uint8_t fill[3], float translate_pct,
                    AugInterp interp, AugRng *rng);
/* torchvision ColorJitter(brightness, contrast, saturation) in random order. */
void aug_color_jitter(Image *im, const float jitter[3], AugRng *rng);

/* ToTensor + Normalize: HWC uint8 -> CHW float. */
void aug_normalize(const AugConfig *cfg, const Image *im, float *out_chw);

/* timm RandomErasing on one normalised CHW image (probability cfg->reprob).
 * Returns the number of erased boxes; boxes[4*i..] = (top, left, h, w) when
 * boxes != NULL (room for cfg->recount boxes). */
int aug_random_erase(const AugConfig *cfg, float *chw, int c, int h, int w, AugRng *rng, int *boxes);

/* The cutmix box for lambda (timm rand_bbox / rand_bbox_minmax) and the
 * corrected lambda = 1 - box area / image area. Box is [yl, yh) x [xl, xh). */
float aug_cutmix_box(const AugConfig *cfg, int h, int w, float lam, AugRng *rng,
                     int *yl, int *yh, int *xl, int *xh);
