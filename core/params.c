#include "core/params.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz);
    if (!p) { fprintf(stderr, "mixtape: out of memory (%zu x %zu bytes for parameters)\n", n, sz); abort(); }
    return p;
}

static uint64_t name_hash(const char *s) { /* FNV-1a */
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Slot of name: its entry, or the empty slot where it would go. hcap is a power of two. */
static int *slot_of(const ParamList *p, const char *name) {
    size_t mask = (size_t)p->hcap - 1, i = (size_t)name_hash(name) & mask;
    while (p->slots[i] && strcmp(p->t[p->slots[i] - 1]->name, name) != 0) i = (i + 1) & mask;
    return &p->slots[i];
}

/* Keep the table at most half full. */
static void rehash(ParamList *p, int need) {
    if (p->hcap && need * 2 <= p->hcap) return;
    int cap = p->hcap ? p->hcap : 128;
    while (need * 2 > cap) cap *= 2;
    free(p->slots);
    p->slots = xcalloc((size_t)cap, sizeof *p->slots);
    p->hcap = cap;
    for (int i = 0; i < p->n; i++) *slot_of(p, p->t[i]->name) = i + 1;
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
    rehash(p, p->n + 1);
    Tensor *t = xcalloc(1, sizeof *t);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = mt_numel(ndim, shape);
    if (!p->dry) {
        t->data = xcalloc(t->numel, sizeof(float));
        t->grad = xcalloc(t->numel, sizeof(float));
    }
    p->total = t->numel > SIZE_MAX - p->total ? SIZE_MAX : p->total + t->numel;
    t->requires_grad = 1;
    t->is_param = 1;
    char *nm = xcalloc(strlen(name) + 1, 1);
    memcpy(nm, name, strlen(name));
    t->name = nm;
    p->t[p->n++] = t;
    *slot_of(p, nm) = p->n;
    return t;
}

Tensor *mt_param_find(const ParamList *p, const char *name) {
    if (!p->hcap || !name) return NULL;
    int k = *slot_of(p, name);
    return k ? p->t[k - 1] : NULL;
}

void mt_params_zero_grad(ParamList *p) {
    for (int i = 0; i < p->n; i++)
        if (p->t[i]->grad) memset(p->t[i]->grad, 0, p->t[i]->numel * sizeof(float));
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
    free(p->slots);
    memset(p, 0, sizeof *p);
}
