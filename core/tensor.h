/* A float32 N-d tensor: explicit shape, contiguous row-major data.
 * Parameters own persistent data and grad (malloc'd once); activations live in
 * the step arena and get a grad buffer only when backward reaches them. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define MT_MAXDIM 6

typedef struct Tensor {
    int ndim;
    int shape[MT_MAXDIM];
    size_t numel;
    float *data;
    float *grad;        /* NULL until needed; parameters: persistent buffer */
    int requires_grad;  /* backward computes a gradient for it */
    int grad_fresh;     /* grad allocated but not written yet: its first writer overwrites it */
    int is_param;       /* owned by a ParamList, survives arena resets */
    const char *name;   /* parameter: timm state_dict key; activation: producing op */
} Tensor;

/* Shape helpers. */
size_t mt_numel(int ndim, const int *shape);
int mt_same_shape(const Tensor *a, const Tensor *b);
/* "(8,196,512)" into buf; returns buf. */
char *mt_shape_str(const Tensor *t, char *buf, size_t n);
char *mt_dims_str(int ndim, const int *shape, char *buf, size_t n);
/* Size of the last axis / product of all leading axes. */
static inline int mt_last(const Tensor *t) { return t->shape[t->ndim - 1]; }
static inline size_t mt_rows(const Tensor *t) { return t->numel / (size_t)mt_last(t); }
