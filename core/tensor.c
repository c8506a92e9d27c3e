#include "core/tensor.h"
#include <stdio.h>

size_t mt_numel(int ndim, const int *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

int mt_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

char *mt_dims_str(int ndim, const int *shape, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "(");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%d" : "%d", shape[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

char *mt_shape_str(const Tensor *t, char *buf, size_t n) {
    if (!t) { snprintf(buf, n, "(null)"); return buf; }
    return mt_dims_str(t->ndim, t->shape, buf, n);
}
