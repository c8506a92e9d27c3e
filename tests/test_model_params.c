/* Model zoo: parameter counts equal timm's, key shapes, config errors, config
 * JSON round trip, init, forward/backward on the tiny presets and ablations. */
#include "layers/model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"


/* timm (1000 classes): sum(p.numel() for p in timm.create_model(name).parameters()). */
static const struct { const char *name; size_t params; int keys; double gflops; } timm_counts[] = {
    {"mixer_s32_224", 19104624, 102, 2.005},   {"mixer_s16_224", 18528264, 102, 7.554},
    {"mixer_b32_224", 60293428, 150, 6.475},   {"mixer_b16_224", 59880472, 150, 25.20},
    {"mixer_l32_224", 206939264, 294, 22.51},  {"mixer_l16_224", 208196168, 294, 89.10},
    {"resmlp_12_224", 15350872, 150, 6.020},   {"resmlp_24_224", 30020680, 294, 11.92},
    {"resmlp_36_224", 44690488, 438, 17.83},   {"resmlp_big_24_224", 129138280, 294, 200.5},
    {"poolformer_s12", 11915176, 132, 3.624},  {"poolformer_s24", 21388968, 252, 6.784},
    {"poolformer_s36", 30862760, 372, 9.944},  {"poolformer_m36", 56172520, 372, 17.52},
    {"poolformer_m48", 73473448, 492, 23.07},
    /* timm: gmlp_* (mlp_mixer.py), vit_* / deit_* (vision_transformer.py) */
    {"gmlp_ti16_224", 5867328, 306, 2.658},    {"gmlp_s16_224", 19422656, 306, 8.784},
    {"gmlp_b16_224", 73075392, 306, 31.44},    {"vit_tiny_patch16_224", 5717416, 152, 2.507},
    {"vit_small_patch16_224", 22050664, 152, 9.198}, {"vit_base_patch16_224", 86567656, 152, 35.13},
    {"deit_tiny_patch16_224", 5717416, 152, 2.507},  {"deit_small_patch16_224", 22050664, 152, 9.198},
    /* presets (mixtape's own; 10 classes, 28x28x1) */
    {"mixer_tiny", 558158, 54, 0.0580},        {"resmlp_tiny", 543442, 54, 0.0540},
    {"poolformer_tiny", 2059082, 112, 0.0447},
    {"gmlp_tiny", 611026, 46, 0.06538},        {"vit_tiny_28", 803338, 56, 0.08397},
    {"repmlp_tiny", 575874, 78, 0.05454},      {"repmlp_tiny_32", 586810, 78, 0.07275},
};

static int build(const char *name, const char *const *over, Model *m, char *err, size_t n) {
    ModelConfig cfg;
    if (model_config_default(name, &cfg, err, n)) return -1;
    for (int i = 0; over && over[i]; i += 2)
        if (model_config_set(&cfg, over[i], over[i + 1], err, n)) return -1;
    return model_build(m, &cfg, err, n);
}

static void check_shape(Model *m, const char *key, int ndim, const int *shape) {
    Tensor *t = mt_param_find(&m->params, key);
    CHECK(t, "%s: no parameter %s", m->cfg.name, key);
    if (!t) return;
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    char s[96];
    CHECK(ok, "%s: %s has shape %s", m->cfg.name, key, mt_shape_str(t, s, sizeof s));
}

static void test_counts(void) {
    char err[1024];
    for (size_t i = 0; i < sizeof timm_counts / sizeof timm_counts[0]; i++) {
        Model m;
        if (build(timm_counts[i].name, NULL, &m, err, sizeof err)) {
            CHECK(0, "%s: %s", timm_counts[i].name, err);
            continue;
        }
        size_t n = mt_params_count(&m.params);
        double gf = model_gflops(&m.cfg);
        printf("%-20s %11zu params (%d tensors) %9.4f GFLOPs\n", m.cfg.name, n, m.params.n, gf);
        CHECK(n == timm_counts[i].params, "%s: %zu parameters, timm has %zu", m.cfg.name, n, timm_counts[i].params);
        CHECK(m.params.n == timm_counts[i].keys, "%s: %d tensors, timm has %d", m.cfg.name, m.params.n,
              timm_counts[i].keys);
        CHECK(fabs(gf - timm_counts[i].gflops) < 0.002 * timm_counts[i].gflops + 1e-3, "%s: %.4f GFLOPs, want %.4f",
              m.cfg.name, gf, timm_counts[i].gflops);
        if (!strcmp(m.cfg.name, "mixer_b16_224")) {
            check_shape(&m, "stem.proj.weight", 4, (int[]){768, 3, 16, 16});
            check_shape(&m, "blocks.0.mlp_tokens.fc1.weight", 2, (int[]){384, 196});
            check_shape(&m, "blocks.11.mlp_channels.fc2.weight", 2, (int[]){768, 3072});
            check_shape(&m, "head.weight", 2, (int[]){1000, 768});
            CHECK(!strcmp(m.params.t[0]->name, "stem.proj.weight") &&
                      !strcmp(m.params.t[m.params.n - 1]->name, "head.bias"),
                  "mixer_b16_224: order %s .. %s", m.params.t[0]->name, m.params.t[m.params.n - 1]->name);
        }
        if (!strcmp(m.cfg.name, "resmlp_12_224")) {
            check_shape(&m, "blocks.0.norm1.alpha", 3, (int[]){1, 1, 384});
            check_shape(&m, "blocks.0.linear_tokens.weight", 2, (int[]){196, 196});
            CHECK(!strcmp(m.params.t[2]->name, "blocks.0.ls1"), "resmlp: 3rd key %s (want blocks.0.ls1)",
                  m.params.t[2]->name);
        }
        if (!strcmp(m.cfg.name, "poolformer_s12")) {
            check_shape(&m, "stem.conv.weight", 4, (int[]){64, 3, 7, 7});
            check_shape(&m, "stages.1.downsample.conv.weight", 4, (int[]){128, 64, 3, 3});
            check_shape(&m, "stages.0.blocks.0.mlp.fc1.weight", 4, (int[]){256, 64, 1, 1});
            check_shape(&m, "stages.0.blocks.0.layer_scale1.scale", 1, (int[]){64});
            check_shape(&m, "head.norm.weight", 1, (int[]){512});
            check_shape(&m, "head.fc.weight", 2, (int[]){1000, 512});
            CHECK(!mt_param_find(&m.params, "stages.0.downsample.conv.weight"), "poolformer: stage 0 downsample");
        }
        if (!strcmp(m.cfg.name, "vit_tiny_patch16_224")) {
            check_shape(&m, "cls_token", 3, (int[]){1, 1, 192});
            check_shape(&m, "pos_embed", 3, (int[]){1, 197, 192});
            check_shape(&m, "patch_embed.proj.weight", 4, (int[]){192, 3, 16, 16});
            check_shape(&m, "blocks.0.attn.qkv.weight", 2, (int[]){576, 192});
            check_shape(&m, "blocks.0.attn.qkv.bias", 1, (int[]){576});
            check_shape(&m, "blocks.11.attn.proj.weight", 2, (int[]){192, 192});
            check_shape(&m, "blocks.11.mlp.fc2.weight", 2, (int[]){192, 768});
            check_shape(&m, "head.weight", 2, (int[]){1000, 192});
            CHECK(!strcmp(m.params.t[0]->name, "cls_token") && !strcmp(m.params.t[1]->name, "pos_embed") &&
                      !strcmp(m.params.t[2]->name, "patch_embed.proj.weight"),
                  "vit order: %s %s %s", m.params.t[0]->name, m.params.t[1]->name, m.params.t[2]->name);
        }
        if (!strcmp(m.cfg.name, "gmlp_s16_224")) {
            check_shape(&m, "blocks.0.norm.weight", 1, (int[]){256});
            check_shape(&m, "blocks.0.mlp_channels.fc1.weight", 2, (int[]){1536, 256});
            check_shape(&m, "blocks.0.mlp_channels.gate.norm.weight", 1, (int[]){768});
            check_shape(&m, "blocks.0.mlp_channels.gate.proj.weight", 2, (int[]){196, 196});
            check_shape(&m, "blocks.29.mlp_channels.fc2.weight", 2, (int[]){256, 768});
            CHECK(!strcmp(m.params.t[6]->name, "blocks.0.mlp_channels.gate.norm.weight"), "gmlp order: 7th key %s",
                  m.params.t[6]->name);
        }
        model_free(&m);
    }
    /* GLU variants keep the parameter count of the plain MLP (hidden 2/3), and the layout */
    const char *glus[] = {"glu", "geglu", "swiglu", "reglu"};
    Model a, b;
    build("resmlp_12_224", NULL, &a, err, sizeof err);
    for (int i = 0; i < 4; i++) {
        CHECK(build("resmlp_12_224", (const char *const[]){"mlp", glus[i], NULL}, &b, err, sizeof err) == 0, "%s", err);
        check_shape(&b, "blocks.0.mlp_channels.fc1.weight", 2, (int[]){2 * 1024, 384});
        check_shape(&b, "blocks.0.mlp_channels.fc2.weight", 2, (int[]){384, 1024});
        /* 3 h C = 2 H C with h = 2H/3; only fc1's bias grows, 2h - H = 512 per block */
        CHECK(mt_params_count(&b.params) == mt_params_count(&a.params) + 12 * 512,
              "%s: %zu params vs mlp %zu", glus[i], mt_params_count(&b.params), mt_params_count(&a.params));
        model_free(&b);
    }
    CHECK(build("poolformer_tiny", (const char *const[]){"mlp", "swiglu", "mlp-hidden-scale", "0.5", NULL}, &b, err,
                sizeof err) == 0, "%s", err);
    check_shape(&b, "stages.0.blocks.0.mlp.fc1.weight", 4, (int[]){128, 32, 1, 1});
    model_free(&b);
    model_free(&a);
    /* RepMLP: conv branches in training, none after re-parameterisation */
    build("repmlp_tiny_32", NULL, &a, err, sizeof err);
    check_shape(&a, "blocks.0.token_mixer.fc3.weight", 2, (int[]){64, 64});
    check_shape(&a, "blocks.0.token_mixer.repconv3.weight", 4, (int[]){1, 1, 3, 3});
    check_shape(&a, "blocks.0.token_mixer.gp.fc1.weight", 2, (int[]){32, 128});
    build("repmlp_tiny_32", (const char *const[]){"rep-deploy", "on", NULL}, &b, err, sizeof err);
    CHECK(!mt_param_find(&b.params, "blocks.0.token_mixer.repconv3.weight") &&
              mt_params_count(&a.params) - mt_params_count(&b.params) == 4 * (1 + 1 + 9 + 1),
          "deploy: %zu vs %zu params", mt_params_count(&b.params), mt_params_count(&a.params));
    CHECK(model_gflops(&b.cfg) < model_gflops(&a.cfg), "deploy flops");
    model_free(&a);
    model_free(&b);
    build("mixer_tiny", (const char *const[]){"token-mixer", "external", "mem-units", "32", NULL}, &a, err, sizeof err);
    check_shape(&a, "blocks.0.token_mixer.mk.weight", 2, (int[]){32, 128});
    check_shape(&a, "blocks.0.token_mixer.mv.weight", 2, (int[]){128, 32});
    model_free(&a);
}

static void expect_error(int rc, const char *err, const char *needle, const char *what) {
    CHECK(rc != 0, "%s: accepted", what);
    CHECK(rc == 0 || strstr(err, needle), "%s: message '%s' does not name '%s'", what, err, needle);
}

static void test_errors(void) {
    char err[2048];
    ModelConfig cfg;
    Model m;
    expect_error(model_config_default("mixer_x99", &cfg, err, sizeof err), err, "mixer_x99", "unknown model");
    model_config_default("mixer_tiny", &cfg, err, sizeof err);
    expect_error(model_config_set(&cfg, "token-mixer", "conv", err, sizeof err), err, "conv", "bad token mixer");
    expect_error(model_config_set(&cfg, "norm", "batchnorm", err, sizeof err), err, "batchnorm", "bad norm");
    expect_error(model_config_set(&cfg, "act", "tanh", err, sizeof err), err, "act=tanh", "bad act");
    expect_error(model_config_set(&cfg, "frobnicate", "1", err, sizeof err), err, "frobnicate", "unknown key");
    expect_error(model_config_set(&cfg, "depth", "three", err, sizeof err), err, "depth=three", "bad int");
    expect_error(model_config_set(&cfg, "drop", "1.5", err, sizeof err), err, "drop=1.5", "bad rate");
    expect_error(model_config_set(&cfg, "layer-scale", "maybe", err, sizeof err), err, "maybe", "bad bool");
    expect_error(model_config_set(&cfg, "token-mixer", "pool,mlp", err, sizeof err), err, "isotropic",
                 "per-stage list on isotropic");
    expect_error(model_config_set(&cfg, "depths", "2,2", err, sizeof err), err, "depths", "depths on mixer");
    CHECK(model_config_set(&cfg, "img_size", "30", err, sizeof err) == 0, "underscore key: %s", err);
    expect_error(model_build(&m, &cfg, err, sizeof err), err, "not divisible by patch-size", "img 30 / patch 4");
    model_config_default("poolformer_tiny", &cfg, err, sizeof err);
    CHECK(model_config_set(&cfg, "depths", "1,1,1", err, sizeof err) == 0, "depths: %s", err);
    expect_error(model_build(&m, &cfg, err, sizeof err), err, "dims", "3 depths, 4 dims");
    expect_error(model_config_set(&cfg, "pool-size", "4", err, sizeof err), err, "pool-size=4", "even pool");
    expect_error(model_config_set(&cfg, "token-mixer", "pool,pool,pool,pool,pool", err, sizeof err), err,
                 "token-mixer", "5 stages");
    model_config_default("poolformer_tiny", &cfg, err, sizeof err);
    model_config_set(&cfg, "heads", "3", err, sizeof err);
    model_config_set(&cfg, "token-mixer", "attention", err, sizeof err);
    expect_error(model_build(&m, &cfg, err, sizeof err), err, "heads 3", "dims not divisible by heads");
    model_config_default("mixer_tiny", &cfg, err, sizeof err);
    expect_error(model_config_set(&cfg, "mlp", "swiglu2", err, sizeof err), err, "swiglu2", "bad mlp");
    expect_error(model_config_set(&cfg, "rep-kernels", "1,4", err, sizeof err), err, "rep-kernels", "even kernel");
    CHECK(model_config_set(&cfg, "token-mixer", "sgu", err, sizeof err) == 0, "%s", err);
    expect_error(model_build(&m, &cfg, err, sizeof err), err, "sgu", "sgu outside gmlp");
    model_config_default("vit_tiny_28", &cfg, err, sizeof err);
    CHECK(model_config_set(&cfg, "token-mixer", "pool", err, sizeof err) == 0, "%s", err);
    expect_error(model_build(&m, &cfg, err, sizeof err), err, "class token", "pool on vit");
    model_config_default("gmlp_tiny", &cfg, err, sizeof err);
    model_config_set(&cfg, "mlp-ratio", "0.0234375", err, sizeof err); /* 3 channels: odd */
    expect_error(model_build(&m, &cfg, err, sizeof err), err, "even", "odd gmlp width");
    const char *const *keys = model_override_keys();
    int nk = 0;
    while (keys[nk]) nk++;
    CHECK(nk >= 18, "only %d override keys", nk);
}

static void test_json(void) {
    char err[1024], js[4096], js2[4096];
    const char *const overs[][12] = {
        {NULL},
        {"token-mixer", "attention", "heads", "4", "norm", "rmsnorm", "act", "gelu_tanh", "drop-path", "0.1", NULL},
        {"layer-scale", "on", "layer-scale-init", "0.25", "mlp-ratio", "0.25,2", "num-classes", "7", NULL},
    };
    for (int i = 0; i < model_count(); i++)
        for (int o = 0; o < 3; o++) {
            ModelConfig a, b;
            model_config_default(model_name(i), &a, err, sizeof err);
            for (int k = 0; overs[o][k]; k += 2)
                if (strcmp(a.family, "gmlp") || strcmp(overs[o][k], "token-mixer")) /* gmlp: sgu only */
                    CHECK(!model_config_set(&a, overs[o][k], overs[o][k + 1], err, sizeof err), "%s", err);
            CHECK(model_config_to_json(&a, js, sizeof js) > 0, "%s: to_json", a.name);
            if (model_config_from_json(js, &b, err, sizeof err)) {
                CHECK(0, "%s: from_json: %s\n%s", a.name, err, js);
                continue;
            }
            model_config_to_json(&b, js2, sizeof js2);
            CHECK(!strcmp(js, js2), "%s: round trip differs:\n%s\n%s", a.name, js, js2);
            CHECK(a.layer_scale_init == b.layer_scale_init && a.drop_path_rate == b.drop_path_rate &&
                      a.mlp_ratio_tokens == b.mlp_ratio_tokens && a.heads == b.heads && !strcmp(a.norm, b.norm),
                  "%s: fields differ after round trip", a.name);
        }
    ModelConfig p;
    model_config_default("poolformer_s12", &p, err, sizeof err);
    model_config_set(&p, "token-mixer", "pool,pool,attention,attention", err, sizeof err);
    model_config_to_json(&p, js, sizeof js);
    CHECK(strstr(js, "\"token_mixer\": [\"pool\", \"pool\", \"attention\", \"attention\"]"), "json: %s", js);
    ModelConfig q;
    CHECK(model_config_from_json(js, &q, err, sizeof err) == 0 && !strcmp(q.token_mixer[3], "attention"), "%s", err);
    /* older files without newer fields take the model's defaults */
    CHECK(model_config_from_json("{\"name\": \"resmlp_24_224\", \"num_classes\": 10}", &q, err, sizeof err) == 0 &&
              q.num_classes == 10 && q.depth == 24 && fabsf(q.layer_scale_init - 1e-5f) < 1e-12f,
          "partial json: %s", err);
    expect_error(model_config_from_json("{\"name\": \"mixer_tiny\", \"bogus\": 1}", &q, err, sizeof err), err,
                 "bogus", "unknown json key");
    expect_error(model_config_from_json("{\"name\": \"mixer_tiny\", \"depth\": 2.5}", &q, err, sizeof err), err,
                 "depth", "non-integer json");
    expect_error(model_config_from_json("{\"name\": \"mixer_tiny\",", &q, err, sizeof err), err, "config JSON",
                 "truncated json");
    char d[1024];
    model_config_describe(&p, d, sizeof d);
    CHECK(strstr(d, "token_mixer=pool,pool,attention,attention") && strstr(d, "norm=groupnorm") &&
              strstr(d, "layer_scale=on"),
          "describe: %s", d);
}

static void test_init(void) {
    char err[1024];
    Model a, b;
    build("mixer_tiny", NULL, &a, err, sizeof err);
    build("mixer_tiny", NULL, &b, err, sizeof err);
    model_init(&a, 1);
    model_init(&b, 1);
    int same = 1;
    for (int i = 0; i < a.params.n; i++)
        same &= !memcmp(a.params.t[i]->data, b.params.t[i]->data, a.params.t[i]->numel * sizeof(float));
    CHECK(same, "init not deterministic");
    model_init(&b, 2);
    CHECK(memcmp(a.params.t[0]->data, b.params.t[0]->data, 64), "seed has no effect");
    Tensor *stem = mt_param_find(&a.params, "stem.proj.weight"), *head = mt_param_find(&a.params, "head.weight");
    double s2 = 0;
    for (size_t i = 0; i < stem->numel; i++) s2 += (double)stem->data[i] * stem->data[i];
    double sd = sqrt(s2 / stem->numel); /* lecun: 1/sqrt(fan_in 16) = 0.25 */
    CHECK(fabs(sd - 0.25) < 0.02, "stem std %g, want 0.25 (lecun normal)", sd);
    int zero = 1;
    for (size_t i = 0; i < head->numel; i++) zero &= head->data[i] == 0.0f;
    CHECK(zero, "mixer head not zero-initialised");
    Tensor *fb = mt_param_find(&a.params, "blocks.0.mlp_channels.fc1.bias");
    CHECK(fb->data[0] != 0 && fabsf(fb->data[0]) < 1e-5f, "mlp bias %g, want normal(1e-6)", fb->data[0]);
    Tensor *ln = mt_param_find(&a.params, "blocks.0.norm1.weight");
    CHECK(ln->data[5] == 1.0f, "layernorm weight %g", ln->data[5]);
    model_free(&a);
    model_free(&b);
    build("poolformer_tiny", NULL, &a, err, sizeof err);
    model_init(&a, 3);
    Tensor *ls = mt_param_find(&a.params, "stages.2.blocks.0.layer_scale2.scale");
    CHECK(ls->data[0] == 1e-5f, "poolformer layer scale %g", ls->data[0]);
    Tensor *fc = mt_param_find(&a.params, "stages.0.blocks.0.mlp.fc1.weight");
    s2 = 0;
    for (size_t i = 0; i < fc->numel; i++) s2 += (double)fc->data[i] * fc->data[i];
    CHECK(fabs(sqrt(s2 / fc->numel) - 0.02) < 0.002, "poolformer trunc-normal std %g", sqrt(s2 / fc->numel));
    model_free(&a);
    build("resmlp_tiny", (const char *const[]){"token-mixer", "random", NULL}, &a, err, sizeof err);
    model_init(&a, 4);
    Tensor *r = mt_param_find(&a.params, "blocks.0.token_mixer.random_matrix");
    CHECK(r && !r->requires_grad, "random mixer missing or trainable");
    if (r) {
        double rs = 0;
        for (int j = 0; j < r->shape[1]; j++) rs += r->data[j];
        CHECK(fabs(rs - 1) < 1e-5, "random matrix row sum %g", rs);
    }
    CHECK(mt_params_count_trainable(&a.params) + 4 * 49 * 49 == mt_params_count(&a.params), "frozen count");
    model_free(&a);
}

/* Forward + backward of a tiny model; logits (B, classes). */
static void run_tiny(const char *name, const char *const *over) {
    char err[1024];
    Model m;
    if (build(name, over, &m, err, sizeof err)) {
        CHECK(0, "%s: %s", name, err);
        return;
    }
    model_init(&m, 5);
    int B = 3, C = m.cfg.in_chans, H = m.cfg.img_size;
    float *img = malloc(sizeof(float) * B * C * H * H);
    for (int i = 0; i < B * C * H * H; i++) img[i] = sinf(0.37f * i);
    Ctx c;
    mt_ctx_init(&c, 1 << 20);
    c.training = 1;
    c.poison_fresh = 1; /* an op reading a gradient buffer before writing it makes NaN */
    Tensor *x = mt_wrap(&c, img, 4, (int[]){B, C, H, H});
    Tensor *y = model_forward(&c, &m, x);
    int labels[3] = {0, 1, 2};
    Tensor *loss = y ? mt_cross_entropy(&c, y, labels, NULL, 0.0f) : NULL;
    CHECK(y && y->ndim == 2 && y->shape[0] == B && y->shape[1] == m.cfg.num_classes, "%s: forward: %s", name, c.err);
    if (loss) CHECK(mt_backward(&c, loss) == 0, "%s: backward: %s", name, c.err);
    Tensor *g = mt_param_find(&m.params, m.cfg.family[0] == 'p' ? "stem.conv.weight" : "head.weight");
    double s = 0;
    for (size_t i = 0; g && i < g->numel; i++) s += fabs(g->grad[i]);
    CHECK(s > 0 && isfinite(s), "%s: zero or non-finite gradient", name);
    for (int k = 0; k < m.params.n; k++) { /* every parameter: NaN would mean a poisoned buffer was read */
        Tensor *p = m.params.t[k];
        double q = 0;
        for (size_t i = 0; i < p->numel; i++) q += p->grad[i];
        CHECK(isfinite(q), "%s: non-finite gradient of %s", name, p->name);
    }
    /* wrong input shape: the error names the expected shape */
    mt_ctx_reset(&c);
    Tensor *bad = mt_wrap(&c, img, 4, (int[]){1, C, H - 1, H});
    CHECK(!model_forward(&c, &m, bad) && strstr(c.err, "expects images"), "%s: bad input: %s", name, c.err);
    mt_ctx_free(&c);
    free(img);
    model_free(&m);
}

static void test_forward(void) {
    run_tiny("mixer_tiny", NULL);
    run_tiny("resmlp_tiny", NULL);
    run_tiny("poolformer_tiny", NULL);
    run_tiny("gmlp_tiny", (const char *const[]){"depth", "1", "drop-path", "0.1", NULL});
    run_tiny("vit_tiny_28", (const char *const[]){"depth", "1", "drop-path", "0.1", "drop", "0.1", NULL});
    run_tiny("repmlp_tiny", (const char *const[]){"depth", "1", NULL});
    run_tiny("repmlp_tiny_32", (const char *const[]){"depth", "1", "rep-deploy", "on", NULL});
    const char *glus[] = {"glu", "geglu", "swiglu", "reglu"};
    for (int i = 0; i < 4; i++) {
        run_tiny("gmlp_tiny", (const char *const[]){"depth", "1", "mlp", glus[i], NULL});
        run_tiny("vit_tiny_28", (const char *const[]){"depth", "1", "mlp", glus[i], NULL});
    }
    const char *mixers[] = {"mlp", "linear", "pool", "identity", "random", "attention", "external", "repmlp"};
    for (int i = 0; i < 8; i++) {
        run_tiny("mixer_tiny", (const char *const[]){"token-mixer", mixers[i], "depth", "1", "drop-path", "0.2",
                                                     "drop", "0.1", NULL});
        run_tiny("poolformer_tiny", (const char *const[]){"token-mixer", mixers[i], "depths", "1,1,1,1", NULL});
    }
    const char *norms[] = {"layernorm", "groupnorm", "affine", "rmsnorm", "none"};
    for (int i = 0; i < 5; i++)
        run_tiny("resmlp_tiny", (const char *const[]){"norm", norms[i], "act", i % 2 ? "relu" : "silu", "depth", "1",
                                                      "in-chans", "3", "img-size", "32", NULL});
}

int main(void) {
    test_counts();
    test_errors();
    test_json();
    test_init();
    test_forward();
    return check_summary("test_model_params");
}
