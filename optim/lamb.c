/* LAMB as timm's optim.Lamb (bias_correction=True, grad_averaging=True):
 *   g /= grad_div                       (timm's global clip: max(||G||/max_grad_norm, 1), computed by the caller)
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
 *   u = (m/(1-b1^t)) / (sqrt(v)/sqrt(1-b2^t) + eps) + wd*p
 *   if wd != 0 or always_adapt:  r = ||p|| / ||u||  (1 when either norm is 0; min(r,1) with trust_clip)
 *                                u *= r
 *   p -= lr * u
 * Two passes over the tensor: the first updates m, v and accumulates both norms,
 * the second recomputes u from m, v (bit-identical) and applies it, so no
 * update buffer is allocated. */
#include "optim/optimizer.h"
#include <math.h>

#define OMP_MIN 32768

float lamb_update(float *p, const float *g, float *m, float *v, size_t n, double lr_, double wd_, double beta1,
                  double beta2, double eps_, long step, float grad_div, int trust_clip, int always_adapt) {
    const float bc1 = (float)(1.0 - pow(beta1, (double)step));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, (double)step));
    const float lr = (float)lr_, wd = (float)wd_, eps = (float)eps_;
    const float b1 = (float)beta1, b2 = (float)beta2, a1 = (float)(1.0 - beta1), a2 = (float)(1.0 - beta2);
    const long N = (long)n;
    double wn2 = 0, un2 = 0;
#pragma omp parallel for schedule(static) reduction(+ : wn2, un2) if (N >= OMP_MIN)
    for (long j = 0; j < N; j++) {
        float gj = grad_div != 1.0f ? g[j] / grad_div : g[j];
        float mj = m[j] * b1 + a1 * gj;
        float vj = v[j] * b2 + a2 * gj * gj;
        m[j] = mj;
        v[j] = vj;
        float u = (mj / bc1) / (sqrtf(vj) / bc2_sqrt + eps);
        if (wd != 0.0f) u = u + wd * p[j];
        wn2 += (double)p[j] * p[j];
        un2 += (double)u * u;
    }
    float ratio = 1.0f;
    if (wd != 0.0f || always_adapt) {
        double wn = sqrt(wn2), un = sqrt(un2);
        ratio = wn > 0 && un > 0 ? (float)(wn / un) : 1.0f;
        if (trust_clip && ratio > 1.0f) ratio = 1.0f;
    }
    const float r = ratio;
#pragma omp parallel for schedule(static) if (N >= OMP_MIN)
    for (long j = 0; j < N; j++) {
        float u = (m[j] / bc1) / (sqrtf(v[j]) / bc2_sqrt + eps);
        if (wd != 0.0f) u = u + wd * p[j];
        p[j] = p[j] + (-lr) * (u * r);
    }
    return ratio;
}
