/* layers/adapt.c properties that hold whatever torch does: adapt_input_conv's refusals and
 * its sum / repeat rules against loops written here; the antialiased bicubic resize keeps
 * constants (weights sum to 1) up and down, is the identity at the same size, and stays within
 * the input's range when shrinking a smooth ramp; resample_abs_pos_embed keeps the prefix
 * tokens and moves each channel independently. (tests/test_finetune.py compares both with
 * torch / timm numerically.) */
#include "layers/adapt.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"


static float frand(unsigned *s) { *s = *s * 1664525u + 1013904223u; return (float)(*s >> 8) / (float)(1 << 24) - 0.5f; }

static void test_conv(void) {
    enum { O = 4, K = 3 };
    float w[O * 3 * K * K], out[O * 7 * K * K];
    unsigned s = 1;
    for (int i = 0; i < O * 3 * K * K; i++) w[i] = frand(&s);
    const char *how;
    CHECK(adapt_input_conv(w, O, 3, K, K, 3, out, &how) == -1 && !how, "3 -> 3 is not an adaptation");
    CHECK(adapt_input_conv(w, O, 1, K, K, 3, out, &how) == -1, "1 -> 3 is refused (timm cannot either)");
    CHECK(adapt_input_conv(w, O, 6, K, K, 1, out, &how) == -1, "6 -> 1 (space-to-depth) has no stem here");
    CHECK(adapt_input_conv(w, O, 2, K, K, 5, out, &how) == -1, "2 -> 5 is refused");
    CHECK(adapt_input_conv(w, O, 3, K, K, 1, out, &how) == 0 && how, "3 -> 1");
    double e = 0;
    for (int o = 0; o < O; o++)
        for (int k = 0; k < K * K; k++) {
            double r = 0;
            for (int c = 0; c < 3; c++) r += w[(o * 3 + c) * K * K + k];
            e = fmax(e, fabs(r - out[o * K * K + k]));
        }
    CHECK(e < 1e-6, "3 -> 1 sums the input channels (%g)", e);
    CHECK(adapt_input_conv(w, O, 3, K, K, 7, out, &how) == 0, "3 -> 7");
    e = 0;
    for (int o = 0; o < O; o++)
        for (int c = 0; c < 7; c++)
            for (int k = 0; k < K * K; k++)
                e = fmax(e, fabs(w[(o * 3 + c % 3) * K * K + k] * 3.0 / 7.0 - out[(o * 7 + c) * K * K + k]));
    CHECK(e < 1e-6, "3 -> 7 repeats RGB and scales by 3/7 (%g)", e);
}

static void test_resize(void) {
    static const int sizes[][2] = {{7, 4}, {7, 10}, {14, 3}, {3, 14}, {5, 5}, {1, 6}, {6, 1}, {24, 7}};
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        int a = sizes[t][0], b = sizes[t][1];
        float *x = malloc(sizeof(float) * 2 * a * a), *y = malloc(sizeof(float) * 2 * b * b);
        for (int i = 0; i < a * a; i++) { x[i] = 0.75f; x[a * a + i] = (float)(i % a) / (float)a; }
        CHECK(resize_bicubic_aa(x, 2, a, a, y, b, b) == 0, "resize %d -> %d", a, b);
        double e = 0, lo = 1e9, hi = -1e9;
        for (int i = 0; i < b * b; i++) {
            e = fmax(e, fabs(y[i] - 0.75));
            lo = fmin(lo, y[b * b + i]);
            hi = fmax(hi, y[b * b + i]);
        }
        CHECK(e < 1e-6, "%d -> %d keeps a constant (%g)", a, b, e);
        if (b < a) CHECK(lo > -1e-6 && hi < 1 + 1e-6, "%d -> %d: a shrunk ramp stays in range [%g, %g]", a, b, lo, hi);
        if (a == b) {
            double d = 0;
            for (int i = 0; i < a * a; i++) d = fmax(d, fabs(y[a * a + i] - x[a * a + i]));
            CHECK(d == 0, "%d -> %d is the identity (%g)", a, b, d);
        }
        free(x);
        free(y);
    }
}

static void test_pos_embed(void) {
    enum { P = 1, G = 6, N = 3, D = 5 };
    float pe[(P + G * G) * D], out[(P + N * N) * D], one[G * G], res[N * N];
    unsigned s = 7;
    for (int i = 0; i < (P + G * G) * D; i++) pe[i] = frand(&s);
    CHECK(resample_abs_pos_embed(pe, P, G, G, D, out, N, N) == 0, "resample");
    CHECK(!memcmp(out, pe, sizeof(float) * P * D), "the class token is kept as it is");
    double e = 0;
    for (int d = 0; d < D; d++) {   /* each channel is its own plane */
        for (int t = 0; t < G * G; t++) one[t] = pe[(P + t) * D + d];
        resize_bicubic_aa(one, 1, G, G, res, N, N);
        for (int t = 0; t < N * N; t++) e = fmax(e, fabs(res[t] - out[(P + t) * D + d]));
    }
    CHECK(e == 0, "tokens (grid, D) resized per channel (%g)", e);
}

int main(void) {
    test_conv();
    test_resize();
    test_pos_embed();
    return check_summary("test_adapt");
}
