#include "train/args.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void args_init(Args *a, const char *cmd, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->argc = argc;
    a->argv = argv;
    a->used = calloc((size_t)argc + 1, 1);
    a->dashdash = -1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--")) { a->dashdash = i; a->used[i] = 1; break; }
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) a->describe = ARGS_HELP;
        else if (!strcmp(argv[i], "--list-flags") && a->describe != ARGS_HELP) a->describe = ARGS_LIST;
    }
    /* --dry-run: every command checks its command line and stops (train declares its own) */
    for (int i = 0; i < (a->dashdash >= 0 ? a->dashdash : argc) && !a->describe; i++)
        if (!strcmp(argv[i], "--dry-run")) {
            a->describe = ARGS_CHECK;
            a->used[i] = 1;
        }
}

void args_free(Args *a) {
    free(a->used);
    a->used = NULL;
    for (int i = 0; i < a->nextra; i++) free(a->extra[i]);
    free(a->extra);
    free(a->extra_line);
    free(a->argv_owned);
    a->extra = a->argv_owned = NULL;
    a->extra_line = NULL;
    a->nextra = 0;
}

static void fail(Args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(Args *a, const char *fmt, ...) {
    if (a->failed) return;
    a->failed = 1;
    int k = snprintf(a->err, sizeof a->err, "mixtape %s: ", a->cmd);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err + k, sizeof a->err - (size_t)k, fmt, ap);
    va_end(ap);
}

static const char *bare(const char *name) {
    while (*name == '-') name++;
    return name;
}

static ArgRec *rec_find(Args *a, const char *name) {
    const char *key = bare(name);
    for (int i = 0; i < a->nrec; i++)
        if (!strcmp(a->rec[i].key, key)) return &a->rec[i];
    return NULL;
}

/* The record of a flag, created on first declaration (the first declaration's
 * type, default and help stay; a later query only updates the value). */
static ArgRec *declare(Args *a, const char *name, const char *alias, ArgType t, const char *def, int ranged, double lo,
                       double hi, const char *choices, const char *help) {
    ArgRec *r = rec_find(a, name);
    if (r) {
        if (!r->help && help) r->help = help;
        return r;
    }
    if (a->nrec == ARGS_MAX_REC) {
        fail(a, "internal: more than %d flags declared", ARGS_MAX_REC);
        return NULL;
    }
    r = &a->rec[a->nrec++];
    memset(r, 0, sizeof *r);
    snprintf(r->key, sizeof r->key, "%s", bare(name));
    snprintf(r->alias, sizeof r->alias, "%s", alias ? alias : "");
    snprintf(r->def, sizeof r->def, "%s", def ? def : "");
    snprintf(r->val, sizeof r->val, "null");
    r->type = t;
    r->ranged = ranged;
    r->lo = lo;
    r->hi = hi;
    r->choices = choices;
    r->help = help;
    r->group = a->group;
    return r;
}

void args_record(Args *a, const char *name, const char *val) {
    ArgRec *r = rec_find(a, name);
    if (!r) r = declare(a, name, NULL, ARG_STR, NULL, 0, 0, 0, NULL, NULL);
    if (r) snprintf(r->val, sizeof r->val, "%s", val ? val : "null");
}

void args_norecord(Args *a, const char *name) {
    ArgRec *r = rec_find(a, name);
    if (r) r->norecord = 1;
}

void args_group(Args *a, const char *title) { a->group = title; }

void args_scope(Args *a, const char *name, const char *scope) {
    ArgRec *r = rec_find(a, name);
    if (r) r->scope = scope;
}

/* Flags end at "--". */
static int opt_end(const Args *a) { return a->dashdash >= 0 ? a->dashdash : a->argc; }

/* Does argv[i] name the flag n? Sets *val to an inline value ("--n=v", "-bV"). */
static int matches(const char *s, const char *n, const char **val) {
    if (!n || !*n) return 0;
    size_t L = strlen(n);
    if (strncmp(s, n, L)) return 0;
    if (s[L] == 0) { *val = NULL; return 1; }
    if (s[L] == '=') { *val = s + L + 1; return 1; }
    if (L == 2 && n[0] == '-' && n[1] != '-') { *val = s + L; return 1; } /* -b64 */
    return 0;
}

/* Index of the last occurrence of the flag, or -1; with mark, every occurrence (and its
 * separate value when takes_value) is consumed. In a describe pass nothing matches. */
static int find(Args *a, const char *name, const char *alias, const char **inline_val, int mark, int takes_value) {
    int hit = -1;
    *inline_val = NULL;
    if (args_describing(a)) return -1;
    for (int i = 0; i < opt_end(a); i++) {
        const char *s = a->argv[i], *v = NULL;
        if (matches(s, name, &v) || (alias && matches(s, alias, &v))) {
            hit = i;
            *inline_val = v;
            if (mark) {
                a->used[i] = 1;
                if (!v && takes_value && i + 1 < opt_end(a)) a->used[i + 1] = 1;
            }
            if (!v && takes_value) i++; /* the value is not a flag occurrence */
        }
    }
    return hit;
}

int args_describing(const Args *a) { return a->describe == ARGS_HELP || a->describe == ARGS_LIST; }

int args_has(Args *a, const char *name, const char *alias) {
    const char *v;
    return find(a, name, alias, &v, 0, 1) >= 0;
}

/* " (config file F line N)" when argv[i] came from the config file. */
static const char *origin(const Args *a, int i, char *buf, size_t n) {
    buf[0] = 0;
    if (i >= 0 && i < a->nextra) snprintf(buf, n, " (config file %s line %d)", a->cfg_path, a->extra_line[i]);
    return buf;
}

/* Raw value of a value-taking flag (last occurrence), NULL when absent; *at = its index. */
static const char *raw(Args *a, const char *name, const char *alias, int *at) {
    const char *v = NULL;
    int i = find(a, name, alias, &v, 1, 1);
    *at = i;
    if (i < 0) return NULL;
    if (v) return v;
    if (i + 1 >= opt_end(a)) {
        char o[600];
        fail(a, "flag '%s' needs a value%s", name, origin(a, i, o, sizeof o));
        return NULL;
    }
    return a->argv[i + 1];
}

static void fmt_num(char *b, size_t n, double v) {
    if (v == floor(v) && fabs(v) < 1e15) snprintf(b, n, "%.0f", v);
    else snprintf(b, n, "%.9g", v);
}

static void range_str(const ArgRec *r, char *b, size_t n) {
    char lo[40], hi[40];
    fmt_num(lo, sizeof lo, r->lo);
    fmt_num(hi, sizeof hi, r->hi);
    snprintf(b, n, "[%s, %s]", lo, hi);
}

static int parse_long(const char *s, long *v) {
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    return errno || end == s || *end ? -1 : 0;
}

static int parse_double(const char *s, double *v) {
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    /* ERANGE on underflow to a tiny value is still an out-of-range request */
    return errno || end == s || *end || !isfinite(*v) ? -1 : 0;
}

static int in_choices(const char *v, const char *choices) {
    size_t L = strlen(v);
    for (const char *p = choices; p && *p;) {
        const char *e = strchr(p, '|');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == L && !strncmp(p, v, L)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int is_number(const char *s) {
    double v;
    return s && *s && parse_double(s, &v) == 0;
}

/* Checks one raw value against its declaration; 0 ok, -1 with a.err. */
static int check(Args *a, const ArgRec *r, const char *name, const char *v, int at) {
    char o[600], rs[100];
    origin(a, at, o, sizeof o);
    if (r->ranged) range_str(r, rs, sizeof rs);
    if (r->type == ARG_INT) {
        long x;
        if (parse_long(v, &x)) {
            fail(a, "%s '%s': expected an integer%s%s%s", name, v, r->ranged ? " in " : "", r->ranged ? rs : "", o);
            return -1;
        }
        if (r->ranged && ((double)x < r->lo || (double)x > r->hi)) {
            fail(a, "%s %s: out of range %s%s", name, v, rs, o);
            return -1;
        }
    } else if (r->type == ARG_FLOAT) {
        double x;
        if (parse_double(v, &x)) {
            fail(a, "%s '%s': expected a finite number%s%s%s", name, v, r->ranged ? " in " : "", r->ranged ? rs : "", o);
            return -1;
        }
        if (r->ranged && (x < r->lo || x > r->hi)) {
            fail(a, "%s %s: out of range %s%s", name, v, rs, o);
            return -1;
        }
    } else if (r->type == ARG_CHOICE) {
        if (!in_choices(v, r->choices)) {
            fail(a, "%s '%s': expected one of %s%s", name, v, r->choices, o);
            return -1;
        }
    } else if ((r->type == ARG_LIST || r->type == ARG_INTS) && r->ranged) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", v);
        if (!strcmp(buf, "none") || !strcmp(buf, "None")) return 0;
        for (char *save = NULL, *t = strtok_r(buf, ", []()", &save); t; t = strtok_r(NULL, ", []()", &save)) {
            double x;
            long y;
            if (parse_double(t, &x) || x < r->lo || x > r->hi || (r->type == ARG_INTS && parse_long(t, &y))) {
                fail(a, "%s '%s': each value must be %s in %s%s", name, v,
                     r->type == ARG_INTS ? "an integer" : "a number", rs, o);
                return -1;
            }
        }
    } else if (!*v && r->type != ARG_STR) {
        fail(a, "%s: empty value%s", name, o);
        return -1;
    }
    return 0;
}

const char *args_value(Args *a, const char *name, const char *alias, ArgType t, const char *def, double lo,
                       double hi, const char *choices, const char *help) {
    int ranged = (t == ARG_INT || t == ARG_FLOAT || t == ARG_LIST || t == ARG_INTS) && lo <= hi;
    ArgRec *r = declare(a, name, alias, t, def, ranged, lo, hi, choices, help);
    if (!r) return NULL;
    int at;
    const char *v = raw(a, name, alias, &at);
    if (v && check(a, r, name, v, at) != 0) v = NULL;
    if (v && strlen(v) >= sizeof r->val) { /* args.yaml must hold it whole */
        fail(a, "%s: value longer than %zu bytes", name, sizeof r->val - 1);
        v = NULL;
    }
    snprintf(r->val, sizeof r->val, "%s", v ? v : def ? def : "null");
    return v;
}

long args_int_range(Args *a, const char *name, const char *alias, long def, long lo, long hi, const char *help) {
    char d[32];
    snprintf(d, sizeof d, "%ld", def);
    const char *v = args_value(a, name, alias, ARG_INT, d, (double)lo, (double)hi, NULL, help);
    long x;
    if (!v || parse_long(v, &x)) return def;
    if (x < lo || x > hi) { /* double rounding near LONG_MAX */
        char rs[100];
        range_str(rec_find(a, name), rs, sizeof rs);
        fail(a, "%s %s: out of range %s", name, v, rs);
        return def;
    }
    return x;
}

double args_float_range(Args *a, const char *name, const char *alias, double def, double lo, double hi,
                        const char *help) {
    char d[40];
    if (isnan(def)) d[0] = 0;
    else fmt_num(d, sizeof d, def);
    const char *v = args_value(a, name, alias, ARG_FLOAT, isnan(def) ? NULL : d, lo, hi, NULL, help);
    double x;
    if (!v || parse_double(v, &x)) return def;
    return x;
}

const char *args_string(Args *a, const char *name, const char *alias, const char *def, const char *help) {
    const char *v = args_value(a, name, alias, ARG_STR, def, 1, 0, NULL, help);
    return v ? v : def;
}

const char *args_choice(Args *a, const char *name, const char *alias, const char *def, const char *choices,
                        const char *help) {
    const char *v = args_value(a, name, alias, ARG_CHOICE, def, 1, 0, choices, help);
    return v ? v : def;
}

int args_bool(Args *a, const char *name, int def, const char *help) {
    ArgRec *r = declare(a, name, NULL, ARG_BOOL, def ? "true" : "false", 0, 0, 0, NULL, help);
    const char *v = NULL;
    int i = find(a, name, NULL, &v, 1, 0);
    int x = def;
    if (i >= 0) {
        if (!v || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes")) x = 1;
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no")) x = 0;
        else {
            char o[600];
            fail(a, "%s '%s': expected true or false%s", name, v, origin(a, i, o, sizeof o));
        }
    }
    if (r) snprintf(r->val, sizeof r->val, "%s", x ? "true" : "false");
    return x;
}

const char *args_list(Args *a, const char *name, const char *def, double lo, double hi, const char *help,
                      char *buf, size_t n) {
    ArgRec *r = declare(a, name, NULL, ARG_LIST, def, lo <= hi, lo, hi, NULL, help);
    if (!r || args_describing(a)) return NULL;
    const char *val = NULL;
    int at = -1;
    for (int i = 0; i < opt_end(a); i++) {
        const char *s = a->argv[i], *v = NULL;
        if (!matches(s, name, &v)) continue;
        a->used[i] = 1;
        at = i;
        if (v) {
            snprintf(buf, n, "%s", v);
            val = buf;
            continue;
        }
        size_t k = 0;
        buf[0] = 0;
        int j = i + 1;
        for (; j < opt_end(a) && is_number(a->argv[j]); j++) {
            a->used[j] = 1;
            int w = snprintf(buf + k, n > k ? n - k : 0, "%s%s", k ? "," : "", a->argv[j]);
            if (w > 0) k += (size_t)w;
        }
        if (j == i + 1) { /* no number follows: one word (e.g. "none") */
            if (j < opt_end(a) && a->argv[j][0] != '-') {
                a->used[j] = 1;
                snprintf(buf, n, "%s", a->argv[j]);
            } else {
                fail(a, "flag '%s' needs a value", name);
                return NULL;
            }
        }
        val = buf;
        i = j - 1;
    }
    if (val && check(a, r, name, val, at) != 0) return NULL;
    snprintf(r->val, sizeof r->val, "%s", val ? val : def ? def : "null");
    return val;
}

/* ---- older getters: declared without range or help ---- */

const char *args_str(Args *a, const char *name, const char *alias, const char *def) {
    const char *v = args_value(a, name, alias, ARG_STR, def, 1, 0, NULL, NULL);
    return v ? v : def;
}

long args_int(Args *a, const char *name, const char *alias, long def) {
    return args_int_range(a, name, alias, def, LONG_MIN, LONG_MAX, NULL);
}

double args_float(Args *a, const char *name, const char *alias, double def) {
    return args_float_range(a, name, alias, def, -INFINITY, INFINITY, NULL);
}

int args_flag(Args *a, const char *name, int def) { return args_bool(a, name, def, NULL); }

/* ---- config files ---- */

static char *strip(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) *--e = 0;
    return s;
}

/* Whitespace and one level of quotes; undoes args_dump_yaml's \" and \\ inside "...". */
static char *trim(char *s) {
    s = strip(s);
    char *e = s + strlen(s);
    if (e - s >= 2 && s[0] == '\'' && e[-1] == '\'') { e[-1] = 0; s++; }
    else if (e - s >= 2 && s[0] == '"' && e[-1] == '"') {
        e[-1] = 0;
        s++;
        char *w = s;
        for (char *q = s; *q; q++) {
            if (*q == '\\' && (q[1] == '"' || q[1] == '\\')) q++;
            *w++ = *q;
        }
        *w = 0;
    }
    return s;
}

/* Keys of timm's train.py args.yaml that mixtape has no use for: skipped with one warning,
 * so a timm run's args.yaml can seed a mixtape run. */
static const char *const TIMM_ONLY[] = {
    "amp", "amp_dtype", "amp_impl", "channels_last", "pin_mem", "dist_bn", "sync_bn", "split_bn",
    "no_prefetcher", "no_ddp_bb", "synchronize_step", "torchscript", "torchcompile", "torchcompile_mode",
    "aot_autograd", "fuser", "fast_norm", "model_kwargs", "head_init_scale",
    "head_init_bias", "pretrained", "pretrained_path", "no_resume_opt", "gp", "input_size",
    "validation_batch_size", "data", "dataset", "train_split", "val_split", "dataset_download", "class_map",
    "train_num_samples", "val_num_samples", "input_img_mode", "input_key", "target_key",
    "dataset_trust_remote_code", "layer_decay", "opt_kwargs", "sched_on_updates", "lr_noise", "lr_noise_pct",
    "lr_noise_std", "lr_cycle_mul", "lr_cycle_decay", "lr_cycle_limit", "lr_k_decay", "epoch_repeats",
    "start_epoch", "decay_milestones", "cooldown_epochs", "patience_epochs", "no_aug", "aug_repeats",
    "aug_splits", "jsd_loss", "bce_loss", "bce_sum", "bce_target_thresh", "bce_pos_weight", "resplit",
    "mixup_off_epoch", "drop_connect", "drop_block", "bn_momentum", "bn_eps", "model_ema_force_cpu",
    "worker_seeding", "recovery_interval", "save_images",
    "use_multi_epochs_loader", "log_wandb", "wandb_project", "wandb_tags", "wandb_resume_id",
    "tta", "local_rank", "device", "device_modules", "model_dtype", "prefetcher", "distributed",
    "world_size", "rank", NULL};

static int timm_only(const char *key) {
    char k[64];
    snprintf(k, sizeof k, "%s", key);
    for (char *q = k; *q; q++) if (*q == '-') *q = '_';
    for (int i = 0; TIMM_ONLY[i]; i++)
        if (!strcmp(k, TIMM_ONLY[i])) return 1;
    return 0;
}

/* Cut a `#` comment: at the line start or after a blank, outside quotes. */
static void strip_comment(char *s) {
    char q = 0;
    for (char *p = s; *p; p++) {
        if (q) {
            if (*p == '\\' && q == '"' && p[1]) p++;
            else if (*p == q) q = 0;
        } else if (*p == '"' || *p == '\'') {
            if (p == s || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '[' || p[-1] == ',') q = *p;
        } else if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
            *p = 0;
            return;
        }
    }
}

typedef struct YamlLoad {
    char **extra;
    int *lines;
    int n, cap, nskipped;
    char skipped[1024];
} YamlLoad;

/* One `key: value` of the file as `--key=value`; null / ~ / empty mean unset (timm). */
static const char *yaml_add(YamlLoad *y, const char *key, const char *v, int line) {
    int unset = !strcmp(v, "null") || !strcmp(v, "~") || !*v;
    if (timm_only(key)) {
        if (!unset && y->nskipped++ < 60) {
            size_t L = strlen(y->skipped);
            snprintf(y->skipped + L, sizeof y->skipped - L, " %s", key);
        }
        return NULL;
    }
    if (unset || !strcmp(key, "config")) return NULL; /* a config file does not chain to another */
    if (y->n >= y->cap) return "too many keys";
    char *item = malloc(strlen(key) + strlen(v) + 4);
    if (!item) return "out of memory";
    sprintf(item, "--%s=%s", key, v);
    for (char *q = item + 2; *q && *q != '='; q++) if (*q == '_') *q = '-';
    y->lines[y->n] = line;
    y->extra[y->n++] = item;
    return NULL;
}

int args_load_yaml(Args *a, const char *path) {
    if (a->argv_owned) { fail(a, "only one config file is supported (got a second: '%s')", path); return -1; }
    FILE *f = fopen(path, "r");
    if (!f) { fail(a, "cannot open config file '%s': %s", path, strerror(errno)); return -1; }
    struct stat st; /* a config is a few KB: refuse a huge file before reading it (a pipe is counted below) */
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (long long)st.st_size > ARGS_YAML_MAX_BYTES) {
        fail(a, "config file '%s' is %lld bytes, more than a config may have (%lld MiB)", path,
             (long long)st.st_size, ARGS_YAML_MAX_BYTES >> 20);
        fclose(f);
        return -1;
    }
    long long nread = 0;
    YamlLoad y = {.cap = 512};
    y.extra = calloc((size_t)y.cap + 1, sizeof *y.extra);
    y.lines = calloc((size_t)y.cap + 1, sizeof *y.lines);
    char line[4096], key[64] = "", list[4096] = "", buf[4096];
    int lineno = 0, in_list = 0, key_line = 0;
    const char *bad = y.extra && y.lines ? NULL : "out of memory";
    while (!bad && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) { bad = "line longer than 4095 bytes"; break; }
        if ((nread += (long long)strlen(line)) > ARGS_YAML_MAX_BYTES) { bad = "more bytes than a config may have (4 MiB)"; break; }
        strip_comment(line);
        char *t = strip(line);
        if (!*t) continue;
        if (t[0] == '-' && (t[1] == ' ' || t[1] == 0)) { /* block list item */
            if (!in_list) { bad = "list item without a key"; break; }
            size_t L = strlen(list);
            snprintf(list + L, sizeof list - L, "%s%s", L ? "," : "", trim(t + 1));
            continue;
        }
        if (in_list) {
            in_list = 0;
            if ((bad = yaml_add(&y, key, list, key_line))) break;
        }
        char *colon = strchr(t, ':');
        if (!colon) { bad = "expected 'key: value' or '- item'"; break; }
        *colon = 0;
        char *k = trim(t);
        if (!*k || strlen(k) >= sizeof key || strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(k)) {
            bad = "expected a flag name (lower-case letters, digits, '_', '-') before ':'";
            break;
        }
        snprintf(key, sizeof key, "%s", k);
        key_line = lineno;
        char *v = trim(colon + 1);
        if (!*v) { in_list = 1; list[0] = 0; continue; }
        if (v[0] == '[') { /* inline list */
            char *e = strrchr(v, ']');
            if (!e) { bad = "inline list without ']'"; break; }
            *e = 0;
            buf[0] = 0;
            for (char *save = NULL, *tok = strtok_r(v + 1, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                size_t L = strlen(buf);
                snprintf(buf + L, sizeof buf - L, "%s%s", L ? "," : "", trim(tok));
            }
            v = buf;
        }
        bad = yaml_add(&y, key, v, lineno);
    }
    if (!bad && in_list) bad = yaml_add(&y, key, list, key_line);
    fclose(f);
    char **argv = NULL;
    unsigned char *used = NULL;
    if (!bad) {
        argv = calloc((size_t)(y.n + a->argc) + 1, sizeof *argv);
        used = calloc((size_t)(y.n + a->argc) + 1, 1);
        if (!argv || !used) bad = "out of memory";
    }
    if (bad) {
        for (int i = 0; i < y.n; i++) free(y.extra[i]);
        free(y.extra);
        free(y.lines);
        free(argv);
        free(used);
        fail(a, "config file %s line %d: %s", path, lineno, bad);
        return -1;
    }
    if (y.nskipped)
        fprintf(stderr, "mixtape %s: warning: config file %s: ignoring %d timm-only key%s:%s\n", a->cmd, path,
                y.nskipped, y.nskipped == 1 ? "" : "s", y.skipped);
    /* new argv: config entries first, so the command line (later) wins */
    for (int i = 0; i < y.n; i++) argv[i] = y.extra[i];
    for (int i = 0; i < a->argc; i++) argv[y.n + i] = a->argv[i];
    memcpy(used + y.n, a->used, (size_t)a->argc);
    free(a->used);
    a->used = used;
    a->argv = argv;
    a->argc += y.n;
    if (a->dashdash >= 0) a->dashdash += y.n;
    a->extra = y.extra;
    a->extra_line = y.lines;
    a->nextra = y.n;
    snprintf(a->cfg_path, sizeof a->cfg_path, "%s", path);
    a->argv_owned = argv;
    return 0;
}

/* Flags whose value is a list are written as `- item` lines, like timm's args.yaml. */
static void dump_scalar(FILE *f, const char *v) {
    int plain = *v && !strpbrk(v, ":#{}[]'\"\\,&*!|>%@`") && v[0] != ' ' && v[0] != '-' && v[strlen(v) - 1] != ' ';
    if (!strcmp(v, "-") || (v[0] == '-' && is_number(v))) plain = 1;
    if (plain) { fprintf(f, "%s", v); return; }
    fputc('"', f);
    for (const char *q = v; *q; q++) {
        if (*q == '"' || *q == '\\') fputc('\\', f);
        fputc(*q, f);
    }
    fputc('"', f);
}

void args_dump_yaml(const Args *a, FILE *f) {
    for (int i = 0; i < a->nrec; i++) {
        const ArgRec *r = &a->rec[i];
        if (r->norecord) continue;
        char key[48];
        snprintf(key, sizeof key, "%s", r->key);
        for (char *q = key; *q; q++) if (*q == '-') *q = '_';
        const char *v = r->val;
        if ((r->type == ARG_LIST || r->type == ARG_INTS) && strcmp(v, "null") && strchr(v, ',')) {
            fprintf(f, "%s:\n", key);
            char buf[sizeof r->val];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                fprintf(f, "- ");
                dump_scalar(f, t);
                fputc('\n', f);
            }
            continue;
        }
        fprintf(f, "%s: ", key);
        dump_scalar(f, v);
        fputc('\n', f);
    }
}

int args_save_yaml(const Args *a, const char *path, char *err, size_t errn) {
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) { snprintf(err, errn, "cannot write %s: %s", tmp, strerror(errno)); return -1; }
    args_dump_yaml(a, f);
    int bad = ferror(f);
    if (fflush(f) || fsync(fileno(f))) bad = 1;
    if (fclose(f)) bad = 1;
    if (bad || rename(tmp, path)) {
        snprintf(err, errn, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

const char *args_positional(Args *a) {
    if (args_describing(a)) return NULL;
    for (int i = 0; i < a->argc; i++) {
        if (a->used[i]) continue;
        int after = a->dashdash >= 0 && i > a->dashdash;
        if (after || a->argv[i][0] != '-' || !strcmp(a->argv[i], "-")) {
            a->used[i] = 1;
            return a->argv[i];
        }
    }
    return NULL;
}

int args_finish(Args *a) {
    if (a->failed) return -1;
    for (int i = 0; i < a->argc; i++) {
        if (a->used[i]) continue;
        if (i < a->nextra) {
            const char *s = a->argv[i] + 2;
            const char *e = strchr(s, '=');
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(e ? e - s : (long)strlen(s)), s);
            for (char *q = key; *q; q++) if (*q == '-') *q = '_';
            fail(a, "config file %s line %d: unknown key '%s' (not a flag of mixtape %s, nor a known timm-only key)",
                 a->cfg_path, a->extra_line[i], key, a->cmd);
        } else if (a->argv[i][0] == '-' && (a->dashdash < 0 || i < a->dashdash))
            fail(a, "unknown flag '%s' (see mixtape %s --help)", a->argv[i], a->cmd);
        else fail(a, "unexpected argument '%s' (see mixtape %s --help)", a->argv[i], a->cmd);
        return -1;
    }
    return 0;
}

/* ---- describe ---- */

static const char *type_name(ArgType t) {
    switch (t) {
    case ARG_INT: return "int";
    case ARG_FLOAT: return "float";
    case ARG_BOOL: return "bool";
    case ARG_LIST: return "list";
    case ARG_INTS: return "ints";
    case ARG_CHOICE: return "choice";
    default: return "str";
    }
}

static const char *meta(const ArgRec *r) {
    switch (r->type) {
    case ARG_INT: return " N";
    case ARG_FLOAT: return " X";
    case ARG_BOOL: return "";
    case ARG_LIST: return " X...";
    case ARG_INTS: return " N,N...";
    case ARG_CHOICE: return " {choice}";
    default: return " S";
    }
}

void args_print_help(const Args *a, FILE *f) {
    const char *group = (const char *)1;
    for (int i = 0; i < a->nrec; i++) {
        const ArgRec *r = &a->rec[i];
        if (r->group != group) {
            group = r->group;
            fprintf(f, "\n%s:\n", group ? group : "flags");
        }
        char lhs[128];
        const char *m = r->type == ARG_CHOICE ? "" : meta(r);
        char mb[80];
        if (r->type == ARG_CHOICE) { snprintf(mb, sizeof mb, " %s", r->choices); m = mb; }
        if (r->alias[0]) snprintf(lhs, sizeof lhs, "%s, --%s%s", r->alias, r->key, m);
        else snprintf(lhs, sizeof lhs, "--%s%s", r->key, m);
        fprintf(f, "  %-30s", lhs);
        if (strlen(lhs) > 30) fprintf(f, "\n  %-30s", "");
        fprintf(f, " %s", r->help ? r->help : "");
        char lo[40], hi[40];
        if (r->ranged) {
            fmt_num(lo, sizeof lo, r->lo);
            fmt_num(hi, sizeof hi, r->hi);
        }
        if (r->type == ARG_BOOL) fprintf(f, "%s\n", strcmp(r->def, "true") ? "" : "  [default on]");
        else if (r->def[0] && r->ranged) fprintf(f, "  [default %s, range %s..%s]\n", r->def, lo, hi);
        else if (r->def[0]) fprintf(f, "  [default %s]\n", r->def);
        else if (r->ranged) fprintf(f, "  [range %s..%s]\n", lo, hi);
        else fprintf(f, "\n");
    }
    fprintf(f, "\n--list-flags prints every flag as a JSON line; --dry-run checks the flags and exits.\n");
}

static void json_str(FILE *f, const char *s) {
    if (!s) { fputs("null", f); return; }
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

void args_print_list(const Args *a, FILE *f) {
    for (int i = 0; i < a->nrec; i++) {
        const ArgRec *r = &a->rec[i];
        char name[64], yaml[48];
        snprintf(name, sizeof name, "--%s", r->key);
        snprintf(yaml, sizeof yaml, "%s", r->key);
        for (char *q = yaml; *q; q++) if (*q == '-') *q = '_';
        fprintf(f, "{\"name\": ");
        json_str(f, name);
        fprintf(f, ", \"alias\": ");
        json_str(f, r->alias[0] ? r->alias : NULL);
        fprintf(f, ", \"type\": \"%s\", \"default\": ", type_name(r->type));
        json_str(f, r->def[0] ? r->def : NULL);
        if (r->ranged) fprintf(f, ", \"min\": %.17g, \"max\": %.17g", r->lo, r->hi);
        else fprintf(f, ", \"min\": null, \"max\": null");
        fprintf(f, ", \"choices\": ");
        json_str(f, r->type == ARG_CHOICE ? r->choices : NULL);
        fprintf(f, ", \"examples\": ");
        json_str(f, r->type == ARG_STR ? r->choices : NULL);
        fprintf(f, ", \"scope\": ");
        json_str(f, r->scope);
        fprintf(f, ", \"yaml\": ");
        if (r->norecord) fputs("null", f);
        else json_str(f, yaml);
        fprintf(f, ", \"group\": ");
        json_str(f, r->group);
        fprintf(f, ", \"help\": ");
        json_str(f, r->help);
        fprintf(f, "}\n");
    }
}

int args_end(Args *a, void (*usage)(FILE *)) {
    if (a->describe == ARGS_HELP) {
        if (usage) usage(stdout);
        args_print_help(a, stdout);
        return 1;
    }
    if (a->describe == ARGS_LIST) {
        args_print_list(a, stdout);
        return 1;
    }
    if (args_finish(a) != 0) {
        fprintf(stderr, "%s\n", a->err);
        return 2;
    }
    if (a->describe == ARGS_CHECK) {
        printf("mixtape %s: dry run: the flags are valid\n", a->cmd);
        return 1;
    }
    return 0;
}
