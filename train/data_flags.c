#include "train/data_flags.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* timm's augmentation flags: one declaration each (type, range, help); the default shown
 * is the AugConfig's value, the value recorded for args.yaml is the resolved one. */
static const struct {
    const char *flag;
    ArgType type;
    double lo, hi;
    const char *choices, *help;
} AUG[] = {
    {"--scale", ARG_LIST, 1e-6, 1, NULL, "random-resized-crop area fraction lo hi"},
    {"--ratio", ARG_LIST, 1e-3, 1e3, NULL, "random-resized-crop aspect ratio lo hi"},
    {"--hflip", ARG_FLOAT, 0, 1, NULL, "horizontal flip probability"},
    {"--vflip", ARG_FLOAT, 0, 1, NULL, "vertical flip probability"},
    {"--aa", ARG_STR, 1, 0, "rand-m9-mstd0.5-inc1|rand-m7-n3-mstd0.5|none", "RandAugment policy, timm syntax (e.g. rand-m9-mstd0.5-inc1), or none"},
    {"--color-jitter", ARG_LIST, 0, 100, NULL, "brightness contrast saturation jitter: one value or three"},
    {"--reprob", ARG_FLOAT, 0, 1, NULL, "random erasing probability"},
    {"--remode", ARG_CHOICE, 1, 0, "pixel|rand|const", "random erasing fill"},
    {"--recount", ARG_INT, 1, 64, NULL, "random erasing boxes per image"},
    {"--mixup", ARG_FLOAT, 0, 1e6, NULL, "mixup beta alpha (0 = off)"},
    {"--cutmix", ARG_FLOAT, 0, 1e6, NULL, "cutmix beta alpha (0 = off)"},
    {"--cutmix-minmax", ARG_LIST, 0, 1, NULL, "cutmix box area fraction min max (instead of the alpha), or none"},
    {"--mixup-prob", ARG_FLOAT, 0, 1, NULL, "probability of mixup or cutmix per batch"},
    {"--mixup-switch-prob", ARG_FLOAT, 0, 1, NULL, "probability of cutmix instead of mixup when both are on"},
    {"--mixup-mode", ARG_CHOICE, 1, 0, "batch", "mixup granularity"},
    {"--smoothing", ARG_FLOAT, 0, 0.999, NULL, "label smoothing"},
    {"--interpolation", ARG_CHOICE, 1, 0, "bilinear|bicubic", "eval resize interpolation"},
    {"--train-interpolation", ARG_CHOICE, 1, 0, "bilinear|bicubic|random", "train crop interpolation"},
    {"--crop-pct", ARG_FLOAT, 1e-3, 4, NULL, "eval center-crop fraction (resize to img-size / crop-pct)"},
    {"--mean", ARG_LIST, -1e3, 1e3, NULL, "normalisation mean: one value or one per channel"},
    {"--std", ARG_LIST, 1e-6, 1e3, NULL, "normalisation std: one value or one per channel"},
};

int data_flags_parse(Args *a, AugConfig *aug, char *err, size_t errn) {
    char buf[512], e[512], def[128];
    args_group(a, "augment (timm names)");
    for (size_t i = 0; i < sizeof AUG / sizeof *AUG; i++) {
        const char *f = AUG[i].flag;
        aug_config_get(aug, f, def, sizeof def);
        const char *v;
        if (AUG[i].type == ARG_LIST) v = args_list(a, f, def, AUG[i].lo, AUG[i].hi, AUG[i].help, buf, sizeof buf);
        else v = args_value(a, f, NULL, AUG[i].type, def, AUG[i].lo, AUG[i].hi, AUG[i].choices, AUG[i].help);
        if (a->failed) { snprintf(err, errn, "%s", a->err); return -1; }
        if (v) {
            int rc = aug_config_set(aug, f, v, e, sizeof e);
            if (rc < 0) { snprintf(err, errn, "mixtape %s: %s", a->cmd, e); return -1; }
            if (rc > 0) { snprintf(err, errn, "mixtape %s: '%s' is not an augmentation flag", a->cmd, f); return -1; }
        }
        aug_config_get(aug, f, buf, sizeof buf); /* recorded: the resolved value, canonical */
        args_record(a, f, buf);
    }
    return data_flags_permute(a, &aug->permute, err, errn);
}

int data_flags_permute(Args *a, PermuteConfig *p, char *err, size_t errn) {
    args_group(a, "input permutation (MLP-Mixer invariance test)");
    const char *mode = args_choice(a, "--permute", NULL, permute_mode_name(p->mode), "none|patches|global",
                                   "fixed pixel permutation of every image: patches (patch order + pixels "
                                   "within a patch) or global (all pixels)");
    long seed = args_int_range(a, "--permute-seed", NULL, (long)p->seed, 0, (long)PERMUTE_SEED_MAX,
                               "seed of the --permute permutation");
    const char *patch = args_value(a, "--permute-patch", NULL, ARG_INT, NULL, 1, PERMUTE_PATCH_MAX, NULL,
                                   "patch side for --permute patches (default: the model's patch size, or its "
                                   "stem stride, else 4); must divide the image side");
    if (a->failed) { snprintf(err, errn, "%s", a->err); return -1; }
    int has_mode = args_has(a, "--permute", NULL);
    if (!has_mode && (args_has(a, "--permute-seed", NULL) || patch) && !args_describing(a)) {
        snprintf(err, errn, "mixtape %s: --permute-seed / --permute-patch need --permute patches|global", a->cmd);
        return -1;
    }
    if (!has_mode) return 0;   /* unset: a checkpoint's recorded permutation may apply */
    p->mode = permute_mode_parse(mode);
    p->seed = (uint64_t)seed;
    p->patch = patch ? atoi(patch) : 0;
    p->given = 1;
    return 0;
}

int data_flags_permute_patch(PermuteConfig *p, const ModelConfig *m) {
    if (p->mode == PERMUTE_PATCHES && p->patch <= 0)
        p->patch = m->patch_size > 0 ? m->patch_size : m->stem_stride > 0 ? m->stem_stride : 4;
    return p->patch;
}

int data_flags_loader(Args *a, LoaderConfig *c, char *err, size_t errn) {
    args_group(a, "loader");
    c->shuffle_buffer = (int)args_int_range(a, "--shuffle-buffer", NULL, c->shuffle_buffer, -1, 1 << 24,
                                            "tar shards: samples in the shuffle buffer (-1: 4096 when training, 0 = none)");
    c->prefetch = (int)args_int_range(a, "--prefetch", NULL, c->prefetch > 0 ? c->prefetch : 3, 1, 64,
                                      "ready batches queued ahead");
    c->max_warnings = (int)args_int_range(a, "--data-warnings", NULL, c->max_warnings, 0, 1000000,
                                          "unreadable-sample warnings printed before counting silently");
    c->fast_decode = args_bool(a, "--fast-decode", c->fast_decode,
                               "JPEG DCT-scaled decode to about the output size (faster, not timm-exact)");
    if (a->failed) { snprintf(err, errn, "%s", a->err); return -1; }
    return 0;
}

