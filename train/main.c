/* mixtape: one executable, one sub-command per job. */
#include "train/commands.h"
#include "train/version.h"
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} COMMANDS[] = {
    {"models", cmd_models, "list models with parameters and GFLOPs"},
    {"init", cmd_init, "write a freshly initialised checkpoint"},
    {"train", cmd_train, "train from scratch or fine-tune"},
    {"eval", cmd_eval, "top-1 / top-5 / loss of a checkpoint on a dataset"},
    {"predict", cmd_predict, "logits per sample to HDF5"},
    {"grads", cmd_grads, "loss and parameter gradients of the first batch to HDF5"},
    {"bench", cmd_bench, "train-step and forward throughput of a model"},
    {"bench-data", cmd_bench_data, "decode + augment throughput of the data pipeline"},
    {"shards", cmd_shards, "convert ImageFolder / IDX / CIFAR data to tar shards"},
    {"inspect", cmd_inspect, "config, parameter table and training state of a checkpoint"},
    {"reparam", cmd_reparam, "fold RepMLP conv branches into FC layers (deploy checkpoint)"},
    {"export", cmd_export, "checkpoint weights to a safetensors file (timm keys, float32)"},
    {"import", cmd_import, "a safetensors file of timm weights to a mixtape checkpoint"},
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
    if (fn) return fn(argc - 2, argv + 2);
    fprintf(stderr, "mixtape: unknown command '%s'\n\n", c);
    usage(stderr);
    return 2;
}
