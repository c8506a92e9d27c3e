/* metrics.jsonl: one JSON object per line, appended and flushed as it is
 * written so a crash loses at most the line being written. Every write,
 * flush, fsync and close is checked: the first failure is printed once with
 * the file's name and errno, and metrics_failed() / metrics_close() report it. */
#pragma once
#include <stdio.h>

typedef struct MetricsLog {
    FILE *f;
    char path[4200];
    char line[2048];
    int len;
    int failed;
} MetricsLog;

int metrics_open(MetricsLog *m, const char *dir, int append);  /* dir/metrics.jsonl; -1 with a message */
void metrics_begin(MetricsLog *m);
void metrics_int(MetricsLog *m, const char *key, long v);
void metrics_num(MetricsLog *m, const char *key, double v);  /* NaN/Inf written as null */
void metrics_str(MetricsLog *m, const char *key, const char *v);
int metrics_end(MetricsLog *m);                              /* writes the line; -1 on a write error */
int metrics_failed(const MetricsLog *m);                     /* a write failed since open */
int metrics_close(MetricsLog *m);                            /* fsync + close; -1 when anything failed */
