#include "train/resume_args.h"
#include "train/outfile.h"
#include "train/train_opts.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Flags that steer only this invocation: never compared. */
static const char *const IGNORED[] = {"resume", "config", "output", "experiment", "overwrite", "dry-run", "list-flags"};
/* Flags a resumed run may change: they do not alter the steps already taken nor how the
 * next ones are computed from the state (--epochs stretches the schedule from here on;
 * the data order does not depend on -j, see docs/data.md). */
static const char *const CHANGEABLE[] = {"epochs", "max-steps", "val", "val-every", "threads", "workers",
                                         "log-interval", "checkpoint-every", "keep-last", "checkpoint-hist",
                                         "data-warnings", "prefetch"};

static int in(const char *key, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(key, list[i])) return 1;
    return 0;
}

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

int resume_plan(int argc, char **argv, ResumePlan *p, int *argc2, char ***argv2) {
    memset(p, 0, sizeof *p);
    *argc2 = argc;
    *argv2 = argv;
    Args probe;
    args_init(&probe, "train", argc, argv);
    const char *resume = args_str(&probe, "--resume", NULL, NULL);
    const char *config = args_str(&probe, "--config", "-c", NULL);
    p->cmd_output = args_has(&probe, "--output", NULL);
    p->cmd_experiment = args_has(&probe, "--experiment", NULL);
    if (!resume || probe.failed) { args_free(&probe); return 0; }
    p->active = 1;
    if (is_dir(resume)) snprintf(p->dir, sizeof p->dir, "%s", resume);
    else {
        const char *sl = strrchr(resume, '/');
        if (sl) snprintf(p->dir, sizeof p->dir, "%.*s", (int)(sl - resume), resume);
        else snprintf(p->dir, sizeof p->dir, ".");
        if (!p->dir[0]) snprintf(p->dir, sizeof p->dir, "/");
    }
    char y[1100];
    snprintf(y, sizeof y, "%s/args.yaml", p->dir);
    struct stat s;
    if (stat(y, &s) != 0 || !S_ISREG(s.st_mode)) { args_free(&probe); return 0; } /* a bare checkpoint: flags as given */
    snprintf(p->yaml, sizeof p->yaml, "%s", y);
    if (config) {
        int same = out_same_file(config, y);
        args_free(&probe);
        if (same) return 0; /* the run's own args.yaml, loaded by --config */
        fprintf(stderr, "mixtape train: --resume %s continues with the flags in %s; --config %s cannot replace them "
                        "(give the flags to change on the command line)\n", resume, y, config);
        return 2;
    }
    args_free(&probe);
    char **v = calloc((size_t)argc + 2, sizeof *v);
    char *cfg = malloc(strlen(y) + 16);
    if (!v || !cfg) { free(v); free(cfg); fprintf(stderr, "mixtape train: out of memory\n"); return 1; }
    for (int i = 0; i < argc; i++) v[i] = argv[i];
    sprintf(cfg, "--config=%s", y);
    v[argc] = cfg;
    *argc2 = argc + 1;
    *argv2 = v;
    return 0;
}

void resume_plan_free(ResumePlan *p, char **argv2, char **argv) {
    (void)p;
    if (argv2 && argv2 != argv) {
        int n = 0;
        while (argv2[n]) n++;
        if (n) free(argv2[n - 1]); /* the --config=... string we added */
        free(argv2);
    }
}

/* Equal as recorded, or as numbers ("3e-3" and "0.003"). */
static int same_value(const char *x, const char *y) {
    if (!strcmp(x, y)) return 1;
    char *ex, *ey;
    double a = strtod(x, &ex), b = strtod(y, &ey);
    return ex != x && ey != y && !*ex && !*ey && a == b;
}

static const char *val_of(const Args *a, const char *key) {
    for (int i = 0; i < a->nrec; i++)
        if (!strcmp(a->rec[i].key, key)) return a->rec[i].val;
    return NULL;
}

int resume_check(Args *a, const ResumePlan *p, int print) {
    if (!p->active || !p->yaml[0]) return 0;
    /* The run's own flags: args.yaml parsed alone, exactly as the original run resolved them. */
    char arg[1200];
    snprintf(arg, sizeof arg, "--config=%s", p->yaml);
    char *argv[1] = {arg};
    Args b;
    args_init(&b, "train", 1, argv);
    TrainOpts *ob = calloc(1, sizeof *ob);
    char err[2048];
    int rc = 0;
    if (!ob) { fprintf(stderr, "mixtape train: out of memory\n"); args_free(&b); return 1; }
    if (train_opts_parse(&b, ob, err, sizeof err) != 0 || args_finish(&b) != 0) {
        fprintf(stderr, "mixtape train: --resume: the run's %s does not parse: %s\n", p->yaml, b.failed ? b.err : err);
        rc = 2;
    }
    for (int i = 0; rc == 0 && i < a->nrec; i++) {
        const char *key = a->rec[i].key, *now = a->rec[i].val, *was = val_of(&b, key);
        if (in(key, IGNORED, sizeof IGNORED / sizeof IGNORED[0])) continue;
        if (!was) was = "null";
        if (same_value(now, was)) continue;
        if (in(key, CHANGEABLE, sizeof CHANGEABLE / sizeof CHANGEABLE[0])) {
            if (print) printf("resume: --%s %s (the run had %s)\n", key, now, strcmp(was, "null") ? was : "none");
            continue;
        }
        fprintf(stderr, "mixtape train: --resume %s: --%s %s differs from the run's %s (%s); a resumed run keeps "
                        "it, to continue exactly. To change it, start a new run with --initial-checkpoint "
                        "%s/last.h5\n", p->dir, key, now, was, p->yaml, p->dir);
        rc = 2;
    }
    free(ob);
    args_free(&b);
    return rc;
}
