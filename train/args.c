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

void args_free(Args *a) {
    free(a->used);
    a->used = NULL;
    for (int i = 0; i < a->nextra; i++) free(a->extra[i]);
    free(a->extra);
    free(a->argv_owned);
    a->extra = a->argv_owned = NULL;
    a->nextra = 0;
}

/* Remember the resolved value of a flag (last query wins). */
static void record(Args *a, const char *name, const char *val) {
    const char *key = name;
    while (*key == '-') key++;
    int i;
    for (i = 0; i < a->nrec; i++)
        if (!strcmp(a->rec[i].key, key)) break;
    if (i == a->nrec) {
        if (a->nrec == (int)(sizeof a->rec / sizeof a->rec[0])) return;
        a->nrec++;
    }
    snprintf(a->rec[i].key, sizeof a->rec[i].key, "%s", key);
    snprintf(a->rec[i].val, sizeof a->rec[i].val, "%s", val ? val : "null");
}

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

static const char *str_raw(Args *a, const char *name, const char *alias, const char *def);

const char *args_str(Args *a, const char *name, const char *alias, const char *def) {
    const char *v = str_raw(a, name, alias, def);
    record(a, name, v);
    return v;
}

static const char *str_raw(Args *a, const char *name, const char *alias, const char *def) {
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
    const char *s = str_raw(a, name, alias, NULL);
    char b[32];
    snprintf(b, sizeof b, "%ld", def);
    record(a, name, s ? s : b);
    if (!s) return def;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) { fail(a, "flag '%s' wants an integer, got '%s'", name, s); return def; }
    return v;
}

double args_float(Args *a, const char *name, const char *alias, double def) {
    const char *s = str_raw(a, name, alias, NULL);
    char b[40];
    snprintf(b, sizeof b, "%.9g", def);
    record(a, name, s ? s : b);
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

static int flag_raw(Args *a, const char *name, int def) {
    const char *v = NULL;
    int i = find(a, name, NULL, &v);
    if (i < 0) return def;
    for (int j = 0; j < a->argc; j++) { /* every occurrence is consumed; the last one wins */
        size_t L = strlen(name);
        if (strncmp(a->argv[j], name, L) == 0 && (a->argv[j][L] == 0 || a->argv[j][L] == '=')) a->used[j] = 1;
    }
    if (!v) return 1;
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) return 1;
    if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) return 0;
    fail(a, "flag '%s' wants true/false, got '%s'", name, v);
    return def;
}

int args_flag(Args *a, const char *name, int def) {
    int v = flag_raw(a, name, def);
    record(a, name, v ? "true" : "false");
    return v;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) *--e = 0;
    if (e - s >= 2 && ((s[0] == '"' && e[-1] == '"') || (s[0] == '\'' && e[-1] == '\''))) { e[-1] = 0; s++; }
    return s;
}

int args_load_yaml(Args *a, const char *path) {
    if (a->argv_owned) { fail(a, "only one config file is supported (got a second: '%s')%s", path, ""); return -1; }
    FILE *f = fopen(path, "r");
    if (!f) { fail(a, "cannot open config file '%s'%s", path, ""); return -1; }
    int cap = 256, n = 0;
    char **extra = calloc((size_t)cap + 1, sizeof *extra);
    char line[4096], key[64] = "", list[4096] = "";
    int lineno = 0, in_list = 0;
    int ok = 1;
#define FLUSH_ITEM(k, v)                                                                             \
    do {                                                                                             \
        if (n < cap && strcmp((v), "null") && strcmp((v), "~") && *(v)) {                            \
            char *item = malloc(strlen(k) + strlen(v) + 4);                                          \
            sprintf(item, "--%s=%s", (k), (v));                                                      \
            for (char *q = item + 2; *q && *q != '='; q++) if (*q == '_') *q = '-';                  \
            extra[n++] = item;                                                                       \
        }                                                                                            \
    } while (0)
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *h = strchr(line, '#');
        if (h && (h == line || h[-1] == ' ')) *h = 0;
        char *t = trim(line);
        if (!*t) continue;
        if (t[0] == '-' && t[1] == ' ') { /* block list item */
            if (!in_list) { ok = 0; break; }
            size_t L = strlen(list);
            snprintf(list + L, sizeof list - L, "%s%s", L ? "," : "", trim(t + 2));
            continue;
        }
        if (in_list) { FLUSH_ITEM(key, list); in_list = 0; }
        char *colon = strchr(t, ':');
        if (!colon) { ok = 0; break; }
        *colon = 0;
        snprintf(key, sizeof key, "%s", trim(t));
        char *v = trim(colon + 1);
        if (!*v) { in_list = 1; list[0] = 0; continue; }
        if (v[0] == '[') { /* inline list */
            char *e = strrchr(v, ']');
            if (!e) { ok = 0; break; }
            *e = 0;
            char buf[4096] = "";
            for (char *tok = strtok(v + 1, ","); tok; tok = strtok(NULL, ",")) {
                size_t L = strlen(buf);
                snprintf(buf + L, sizeof buf - L, "%s%s", L ? "," : "", trim(tok));
            }
            FLUSH_ITEM(key, buf);
            continue;
        }
        FLUSH_ITEM(key, v);
    }
    if (ok && in_list) FLUSH_ITEM(key, list);
#undef FLUSH_ITEM
    fclose(f);
    if (!ok) {
        char where[600];
        snprintf(where, sizeof where, "%s line %d", path, lineno);
        for (int i = 0; i < n; i++) free(extra[i]);
        free(extra);
        fail(a, "config file %s: expected 'key: value' or '- item'%s", where, "");
        return -1;
    }
    /* new argv: config entries first, so the command line (later) wins */
    char **argv = calloc((size_t)(n + a->argc) + 1, sizeof *argv);
    for (int i = 0; i < n; i++) argv[i] = extra[i];
    for (int i = 0; i < a->argc; i++) argv[n + i] = a->argv[i];
    unsigned char *used = calloc((size_t)(n + a->argc) + 1, 1);
    memcpy(used + n, a->used, (size_t)a->argc);
    free(a->used);
    a->used = used;
    a->argv = argv;
    a->argc += n;
    for (int i = 0; i < a->nextra; i++) free(a->extra[i]); /* a second config file replaces the first */
    free(a->extra);
    free(a->argv_owned);
    a->extra = extra;
    a->nextra = n;
    a->argv_owned = argv;
    return 0;
}

void args_dump_yaml(const Args *a, FILE *f) {
    for (int i = 0; i < a->nrec; i++) {
        char key[48];
        snprintf(key, sizeof key, "%s", a->rec[i].key);
        for (char *q = key; *q; q++) if (*q == '-') *q = '_';
        const char *v = a->rec[i].val;
        int plain = *v && !strpbrk(v, ":#{}[]'\"") && v[0] != ' ';
        if (plain) fprintf(f, "%s: %s\n", key, v);
        else {
            fprintf(f, "%s: \"", key);
            for (const char *q = v; *q; q++) fprintf(f, (*q == '"' || *q == '\\') ? "\\%c" : "%c", *q);
            fprintf(f, "\"\n");
        }
    }
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
