/* mixtape shards: convert ImageFolder trees, IDX (MNIST / Fashion-MNIST) files and CIFAR
 * binary batches to WebDataset-style tar shards plus classes.txt. */
#include "data/convert.h"
#include "train/args.h"
#include "train/commands.h"
#include <stdio.h>
#include <string.h>

static const char *USAGE =
    "usage: mixtape shards --from imagefolder|idx|cifar SRC --out PREFIX\n"
    "                      [--per-shard N | --shard-size MB] [--labels FILE] [--split train|test]\n"
    "\n"
    "Writes PREFIX-000000.tar, PREFIX-000001.tar, ... (members <key>.<ext> image and <key>.cls label)\n"
    "and classes.txt in PREFIX's directory (created when missing).\n"
    "\n"
    "  --from KIND        imagefolder: SRC/<class>/<image>.jpg|jpeg|png, bytes copied as they are\n"
    "                     idx: SRC is an IDX images file (e.g. train-images-idx3-ubyte[.gz]); pixels as PNG\n"
    "                     cifar: SRC is a CIFAR-10/100 binary batch file or a directory of them\n"
    "  SRC                source (also accepted as --src SRC)\n"
    "  --out PREFIX       output path prefix, e.g. data/fmnist/train\n"
    "  --per-shard N      samples per shard (default 10000 when neither limit is given)\n"
    "  --shard-size MB    start a new shard before it would exceed MB megabytes (MiB)\n"
    "  --labels FILE      idx: labels file (default: found beside the images by name)\n"
    "  --split S          cifar directory: train (data_batch_*.bin / train.bin, default) or test\n";

int cmd_shards(int argc, char **argv) {
    Args a;
    args_init(&a, "shards", argc, argv);
    if (args_flag(&a, "--help", 0) || args_flag(&a, "-h", 0)) {
        fputs(USAGE, stdout);
        args_free(&a);
        return 0;
    }
    const char *from = args_str(&a, "--from", NULL, NULL);
    const char *src = args_str(&a, "--src", NULL, NULL);
    const char *out = args_str(&a, "--out", "-o", NULL);
    long per_shard = args_int(&a, "--per-shard", NULL, 0);
    double mb = args_float(&a, "--shard-size", NULL, 0);
    const char *labels = args_str(&a, "--labels", NULL, NULL);
    const char *split = args_str(&a, "--split", NULL, NULL);
    if (!src) src = args_positional(&a);
    if (args_finish(&a)) {
        fprintf(stderr, "%s\n", a.err);
        args_free(&a);
        return 2;
    }
    int code = 2;
    const char *bad = NULL;
    if (!from) bad = "--from imagefolder|idx|cifar is required";
    else if (strcmp(from, "imagefolder") && strcmp(from, "idx") && strcmp(from, "cifar")) bad = "--from must be imagefolder, idx or cifar";
    else if (!src) bad = "SRC is required";
    else if (!out) bad = "--out PREFIX is required";
    else if (per_shard < 0) bad = "--per-shard must be >= 1";
    else if (mb < 0 || (mb > 0 && mb * 1048576.0 < 2048)) bad = "--shard-size must be a positive number of MB";
    else if (labels && strcmp(from, "idx")) bad = "--labels applies to --from idx only";
    else if (split && strcmp(from, "cifar")) bad = "--split applies to --from cifar only";
    if (bad) {
        fprintf(stderr, "mixtape shards: %s\n\n%s", bad, USAGE);
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
    printf("mixtape shards: %ld samples, %d classes, %d shards, %llu bytes -> %s-{000000..%s}.tar", r.samples, r.classes,
           r.shards, (unsigned long long)r.bytes, out, last);
    if (r.skipped) printf(" (%ld unreadable files skipped)", r.skipped);
    printf("\n");
    args_free(&a);
    return 0;
}
