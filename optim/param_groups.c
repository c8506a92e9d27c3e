#include "optim/param_groups.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pg_match(const char *pat, const char *s) {
    /* iterative glob with backtracking to the last '*' */
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') { star = pat++; resume = s; }
        else if (*pat == *s) { pat++; s++; }
        else if (star) { pat = star + 1; s = ++resume; }
        else return 0;
    }
    while (*pat == '*') pat++;
    return *pat == 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int pg_is_no_decay_shape(const Tensor *t) {
    if (t->ndim <= 1 || ends_with(t->name, ".bias")) return 1;
    for (int d = 0; d < t->ndim - 1; d++)
        if (t->shape[d] != 1) return 0;
    return !ends_with(t->name, ".weight");
}

/* Next comma-separated item of *s (whitespace trimmed) into buf; 0 at the end. */
static int next_item(const char **s, char *buf, size_t n) {
    const char *p = *s;
    while (*p == ',' || isspace((unsigned char)*p)) p++;
    if (!*p) { *s = p; return 0; }
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *end = e;
    while (end > p && isspace((unsigned char)end[-1])) end--;
    size_t len = (size_t)(end - p);
    if (len >= n) len = n - 1;
    memcpy(buf, p, len);
    buf[len] = 0;
    *s = e;
    return 1;
}

static int count_matches(const ParamList *p, const char *pat) {
    int k = 0;
    for (int i = 0; i < p->n; i++) k += pg_match(pat, p->t[i]->name);
    return k;
}

int pg_weight_decay(const ParamList *p, double weight_decay, int wd_all, const char *no_wd, double *wd, char *err,
                    size_t n) {
    for (int i = 0; i < p->n; i++) wd[i] = wd_all || !pg_is_no_decay_shape(p->t[i]) ? weight_decay : 0.0;
    if (!no_wd) return 0;
    char pat[256];
    const char *s = no_wd;
    while (next_item(&s, pat, sizeof pat)) {
        if (!count_matches(p, pat)) {
            snprintf(err, n, "no-weight-decay pattern '%s' matches no parameter", pat);
            return -1;
        }
        if (wd_all) continue; /* wd everywhere overrides the no-decay list */
        for (int i = 0; i < p->n; i++)
            if (pg_match(pat, p->t[i]->name)) wd[i] = 0.0;
    }
    return 0;
}

int pg_lr_mult(const ParamList *p, const char *spec, double *mult, char *err, size_t n) {
    for (int i = 0; i < p->n; i++) mult[i] = -1.0; /* unset */
    char item[256];
    const char *s = spec ? spec : "";
    while (next_item(&s, item, sizeof item)) {
        char *eq = strrchr(item, '=');
        if (!eq || eq == item || !eq[1]) {
            snprintf(err, n, "lr multiplier rule '%s' is not PATTERN=MULT (e.g. 'head.*=1,*=0.1')", item);
            return -1;
        }
        *eq = 0;
        errno = 0;
        char *end;
        double m = strtod(eq + 1, &end);
        if (*end || errno || !(m >= 0) || isinf(m)) {
            snprintf(err, n, "lr multiplier for '%s' must be a finite number >= 0, got '%s'", item, eq + 1);
            return -1;
        }
        if (!count_matches(p, item)) {
            snprintf(err, n, "lr multiplier pattern '%s' matches no parameter", item);
            return -1;
        }
        for (int i = 0; i < p->n; i++)
            if (mult[i] < 0 && pg_match(item, p->t[i]->name)) mult[i] = m;
    }
    for (int i = 0; i < p->n; i++)
        if (mult[i] < 0) mult[i] = 1.0;
    return 0;
}

int pg_freeze(ParamList *p, const char *patterns, char *err, size_t n) {
    if (!patterns) return 0;
    int frozen = 0;
    char pat[256];
    const char *s = patterns;
    while (next_item(&s, pat, sizeof pat)) /* validate every pattern before changing anything */
        if (!count_matches(p, pat)) {
            snprintf(err, n, "freeze pattern '%s' matches no parameter", pat);
            return -1;
        }
    s = patterns;
    while (next_item(&s, pat, sizeof pat)) {
        for (int i = 0; i < p->n; i++)
            if (pg_match(pat, p->t[i]->name) && p->t[i]->requires_grad) {
                p->t[i]->requires_grad = 0;
                frozen++;
            }
    }
    return frozen;
}
