/* mixtape models: every registered model with its parameter count and forward
 * GFLOPs per image at its default size. */
#include "layers/model.h"
#include "train/args.h"
#include "train/commands.h"
#include "train/model_io.h"
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mixtape models [--threads N]\n\n"
               "Lists every registered model: name, family, default image size and classes,\n"
               "parameters (millions) and forward GFLOPs per image at the default size.\n");
}

int cmd_models(int argc, char **argv) {
    Args a;
    args_init(&a, "models", argc, argv);
    threads_from_args(&a);
    int e = args_end(&a, usage);
    args_free(&a);
    if (e) return e == 1 ? 0 : 2;
    printf("%-20s %-11s %5s %7s %10s %9s\n", "model", "family", "img", "classes", "params(M)", "GFLOPs");
    int rc = 0;
    for (int i = 0; i < model_count(); i++) {
        char err[512];
        ModelConfig cfg;
        Model m;
        if (model_config_default(model_name(i), &cfg, err, sizeof err) < 0 || model_build(&m, &cfg, err, sizeof err) < 0) {
            fprintf(stderr, "mixtape models: %s: %s\n", model_name(i), err);
            rc = 1;
            continue;
        }
        double params = (double)mt_params_count(&m.params) / 1e6;
        printf("%-20s %-11s %5d %7d %10.2f %9.2f\n", cfg.name, cfg.family, cfg.img_size, cfg.num_classes, params,
               model_gflops(&cfg));
        model_free(&m);
    }
    return rc;
}
