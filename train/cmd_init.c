/* mixtape init --model M [overrides] [--seed S] --out C.h5
 * A freshly initialised checkpoint (timm's init), epoch 0. */
#include "data/source_util.h"
#include "layers/model.h"
#include "train/args.h"
#include "train/checkpoint.h"
#include "train/commands.h"
#include "train/model_io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mixtape init --model M [overrides] [--seed S] --out C.h5\n\n"
               "Writes a checkpoint with timm's initialisation of model M (epoch 0).\n");
}


int cmd_init(int argc, char **argv) {
    Args a;
    args_init(&a, "init", argc, argv);
    char err[2048];
    ModelConfig cfg;
    CkptInfo *info = calloc(1, sizeof *info);
    Model m;
    int built = 0, rc = 2;
    if (!info) { fprintf(stderr, "mixtape init: out of memory\n"); args_free(&a); return 1; }
    if (model_config_from_args(&a, &cfg, err, sizeof err) < 0) { fprintf(stderr, "%s\n", err); goto out; }
    args_group(&a, "init");
    long seed = args_int_range(&a, "--seed", NULL, 42, 0, 4294967295L, "initialisation seed");
    const char *out = args_string(&a, "--out", NULL, NULL, "output checkpoint, written atomically (required)");
    const char *mean = args_value(&a, "--mean", NULL, ARG_LIST, NULL, -1e3, 1e3, NULL,
                                  "data mean recorded in the checkpoint, a,b,c (optional)");
    const char *std = args_value(&a, "--std", NULL, ARG_LIST, NULL, 1e-6, 1e3, NULL,
                                 "data std recorded in the checkpoint, a,b,c (optional)");
    threads_from_args(&a);
    int e = args_end(&a, usage);
    if (e) { rc = e == 1 ? 0 : 2; goto out; }
    if (!out) { fprintf(stderr, "mixtape init: --out is required\n"); goto out; }
    if (!!mean != !!std) { fprintf(stderr, "mixtape init: give both --mean and --std\n"); goto out; }
    if (mean) {
        int nm = src_parse_floats(mean, info->mean, CKPT_CHAN_MAX), ns = src_parse_floats(std, info->std, CKPT_CHAN_MAX);
        if (nm < 1 || nm != ns) { fprintf(stderr, "mixtape init: --mean/--std want equal comma lists of numbers\n"); goto out; }
        info->n_chan = nm;
    }
    if (model_build(&m, &cfg, err, sizeof err) < 0) { fprintf(stderr, "mixtape init: %s\n", err); goto out; }
    built = 1;
    model_init(&m, (uint64_t)seed);
    snprintf(info->model, sizeof info->model, "%s", cfg.name);
    if (model_config_to_json(&cfg, info->config, sizeof info->config) < 0) {
        fprintf(stderr, "mixtape init: config does not fit in %d bytes of JSON\n", CKPT_JSON_MAX);
        rc = 1;
        goto out;
    }
    info->n_rng = 1;
    info->rng[0] = (uint64_t)seed;
    snprintf(info->train_state, sizeof info->train_state, "{\"init_seed\":%ld}", seed);
    if (ckpt_save(out, &m.params, NULL, 0, info, err, sizeof err) < 0) {
        fprintf(stderr, "mixtape init: %s\n", err);
        rc = 1;
        goto out;
    }
    printf("wrote %s: %s, %.3fM parameters, seed %ld\n", out, cfg.name, (double)mt_params_count(&m.params) / 1e6, seed);
    rc = 0;
out:
    if (built) model_free(&m);
    free(info);
    args_free(&a);
    return rc;
}
