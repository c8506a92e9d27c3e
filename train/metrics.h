/* metrics.jsonl: one JSON object per line, appended and flushed as it is
 * written so a crash loses at most the line being written. */
#pragma once
#include <stdio.h>

typedef struct MetricsLog {
    FILE *f;
    char line[2048];
    int len;
} MetricsLog;

int metrics_open(MetricsLog *m, const char *dir, int append);  /* dir/metrics.jsonl */
void metrics_begin(MetricsLog *m);
void metrics_int(MetricsLog *m, const char *key, long v);
void metrics_num(MetricsLog *m, const char *key, double v);  /* NaN/Inf written as null */
void metrics_str(MetricsLog *m, const char *key, const char *v);
void metrics_end(MetricsLog *m);                             /* writes the line */
void metrics_close(MetricsLog *m);
