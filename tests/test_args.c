/* Flag parsing, YAML config files and args.yaml output. */
#include "train/args.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"


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

    /* ranges: the message names flag, value and range; overflow and junk are caught */
    const char *bad[][3] = {
        {"--threads", "-1", "out of range [0, 1024]"},
        {"--threads", "99999999999999999999999", "expected an integer"},
        {"--threads", "4x", "expected an integer"},
        {"--threads", "", "expected an integer"},
        {"--lr", "inf", "finite"},
        {"--lr", "nan", "finite"},
        {"--lr", "1e-400", "finite"},
        {"--lr", "0.5junk", "finite"},
        {"--lr", "-1", "out of range [1e-12, 10]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *av[] = {(char *)bad[i][0], (char *)bad[i][1]};
        args_init(&a, "train", 2, av);
        long t = args_int_range(&a, "--threads", NULL, 0, 0, 1024, "threads");
        double lr = args_float_range(&a, "--lr", NULL, NAN, 1e-12, 10, "lr");
        CHECK(args_finish(&a) != 0 && strstr(a.err, bad[i][0]) && strstr(a.err, bad[i][2]),
              "%s %s: %s", bad[i][0], bad[i][1], a.err);
        CHECK(t == 0 && (isnan(lr)), "%s %s: defaults kept on error", bad[i][0], bad[i][1]);
        args_free(&a);
    }
    /* attached short values, --, choices, lists, bool forms */
    char *argv5[] = {"-b64", "-j4", "--opt=sgd", "--scale", "0.5", "0.75", "--ema=no", "--", "--lr", "x.h5"};
    args_init(&a, "train", 10, argv5);
    CHECK(args_int_range(&a, "--batch-size", "-b", 1, 1, 100, "b") == 64, "-b64");
    CHECK(args_int_range(&a, "--workers", "-j", 0, 0, 8, "j") == 4, "-j4");
    CHECK(!strcmp(args_choice(&a, "--opt", NULL, "adamw", "adamw|sgd", "o"), "sgd"), "choice");
    char lb[64];
    const char *sc = args_list(&a, "--scale", "0.08,1", 0, 1, "s", lb, sizeof lb);
    CHECK(sc && !strcmp(sc, "0.5,0.75"), "list from separate arguments: %s", sc ? sc : "(null)");
    CHECK(args_bool(&a, "--ema", 1, "e") == 0, "--ema=no");
    CHECK(isnan(args_float_range(&a, "--lr", NULL, NAN, 0, 1, "lr")), "--lr after -- is not a flag");
    CHECK(!strcmp(args_positional(&a), "--lr") && !strcmp(args_positional(&a), "x.h5"), "positionals after --");
    CHECK(args_finish(&a) == 0, "finish: %s", a.err);
    args_free(&a);
    char *argv6[] = {"--opt", "adamx"};
    args_init(&a, "train", 2, argv6);
    args_choice(&a, "--opt", NULL, "adamw", "adamw|sgd", "o");
    CHECK(args_finish(&a) != 0 && strstr(a.err, "adamx") && strstr(a.err, "adamw|sgd"), "bad choice: %s", a.err);
    args_free(&a);
    /* describe pass: declarations only, defaults as help shows them */
    char *argv7[] = {"--help", "--epochs", "5"};
    args_init(&a, "train", 3, argv7);
    CHECK(a.describe == ARGS_HELP, "--help starts a describe pass");
    CHECK(args_int_range(&a, "--epochs", NULL, 300, 1, 1000, "epochs") == 300, "describe: default returned");
    CHECK(a.nrec == 1 && !strcmp(a.rec[0].def, "300") && a.rec[0].lo == 1 && a.rec[0].hi == 1000, "declaration recorded");
    args_free(&a);
    /* config files: unknown key named with file and line; timm-only keys skipped */
    f = fopen(path, "w");
    fprintf(f, "epochs: 3\namp: true\npin_mem: false\nfrobnicate: 1\n");
    fclose(f);
    args_init(&a, "train", 0, NULL);
    CHECK(args_load_yaml(&a, path) == 0, "load: %s", a.err);
    CHECK(args_int_range(&a, "--epochs", NULL, 1, 1, 10, "e") == 3, "yaml epochs");
    CHECK(args_finish(&a) != 0 && strstr(a.err, path) && strstr(a.err, "line 4") && strstr(a.err, "frobnicate"),
          "unknown key: %s", a.err);
    args_free(&a);
    f = fopen(path, "w");
    fprintf(f, "epochs: 30\n");
    fclose(f);
    args_init(&a, "train", 0, NULL);
    args_load_yaml(&a, path);
    args_int_range(&a, "--epochs", NULL, 1, 1, 10, "e");
    CHECK(args_finish(&a) != 0 && strstr(a.err, "line 1") && strstr(a.err, "[1, 10]"), "bad yaml value: %s", a.err);
    args_free(&a);
    remove(path);
    remove("test_args_out.yaml");
    return check_summary("test_args");
}
