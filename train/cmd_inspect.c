/* mixtape inspect C.h5: format, model, config, training state, parameter
 * table (key, shape, count, mean, std) and which optimizer / EMA state the
 * checkpoint holds. Reads only the file (no model zoo needed). */
#include "train/args.h"
#include "train/checkpoint.h"
#include "train/commands.h"
#include "layers/model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mixtape inspect C.h5 [--no-params]   (or --checkpoint C.h5)\n\n"
               "Prints the checkpoint's format version, model, config, epoch / step / best top-1,\n"
               "the parameter table (key, shape, count, mean, std) and optimizer / EMA presence.\n");
}

/* A character from the file, never a terminal control sequence. */
static void put_safe(char ch) { putchar((unsigned char)ch < 0x20 || ch == 0x7f ? '?' : ch); }
static void print_safe(const char *s) {
    for (; *s; s++) put_safe(*s);
}

/* A flat (or shallow) JSON object, one member a line. Strings are copied as is. */
static void print_json_pretty(const char *s) {
    int depth = 0, in_str = 0, brackets = 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if (in_str) {
            put_safe(ch);
            if (ch == '\\' && p[1]) put_safe(*++p);
            else if (ch == '"') in_str = 0;
            continue;
        }
        if (ch == '"') { in_str = 1; putchar(ch); }
        else if (ch == '{') { depth++; printf("{\n%*s", 2 * depth, ""); }
        else if (ch == '}') { depth--; printf("\n%*s}", 2 * (depth > 0 ? depth : 0), ""); }
        else if (ch == '[') { brackets++; putchar(ch); }
        else if (ch == ']') { brackets--; putchar(ch); }
        else if (ch == ',' && brackets > 0) printf(", ");
        else if (ch == ',' && depth == 1) printf(",\n%*s", 2 * depth, "");
        else if (ch == ':' && depth == 1) printf(": ");
        else if (ch != ' ' && ch != '\n') put_safe(ch);
    }
    putchar('\n');
}

typedef struct Table { int rows; double total; } Table;

static int row_cb(const char *key, int ndim, const int64_t *shape, const float *data, size_t numel, void *ud) {
    Table *t = ud;
    char s[128];
    size_t k = (size_t)snprintf(s, sizeof s, "(");
    for (int i = 0; i < ndim && k < sizeof s; i++) k += (size_t)snprintf(s + k, sizeof s - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < sizeof s) snprintf(s + k, sizeof s - k, ")");
    double sum = 0, sq = 0;
    for (size_t i = 0; i < numel; i++) sum += data[i];
    double mean = numel ? sum / (double)numel : 0;
    for (size_t i = 0; i < numel; i++) sq += ((double)data[i] - mean) * ((double)data[i] - mean);
    double sd = numel > 1 ? sqrt(sq / (double)(numel - 1)) : 0;
    printf("  %-44s %-18s %11zu %12.4g %12.4g\n", key, s, numel, mean, sd);
    t->rows++;
    t->total += (double)numel;
    return 0;
}

static int count_cb(const char *key, int ndim, const int64_t *shape, const float *data, size_t numel, void *ud) {
    Table *t = ud;
    t->rows++;
    t->total += (double)numel;
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    Args a;
    args_init(&a, "inspect", argc, argv);
    int no_params = args_bool(&a, "--no-params", 0, "skip the parameter table");
    (void)args_int_range(&a, "--threads", NULL, 0, 0, 1024, "accepted for uniformity; reading is single-threaded");
    /* the flag is declared before the positional is looked for, so its value is not taken as one */
    const char *path = args_string(&a, "--checkpoint", NULL, NULL, "checkpoint C.h5 (or the positional C.h5)");
    if (!path) path = args_positional(&a);
    int ae = args_end(&a, usage);
    args_free(&a);
    if (ae) return ae == 1 ? 0 : 2;
    if (!path) { fprintf(stderr, "mixtape inspect: which checkpoint? (mixtape inspect C.h5)\n"); usage(stderr); return 2; }

    char err[2048];
    CkptInfo *in = malloc(sizeof *in);
    if (!in) return 1;
    if (ckpt_read_info(path, in, err, sizeof err) < 0) { fprintf(stderr, "mixtape inspect: %s\n", err); free(in); return 2; }
    printf("checkpoint      ");
    print_safe(path);
    printf("\n");
    printf("format          mixtape v%d\n", in->format_version);
    printf("model           ");
    print_safe(in->model);
    printf("\n");
    printf("epoch           %lld\n", (long long)in->epoch);
    printf("step            %lld\n", (long long)in->step);
    printf("best_top1       %.4f\n", in->best_top1);
    if (in->n_rng) {
        printf("rng_state      ");
        for (int i = 0; i < in->n_rng; i++) printf(" %llu", (unsigned long long)in->rng[i]);
        printf("\n");
    }
    if (in->n_chan) {
        printf("data mean/std  ");
        for (int i = 0; i < in->n_chan; i++) printf(" %.4g/%.4g", in->mean[i], in->std[i]);
        printf("\n");
    }
    if (in->train_state[0] && strcmp(in->train_state, "{}")) {
        printf("train_state     ");
        print_safe(in->train_state);
        printf("\n");
    }
    printf("config          ");
    print_json_pretty(in->config);

    int rc = 0, found = 0;
    /* the same check every command runs before building the model */
    ModelConfig cfg;
    char e2[1024];
    if (model_config_from_json(in->config, &cfg, e2, sizeof e2) < 0) {
        fprintf(stderr, "mixtape inspect: checkpoint %s: attribute 'config': %s\n", path, e2);
        rc = 2;
    }
    Table t = {0};
    if (!no_params) {
        printf("\nparameters (/model):\n  %-44s %-18s %11s %12s %12s\n", "key", "shape", "count", "mean", "std");
        if (ckpt_visit(path, "model", row_cb, &t, &found, err, sizeof err) < 0) {
            fprintf(stderr, "mixtape inspect: %s\n", err);
            rc = 2;
        }
    } else if (ckpt_visit(path, "model", count_cb, &t, &found, err, sizeof err) < 0) {
        fprintf(stderr, "mixtape inspect: %s\n", err);
        rc = 2;
    }
    printf("%s%d tensors, %.0f parameters (%.3fM)\n", no_params ? "\nmodel: " : "  total: ", t.rows, t.total, t.total / 1e6);

    char **groups = NULL;
    int ng = 0;
    if (ckpt_list_groups(path, "optimizer", &groups, &ng, err, sizeof err) < 0) { fprintf(stderr, "mixtape inspect: %s\n", err); rc = 2; }
    if (ng) {
        printf("optimizer       %s, step %lld, state:", in->optimizer[0] ? in->optimizer : "?", (long long)in->optimizer_step);
        for (int i = 0; i < ng; i++) {
            char g[512];
            Table s = {0};
            snprintf(g, sizeof g, "optimizer/%s", groups[i]);
            if (ckpt_visit(path, g, count_cb, &s, &found, err, sizeof err) < 0) { fprintf(stderr, "mixtape inspect: %s\n", err); rc = 2; }
            printf(" %s (%d tensors)", groups[i], s.rows);
        }
        printf("\n");
    } else {
        printf("optimizer       none\n");
    }
    ckpt_names_free(groups, ng);
    Table e = {0};
    if (ckpt_visit(path, "ema", count_cb, &e, &found, err, sizeof err) < 0) { fprintf(stderr, "mixtape inspect: %s\n", err); rc = 2; }
    if (found) printf("ema             yes (%d tensors, %.0f parameters)\n", e.rows, e.total);
    else printf("ema             none\n");
    free(in);
    return rc;
}
