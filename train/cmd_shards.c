/* mixtape shards: convert ImageFolder trees, IDX (MNIST / Fashion-MNIST) files and CIFAR
 * binary batches to WebDataset-style tar shards plus classes.txt. */
#include "data/convert.h"
#include "data/source_util.h"
#include "train/args.h"
#include "train/commands.h"
#include "train/dataset_json.h"
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mixtape shards --from imagefolder|idx|cifar SRC --out PREFIX\n"
               "                      [--per-shard N | --shard-size MB] [--labels FILE] [--split train|test]\n"
               "                      [--overwrite]\n"
               "\n"
               "Writes PREFIX-000000.tar, PREFIX-000001.tar, ... (members <key>.<ext> image and <key>.cls label)\n"
               "and classes.txt in PREFIX's directory (created when missing). The shards appear only when the\n"
               "conversion is complete: an error, SIGINT or SIGTERM leaves none of them behind. dataset.json\n"
               "beside them records the set's pixel mean/std, image size, channels and counts under the split\n"
               "name PREFIX's base name; train and eval normalise with them when --mean/--std are not given.\n"
               "  imagefolder: SRC/<class>/<image>.jpg|jpeg|png, bytes copied as they are\n"
               "  idx: SRC is an IDX images file (e.g. train-images-idx3-ubyte[.gz]); pixels as PNG\n"
               "  cifar: SRC is a CIFAR-10/100 binary batch file or a directory of them\n");
}

/* SIGINT / SIGTERM: the converter stops before its next sample and removes what it wrote. */
static volatile sig_atomic_t g_stop = 0;
static void on_stop(int s) { g_stop = s; }
static int stop_requested(void) { return g_stop != 0; }

int cmd_shards(int argc, char **argv) {
    Args a;
    args_init(&a, "shards", argc, argv);
    const char *from = args_choice(&a, "--from", NULL, NULL, "imagefolder|idx|cifar", "source kind (required)");
    const char *src = args_string(&a, "--src", NULL, NULL, "source (also accepted as the positional SRC)");
    const char *out = args_string(&a, "--out", "-o", NULL, "output path prefix, e.g. data/fmnist/train (required)");
    const char *ps = args_value(&a, "--per-shard", NULL, ARG_INT, NULL, 1, 1099511627776.0, NULL,
                                "samples per shard (10000 when neither limit is given)");
    long per_shard = ps ? strtol(ps, NULL, 10) : 0;
    double mb = args_float_range(&a, "--shard-size", NULL, NAN, 0.002, 1 << 20,
                                 "start a new shard before it would exceed MB MiB");
    const char *labels = args_string(&a, "--labels", NULL, NULL, "idx: labels file (default: found beside the images)");
    const char *split = args_choice(&a, "--split", NULL, NULL, "train|test",
                                    "cifar directory: train (data_batch_*.bin / train.bin, default) or test");
    int overwrite = args_bool(&a, "--overwrite", 0,
                              "replace existing PREFIX-*.tar shards (removed once the new set is complete) and a "
                              "classes.txt listing other classes; without it they are refused");
    if (!src) src = args_positional(&a);
    int e = args_end(&a, usage);
    if (e) {
        args_free(&a);
        return e == 1 ? 0 : 2;
    }
    if (isnan(mb)) mb = 0;
    int code = 2;
    const char *bad = NULL;
    if (!from) bad = "--from imagefolder|idx|cifar is required";
    else if (strcmp(from, "imagefolder") && strcmp(from, "idx") && strcmp(from, "cifar")) bad = "--from must be imagefolder, idx or cifar";
    else if (!src) bad = "SRC is required";
    else if (!out) bad = "--out PREFIX is required";
    else if (labels && strcmp(from, "idx")) bad = "--labels applies to --from idx only";
    else if (split && strcmp(from, "cifar")) bad = "--split applies to --from cifar only";
    if (bad) {
        fprintf(stderr, "mixtape shards: %s (see mixtape shards --help)\n", bad);
        args_free(&a);
        return code;
    }
    char first[600], ep[300];
    int old = shard_prefix_existing(out, first, sizeof first);
    if (old > 0 && !overwrite) { /* before any work: old higher-numbered shards would mix into the new set */
        fprintf(stderr, "mixtape shards: --out %s: %d shard%s of this prefix already there (%s); pass --overwrite to "
                        "replace them\n", out, old, old == 1 ? "" : "s", src_escape(first, ep, sizeof ep));
        args_free(&a);
        return 2;
    }
    ConvertOpts o = {0};
    o.out_prefix = out;
    o.per_shard = per_shard;
    o.max_bytes = mb > 0 ? (uint64_t)(mb * 1048576.0) : 0;
    if (!per_shard && !o.max_bytes) o.per_shard = 10000;
    o.labels = labels;
    o.split = split;
    o.overwrite = overwrite;
    o.stop = stop_requested;
    DatasetAcc acc;
    dataset_acc_init(&acc);
    DatasetPublish pub = {.prefix = out, .acc = &acc};
    o.stats = &acc;
    o.publish = dataset_publish;
    o.publish_ctx = &pub;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    ConvertResult r;
    char err[1024] = "";
    int rc;
    if (!strcmp(from, "imagefolder")) rc = convert_imagefolder(src, &o, &r, err, sizeof err);
    else if (!strcmp(from, "idx")) rc = convert_idx(src, &o, &r, err, sizeof err);
    else rc = convert_cifar(src, &o, &r, err, sizeof err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (rc && g_stop) {
        fprintf(stderr, "mixtape shards: stopped by %s; no shard of this run is left\n", g_stop == SIGINT ? "SIGINT" : "SIGTERM");
        args_free(&a);
        return 128 + g_stop;
    }
    if (rc) {
        char eerr[1100];
        fprintf(stderr, "mixtape shards: %s\n", src_escape(err, eerr, sizeof eerr));
        args_free(&a);
        return 1;
    }
    char last[64];
    snprintf(last, sizeof last, "%06d", r.shards > 0 ? r.shards - 1 : 0);
    printf("mixtape shards: %ld sample%s, %d class%s, %d shard%s, %llu bytes -> %s-{000000..%s}.tar", r.samples,
           r.samples == 1 ? "" : "s", r.classes, r.classes == 1 ? "" : "es", r.shards, r.shards == 1 ? "" : "s",
           (unsigned long long)r.bytes, out, last);
    if (r.skipped) printf(" (%ld unreadable files skipped)", r.skipped);
    printf("\n");
    { /* what dataset.json now says of this split */
        const DatasetInfo *d = &pub.info;
        char ejp[1300], ms[96], ss[96];
        size_t km = 0, ks = 0;
        for (int c = 0; c < d->channels; c++) {
            km += (size_t)snprintf(ms + km, sizeof ms - km, "%s%.4f", c ? " " : "", d->mean[c]);
            ks += (size_t)snprintf(ss + ks, sizeof ss - ks, "%s%.4f", c ? " " : "", d->std[c]);
        }
        const char *b = strrchr(out, '/');
        char esp[300];
        printf("%s (split %s): %d-channel images ", src_escape(pub.path, ejp, sizeof ejp), src_escape(b ? b + 1 : out, esp, sizeof esp), d->channels);
        if (d->hmin == d->hmax && d->wmin == d->wmax) printf("%dx%d", d->hmin, d->wmin);
        else printf("%d..%d x %d..%d", d->hmin, d->hmax, d->wmin, d->wmax);
        printf(", mean %s, std %s\n", ms, ss);
    }
    args_free(&a);
    return 0;
}
