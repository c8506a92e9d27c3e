/* mixtape bench: throughput of one model on random in-memory data — a full
 * train step (forward, cross-entropy, backward, AdamW) and a no-grad forward —
 * with achieved GFLOP/s, peak RSS and, with --profile, time per op. */
#include "core/threads.h"
#include "optim/optimizer.h"
#include "train/commands.h"
#include "train/dist.h"
#include "train/model_io.h"
#include "train/progress.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void help(void) {
    printf("usage: mixtape bench --model M [-b 32] [--steps 10] [--warmup 2] [--threads N] [--profile]\n"
           "                     [--mode train,forward] [model overrides]\n"
           "Prints one line per mode: `train: X img/s  Y GFLOP/s` (forward + backward + AdamW step)\n"
           "and `forward: X img/s  Y GFLOP/s` (no-grad), then peak RSS. Under mpirun it also reports\n"
           "the allreduce share of the step. --profile adds a per-op forward/backward breakdown.\n");
    model_overrides_help(stdout);
}

static int cmp_prof(const void *a, const void *b) {
    const OpProfile *x = a, *y = b;
    double tx = x->fwd + x->bwd, ty = y->fwd + y->bwd;
    return tx < ty ? 1 : tx > ty ? -1 : 0;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

int cmd_bench(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { help(); return 0; }
    Args a;
    args_init(&a, "bench", argc, argv);
    ModelConfig cfg;
    char err[2048];
    if (model_config_from_args(&a, &cfg, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); args_free(&a); return 2; }
    int B = (int)args_int(&a, "--batch-size", "-b", 32);
    int steps = (int)args_int(&a, "--steps", NULL, 10);
    int warmup = (int)args_int(&a, "--warmup", NULL, 2);
    int profile = args_flag(&a, "--profile", 0);
    const char *modes = args_str(&a, "--mode", NULL, "train,forward");
    threads_from_args(&a);
    if (args_finish(&a) != 0) { fprintf(stderr, "%s\n", a.err); args_free(&a); return 2; }
    args_free(&a);
    if (B < 1 || steps < 1 || warmup < 0) { fprintf(stderr, "mixtape bench: -b and --steps must be >= 1\n"); return 2; }

    Model m;
    if (model_build(&m, &cfg, err, sizeof err) != 0) { fprintf(stderr, "mixtape bench: %s\n", err); return 2; }
    model_init(&m, 0);
    OptimConfig oc;
    optim_config_default(&oc);
    oc.opt = "adamw";
    oc.lr = 1e-4f;
    Optimizer opt;
    if (optim_create(&opt, &m.params, &oc, err, sizeof err) != 0) { fprintf(stderr, "mixtape bench: %s\n", err); return 1; }

    size_t nimg = (size_t)B * cfg.in_chans * cfg.img_size * cfg.img_size;
    float *images = malloc(nimg * sizeof(float));
    int *labels = malloc((size_t)B * sizeof(int));
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < nimg; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        images[i] = (float)(s >> 40) / 16777216.0f * 2.0f - 1.0f;
    }
    for (int i = 0; i < B; i++) labels[i] = i % cfg.num_classes;
    int shape[4] = {B, cfg.in_chans, cfg.img_size, cfg.img_size};
    double gf = model_gflops(&cfg);
    Ctx c;
    mt_ctx_init(&c, (size_t)64 << 20);
    printf("model %s  batch %d  threads %d  ranks %d  params %.2fM  %.3f GFLOPs/img forward\n", cfg.name, B,
           mt_get_threads(), dist_world(), mt_params_count(&m.params) / 1e6, gf);

    if (strstr(modes, "train")) {
        double tstep = 0, comm0 = 0;
        for (int it = 0; it < warmup + steps; it++) {
            if (it == warmup) { tstep = now_seconds(); comm0 = dist_comm_seconds(); c.profile = profile; }
            mt_ctx_reset(&c);
            c.training = 1;
            mt_profile_mark(&c);
            Tensor *x = mt_wrap(&c, images, 4, shape);
            Tensor *loss = mt_cross_entropy(&c, model_forward(&c, &m, x), labels, NULL, 0);
            if (!loss || mt_backward(&c, loss) != 0) { fprintf(stderr, "mixtape bench: %s\n", c.err); return 1; }
            if (dist_world() > 1)
                for (int i = 0; i < m.params.n; i++) dist_allreduce_mean(m.params.t[i]->grad, m.params.t[i]->numel);
            optim_step(&opt);
            optim_zero_grad(&opt);
        }
        double dt = now_seconds() - tstep;
        c.profile = 0;
        printf("train: %.1f img/s  %.1f GFLOP/s  (%.1f ms/step)\n", B * steps / dt, 3.0 * gf * B * steps / dt,
               1e3 * dt / steps);
        if (dist_world() > 1)
            printf("allreduce: %.1f%% of step time\n", 100.0 * (dist_comm_seconds() - comm0) / dt);
        if (profile) {
            qsort(c.prof, (size_t)c.nprof, sizeof c.prof[0], cmp_prof);
            double tot = 0;
            for (int i = 0; i < c.nprof; i++) tot += c.prof[i].fwd + c.prof[i].bwd;
            printf("profile (per step, ms):  %-16s %9s %9s %7s\n", "op", "forward", "backward", "share");
            for (int i = 0; i < c.nprof; i++)
                printf("                         %-16s %9.2f %9.2f %6.1f%%\n", c.prof[i].op, 1e3 * c.prof[i].fwd / steps,
                       1e3 * c.prof[i].bwd / steps, 100 * (c.prof[i].fwd + c.prof[i].bwd) / tot);
            printf("                         %-16s %9.2f (ops) of %.2f ms per step; the rest is the optimizer\n", "total",
                   1e3 * tot / steps, 1e3 * dt / steps);
        }
    }
    if (strstr(modes, "forward")) {
        c.grad_enabled = 0;
        c.training = 0;
        double t0 = 0;
        for (int it = 0; it < warmup + steps; it++) {
            if (it == warmup) t0 = now_seconds();
            mt_ctx_reset(&c);
            Tensor *x = mt_wrap(&c, images, 4, shape);
            if (!model_forward(&c, &m, x)) { fprintf(stderr, "mixtape bench: %s\n", c.err); return 1; }
        }
        double dt = now_seconds() - t0;
        printf("forward: %.1f img/s  %.1f GFLOP/s  (%.1f ms/batch)\n", B * steps / dt, gf * B * steps / dt,
               1e3 * dt / steps);
    }
    printf("peak RSS: %.1f MB  (arena %.1f MB)\n", peak_rss_mb(), c.arena.peak / 1048576.0);
    mt_ctx_free(&c);
    optim_free(&opt);
    model_free(&m);
    free(images);
    free(labels);
    return 0;
}
