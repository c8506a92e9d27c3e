/* mixtape train: setup (model, data, optimizer, schedule, EMA, the resumed state), the
 * epochs, the closing line. The parts share one TrainRun (train/train_run.h lists
 * which file holds which concern). */
#include "train/commands.h"
#include "train/dist.h"
#include "train/signals.h"
#include "train/train_run.h"
#include <stdio.h>
#include <stdlib.h>

int cmd_train(int argc, char **argv) {
    int early = train_opts_early(argc, argv); /* --help, --list-flags, --dry-run */
    if (early >= 0) return early;
    dist_init(NULL, NULL);
    TrainRun *r = calloc(1, sizeof *r);
    int argc2;
    char **argv2;
    int rc = resume_plan(argc, argv, &r->plan, &argc2, &argv2);
    if (rc) { free(r); dist_finalize(); return rc; }
    Args a;
    args_init(&a, "train", argc2, argv2);
    rc = train_setup(r, &a);
    if (rc == 0) {
        signals_install();
        rc = train_epochs(r);
        if (rc == 0 && r->root) train_log_done(r);
    }
    if (r->root && metrics_close(&r->log) != 0 && rc == 0) rc = 1; /* its message is above */
    train_teardown(r);
    resume_plan_free(&r->plan, argv2, argv);
    free(r);
    args_free(&a);
    dist_finalize();
    return rc;
}
