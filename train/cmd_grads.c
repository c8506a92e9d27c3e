/* mixtape grads --checkpoint C.h5 --data D -b N --out G.h5
 * Loss and parameter gradients of the first batch, for parity tests against
 * PyTorch: training-mode graph with grad enabled but dropout / drop path off.
 * Writes /loss (scalar, mean cross-entropy), /logits (N, classes), /labels (N)
 * and /grads/<timm key> for every parameter that requires grad. A permutation the checkpoint
 * records (--permute) is applied to the images first, as train / eval / predict do. */
#include "core/ops.h"
#include "train/data_flags.h"
#include "train/args.h"
#include "train/commands.h"
#include "train/model_io.h"
#include "train/outfile.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: mixtape grads --checkpoint C.h5 --data D -b N --out G.h5\n\n"
               "Loss and gradients of the first N samples (dropout and drop path off).\n"
               "Writes /loss (scalar), /logits (N, classes), /labels (N), /grads/<key>.\n"
               "The batch is capped at the data size. The checkpoint's input permutation\n"
               "(data_permute, from training with --permute) is applied to the images.\n");
}

int cmd_grads(int argc, char **argv) {
    IoArgs io;
    int pr = io_args_parse("grads", argc, argv, 8, usage, &io);
    if (pr) return pr == 1 ? 0 : 2;
    const char *ckpt = io.ckpt, *data = io.data, *out = io.out;
    long bs = io.bs;
    char err[2048];
    if (out_check_not_input("--out", out, "--checkpoint", ckpt, err, sizeof err) != 0 ||
        out_check_not_input("--out", out, "--data", data, err, sizeof err) != 0) {
        fprintf(stderr, "mixtape grads: %s\n", err);
        return 2;
    }

    Model m;
    DataIn d;
    OutFile o = {.f = -1};
    Batch b = {0};
    Ctx c;
    int have_ctx = 0, have_model = 0, have_data = 0, rc = 2;
    int64_t *labels = NULL;
    int32_t *perm = NULL;
    float *perm_scratch = NULL;
    CkptInfo *info = calloc(1, sizeof *info);
    if (!info) { fprintf(stderr, "mixtape grads: out of memory\n"); return 1; }
    if (model_from_checkpoint(ckpt, &m, info, err, sizeof err) < 0) { fprintf(stderr, "mixtape grads: %s\n", err); goto out; }
    have_model = 1;
    if (datain_open(&d, data, err, sizeof err) < 0) { fprintf(stderr, "mixtape grads: %s\n", err); goto out; }
    have_data = 1;
    if (datain_check_model(&d, &m.cfg, err, sizeof err) < 0) { fprintf(stderr, "mixtape grads: %s\n", err); goto out; }
    if (!d.has_labels) { fprintf(stderr, "mixtape grads: --data %s has no labels\n", data); goto out; }
    int K = m.cfg.num_classes;
    int n = (int)(bs < d.n ? bs : d.n);
    if (batch_alloc(&b, n, d.c, d.h, d.w, 0, 0) < 0) { fprintf(stderr, "mixtape grads: out of memory\n"); rc = 1; goto out; }
    if (d.read(&d, 0, n, &b, err, sizeof err) < 0) { fprintf(stderr, "mixtape grads: %s\n", err); goto out; }
    for (int i = 0; i < n; i++)
        if (b.labels[i] < 0 || b.labels[i] >= K) {
            fprintf(stderr, "mixtape grads: --data %s: label %d of sample %d is outside 0..%d\n", data, b.labels[i], i, K - 1);
            goto out;
        }
    {   /* the checkpoint's --permute, the same table the training loader built (permute_table
         * checks it against the image side; the data has the model's square size) */
        PermuteConfig pc = {0};
        if (permute_from_checkpoint(info, ckpt, &pc, stdout, err, sizeof err) != 0) { fprintf(stderr, "mixtape grads: %s\n", err); goto out; }
        data_flags_permute_patch(&pc, &m.cfg);
        if (pc.mode != PERMUTE_NONE && !(perm = permute_table(&pc, d.h, err, sizeof err))) {
            fprintf(stderr, "mixtape grads: checkpoint %s: %s\n", ckpt, err);
            goto out;
        }
        if (perm && !(perm_scratch = malloc((size_t)d.h * d.w * sizeof *perm_scratch))) {
            fprintf(stderr, "mixtape grads: out of memory\n");
            rc = 1;
            goto out;
        }
        for (int i = 0; perm && i < n; i++)
            permute_apply_inplace(perm, d.c, d.h * d.w, b.images + (size_t)i * d.c * d.h * d.w, perm_scratch);
    }
    rc = 1;
    mt_ctx_init(&c, (size_t)64 << 20);
    c.poison_fresh = 1; /* the parity tests' command: an op that reads a gradient buffer before
                         * its first write turns the gradients into NaN there */
    have_ctx = 1;
    c.grad_enabled = 1;
    c.training = 0;
    mt_params_zero_grad(&m.params);
    Tensor *x = mt_wrap(&c, b.images, 4, (int[]){n, d.c, d.h, d.w});
    Tensor *y = model_forward(&c, &m, x);
    Tensor *loss = y ? mt_cross_entropy(&c, y, b.labels, NULL, 0.0f) : NULL;
    if (!loss || c.failed) { fprintf(stderr, "mixtape grads: forward: %s\n", c.err); goto out; }
    if (y->ndim != 2 || y->shape[0] != n || y->shape[1] != K) {
        char s[64];
        fprintf(stderr, "mixtape grads: model output %s, expected (%d,%d)\n", mt_shape_str(y, s, sizeof s), n, K);
        goto out;
    }
    if (mt_backward(&c, loss) < 0) { fprintf(stderr, "mixtape grads: backward: %s\n", c.err); goto out; }

    if (outfile_create(&o, out, err, sizeof err) < 0) { fprintf(stderr, "mixtape grads: %s\n", err); goto out; }
    labels = malloc((size_t)n * sizeof *labels);
    for (int i = 0; i < n; i++) labels[i] = b.labels[i];
    long lshape[2] = {n, K};
    int bad = outfile_dataset(&o, "loss", 0, NULL, loss->data, err, sizeof err) < 0 ||
              outfile_dataset(&o, "logits", 2, lshape, y->data, err, sizeof err) < 0 ||
              outfile_ints(&o, "labels", n, labels, err, sizeof err) < 0 ||
              outfile_attr_str(&o, "checkpoint", ckpt, err, sizeof err) < 0 ||
              outfile_attr_str(&o, "model", m.cfg.name, err, sizeof err) < 0;
    for (int i = 0; i < m.params.n && !bad; i++) {
        Tensor *t = m.params.t[i];
        if (!t->requires_grad) continue;
        char name[512];
        long shape[MT_MAXDIM];
        for (int k = 0; k < t->ndim; k++) shape[k] = t->shape[k];
        snprintf(name, sizeof name, "grads/%s", t->name);
        bad = outfile_dataset(&o, name, t->ndim, shape, t->grad, err, sizeof err) < 0;
    }
    if (bad || outfile_commit(&o, err, sizeof err) < 0) { fprintf(stderr, "mixtape grads: %s\n", err); goto out; }
    printf("wrote %s: loss %.6f over %d samples, %d gradients\n", out, loss->data[0], n, m.params.n);
    rc = 0;
out:
    if (o.f >= 0) outfile_abort(&o);
    free(labels);
    free(perm);
    free(perm_scratch);
    free(info);
    batch_free(&b);
    if (have_ctx) mt_ctx_free(&c);
    if (have_data) d.close(&d);
    if (have_model) model_free(&m);
    return rc;
}
