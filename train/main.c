/* mixtape: one executable, one sub-command per job. */
#include "core/threads.h"
#include "train/commands.h"
#include "train/version.h"
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
    int compute; /* runs OpenMP regions: the wait policy is set up first (core/threads.h) */
} COMMANDS[] = {
    {"models", cmd_models, "list models with parameters and GFLOPs", 0},
    {"init", cmd_init, "write a freshly initialised checkpoint", 1},
    {"train", cmd_train, "train from scratch or fine-tune", 1},
    {"eval", cmd_eval, "top-1 / top-5 / loss of a checkpoint on a dataset", 1},
    {"predict", cmd_predict, "logits per sample to HDF5", 1},
    {"grads", cmd_grads, "loss and parameter gradients of the first batch to HDF5", 1},
    {"bench", cmd_bench, "train-step and forward throughput of a model", 1},
    {"bench-data", cmd_bench_data, "decode + augment throughput of the data pipeline", 0},
    {"shards", cmd_shards, "convert ImageFolder / IDX / CIFAR data to tar shards", 0},
    {"inspect", cmd_inspect, "config, parameter table and training state of a checkpoint", 0},
    {"reparam", cmd_reparam, "fold RepMLP conv branches into FC layers (deploy checkpoint)", 1},
    {"export", cmd_export, "checkpoint weights to a safetensors file (timm keys, float32)", 0},
    {"import", cmd_import, "a safetensors file of timm weights to a mixtape checkpoint", 0},
};

static void usage(FILE *f) {
    fprintf(f, "mixtape %s - MLP-like vision models in C\n\nusage: mixtape <command> [flags]\n\n", MIXTAPE_VERSION);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        fprintf(f, "  %-11s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\nmixtape help <command> (or mixtape <command> --help) shows the command's flags;\n"
               "mixtape <command> --list-flags prints them as JSON lines. mixtape --version / -V.\n");
}

static int (*lookup(const char *name))(int, char **) {
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        if (!strcmp(name, COMMANDS[i].name)) return COMMANDS[i].fn;
    return NULL;
}

/* A compute command that will run (not --help / --list-flags / --dry-run). */
static int computes(int argc, char **argv) {
    int comp = 0;
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) comp = COMMANDS[i].compute;
    for (int i = 2; i < argc && comp && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "--list-flags") ||
            !strncmp(argv[i], "--dry-run", 9))
            comp = 0;
    return comp;
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    const char *c = argv[1];
    if (!strcmp(c, "--version") || !strcmp(c, "-V") || !strcmp(c, "version")) {
        printf("mixtape %s\n", MIXTAPE_VERSION);
        return 0;
    }
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        if (argc < 3) { usage(stdout); return 0; }
        int (*fn)(int, char **) = lookup(argv[2]); /* mixtape help CMD = mixtape CMD --help */
        if (!fn) {
            fprintf(stderr, "mixtape: unknown command '%s'\n\n", argv[2]);
            usage(stderr);
            return 2;
        }
        char *h[] = {"--help", NULL};
        return fn(1, h);
    }
    int (*fn)(int, char **) = lookup(c);
    if (fn) {
        if (computes(argc, argv)) mt_wait_policy_apply(argv); /* may re-exec once: libgomp reads it at load */
        return fn(argc - 2, argv + 2);
    }
    fprintf(stderr, "mixtape: unknown command '%s'\n\n", c);
    usage(stderr);
    return 2;
}
