/* The parameters of a model: persistent tensors with timm state_dict names,
 * in registration order (the order timm's state_dict lists them). */
#pragma once
#include "core/tensor.h"

typedef struct ParamList {
    Tensor **t;
    int n, cap;
} ParamList;

/* New zero-initialised parameter with a persistent zeroed grad buffer. The
 * name is copied. Returns NULL (with a message on stderr) on a duplicate name. */
Tensor *mt_param_new(ParamList *p, const char *name, int ndim, const int *shape);
Tensor *mt_param_find(const ParamList *p, const char *name);
void mt_params_zero_grad(ParamList *p);
size_t mt_params_count(const ParamList *p);           /* all elements */
size_t mt_params_count_trainable(const ParamList *p); /* requires_grad only */
void mt_params_free(ParamList *p);
