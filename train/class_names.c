#include "data/source_util.h"
#include "train/class_names.h"
#include "train/checkpoint.h"
#include "train/json_in.h"
#include "data/h5crash.h"
#include "data/h5guard.h"
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *name_problem(const char *s, size_t L) {
    if (L == 0) return "is empty";
    if (L > CLASS_NAME_MAX) return "is longer than 256 bytes";
    for (size_t i = 0; i < L; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return "has a control character";
    if (!json_utf8_valid(s, L)) return "is not valid UTF-8";
    return NULL;
}

char *class_names_to_json(const char *const *names, int n, char *err, size_t errn) {
    size_t cap = 3;
    for (int i = 0; i < n; i++) {
        const char *why = name_problem(names[i], strlen(names[i]));
        if (why) { src_seterr(err, errn, "class name %d ('%.40s') %s", i, names[i], why); return NULL; }
        cap += json_quote(names[i], NULL, 0) + 2;
    }
    char *out = malloc(cap);
    if (!out) { src_seterr(err, errn, "out of memory"); return NULL; }
    size_t k = 0;
    out[k++] = '[';
    for (int i = 0; i < n; i++) {
        if (i) out[k++] = ',';
        k += json_quote(names[i], out + k, cap - k);
    }
    out[k++] = ']';
    out[k] = 0;
    return out;
}

void class_names_free(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

int class_names_parse(const char *json, size_t len, int num_classes, const char *what, char ***out, char *err,
                      size_t errn) {
    *out = NULL;
    if (num_classes < 1) return src_seterr(err, errn, "%s: the model has no classes", what);
    char **v = calloc((size_t)num_classes, sizeof *v);
    char buf[CLASS_NAME_MAX + 1];
    int n = 0;
    JsonIn in;
    json_in_init(&in, json, len);
    if (!v) return src_seterr(err, errn, "%s: out of memory", what);
    if (json_expect(&in, '[') < 0) goto bad;
    if (!json_accept(&in, ']')) {
        do {
            size_t L;
            if (n == num_classes) { src_seterr(err, errn, "%s: more names than the model's %d classes", what, num_classes); goto out; }
            if (json_string(&in, buf, sizeof buf, &L) < 0) {
                src_seterr(err, errn, "%s: name %d: %s", what, n, in.err);
                goto out;
            }
            const char *why = name_problem(buf, L);
            if (why || strlen(buf) != L) { src_seterr(err, errn, "%s: name %d %s", what, n, why ? why : "has a NUL byte"); goto out; }
            if (!(v[n] = strdup(buf))) { src_seterr(err, errn, "%s: out of memory", what); goto out; }
            n++;
        } while (json_accept(&in, ','));
        if (json_expect(&in, ']') < 0) goto bad;
    }
    if (json_end(&in) < 0) goto bad;
    if (n != num_classes) { src_seterr(err, errn, "%s: %d names for the model's %d classes", what, n, num_classes); goto out; }
    *out = v;
    return 0;
bad:
    src_seterr(err, errn, "%s: not a JSON list of strings: %s", what, in.err);
out:
    class_names_free(v, num_classes);
    return -1;
}

int class_names_read(const char *path, int num_classes, char ***names, int *n, char *err, size_t errn) {
    *names = NULL;
    *n = 0;
    ckpt_hdf5_quiet();
    char what[1200];
    snprintf(what, sizeof what, "checkpoint %s: attribute class_names", path);
    char who[1100];
    snprintf(who, sizeof who, "checkpoint %s", path);
    hid_t f = h5g_open_file(path, who, err, errn); /* the shared guard, as every HDF5 reader */
    if (f < 0) return -1;
    int rc = -1;
    hid_t a = -1, t = -1, sp = -1, mt = -1;
    char *s = NULL;
    htri_t ex = H5Aexists(f, "class_names");
    if (ex < 0) { src_seterr(err, errn, "%s: cannot be looked up", what); goto out; }
    if (ex == 0) { rc = 0; goto out; }
    a = H5Aopen(f, "class_names", H5P_DEFAULT);
    t = a >= 0 ? H5Aget_type(a) : -1;
    sp = a >= 0 ? H5Aget_space(a) : -1;
    if (t < 0 || sp < 0 || H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
        src_seterr(err, errn, "%s is not a single string", what);
        goto out;
    }
    size_t len;
    if (H5Tis_variable_str(t) > 0) {
        mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        char *vs = NULL;
        h5crash_watch_begin(path, "attribute 'class_names'"); /* a damaged global heap can loop libhdf5 */
        herr_t r = H5Aread(a, mt, &vs);
        h5crash_watch_end();
        if (r < 0 || !vs) { src_seterr(err, errn, "%s cannot be read", what); goto out; }
        len = strnlen(vs, CLASS_NAMES_JSON_MAX + 1);
        if (len <= CLASS_NAMES_JSON_MAX) s = strdup(vs);
        H5free_memory(vs);
    } else {
        len = H5Tget_size(t);
        if (len <= CLASS_NAMES_JSON_MAX && (s = calloc(len + 1, 1))) {
            mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, len);
            H5Tset_strpad(mt, H5T_STR_NULLPAD);
            H5Tset_cset(mt, H5Tget_cset(t));
            if (H5Aread(a, mt, s) < 0) { src_seterr(err, errn, "%s cannot be read", what); goto out; }
            len = strnlen(s, len);
        }
    }
    if (len > CLASS_NAMES_JSON_MAX) { src_seterr(err, errn, "%s is longer than %zu bytes", what, CLASS_NAMES_JSON_MAX); goto out; }
    if (!s) { src_seterr(err, errn, "%s: out of memory", what); goto out; }
    if (class_names_parse(s, len, num_classes, what, names, err, errn) < 0) goto out;
    *n = num_classes;
    rc = 0;
out:
    free(s);
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    H5Fclose(f);
    return rc;
}
