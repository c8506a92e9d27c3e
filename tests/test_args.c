/* Flag parsing, YAML config files and args.yaml output. */
#include "train/args.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails = 0;
#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); fails++; } } while (0)

int main(void) {
    char *argv1[] = {"--model", "mixer_tiny", "-b", "64", "--lr=0.002", "--model-ema", "--epochs", "3", "data.h5"};
    Args a;
    args_init(&a, "train", 9, argv1);
    CHECK(!strcmp(args_str(&a, "--model", NULL, "x"), "mixer_tiny"), "model");
    CHECK(args_int(&a, "--batch-size", "-b", 128) == 64, "batch alias");
    CHECK(fabs(args_float(&a, "--lr", NULL, 0.1) - 0.002) < 1e-12, "inline value");
    CHECK(args_flag(&a, "--model-ema", 0) == 1, "bare flag");
    CHECK(args_int(&a, "--epochs", NULL, 1) == 3, "epochs");
    CHECK(args_int(&a, "--warmup-epochs", NULL, 5) == 5, "default");
    CHECK(!strcmp(args_positional(&a), "data.h5"), "positional");
    CHECK(args_finish(&a) == 0, "finish: %s", a.err);
    args_free(&a);

    char *argv2[] = {"--lrr", "0.1"};
    args_init(&a, "train", 2, argv2);
    args_float(&a, "--lr", NULL, 0.1);
    CHECK(args_finish(&a) != 0 && strstr(a.err, "unknown flag '--lrr'"), "unknown flag message: %s", a.err);
    args_free(&a);

    char *argv3[] = {"--epochs", "three"};
    args_init(&a, "train", 2, argv3);
    args_int(&a, "--epochs", NULL, 1);
    CHECK(args_finish(&a) != 0 && strstr(a.err, "--epochs") && strstr(a.err, "three"), "bad int message: %s", a.err);
    args_free(&a);

    /* YAML: config values, lists in both styles, command line wins */
    const char *path = "test_args_cfg.yaml";
    FILE *f = fopen(path, "w");
    fprintf(f, "# comment\nmodel: resmlp_tiny\nbatch_size: 32\nlr: 0.01\nmean: [0.5, 0.25]\nstd:\n- 0.2\n- 0.3\nmodel_ema: false\nresume: null\n");
    fclose(f);
    char *argv4[] = {"--lr", "0.5"};
    args_init(&a, "train", 2, argv4);
    CHECK(args_load_yaml(&a, path) == 0, "load yaml: %s", a.err);
    CHECK(!strcmp(args_str(&a, "--model", NULL, "x"), "resmlp_tiny"), "yaml model");
    CHECK(args_int(&a, "--batch-size", "-b", 1) == 32, "yaml underscore -> dash");
    CHECK(fabs(args_float(&a, "--lr", NULL, 0) - 0.5) < 1e-12, "command line wins over config");
    CHECK(!strcmp(args_str(&a, "--mean", NULL, ""), "0.5,0.25"), "inline list: %s", args_str(&a, "--mean", NULL, ""));
    CHECK(!strcmp(args_str(&a, "--std", NULL, ""), "0.2,0.3"), "block list");
    CHECK(args_flag(&a, "--model-ema", 1) == 0, "false flag");
    CHECK(args_str(&a, "--resume", NULL, NULL) == NULL, "null skipped");
    CHECK(args_finish(&a) == 0, "finish yaml: %s", a.err);
    /* dump and reload gives the same values */
    FILE *o = fopen("test_args_out.yaml", "w");
    args_dump_yaml(&a, o);
    fclose(o);
    args_free(&a);
    args_init(&a, "train", 0, NULL);
    CHECK(args_load_yaml(&a, "test_args_out.yaml") == 0, "reload dump: %s", a.err);
    CHECK(!strcmp(args_str(&a, "--model", NULL, "x"), "resmlp_tiny"), "dump model");
    CHECK(fabs(args_float(&a, "--lr", NULL, 0) - 0.5) < 1e-12, "dump lr");
    CHECK(!strcmp(args_str(&a, "--std", NULL, ""), "0.2,0.3"), "dump list");
    args_free(&a);

    f = fopen(path, "w");
    fprintf(f, "model: x\nthis line is wrong\n");
    fclose(f);
    args_init(&a, "train", 0, NULL);
    CHECK(args_load_yaml(&a, path) != 0 && strstr(a.err, "line 2"), "bad yaml names the line: %s", a.err);
    args_free(&a);
    remove(path);
    remove("test_args_out.yaml");
    if (fails) { fprintf(stderr, "%d check(s) failed\n", fails); return 1; }
    printf("all checks passed\n");
    return 0;
}
