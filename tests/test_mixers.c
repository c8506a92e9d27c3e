/* Every token mixer in the table (layers/tokmix.c) on a tiny config of every family that
 * takes it: the model builds, its forward with a tape and without (the fused inference
 * paths) agree, backward runs, and the analytic gradient of L = sum(logits * R) matches
 * central differences on elements of every parameter of the block (the mixer's own, the
 * norms', the MLP's). A new mixer is covered by adding its table line. */
#include "layers/layers.h"
#include "core/ops.h"
#include "core/threads.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "testmodel.h"


static double loss_of(Model *m, Ctx *c, Tensor *x, const float *R, int grad) {
    mt_ctx_reset(c);
    c->grad_enabled = grad;
    Tensor *y = model_forward(c, m, x);
    if (!y) { fprintf(stderr, "forward failed: %s\n", c->err); exit(1); }
    double s = 0;
    for (size_t i = 0; i < y->numel; i++) s += (double)y->data[i] * R[i];
    return s;
}

static void check_model(const char *base, const MixerDef *def, const char *const *over) {
    char err[512], what[96];
    snprintf(what, sizeof what, "%s with token mixer %s", base, def->name);
    ModelConfig cfg;
    if (model_config_default(base, &cfg, err, sizeof err)) { CHECK(0, "%s: %s", what, err); return; }
    if (!def->gmlp_only && model_config_set(&cfg, "token-mixer", def->name, err, sizeof err)) {
        CHECK(0, "%s: %s", what, err);
        return;
    }
    for (int i = 0; over[i]; i += 2)
        if (model_config_set(&cfg, over[i], over[i + 1], err, sizeof err)) { CHECK(0, "%s: %s", what, err); return; }
    Model m;
    if (testmodel_build(&m, &cfg, err, sizeof err)) { CHECK(0, "%s: build: %s", what, err); return; }
    int B = 2, C = cfg.in_chans, S = cfg.img_size;
    float *img = malloc(sizeof(float) * (size_t)B * C * S * S), *R = malloc(sizeof(float) * (size_t)B * cfg.num_classes);
    testmodel_input(img, (size_t)B * C * S * S);
    for (int i = 0; i < B * cfg.num_classes; i++) R[i] = cosf(0.9f * (float)i + 0.2f);
    Ctx c;
    mt_ctx_init(&c, 1 << 22);
    int shape[4] = {B, C, S, S};
    Tensor *x = mt_wrap(&c, img, 4, shape);
    /* taped forward + backward */
    mt_params_zero_grad(&m.params);
    mt_ctx_reset(&c);
    c.grad_enabled = 1;
    x = mt_wrap(&c, img, 4, shape);
    Tensor *y = model_forward(&c, &m, x);
    CHECK(y != NULL, "%s: taped forward failed: %s", what, c.err);
    if (!y) goto out;
    double taped = 0;
    for (size_t i = 0; i < y->numel; i++) taped += (double)y->data[i] * R[i];
    CHECK(mt_backward_seed(&c, y, R) == 0, "%s: backward failed: %s", what, c.err);
    /* the fused inference path gives the same loss */
    double inf = loss_of(&m, &c, mt_wrap(&c, img, 4, shape), R, 0);
    CHECK(fabs(inf - taped) <= 1e-4 * (1 + fabs(taped)), "%s: inference %.7g vs taped %.7g", what, inf, taped);
    /* central differences on a few elements of every parameter of block 0 (and the stem) */
    int checked = 0;
    for (int i = 0; i < m.params.n; i++) {
        Tensor *t = m.params.t[i];
        if (!t->requires_grad || !strstr(t->name, "blocks.0.")) continue;
        float *g = malloc(t->numel * sizeof(float));
        memcpy(g, t->grad, t->numel * sizeof(float));
        for (int e = 0; e < 3; e++) {
            size_t k = (size_t)((e * 7919 + 13) % (int)t->numel);
            float keep = t->data[k], h = 1e-2f * (fabsf(keep) > 1 ? fabsf(keep) : 1);
            t->data[k] = keep + h;
            double lp = loss_of(&m, &c, mt_wrap(&c, img, 4, shape), R, 0);
            t->data[k] = keep - h;
            double lm = loss_of(&m, &c, mt_wrap(&c, img, 4, shape), R, 0);
            t->data[k] = keep;
            double num = (lp - lm) / (2.0 * h);
            CHECK(fabs(num - g[k]) <= 2e-3 + 3e-2 * fabs(num), "%s: d/d %s[%zu]: analytic %.6g, numeric %.6g", what,
                  t->name, k, g[k], num);
            checked++;
        }
        free(g);
    }
    CHECK(checked >= 6, "%s: only %d gradient elements checked", what, checked);
    printf("ok   %-44s loss %.5f, %d gradient elements\n", what, taped, checked);
out:
    mt_ctx_free(&c);
    free(img);
    free(R);
    model_free(&m);
}

int main(void) {
    mt_set_threads(1);
    static const char *const iso[] = {"img-size", "8", "in-chans", "1", "patch-size", "2", "embed-dim", "16", "depth",
                                      "1", "num-classes", "3", "mem-units", "4", "heads", "2", "rep-kernels", "1,3",
                                      "mlp-ratio", "2", NULL};
    static const char *const hier[] = {"img-size", "16", "in-chans", "1", "depths", "1,1", "dims", "8,16",
                                       "num-classes", "3", "mem-units", "4", "heads", "2", "rep-kernels", "3",
                                       "mlp-ratio", "2", NULL};
    static const char *const gm[] = {"img-size", "8", "in-chans", "1", "patch-size", "2", "embed-dim", "16", "depth",
                                     "1", "num-classes", "3", NULL};
    for (int i = 0; i < mixer_count(); i++) {
        const MixerDef *d = mixer_at(i);
        CHECK(d->name && d->about && d->forward && d->flops, "mixer %d: incomplete definition", i);
        if (d->gmlp_only) { check_model("gmlp_tiny", d, gm); continue; }
        check_model("mixer_tiny", d, iso);
        check_model("poolformer_tiny", d, hier);
    }
    return check_summary("test_mixers");
}
