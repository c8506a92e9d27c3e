#include "train/args.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void args_init(Args *a, const char *cmd, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->argc = argc;
    a->argv = argv;
    a->used = calloc((size_t)argc + 1, 1);
}

void args_free(Args *a) { free(a->used); a->used = NULL; }

static void fail(Args *a, const char *fmt, const char *s1, const char *s2) {
    if (a->failed) return;
    a->failed = 1;
    int k = snprintf(a->err, sizeof a->err, "mixtape %s: ", a->cmd);
    snprintf(a->err + k, sizeof a->err - (size_t)k, fmt, s1, s2);
}

/* Index of the flag (argv[i] == name or starts with "name="), or -1. Later occurrences win. */
static int find(Args *a, const char *name, const char *alias, const char **inline_val) {
    int hit = -1;
    for (int i = 0; i < a->argc; i++) {
        const char *s = a->argv[i];
        if (!s) continue;
        for (int k = 0; k < 2; k++) {
            const char *n = k ? alias : name;
            if (!n) continue;
            size_t L = strlen(n);
            if (strncmp(s, n, L) == 0 && (s[L] == 0 || s[L] == '=')) {
                hit = i;
                *inline_val = s[L] == '=' ? s + L + 1 : NULL;
            }
        }
    }
    return hit;
}

int args_has(Args *a, const char *name, const char *alias) {
    const char *v;
    return find(a, name, alias, &v) >= 0;
}

const char *args_str(Args *a, const char *name, const char *alias, const char *def) {
    const char *v = NULL;
    int i = find(a, name, alias, &v);
    if (i < 0) return def;
    /* mark every occurrence used, the last one wins */
    for (int j = 0; j < a->argc; j++) {
        const char *s = a->argv[j];
        size_t L = strlen(name);
        int m = (strncmp(s, name, L) == 0 && (s[L] == 0 || s[L] == '=')) ||
                (alias && strncmp(s, alias, strlen(alias)) == 0 &&
                 (s[strlen(alias)] == 0 || s[strlen(alias)] == '='));
        if (m) {
            a->used[j] = 1;
            if (!strchr(s, '=') && j + 1 < a->argc) a->used[j + 1] = 1;
        }
    }
    if (v) return v;
    if (i + 1 >= a->argc) { fail(a, "flag '%s' needs a value%s", name, ""); return def; }
    return a->argv[i + 1];
}

long args_int(Args *a, const char *name, const char *alias, long def) {
    const char *s = args_str(a, name, alias, NULL);
    if (!s) return def;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) { fail(a, "flag '%s' wants an integer, got '%s'", name, s); return def; }
    return v;
}

double args_float(Args *a, const char *name, const char *alias, double def) {
    const char *s = args_str(a, name, alias, NULL);
    if (!s) return def;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        fail(a, "flag '%s' wants a finite number, got '%s'", name, s);
        return def;
    }
    return v;
}

int args_flag(Args *a, const char *name, int def) {
    const char *v = NULL;
    int i = find(a, name, NULL, &v);
    if (i < 0) return def;
    a->used[i] = 1;
    if (!v) return 1;
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) return 1;
    if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) return 0;
    fail(a, "flag '%s' wants true/false, got '%s'", name, v);
    return def;
}

const char *args_positional(Args *a) {
    for (int i = 0; i < a->argc; i++)
        if (!a->used[i] && a->argv[i][0] != '-') {
            a->used[i] = 1;
            return a->argv[i];
        }
    return NULL;
}

int args_finish(Args *a) {
    if (a->failed) return -1;
    for (int i = 0; i < a->argc; i++)
        if (!a->used[i]) {
            fail(a, a->argv[i][0] == '-' ? "unknown flag '%s'%s" : "unexpected argument '%s'%s", a->argv[i],
                 " (see --help)");
            return -1;
        }
    return 0;
}
