#include "train/metrics.h"
#include <math.h>
#include <string.h>

int metrics_open(MetricsLog *m, const char *dir, int append) {
    memset(m, 0, sizeof *m);
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    m->f = fopen(path, append ? "a" : "w");
    return m->f ? 0 : -1;
}

static void put(MetricsLog *m, const char *fmt, const char *key, const char *val) {
    if (m->len >= (int)sizeof m->line - 1) return;
    int k = snprintf(m->line + m->len, sizeof m->line - (size_t)m->len, fmt, m->len > 1 ? ", " : "", key, val);
    if (k > 0) m->len += k;
    if (m->len > (int)sizeof m->line - 1) m->len = (int)sizeof m->line - 1;
}

void metrics_begin(MetricsLog *m) { m->len = snprintf(m->line, sizeof m->line, "{"); }

void metrics_int(MetricsLog *m, const char *key, long v) {
    char b[32];
    snprintf(b, sizeof b, "%ld", v);
    put(m, "%s\"%s\": %s", key, b);
}

void metrics_num(MetricsLog *m, const char *key, double v) {
    char b[40];
    if (isfinite(v)) snprintf(b, sizeof b, "%.7g", v);
    else snprintf(b, sizeof b, "null");
    put(m, "%s\"%s\": %s", key, b);
}

void metrics_str(MetricsLog *m, const char *key, const char *v) {
    char b[512];
    size_t k = 0;
    for (const char *s = v; *s && k < sizeof b - 2; s++) { /* escape quotes and backslashes */
        if (*s == '"' || *s == '\\') b[k++] = '\\';
        b[k++] = (*s >= 0 && *s < 32) ? ' ' : *s;
    }
    b[k] = 0;
    put(m, "%s\"%s\": \"%s\"", key, b);
}

void metrics_end(MetricsLog *m) {
    if (!m->f) return;
    fprintf(m->f, "%s}\n", m->line);
    fflush(m->f);
}

void metrics_close(MetricsLog *m) {
    if (m->f) fclose(m->f);
    m->f = NULL;
}
