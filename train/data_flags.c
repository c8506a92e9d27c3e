#include "train/data_flags.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const AUG_FLAGS[] = {
    "--scale", "--ratio", "--hflip", "--vflip", "--aa", "--color-jitter", "--reprob", "--remode", "--recount",
    "--mixup", "--cutmix", "--cutmix-minmax", "--mixup-prob", "--mixup-switch-prob", "--mixup-mode",
    "--smoothing", "--interpolation", "--train-interpolation", "--crop-pct", "--mean", "--std",
};
/* Flags that take several numbers, timm's nargs='+' / nargs=2. */
static const char *const LIST_FLAGS[] = {"--scale", "--ratio", "--color-jitter", "--cutmix-minmax", "--mean", "--std"};

static int is_number(const char *s) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    strtod(s, &end);
    return !errno && *end == 0;
}

static int in_list(const char *f, const char *const *l, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(f, l[i])) return 1;
    return 0;
}

/* Value of a list flag: "--mean=a,b,c" or "--mean a b c" (the numbers that follow); the last
 * occurrence wins. Writes into buf; NULL when absent. Marks the arguments used. */
static const char *list_value(Args *a, const char *name, char *buf, size_t n, int *missing) {
    const char *val = NULL;
    size_t L = strlen(name);
    *missing = 0;
    for (int i = 0; i < a->argc; i++) {
        const char *s = a->argv[i];
        if (strncmp(s, name, L) || (s[L] && s[L] != '=')) continue;
        a->used[i] = 1;
        if (s[L] == '=') {
            snprintf(buf, n, "%s", s + L + 1);
            val = buf;
            *missing = 0;
            continue;
        }
        size_t k = 0;
        buf[0] = 0;
        int j = i + 1;
        for (; j < a->argc && is_number(a->argv[j]); j++) {
            a->used[j] = 1;
            int w = snprintf(buf + k, n > k ? n - k : 0, "%s%s", k ? " " : "", a->argv[j]);
            if (w > 0) k += (size_t)w;
        }
        if (j == i + 1) {   /* no number follows: take one word (e.g. "none") */
            if (j < a->argc && a->argv[j][0] != '-') { a->used[j] = 1; snprintf(buf, n, "%s", a->argv[j]); }
            else *missing = 1;
        }
        val = buf;
    }
    return val;
}

int data_flags_parse(Args *a, AugConfig *aug, char *err, size_t errn) {
    char buf[512], e[512];
    for (size_t i = 0; i < sizeof AUG_FLAGS / sizeof *AUG_FLAGS; i++) {
        const char *f = AUG_FLAGS[i];
        const char *v;
        if (in_list(f, LIST_FLAGS, sizeof LIST_FLAGS / sizeof *LIST_FLAGS)) {
            int missing;
            v = list_value(a, f, buf, sizeof buf, &missing);
            if (v && missing) { snprintf(err, errn, "mixtape %s: flag '%s' needs a value", a->cmd, f); return -1; }
        } else {
            if (!args_has(a, f, NULL)) continue;
            v = args_str(a, f, NULL, NULL);
            if (a->failed) { snprintf(err, errn, "%s", a->err); return -1; }
        }
        if (!v) continue;
        int rc = aug_config_set(aug, f, v, e, sizeof e);
        if (rc < 0) { snprintf(err, errn, "mixtape %s: %s", a->cmd, e); return -1; }
        if (rc > 0) { snprintf(err, errn, "mixtape %s: '%s' is not an augmentation flag", a->cmd, f); return -1; }
    }
    return 0;
}

int data_flags_loader(Args *a, LoaderConfig *c, char *err, size_t errn) {
    if (args_has(a, "--shuffle-buffer", NULL)) c->shuffle_buffer = (int)args_int(a, "--shuffle-buffer", NULL, 4096);
    if (args_has(a, "--prefetch", NULL)) c->prefetch = (int)args_int(a, "--prefetch", NULL, 3);
    if (args_has(a, "--data-warnings", NULL)) c->max_warnings = (int)args_int(a, "--data-warnings", NULL, 10);
    c->fast_decode = args_flag(a, "--fast-decode", c->fast_decode);
    if (a->failed) { snprintf(err, errn, "%s", a->err); return -1; }
    if (args_has(a, "--shuffle-buffer", NULL) && (c->shuffle_buffer < 0 || c->shuffle_buffer > 1 << 24)) {
        snprintf(err, errn, "mixtape %s: --shuffle-buffer %d: want 0..%d", a->cmd, c->shuffle_buffer, 1 << 24);
        return -1;
    }
    if (c->prefetch < 0 || c->prefetch > 64) {
        snprintf(err, errn, "mixtape %s: --prefetch %d: want 0..64", a->cmd, c->prefetch);
        return -1;
    }
    return 0;
}

void data_flags_help(FILE *f) {
    fprintf(f,
            "augment:   --scale 0.08 1.0 --ratio 0.75 1.3333 --hflip 0.5 --vflip 0 --aa rand-m9-mstd0.5-inc1\n"
            "           --color-jitter 0.4 --reprob 0 --remode pixel --recount 1 --smoothing 0.1\n"
            "           --mixup 0 --cutmix 0 --cutmix-minmax LO HI --mixup-prob 1 --mixup-switch-prob 0.5\n"
            "           --interpolation bicubic --train-interpolation random --crop-pct 0.875\n"
            "           --mean 0.485 0.456 0.406 --std 0.229 0.224 0.225\n"
            "loader:    --shuffle-buffer 4096 (tar shards; 0 = none) --prefetch 3 --fast-decode --data-warnings 10\n");
}
