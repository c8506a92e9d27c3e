/* mixtape predict --checkpoint C.h5 --data D [-b N] --out P.h5
 * Logits of every sample (eval mode, no grad) to /logits (N, classes) float32,
 * and /labels (N) int64 when the data has labels. */
#include "core/ops.h"
#include "train/args.h"
#include "train/commands.h"
#include "train/model_io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mixtape predict --checkpoint C.h5 --data D [-b N] --out P.h5\n\n"
               "Writes /logits (N, classes) float32 and /labels (N) int64 (when known) to P.h5.\n");
}

int cmd_predict(int argc, char **argv) {
    IoArgs io;
    int pr = io_args_parse("predict", argc, argv, 64, usage, &io);
    if (pr) return pr == 1 ? 0 : 2;
    const char *ckpt = io.ckpt, *data = io.data, *out = io.out;
    long bs = io.bs;
    int rc = 2;

    char err[2048];
    Model m;
    DataIn d;
    OutFile o = {.f = -1};
    Batch b = {0};
    Ctx c;
    int have_ctx = 0, have_model = 0, have_data = 0;
    int64_t *labels = NULL;
    if (model_from_checkpoint(ckpt, &m, NULL, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    have_model = 1;
    if (datain_open(&d, data, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    have_data = 1;
    if (datain_check_model(&d, &m.cfg, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    rc = 1;
    int K = m.cfg.num_classes;
    if (bs > d.n) bs = d.n;
    if (batch_alloc(&b, (int)bs, d.c, d.h, d.w, 0, 0) < 0) { fprintf(stderr, "mixtape predict: out of memory\n"); goto out; }
    if (outfile_create(&o, out, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    long shape[2] = {d.n, K};
    if (outfile_dataset(&o, "logits", 2, shape, NULL, err, sizeof err) < 0 ||
        (d.has_labels && outfile_ints(&o, "labels", d.n, NULL, err, sizeof err) < 0) ||
        outfile_attr_str(&o, "checkpoint", ckpt, err, sizeof err) < 0 ||
        outfile_attr_str(&o, "model", m.cfg.name, err, sizeof err) < 0) {
        fprintf(stderr, "mixtape predict: %s\n", err);
        goto out;
    }
    labels = malloc((size_t)bs * sizeof *labels);
    mt_ctx_init(&c, (size_t)64 << 20);
    have_ctx = 1;
    for (long start = 0; start < d.n; start += bs) {
        int n = (int)(d.n - start < bs ? d.n - start : bs);
        if (d.read(&d, start, n, &b, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
        mt_ctx_reset(&c);
        c.grad_enabled = 0;
        c.training = 0;
        Tensor *x = mt_wrap(&c, b.images, 4, (int[]){n, d.c, d.h, d.w});
        Tensor *y = model_forward(&c, &m, x);
        if (!y || c.failed) { fprintf(stderr, "mixtape predict: forward: %s\n", c.err); goto out; }
        if (y->ndim != 2 || y->shape[0] != n || y->shape[1] != K) {
            char s[64];
            fprintf(stderr, "mixtape predict: model output %s, expected (%d,%d)\n", mt_shape_str(y, s, sizeof s), n, K);
            goto out;
        }
        if (outfile_rows(&o, "logits", start, n, y->data, NULL, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
        if (d.has_labels) {
            for (int i = 0; i < n; i++) labels[i] = b.labels[i];
            if (outfile_rows(&o, "labels", start, n, NULL, labels, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
        }
    }
    if (outfile_commit(&o, err, sizeof err) < 0) { fprintf(stderr, "mixtape predict: %s\n", err); goto out; }
    printf("wrote %s: logits (%ld,%d)%s\n", out, d.n, K, d.has_labels ? " and labels" : "");
    rc = 0;
out:
    if (o.f >= 0) outfile_abort(&o);
    free(labels);
    batch_free(&b);
    if (have_ctx) mt_ctx_free(&c);
    if (have_data) d.close(&d);
    if (have_model) model_free(&m);
    return rc;
}
