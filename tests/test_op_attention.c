/* attention (timm's fused qkv layout) and bmm.
 * attention: forward against a naive per-head loop in double for several
 * (B, N, C, heads), gradient of qkv against finite differences (h = 1e-2,
 * atol 1e-3, rtol 1e-2), threaded path on a large shape, shape errors.
 * bmm: all four transpose combinations against a naive loop and finite
 * differences (same tolerances), a tensor used as both operands (gradients
 * must add), no leading axes, shape errors. */
#include "gradcheck.h"


typedef struct { int heads; } AttnCfg;
typedef struct { int ta, tb; } BmmCfg;

static Tensor *f_attn(Ctx *c, Tensor **in, void *arg) { return mt_attention(c, in[0], ((AttnCfg *)arg)->heads); }
static Tensor *f_bmm(Ctx *c, Tensor **in, void *arg) {
    const BmmCfg *g = arg;
    return mt_bmm(c, in[0], in[1], g->ta, g->tb);
}
static Tensor *f_gram(Ctx *c, Tensor **in, void *arg) { return mt_bmm(c, in[0], in[0], 0, 1); }

/* out[b, n, h*D + d] = sum_m softmax_m(q_n . k_m / sqrt(D)) v[m, d], in double. */
static void naive_attention(const Tensor *qkv, int H, float *out) {
    int B = qkv->shape[0], N = qkv->shape[1], C = qkv->shape[2] / 3, D = C / H;
    double *s = malloc((size_t)N * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int n = 0; n < N; n++) {
                const float *q = qkv->data + ((size_t)b * N + n) * 3 * C + h * D;
                double mx = -1e300, sum = 0;
                for (int m = 0; m < N; m++) {
                    const float *k = qkv->data + ((size_t)b * N + m) * 3 * C + C + h * D;
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += (double)q[d] * k[d];
                    s[m] = dot / sqrt((double)D);
                    if (s[m] > mx) mx = s[m];
                }
                for (int m = 0; m < N; m++) sum += (s[m] = exp(s[m] - mx));
                for (int d = 0; d < D; d++) {
                    double o = 0;
                    for (int m = 0; m < N; m++) o += s[m] / sum * qkv->data[((size_t)b * N + m) * 3 * C + 2 * C + h * D + d];
                    out[((size_t)b * N + n) * C + h * D + d] = (float)o;
                }
            }
    free(s);
}

static void check_attention(ParamList *p, const char *name, int B, int N, int C, int H) {
    Tensor *qkv = gc_input(p, name, 3, (int[]){B, N, 3 * C}, -1.5f, 1.5f);
    Ctx c;
    mt_ctx_init(&c, 1 << 16);
    Tensor *y = mt_attention(&c, qkv, H);
    float *want = malloc((size_t)B * N * C * sizeof(float));
    naive_attention(qkv, H, want);
    char nm[96];
    snprintf(nm, sizeof nm, "attention B%d N%d C%d h%d", B, N, C, H);
    if (!y || y->ndim != 3 || y->shape[0] != B || y->shape[1] != N || y->shape[2] != C) {
        fprintf(stderr, "[%s] bad output: %s\n", nm, c.err);
        gc_failures++;
    } else gc_expect(nm, y->data, want, y->numel, 1e-5);
    free(want);
    mt_ctx_free(&c);
    AttnCfg g = {H};
    Tensor *in[1] = {qkv};
    strcat(nm, " grad");
    gradcheck(nm, f_attn, in, 1, &g, 1e-2f, 1e-3, 1e-2);
}

/* c[i] (M, N) = op(a[i]) op(b[i]) in double */
static void naive_bmm(const Tensor *a, const Tensor *b, int ta, int tb, float *out, int M, int N, int K, int batch) {
    for (int i = 0; i < batch; i++)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double s = 0;
                for (int k = 0; k < K; k++) {
                    double av = ta ? a->data[(size_t)i * M * K + k * M + m] : a->data[(size_t)i * M * K + m * K + k];
                    double bv = tb ? b->data[(size_t)i * K * N + n * K + k] : b->data[(size_t)i * K * N + k * N + n];
                    s += av * bv;
                }
                out[((size_t)i * M + m) * N + n] = (float)s;
            }
}

int main(void) {
    ParamList p = {0};

    check_attention(&p, "qkv1", 2, 5, 6, 3);   /* D = 2 */
    check_attention(&p, "qkv2", 2, 7, 7, 1);   /* one head, D = 7 */
    check_attention(&p, "qkv3", 1, 9, 12, 4);  /* D = 3 */
    check_attention(&p, "qkv4", 3, 1, 10, 2);  /* a single token: out = v */
    check_attention(&p, "qkv5", 1, 3, 15, 5);  /* D = 3, N < D */

    /* large: threaded softmax loops, GEMMs on strided heads */
    {
        Tensor *qkv = gc_input(&p, "qkv_large", 3, (int[]){2, 80, 72}, -1.5f, 1.5f);
        Ctx c;
        mt_ctx_init(&c, 1 << 20);
        Tensor *y = mt_attention(&c, qkv, 3);
        float *want = malloc(y->numel * sizeof(float));
        naive_attention(qkv, 3, want);
        gc_expect("attention large fwd", y->data, want, y->numel, 1e-5);
        free(want);
        mt_ctx_free(&c);
        AttnCfg g = {3};
        Tensor *in[1] = {qkv};
        gc_threads_agree("attention large threads", f_attn, in, 1, &g, 1e-5);
    }

    /* bmm: leading axes (2, 3), M 5, K 4, N 7, every transpose combination */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            char an[32], bnm[32], nm[64];
            snprintf(an, sizeof an, "a%d%d", ta, tb);
            snprintf(bnm, sizeof bnm, "b%d%d", ta, tb);
            Tensor *a = gc_input(&p, an, 4, ta ? (int[]){2, 3, 4, 5} : (int[]){2, 3, 5, 4}, -1, 1);
            Tensor *b = gc_input(&p, bnm, 4, tb ? (int[]){2, 3, 7, 4} : (int[]){2, 3, 4, 7}, -1, 1);
            Ctx c;
            mt_ctx_init(&c, 1 << 16);
            Tensor *y = mt_bmm(&c, a, b, ta, tb);
            float want[2 * 3 * 5 * 7];
            naive_bmm(a, b, ta, tb, want, 5, 7, 4, 6);
            snprintf(nm, sizeof nm, "bmm ta=%d tb=%d", ta, tb);
            if (!y || y->ndim != 4 || y->shape[2] != 5 || y->shape[3] != 7) { fprintf(stderr, "[%s] %s\n", nm, c.err); gc_failures++; }
            else gc_expect(nm, y->data, want, y->numel, 1e-5);
            mt_ctx_free(&c);
            BmmCfg g = {ta, tb};
            Tensor *in[2] = {a, b};
            strcat(nm, " grad");
            gradcheck(nm, f_bmm, in, 2, &g, 1e-2f, 1e-3, 1e-2);
        }
    /* no leading axes; and x x^T, where x feeds both operands */
    {
        Tensor *a = gc_input(&p, "a2d", 2, (int[]){5, 3}, -1, 1);
        Tensor *b = gc_input(&p, "b2d", 2, (int[]){3, 7}, -1, 1);
        BmmCfg g = {0, 0};
        Tensor *in[2] = {a, b};
        gradcheck("bmm 2-d grad", f_bmm, in, 2, &g, 1e-2f, 1e-3, 1e-2);
        Tensor *x = gc_input(&p, "gram", 3, (int[]){3, 5, 4}, -1, 1);
        Tensor *inx[1] = {x};
        gradcheck("bmm x x^T grad (adds)", f_gram, inx, 1, NULL, 1e-2f, 1e-3, 1e-2);
    }

    /* errors */
    {
        Tensor *q = gc_input(&p, "qbad", 3, (int[]){2, 5, 20}, -1, 1);  /* 20 not divisible by 3 */
        Tensor *q2 = gc_input(&p, "qbad2", 3, (int[]){2, 5, 21}, -1, 1); /* C = 7 */
        Tensor *a = mt_param_find(&p, "a00"), *b = mt_param_find(&p, "b00"), *bt = mt_param_find(&p, "b01");
        Tensor *a2 = mt_param_find(&p, "a2d");
        Tensor *lead = gc_input(&p, "lead", 4, (int[]){2, 4, 4, 7}, -1, 1);
        Ctx c;
        mt_ctx_init(&c, 1 << 16);
        struct { const char *what; int k; const char *must[3]; } cases[] = {
            {"qkv not 3C", 0, {"attention in blocks.3.attn", "(2,5,20)", "heads 2"}},
            {"C % heads", 1, {"attention", "(2,5,21)", "heads 2"}},
            {"bmm K mismatch", 2, {"bmm", "(2,3,5,4)", "(2,3,7,4)"}},
            {"bmm leading axes", 3, {"bmm", "(2,3,5,4)", "(2,4,4,7)"}},
            {"bmm rank", 4, {"bmm", "(5,3)", "(2,3,4,7)"}},
        };
        for (int k = 0; k < 5; k++) {
            mt_ctx_reset(&c);
            mt_scope(&c, "blocks.3.attn");
            Tensor *y = NULL;
            switch (k) {
            case 0: y = mt_attention(&c, q, 2); break;
            case 1: y = mt_attention(&c, q2, 2); break;
            case 2: y = mt_bmm(&c, a, bt, 0, 0); break;
            case 3: y = mt_bmm(&c, a, lead, 0, 0); break;
            case 4: y = mt_bmm(&c, a2, b, 0, 0); break;
            }
            gc_expect_error(&c, y, cases[k].what, cases[k].must, 3);
        }
        if (mt_attention(&c, NULL, 1) || mt_bmm(&c, NULL, b, 0, 0) || mt_bmm(&c, a, NULL, 0, 0)) {
            fprintf(stderr, "NULL input not propagated\n");
            gc_failures++;
        }
        mt_ctx_free(&c);
    }

    mt_params_free(&p);
    return gc_report();
}
