/* Data-pipeline flags shared by train / eval / predict / grads / bench-data:
 * timm's augmentation flag names -> AugConfig, and the loader's own knobs -> LoaderConfig. */
#pragma once
#include "data/augment.h"
#include "data/loader.h"
#include "data/permute.h"
#include "layers/model.h"
#include "train/args.h"
#include <stddef.h>
#include <stdio.h>

/* Augmentation flags, timm names (values as timm takes them: `--mean 0.5 0.5 0.5`,
 * `--mean=0.5,0.5,0.5`, `--scale 0.08 1.0`):
 *   --scale --ratio --hflip --vflip --aa --color-jitter --reprob --remode --recount
 *   --mixup --cutmix --cutmix-minmax --mixup-prob --mixup-switch-prob --mixup-mode
 *   --smoothing --interpolation --train-interpolation --crop-pct --mean --std
 * (--img-size / --in-chans belong to the model / loader and are not read here.)
 * Only flags present change *aug. 0 ok, -1 with err ("mixtape: --reprob '2': ..."). */
int data_flags_parse(Args *a, AugConfig *aug, char *err, size_t errn);

/* --permute none|patches|global, --permute-seed S, --permute-patch N (data/permute.h; called by
 * data_flags_parse). Only with --permute present is *p changed (p->given = 1, the patch 0 when
 * not given: resolve it with data_flags_permute_patch); else a checkpoint's recorded permutation
 * may apply. --permute-seed / --permute-patch without --permute: -1 with err. */
int data_flags_permute(Args *a, PermuteConfig *p, char *err, size_t errn);
/* The default patch of --permute patches for model m: its patch size, else its stem stride
 * (poolformer), else 4. Fills p->patch when unset; returns it. */
int data_flags_permute_patch(PermuteConfig *p, const ModelConfig *m);

/* Loader flags: --shuffle-buffer N (tar shards; 0 = none), --prefetch N (ready batches),
 * --fast-decode (JPEG DCT-scaled decode to about the output size; faster, not timm-exact),
 * --data-warnings N (warning lines before counting silently), --num-classes-data N is not
 * needed: num_classes comes from the model. Only flags present change *c. 0 ok, -1 err. */
int data_flags_loader(Args *a, LoaderConfig *c, char *err, size_t errn);

