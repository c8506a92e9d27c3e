/* mixtape reparam IN.h5 OUT.h5
 * RepMLP structural re-parameterisation: every RepMLP token mixer's local-perceptron
 * conv branches (repconv<k>) are folded into its fc3 (N, N) weight and bias, giving a
 * checkpoint of the same function with config rep_deploy = 1 and only FC layers in the
 * mixers (layers/tokmix_repmlp.c through model_reparam). Other parameters are copied unchanged; the
 * training state attributes are kept; optimizer and EMA groups are not written. */
#include "layers/model.h"
#include "train/args.h"
#include "train/checkpoint.h"
#include "train/commands.h"
#include "train/model_io.h"
#include "train/outfile.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mixtape reparam IN.h5 OUT.h5   (or --checkpoint IN.h5 --out OUT.h5)\n\n"
               "Folds the conv branches of every RepMLP token mixer into its fc3 layer (structural\n"
               "re-parameterisation) and writes a deploy checkpoint (config rep_deploy = 1) that gives\n"
               "the same logits with fewer parameters and FLOPs. Optimizer / EMA state is not copied.\n");
}

int cmd_reparam(int argc, char **argv) {
    Args a;
    args_init(&a, "reparam", argc, argv);
    const char *in = args_string(&a, "--checkpoint", NULL, NULL, "input checkpoint (or the first positional)");
    const char *out = args_string(&a, "--out", NULL, NULL, "deploy checkpoint to write (or the second positional)");
    if (!in) in = args_positional(&a);
    if (!out) out = args_positional(&a);
    int e = args_end(&a, usage);
    args_free(&a);
    if (e) return e == 1 ? 0 : 2;
    if (!in || !out) {
        fprintf(stderr, "mixtape reparam: give IN.h5 and OUT.h5 (see mixtape reparam --help)\n");
        return 2;
    }
    char err[2048];
    CkptInfo *info = calloc(1, sizeof *info);
    Model src, dst;
    int rc = 2, have_src = 0, have_dst = 0;
    if (!info) { fprintf(stderr, "mixtape reparam: out of memory\n"); return 1; }
    if (out_check_not_input("output", out, "input", in, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape reparam: %s\n", err);
        free(info);
        return 2;
    }
    if (model_from_checkpoint(in, &src, info, err, sizeof err) < 0) { fprintf(stderr, "mixtape reparam: %s\n", err); goto done; }
    have_src = 1;
    ModelConfig cfg = src.cfg;
    cfg.rep_deploy = 1;
    if (model_build(&dst, &cfg, err, sizeof err) < 0) { fprintf(stderr, "mixtape reparam: %s\n", err); goto done; }
    have_dst = 1;
    int folded = model_reparam(&src, &dst, err, sizeof err);
    if (folded < 0) { fprintf(stderr, "mixtape reparam: %s: %s\n", in, err); rc = 1; goto done; }
    if (model_config_to_json(&cfg, info->config, sizeof info->config) < 0) {
        fprintf(stderr, "mixtape reparam: config does not fit in %d bytes of JSON\n", CKPT_JSON_MAX);
        rc = 1;
        goto done;
    }
    info->optimizer[0] = 0;
    if (ckpt_save(out, &dst.params, NULL, 0, info, err, sizeof err) < 0) {
        fprintf(stderr, "mixtape reparam: %s\n", err);
        rc = 1;
        goto done;
    }
    printf("wrote %s: %s, %d conv branches folded into fc3, %.3fM -> %.3fM parameters, %.4f -> %.4f GFLOPs\n", out,
           cfg.name, folded, mt_params_count(&src.params) / 1e6, mt_params_count(&dst.params) / 1e6,
           model_gflops(&src.cfg), model_gflops(&dst.cfg));
    if (folded == 0) printf("note: %s has no RepMLP conv branches; the weights were copied unchanged\n", in);
    rc = 0;
done:
    if (have_src) model_free(&src);
    if (have_dst) model_free(&dst);
    free(info);
    return rc;
}
