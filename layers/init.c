/* timm's initialisation schemes with a deterministic RNG.
 *
 * Each parameter draws from its own stream, seeded by (seed, parameter name),
 * so a model's init does not depend on registration order or thread count and
 * an ablation that adds a parameter leaves the others' values unchanged. */
#include "layers/layers.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Rng { uint64_t s; } Rng;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* Uniform in (0, 1): 53 random bits, never exactly 0. */
static double uniform(Rng *r) { return ((double)(splitmix(&r->s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static double normal(Rng *r) { /* Box-Muller, one value per call */
    double u1 = uniform(r), u2 = uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
/* Standard normal truncated to [lo, hi] by rejection (timm's bounds are >= 2 std wide). */
static double trunc_normal(Rng *r, double lo, double hi) {
    for (;;) {
        double z = normal(r);
        if (z >= lo && z <= hi) return z;
    }
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* PyTorch's _calculate_fan_in_and_fan_out: dim 1 is fan-in, dim 0 fan-out, times the receptive field. */
static void fans(const Tensor *t, double *fan_in, double *fan_out) {
    double rf = 1;
    for (int i = 2; i < t->ndim; i++) rf *= t->shape[i];
    *fan_in = t->ndim >= 2 ? t->shape[1] * rf : t->shape[0];
    *fan_out = t->shape[0] * rf;
}

static void init_one(Tensor *t, InitSpec spec, uint64_t seed) {
    Rng r = {seed ^ fnv1a(t->name)};
    splitmix(&r.s);
    float *d = t->data;
    size_t n = t->numel;
    double fi, fo;
    fans(t, &fi, &fo);
    switch (spec.kind) {
    case INIT_ZEROS: memset(d, 0, n * sizeof *d); break;
    case INIT_ONES: for (size_t i = 0; i < n; i++) d[i] = 1.0f; break;
    case INIT_CONST: for (size_t i = 0; i < n; i++) d[i] = spec.v; break;
    case INIT_XAVIER: {
        double a = sqrt(6.0 / (fi + fo));
        for (size_t i = 0; i < n; i++) d[i] = (float)((2.0 * uniform(&r) - 1.0) * a);
        break;
    }
    case INIT_LECUN: { /* variance_scaling_(fan_in, truncated_normal): std = sqrt(1/fan_in) / .8796 */
        double sd = sqrt(1.0 / fi) / .87962566103423978;
        for (size_t i = 0; i < n; i++) d[i] = (float)(trunc_normal(&r, -2.0, 2.0) * sd);
        break;
    }
    case INIT_TRUNC_NORMAL: { /* trunc_normal_(std, a=-2, b=2): bounds are absolute */
        double sd = spec.v;
        for (size_t i = 0; i < n; i++) d[i] = (float)(trunc_normal(&r, -2.0 / sd, 2.0 / sd) * sd);
        break;
    }
    case INIT_UNIFORM:
        for (size_t i = 0; i < n; i++) d[i] = (float)((2.0 * uniform(&r) - 1.0) * spec.v);
        break;
    case INIT_NORMAL:
        for (size_t i = 0; i < n; i++) d[i] = (float)(normal(&r) * spec.v);
        break;
    case INIT_RANDOM_MIX: { /* softmax(rand(N, N), dim=-1) over rows of a (N, M) matrix */
        int rows = t->shape[0], cols = (int)(n / (size_t)rows);
        for (int i = 0; i < rows; i++) {
            double s = 0;
            float *row = d + (size_t)i * cols;
            for (int j = 0; j < cols; j++) s += (row[j] = (float)exp(uniform(&r)));
            for (int j = 0; j < cols; j++) row[j] = (float)(row[j] / s);
        }
        break;
    }
    }
}

void model_init(Model *m, uint64_t seed) {
    Net *net = m->priv;
    if (!net) return;
    for (int i = 0; i < m->params.n; i++) init_one(m->params.t[i], net->init[i], seed);
}

Tensor *reg_param(Model *m, char *err, size_t n, InitSpec init, const char *prefix, const char *leaf, int ndim,
                  const int *shape) {
    Net *net = m->priv;
    char name[256];
    snprintf(name, sizeof name, "%s%s%s", prefix, prefix[0] && leaf[0] ? "." : "", leaf);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 1) {
            char s[96];
            snprintf(err, n, "model %s: parameter %s would have shape %s (config too small?)", m->cfg.name, name,
                     mt_dims_str(ndim, shape, s, sizeof s));
            return NULL;
        }
    Tensor *t = mt_param_new(&m->params, name, ndim, shape);
    if (!t) {
        snprintf(err, n, "model %s: parameter %s registered twice", m->cfg.name, name);
        return NULL;
    }
    if (m->params.n > net->init_cap) {
        net->init_cap = net->init_cap ? 2 * net->init_cap : 64;
        while (net->init_cap < m->params.n) net->init_cap *= 2;
        InitSpec *s = realloc(net->init, (size_t)net->init_cap * sizeof *s);
        if (!s) { fprintf(stderr, "mixtape: out of memory (init table)\n"); abort(); }
        net->init = s;
    }
    net->init[m->params.n - 1] = init;
    return t;
}

Tensor *reg1(Model *m, char *err, size_t n, InitSpec init, const char *prefix, const char *leaf, int d0) {
    int s[1] = {d0};
    return reg_param(m, err, n, init, prefix, leaf, 1, s);
}
Tensor *reg2(Model *m, char *err, size_t n, InitSpec init, const char *prefix, const char *leaf, int d0, int d1) {
    int s[2] = {d0, d1};
    return reg_param(m, err, n, init, prefix, leaf, 2, s);
}
Tensor *reg4(Model *m, char *err, size_t n, InitSpec init, const char *prefix, const char *leaf, int d0, int d1,
             int d2, int d3) {
    int s[4] = {d0, d1, d2, d3};
    return reg_param(m, err, n, init, prefix, leaf, 4, s);
}
