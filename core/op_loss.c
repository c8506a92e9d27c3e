/* Mean softmax cross-entropy over the batch.
 *
 * Per sample, with log-probabilities lp = z - logsumexp(z) and target t:
 *   loss_i = -sum_j t_j lp_j,  d loss / d z = (softmax(z) - t) / B.
 * Hard labels y with smoothing s: t = (1 - s) onehot(y) + s / K (timm's
 * LabelSmoothingCrossEntropy, torch's cross_entropy(label_smoothing=s)).
 * Soft targets (mixup / cutmix rows summing to 1) get the same treatment:
 * t = (1 - s) soft + s / K, so pass s = 0 when the targets are already smoothed
 * (timm's mixup_target smooths them itself).
 * Labels and soft targets are copied into the arena: the caller's buffers may
 * be refilled by the data loader before backward runs. */
#include "core/ops.h"
#include <math.h>
#include <string.h>

/* Below this many elements of work a loop runs on one thread: waking the team costs more. */
#define PAR_MIN 32768

typedef struct {
    float *prob;       /* softmax(z), (B, K) */
    int *labels;       /* (B) or NULL */
    float *soft;       /* (B, K) or NULL */
    float smoothing;
} CESaved;

static void ce_backward(Ctx *c, Node *n) {
    Tensor *z = n->in[0], *y = n->out;
    if (!z->requires_grad) return;
    const CESaved *s = n->saved;
    int B = z->shape[0], K = z->shape[1];
    float g = y->grad[0] / (float)B;
    float on = 1.0f - s->smoothing, off = s->smoothing / (float)K;
#pragma omp parallel for schedule(static) if ((size_t)((size_t)B * K) >= PAR_MIN)
    for (int i = 0; i < B; i++) {
        const float *p = s->prob + (size_t)i * K;
        float *dz = z->grad + (size_t)i * K;
        if (s->labels) {
            for (int j = 0; j < K; j++) dz[j] += g * (p[j] - off);
            dz[s->labels[i]] -= g * on;
        } else {
            /* d/dz of -sum_j t_j lp_j is p * sum(t) - t; sum(t) is 1 for proper targets */
            const float *t = s->soft + (size_t)i * K;
            float tsum = 0.0f;
            for (int j = 0; j < K; j++) tsum += on * t[j] + off;
            for (int j = 0; j < K; j++) dz[j] += g * (p[j] * tsum - (on * t[j] + off));
        }
    }
}

Tensor *mt_cross_entropy(Ctx *c, Tensor *logits, const int *labels, const float *soft, float smoothing) {
    if (c->failed || !logits) return NULL;
    char sz[96];
    if (logits->ndim != 2)
        return mt_fail(c, "cross_entropy", "logits %s: need (B, K)", mt_shape_str(logits, sz, sizeof sz));
    if ((labels == NULL) == (soft == NULL))
        return mt_fail(c, "cross_entropy", "logits %s: give exactly one of hard labels (B) or soft targets (B, K), got %s",
                       mt_shape_str(logits, sz, sizeof sz), labels ? "both" : "neither");
    if (!(smoothing >= 0.0f && smoothing < 1.0f))
        return mt_fail(c, "cross_entropy", "logits %s: label smoothing %g outside [0, 1)",
                       mt_shape_str(logits, sz, sizeof sz), (double)smoothing);
    int B = logits->shape[0], K = logits->shape[1];
    if (labels)
        for (int i = 0; i < B; i++)
            if (labels[i] < 0 || labels[i] >= K)
                return mt_fail(c, "cross_entropy", "label %d of sample %d is outside [0, %d) (logits %s)", labels[i], i,
                               K, mt_shape_str(logits, sz, sizeof sz));
    CESaved *s = arena_alloc(&c->arena, sizeof *s);
    s->prob = arena_alloc(&c->arena, logits->numel * sizeof(float));
    s->labels = NULL;
    s->soft = NULL;
    s->smoothing = smoothing;
    if (labels) {
        s->labels = arena_alloc(&c->arena, (size_t)B * sizeof(int));
        memcpy(s->labels, labels, (size_t)B * sizeof(int));
    } else {
        s->soft = arena_alloc(&c->arena, logits->numel * sizeof(float));
        memcpy(s->soft, soft, logits->numel * sizeof(float));
    }
    double *row_loss = arena_alloc(&c->arena, (size_t)B * sizeof(double));
    float on = 1.0f - smoothing, off = smoothing / (float)K;
#pragma omp parallel for schedule(static) if ((size_t)(logits->numel) >= PAR_MIN)
    for (int i = 0; i < B; i++) {
        const float *z = logits->data + (size_t)i * K;
        float *p = s->prob + (size_t)i * K;
        float mx = z[0];
        for (int j = 1; j < K; j++) mx = z[j] > mx ? z[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < K; j++) {
            p[j] = expf(z[j] - mx);
            sum += p[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < K; j++) p[j] *= inv;
        double lse = (double)mx + log((double)sum);
        /* -sum_j t_j (z_j - lse) = lse * sum_j t_j - sum_j t_j z_j */
        double tz = 0.0, tsum = 0.0;
        if (s->labels) {
            double zsum = 0.0;
            for (int j = 0; j < K; j++) zsum += z[j];
            tz = on * (double)z[s->labels[i]] + off * zsum;
            tsum = 1.0;
        } else {
            const float *t = s->soft + (size_t)i * K;
            for (int j = 0; j < K; j++) {
                double tj = (double)on * t[j] + off;
                tz += tj * z[j];
                tsum += tj;
            }
        }
        row_loss[i] = lse * tsum - tz;
    }
    double total = 0.0;
    for (int i = 0; i < B; i++) total += row_loss[i];
    Tensor *y = mt_new(c, 1, (int[]){1});
    if (!y) return NULL;
    y->data[0] = (float)(total / B);
    if (mt_needs_grad(c, &logits, 1)) {
        Node *n = mt_record(c, "cross_entropy", ce_backward, y, &logits, 1);
        n->saved = s;
    }
    return y;
}
