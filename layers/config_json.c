/* ModelConfig <-> a flat JSON object. Values are numbers, strings and arrays of
 * numbers or strings; one table of fields drives both directions. Reading starts
 * from the registered model's defaults (when "name" is known), so older files
 * without newer fields still load; unknown keys are an error. */
#include "layers/layers.h"
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_STR, F_INT, F_FLOAT, F_INTS, F_STRS } FieldType;
typedef struct Field { const char *key; FieldType type; size_t off, size; } Field;

#define FS(k, m) {k, F_STR, offsetof(ModelConfig, m), sizeof(((ModelConfig *)0)->m)}
#define FI(k, m) {k, F_INT, offsetof(ModelConfig, m), 0}
#define FF(k, m) {k, F_FLOAT, offsetof(ModelConfig, m), 0}
static const Field fields[] = {
    FS("name", name), FS("family", family), FI("num_classes", num_classes), FI("img_size", img_size),
    FI("in_chans", in_chans), FF("drop_rate", drop_rate), FF("drop_path_rate", drop_path_rate),
    FI("patch_size", patch_size), FI("embed_dim", embed_dim), FI("depth", depth),
    FF("mlp_ratio_tokens", mlp_ratio_tokens), FF("mlp_ratio", mlp_ratio), FI("num_stages", num_stages),
    {"depths", F_INTS, offsetof(ModelConfig, depths), 0}, {"dims", F_INTS, offsetof(ModelConfig, dims), 0},
    FI("pool_size", pool_size), {"token_mixer", F_STRS, offsetof(ModelConfig, token_mixer), 0},
    FS("norm", norm), FS("act", act), FI("layer_scale", layer_scale), FF("layer_scale_init", layer_scale_init),
    FI("heads", heads), FI("stem_kernel", stem_kernel), FI("stem_stride", stem_stride), FI("stem_pad", stem_pad),
    FS("mlp", mlp), FF("mlp_hidden_scale", mlp_hidden_scale), FI("mem_units", mem_units),
    {"rep_kernels", F_INTS, offsetof(ModelConfig, rep_kernels), 0}, FI("rep_reduction", rep_reduction),
    FI("rep_deploy", rep_deploy),
};
#define NFIELDS ((int)(sizeof fields / sizeof fields[0]))

/* ---- writer ---- */

typedef struct Out { char *buf; size_t n, k; } Out;
static void put(Out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Out *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(o->k < o->n ? o->buf + o->k : NULL, o->k < o->n ? o->n - o->k : 0, fmt, ap);
    va_end(ap);
    if (r > 0) o->k += (size_t)r;
}
static void put_str(Out *o, const char *s) {
    put(o, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') put(o, "\\%c", ch);
        else if (ch < 0x20) put(o, "\\u%04x", ch);
        else put(o, "%c", ch);
    }
    put(o, "\"");
}

int model_config_to_json(const ModelConfig *cfg, char *buf, size_t n) {
    Out o = {buf, n, 0};
    const char *base = (const char *)cfg;
    put(&o, "{");
    for (int i = 0; i < NFIELDS; i++) {
        const Field *f = &fields[i];
        put(&o, "%s\"%s\": ", i ? ", " : "", f->key);
        switch (f->type) {
        case F_STR: put_str(&o, base + f->off); break;
        case F_INT: put(&o, "%d", *(const int *)(base + f->off)); break;
        case F_FLOAT: put(&o, "%.9g", (double)*(const float *)(base + f->off)); break;
        case F_INTS:
            put(&o, "[");
            for (int s = 0; s < MT_MAX_STAGES; s++) put(&o, "%s%d", s ? ", " : "", ((const int *)(base + f->off))[s]);
            put(&o, "]");
            break;
        case F_STRS:
            put(&o, "[");
            for (int s = 0; s < MT_MAX_STAGES; s++) {
                if (s) put(&o, ", ");
                put_str(&o, cfg->token_mixer[s]);
            }
            put(&o, "]");
            break;
        }
    }
    put(&o, "}");
    if (o.k >= n) return -1; /* truncated */
    return (int)o.k;
}

/* ---- reader ---- */

typedef struct In { const char *p; char *err; size_t n; } In;

static void ws(In *in) { while (isspace((unsigned char)*in->p)) in->p++; }

static int jfail(In *in, const char *what) {
    char near[21];
    size_t k = 0;
    for (; k < 20 && in->p[k]; k++) near[k] = (unsigned char)in->p[k] < 0x20 || in->p[k] == 0x7f ? '?' : in->p[k];
    near[k] = 0;
    snprintf(in->err, in->n, "config JSON: %s at offset near '%s'", what, near);
    return -1;
}

/* A JSON string into out[cap] (escapes \" \\ \/ \n \t \uXXXX below 0x80). */
static int read_string(In *in, char *out, size_t cap) {
    ws(in);
    if (*in->p != '"') return jfail(in, "expected a string");
    in->p++;
    size_t k = 0;
    while (*in->p && *in->p != '"') {
        char ch = *in->p++;
        if (ch == '\\') {
            char e = *in->p++;
            if (e == 'n') ch = '\n';
            else if (e == 't') ch = '\t';
            else if (e == 'u') {
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    char h = *in->p++;
                    if (!isxdigit((unsigned char)h)) return jfail(in, "bad \\u escape");
                    v = v * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
                }
                if (v >= 0x80) return jfail(in, "non-ASCII \\u escape");
                if (v < 0x20) return jfail(in, "control character in a string");
                ch = (char)v;
            } else if (e == '"' || e == '\\' || e == '/') ch = e;
            else return jfail(in, "bad escape");
        } else if ((unsigned char)ch < 0x20) {
            return jfail(in, "control character in a string");
        }
        if (k + 1 >= cap) return jfail(in, "string too long");
        out[k++] = ch;
    }
    if (*in->p != '"') return jfail(in, "unterminated string");
    in->p++;
    out[k] = 0;
    return 0;
}

static int read_number(In *in, double *v) {
    ws(in);
    char *end;
    *v = strtod(in->p, &end);
    if (end == in->p || !isfinite(*v)) return jfail(in, "expected a number");
    in->p = end;
    return 0;
}

static int read_int(In *in, const char *key, int *out) {
    double v;
    if (read_number(in, &v)) return -1;
    if (v != floor(v) || fabs(v) > 2147483647.0) {
        snprintf(in->err, in->n, "config JSON: %s must be an integer, got %g", key, v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* '[' item (',' item)* ']' with at most MT_MAX_STAGES items; missing items are zeroed. */
static int read_array(In *in, const Field *f, char *base) {
    ws(in);
    if (*in->p != '[') return jfail(in, "expected an array");
    in->p++;
    int *ints = (int *)(base + f->off);
    ModelConfig *cfg = (ModelConfig *)base;
    if (f->type == F_INTS) memset(ints, 0, MT_MAX_STAGES * sizeof(int));
    else memset(cfg->token_mixer, 0, sizeof cfg->token_mixer);
    ws(in);
    if (*in->p == ']') { in->p++; return 0; }
    for (int k = 0;; k++) {
        if (k == MT_MAX_STAGES) return jfail(in, "array longer than the stage limit");
        if (f->type == F_INTS) {
            if (read_int(in, f->key, &ints[k])) return -1;
        } else if (read_string(in, cfg->token_mixer[k], sizeof cfg->token_mixer[k])) return -1;
        ws(in);
        if (*in->p == ',') { in->p++; continue; }
        if (*in->p == ']') { in->p++; return 0; }
        return jfail(in, "expected , or ] in array");
    }
}

int model_config_from_json(const char *json, ModelConfig *cfg, char *err, size_t n) {
    if (!json) return snprintf(err, n, "config JSON: NULL"), -1;
    /* Pass 1: find "name" to start from the registered defaults. */
    ModelConfig c;
    memset(&c, 0, sizeof c);
    const char *np = strstr(json, "\"name\"");
    if (np) {
        In in = {np + 6, err, n};
        ws(&in);
        char name[64];
        if (*in.p == ':') {
            in.p++;
            char tmp[8];
            if (read_string(&in, name, sizeof name) == 0) model_config_default(name, &c, tmp, sizeof tmp);
        }
    }
    In in = {json, err, n};
    ws(&in);
    if (*in.p != '{') return jfail(&in, "expected {");
    in.p++;
    ws(&in);
    if (*in.p == '}') in.p++;
    else
        for (;;) {
            char key[64];
            if (read_string(&in, key, sizeof key)) return -1;
            ws(&in);
            if (*in.p != ':') return jfail(&in, "expected :");
            in.p++;
            const Field *f = NULL;
            for (int i = 0; i < NFIELDS; i++)
                if (strcmp(fields[i].key, key) == 0) f = &fields[i];
            if (!f) return snprintf(err, n, "config JSON: unknown key '%s'", key), -1;
            char *base = (char *)&c;
            double v;
            switch (f->type) {
            case F_STR:
                if (read_string(&in, base + f->off, f->size)) return -1;
                break;
            case F_INT:
                if (read_int(&in, key, (int *)(base + f->off))) return -1;
                break;
            case F_FLOAT:
                if (read_number(&in, &v)) return -1;
                if (fabs(v) > FLT_MAX) return snprintf(err, n, "config JSON: %s %g does not fit a float", key, v), -1;
                *(float *)(base + f->off) = (float)v;
                break;
            case F_INTS:
            case F_STRS:
                if (read_array(&in, f, base)) return -1;
                break;
            }
            ws(&in);
            if (*in.p == ',') { in.p++; continue; }
            if (*in.p == '}') { in.p++; break; }
            return jfail(&in, "expected , or }");
        }
    ws(&in);
    if (*in.p) return jfail(&in, "trailing characters after the object");
    if (config_validate(&c, err, n)) return -1;
    *cfg = c;
    return 0;
}
