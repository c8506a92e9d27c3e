#include "data/source_util.h"
#include "train/safetensors.h"
#include "train/json_in.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The format is little-endian; tensors are read and written as the host's floats. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* The format's dtypes and their sizes (F8 variants are one byte). */
static const struct { const char *name; int size; } DTYPES[] = {
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
    {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8},
};

static uint64_t le64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

int st_probe(const char *path) {
    size_t L = strlen(path);
    if (L >= 12 && !strcmp(path + L - 12, ".safetensors")) return 1;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char b[9];
    size_t got = fread(b, 1, 9, f);
    fclose(f);
    if (got < 9 || !memcmp(b, "\x89HDF\r\n\x1a\n", 8)) return 0;
    return b[8] == '{' && le64(b) <= ST_MAX_HEADER;
}

void st_close(StFile *s) {
    if (s->f) fclose(s->f);
    for (int i = 0; i < s->n; i++) free(s->t[i].name);
    for (int i = 0; i < s->nmeta; i++) { free(s->meta[i].key); free(s->meta[i].value); }
    free(s->t);
    free(s->sorted);
    free(s->meta);
    memset(s, 0, sizeof *s);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(StTensor *const *)a)->name, (*(StTensor *const *)b)->name);
}
static int cmp_begin(const void *a, const void *b) {
    const StTensor *x = *(StTensor *const *)a, *y = *(StTensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

/* "__metadata__": {"k": "v", ...}; scratch holds at least the header's size. */
static int parse_meta(StFile *s, JsonIn *in, char *scratch, size_t cap, char *err, size_t errn) {
    if (s->meta) return src_seterr(err, errn, "%s: safetensors header: duplicate key '__metadata__'", s->path);
    if (json_expect(in, '{') < 0) goto bad;
    int cap_m = 0;
    if (json_accept(in, '}')) return 0;
    do {
        if (s->nmeta == cap_m) {
            cap_m = cap_m ? cap_m * 2 : 8;
            StMeta *nm = realloc(s->meta, (size_t)cap_m * sizeof *nm);
            if (!nm) return src_seterr(err, errn, "%s: out of memory", s->path);
            s->meta = nm;
        }
        StMeta *m = &s->meta[s->nmeta];
        m->key = m->value = NULL;
        if (json_string(in, scratch, cap, NULL) < 0) goto bad;
        if (!(m->key = strdup(scratch))) return src_seterr(err, errn, "%s: out of memory", s->path);
        s->nmeta++;
        if (json_expect(in, ':') < 0) goto bad;
        if (json_peek(in) != '"')
            return src_seterr(err, errn, "%s: safetensors header: __metadata__ '%s' is not a string (the format allows strings only)",
                        s->path, m->key);
        if (json_string(in, scratch, cap, NULL) < 0) goto bad;
        if (!(m->value = strdup(scratch))) return src_seterr(err, errn, "%s: out of memory", s->path);
        for (int i = 0; i + 1 < s->nmeta; i++)
            if (!strcmp(s->meta[i].key, m->key))
                return src_seterr(err, errn, "%s: safetensors header: duplicate __metadata__ key '%s'", s->path, m->key);
    } while (json_accept(in, ','));
    if (json_expect(in, '}') < 0) goto bad;
    return 0;
bad:
    return src_seterr(err, errn, "%s: safetensors header: __metadata__: %s", s->path, in->err);
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]} for tensor t (name set). */
static int parse_tensor(StFile *s, JsonIn *in, StTensor *t, char *err, size_t errn) {
    int have_d = 0, have_s = 0, have_o = 0;
    char key[32];
    if (json_expect(in, '{') < 0) goto bad;
    if (!json_accept(in, '}')) do {
        if (json_string(in, key, sizeof key, NULL) < 0 || json_expect(in, ':') < 0) goto bad;
        if (!strcmp(key, "dtype")) {
            char d[16];
            if (have_d++) return src_seterr(err, errn, "%s: tensor '%s': duplicate 'dtype'", s->path, t->name);
            if (json_string(in, d, sizeof d, NULL) < 0)
                return src_seterr(err, errn, "%s: tensor '%s': bad dtype: %s", s->path, t->name, in->err);
            for (size_t i = 0; i < sizeof DTYPES / sizeof *DTYPES; i++)
                if (!strcmp(d, DTYPES[i].name)) { memcpy(t->dtype, d, strlen(d) + 1); t->esize = DTYPES[i].size; }
            if (!t->esize) return src_seterr(err, errn, "%s: tensor '%s': unknown dtype '%s'", s->path, t->name, d);
        } else if (!strcmp(key, "shape")) {
            if (have_s++) return src_seterr(err, errn, "%s: tensor '%s': duplicate 'shape'", s->path, t->name);
            if (json_expect(in, '[') < 0) goto bad;
            t->numel = 1;
            int ovf = 0;
            if (!json_accept(in, ']')) {
                do {
                    uint64_t v;
                    if (t->ndim == ST_MAX_RANK)
                        return src_seterr(err, errn, "%s: tensor '%s': rank above %d", s->path, t->name, ST_MAX_RANK);
                    if (json_uint(in, (uint64_t)1 << 53, &v) < 0) goto bad;
                    t->shape[t->ndim++] = (int64_t)v;
                    if (__builtin_mul_overflow(t->numel, v, &t->numel)) ovf = 1;
                } while (json_accept(in, ','));
                if (json_expect(in, ']') < 0) goto bad;
            }
            if (ovf || t->numel > ((uint64_t)1 << 62))
                return src_seterr(err, errn, "%s: tensor '%s': shape's element count overflows", s->path, t->name);
        } else if (!strcmp(key, "data_offsets")) {
            if (have_o++) return src_seterr(err, errn, "%s: tensor '%s': duplicate 'data_offsets'", s->path, t->name);
            if (json_expect(in, '[') < 0 || json_uint(in, UINT64_MAX, &t->begin) < 0 || json_expect(in, ',') < 0 ||
                json_uint(in, UINT64_MAX, &t->end) < 0 || json_expect(in, ']') < 0)
                return src_seterr(err, errn, "%s: tensor '%s': data_offsets must be [begin, end]: %s", s->path, t->name, in->err);
        } else {
            return src_seterr(err, errn, "%s: tensor '%s': unknown field '%s'", s->path, t->name, key);
        }
    } while (json_accept(in, ','));
    if (json_expect(in, '}') < 0) goto bad;
    if (!have_d || !have_s || !have_o)
        return src_seterr(err, errn, "%s: tensor '%s': missing '%s'", s->path, t->name,
                    !have_d ? "dtype" : !have_s ? "shape" : "data_offsets");
    uint64_t bytes;
    if (__builtin_mul_overflow(t->numel, (uint64_t)t->esize, &bytes))
        return src_seterr(err, errn, "%s: tensor '%s': size overflows", s->path, t->name);
    if (t->begin > t->end)
        return src_seterr(err, errn, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin", s->path, t->name,
                    (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > s->data_size)
        return src_seterr(err, errn, "%s: tensor '%s': data_offsets [%llu, %llu] beyond the data section (%llu bytes)",
                    s->path, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                    (unsigned long long)s->data_size);
    if (t->end - t->begin != bytes)
        return src_seterr(err, errn, "%s: tensor '%s': %llu bytes in data_offsets but %s x %llu elements need %llu", s->path,
                    t->name, (unsigned long long)(t->end - t->begin), t->dtype, (unsigned long long)t->numel,
                    (unsigned long long)bytes);
    return 0;
bad:
    return src_seterr(err, errn, "%s: tensor '%s': %s", s->path, t->name, in->err);
}

static int parse_header(StFile *s, const char *hdr, size_t n, char *err, size_t errn) {
    JsonIn in;
    json_in_init(&in, hdr, n);
    if (n == 0 || hdr[0] != '{') return src_seterr(err, errn, "%s: safetensors header does not start with '{'", s->path);
    if (!json_utf8_valid(hdr, n)) return src_seterr(err, errn, "%s: safetensors header is not valid UTF-8", s->path);
    char *scratch = malloc(n + 1);
    if (!scratch) return src_seterr(err, errn, "%s: out of memory", s->path);
    int cap = 0, rc = -1;
    json_expect(&in, '{');
    if (!json_accept(&in, '}')) do {
        if (json_string(&in, scratch, n + 1, NULL) < 0) { src_seterr(err, errn, "%s: safetensors header: %s", s->path, in.err); goto out; }
        if (json_expect(&in, ':') < 0) { src_seterr(err, errn, "%s: safetensors header: key '%s': %s", s->path, scratch, in.err); goto out; }
        if (!strcmp(scratch, "__metadata__")) {
            if (parse_meta(s, &in, scratch, n + 1, err, errn) < 0) goto out;
            if (!s->meta) s->meta = calloc(1, sizeof *s->meta); /* present, empty */
            continue;
        }
        if (strlen(scratch) >= ST_MAX_NAME) { src_seterr(err, errn, "%s: tensor name of %zu bytes (at most %d)", s->path, strlen(scratch), ST_MAX_NAME - 1); goto out; }
        if (s->n == cap) {
            cap = cap ? cap * 2 : 64;
            StTensor *nt = realloc(s->t, (size_t)cap * sizeof *nt);
            if (!nt) { src_seterr(err, errn, "%s: out of memory", s->path); goto out; }
            s->t = nt;
        }
        StTensor *t = &s->t[s->n];
        memset(t, 0, sizeof *t);
        if (!(t->name = strdup(scratch))) { src_seterr(err, errn, "%s: out of memory", s->path); goto out; }
        s->n++;
        if (parse_tensor(s, &in, t, err, errn) < 0) goto out;
    } while (json_accept(&in, ','));
    if (json_expect(&in, '}') < 0 || json_end(&in) < 0) { src_seterr(err, errn, "%s: safetensors header: %s", s->path, in.err); goto out; }
    rc = 0;
out:
    free(scratch);
    return rc;
}

/* Unique keys; ranges disjoint and covering the data section. */
static int check_layout(StFile *s, char *err, size_t errn) {
    s->sorted = malloc((size_t)(s->n ? s->n : 1) * sizeof *s->sorted);
    StTensor **by = malloc((size_t)(s->n ? s->n : 1) * sizeof *by);
    int rc = -1;
    if (!s->sorted || !by) { src_seterr(err, errn, "%s: out of memory", s->path); goto out; }
    for (int i = 0; i < s->n; i++) s->sorted[i] = by[i] = &s->t[i];
    qsort(s->sorted, (size_t)s->n, sizeof *s->sorted, cmp_name);
    for (int i = 1; i < s->n; i++)
        if (!strcmp(s->sorted[i]->name, s->sorted[i - 1]->name)) { src_seterr(err, errn, "%s: duplicate tensor key '%s'", s->path, s->sorted[i]->name); goto out; }
    qsort(by, (size_t)s->n, sizeof *by, cmp_begin);
    uint64_t pos = 0;
    for (int i = 0; i < s->n; i++) {
        if (by[i]->begin < pos) {
            src_seterr(err, errn, "%s: tensor '%s' [%llu, %llu] overlaps tensor '%s' (ends at %llu)", s->path, by[i]->name,
                 (unsigned long long)by[i]->begin, (unsigned long long)by[i]->end, by[i - 1]->name, (unsigned long long)pos);
            goto out;
        }
        if (by[i]->begin > pos) {
            src_seterr(err, errn, "%s: bytes [%llu, %llu) of the data section belong to no tensor (before '%s')", s->path,
                 (unsigned long long)pos, (unsigned long long)by[i]->begin, by[i]->name);
            goto out;
        }
        pos = by[i]->end;
    }
    if (pos != s->data_size) {
        src_seterr(err, errn, "%s: the data section has %llu bytes but the tensors cover %llu", s->path,
             (unsigned long long)s->data_size, (unsigned long long)pos);
        goto out;
    }
    rc = 0;
out:
    free(by);
    return rc;
}

int st_open(const char *path, StFile *s, char *err, size_t errn) {
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    struct stat st;
    if (stat(path, &st) < 0) return src_seterr(err, errn, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return src_seterr(err, errn, "%s: not a regular file", path);
    if (!(s->f = fopen(path, "rb"))) return src_seterr(err, errn, "%s: %s", path, strerror(errno));
    uint64_t size = (uint64_t)st.st_size;
    unsigned char b[8];
    char *hdr = NULL;
    if (size < 8 || fread(b, 1, 8, s->f) != 8) { src_seterr(err, errn, "%s: shorter than a safetensors header (8 bytes)", path); goto bad; }
    uint64_t n = le64(b);
    if (n > ST_MAX_HEADER) { src_seterr(err, errn, "%s: safetensors header length %llu exceeds 100 MB", path, (unsigned long long)n); goto bad; }
    if (n > size - 8) {
        src_seterr(err, errn, "%s: safetensors header length %llu beyond the file's %llu bytes", path, (unsigned long long)n,
             (unsigned long long)size);
        goto bad;
    }
    if (!(hdr = malloc(n ? n : 1))) { src_seterr(err, errn, "%s: out of memory for a %llu-byte header", path, (unsigned long long)n); goto bad; }
    if (fread(hdr, 1, n, s->f) != n) { src_seterr(err, errn, "%s: cannot read the header: %s", path, ferror(s->f) ? strerror(errno) : "file shrank"); goto bad; }
    s->data_start = 8 + n;
    s->data_size = size - 8 - n;
    if (parse_header(s, hdr, n, err, errn) < 0 || check_layout(s, err, errn) < 0) goto bad;
    free(hdr);
    return 0;
bad:
    free(hdr);
    st_close(s);
    return -1;
}

const StTensor *st_find(const StFile *s, const char *name) {
    StTensor key = {.name = (char *)name}, *kp = &key;
    StTensor **r = s->n ? bsearch(&kp, s->sorted, (size_t)s->n, sizeof *s->sorted, cmp_name) : NULL;
    return r ? *r : NULL;
}

const char *st_meta(const StFile *s, const char *key) {
    for (int i = 0; i < s->nmeta; i++)
        if (s->meta[i].key && !strcmp(s->meta[i].key, key)) return s->meta[i].value;
    return NULL;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF, bits;
    if (e == 0) {
        if (!m) bits = sign;
        else { /* subnormal: normalise */
            e = 127 - 15 + 1;
            while (!(m & 0x400)) { m <<= 1; e--; }
            bits = sign | (e << 23) | ((m & 0x3FF) << 13);
        }
    } else if (e == 31) bits = sign | 0x7F800000u | (m << 13);
    else bits = sign | ((e + 127 - 15) << 23) | (m << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int st_read_f32(StFile *s, const StTensor *t, float *dst, char *err, size_t errn) {
    int kind = !strcmp(t->dtype, "F32") ? 0 : !strcmp(t->dtype, "F16") ? 1 : !strcmp(t->dtype, "BF16") ? 2
             : !strcmp(t->dtype, "F64") ? 3 : -1;
    if (kind < 0) return src_seterr(err, errn, "%s: tensor '%s': dtype %s is not a float type (F32, F16, BF16, F64)", s->path, t->name, t->dtype);
    if (fseeko(s->f, (off_t)(s->data_start + t->begin), SEEK_SET) < 0)
        return src_seterr(err, errn, "%s: tensor '%s': seek: %s", s->path, t->name, strerror(errno));
    if (kind == 0) {
        if (fread(dst, 4, t->numel, s->f) != t->numel) goto short_read;
        return 0;
    }
    unsigned char buf[8192];
    size_t per = sizeof buf / (size_t)t->esize;
    for (uint64_t i = 0; i < t->numel;) {
        size_t k = t->numel - i < per ? (size_t)(t->numel - i) : per;
        if (fread(buf, (size_t)t->esize, k, s->f) != k) goto short_read;
        for (size_t j = 0; j < k; j++) {
            if (kind == 1) dst[i + j] = half_to_float((uint16_t)(buf[2 * j] | buf[2 * j + 1] << 8));
            else if (kind == 2) {
                uint32_t bits = (uint32_t)(buf[2 * j] | buf[2 * j + 1] << 8) << 16;
                memcpy(&dst[i + j], &bits, 4);
            } else {
                double d;
                memcpy(&d, buf + 8 * j, 8);
                dst[i + j] = (float)d;
            }
        }
        i += k;
    }
    return 0;
short_read:
    return src_seterr(err, errn, "%s: tensor '%s': file ended inside its data", s->path, t->name);
}

static void shape_str(int nd, const int64_t *d, char *b, size_t n) {
    size_t k = (size_t)snprintf(b, n, "(");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(b + k, n - k, "%s%lld", i ? "," : "", (long long)d[i]);
    if (k < n) snprintf(b + k, n - k, ")");
}

static int same_shape(const StTensor *st, const Tensor *t) {
    if (st->ndim != t->ndim) return 0;
    for (int i = 0; i < t->ndim; i++)
        if (st->shape[i] != t->shape[i]) return 0;
    return 1;
}

int st_load_params(const char *path, ParamList *p, char *err, size_t errn) {
    StFile s;
    if (st_open(path, &s, err, errn) < 0) return -1;
    int rc = -1;
    for (int i = 0; i < s.n; i++)
        if (!mt_param_find(p, s.t[i].name)) { src_seterr(err, errn, "%s: tensor '%s' is not a parameter of the model", path, s.t[i].name); goto out; }
    for (int i = 0; i < p->n; i++) {
        Tensor *t = p->t[i];
        const StTensor *x = st_find(&s, t->name);
        if (!x) { src_seterr(err, errn, "%s: parameter '%s' is missing", path, t->name); goto out; }
        if (!same_shape(x, t)) {
            char a[200], b[200];
            int64_t d[MT_MAXDIM];
            for (int k = 0; k < t->ndim; k++) d[k] = t->shape[k];
            shape_str(x->ndim, x->shape, a, sizeof a);
            shape_str(t->ndim, d, b, sizeof b);
            src_seterr(err, errn, "%s: tensor '%s': file %s vs model %s", path, t->name, a, b);
            goto out;
        }
        if (st_read_f32(&s, x, t->data, err, errn) < 0) goto out;
    }
    rc = 0;
out:
    st_close(&s);
    return rc;
}

static int push(char ***v, int *n, const char *str) {
    char **nv = realloc(*v, (size_t)(*n + 1) * sizeof **v);
    if (!nv) return -1;
    *v = nv;
    if (!(nv[*n] = strdup(str))) return -1;
    (*n)++;
    return 0;
}

int st_load_matching(const char *path, ParamList *p, CkptMatch *m, char *err, size_t errn) {
    memset(m, 0, sizeof *m);
    StFile s;
    if (st_open(path, &s, err, errn) < 0) return -1;
    int rc = -1, oom = 0;
    float *scratch = NULL;
    for (int i = 0; i < s.n; i++)
        if (!mt_param_find(p, s.t[i].name)) oom |= push(&m->unexpected, &m->n_unexpected, s.t[i].name);
    for (int i = 0; i < p->n && !oom; i++) {
        Tensor *t = p->t[i];
        const StTensor *x = st_find(&s, t->name);
        if (!x) { oom |= push(&m->missing, &m->n_missing, t->name); continue; }
        if (!same_shape(x, t)) {
            char a[200], b[200], line[700];
            int64_t d[MT_MAXDIM];
            for (int k = 0; k < t->ndim; k++) d[k] = t->shape[k];
            shape_str(x->ndim, x->shape, a, sizeof a);
            shape_str(t->ndim, d, b, sizeof b);
            snprintf(line, sizeof line, "%s: checkpoint %s vs model %s", t->name, a, b);
            oom |= push(&m->skipped, &m->n_skipped, line);
            continue;
        }
        /* scratch first: a failed read never leaves a half-written parameter */
        free(scratch);
        if (!(scratch = malloc((t->numel ? t->numel : 1) * sizeof(float)))) { oom = 1; break; }
        if (st_read_f32(&s, x, scratch, err, errn) < 0) goto out;
        memcpy(t->data, scratch, t->numel * sizeof(float));
        oom |= push(&m->loaded, &m->n_loaded, t->name);
    }
    if (oom) { src_seterr(err, errn, "%s: out of memory", path); goto out; }
    rc = 0;
out:
    if (rc) ckpt_match_free(m);
    free(scratch);
    st_close(&s);
    return rc;
}

/* ---- writing ---- */

typedef struct Buf { char *b; size_t n, cap; int oom; } Buf;
static void bput(Buf *o, const char *s, size_t n) {
    if (o->oom) return;
    if (o->n + n + 1 > o->cap) {
        size_t c = o->cap ? o->cap : 4096;
        while (c < o->n + n + 1) c *= 2;
        char *nb = realloc(o->b, c);
        if (!nb) { o->oom = 1; return; }
        o->b = nb;
        o->cap = c;
    }
    memcpy(o->b + o->n, s, n);
    o->n += n;
    o->b[o->n] = 0;
}
static void bstr(Buf *o, const char *s) { bput(o, s, strlen(s)); }
static void bquote(Buf *o, const char *s) {
    size_t need = json_quote(s, NULL, 0);
    char *q = malloc(need + 1);
    if (!q) { o->oom = 1; return; }
    json_quote(s, q, need + 1);
    bput(o, q, need);
    free(q);
}

int st_write(const char *path, const StOut *t, int n, const StMeta *meta, int nmeta, char *err, size_t errn) {
    Buf h = {0};
    char num[64];
    uint64_t off = 0;
    bstr(&h, "{");
    if (nmeta) {
        bstr(&h, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i) bstr(&h, ",");
            bquote(&h, meta[i].key);
            bstr(&h, ":");
            bquote(&h, meta[i].value);
        }
        bstr(&h, "}");
    }
    for (int i = 0; i < n; i++) {
        uint64_t numel = 1;
        if (nmeta || i) bstr(&h, ",");
        bquote(&h, t[i].name);
        bstr(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int k = 0; k < t[i].ndim; k++) {
            snprintf(num, sizeof num, "%s%lld", k ? "," : "", (long long)t[i].shape[k]);
            bstr(&h, num);
            numel *= (uint64_t)t[i].shape[k];
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + 4 * numel));
        bstr(&h, num);
        off += 4 * numel;
    }
    bstr(&h, "}");
    while (!h.oom && (8 + h.n) % 8) bstr(&h, " ");
    if (h.oom) { free(h.b); return src_seterr(err, errn, "%s: out of memory building the header", path); }

    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) { free(h.b); return src_seterr(err, errn, "%s: cannot create %s: %s", path, tmp, strerror(errno)); }
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    int ok = fwrite(len, 1, 8, f) == 8 && fwrite(h.b, 1, h.n, f) == h.n;
    free(h.b);
    for (int i = 0; i < n && ok; i++) {
        size_t numel = 1;
        for (int k = 0; k < t[i].ndim; k++) numel *= (size_t)t[i].shape[k];
        ok = fwrite(t[i].data, sizeof(float), numel, f) == numel;
    }
    int e = errno;
    if (ok && fflush(f) != 0) { ok = 0; e = errno; }
    if (ok && fsync(fileno(f)) != 0) { ok = 0; e = errno; }
    if (fclose(f) != 0 && ok) { ok = 0; e = errno; }
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        unlink(tmp);
        return src_seterr(err, errn, "%s: writing: %s", path, strerror(e));
    }
    /* the rename itself durable */
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    char *sl = strrchr(dir, '/');
    if (sl) *(sl == dir ? sl + 1 : sl) = 0;
    else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
    return 0;
}
