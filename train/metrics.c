#include "train/metrics.h"
#include <errno.h>
#include <math.h>
#include <unistd.h>
#include <string.h>

static void failed(MetricsLog *m, const char *what, int e) {
    if (!m->failed) fprintf(stderr, "mixtape: cannot write %s: %s: %s\n", m->path, what, strerror(e));
    m->failed = 1;
}

int metrics_open(MetricsLog *m, const char *dir, int append) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s/metrics.jsonl", dir);
    m->f = fopen(m->path, append ? "a" : "w");
    if (!m->f) { failed(m, "open", errno); return -1; }
    return 0;
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

int metrics_end(MetricsLog *m) {
    if (!m->f) return -1;
    errno = 0;
    if (fprintf(m->f, "%s}\n", m->line) < 0) failed(m, "write", errno ? errno : EIO);
    else if (fflush(m->f) != 0) failed(m, "flush", errno ? errno : EIO);
    return m->failed ? -1 : 0;
}

int metrics_failed(const MetricsLog *m) { return m->failed; }

int metrics_close(MetricsLog *m) {
    if (m->f) {
        if (fflush(m->f) != 0) failed(m, "flush", errno);
        else if (fsync(fileno(m->f)) != 0 && errno != EINVAL && errno != EROFS) failed(m, "fsync", errno);
        if (fclose(m->f) != 0) failed(m, "close", errno);
    }
    m->f = NULL;
    return m->failed ? -1 : 0;
}
