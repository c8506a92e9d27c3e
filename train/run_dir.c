#include "train/run_dir.h"
#include "data/source_util.h"
#include "train/outfile.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const RUN_FILES[] = {"args.yaml", "last.h5", "metrics.jsonl", "summary.csv", "best.h5"};
#define NRUN (int)(sizeof RUN_FILES / sizeof RUN_FILES[0])
#define SUMMARY_MAX ((size_t)64 << 20)   /* a summary or metrics log larger than this is not ours */

static int exists(const char *p) {
    struct stat s;
    return lstat(p, &s) == 0;
}

void rundir_run_files(const char *dir, char *names, size_t n) {
    size_t k = 0;
    names[0] = 0;
    for (int i = 0; i < NRUN; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, RUN_FILES[i]);
        if (exists(p) && k < n) k += (size_t)snprintf(names + k, n - k, "%s%s", k ? ", " : "", RUN_FILES[i]);
    }
}

/* "epoch-12.h5" / "checkpoint-3.h5": prefix, digits, ".h5" and nothing else. */
static int numbered(const char *name, const char *prefix) {
    size_t L = strlen(prefix);
    if (strncmp(name, prefix, L) != 0) return 0;
    const char *p = name + L;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') p++;
    return strcmp(p, ".h5") == 0;
}

static int is_run_file(const char *name) {
    for (int i = 0; i < NRUN; i++)
        if (!strcmp(name, RUN_FILES[i])) return 1;
    return numbered(name, "epoch-") || numbered(name, "checkpoint-");
}

int rundir_clear(const char *dir, const char *input, int check_only, char *err, size_t errn) {
    DIR *d = opendir(dir);
    if (!d) return 0; /* nothing there yet */
    struct dirent *e;
    int rc = 0;
    /* two passes: refuse before deleting anything */
    for (int pass = 0; pass < (check_only ? 1 : 2) && rc == 0; pass++) {
        rewinddir(d);
        while ((e = readdir(d)) != NULL) {
            if (!is_run_file(e->d_name)) continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (pass == 0 && input && out_same_file(p, input)) {
                snprintf(err, errn, "--overwrite would delete %s, which this run reads (%s); copy it elsewhere first",
                         p, input);
                rc = -1;
                break;
            }
            if (pass == 1 && remove(p) != 0 && errno != ENOENT) {
                snprintf(err, errn, "--overwrite: cannot delete %s: %s", p, strerror(errno));
                rc = -1;
                break;
            }
        }
    }
    closedir(d);
    return rc;
}

int rundir_experiment(const char *parent, const char *name, char *out, size_t n, char *err, size_t errn) {
    if (!out || n == 0) return -1;
    for (int inc = 0; inc < 1000; inc++) {
        int k = inc ? snprintf(out, n, "%s/%s-%d", parent, name, inc) : snprintf(out, n, "%s/%s", parent, name);
        if (k < 0 || (size_t)k >= n) { snprintf(err, errn, "--experiment: path too long under %s", parent); return -1; }
        if (!exists(out)) return 0;
    }
    snprintf(err, errn, "--experiment %s: %s/%s and -1 ... -999 are all taken", name, parent, name);
    return -1;
}

int rundir_write_args(const char *dir, Args *a, char *err, size_t errn) {
    static const char *const SKIP[] = {"resume", "config", "overwrite", "max-steps", "dry-run", "list-flags"};
    for (int i = 0; i < a->nrec; i++)
        for (size_t s = 0; s < sizeof SKIP / sizeof SKIP[0]; s++)
            if (!strcmp(a->rec[i].key, SKIP[s])) snprintf(a->rec[i].val, sizeof a->rec[i].val, "null");
    char p[4096];
    snprintf(p, sizeof p, "%s/args.yaml", dir);
    OutText t;
    if (out_text_begin(&t) != 0) { snprintf(err, errn, "%s: out of memory", p); return -1; }
    args_dump_yaml(a, t.f);
    return out_text_commit(&t, p, err, errn);
}

/* Rewrites path as `head`, the lines keep() accepts, then `add` (head/add may be NULL). */
static int filter_file(const char *path, int (*keep)(const char *line, const void *ud), const void *ud,
                       const char *head, const char *add, char *err, size_t errn) {
    uint8_t *data = NULL;
    size_t n = 0;
    if (src_path_kind(path) == 1 && src_read_file(path, SUMMARY_MAX, &data, &n, err, errn) != 0) return -1;
    size_t nh = head ? strlen(head) : 0;
    char *out = malloc(nh + n + (add ? strlen(add) : 0) + 2);
    if (!out) { free(data); snprintf(err, errn, "out of memory rewriting %s", path); return -1; }
    if (nh) memcpy(out, head, nh);
    size_t k = nh;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && data[j] != '\n') j++;
        char save = j < n ? (char)data[j] : 0;
        if (j < n) data[j] = 0;
        char *line = (char *)data + i;
        /* a line without its newline was cut by a crash: dropped */
        if (j < n && memchr(line, 0, j - i) == NULL && keep(line, ud)) {
            memcpy(out + k, line, j - i);
            k += j - i;
            out[k++] = '\n';
        }
        if (j < n) data[j] = (uint8_t)save;
        i = j + 1;
    }
    if (add) { memcpy(out + k, add, strlen(add)); k += strlen(add); }
    int rc = out_write_atomic(path, out, k, err, errn);
    free(out);
    free(data);
    return rc;
}

static int keep_step(const char *line, const void *ud) {
    const char *p = strstr(line, "\"step\": ");
    if (!p) return 0;
    char *end;
    long s = strtol(p + 8, &end, 10);
    return end != p + 8 && s <= *(const long *)ud;
}

int rundir_trim_metrics(const char *dir, long step, char *err, size_t errn) {
    char p[4096];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    if (src_path_kind(p) != 1) return 0;
    return filter_file(p, keep_step, &step, NULL, NULL, err, errn);
}

#define SUMMARY_HEADER "epoch,train_loss,eval_loss,eval_top1,eval_top5,lr"

static int keep_earlier(const char *line, const void *ud) {
    char *end;
    long e = strtol(line, &end, 10);
    return end != line && *end == ',' && e >= 1 && e < *(const int *)ud;
}

int rundir_summary(const char *dir, const SummaryRow *r, char *err, size_t errn) {
    char p[4096], row[512];
    snprintf(p, sizeof p, "%s/summary.csv", dir);
    int k = snprintf(row, sizeof row, "%d,%.9g,", r->epoch, r->train_loss);
    if (r->has_eval)
        k += snprintf(row + k, sizeof row - (size_t)k, "%.9g,%.9g,%.9g,", r->eval_loss, 100 * r->eval_top1,
                      100 * r->eval_top5);
    else k += snprintf(row + k, sizeof row - (size_t)k, ",,,");
    snprintf(row + k, sizeof row - (size_t)k, "%.9g\n", r->lr);
    /* header, earlier epochs, this one: rows of this epoch or later came from a run that
     * crashed after writing them (before its checkpoint); the resumed run writes them again */
    return filter_file(p, keep_earlier, &r->epoch, SUMMARY_HEADER "\n", row, err, errn);
}
