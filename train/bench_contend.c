/* mixtape bench --contend N: the benchmark on a shared machine. N busy-spinning processes
 * (pinned nowhere, like other users' jobs) run while the usual benchmark runs in a child
 * process (this program, the same flags) at each thread count in turn; the train and forward
 * rates of R alternating rounds are reported as medians, and without --threads the ratio of
 * all cores to one thread shows whether the extra threads help or collapse under the load. */
#define _GNU_SOURCE
#include "train/bench_contend.h"
#include "core/threads.h"
#include "train/args.h"
#include "train/progress.h"
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_COMPETITORS 1024
#define MAX_ROUNDS 100
#define CHILD_OUT_MAX (1 << 20)

int bench_contend_requested(int argc, char **argv) {
    Args a;
    args_init(&a, "bench", argc, argv);
    int r = args_has(&a, "--contend", NULL);
    args_free(&a);
    return r;
}

void bench_contend_flags(Args *a, long *ncomp, long *rounds) {
    args_group(a, "contention (--contend)");
    *ncomp = args_int_range(a, "--contend", NULL, 0, 0, MAX_COMPETITORS,
                            "run N busy processes meanwhile; without --threads, compare 1 thread with all cores");
    *rounds = args_int_range(a, "--rounds", NULL, 3, 1, MAX_ROUNDS, "with --contend: alternating rounds (medians)");
}

/* A competitor: spins until killed, and dies with its parent. */
static pid_t spawn_competitor(pid_t parent) {
    pid_t p = fork();
    if (p != 0) return p;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    volatile unsigned long x = 0;
    for (;;) x++;
}

static void stop_all(pid_t *pids, int n) {
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) waitpid(pids[i], NULL, 0);
}

/* Runs `argv` (this program) with stdout into buf; stderr passes through. The exit code,
 * or 1 when it could not run. */
static int run_child(char **argv, char *buf, size_t cap) {
    int fd[2];
    if (pipe(fd) != 0) { perror("mixtape bench: pipe"); return 1; }
    pid_t parent = getpid(), p = fork();
    if (p < 0) { perror("mixtape bench: fork"); close(fd[0]); close(fd[1]); return 1; }
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv(argv[0][0] == '/' ? argv[0] : "/proc/self/exe", argv);
        fprintf(stderr, "mixtape bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(1);
    }
    close(fd[1]);
    size_t len = 0;
    for (;;) {
        char tmp[4096];
        ssize_t r = read(fd[0], tmp, sizeof tmp);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t k = (size_t)r < cap - 1 - len ? (size_t)r : cap - 1 - len; /* the rest is drained */
        memcpy(buf + len, tmp, k);
        len += k;
    }
    buf[len] = 0;
    close(fd[0]);
    int st;
    while (waitpid(p, &st, 0) < 0)
        if (errno != EINTR) return 1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

/* The img/s of the line starting with `key` ("train:"), or -1. */
static double rate_of(const char *out, const char *key) {
    size_t n = strlen(key);
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, key, n)) return atof(l + n);
    return -1;
}

/* " train: X img/s  forward: Y img/s" for the modes measured (rate >= 0); sep ":" or "". */
static void print_rates(double train, double fwd, const char *sep) {
    if (train >= 0) printf(" train%s %.1f img/s", sep, train);
    if (fwd >= 0) printf(" %sforward%s %.1f img/s", train >= 0 ? " " : "", sep, fwd);
}

static int cores_available(void) {
    cpu_set_t s;
    if (sched_getaffinity(0, sizeof s, &s) == 0) return CPU_COUNT(&s);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int bench_contend(int argc, char **argv) {
    /* --contend, --rounds and --threads are ours: ours[i] marks the arguments our getters
     * consume; the child gets every other one and checks it */
    Args a;
    args_init(&a, "bench", argc, argv);
    unsigned char *ours = malloc((size_t)argc + 1);
    if (!ours) { fprintf(stderr, "mixtape bench: out of memory\n"); args_free(&a); return 1; }
    memcpy(ours, a.used, (size_t)argc + 1); /* what args_init took ("--") stays the child's */
    long ncomp, rounds;
    bench_contend_flags(&a, &ncomp, &rounds);
    long tfix = args_int_range(&a, "--threads", NULL, 0, 0, MT_MAX_THREADS, NULL);
    for (int i = 0; i < argc; i++) ours[i] = a.used[i] && !ours[i];
    const char *other = args_has(&a, "--sgemm", NULL) ? "--sgemm" : args_has(&a, "--comm", NULL) ? "--comm" : NULL;
    int bad = a.err[0] != 0;
    if (bad) fprintf(stderr, "%s\n", a.err);
    else if (other) fprintf(stderr, "mixtape bench: --contend measures a model; it does not combine with %s\n", other);
    args_free(&a);
    if (bad || other) { free(ours); return 2; }
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK")) {
        fprintf(stderr, "mixtape bench: --contend runs on one machine, not under mpirun\n");
        free(ours);
        return 2;
    }
    int cores = cores_available();
    int tcount[2] = {1, cores}, nt = cores > 1 ? 2 : 1;
    if (tfix) { tcount[0] = (int)tfix; nt = 1; }

    /* The child's command line: ours without --contend, --rounds and --threads, plus --threads T. */
    /* the binary's own path, so that the children are named like it (exec of /proc/self/exe
     * would name them "exe" in ps); /proc/self/exe when it cannot be read */
    static char self_path[4096];
    ssize_t sl = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    self_path[sl > 0 ? sl : 0] = 0;
    char **cv = calloc((size_t)argc + 6, sizeof *cv);
    char tbuf[16];
    if (!cv) { fprintf(stderr, "mixtape bench: out of memory\n"); free(ours); return 1; }
    int k = 0;
    cv[k++] = self_path[0] ? self_path : "mixtape";
    cv[k++] = "bench";
    cv[k++] = "--threads";
    cv[k++] = tbuf;
    for (int i = 0; i < argc; i++)
        if (!ours[i]) cv[k++] = argv[i];
    cv[k] = NULL;
    free(ours);

    char load[128] = "?";
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fgets(load, sizeof load, lf)) {
            char *sp = load;
            for (int f = 0; f < 3 && sp; f++) sp = strchr(sp + 1, ' '); /* the three averages */
            if (sp) *sp = 0;
        }
        fclose(lf);
    }
    printf("contend: %ld busy process(es), %d core(s) available, load average before %s; OpenMP wait: %s\n", ncomp,
           cores, load, mt_wait_policy());
    fflush(stdout);

    pid_t *pids = calloc((size_t)ncomp + 1, sizeof *pids);
    char *out = malloc(CHILD_OUT_MAX);
    double *tr = calloc((size_t)(2 * rounds), sizeof *tr), *fw = calloc((size_t)(2 * rounds), sizeof *fw);
    int rc = 0;
    if (!pids || !out || !tr || !fw) { fprintf(stderr, "mixtape bench: out of memory\n"); rc = 1; }
    pid_t self = getpid();
    for (long i = 0; rc == 0 && i < ncomp; i++)
        if ((pids[i] = spawn_competitor(self)) < 0) { perror("mixtape bench: fork"); rc = 1; }
    int shown = 0;
    for (int r = 0; rc == 0 && r < rounds; r++)
        for (int t = 0; rc == 0 && t < nt; t++) {
            snprintf(tbuf, sizeof tbuf, "%d", tcount[t]);
            fflush(stdout);
            rc = run_child(cv, out, CHILD_OUT_MAX);
            if (rc) { fputs(out, stdout); fprintf(stderr, "mixtape bench: the run at --threads %d failed\n", tcount[t]); break; }
            if (!shown) { /* the model line, once */
                const char *l = !strncmp(out, "model ", 6) ? out : strstr(out, "\nmodel ");
                if (l && *l == '\n') l++;
                const char *nl = l ? strchr(l, '\n') : NULL;
                if (nl) printf("%.*s\n", (int)(nl - l), l);
                shown = 1;
            }
            tr[t * rounds + r] = rate_of(out, "train:");
            fw[t * rounds + r] = rate_of(out, "forward:");
            printf("round %d  threads %d:", r + 1, tcount[t]);
            print_rates(tr[t * rounds + r], fw[t * rounds + r], "");
            printf("\n");
        }
    stop_all(pids, (int)ncomp);
    if (rc == 0) {
        double mt[2], mf[2];
        for (int t = 0; t < nt; t++) {
            mt[t] = median_sorted(tr + t * rounds, (int)rounds);
            mf[t] = median_sorted(fw + t * rounds, (int)rounds);
            printf("threads %d:", tcount[t]);
            print_rates(mt[t], mf[t], ":");
            printf("  (medians of %ld round(s), %ld busy process(es))\n", rounds, ncomp);
        }
        if (nt == 2) {
            printf("threads %d / threads 1:", tcount[1]);
            if (mt[0] > 0 && mt[1] > 0) printf(" train %.2fx", mt[1] / mt[0]);
            if (mf[0] > 0 && mf[1] > 0) printf(" forward %.2fx", mf[1] / mf[0]);
            printf("\n");
        }
    }
    free(cv);
    free(pids);
    free(out);
    free(tr);
    free(fw);
    return rc;
}
