/* What `mixtape train` prints and records as it goes: the setup lines, a metrics.jsonl
 * row every --log-interval steps and one per epoch, the epoch line, the summary.csv
 * row and the closing line. Rank 0 only (the callers check r->root). */
#include "core/threads.h"
#include "train/dist.h"
#include "train/model_io.h"
#include "train/run_dir.h"
#include "train/train_run.h"
#include <stdio.h>
#include <string.h>

void train_format_metric(const TrainRun *r, double v, char *buf, size_t n) {
    if (!strcmp(r->o.eval_metric, "loss")) snprintf(buf, n, "%.4f", v);
    else snprintf(buf, n, "%.2f%%", 100 * v);
}

/* Parameter counts: exact below 100k (a 645-parameter model is not "0.00M"), else millions. */
static void fmt_count(char *b, size_t n, size_t count) {
    if (count < 100000) snprintf(b, n, "%zu", count);
    else snprintf(b, n, "%.2fM", count / 1e6);
}

void train_log_setup(const TrainRun *r, float lr) {
    const TrainOpts *o = &r->o;
    const ModelConfig cfg = r->m.cfg;
    char d[2048];
    model_config_describe(&cfg, d, sizeof d);
    char np[32], nt[32];
    size_t all = mt_params_count(&r->m.params), trainable = mt_params_count_trainable(&r->m.params);
    fmt_count(np, sizeof np, all);
    fmt_count(nt, sizeof nt, trainable);
    if (trainable == all) printf("model %s: %s parameters, %.3f GFLOPs/image\n  %s\n", cfg.name, np, model_gflops(&cfg), d);
    else printf("model %s: %s parameters (%s trainable after freezing), %.3f GFLOPs/image\n  %s\n", cfg.name, np, nt,
                model_gflops(&cfg), d);
    optim_describe(&r->opt, d, sizeof d);
    printf("optimizer %s; lr %.4g, %s schedule over %ld steps (%ld per epoch), warmup %ld steps\n", d, lr,
           o->sched.sched, o->sched.total_steps, r->steps_per_epoch, o->sched.warmup_steps);
    printf("data %s (%s): %ld samples, %d classes, batch %d x %d rank(s) x %d accumulation; %d threads\n",
           o->train_spec, loader_kind(r->train), loader_epoch_size(r->train), loader_num_classes(r->train),
           o->batch_size, dist_world(), o->grad_accum, mt_get_threads());
    printf("writing to %s\n", r->dir);
    fflush(stdout);
}

void train_log_interval(TrainRun *r, double loss, double ips, double wait_frac) {
    if (!r->root) return;
    metrics_begin(&r->log);
    metrics_int(&r->log, "epoch", r->st.epoch + 1); /* the epoch in progress, 1-based like the validation rows */
    metrics_int(&r->log, "step", r->st.step);
    metrics_num(&r->log, "lr", r->opt.lr);
    metrics_num(&r->log, "loss", loss);
    metrics_num(&r->log, "img_per_s", ips);
    metrics_num(&r->log, "data_wait", wait_frac);
    metrics_int(&r->log, "skipped", loader_skipped(r->train));
    metrics_end(&r->log);
}

void train_log_epoch_row(TrainRun *r, double train_loss, const EvalResult *ev, const EvalResult *eve,
                         double epoch_time, double img_s) {
    metrics_begin(&r->log);
    metrics_int(&r->log, "epoch", r->st.epoch);
    metrics_int(&r->log, "step", r->st.step);
    metrics_num(&r->log, "lr", r->opt.lr);
    metrics_num(&r->log, "loss", train_loss);
    if (ev) {
        metrics_num(&r->log, "val_loss", ev->loss);
        metrics_num(&r->log, "val_top1", ev->top1);
        metrics_num(&r->log, "val_top5", ev->top5);
        if (eve) {
            metrics_num(&r->log, "val_loss_ema", eve->loss);
            metrics_num(&r->log, "val_top1_ema", eve->top1);
            metrics_num(&r->log, "val_top5_ema", eve->top5);
        }
        metrics_int(&r->log, "best_epoch", r->st.best_epoch);
    }
    metrics_num(&r->log, "img_per_s", img_s);
    metrics_num(&r->log, "epoch_time", epoch_time);
    metrics_num(&r->log, "data_wait", epoch_time > 0 ? loader_wait_seconds(r->train) / epoch_time : 0);
    metrics_int(&r->log, "skipped", loader_skipped(r->train));
    if (ev && ev->nonfinite) metrics_int(&r->log, "val_nonfinite", ev->nonfinite);
    metrics_end(&r->log);
}

void train_log_epoch_line(const TrainRun *r, double train_loss, const EvalResult *ev, const EvalResult *eve,
                          int is_best, double img_s) {
    char line[768];
    int k = snprintf(line, sizeof line, "epoch %d/%d  train loss %.4f", r->st.epoch, r->o.epochs, train_loss);
    if (ev)
        k += snprintf(line + k, sizeof line - (size_t)k, "  val loss %.4f  top-1 %.2f%%  top-5 %.2f%%", ev->loss,
                      100 * ev->top1, 100 * ev->top5);
    if (eve)
        k += snprintf(line + k, sizeof line - (size_t)k, "  | EMA loss %.4f  top-1 %.2f%%  top-5 %.2f%%", eve->loss,
                      100 * eve->top1, 100 * eve->top5);
    if (ev) {
        char mv[32];
        train_format_metric(r, r->st.best_metric, mv, sizeof mv);
        k += snprintf(line + k, sizeof line - (size_t)k, "  | best by %s %s: %s (epoch %d)%s",
                      r->has_ema ? "EMA" : "model", r->o.eval_metric, mv, r->st.best_epoch, is_best ? " *" : "");
    }
    snprintf(line + k, sizeof line - (size_t)k, "  %.0f img/s", img_s);
    printf("%s\n", line);
    fflush(stdout);
}

void train_log_done(const TrainRun *r) {
    if (r->st.best_epoch >= 0) {
        char mv[32];
        train_format_metric(r, r->st.best_metric, mv, sizeof mv);
        printf("done: best by %s %s: %s, top-1 %.2f%% (epoch %d, best.h5); checkpoints in %s\n",
               r->has_ema ? "EMA" : "model", r->o.eval_metric, mv, 100 * r->st.best_top1, r->st.best_epoch, r->dir);
    }
    else printf("done; checkpoints in %s\n", r->dir);
}
