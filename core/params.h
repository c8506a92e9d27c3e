/* The parameters of a model: persistent tensors with timm state_dict names,
 * in registration order (the order timm's state_dict lists them). Names are
 * also kept in a hash table, so registering and finding stay O(1) per name
 * (a deep model must not make model building quadratic). */
#pragma once
#include "core/tensor.h"

typedef struct ParamList {
    Tensor **t;
    int n, cap;
    int *slots;       /* open-addressing hash of names -> index + 1 (0 = empty), hcap entries */
    int hcap;
    int dry;          /* set before registering: shapes only, no data / grad buffers (parameter counting) */
    size_t total;     /* elements registered so far (saturating) */
} ParamList;

/* New zero-initialised parameter with a persistent zeroed grad buffer. The
 * name is copied. Returns NULL (with a message on stderr) on a duplicate name.
 * In a dry list data and grad stay NULL. */
Tensor *mt_param_new(ParamList *p, const char *name, int ndim, const int *shape);
Tensor *mt_param_find(const ParamList *p, const char *name);
void mt_params_zero_grad(ParamList *p);
size_t mt_params_count(const ParamList *p);           /* all elements */
size_t mt_params_count_trainable(const ParamList *p); /* requires_grad only */
void mt_params_free(ParamList *p);
