/* Adam and AdamW, element for element as torch.optim.Adam / AdamW (single-tensor path):
 *   AdamW: p *= 1 - lr*wd                      (decoupled decay)
 *   Adam:  g += wd*p                           (L2 decay coupled into the gradient)
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
 *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 * Scalars are formed in double as torch does in Python, then applied in fp32. The file is built
 * with -ffp-contract=off (CMakeLists.txt): the multiply-adds fused are the MADDs written here, so
 * the vectorised loop rounds every element as the scalar one does. */
#include "optim/optimizer.h"
#include <math.h>

/* x * y + z, fused where the CPU has a fast fma (as the compiler contracted these terms in the
 * scalar loop), two roundings where it has none (a library fma per element would be slow). */
#ifdef FP_FAST_FMAF
#define MADD(x, y, z) fmaf(x, y, z)
#else
#define MADD(x, y, z) ((x) * (y) + (z))
#endif

#define OMP_MIN 32768

void adam_update(float *p, const float *g, float *m, float *v, size_t n, double lr, double wd_, double beta1,
                 double beta2, double eps_, long step, int decoupled) {
    const double bc1 = 1.0 - pow(beta1, (double)step);
    const double bc2 = 1.0 - pow(beta2, (double)step);
    const float step_size = (float)(lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float decay = (float)(1.0 - lr * wd_);
    const float wd = (float)wd_, eps = (float)eps_;
    const float b1 = (float)beta1, b2 = (float)beta2, a1 = (float)(1.0 - beta1), a2 = (float)(1.0 - beta2);
    const long N = (long)n;
    if (decoupled) {
#pragma omp parallel for schedule(static) if (N >= OMP_MIN)
        for (long j = 0; j < N; j++) {
            float pj = wd != 0.0f ? p[j] * decay : p[j];
            float gj = g[j];
            float mj = MADD(m[j], b1, a1 * gj);
            float vj = MADD(v[j], b2, a2 * gj * gj);
            float denom = sqrtf(vj) / bc2_sqrt + eps;
            m[j] = mj;
            v[j] = vj;
            p[j] = pj + (-step_size) * mj / denom;
        }
    } else {
#pragma omp parallel for schedule(static) if (N >= OMP_MIN)
        for (long j = 0; j < N; j++) {
            float pj = p[j];
            float gj = wd != 0.0f ? MADD(wd, pj, g[j]) : g[j];
            float mj = MADD(m[j], b1, a1 * gj);
            float vj = MADD(v[j], b2, a2 * gj * gj);
            float denom = sqrtf(vj) / bc2_sqrt + eps;
            m[j] = mj;
            v[j] = vj;
            p[j] = pj + (-step_size) * mj / denom;
        }
    }
}
