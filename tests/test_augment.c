/* Augmentation tests: geometry, resampling accuracy, determinism, --aa
 * parsing, every RandAugment op on gray and RGB, normalisation, random
 * erasing, mixup / cutmix / smoothing targets; prints (does not assert) the
 * speed of aug_train on a 500x375 RGB image. */
#include "data/augment.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "check.h"


static uint64_t tstate = 0x9e3779b97f4a7c15ull;
static uint32_t trand(void) {
    tstate ^= tstate >> 12; tstate ^= tstate << 25; tstate ^= tstate >> 27;
    return (uint32_t)((tstate * 2685821657736338717ull) >> 32);
}

static Image make_random(int w, int h, int c) {
    Image im;
    if (image_alloc(&im, w, h, c)) { printf("alloc failed\n"); exit(1); }
    for (size_t i = 0; i < (size_t)w * h * c; i++) im.px[i] = (uint8_t)trand();
    return im;
}

/* A smooth natural-ish test picture (gradients + rings). */
static Image make_picture(int w, int h, int c) {
    Image im;
    if (image_alloc(&im, w, h, c)) { printf("alloc failed\n"); exit(1); }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                double v = 128 + 60 * sin(0.05 * x + k) + 50 * cos(0.07 * y - k) +
                           15 * sin(0.002 * ((x - w / 2) * (x - w / 2) + (y - h / 2) * (y - h / 2)));
                im.px[((size_t)y * w + x) * c + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return im;
}

/* CPU time of this thread: the machine is shared, wall time would measure the neighbours. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_flip(void) {
    for (int c = 1; c <= 3; c += 2) {
        Image a = make_random(7, 5, c), b = make_random(7, 5, c);
        memcpy(b.px, a.px, 7 * 5 * c);
        aug_hflip(&b);
        int ok = 1;
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 7; x++)
                for (int k = 0; k < c; k++)
                    ok &= b.px[(y * 7 + x) * c + k] == a.px[(y * 7 + 6 - x) * c + k];
        CHECK(ok, "hflip mirrors exactly (c=%d)", c);
        aug_hflip(&b);
        CHECK(!memcmp(a.px, b.px, 35 * c), "hflip twice is identity");
        aug_vflip(&b);
        ok = 1;
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 7; x++)
                for (int k = 0; k < c; k++)
                    ok &= b.px[(y * 7 + x) * c + k] == a.px[((4 - y) * 7 + x) * c + k];
        CHECK(ok, "vflip mirrors exactly (c=%d)", c);
        image_free(&a); image_free(&b);
    }
}

static void test_rrc(void) {
    AugConfig cfg;
    aug_config_default(&cfg);
    AugRng r;
    aug_rng_seed(&r, 1, 2);
    int sizes[][2] = {{500, 375}, {375, 500}, {100, 1000}, {1000, 60}, {1, 1}, {3, 2}, {224, 224}};
    for (int s = 0; s < 7; s++) {
        int W = sizes[s][0], H = sizes[s][1];
        int inside = 1, area_ok = 1, ratio_ok = 1, fallback = 0;
        for (int it = 0; it < 20000; it++) {
            int x, y, w, h;
            aug_rrc_params(W, H, cfg.scale, cfg.ratio, &r, &x, &y, &w, &h);
            if (!(x >= 0 && y >= 0 && w >= 1 && h >= 1 && x + w <= W && y + h <= H)) inside = 0;
            int is_fallback = (x == (W - w) / 2 && y == (H - h) / 2 && (w == W || h == H));
            double A = (double)W * H;
            int aok = (w + 0.5) * (h + 0.5) >= cfg.scale[0] * A && (w - 0.5) * (h - 0.5) <= cfg.scale[1] * A;
            int rok = (w + 0.5) / (h - 0.5) >= cfg.ratio[0] && (w - 0.5) / (h + 0.5) <= cfg.ratio[1];
            if (!aok || !rok) {
                if (is_fallback) { fallback++; continue; }
                area_ok &= aok;
                ratio_ok &= rok;
            }
        }
        CHECK(inside, "RRC box inside %dx%d", W, H);
        CHECK(area_ok, "RRC area within scale for %dx%d", W, H);
        CHECK(ratio_ok, "RRC ratio within range for %dx%d", W, H);
    }
}

static void test_resize(void) {
    /* constant image stays constant, up and down, both filters */
    int dims[][4] = {{500, 375, 224, 224}, {50, 37, 224, 224}, {224, 224, 100, 300}, {3, 1, 224, 7}};
    for (int d = 0; d < 4; d++)
        for (int ip = 0; ip < 2; ip++)
            for (int c = 1; c <= 3; c += 2) {
                Image src, dst;
                image_alloc(&src, dims[d][0], dims[d][1], c);
                image_alloc(&dst, dims[d][2], dims[d][3], c);
                memset(src.px, 173, (size_t)src.w * src.h * c);
                CHECK(aug_resize_box(&src, 0, 0, src.w, src.h, &dst, (AugInterp)ip) == 0, "resize runs");
                int ok = 1;
                for (size_t i = 0; i < (size_t)dst.w * dst.h * c; i++) ok &= dst.px[i] == 173;
                CHECK(ok, "constant stays constant %dx%d -> %dx%d interp %d c %d", src.w, src.h, dst.w, dst.h, ip, c);
                image_free(&src); image_free(&dst);
            }
    /* linear ramp: accurate to +-1 away from the borders */
    int ramps[][2] = {{400, 224}, {1000, 224}, {100, 224}, {224, 150}};
    for (int d = 0; d < 4; d++)
        for (int ip = 0; ip < 2; ip++) {
            int W = ramps[d][0], OW = ramps[d][1], H = 9;
            Image src, dst;
            image_alloc(&src, W, H, 3);
            image_alloc(&dst, OW, 5, 3);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int k = 0; k < 3; k++) src.px[(y * W + x) * 3 + k] = (uint8_t)lrint(x * 255.0 / (W - 1));
            aug_resize_box(&src, 0, 0, W, H, &dst, (AugInterp)ip);
            double scale = (double)W / OW, support = (ip ? 2.0 : 1.0) * (scale > 1 ? scale : 1);
            int margin = (int)ceil(support / scale) + 1;
            double maxerr = 0;
            for (int y = 0; y < 5; y++)
                for (int x = margin; x < OW - margin; x++) {
                    double sx = (x + 0.5) * scale - 0.5, want = sx * 255.0 / (W - 1);
                    for (int k = 0; k < 3; k++) {
                        double e = fabs(dst.px[(y * OW + x) * 3 + k] - want);
                        if (e > maxerr) maxerr = e;
                    }
                }
            CHECK(maxerr <= 1.0, "ramp %d -> %d interp %d: max error %.3f > 1", W, OW, ip, maxerr);
            image_free(&src); image_free(&dst);
        }
    /* identical size box copies exactly */
    Image a = make_random(50, 40, 3), b;
    image_alloc(&b, 20, 10, 3);
    aug_resize_box(&a, 5, 7, 20, 10, &b, AUG_INTERP_BICUBIC);
    int ok = 1;
    for (int y = 0; y < 10; y++) ok &= !memcmp(b.px + y * 60, a.px + ((7 + y) * 50 + 5) * 3, 60);
    CHECK(ok, "same-size box is a crop copy");
    image_free(&a); image_free(&b);
}

static void test_eval(void) {
    AugConfig cfg;
    aug_config_default(&cfg);
    char err[256];
    /* identity pass-through */
    cfg.crop_pct = 1.0f;
    Image a = make_random(224, 224, 3);
    float *out = malloc(sizeof(float) * 3 * 224 * 224), *ref = malloc(sizeof(float) * 3 * 224 * 224);
    CHECK(aug_eval(&cfg, &a, out, err, sizeof err) == 0, "eval runs: %s", err);
    aug_normalize(&cfg, &a, ref);
    CHECK(!memcmp(out, ref, sizeof(float) * 3 * 224 * 224), "eval at target size is bit-exact pass-through");
    int ok = 1;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 224 * 224; i++)
            ok &= out[k * 224 * 224 + i] == ((float)a.px[i * 3 + k] / 255.0f - cfg.mean[k]) / cfg.std[k];
    CHECK(ok, "normalisation = (v/255 - mean)/std in float");
    /* already at the target size: passed through even with the default crop_pct 0.875 */
    cfg.crop_pct = 0.875f;
    CHECK(aug_eval(&cfg, &a, out, err, sizeof err) == 0, "eval runs: %s", err);
    CHECK(!memcmp(out, ref, sizeof(float) * 3 * 224 * 224), "eval at target size ignores crop_pct (no zoom)");
    cfg.crop_pct = 1.0f;
    image_free(&a);
    /* centre crop of a known image: 301x224 -> shorter side already 224, crop left = round(38.5) = 38 */
    Image b = make_random(301, 224, 3);
    aug_eval(&cfg, &b, out, err, sizeof err);
    ok = 1;
    for (int y = 0; y < 224; y++)
        for (int x = 0; x < 224; x++)
            for (int k = 0; k < 3; k++)
                ok &= out[k * 224 * 224 + y * 224 + x] ==
                      ((float)b.px[(y * 301 + x + 38) * 3 + k] / 255.0f - cfg.mean[k]) / cfg.std[k];
    CHECK(ok, "centre crop of 301x224 takes columns 38..261");
    image_free(&b);
    /* 256x320 with crop_pct 0.875: shorter side 256 already, crop (16, 48) */
    cfg.crop_pct = 0.875f;
    Image c = make_random(256, 320, 1);
    cfg.in_chans = 1;
    aug_eval(&cfg, &c, out, err, sizeof err);
    ok = 1;
    float m = aug_mean(&cfg, 1, 0), s = aug_std(&cfg, 1, 0);
    for (int y = 0; y < 224; y++)
        for (int x = 0; x < 224; x++) ok &= out[y * 224 + x] == ((float)c.px[(y + 48) * 256 + x + 16] / 255.0f - m) / s;
    CHECK(ok, "gray eval crop of 256x320 at (16,48)");
    CHECK(fabsf(m - 0.449f) < 1e-6f, "gray mean from 3-value mean = average (%f)", m);
    image_free(&c);
    /* resizing eval on a constant image, and gray -> RGB conversion */
    cfg.in_chans = 3;
    Image d;
    image_alloc(&d, 500, 375, 1);
    memset(d.px, 200, 500 * 375);
    CHECK(aug_eval(&cfg, &d, out, err, sizeof err) == 0, "eval gray->rgb: %s", err);
    ok = 1;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 224 * 224; i++) ok &= out[k * 224 * 224 + i] == (200.0f / 255.0f - cfg.mean[k]) / cfg.std[k];
    CHECK(ok, "eval of constant gray image to RGB is constant per channel");
    image_free(&d);
    /* crop larger than the image pads with zeros (torchvision CenterCrop) */
    cfg.crop_pct = 2.0f; /* resize shorter side to 112, crop 224 */
    Image e;
    image_alloc(&e, 100, 100, 3);
    memset(e.px, 255, 100 * 100 * 3);
    aug_eval(&cfg, &e, out, err, sizeof err);
    CHECK(out[0] == (0.0f - cfg.mean[0]) / cfg.std[0], "padding is zero");
    CHECK(out[112 * 224 + 112] == (1.0f - cfg.mean[0]) / cfg.std[0], "centre is image");
    image_free(&e);
    free(out); free(ref);
}

static void test_parse(void) {
    AugConfig cfg;
    aug_config_default(&cfg);
    char err[256];
    CHECK(aug_config_parse_aa(&cfg, "rand-m9-mstd0.5-inc1", err, sizeof err) == 0, "parse: %s", err);
    CHECK(cfg.ra.enabled && cfg.ra.magnitude == 9 && cfg.ra.mstd == 0.5f && cfg.ra.increasing && cfg.ra.num_ops == 2 &&
              cfg.ra.mmax == 10 && cfg.ra.prob == 0.5f && !cfg.ra.weighted, "rand-m9-mstd0.5-inc1 fields");
    CHECK(aug_config_parse_aa(&cfg, "rand-m7-n3-mmax12-p0.7-w0", err, sizeof err) == 0, "parse: %s", err);
    CHECK(cfg.ra.magnitude == 7 && cfg.ra.num_ops == 3 && cfg.ra.mmax == 12 && fabsf(cfg.ra.prob - 0.7f) < 1e-6 &&
              cfg.ra.weighted && !cfg.ra.increasing, "rand-m7-n3-mmax12-p0.7-w0 fields");
    CHECK(aug_config_parse_aa(&cfg, "rand-mstd101", err, sizeof err) == 0 && isinf(cfg.ra.mstd), "mstd>100 = inf");
    CHECK(aug_config_parse_aa(&cfg, "none", err, sizeof err) == 0 && !cfg.ra.enabled, "none turns off");
    CHECK(aug_config_parse_aa(&cfg, "", err, sizeof err) == 0 && !cfg.ra.enabled, "empty turns off");
    struct { const char *s, *msg; } bad[] = {
        {"rand-m9-xx", "unknown field 'xx'"},
        {"rand-m9-mstd", "needs a number"},
        {"rand-mx", "unknown field 'mx'"},
        {"rand-m9x", "bad value '9x'"},
        {"rand-n2.5", "integer"},
        {"rand-m9-", "empty field"},
        {"rand--m9", "empty field"},
        {"augmix-m5", "unsupported policy 'augmix'"},
        {"original", "unsupported policy"},
        {"rand-p2", "p must be"},
        {"rand-w1", "w0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        int rc = aug_config_parse_aa(&cfg, bad[i].s, err, sizeof err);
        CHECK(rc == -1 && strstr(err, bad[i].msg), "'%s' should fail with '%s', got rc %d '%s'", bad[i].s, bad[i].msg, rc, err);
    }
    /* flag setter */
    CHECK(aug_config_set(&cfg, "--reprob", "0.25", err, sizeof err) == 0 && cfg.reprob == 0.25f, "--reprob");
    CHECK(aug_config_set(&cfg, "--scale", "0.5,1", err, sizeof err) == 0 && cfg.scale[0] == 0.5f, "--scale");
    CHECK(aug_config_set(&cfg, "--ratio", "0.5 2", err, sizeof err) == 0 && cfg.ratio[1] == 2.0f, "--ratio");
    CHECK(aug_config_set(&cfg, "--mean", "0.5", err, sizeof err) == 0 && cfg.n_mean == 1, "--mean 1 value");
    CHECK(aug_config_set(&cfg, "--std", "0.5 0.5 0", err, sizeof err) == -1, "--std 0 rejected: %s", err);
    CHECK(aug_config_set(&cfg, "--cutmix-minmax", "0.2,0.8", err, sizeof err) == 0 && cfg.has_cutmix_minmax, "minmax");
    CHECK(aug_config_set(&cfg, "--interpolation", "nearest", err, sizeof err) == -1, "bad interp: %s", err);
    CHECK(aug_config_set(&cfg, "--aa", "rand-m9-xx", err, sizeof err) == -1 && strstr(err, "'xx'"), "--aa via set");
    CHECK(aug_config_set(&cfg, "--lr", "0.1", err, sizeof err) == 1, "not an aug flag");
    CHECK(aug_config_set(&cfg, "--hflip", "abc", err, sizeof err) == -1, "bad number: %s", err);
    CHECK(aug_config_set(&cfg, "--color-jitter", "0.3 0.2 0.1", err, sizeof err) == 0 && cfg.color_jitter[2] == 0.1f, "cj3");
}

static void test_ops(void) {
    uint8_t fill[3] = {124, 116, 104};
    AugRng r;
    aug_rng_seed(&r, 7, 0);
    int sizes[][2] = {{1, 1}, {2, 3}, {7, 5}, {64, 48}};
    for (int c = 1; c <= 3; c += 2)
        for (int s = 0; s < 4; s++)
            for (int op = 0; op < AUG_NUM_OPS; op++)
                for (int inc = 0; inc < 2; inc++)
                    for (int mi = 0; mi <= 2; mi++)
                        for (int ip = 0; ip < 3; ip++) {
                            Image im = make_random(sizes[s][0], sizes[s][1], c);
                            int rc = aug_apply_op(&im, op, mi * 5.0f, inc, fill, 0.45f, (AugInterp)ip, &r);
                            CHECK(rc == 0, "op %s c=%d %dx%d", aug_op_name(op, inc), c, im.w, im.h);
                            image_free(&im);
                        }
    /* known results */
    Image a = make_random(31, 17, 3), b = make_random(31, 17, 3);
    size_t nb = 31 * 17 * 3;
    memcpy(b.px, a.px, nb);
    aug_apply_op(&b, AUG_OP_INVERT, 5, 0, fill, 0.45f, AUG_INTERP_BILINEAR, &r);
    int ok = 1;
    for (size_t i = 0; i < nb; i++) ok &= b.px[i] == 255 - a.px[i];
    CHECK(ok, "invert");
    for (int op = AUG_OP_ROTATE; op <= AUG_OP_TRANSLATEY_REL; op++) {
        if (op != AUG_OP_ROTATE && op < AUG_OP_SHEARX) continue;
        for (int ip = 0; ip < 2; ip++) {
            memcpy(b.px, a.px, nb);
            aug_apply_op(&b, op, 0, 0, fill, 0.45f, (AugInterp)ip, &r);
            CHECK(!memcmp(a.px, b.px, nb), "%s at magnitude 0 is identity (interp %d)", aug_op_name(op, 0), ip);
        }
    }
    memcpy(b.px, a.px, nb);
    aug_apply_op(&b, AUG_OP_BRIGHTNESS, 5, 1, fill, 0.45f, AUG_INTERP_BILINEAR, &r); /* factor 1 +- 0.45 */
    memcpy(b.px, a.px, nb);
    aug_apply_op(&b, AUG_OP_SOLARIZE, 0, 1, fill, 0.45f, AUG_INTERP_BILINEAR, &r); /* inc m0: thresh 256 */
    CHECK(!memcmp(a.px, b.px, nb), "SolarizeIncreasing at m0 is identity");
    memcpy(b.px, a.px, nb);
    aug_apply_op(&b, AUG_OP_SOLARIZE, 5, 0, fill, 0.45f, AUG_INTERP_BILINEAR, &r); /* thresh 128 */
    ok = 1;
    for (size_t i = 0; i < nb; i++) ok &= b.px[i] == (a.px[i] < 128 ? a.px[i] : 255 - a.px[i]);
    CHECK(ok, "solarize 128");
    memcpy(b.px, a.px, nb);
    aug_apply_op(&b, AUG_OP_POSTERIZE, 10, 0, fill, 0.45f, AUG_INTERP_BILINEAR, &r); /* 4 bits */
    ok = 1;
    for (size_t i = 0; i < nb; i++) ok &= b.px[i] == (a.px[i] & 0xF0);
    CHECK(ok, "posterize 4 bits");
    /* translate by the full range fills with the mean colour at the far side */
    Image t;
    image_alloc(&t, 100, 10, 3);
    memset(t.px, 10, 3000);
    for (int tries = 0; tries < 4; tries++) {
        memset(t.px, 10, 3000);
        aug_apply_op(&t, AUG_OP_TRANSLATEX_REL, 10, 0, fill, 0.45f, AUG_INTERP_BILINEAR, &r); /* 45 px */
        int left = t.px[0] == 124 && t.px[1] == 116 && t.px[2] == 104;
        int right = t.px[99 * 3] == 124 && t.px[99 * 3 + 2] == 104;
        CHECK(left != right && (t.px[50 * 3] == 10), "translate 45 px fills one side with img_mean");
    }
    image_free(&t);
    image_free(&a); image_free(&b);
    /* full RandAugment on RGB and gray through aug_train */
    AugConfig cfg;
    aug_config_default(&cfg);
    char err[256];
    aug_config_parse_aa(&cfg, "rand-m9-mstd0.5-inc1", err, sizeof err);
    cfg.reprob = 0.5f;
    float *out = malloc(sizeof(float) * 3 * 224 * 224);
    for (int c = 1; c <= 3; c += 2)
        for (int chans = 1; chans <= 3; chans += 2) {
            cfg.in_chans = chans;
            Image im = make_picture(97, 61, c);
            for (int i = 0; i < 10; i++) {
                AugRng rr;
                aug_rng_for_sample(&rr, 42, 0, i);
                CHECK(aug_train(&cfg, &im, &rr, out, err, sizeof err) == 0, "aug_train RA c=%d->%d: %s", c, chans, err);
            }
            image_free(&im);
        }
    aug_config_parse_aa(&cfg, "rand-m10-n4-w0-mstd101", err, sizeof err);
    Image im = make_picture(60, 80, 3);
    cfg.in_chans = 3;
    for (int i = 0; i < 20; i++) {
        AugRng rr;
        aug_rng_for_sample(&rr, 1, 2, i);
        CHECK(aug_train(&cfg, &im, &rr, out, err, sizeof err) == 0, "aug_train w0: %s", err);
    }
    image_free(&im);
    free(out);
}

static void test_determinism(void) {
    AugConfig cfg;
    aug_config_default(&cfg);
    char err[256];
    aug_config_parse_aa(&cfg, "rand-m9-mstd0.5-inc1", err, sizeof err);
    cfg.reprob = 0.25f;
    Image im = make_picture(320, 240, 3);
    size_t n = 3 * 224 * 224;
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    int same = 1, differ = 0;
    for (int i = 0; i < 8; i++) {
        AugRng r1, r2;
        aug_rng_for_sample(&r1, 123, 4, i);
        aug_rng_for_sample(&r2, 123, 4, i);
        aug_train(&cfg, &im, &r1, a, err, sizeof err);
        aug_train(&cfg, &im, &r2, b, err, sizeof err);
        same &= !memcmp(a, b, sizeof(float) * n);
        aug_rng_for_sample(&r2, 124, 4, i);
        aug_train(&cfg, &im, &r2, b, err, sizeof err);
        differ += memcmp(a, b, sizeof(float) * n) != 0;
    }
    CHECK(same, "same seed -> same output");
    CHECK(differ == 8, "different seed -> different output (%d/8)", differ);
    /* streams of consecutive samples differ */
    AugRng r1, r2;
    aug_rng_for_sample(&r1, 5, 0, 0);
    aug_rng_for_sample(&r2, 5, 0, 1);
    CHECK(aug_rng_u32(&r1) != aug_rng_u32(&r2), "sample streams differ");
    aug_rng_for_sample(&r1, 5, 0, 0);
    aug_rng_for_sample(&r2, 5, 1, 0);
    CHECK(aug_rng_u32(&r1) != aug_rng_u32(&r2), "epochs differ");
    image_free(&im);
    free(a); free(b);
}

static void test_erase(void) {
    AugConfig cfg;
    aug_config_default(&cfg);
    cfg.reprob = 1.0f;
    const int C = 3, H = 112, W = 96;
    float *img = malloc(sizeof(float) * C * H * W);
    AugRng r;
    aug_rng_seed(&r, 99, 1);
    int area_ok = 1, content_ok = 1, erased = 0;
    double amin = 1, amax = 0;
    for (int it = 0; it < 300; it++) {
        for (int i = 0; i < C * H * W; i++) img[i] = 1000.0f;
        int box[4];
        int nb = aug_random_erase(&cfg, img, C, H, W, &r, box);
        if (!nb) continue;
        erased++;
        double fr = (double)box[2] * box[3] / (H * W);
        if (fr < amin) amin = fr;
        if (fr > amax) amax = fr;
        /* rounding of h, w: allow a one-pixel slack on each side */
        if ((box[2] + 1.0) * (box[3] + 1.0) < 0.02 * H * W || (box[2] - 1.0) * (box[3] - 1.0) > H * W / 3.0) area_ok = 0;
        double ar = (double)box[2] / box[3];
        if (ar < 0.3 * 0.8 || ar > 1 / 0.3 / 0.8) area_ok = 0;
        for (int k = 0; k < C; k++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int in = y >= box[0] && y < box[0] + box[2] && x >= box[1] && x < box[1] + box[3];
                    float v = img[(k * H + y) * W + x];
                    if (in ? (v == 1000.0f || fabsf(v) > 8) : v != 1000.0f) content_ok = 0;
                }
    }
    CHECK(erased > 270, "reprob 1 erases almost always (%d/300)", erased);
    CHECK(area_ok, "erase area fraction within [0.02, 1/3] (seen %.4f..%.4f)", amin, amax);
    CHECK(content_ok, "erase writes normal noise exactly inside the box");
    cfg.reprob = 0.0f;
    CHECK(aug_random_erase(&cfg, img, C, H, W, &r, NULL) == 0, "reprob 0 never erases");
    free(img);
}

static void test_mix(void) {
    AugConfig cfg;
    aug_config_default(&cfg);
    const int N = 8, C = 3, H = 32, W = 40, K = 10;
    Batch b;
    batch_alloc(&b, N, C, H, W, K, 1);
    AugRng r;
    aug_rng_seed(&r, 3, 3);
    /* smoothing only */
    for (int i = 0; i < N; i++) b.labels[i] = (i * 3) % K;
    float lam = aug_mix_batch(&cfg, &b, &r);
    CHECK(lam == 1.0f, "no mixup -> lam 1");
    int ok = 1;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < K; j++) {
            float want = j == b.labels[i] ? 1.0f - 0.1f + 0.01f : 0.01f;
            ok &= fabsf(b.soft[i * K + j] - want) < 1e-7f;
        }
    CHECK(ok, "smoothing 0.1, K 10: on 0.91, off 0.01");
    CHECK(!aug_mixup_active(&cfg), "mixup 0 / cutmix 0 off");
    /* mixup */
    size_t chw = (size_t)C * H * W;
    for (int mode = 0; mode < 3; mode++) {
        aug_config_default(&cfg);
        if (mode == 0) cfg.mixup = 0.8f;
        if (mode == 1) cfg.cutmix = 1.0f;
        if (mode == 2) { cfg.mixup = 0.8f; cfg.cutmix = 1.0f; cfg.has_cutmix_minmax = 1; cfg.cutmix_minmax[0] = 0.2f; cfg.cutmix_minmax[1] = 0.8f; cfg.mixup_switch_prob = 1.0f; }
        for (int it = 0; it < 50; it++) {
            for (int i = 0; i < N; i++) {
                b.labels[i] = (i + it) % K;
                for (size_t k = 0; k < chw; k++) b.images[i * chw + k] = (float)(i + 1);
            }
            lam = aug_mix_batch(&cfg, &b, &r);
            int sum_ok = 1, lam_ok = 1, tgt_ok = 1;
            for (int i = 0; i < N; i++) {
                double s = 0;
                for (int j = 0; j < K; j++) s += b.soft[i * K + j];
                if (fabs(s - 1.0) > 1e-6) sum_ok = 0;
                int o = N - 1 - i;
                float off = 0.01f, on = 0.91f;
                float want = b.labels[i] == b.labels[o] ? on : lam * on + (1 - lam) * off;
                if (fabsf(b.soft[i * K + b.labels[i]] - want) > 1e-6f) tgt_ok = 0;
                /* image content */
                if (mode == 0) {
                    float wv = lam * (i + 1) + (1 - lam) * (o + 1);
                    for (size_t k = 0; k < chw; k += 97)
                        if (fabsf(b.images[i * chw + k] - wv) > 1e-4f) lam_ok = 0;
                } else {
                    size_t own = 0;
                    for (size_t k = 0; k < chw; k++) own += b.images[i * chw + k] == (float)(i + 1);
                    double frac_own = (double)own / chw;
                    if (fabs(frac_own - lam) > 1e-6) lam_ok = 0;
                }
            }
            CHECK(sum_ok, "mode %d: soft targets sum to 1", mode);
            CHECK(tgt_ok, "mode %d: target of own class = lam*on + (1-lam)*off (lam %f)", mode, lam);
            CHECK(lam_ok, "mode %d: image content consistent with lam %f", mode, lam);
            CHECK(lam >= 0 && lam <= 1, "lam in [0,1]");
        }
    }
    batch_free(&b);
    /* cutmix box bounds */
    aug_config_default(&cfg);
    int inside = 1, corr = 1;
    for (int it = 0; it < 2000; it++) {
        int yl, yh, xl, xh;
        float l0 = (float)aug_rng_uniform(&r);
        float l = aug_cutmix_box(&cfg, 224, 224, l0, &r, &yl, &yh, &xl, &xh);
        if (!(0 <= yl && yl <= yh && yh <= 224 && 0 <= xl && xl <= xh && xh <= 224)) inside = 0;
        if (fabsf(l - (1.0f - (float)((yh - yl) * (xh - xl)) / (224.0f * 224.0f))) > 1e-6f) corr = 0;
    }
    CHECK(inside, "cutmix box inside the image");
    CHECK(corr, "cutmix lam corrected by clipped box area");
}

static void bench(void) {
    AugConfig cfg;
    aug_config_default(&cfg);
    char err[256];
    Image im = make_picture(500, 375, 3);
    float *out = malloc(sizeof(float) * 3 * 224 * 224);
    struct { const char *name; const char *aa; float cj, reprob; AugInterp ip; } modes[] = {
        {"RRC(bilinear)+flip", "", 0, 0, AUG_INTERP_BILINEAR},
        {"RRC(bicubic)+flip", "", 0, 0, AUG_INTERP_BICUBIC},
        {"timm default (RRC random interp + flip + jitter 0.4)", "", 0.4f, 0, AUG_INTERP_RANDOM},
        {"RRC + flip + rand-m9-mstd0.5-inc1 + reprob 0.25", "rand-m9-mstd0.5-inc1", 0.4f, 0.25f, AUG_INTERP_RANDOM},
    };
    for (int m = 0; m < 4; m++) {
        aug_config_parse_aa(&cfg, modes[m].aa, err, sizeof err);
        for (int k = 0; k < 3; k++) cfg.color_jitter[k] = modes[m].cj;
        cfg.reprob = modes[m].reprob;
        cfg.train_interpolation = modes[m].ip;
        int iters = 0;
        double t0 = now(), t1 = t0;
        while (iters < 200 && t1 - t0 < 0.15) {
            AugRng r;
            aug_rng_for_sample(&r, 0, 0, iters);
            aug_train(&cfg, &im, &r, out, err, sizeof err);
            iters++;
            t1 = now();
        }
        printf("speed: aug_train 500x375 RGB -> 224, %-55s %.3f ms/img CPU (%.0f img/s/core)\n", modes[m].name,
               1e3 * (t1 - t0) / iters, iters / (t1 - t0));
    }
    AugConfig ec;
    aug_config_default(&ec);
    int iters = 0;
    double t0 = now(), t1 = t0;
    while (iters < 200 && t1 - t0 < 0.15) { aug_eval(&ec, &im, out, err, sizeof err); iters++; t1 = now(); }
    printf("speed: aug_eval  500x375 RGB -> 256 -> 224 bicubic %.3f ms/img CPU\n", 1e3 * (t1 - t0) / iters);
    image_free(&im);
    free(out);
}

int main(void) {
    test_flip();
    test_rrc();
    test_resize();
    test_eval();
    test_parse();
    test_ops();
    test_determinism();
    test_erase();
    test_mix();
    bench();
    return check_summary("test_augment");
}
