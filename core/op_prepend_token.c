/* Class token: y (B, N+1, C) = [tok; x[b]] per sample. Backward: dx = dy[:, 1:],
 * dtok = sum over the batch of dy[:, 0] (one += per element, in a double). */
#include "core/ops.h"
#include <string.h>

static void prepend_token_backward(Ctx *c, Node *n) {
    Tensor *x = n->in[0], *tok = n->in[1], *y = n->out;
    int B = x->shape[0], N = x->shape[1], C = x->shape[2];
    if (x->requires_grad)
        for (int b = 0; b < B; b++) {
            const float *dy = y->grad + ((size_t)b * (N + 1) + 1) * C;
            float *dx = x->grad + (size_t)b * N * C;
            for (size_t k = 0; k < (size_t)N * C; k++) dx[k] += dy[k];
        }
    if (tok->requires_grad)
        for (int j = 0; j < C; j++) {
            double s = 0;
            for (int b = 0; b < B; b++) s += y->grad[(size_t)b * (N + 1) * C + j];
            tok->grad[j] += (float)s;
        }
}

Tensor *mt_prepend_token(Ctx *c, Tensor *x, Tensor *tok) {
    if (c->failed || !x || !tok) return NULL;
    char sx[96], st[96];
    if (x->ndim != 3 || (int)tok->numel != x->shape[2])
        return mt_fail(c, "prepend_token", "x %s, tok %s%s%s: need x (B, N, C) and tok of C elements",
                       mt_shape_str(x, sx, sizeof sx), mt_shape_str(tok, st, sizeof st), tok->name ? " " : "",
                       tok->name ? tok->name : "");
    int B = x->shape[0], N = x->shape[1], C = x->shape[2];
    Tensor *y = mt_new3(c, B, N + 1, C);
    if (!y) return NULL;
    for (int b = 0; b < B; b++) {
        float *yb = y->data + (size_t)b * (N + 1) * C;
        memcpy(yb, tok->data, (size_t)C * sizeof(float));
        memcpy(yb + C, x->data + (size_t)b * N * C, (size_t)N * C * sizeof(float));
    }
    Tensor *in[2] = {x, tok};
    if (mt_needs_grad(c, in, 2)) mt_record(c, "prepend_token", prepend_token_backward, y, in, 2);
    return y;
}
