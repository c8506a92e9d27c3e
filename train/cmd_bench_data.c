/* mixtape bench-data: throughput of the data pipeline alone (read + decode + augment +
 * batch), as the training loop would see it, without a model. */
#include "data/loader.h"
#include "train/args.h"
#include "train/commands.h"
#include "train/data_flags.h"
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void help(FILE *f) {
    fprintf(f, "usage: mixtape bench-data --data S [flags]\n\n"
               "Decoded + augmented images per second of the data pipeline (no model); the\n"
               "measured batches follow one warm-up batch.\n");
}

int cmd_bench_data(int argc, char **argv) {
    Args a;
    args_init(&a, "bench-data", argc, argv);
    int eval = args_bool(&a, "--eval", 0, "eval transform (resize + center crop), no shuffling");
    LoaderConfig c;
    loader_config_default(&c, !eval);
    char err[1024];
    c.spec = args_string(&a, "--data", NULL, NULL,
                         "shard pattern / directory / list file / .tar, ImageFolder dir, or .h5 (required)");
    c.img_size = (int)args_int_range(&a, "--img-size", NULL, c.img_size, 1, 8192, "output side");
    c.in_chans = (int)args_int_range(&a, "--in-chans", NULL, c.in_chans, 1, 3, "output channels (1 or 3)");
    c.batch_size = (int)args_int_range(&a, "--batch-size", "-b", 64, 1, 1 << 20, "samples per batch");
    c.workers = (int)args_int_range(&a, "--workers", "-j", 0, 0, 1024, "decode threads (0: automatic)");
    c.seed = (uint64_t)args_int_range(&a, "--seed", NULL, 42, 0, 4294967295L, "data order and augmentation seed");
    c.rank = (int)args_int_range(&a, "--rank", NULL, 0, 0, 1 << 20, "this rank's share of the data");
    c.world = (int)args_int_range(&a, "--world", NULL, 1, 1, 1 << 20, "ranks the data is split over");
    c.num_classes = (int)args_int_range(&a, "--num-classes", NULL, 0, 0, 1 << 20,
                                        "classes for mixup targets (0: from the data)");
    long batches = args_int_range(&a, "--batches", NULL, 50, 1, 1L << 40, "batches measured");
    int epoch = (int)args_int_range(&a, "--epoch", NULL, 0, 0, 1 << 30, "epoch (shuffle order) to read");
    if (data_flags_parse(&a, &c.aug, err, sizeof err) || data_flags_loader(&a, &c, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        args_free(&a);
        return 2;
    }
    int e = args_end(&a, help);
    args_free(&a);
    if (e) return e == 1 ? 0 : 2;
    if (c.rank >= c.world) {
        fprintf(stderr, "mixtape bench-data: --rank %d must be < --world %d\n", c.rank, c.world);
        return 2;
    }
    if (!c.spec) { fprintf(stderr, "mixtape bench-data: --data is required (see --help)\n"); return 2; }

    data_flags_permute_patch(&c.aug.permute, &(ModelConfig){0});   /* no model: patch 4 */
    Loader *L = loader_open(&c, err, sizeof err);
    if (!L) { fprintf(stderr, "mixtape bench-data: --data: %s\n", err); return 2; }
    long ncores = sysconf(_SC_NPROCESSORS_ONLN);
    int workers = c.workers > 0 ? c.workers : (int)(ncores > 0 ? ncores : 1);
    printf("bench-data: %s (%s, %d classes), %s, %dx%dx%d, batch %d, %d workers, %ld cores\n", c.spec,
           loader_kind(L), loader_num_classes(L), eval ? "eval" : "train", loader_channels(L), loader_img_size(L),
           loader_img_size(L), c.batch_size, workers, ncores);
    fflush(stdout);

    Batch b;
    int rc = 0;
    if (loader_start_epoch(L, epoch)) goto fail;
    /* one warm-up batch (threads start, buffers fill), then the measured ones */
    rc = loader_next(L, &b);
    if (rc < 0) goto fail;
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), w0 = loader_wait_seconds(L);
    long img0 = loader_images(L), got = 0;
    long in_epoch = 1;
    while (got < batches) {
        rc = loader_next(L, &b);
        if (rc < 0) goto fail;
        if (rc == 0) {   /* epoch over: carry on with the next one (unless it gave nothing) */
            if (in_epoch == 0) break;
            if (loader_start_epoch(L, ++epoch)) goto fail;
            in_epoch = 0;
            continue;
        }
        in_epoch++;
        got++;
    }
    double dt = clock_s(CLOCK_MONOTONIC) - t0, dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    long imgs = loader_images(L) - img0;
    if (got == 0 || dt <= 0) {
        printf("bench-data: the data gives no batch beyond the warm-up one (epoch of %ld samples)\n",
               loader_epoch_size(L));
    } else {
        double ips = imgs / dt;
        printf("decode+augment: %.1f img/s  (%ld images in %.2f s, %ld batches)\n", ips, imgs, dt, got);
        printf("per core: %.1f img/s per CPU-second (%.2f CPU-s), %.1f img/s per worker\n", dc > 0 ? imgs / dc : 0,
               dc, ips / workers);
        printf("consumer waited %.0f%% of the time; skipped samples: %ld\n",
               100.0 * (loader_wait_seconds(L) - w0) / dt, loader_skipped(L));
    }
    loader_close(L);
    return 0;
fail:
    fprintf(stderr, "mixtape bench-data: %s\n", loader_error(L));
    loader_close(L);
    return 1;
}
