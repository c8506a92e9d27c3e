/* SGD as torch.optim.SGD with dampening 0:
 *   d = g + wd*p
 *   momentum > 0:  buf = momentum*buf + d  (a zero buffer makes the first step buf = d, as torch)
 *                  d = nesterov ? d + momentum*buf : buf
 *   p -= lr * d */
#include "optim/optimizer.h"

#define OMP_MIN 32768

void sgd_update(float *p, const float *g, float *buf, size_t n, double lr_, double wd_, double momentum,
                int nesterov) {
    const long N = (long)n;
    const float mu = (float)momentum, lr = (float)lr_, wd = (float)wd_;
    if (mu == 0.0f || !buf) {
#pragma omp parallel for schedule(static) if (N >= OMP_MIN)
        for (long j = 0; j < N; j++) {
            float d = wd != 0.0f ? g[j] + wd * p[j] : g[j];
            p[j] = p[j] + (-lr) * d;
        }
        return;
    }
#pragma omp parallel for schedule(static) if (N >= OMP_MIN)
    for (long j = 0; j < N; j++) {
        float d = wd != 0.0f ? g[j] + wd * p[j] : g[j];
        float b = buf[j] * mu + d;
        buf[j] = b;
        if (nesterov) d = d + mu * b;
        else d = b;
        p[j] = p[j] + (-lr) * d;
    }
}
