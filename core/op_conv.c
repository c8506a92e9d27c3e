/* conv2d via im2col + one sgemm.
 *
 * The input is NCHW (the network's images) or channels-last (B, H, W, C); the
 * output is always channels-last (B, OH, OW, Cout). Each output pixel is one
 * row of the column buffer, cols (B*OH*OW, Cin*kh*kw), with columns in
 * (cin, ky, kx) order so that the weight (Cout, Cin, kh, kw) is already the
 * (Cout, K) matrix: y = cols @ W^T (+ b), exactly a linear layer.
 *
 * Backward: dW += dy^T @ cols, db += colsum(dy), and dcols = dy @ W followed by
 * col2im, which adds every column entry back into the input pixel it came from.
 *
 * A 1x1, stride-1, unpadded conv on channels-last input needs no column buffer:
 * the input already is cols. The forward pass builds no column buffer either: the GEMM
 * gathers each row of cols while packing (see gather_nchw/gather_nhwc). The backward's
 * column buffers come from the step arena. */
#include "core/ops.h"
#include "core/op_util.h"
#include "core/gemm.h"
#include <string.h>

/* Below this many elements of work a loop runs on one thread: waking the team costs more. */
#define PAR_MIN 32768

typedef struct {
    int B, Cin, H, W, Cout, kh, kw, s, p, OH, OW, nchw;
    size_t M, K; /* GEMM rows (output pixels) and depth (Cin*kh*kw) */
} ConvDims;

static ConvDims conv_dims(const Tensor *x, int nchw, const Tensor *w, int stride, int pad) {
    ConvDims d;
    d.nchw = nchw;
    d.B = x->shape[0];
    d.Cin = nchw ? x->shape[1] : x->shape[3];
    d.H = nchw ? x->shape[2] : x->shape[1];
    d.W = nchw ? x->shape[3] : x->shape[2];
    d.Cout = w->shape[0];
    d.kh = w->shape[2];
    d.kw = w->shape[3];
    d.s = stride;
    d.p = pad;
    d.OH = (d.H + 2 * pad - d.kh) / stride + 1;
    d.OW = (d.W + 2 * pad - d.kw) / stride + 1;
    d.M = (size_t)d.B * d.OH * d.OW;
    d.K = (size_t)d.Cin * d.kh * d.kw;
    return d;
}

static int is_direct(const ConvDims *d) { return !d->nchw && d->kh == 1 && d->kw == 1 && d->s == 1 && d->p == 0; }

/* ---- im2col: cols[r, (ci, ky, kx)] = x[b, ci, oy*s - p + ky, ox*s - p + kx] or 0 ---- */

static void im2col_nchw(const ConvDims *d, const float *x, float *cols) {
    const int Cin = d->Cin, H = d->H, W = d->W, kh = d->kh, kw = d->kw, s = d->s, p = d->p, OH = d->OH, OW = d->OW;
    const size_t M = d->M, K = d->K;
#pragma omp parallel for schedule(static) if ((size_t)(M * K) >= PAR_MIN)
    for (size_t r = 0; r < M; r++) {
        int ox = (int)(r % OW), oy = (int)(r / OW % OH), b = (int)(r / ((size_t)OW * OH));
        int ix0 = ox * s - p;
        int full = ix0 >= 0 && ix0 + kw <= W;
        float *dst = cols + r * K;
        for (int ci = 0; ci < Cin; ci++)
            for (int ky = 0; ky < kh; ky++) {
                float *o = dst + ((size_t)ci * kh + ky) * kw;
                int iy = oy * s - p + ky;
                if (iy < 0 || iy >= H) {
                    memset(o, 0, (size_t)kw * sizeof(float));
                    continue;
                }
                const float *src = x + (((size_t)b * Cin + ci) * H + iy) * W;
                if (full) memcpy(o, src + ix0, (size_t)kw * sizeof(float));
                else
                    for (int kx = 0; kx < kw; kx++) {
                        int ix = ix0 + kx;
                        o[kx] = ix >= 0 && ix < W ? src[ix] : 0.0f;
                    }
            }
    }
}

static void im2col_nhwc(const ConvDims *d, const float *x, float *cols) {
    const int Cin = d->Cin, H = d->H, W = d->W, kh = d->kh, kw = d->kw, s = d->s, p = d->p, OH = d->OH, OW = d->OW;
    const size_t M = d->M, K = d->K, KK = (size_t)kh * kw;
#pragma omp parallel for schedule(static) if ((size_t)(M * K) >= PAR_MIN)
    for (size_t r = 0; r < M; r++) {
        int ox = (int)(r % OW), oy = (int)(r / OW % OH), b = (int)(r / ((size_t)OW * OH));
        float *dst = cols + r * K;
        for (int ky = 0; ky < kh; ky++) {
            int iy = oy * s - p + ky;
            for (int kx = 0; kx < kw; kx++) {
                int ix = ox * s - p + kx;
                float *o = dst + (size_t)ky * kw + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
                    for (int ci = 0; ci < Cin; ci++) o[ci * KK] = 0.0f;
                } else {
                    const float *src = x + (((size_t)b * H + iy) * W + ix) * Cin;
                    for (int ci = 0; ci < Cin; ci++) o[ci * KK] = src[ci];
                }
            }
        }
    }
}

/* ---- implicit im2col for the forward GEMM: rows of cols gathered while the GEMM packs ----
 * NCHW keeps the (ci, ky, kx) order (runs of kw along an input row). NHWC gathers in
 * (ky, kx, ci) order, runs of Cin channels of one pixel, against the weight permuted to
 * (Cout, kh, kw, Cin): im2col's scattered writes and its M x K buffer both go away. */

typedef struct {
    const ConvDims *d;
    const float *x;
} ConvGather;

/* dst[0 .. n) = src[0 .. n) for the short runs of a gather (a kernel row, a pixel's
 * channels): 16-byte moves, the last one overlapping, instead of a memcpy call or a loop
 * of single floats (the stem's 7-float runs were 3.7% of poolformer_s12's forward). */
static inline void copy_run_inside(float *dst, const float *src, int n) {
    if (n < 4) {
        for (int t = 0; t < n; t++) dst[t] = src[t];
        return;
    }
    int t = 0;
    for (; t + 4 <= n; t += 4) memcpy(dst + t, src + t, 4 * sizeof(float));
    if (t < n) memcpy(dst + n - 4, src + n - 4, 4 * sizeof(float));
}

/* n floats of an input row from column ix0 on, zeros outside [0, W). */
static void copy_run(float *dst, const float *src, int ix0, int n, int W) {
    for (int t = 0; t < n; t++) {
        int ix = ix0 + t;
        dst[t] = ix >= 0 && ix < W ? src[ix] : 0.0f;
    }
}

static void gather_nchw(const void *ctx, int r, int k0, int kc, float *dst) {
    const ConvGather *g = ctx;
    const ConvDims *d = g->d;
    int ox = r % d->OW, oy = r / d->OW % d->OH, b = r / (d->OW * d->OH);
    int kx = k0 % d->kw, ky = k0 / d->kw % d->kh, ci = k0 / (d->kw * d->kh);
    int x0 = ox * d->s - d->p, inside = x0 >= 0 && x0 + d->kw <= d->W;
    if (k0 == 0 && kc == (int)d->K && inside) { /* the whole row, away from the left/right edge */
        const float *src = g->x + (size_t)b * d->Cin * d->H * d->W + x0;
        for (int c = 0; c < d->Cin; c++, src += (size_t)d->H * d->W)
            for (int y = 0, iy = oy * d->s - d->p; y < d->kh; y++, iy++, dst += d->kw) {
                if (iy < 0 || iy >= d->H) memset(dst, 0, (size_t)d->kw * sizeof(float));
                else copy_run_inside(dst, src + (size_t)iy * d->W, d->kw);
            }
        return;
    }
    for (int left = kc; left > 0;) { /* one run of a kernel row per pass: (ci, ky), kx on */
        int n = d->kw - kx < left ? d->kw - kx : left;
        int iy = oy * d->s - d->p + ky;
        if (iy < 0 || iy >= d->H) {
            for (int t = 0; t < n; t++) dst[t] = 0.0f;
        } else {
            const float *src = g->x + (((size_t)b * d->Cin + ci) * d->H + iy) * d->W;
            if (inside) copy_run_inside(dst, src + x0 + kx, n);
            else copy_run(dst, src, x0 + kx, n, d->W);
        }
        dst += n, left -= n, kx = 0;
        if (++ky == d->kh) ky = 0, ci++;
    }
}

static void gather_nhwc(const void *ctx, int r, int k0, int kc, float *dst) {
    const ConvGather *g = ctx;
    const ConvDims *d = g->d;
    int ox = r % d->OW, oy = r / d->OW % d->OH, b = r / (d->OW * d->OH);
    int ci = k0 % d->Cin, seg = k0 / d->Cin, kx = seg % d->kw, ky = seg / d->kw; /* then stepped, not divided */
    for (int left = kc; left > 0;) { /* one pixel's run of channels per pass */
        int n = d->Cin - ci < left ? d->Cin - ci : left;
        int iy = oy * d->s - d->p + ky, ix = ox * d->s - d->p + kx;
        if (iy < 0 || iy >= d->H || ix < 0 || ix >= d->W) memset(dst, 0, (size_t)n * sizeof(float));
        else copy_run_inside(dst, g->x + (((size_t)b * d->H + iy) * d->W + ix) * d->Cin + ci, n);
        dst += n, left -= n, ci = 0;
        if (++kx == d->kw) kx = 0, ky++;
    }
}

/* ---- col2im: dx[pixel] += every dcols entry that was copied from that pixel ---- */

/* NCHW: one task per (b, ci) image plane, so threads never write the same element. */
static void col2im_nchw_add(const ConvDims *d, const float *dcols, float *dx) {
    const int Cin = d->Cin, H = d->H, W = d->W, kh = d->kh, kw = d->kw, s = d->s, p = d->p, OH = d->OH, OW = d->OW;
    const size_t K = d->K;
    const int planes = d->B * Cin;
#pragma omp parallel for schedule(static) if ((size_t)(d->M * K) >= PAR_MIN)
    for (int pl = 0; pl < planes; pl++) {
        int b = pl / Cin, ci = pl % Cin;
        float *plane = dx + (size_t)pl * H * W;
        for (int oy = 0; oy < OH; oy++)
            for (int ky = 0; ky < kh; ky++) {
                int iy = oy * s - p + ky;
                if (iy < 0 || iy >= H) continue;
                float *drow = plane + (size_t)iy * W;
                for (int ox = 0; ox < OW; ox++) {
                    size_t r = ((size_t)b * OH + oy) * OW + ox;
                    const float *g = dcols + r * K + ((size_t)ci * kh + ky) * kw;
                    int ix0 = ox * s - p;
                    if (ix0 >= 0 && ix0 + kw <= W) {
                        float *o = drow + ix0;
                        for (int kx = 0; kx < kw; kx++) o[kx] += g[kx];
                    } else {
                        for (int kx = 0; kx < kw; kx++) {
                            int ix = ix0 + kx;
                            if (ix >= 0 && ix < W) drow[ix] += g[kx];
                        }
                    }
                }
            }
    }
}

/* NHWC: a gather per input row (b, iy): input pixel (iy, ix) was copied into
 * output (oy, ox) at tap (ky, kx) when iy = oy*s - p + ky and ix = ox*s - p + kx. */
static void col2im_nhwc_add(const ConvDims *d, const float *dcols, float *dx) {
    const int Cin = d->Cin, H = d->H, W = d->W, kh = d->kh, kw = d->kw, s = d->s, p = d->p, OH = d->OH, OW = d->OW;
    const size_t K = d->K, KK = (size_t)kh * kw;
    const int rows = d->B * H;
#pragma omp parallel for schedule(static) if ((size_t)(d->M * K) >= PAR_MIN)
    for (int t = 0; t < rows; t++) {
        int b = t / H, iy = t % H;
        for (int ky = 0; ky < kh; ky++) {
            int ty = iy + p - ky;
            if (ty < 0 || ty % s) continue;
            int oy = ty / s;
            if (oy >= OH) continue;
            for (int ix = 0; ix < W; ix++) {
                float *o = dx + (((size_t)b * H + iy) * W + ix) * Cin;
                for (int kx = 0; kx < kw; kx++) {
                    int tx = ix + p - kx;
                    if (tx < 0 || tx % s) continue;
                    int ox = tx / s;
                    if (ox >= OW) continue;
                    const float *g = dcols + (((size_t)b * OH + oy) * OW + ox) * K + (size_t)ky * kw + kx;
                    for (int ci = 0; ci < Cin; ci++) o[ci] += g[ci * KK];
                }
            }
        }
    }
}


/* What a conv2d node keeps: stride, padding and layout (1: NCHW input, 0: NHWC). */
typedef struct ConvSaved {
    int stride, pad, nchw;
} ConvSaved;

static void conv2d_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out;
    const ConvSaved *s = n->saved;
    ConvDims d = conv_dims(x, s->nchw, w, s->stride, s->pad);
    const float *dy = y->grad;
    int M = (int)d.M, K = (int)d.K, N = d.Cout;
    /* The columns are rebuilt rather than kept from the forward pass: im2col is cheap next
     * to the GEMMs, and keeping them would hold M*K floats for the whole step. */
    ArenaMark mark = arena_mark(&c->arena);
    const float *cols = x->data;
    if (!is_direct(&d) && w->requires_grad) {
        float *cc = arena_alloc(&c->arena, d.M * d.K * sizeof(float));
        if (d.nchw) im2col_nchw(&d, x->data, cc);
        else im2col_nhwc(&d, x->data, cc);
        cols = cc;
    }
    if (w->requires_grad) /* dW (Cout, K) += dy^T (Cout, M) @ cols (M, K) */
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transA = MT_TRANS, .M = N, .N = K, .K = M, .alpha = 1.0f,
                              .A = dy, .lda = N, .B = cols, .ldb = K, .beta = 1.0f, .C = w->grad, .ldc = K});
    if (b && b->requires_grad) colsum_add(b->grad, dy, d.M, N);
    if (x->requires_grad) {
        if (is_direct(&d)) { /* dx (M, Cin) += dy @ W */
            mt_gemm_run(&(MtGemm){.precision = c->precision, .M = M, .N = K, .K = N, .alpha = 1.0f, .A = dy, .lda = N,
                                  .B = w->data, .ldb = K, .beta = 1.0f, .C = x->grad, .ldc = K});
        } else {
            float *dcols = arena_alloc(&c->arena, d.M * d.K * sizeof(float));
            mt_gemm_run(&(MtGemm){.precision = c->precision, .M = M, .N = K, .K = N, .alpha = 1.0f, .A = dy, .lda = N,
                                  .B = w->data, .ldb = K, .C = dcols, .ldc = K});
            if (d.nchw) col2im_nchw_add(&d, dcols, x->grad);
            else col2im_nhwc_add(&d, dcols, x->grad);
        }
    }
    arena_release(&c->arena, mark);
}

Tensor *mt_conv2d(Ctx *c, Tensor *x, mt_layout layout, Tensor *w, Tensor *b, int stride, int pad) {
    if (c->failed || !x || !w) return NULL;
    char sx[96], sw[96], sb[96];
    int nchw = layout == MT_NCHW;
    int ok = (layout == MT_NCHW || layout == MT_NHWC) && x->ndim == 4 && w->ndim == 4 && stride >= 1 && pad >= 0 &&
             (b == NULL || (b->ndim == 1 && b->shape[0] == w->shape[0]));
    if (ok) {
        int Cin = nchw ? x->shape[1] : x->shape[3];
        int H = nchw ? x->shape[2] : x->shape[1], W = nchw ? x->shape[3] : x->shape[2];
        ok = w->shape[1] == Cin && H + 2 * pad >= w->shape[2] && W + 2 * pad >= w->shape[3];
    }
    if (!ok)
        return mt_fail(c, "conv2d",
                       "x %s (%s), weight %s, bias %s, stride %d, pad %d: need x %s, weight (Cout, Cin, kh, kw), "
                       "bias (Cout), stride >= 1, pad >= 0 and the kernel within the padded input%s%s",
                       mt_shape_str(x, sx, sizeof sx), nchw ? "NCHW" : layout == MT_NHWC ? "NHWC" : "unknown layout",
                       mt_shape_str(w, sw, sizeof sw), b ? mt_shape_str(b, sb, sizeof sb) : "none", stride, pad,
                       nchw ? "(B, Cin, H, W)" : "(B, H, W, Cin)", w->name ? " for " : "", w->name ? w->name : "");
    ConvDims d = conv_dims(x, nchw, w, stride, pad);
    Tensor *y = mt_new4(c, d.B, d.OH, d.OW, d.Cout);
    if (!y) return NULL;
    int M = (int)d.M, K = (int)d.K, N = d.Cout;
    MtEpilogue ep = {.bias = b ? b->data : NULL}; /* the bias joins each tile as it is stored */
    if (is_direct(&d)) {
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transB = MT_TRANS, .M = M, .N = N, .K = K, .alpha = 1.0f,
                              .A = x->data, .lda = K, .B = w->data, .ldb = K, .C = y->data, .ldc = N, .ep = &ep});
    } else {
        ArenaMark mark = arena_mark(&c->arena);
        const float *wk = w->data;
        if (!nchw) { /* weight (Cout, Cin, kh, kw) -> (Cout, kh, kw, Cin), the gather's k order */
            float *wp = arena_alloc(&c->arena, (size_t)N * K * sizeof(float));
            int KK = d.kh * d.kw;
#pragma omp parallel for schedule(static) if ((size_t)N * K >= PAR_MIN)
            for (int o = 0; o < N; o++)
                for (int ci = 0; ci < d.Cin; ci++)
                    for (int t = 0; t < KK; t++)
                        wp[((size_t)o * KK + t) * d.Cin + ci] = w->data[((size_t)o * d.Cin + ci) * KK + t];
            wk = wp;
        }
        ConvGather g = {&d, x->data};
        MtGatherA ga = {nchw ? gather_nchw : gather_nhwc, &g};
        mt_gemm_run(&(MtGemm){.precision = c->precision, .transB = MT_TRANS, .M = M, .N = N, .K = K, .alpha = 1.0f,
                              .ga = &ga, .lda = K, .B = wk, .ldb = K, .C = y->data, .ldc = N, .ep = &ep});
        arena_release(&c->arena, mark);
    }
    Tensor *in[3] = {x, w, b};
    if (mt_needs_grad(c, in, 3)) {
        Node *n = mt_record(c, "conv2d", conv2d_backward, y, in, 3);
        mt_save(c, n, &(ConvSaved){.stride = stride, .pad = pad, .nchw = nchw}, sizeof(ConvSaved));
    }
    return y;
}
