/* What a person watching a run sees: on a terminal one live line redrawn in
 * place (bar, step/total, loss, lr, img/s, ETA); otherwise a plain log line per
 * interval, so logs piped to a file stay readable. */
#pragma once
#include <stdio.h>

typedef struct Progress {
    FILE *out;
    int tty;
    int epoch, epochs;
    long total;          /* steps in this epoch (0 = unknown) */
    double t0;           /* epoch start, seconds */
    double last_draw;
    long log_every;      /* non-terminal: one line every this many steps */
} Progress;

/* The median of v[0..n-1] (n >= 1), e.g. of repeated timings; sorts v in place. */
double median_sorted(double *v, int n);
/* 1 when out is a terminal a person watches (not TERM=dumb, not under an MPI launcher). */
int progress_is_terminal(FILE *out);
void progress_start(Progress *p, FILE *out, int epoch, int epochs, long total, long log_every);
/* Redraw (terminal, at most ~10 times a second) or log (every log_every steps). */
void progress_update(Progress *p, long step_in_epoch, double loss, double lr, double img_per_s);
/* Finish the epoch's line and print a summary line. */
void progress_end(Progress *p, const char *summary);
/* "1h02m", "3m05s", "12s" */
void format_duration(double s, char *buf, int n);
