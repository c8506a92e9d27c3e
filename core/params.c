#include "core/params.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz);
    if (!p) { fprintf(stderr, "mixtape: out of memory (%zu x %zu bytes for parameters)\n", n, sz); abort(); }
    return p;
}

Tensor *mt_param_new(ParamList *p, const char *name, int ndim, const int *shape) {
    if (mt_param_find(p, name)) {
        fprintf(stderr, "mixtape: parameter '%s' registered twice\n", name);
        return NULL;
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        Tensor **t = realloc(p->t, (size_t)p->cap * sizeof *t);
        if (!t) { fprintf(stderr, "mixtape: out of memory (parameter list)\n"); abort(); }
        p->t = t;
    }
    Tensor *t = xcalloc(1, sizeof *t);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = mt_numel(ndim, shape);
    t->data = xcalloc(t->numel, sizeof(float));
    t->grad = xcalloc(t->numel, sizeof(float));
    t->requires_grad = 1;
    t->is_param = 1;
    char *nm = xcalloc(strlen(name) + 1, 1);
    memcpy(nm, name, strlen(name));
    t->name = nm;
    p->t[p->n++] = t;
    return t;
}

Tensor *mt_param_find(const ParamList *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->t[i]->name, name) == 0) return p->t[i];
    return NULL;
}

void mt_params_zero_grad(ParamList *p) {
    for (int i = 0; i < p->n; i++) memset(p->t[i]->grad, 0, p->t[i]->numel * sizeof(float));
}

size_t mt_params_count(const ParamList *p) {
    size_t n = 0;
    for (int i = 0; i < p->n; i++) n += p->t[i]->numel;
    return n;
}

size_t mt_params_count_trainable(const ParamList *p) {
    size_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (p->t[i]->requires_grad) n += p->t[i]->numel;
    return n;
}

void mt_params_free(ParamList *p) {
    for (int i = 0; i < p->n; i++) {
        free(p->t[i]->data);
        free(p->t[i]->grad);
        free((char *)p->t[i]->name);
        free(p->t[i]);
    }
    free(p->t);
    memset(p, 0, sizeof *p);
}
