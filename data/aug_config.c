/* AugConfig: timm's defaults, the --aa RandAugment string parser and a
 * flag-name setter for the command line. */
#include "data/source_util.h"
#include "data/augment.h"
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void aug_config_default(AugConfig *c) {
    memset(c, 0, sizeof *c);
    c->img_size = 224;
    c->in_chans = 3;
    c->scale[0] = 0.08f; c->scale[1] = 1.0f;
    c->ratio[0] = 3.0f / 4.0f; c->ratio[1] = 4.0f / 3.0f;
    c->hflip = 0.5f;
    c->vflip = 0.0f;
    c->aa[0] = 0;
    c->ra.enabled = 0; c->ra.num_ops = 2; c->ra.magnitude = 10; c->ra.mstd = 0; c->ra.mmax = 10;
    c->ra.prob = 0.5f;
    c->color_jitter[0] = c->color_jitter[1] = c->color_jitter[2] = 0.4f;
    c->reprob = 0.0f;
    c->remode = AUG_REMODE_PIXEL;
    c->recount = 1;
    c->mixup = 0.0f;
    c->cutmix = 0.0f;
    c->has_cutmix_minmax = 0;
    c->mixup_prob = 1.0f;
    c->mixup_switch_prob = 0.5f;
    c->smoothing = 0.1f;
    c->interpolation = AUG_INTERP_BICUBIC;
    c->train_interpolation = AUG_INTERP_RANDOM;
    c->crop_pct = 0.875f;
    c->mean[0] = 0.485f; c->mean[1] = 0.456f; c->mean[2] = 0.406f;
    c->std[0] = 0.229f; c->std[1] = 0.224f; c->std[2] = 0.225f;
    c->n_mean = c->n_std = 3;
    c->translate_pct = 0.45f;
}

float aug_mean(const AugConfig *c, int chans, int ch) {
    if (c->n_mean == 1) return c->mean[0];
    if (chans == 1) return (c->mean[0] + c->mean[1] + c->mean[2]) / 3.0f;
    return c->mean[ch];
}

float aug_std(const AugConfig *c, int chans, int ch) {
    if (c->n_std == 1) return c->std[0];
    if (chans == 1) return (c->std[0] + c->std[1] + c->std[2]) / 3.0f;
    return c->std[ch];
}

int aug_mixup_active(const AugConfig *c) {
    return (c->mixup > 0 || c->cutmix > 0 || c->has_cutmix_minmax) && c->mixup_prob > 0;
}

/* strtod over the whole string; 0 ok. */
static int parse_num(const char *s, double *v) {
    char *end;
    if (!s || !*s) return -1;
    *v = strtod(s, &end);
    if (end == s || *end != 0 || !isfinite(*v)) return -1;
    return 0;
}

int aug_config_parse_aa(AugConfig *c, const char *aa, char *err, size_t n) {
    AugRandAugment ra = {0, 2, 10, 0, 10, 0.5f, 0, 0};
    if (!aa || !*aa || !strcmp(aa, "none") || !strcmp(aa, "None")) {
        c->ra = ra;
        c->ra.enabled = 0;
        c->aa[0] = 0;
        return 0;
    }
    if (strlen(aa) >= sizeof c->aa) return src_seterr(err, n, "--aa '%s': string too long", aa);
    char buf[sizeof c->aa];
    strcpy(buf, aa);
    char *save = NULL, *tok = strtok_r(buf, "-", &save);
    if (!tok || strcmp(tok, "rand"))
        return src_seterr(err, n, "--aa '%s': unsupported policy '%s' (only 'rand-...' RandAugment strings, or 'none')",
                    aa, tok ? tok : "");
    /* sections are split on '-', so "rand--m9" / trailing '-' just give empty
     * tokens, which strtok skips; reject them explicitly for clarity */
    if (strstr(aa, "--") || aa[strlen(aa) - 1] == '-')
        return src_seterr(err, n, "--aa '%s': empty field", aa);
    while ((tok = strtok_r(NULL, "-", &save))) {
        size_t k = 0;
        while (tok[k] && !isdigit((unsigned char)tok[k]) && tok[k] != '.') k++;
        char key[32];
        if (k >= sizeof key) return src_seterr(err, n, "--aa '%s': unknown field '%s'", aa, tok);
        memcpy(key, tok, k);
        key[k] = 0;
        const char *val = tok + k;
        int known = !strcmp(key, "m") || !strcmp(key, "n") || !strcmp(key, "mstd") || !strcmp(key, "mmax") ||
                    !strcmp(key, "inc") || !strcmp(key, "w") || !strcmp(key, "p");
        if (!known) return src_seterr(err, n, "--aa '%s': unknown field '%s' (expected m, n, mstd, mmax, inc, p, w)", aa, tok);
        double v;
        if (!*val) return src_seterr(err, n, "--aa '%s': field '%s' needs a number (e.g. %s%s)", aa, key, key,
                               !strcmp(key, "mstd") ? "0.5" : !strcmp(key, "p") ? "0.5" : "1");
        if (parse_num(val, &v) || v < 0)
            return src_seterr(err, n, "--aa '%s': bad value '%s' for field '%s'", aa, val, key);
        if (!strcmp(key, "m")) ra.magnitude = (float)v;
        else if (!strcmp(key, "n")) {
            if (v != floor(v) || v > 64) return src_seterr(err, n, "--aa '%s': n must be an integer 0..64, got '%s'", aa, val);
            ra.num_ops = (int)v;
        } else if (!strcmp(key, "mstd")) ra.mstd = v > 100 ? INFINITY : (float)v;
        else if (!strcmp(key, "mmax")) ra.mmax = (float)v;
        else if (!strcmp(key, "inc")) ra.increasing = v != 0;
        else if (!strcmp(key, "p")) {
            if (v > 1) return src_seterr(err, n, "--aa '%s': p must be in [0,1], got '%s'", aa, val);
            ra.prob = (float)v;
        } else if (!strcmp(key, "w")) {
            if (v != 0) return src_seterr(err, n, "--aa '%s': only choice weights w0 exist, got '%s'", aa, val);
            ra.weighted = 1;
        }
    }
    if (ra.weighted && ra.num_ops > AUG_NUM_OPS - 2)
        return src_seterr(err, n, "--aa '%s': w0 picks ops without replacement from 13 weighted ops; n=%d too large", aa, ra.num_ops);
    ra.enabled = 1;
    c->ra = ra;
    strcpy(c->aa, aa);
    return 0;
}

/* Up to maxn numbers separated by commas and/or spaces; returns the count or -1. */
static int parse_list(const char *s, float *out, int maxn) {
    int cnt = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '(' || *p == ')' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v)) return -1;
        if (*end && *end != ' ' && *end != ',' && *end != ')' && *end != ']') return -1;
        if (cnt >= maxn) return -1;
        out[cnt++] = (float)v;
        p = end;
    }
    return cnt;
}

static int parse_interp(const char *v, AugInterp *out) {
    if (!strcmp(v, "bilinear")) *out = AUG_INTERP_BILINEAR;
    else if (!strcmp(v, "bicubic")) *out = AUG_INTERP_BICUBIC;
    else if (!strcmp(v, "random")) *out = AUG_INTERP_RANDOM;
    else return -1;
    return 0;
}

int aug_config_set(AugConfig *c, const char *flag, const char *value, char *err, size_t n) {
    const char *f = flag;
    while (*f == '-') f++;
    const char *v = value ? value : "";
    float l[4];
    int k;
#define IS(name) (!strcmp(f, name))
#define ONE(lo, hi)                                                                              \
    do {                                                                                         \
        k = parse_list(v, l, 1);                                                                 \
        if (k != 1 || l[0] < (lo) || l[0] > (hi))                                                \
            return src_seterr(err, n, "--%s '%s': expected one number in [%g, %g]", f, v, (double)(lo), (double)(hi)); \
    } while (0)
    if (IS("img-size")) {
        ONE(1, 8192);
        if (l[0] != floorf(l[0])) return src_seterr(err, n, "--img-size '%s': expected an integer", v);
        c->img_size = (int)l[0];
    } else if (IS("in-chans")) {
        ONE(1, 3);
        if (l[0] != 1 && l[0] != 3) return src_seterr(err, n, "--in-chans '%s': 1 or 3", v);
        c->in_chans = (int)l[0];
    } else if (IS("scale") || IS("ratio")) {
        k = parse_list(v, l, 2);
        if (k != 2 || l[0] <= 0 || l[1] < l[0] || (IS("scale") && l[1] > 1))
            return src_seterr(err, n, "--%s '%s': expected two numbers lo hi with 0 < lo <= hi%s", f, v,
                        IS("scale") ? " <= 1" : "");
        float *d = IS("scale") ? c->scale : c->ratio;
        d[0] = l[0]; d[1] = l[1];
    } else if (IS("hflip")) { ONE(0, 1); c->hflip = l[0]; }
    else if (IS("vflip")) { ONE(0, 1); c->vflip = l[0]; }
    else if (IS("aa")) { return aug_config_parse_aa(c, v, err, n); }
    else if (IS("color-jitter")) {
        if (!strcmp(v, "none") || !*v) { c->color_jitter[0] = c->color_jitter[1] = c->color_jitter[2] = 0; return 0; }
        k = parse_list(v, l, 4);
        if (k == 4 && l[3] == 0) k = 3;
        if ((k != 1 && k != 3) || l[0] < 0 || (k == 3 && (l[1] < 0 || l[2] < 0)))
            return src_seterr(err, n, "--color-jitter '%s': expected one value or three (brightness contrast saturation) >= 0; hue is not supported", v);
        for (int i = 0; i < 3; i++) c->color_jitter[i] = l[k == 1 ? 0 : i];
    } else if (IS("reprob")) { ONE(0, 1); c->reprob = l[0]; }
    else if (IS("remode")) {
        if (!strcmp(v, "pixel")) c->remode = AUG_REMODE_PIXEL;
        else if (!strcmp(v, "rand")) c->remode = AUG_REMODE_RAND;
        else if (!strcmp(v, "const")) c->remode = AUG_REMODE_CONST;
        else return src_seterr(err, n, "--remode '%s': expected pixel, rand or const", v);
    } else if (IS("recount")) {
        ONE(1, 64);
        c->recount = (int)l[0];
    } else if (IS("mixup")) { ONE(0, 1e6); c->mixup = l[0]; }
    else if (IS("cutmix")) { ONE(0, 1e6); c->cutmix = l[0]; }
    else if (IS("cutmix-minmax")) {
        if (!*v || !strcmp(v, "none") || !strcmp(v, "None")) { c->has_cutmix_minmax = 0; return 0; }
        k = parse_list(v, l, 2);
        if (k != 2 || l[0] <= 0 || l[1] > 1 || l[1] <= l[0])
            return src_seterr(err, n, "--cutmix-minmax '%s': expected two numbers 0 < min < max <= 1", v);
        c->cutmix_minmax[0] = l[0]; c->cutmix_minmax[1] = l[1];
        c->has_cutmix_minmax = 1;
    } else if (IS("mixup-prob")) { ONE(0, 1); c->mixup_prob = l[0]; }
    else if (IS("mixup-switch-prob")) { ONE(0, 1); c->mixup_switch_prob = l[0]; }
    else if (IS("mixup-mode")) {
        if (strcmp(v, "batch")) return src_seterr(err, n, "--mixup-mode '%s': only 'batch' is supported", v);
    } else if (IS("smoothing")) {
        k = parse_list(v, l, 1);
        if (k != 1 || l[0] < 0 || l[0] >= 1) return src_seterr(err, n, "--smoothing '%s': expected a number in [0, 1)", v);
        c->smoothing = l[0];
    } else if (IS("interpolation") || IS("train-interpolation")) {
        AugInterp ip;
        if (!*v) return 0; /* timm: '' = keep the default */
        if (parse_interp(v, &ip) || (IS("interpolation") && ip == AUG_INTERP_RANDOM))
            return src_seterr(err, n, "--%s '%s': expected bilinear or bicubic%s", f, v,
                        IS("interpolation") ? "" : " or random");
        if (IS("interpolation")) c->interpolation = ip; else c->train_interpolation = ip;
    } else if (IS("crop-pct")) {
        k = parse_list(v, l, 1);
        if (k != 1 || l[0] <= 0 || l[0] > 4) return src_seterr(err, n, "--crop-pct '%s': expected a number in (0, 4]", v);
        c->crop_pct = l[0];
    } else if (IS("mean") || IS("std")) {
        k = parse_list(v, l, 3);
        if (k != 1 && k != 3) return src_seterr(err, n, "--%s '%s': expected 1 or 3 numbers", f, v);
        float *d = IS("mean") ? c->mean : c->std;
        for (int i = 0; i < 3; i++) d[i] = l[k == 1 ? 0 : i];
        if (IS("std"))
            for (int i = 0; i < 3; i++)
                if (!(d[i] > 0)) return src_seterr(err, n, "--std '%s': values must be > 0", v);
        if (IS("mean")) c->n_mean = k; else c->n_std = k;
    } else {
        return 1;
    }
#undef IS
#undef ONE
    return 0;
}

/* Shortest %g form that reads back as the same float. */
static void fmt_float(char *b, size_t n, float v) {
    if (!b || !n) return;
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(b, n, "%.*g", prec, (double)v);
        if (strtof(b, NULL) == v) return;
    }
}

static void fmt_floats(char *b, size_t n, const float *v, int k) {
    size_t L = 0;
    b[0] = 0;
    for (int i = 0; i < k && L < n; i++) {
        char one[32];
        fmt_float(one, sizeof one, v[i]);
        L += (size_t)snprintf(b + L, n - L, "%s%s", i ? "," : "", one);
    }
}

int aug_config_get(const AugConfig *c, const char *flag, char *b, size_t n) {
    const char *f = flag;
    while (*f == '-') f++;
    static const char *const interp[] = {"bilinear", "bicubic", "random"};
    static const char *const remode[] = {"const", "rand", "pixel"}; /* AugReMode order */
#define IS(name) (!strcmp(f, name))
    if (IS("img-size")) snprintf(b, n, "%d", c->img_size);
    else if (IS("in-chans")) snprintf(b, n, "%d", c->in_chans);
    else if (IS("scale")) fmt_floats(b, n, c->scale, 2);
    else if (IS("ratio")) fmt_floats(b, n, c->ratio, 2);
    else if (IS("hflip")) fmt_float(b, n, c->hflip);
    else if (IS("vflip")) fmt_float(b, n, c->vflip);
    else if (IS("aa")) snprintf(b, n, "%s", c->aa[0] ? c->aa : "none");
    else if (IS("color-jitter")) fmt_floats(b, n, c->color_jitter, 3);
    else if (IS("reprob")) fmt_float(b, n, c->reprob);
    else if (IS("remode")) snprintf(b, n, "%s", remode[c->remode >= 0 && c->remode < 3 ? c->remode : 2]);
    else if (IS("recount")) snprintf(b, n, "%d", c->recount);
    else if (IS("mixup")) fmt_float(b, n, c->mixup);
    else if (IS("cutmix")) fmt_float(b, n, c->cutmix);
    else if (IS("cutmix-minmax")) {
        if (c->has_cutmix_minmax) fmt_floats(b, n, c->cutmix_minmax, 2);
        else snprintf(b, n, "none");
    } else if (IS("mixup-prob")) fmt_float(b, n, c->mixup_prob);
    else if (IS("mixup-switch-prob")) fmt_float(b, n, c->mixup_switch_prob);
    else if (IS("mixup-mode")) snprintf(b, n, "batch");
    else if (IS("smoothing")) fmt_float(b, n, c->smoothing);
    else if (IS("interpolation")) snprintf(b, n, "%s", interp[c->interpolation >= 0 && c->interpolation < 3 ? c->interpolation : 1]);
    else if (IS("train-interpolation"))
        snprintf(b, n, "%s", interp[c->train_interpolation >= 0 && c->train_interpolation < 3 ? c->train_interpolation : 2]);
    else if (IS("crop-pct")) fmt_float(b, n, c->crop_pct);
    else if (IS("mean")) fmt_floats(b, n, c->mean, c->n_mean == 1 ? 1 : 3);
    else if (IS("std")) fmt_floats(b, n, c->std, c->n_std == 1 ? 1 : 3);
    else return 1;
#undef IS
    return 0;
}

int aug_config_check(const AugConfig *c, char *err, size_t n) {
    if (c->img_size < 1 || c->img_size > 8192) return src_seterr(err, n, "augment: img_size %d out of range", c->img_size);
    if (c->in_chans != 1 && c->in_chans != 3) return src_seterr(err, n, "augment: in_chans %d (1 or 3)", c->in_chans);
    if (!(c->scale[0] > 0 && c->scale[0] <= c->scale[1] && c->scale[1] <= 1))
        return src_seterr(err, n, "augment: scale (%g, %g) not in 0 < lo <= hi <= 1", c->scale[0], c->scale[1]);
    if (!(c->ratio[0] > 0 && c->ratio[0] <= c->ratio[1]))
        return src_seterr(err, n, "augment: ratio (%g, %g) not 0 < lo <= hi", c->ratio[0], c->ratio[1]);
    if (!(c->crop_pct > 0)) return src_seterr(err, n, "augment: crop_pct %g must be > 0", c->crop_pct);
    if (c->n_mean != 1 && c->n_mean != 3) return src_seterr(err, n, "augment: %d mean values (1 or 3)", c->n_mean);
    if (c->n_std != 1 && c->n_std != 3) return src_seterr(err, n, "augment: %d std values (1 or 3)", c->n_std);
    for (int i = 0; i < 3; i++)
        if (!(c->std[i] > 0) && (i < c->n_std)) return src_seterr(err, n, "augment: std[%d] = %g must be > 0", i, c->std[i]);
    if (c->recount < 1) return src_seterr(err, n, "augment: recount %d must be >= 1", c->recount);
    if (c->has_cutmix_minmax && !(c->cutmix_minmax[0] > 0 && c->cutmix_minmax[0] < c->cutmix_minmax[1] && c->cutmix_minmax[1] <= 1))
        return src_seterr(err, n, "augment: cutmix_minmax (%g, %g) invalid", c->cutmix_minmax[0], c->cutmix_minmax[1]);
    if (c->smoothing < 0 || c->smoothing >= 1) return src_seterr(err, n, "augment: smoothing %g not in [0,1)", c->smoothing);
    return 0;
}
