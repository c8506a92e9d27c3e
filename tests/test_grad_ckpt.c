/* Gradient checkpointing (c->grad_checkpointing, core/op_checkpoint.c) on every family's tiny
 * preset with drop path and head dropout in training mode, fp32 and bf16:
 *   - loss and every parameter gradient equal the plain run's bit for bit (both take the same
 *     training-path ops, masks and accumulation order), in two consecutive steps of one
 *     context (the second reuses the arena grown by the first);
 *   - the data-parallel "gradient final" events: every trainable parameter has a first-use
 *     node on the checkpointed tape (block parameters through the checkpoint node's list),
 *     and its gradient, copied when the sweep's hook reports that node done, equals the final;
 *   - the arena's high-water mark is lower with checkpointing, and the second step fits the
 *     arena the first one grew (no allocation in the steady state);
 *   - a shape-changing function is refused with a message. */
#include "core/gemm.h"
#include "layers/model.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"


#define B 3

/* The hook's view of the tape: per parameter, its first-use node and the gradient copied
 * when that node was reported done. */
typedef struct Watch {
    const ParamList *ps;
    int *first;      /* per parameter, -1 = none */
    float **snap;    /* per parameter */
} Watch;

static int index_of(const ParamList *ps, const Tensor *t) {
    for (int i = 0; i < ps->n; i++)
        if (ps->t[i]->data == t->data) return i; /* views share the data */
    return -1;
}

static void note(Watch *w, const Tensor *t, int k) {
    if (!t || !t->is_param || !t->requires_grad) return;
    int i = index_of(w->ps, t);
    if (i >= 0 && w->first[i] < 0) w->first[i] = k;
}

static void on_done(Ctx *c, int k, void *ud) {
    (void)c;
    Watch *w = ud;
    for (int i = 0; i < w->ps->n; i++)
        if (w->first[i] == k) memcpy(w->snap[i], w->ps->t[i]->grad, w->ps->t[i]->numel * sizeof(float));
}

typedef struct Run {
    float loss[2];
    float **grads;   /* per parameter, after step 2 (step 1's gradient zeroed before) */
    size_t peak;
    int nnodes;
    int spills;      /* arena spill chunks in the second step (0: it fit the grown arena) */
} Run;

/* Two training steps (fresh gradients each) on fixed data; the second is watched. */
static int run(Model *m, int ckpt, int precision, const float *images, const int *labels, Run *r, Watch *w) {
    const ModelConfig *cfg = &m->cfg;
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    c.recycle_activations = 1;
    c.poison_fresh = 1;
    c.precision = precision;
    c.grad_checkpointing = ckpt;
    int shape[4] = {B, cfg->in_chans, cfg->img_size, cfg->img_size};
    int rc = 0;
    for (int step = 0; step < 2 && !rc; step++) {
        mt_ctx_reset(&c);
        c.counter = 1000 * (uint64_t)step; /* same masks in both runs */
        mt_params_zero_grad(&m->params);
        Tensor *x = mt_wrap(&c, (float *)images + step, 4, shape);
        Tensor *loss = mt_cross_entropy(&c, model_forward(&c, m, x), labels, NULL, 0.1f);
        if (!loss) { fprintf(stderr, "forward: %s\n", c.err); rc = -1; break; }
        r->loss[step] = loss->data[0];
        if (step == 1 && w) {
            for (int i = 0; i < m->params.n; i++) w->first[i] = -1;
            for (int k = 0; k < c.nnodes; k++) {
                for (int j = 0; j < c.nodes[k].nin; j++) note(w, c.nodes[k].in[j], k);
                for (int j = 0; j < c.nodes[k].nparams; j++) note(w, c.nodes[k].params[j], k);
            }
            c.on_node_done = on_done;
            c.on_node_done_ud = w;
        }
        r->nnodes = c.nnodes;
        if (mt_backward(&c, loss) != 0) { fprintf(stderr, "backward: %s\n", c.err); rc = -1; }
        c.on_node_done = NULL;
        r->spills = c.arena.nextra;
    }
    for (int i = 0; i < m->params.n && !rc; i++)
        memcpy(r->grads[i], m->params.t[i]->grad, m->params.t[i]->numel * sizeof(float));
    r->peak = c.arena.peak;
    mt_ctx_free(&c);
    return rc;
}

static float **grad_bufs(const ParamList *ps) {
    float **g = calloc((size_t)ps->n, sizeof *g);
    for (int i = 0; i < ps->n; i++) g[i] = malloc(ps->t[i]->numel * sizeof(float));
    return g;
}
static void free_bufs(float **g, int n) {
    for (int i = 0; i < n; i++) free(g[i]);
    free(g);
}

static void family(const char *name, const char *const *over, int precision) {
    char err[1024], what[128];
    int k = snprintf(what, sizeof what, "%s %s", name, precision == MT_BF16 ? "bf16" : "fp32");
    for (int i = 0; over[i] && k > 0 && (size_t)k < sizeof what; i += 2)
        k += snprintf(what + k, sizeof what - (size_t)k, " %s=%s", over[i], over[i + 1]);
    ModelConfig cfg;
    Model m;
    if (model_config_default(name, &cfg, err, sizeof err)) { CHECK(0, "%s: %s", what, err); return; }
    for (int i = 0; over[i]; i += 2)
        if (model_config_set(&cfg, over[i], over[i + 1], err, sizeof err)) { CHECK(0, "%s: %s", what, err); return; }
    if (model_build(&m, &cfg, err, sizeof err)) { CHECK(0, "%s: %s", what, err); return; }
    model_init(&m, 7);
    /* timm zero-initialises some heads: perturb every parameter so gradients reach every block */
    uint64_t q = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < m.params.n; i++)
        for (size_t j = 0; j < m.params.t[i]->numel; j++) {
            q ^= q << 13; q ^= q >> 7; q ^= q << 17;
            m.params.t[i]->data[j] += 0.02f * ((float)(q >> 40) / 16777216.0f - 0.5f);
        }
    int n = m.params.n;
    size_t nimg = (size_t)B * cfg.in_chans * cfg.img_size * cfg.img_size + 1;
    float *images = malloc(nimg * sizeof(float));
    uint64_t s = 0x243f6a8885a308d3ull;
    for (size_t i = 0; i < nimg; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        images[i] = (float)(s >> 40) / 16777216.0f * 2.0f - 1.0f;
    }
    int labels[B];
    for (int i = 0; i < B; i++) labels[i] = (3 * i + 1) % cfg.num_classes;

    Run plain = {.grads = grad_bufs(&m.params)}, ck = {.grads = grad_bufs(&m.params)};
    Watch w = {&m.params, calloc((size_t)n, sizeof(int)), grad_bufs(&m.params)};
    if (run(&m, 0, precision, images, labels, &plain, NULL) || run(&m, 1, precision, images, labels, &ck, &w)) {
        CHECK(0, "%s: a run failed", what);
    } else {
        CHECK(plain.loss[0] == ck.loss[0] && plain.loss[1] == ck.loss[1], "%s: loss %.9g %.9g plain, %.9g %.9g checkpointed",
              what, plain.loss[0], plain.loss[1], ck.loss[0], ck.loss[1]);
        int bad = 0, unused = 0, early = 0, nonzero = 0;
        for (int i = 0; i < n; i++) {
            const Tensor *p = m.params.t[i];
            size_t bytes = p->numel * sizeof(float);
            for (size_t j = 0; j < p->numel; j++) nonzero += ck.grads[i][j] != 0.0f;
            if (memcmp(plain.grads[i], ck.grads[i], bytes)) {
                if (bad++ < 3) {
                    size_t j = 0;
                    while (plain.grads[i][j] == ck.grads[i][j]) j++;
                    CHECK(0, "%s: gradient of %s differs at %zu: %.9g plain, %.9g checkpointed", what, p->name, j,
                          plain.grads[i][j], ck.grads[i][j]);
                }
            }
            if (!p->requires_grad) continue;
            if (w.first[i] < 0) { if (unused++ < 3) CHECK(0, "%s: %s has no first-use node on the checkpointed tape", what, p->name); }
            else if (memcmp(w.snap[i], ck.grads[i], bytes)) {
                if (early++ < 3) CHECK(0, "%s: %s reported final at node %d before its gradient was", what, p->name, w.first[i]);
            }
        }
        CHECK(nonzero > (int)(mt_params_count(&m.params) / 2), "%s: only %d gradient entries are non-zero", what, nonzero);
        CHECK(bad == 0, "%s: %d of %d parameter gradients differ", what, bad, n);
        CHECK(ck.peak < plain.peak, "%s: arena peak %zu checkpointed, %zu plain", what, ck.peak, plain.peak);
        CHECK(ck.spills == 0, "%s: the second checkpointed step spilled %d arena chunks", what, ck.spills);
        CHECK(ck.nnodes < plain.nnodes, "%s: %d nodes checkpointed, %d plain", what, ck.nnodes, plain.nnodes);
        printf("%-36s loss %.6f  params %3d  nodes %4d -> %3d  arena peak %7.2f MB -> %6.2f MB\n", what, ck.loss[1], n,
               plain.nnodes, ck.nnodes, plain.peak / 1e6, ck.peak / 1e6);
    }
    free_bufs(plain.grads, n);
    free_bufs(ck.grads, n);
    free_bufs(w.snap, n);
    free(w.first);
    free(images);
    model_free(&m);
}

/* A wrapped function that changes the shape is refused, naming both shapes. */
static Tensor *narrow_fn(Ctx *c, const void *arg, Tensor *x) {
    (void)arg;
    return mt_narrow(c, x, 1, 0, 2);
}
static void refuse_shape_change(void) {
    ParamList ps = {0};
    Tensor *p = mt_param_new(&ps, "w", 2, (int[]){3, 4});
    p->requires_grad = 1;
    Ctx c;
    mt_ctx_init(&c, 1 << 12);
    Tensor *x = mt_mul(&c, mt_wrap(&c, p->data, 2, (int[]){3, 4}), p);
    Tensor *y = mt_checkpoint(&c, narrow_fn, NULL, 0, x, &ps);
    CHECK(!y && strstr(c.err, "checkpoint") && strstr(c.err, "(3,4)") && strstr(c.err, "(3,2)"),
          "shape change: %s", c.err);
    mt_ctx_free(&c);
    mt_params_free(&ps);
}

int main(void) {
    static const struct { const char *name; const char *over[9]; } cases[] = {
        {"mixer_tiny", {"drop-path", "0.2", "drop", "0.1", NULL}},
        {"resmlp_tiny", {"drop-path", "0.2", "drop", "0.1", NULL}},
        {"poolformer_tiny", {"drop-path", "0.2", "drop", "0.1", NULL}},
        {"gmlp_tiny", {"drop-path", "0.2", "drop", "0.1", NULL}},
        {"vit_tiny_28", {"drop-path", "0.2", "drop", "0.1", NULL}},
        {"repmlp_tiny", {"drop-path", "0.2", "drop", "0.1", NULL}},
        {"mixer_tiny", {"drop-path", "0", "mlp", "swiglu", NULL}}, /* drop path off: the fused residual paths */
        {"poolformer_tiny", {"drop-path", "0", "token-mixer", "attention", NULL}},
    };
    const size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < ncases; i++) family(cases[i].name, cases[i].over, MT_FP32);
    for (size_t i = 0; i < 6; i++) family(cases[i].name, cases[i].over, MT_BF16); /* the families */
    refuse_shape_change();
    return check_summary("test_grad_ckpt");
}
