#include "train/json_in.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_in_init(JsonIn *in, const char *s, size_t n) {
    in->p = in->begin = s;
    in->end = s + n;
    in->err[0] = 0;
}

static int jfail(JsonIn *in, const char *what) {
    if (!in->err[0]) snprintf(in->err, sizeof in->err, "%s at byte %ld", what, (long)(in->p - in->begin));
    return -1;
}

int json_peek(JsonIn *in) {
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r')) in->p++;
    return in->p < in->end ? (unsigned char)*in->p : -1;
}

int json_expect(JsonIn *in, char c) {
    if (json_peek(in) != (unsigned char)c) {
        char m[40];
        snprintf(m, sizeof m, "expected '%c'", c);
        return jfail(in, m);
    }
    in->p++;
    return 0;
}

int json_accept(JsonIn *in, char c) {
    if (json_peek(in) != (unsigned char)c) return 0;
    in->p++;
    return 1;
}

/* Length of the UTF-8 sequence at s (<= n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t L;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { L = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { L = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { L = 4; cp = c & 0x07; }
    else return 0;
    if (n < L) return 0;
    for (size_t i = 1; i < L; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((L == 3 && cp < 0x800) || (L == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return L;
}

int json_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t L = utf8_len(u + i, n - i);
        if (!L) return 0;
        i += L;
    }
    return 1;
}

static int hex4(JsonIn *in, uint32_t *v) {
    if (in->end - in->p < 4) return jfail(in, "truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = in->p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return jfail(in, "bad \\u escape");
        *v = *v * 16 + (uint32_t)d;
    }
    in->p += 4;
    return 0;
}

static int put(JsonIn *in, char *out, size_t cap, size_t *k, const char *b, size_t n) {
    if (*k + n >= cap) return jfail(in, "string too long");
    memcpy(out + *k, b, n);
    *k += n;
    return 0;
}

int json_string(JsonIn *in, char *out, size_t cap, size_t *len) {
    if (json_expect(in, '"') < 0) return -1;
    size_t k = 0;
    for (;;) {
        if (in->p >= in->end) return jfail(in, "unterminated string");
        unsigned char c = (unsigned char)*in->p;
        if (c == '"') { in->p++; break; }
        if (c < 0x20) return jfail(in, "control character in string");
        if (c != '\\') {
            size_t L = utf8_len((const unsigned char *)in->p, (size_t)(in->end - in->p));
            if (!L) return jfail(in, "invalid UTF-8 in string");
            if (put(in, out, cap, &k, in->p, L) < 0) return -1;
            in->p += L;
            continue;
        }
        in->p++;
        if (in->p >= in->end) return jfail(in, "unterminated escape");
        char e = *in->p++, ch;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (hex4(in, &cp) < 0) return -1;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return jfail(in, "lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (in->end - in->p < 2 || in->p[0] != '\\' || in->p[1] != 'u') return jfail(in, "lone high surrogate");
                in->p += 2;
                if (hex4(in, &lo) < 0) return -1;
                if (lo < 0xDC00 || lo > 0xDFFF) return jfail(in, "bad surrogate pair");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) return jfail(in, "\\u0000 in string");
            char b[4];
            size_t n;
            if (cp < 0x80) { b[0] = (char)cp; n = 1; }
            else if (cp < 0x800) { b[0] = (char)(0xC0 | (cp >> 6)); b[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
            else if (cp < 0x10000) {
                b[0] = (char)(0xE0 | (cp >> 12)); b[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); b[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
            } else {
                b[0] = (char)(0xF0 | (cp >> 18)); b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
                b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
            }
            if (put(in, out, cap, &k, b, n) < 0) return -1;
            continue;
        }
        default: in->p--; return jfail(in, "bad escape");
        }
        if (put(in, out, cap, &k, &ch, 1) < 0) return -1;
    }
    if (cap) out[k] = 0;
    if (len) *len = k;
    return 0;
}

int json_uint(JsonIn *in, uint64_t max, uint64_t *v) {
    int c = json_peek(in);
    if (c < '0' || c > '9') return jfail(in, "expected a non-negative integer");
    if (c == '0' && in->end - in->p > 1 && in->p[1] >= '0' && in->p[1] <= '9') return jfail(in, "leading zero");
    uint64_t x = 0;
    while (in->p < in->end && *in->p >= '0' && *in->p <= '9') {
        unsigned d = (unsigned)(*in->p - '0');
        if (x > (max - d) / 10) return jfail(in, "integer too large");
        x = x * 10 + d;
        in->p++;
    }
    if (in->p < in->end && (*in->p == '.' || *in->p == 'e' || *in->p == 'E')) return jfail(in, "expected an integer");
    *v = x;
    return 0;
}

int json_end(JsonIn *in) {
    if (json_peek(in) != -1) return jfail(in, "trailing bytes after the JSON value");
    return 0;
}

size_t json_quote(const char *s, char *out, size_t cap) {
    size_t k = 0;
#define PUTC(ch) do { if (k + 1 < cap) out[k] = (ch); k++; } while (0)
    PUTC('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { PUTC('\\'); PUTC((char)c); }
        else if (c < 0x20) {
            char b[8];
            snprintf(b, sizeof b, "\\u%04x", c);
            for (int i = 0; b[i]; i++) PUTC(b[i]);
        } else PUTC((char)c);
    }
    PUTC('"');
#undef PUTC
    if (cap) out[k < cap ? k : cap - 1] = 0;
    return k;
}

int json_number(JsonIn *in, double *v) {
    json_peek(in);
    const char *s = in->p, *e = in->end;
    const char *q = s;
    if (q < e && *q == '-') q++;
    if (q >= e || *q < '0' || *q > '9') return jfail(in, "expected a number");
    if (*q == '0') q++;
    else while (q < e && *q >= '0' && *q <= '9') q++;
    if (q < e && *q == '.') {
        q++;
        if (q >= e || *q < '0' || *q > '9') return jfail(in, "bad number");
        while (q < e && *q >= '0' && *q <= '9') q++;
    }
    if (q < e && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < e && (*q == '+' || *q == '-')) q++;
        if (q >= e || *q < '0' || *q > '9') return jfail(in, "bad number");
        while (q < e && *q >= '0' && *q <= '9') q++;
    }
    char buf[72];
    if (q - s > 64) return jfail(in, "number too long");
    memcpy(buf, s, (size_t)(q - s));
    buf[q - s] = 0;
    double x = strtod(buf, NULL);
    if (!isfinite(x)) return jfail(in, "number out of range");
    in->p = q;
    *v = x;
    return 0;
}

int json_skip(JsonIn *in, int depth) {
    int c = json_peek(in);
    if (c == '"') {
        char tmp[256];
        /* short strings fully checked by json_string; longer ones for control bytes and UTF-8 */
        const char *q = in->p + 1;
        while (q < in->end && *q != '"') q += (*q == '\\' && q + 1 < in->end) ? 2 : 1;
        if (q >= in->end) return jfail(in, "unterminated string");
        if (q - in->p < (long)sizeof tmp - 1) return json_string(in, tmp, sizeof tmp, NULL);
        for (const char *r = in->p + 1; r < q; r++)
            if ((unsigned char)*r < 0x20) return jfail(in, "control character in string");
        if (!json_utf8_valid(in->p + 1, (size_t)(q - in->p - 1))) return jfail(in, "invalid UTF-8 in string");
        in->p = q + 1;
        return 0;
    }
    if (c == '{' || c == '[') {
        if (depth <= 0) return jfail(in, "nested too deeply");
        char close = c == '{' ? '}' : ']';
        in->p++;
        if (json_accept(in, close)) return 0;
        do {
            if (c == '{') {
                if (json_peek(in) != '"') return jfail(in, "expected a key");
                if (json_skip(in, 0) < 0) return -1;
                if (json_expect(in, ':') < 0) return -1;
            }
            if (json_skip(in, depth - 1) < 0) return -1;
        } while (json_accept(in, ','));
        return json_expect(in, close);
    }
    if (c == 't' || c == 'f' || c == 'n') {
        const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t L = strlen(w);
        if ((size_t)(in->end - in->p) < L || memcmp(in->p, w, L)) return jfail(in, "bad literal");
        in->p += L;
        return 0;
    }
    double x;
    return json_number(in, &x);
}
