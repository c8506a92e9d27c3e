#include "train/progress.h"
#include "core/clock.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double median_sorted(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void format_duration(double s, char *buf, int n) {
    if (s < 0 || s != s) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, (size_t)n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(buf, (size_t)n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, (size_t)n, "%lds", t);
}

/* A live bar only for a person at a terminal: under an MPI launcher stdout is often a
 * pseudo-terminal that the launcher forwards into its own output or a log, where
 * carriage returns and escape codes make one unreadable line per epoch. */
int progress_is_terminal(FILE *out) {
    if (!isatty(fileno(out))) return 0;
    const char *term = getenv("TERM");
    if (term && !strcmp(term, "dumb")) return 0;
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK")) return 0;
    return 1;
}

void progress_start(Progress *p, FILE *out, int epoch, int epochs, long total, long log_every) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = progress_is_terminal(out);
    p->epoch = epoch;
    p->epochs = epochs;
    p->total = total;
    p->t0 = mt_seconds();
    p->log_every = log_every > 0 ? log_every : 50;
}

void progress_update(Progress *p, long step, double loss, double lr, double ips) {
    double t = mt_seconds();
    char eta[32] = "?";
    if (p->total > 0 && step > 0) format_duration((t - p->t0) / (double)step * (double)(p->total - step), eta, sizeof eta);
    if (p->tty) {
        if (t - p->last_draw < 0.1 && step != p->total) return;
        p->last_draw = t;
        char bar[31];
        int fill = p->total > 0 ? (int)(30.0 * (double)step / (double)p->total) : 0;
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(p->out, "\r\033[Kepoch %d/%d [%s] %ld/%ld  loss %.4f  lr %.3g  %.0f img/s  ETA %s", p->epoch + 1,
                p->epochs, bar, step, p->total, loss, lr, ips, eta);
        fflush(p->out);
    } else if (step % p->log_every == 0 || step == p->total) {
        fprintf(p->out, "epoch %d/%d step %ld/%ld loss %.4f lr %.3g %.0f img/s ETA %s\n", p->epoch + 1, p->epochs,
                step, p->total, loss, lr, ips, eta);
        fflush(p->out);
    }
}

void progress_end(Progress *p, const char *summary) {
    if (p->tty) fprintf(p->out, "\r\033[K");
    if (summary) fprintf(p->out, "%s\n", summary);
    fflush(p->out);
}
