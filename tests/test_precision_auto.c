/* --precision auto's timing (train/precision_auto.c) on a tiny Mixer:
 *   - with native AVX512-BF16, both precisions are timed (rates > 0, at least one pair of
 *     steps) and the choice follows the rates: bf16 only when it beats fp32 by the margin;
 *   - without it (the kernels forced to the emulated fallback), fp32 is chosen untimed;
 *   - the timing leaves the caller's model and the thread count alone (it works on its own). */
#include "core/gemm.h"
#include "core/threads.h"
#include "layers/model.h"
#include "train/precision_auto.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                           \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

int main(void) {
    mt_set_threads(1);
    ModelConfig cfg;
    char err[2048], line[512];
    if (model_config_default("mixer_tiny", &cfg, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 1; }
    Model mine; /* the caller's state: must come out untouched */
    if (model_build(&mine, &cfg, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 1; }
    model_init(&mine, 7);
    size_t n0 = mine.params.n ? mine.params.t[0]->numel : 0;
    float *before = malloc(n0 * sizeof(float));
    memcpy(before, mine.params.t[0]->data, n0 * sizeof(float));

    PrecisionPick p;
    if (mt_gemm_bf16_native()) {
        CHECK(precision_auto_pick(&cfg, 16, 0, &p, err, sizeof err) == 0, "pick failed: %s", err);
        CHECK(p.timed == 1 && p.steps >= 2 && p.steps % 2 == 0, "timed %d steps %d", p.timed, p.steps);
        CHECK(p.rate_fp32 > 0 && p.rate_bf16 > 0, "rates %g %g", p.rate_fp32, p.rate_bf16);
        int want = p.rate_bf16 > 1.05 * p.rate_fp32 ? MT_BF16 : MT_FP32;
        CHECK(p.precision == want, "chose %d with fp32 %.1f bf16 %.1f img/s", p.precision, p.rate_fp32, p.rate_bf16);
        precision_auto_describe(&p, line, sizeof line);
        printf("%s\n", line);
        CHECK(strstr(line, p.precision == MT_BF16 ? "auto: bf16" : "auto: fp32") && strstr(line, "img/s"), "%s", line);
    } else printf("no AVX512-BF16 here: only the untimed branch is checked\n");

    mt_gemm_force_fallback(1);
    CHECK(precision_auto_pick(&cfg, 16, 0, &p, err, sizeof err) == 0, "pick (fallback) failed: %s", err);
    CHECK(p.timed == 0 && p.steps == 0 && p.precision == MT_FP32, "fallback: timed %d steps %d precision %d", p.timed,
          p.steps, p.precision);
    precision_auto_describe(&p, line, sizeof line);
    CHECK(strstr(line, "auto: fp32") && strstr(line, "AVX512-BF16"), "%s", line);
    mt_gemm_force_fallback(0);

    CHECK(memcmp(before, mine.params.t[0]->data, n0 * sizeof(float)) == 0, "the caller's weights changed");
    CHECK(mt_get_threads() == 1, "threads changed to %d", mt_get_threads());
    free(before);
    model_free(&mine);
    if (failures) { fprintf(stderr, "%d failure(s)\n", failures); return 1; }
    printf("ok\n");
    return 0;
}
