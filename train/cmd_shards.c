/* mixtape shards: convert ImageFolder trees, IDX (MNIST / Fashion-MNIST) files and CIFAR
 * binary batches to WebDataset-style tar shards plus classes.txt. */
#include "data/convert.h"
#include "train/args.h"
#include "train/commands.h"
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mixtape shards --from imagefolder|idx|cifar SRC --out PREFIX\n"
               "                      [--per-shard N | --shard-size MB] [--labels FILE] [--split train|test]\n"
               "\n"
               "Writes PREFIX-000000.tar, PREFIX-000001.tar, ... (members <key>.<ext> image and <key>.cls label)\n"
               "and classes.txt in PREFIX's directory (created when missing).\n"
               "  imagefolder: SRC/<class>/<image>.jpg|jpeg|png, bytes copied as they are\n"
               "  idx: SRC is an IDX images file (e.g. train-images-idx3-ubyte[.gz]); pixels as PNG\n"
               "  cifar: SRC is a CIFAR-10/100 binary batch file or a directory of them\n");
}

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
    ConvertOpts o = {0};
    o.out_prefix = out;
    o.per_shard = per_shard;
    o.max_bytes = mb > 0 ? (uint64_t)(mb * 1048576.0) : 0;
    if (!per_shard && !o.max_bytes) o.per_shard = 10000;
    o.labels = labels;
    o.split = split;
    ConvertResult r;
    char err[1024] = "";
    int rc;
    if (!strcmp(from, "imagefolder")) rc = convert_imagefolder(src, &o, &r, err, sizeof err);
    else if (!strcmp(from, "idx")) rc = convert_idx(src, &o, &r, err, sizeof err);
    else rc = convert_cifar(src, &o, &r, err, sizeof err);
    if (rc) {
        fprintf(stderr, "mixtape shards: %s\n", err);
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
    args_free(&a);
    return 0;
}
