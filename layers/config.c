/* Model config: overrides by command-line name, validation, the one-line description. */
#include "layers/layers.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const norm_names[] = {"layernorm", "groupnorm", "affine", "rmsnorm", "none"};
static const char *const mlp_names[] = {"mlp", "glu", "geglu", "swiglu", "reglu"};

static int lookup(const char *const *names, int count, const char *s) {
    for (int i = 0; s && i < count; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}
int parse_norm(const char *s) { return lookup(norm_names, 5, s); }
int parse_mlp(const char *s) { return lookup(mlp_names, 5, s); }
const char *norm_str(int k) { return k >= 0 && k < 5 ? norm_names[k] : "?"; }
int parse_act(const char *s) {
    if (!s) return -1;
    if (strcmp(s, "gelu") == 0) return MT_ACT_GELU;
    if (strcmp(s, "gelu_tanh") == 0) return MT_ACT_GELU_TANH;
    if (strcmp(s, "relu") == 0) return MT_ACT_RELU;
    if (strcmp(s, "silu") == 0 || strcmp(s, "swish") == 0) return MT_ACT_SILU;
    return -1;
}

static const ModelOverride overrides[] = {
    {"num-classes", 'i', 'a', 1, 1 << 20, NULL, "classifier outputs"},
    {"img-size", 'i', 'a', 1, 8192, NULL, "input side in pixels"},
    {"in-chans", 'i', 'a', 1, 1024, NULL, "input channels"},
    {"drop", 'f', 'a', 0, 0.999, NULL, "dropout rate"},
    {"drop-path", 'f', 'a', 0, 0.999, NULL, "stochastic depth rate"},
    {"patch-size", 'i', 'i', 1, 1024, NULL, "patch side (isotropic models)"},
    {"embed-dim", 'i', 'i', 1, 65536, NULL, "token width (isotropic models)"},
    {"depth", 'i', 'i', 1, 1024, NULL, "blocks (isotropic models)"},
    {"depths", 'l', 'h', 1, 1024, NULL, "blocks per stage, e.g. 2,2,6,2 (poolformer)"},
    {"dims", 'l', 'h', 1, 65536, NULL, "width per stage, e.g. 64,128,320,512 (poolformer)"},
    {"mlp-ratio", 'r', 'a', 1e-3, 1024, NULL, "channel MLP ratio, or tokens,channels (e.g. 0.5,4)"},
    {"mlp-ratio-tokens", 'f', 'a', 1e-3, 1024, NULL, "token MLP ratio"},
    {"pool-size", 'i', 'a', 1, 63, NULL, "pooling mixer window (odd)"},
    {"token-mixer", 'm', 'a', 1, 0, "mlp|linear|pool|identity|random|attention|external|repmlp|sgu",
     "token mixer, or one per stage (poolformer)"},
    {"norm", 'c', 'a', 1, 0, "layernorm|groupnorm|affine|rmsnorm|none", "normalisation"},
    {"act", 'c', 'a', 1, 0, "gelu|gelu_tanh|relu|silu|swish", "activation"},
    {"layer-scale", 'c', 'a', 1, 0, "on|off|true|false|1|0", "per-channel residual scale"},
    {"layer-scale-init", 'f', 'a', -1e6, 1e6, NULL, "layer scale initial value"},
    {"heads", 'i', 'a', 0, 4096, NULL, "attention heads (0: head_dim 32)"},
    {"stem-kernel", 'i', 'h', 1, 64, NULL, "conv stem kernel (poolformer)"},
    {"stem-stride", 'i', 'h', 1, 64, NULL, "conv stem stride (poolformer)"},
    {"stem-pad", 'i', 'h', 0, 64, NULL, "conv stem padding (poolformer)"},
    {"mlp", 'c', 'a', 1, 0, "mlp|glu|geglu|swiglu|reglu", "channel MLP kind"},
    {"mlp-hidden-scale", 'f', 'a', 0, 1024, NULL, "hidden width scale (0: auto)"},
    {"mem-units", 'i', 'a', 1, 1 << 16, NULL, "external-attention memory units"},
    {"rep-kernels", 'l', 'a', 1, 63, NULL, "RepMLP conv branch kernels (odd), e.g. 1,3"},
    {"rep-reduction", 'i', 'a', 1, 4096, NULL, "RepMLP channel reduction"},
    {"rep-deploy", 'c', 'a', 1, 0, "on|off|true|false|1|0", "RepMLP folded (deploy) form"},
    {NULL, 0, 0, 0, 0, NULL, NULL}};
#define NOVERRIDES (sizeof overrides / sizeof *overrides - 1)

static const char *override_keys[NOVERRIDES + 1];

const ModelOverride *model_overrides(void) { return overrides; }

const char *const *model_override_keys(void) {
    if (!override_keys[0])
        for (size_t i = 0; i < NOVERRIDES; i++) override_keys[i] = overrides[i].key;
    return override_keys;
}

static int is_hier(const ModelConfig *cfg) { return strcmp(cfg->family, "poolformer") == 0; }

/* One set of limits for every source of a config: the override flags parse with
 * them and config_validate (run on every config, also one stored in a checkpoint)
 * checks them, so a file can never describe a model the command line refuses. */
#define L_CLASSES 1, 1 << 20
#define L_IMG 1, 8192
#define L_CHANS 1, 1024
#define L_PATCH 1, 1024
#define L_DIM 1, 65536
#define L_DEPTH 1, 1024
#define L_RATIO 1e-3, 1024
#define L_POOL 1, 63
#define L_HEADS 0, 4096
#define L_HSCALE 0, 1024
#define L_MEM 1, 1 << 16
#define L_REPK 1, 63
#define L_REPR 1, 4096
#define L_STEM 1, 64
#define L_PAD 0, 64
#define L_RATE 0, 0.999
#define L_LSINIT -1e6, 1e6
#define MAX_WIDTH (1 << 24) /* widest hidden layer (int(ratio * dim * scale)) */

/* Strict integer / float parsing: the whole string, in range. */
static int parse_int(const char *v, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return -1;
    *out = (int)x;
    return 0;
}
static int parse_float(const char *v, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi) return -1;
    *out = (float)x;
    return 0;
}

/* Comma list of up to MT_MAX_STAGES items copied into items[][16]; returns the count or -1. */
static int split_list(const char *v, char items[MT_MAX_STAGES][16]) {
    int k = 0;
    const char *p = v;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (k == MT_MAX_STAGES || len == 0 || len >= 16) return -1;
        memset(items[k], 0, 16);
        memcpy(items[k], p, len);
        items[k][len] = 0;
        k++;
        if (!e) break;
        p = e + 1;
    }
    return k;
}

static int parse_int_list(const char *v, int lo, int hi, int out[MT_MAX_STAGES]) {
    char items[MT_MAX_STAGES][16];
    int k = split_list(v, items);
    if (k < 0) return -1;
    int tmp[MT_MAX_STAGES] = {0};
    for (int i = 0; i < k; i++)
        if (parse_int(items[i], lo, hi, &tmp[i]) != 0) return -1;
    memcpy(out, tmp, sizeof tmp);
    return k;
}

#define BAD(fmt, ...) (snprintf(err, n, "override %s=%s: " fmt, key, value, ##__VA_ARGS__), -1)

int model_config_set(ModelConfig *cfg, const char *key0, const char *value, char *err, size_t n) {
    char key[48];
    if (!key0 || !value) return snprintf(err, n, "override: missing key or value"), -1;
    while (*key0 == '-') key0++;
    snprintf(key, sizeof key, "%s", key0);
    for (char *p = key; *p; p++)
        if (*p == '_') *p = '-';
    int hier = is_hier(cfg);
    if (strcmp(key, "num-classes") == 0) {
        if (parse_int(value, L_CLASSES, &cfg->num_classes)) return BAD("need an integer >= 1");
    } else if (strcmp(key, "img-size") == 0) {
        if (parse_int(value, L_IMG, &cfg->img_size)) return BAD("need an integer in 1..8192");
    } else if (strcmp(key, "in-chans") == 0) {
        if (parse_int(value, L_CHANS, &cfg->in_chans)) return BAD("need an integer in 1..1024");
    } else if (strcmp(key, "drop") == 0) {
        if (parse_float(value, L_RATE, &cfg->drop_rate)) return BAD("need a rate in [0, 1)");
    } else if (strcmp(key, "drop-path") == 0) {
        if (parse_float(value, L_RATE, &cfg->drop_path_rate)) return BAD("need a rate in [0, 1)");
    } else if (strcmp(key, "patch-size") == 0) {
        if (hier) return BAD("poolformer has no patch size (use stem-kernel, stem-stride, stem-pad)");
        if (parse_int(value, L_PATCH, &cfg->patch_size)) return BAD("need an integer in 1..1024");
    } else if (strcmp(key, "embed-dim") == 0) {
        if (hier) return BAD("poolformer has per-stage dims (use dims=64,128,320,512)");
        if (parse_int(value, L_DIM, &cfg->embed_dim)) return BAD("need an integer in 1..65536");
    } else if (strcmp(key, "depth") == 0) {
        if (hier) return BAD("poolformer has per-stage depths (use depths=2,2,6,2)");
        if (parse_int(value, L_DEPTH, &cfg->depth)) return BAD("need an integer in 1..1024");
    } else if (strcmp(key, "depths") == 0) {
        if (!hier) return BAD("only hierarchical models (poolformer) have depths; use depth");
        int k = parse_int_list(value, L_DEPTH, cfg->depths);
        if (k < 0) return BAD("need 1..%d comma-separated integers >= 1", MT_MAX_STAGES);
        cfg->num_stages = k;
    } else if (strcmp(key, "dims") == 0) {
        if (!hier) return BAD("only hierarchical models (poolformer) have dims; use embed-dim");
        if (parse_int_list(value, L_DIM, cfg->dims) < 0)
            return BAD("need 1..%d comma-separated integers >= 1", MT_MAX_STAGES);
    } else if (strcmp(key, "mlp-ratio") == 0) {
        /* "4" (channel MLP) or "0.5,4" (token MLP, channel MLP) as timm's mlp_ratio tuple */
        char items[MT_MAX_STAGES][16];
        int k = split_list(value, items);
        float a, b;
        if (k == 1 && parse_float(items[0], L_RATIO, &b) == 0) cfg->mlp_ratio = b;
        else if (k == 2 && parse_float(items[0], L_RATIO, &a) == 0 && parse_float(items[1], L_RATIO, &b) == 0)
            cfg->mlp_ratio_tokens = a, cfg->mlp_ratio = b;
        else return BAD("need a ratio > 0 (channel MLP) or two, tokens,channels (e.g. 0.5,4)");
    } else if (strcmp(key, "mlp-ratio-tokens") == 0) {
        if (parse_float(value, L_RATIO, &cfg->mlp_ratio_tokens)) return BAD("need a ratio > 0");
    } else if (strcmp(key, "pool-size") == 0) {
        int k;
        if (parse_int(value, L_POOL, &k) || k % 2 == 0) return BAD("need an odd integer in 1..63");
        cfg->pool_size = k;
    } else if (strcmp(key, "token-mixer") == 0) {
        char items[MT_MAX_STAGES][16];
        int k = split_list(value, items);
        if (k < 0) return BAD("need one mixer or a comma list of up to %d (one per stage)", MT_MAX_STAGES);
        for (int i = 0; i < k; i++)
            if (!mixer_find(items[i]))
                return BAD("unknown token mixer '%s' (%s; sgu on gmlp)", items[i], mixer_list(0));
        if (!hier && k > 1) return BAD("isotropic models take one token mixer for all blocks");
        for (int s = 0; s < MT_MAX_STAGES; s++) {
            if (k == 1) memcpy(cfg->token_mixer[s], items[0], 16);
            else if (s < k) memcpy(cfg->token_mixer[s], items[s], 16);
            else cfg->token_mixer[s][0] = 0;
        }
    } else if (strcmp(key, "norm") == 0) {
        if (parse_norm(value) < 0) return BAD("unknown norm (layernorm, groupnorm, affine, rmsnorm, none)");
        snprintf(cfg->norm, sizeof cfg->norm, "%s", value);
    } else if (strcmp(key, "act") == 0) {
        if (parse_act(value) < 0) return BAD("unknown activation (gelu, gelu_tanh, relu, silu)");
        snprintf(cfg->act, sizeof cfg->act, "%s", strcmp(value, "swish") == 0 ? "silu" : value);
    } else if (strcmp(key, "layer-scale") == 0) {
        if (!strcmp(value, "on") || !strcmp(value, "1") || !strcmp(value, "true")) cfg->layer_scale = 1;
        else if (!strcmp(value, "off") || !strcmp(value, "0") || !strcmp(value, "false")) cfg->layer_scale = 0;
        else return BAD("need on or off");
    } else if (strcmp(key, "layer-scale-init") == 0) {
        if (parse_float(value, L_LSINIT, &cfg->layer_scale_init)) return BAD("need a number");
    } else if (strcmp(key, "heads") == 0) {
        if (parse_int(value, L_HEADS, &cfg->heads)) return BAD("need an integer >= 0 (0: head_dim 32)");
    } else if (strcmp(key, "mlp") == 0) {
        if (parse_mlp(value) < 0) return BAD("unknown channel MLP (mlp, glu, geglu, swiglu, reglu)");
        snprintf(cfg->mlp, sizeof cfg->mlp, "%s", value);
    } else if (strcmp(key, "mlp-hidden-scale") == 0) {
        if (parse_float(value, L_HSCALE, &cfg->mlp_hidden_scale)) return BAD("need a number >= 0 (0: auto)");
    } else if (strcmp(key, "mem-units") == 0) {
        if (parse_int(value, L_MEM, &cfg->mem_units)) return BAD("need an integer >= 1");
    } else if (strcmp(key, "rep-kernels") == 0) {
        int tmp[MT_MAX_STAGES] = {0};
        int k = parse_int_list(value, L_REPK, tmp);
        for (int i = 0; i < k; i++)
            if (tmp[i] % 2 == 0) k = -1;
        if (k < 0) return BAD("need 1..%d odd conv kernel sizes, e.g. 1,3", MT_MAX_STAGES);
        memcpy(cfg->rep_kernels, tmp, sizeof tmp);
    } else if (strcmp(key, "rep-reduction") == 0) {
        if (parse_int(value, L_REPR, &cfg->rep_reduction)) return BAD("need an integer >= 1");
    } else if (strcmp(key, "rep-deploy") == 0) {
        if (!strcmp(value, "on") || !strcmp(value, "1") || !strcmp(value, "true")) cfg->rep_deploy = 1;
        else if (!strcmp(value, "off") || !strcmp(value, "0") || !strcmp(value, "false")) cfg->rep_deploy = 0;
        else return BAD("need on or off");
    } else if (strcmp(key, "stem-kernel") == 0 || strcmp(key, "stem-stride") == 0 || strcmp(key, "stem-pad") == 0) {
        if (!hier) return BAD("only poolformer has a conv stem; isotropic models use patch-size");
        int *dst = key[5] == 'k' ? &cfg->stem_kernel : key[5] == 's' ? &cfg->stem_stride : &cfg->stem_pad;
        if (parse_int(value, key[5] == 'p' ? 0 : 1, 64, dst)) return BAD("need an integer in %d..64", key[5] == 'p' ? 0 : 1);
    } else {
        int k = snprintf(err, n, "unknown override '%s'; known:", key0);
        for (int i = 0; overrides[i].key && k > 0 && (size_t)k < n; i++)
            k += snprintf(err + k, n - (size_t)k, " %s", overrides[i].key);
        return -1;
    }
    return 0;
}

int conv_out(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

int mlp_hidden(const ModelConfig *cfg, int dim, int *gate) {
    int k = parse_mlp(cfg->mlp);
    if (gate) *gate = k <= 0 ? -1 : k == 1 ? MT_GATE_SIGMOID : k == 2 ? MT_GATE_GELU : k == 3 ? MT_GATE_SILU : MT_GATE_RELU;
    if (cfg->mlp_hidden_scale > 0 || k <= 0)
        return (int)((double)cfg->mlp_ratio * dim * (cfg->mlp_hidden_scale > 0 ? (double)cfg->mlp_hidden_scale : 1.0));
    /* auto 2/3 of the width: + 1e-6 so that 2/3 of a multiple of 3 is exact (1536 -> 1024) */
    return (int)((double)cfg->mlp_ratio * dim * 2.0 / 3.0 + 1e-6);
}

void attention_dims(const ModelConfig *cfg, int dim, int *heads, int *attn_dim) {
    if (cfg->heads > 0) {
        *heads = cfg->heads;
        *attn_dim = dim;
    } else { /* timm metaformer Attention: head_dim 32, num_heads = dim // 32 (at least 1) */
        *heads = dim / 32 > 0 ? dim / 32 : 1;
        *attn_dim = *heads * 32;
    }
}

#define VFAIL(...) (snprintf(err, n, "model %s: " __VA_ARGS__), -1)

/* v within [lo, hi] (NaN never is), else err names the field and the range. */
static int range(const char *nm, const char *key, double v, double lo, double hi, char *err, size_t n) {
    if (v >= lo && v <= hi) return 0;
    return VFAIL("%s %g is outside %g..%g", nm, key, v, lo, hi);
}

/* The limits of the override flags, field by field (a stored config gets no wider ones). */
static int check_limits(const ModelConfig *cfg, const char *nm, int hier, char *err, size_t n) {
#define R(key, v, ...) if (range(nm, key, (double)(v), __VA_ARGS__, err, n)) return -1
    R("num_classes", cfg->num_classes, L_CLASSES);
    R("img_size", cfg->img_size, L_IMG);
    R("in_chans", cfg->in_chans, L_CHANS);
    R("drop_rate", cfg->drop_rate, L_RATE);
    R("drop_path_rate", cfg->drop_path_rate, L_RATE);
    R("mlp_ratio", cfg->mlp_ratio, L_RATIO);
    R("mlp_ratio_tokens", cfg->mlp_ratio_tokens, L_RATIO);
    R("pool_size", cfg->pool_size, L_POOL);
    R("heads", cfg->heads, L_HEADS);
    R("mlp_hidden_scale", cfg->mlp_hidden_scale, L_HSCALE);
    R("mem_units", cfg->mem_units, L_MEM);
    R("rep_reduction", cfg->rep_reduction, L_REPR);
    R("layer_scale_init", cfg->layer_scale_init, L_LSINIT);
    R("layer_scale", cfg->layer_scale, 0, 1);
    R("rep_deploy", cfg->rep_deploy, 0, 1);
    for (int i = 0; i < MT_MAX_STAGES && cfg->rep_kernels[i]; i++) R("rep_kernels", cfg->rep_kernels[i], L_REPK);
    if (hier) {
        R("num_stages", cfg->num_stages, 1, MT_MAX_STAGES);
        for (int s = 0; s < cfg->num_stages; s++) {
            R("depths", cfg->depths[s], L_DEPTH);
            R("dims", cfg->dims[s], L_DIM);
        }
        R("stem_kernel", cfg->stem_kernel, L_STEM);
        R("stem_stride", cfg->stem_stride, L_STEM);
        R("stem_pad", cfg->stem_pad, L_PAD);
    } else {
        R("patch_size", cfg->patch_size, L_PATCH);
        R("embed_dim", cfg->embed_dim, L_DIM);
        R("depth", cfg->depth, L_DEPTH);
    }
    /* hidden widths are int(ratio * dim [* scale]): bounded before anything converts them to int */
    for (int s = 0; s < (hier ? cfg->num_stages : 1); s++) {
        double dim = hier ? cfg->dims[s] : cfg->embed_dim;
        double scale = cfg->mlp_hidden_scale > 0 ? cfg->mlp_hidden_scale : 1;
        R("mlp_ratio * dim (hidden width)", (double)cfg->mlp_ratio * dim * scale, 0, MAX_WIDTH);
        R("mlp_ratio_tokens * dim (token hidden width)", (double)cfg->mlp_ratio_tokens * dim, 0, MAX_WIDTH);
    }
#undef R
    return 0;
}

int config_validate(const ModelConfig *cfg, char *err, size_t n) {
    const char *nm = cfg->name[0] ? cfg->name : cfg->family;
    int hier = is_hier(cfg);
    const char *fam = cfg->family;
    int gmlp = !strcmp(fam, "gmlp"), vit = !strcmp(fam, "vit");
    if (!hier && strcmp(fam, "mixer") && strcmp(fam, "resmlp") && !gmlp && !vit && strcmp(fam, "repmlp"))
        return VFAIL("unknown family '%s' (mixer, resmlp, poolformer, gmlp, vit, repmlp)", nm, cfg->family);
    if (check_limits(cfg, nm, hier, err, n)) return -1;
    if (cfg->num_classes < 1 || cfg->img_size < 1 || cfg->in_chans < 1)
        return VFAIL("num_classes %d, img_size %d, in_chans %d must be >= 1", nm, cfg->num_classes, cfg->img_size,
                     cfg->in_chans);
    if (!(cfg->drop_rate >= 0 && cfg->drop_rate < 1) || !(cfg->drop_path_rate >= 0 && cfg->drop_path_rate < 1))
        return VFAIL("drop %g and drop-path %g must be in [0, 1)", nm, cfg->drop_rate, cfg->drop_path_rate);
    if (!(cfg->mlp_ratio > 0) || !(cfg->mlp_ratio_tokens > 0))
        return VFAIL("mlp ratios (%g, %g) must be > 0", nm, cfg->mlp_ratio_tokens, cfg->mlp_ratio);
    if (parse_norm(cfg->norm) < 0)
        return VFAIL("unknown norm '%s' (layernorm, groupnorm, affine, rmsnorm, none)", nm, cfg->norm);
    if (parse_act(cfg->act) < 0) return VFAIL("unknown act '%s' (gelu, gelu_tanh, relu, silu)", nm, cfg->act);
    if (cfg->pool_size < 1 || cfg->pool_size % 2 == 0) return VFAIL("pool_size %d must be odd", nm, cfg->pool_size);
    if (cfg->heads < 0) return VFAIL("heads %d must be >= 0", nm, cfg->heads);
    int nst = hier ? cfg->num_stages : 1;
    if (nst < 1 || nst > MT_MAX_STAGES) return VFAIL("num_stages %d outside 1..%d", nm, nst, MT_MAX_STAGES);
    for (int s = 0; s < nst; s++) {
        const MixerDef *mk = mixer_find(cfg->token_mixer[s]);
        if (!mk)
            return VFAIL("stage %d: unknown token mixer '%s' (%s)%s", nm, s, cfg->token_mixer[s], mixer_list(0),
                         hier ? "; give one mixer or one per stage" : "");
        if (mk->gmlp_only != gmlp)
            return VFAIL("token mixer '%s': gmlp blocks are spatial gating units ('sgu'), other families cannot use "
                         "'sgu'",
                         nm, cfg->token_mixer[s]);
        if (vit && mk->needs_grid)
            return VFAIL("token mixer '%s' needs an image grid; vit's tokens have a class token in front", nm,
                         cfg->token_mixer[s]);
        int dim = hier ? cfg->dims[s] : cfg->embed_dim;
        char e2[200];
        if (mk->validate && dim > 0 && mk->validate(cfg, dim, e2, sizeof e2))
            return hier ? VFAIL("stage %d: token mixer '%s': %s", nm, s, cfg->token_mixer[s], e2)
                        : VFAIL("token mixer '%s': %s", nm, cfg->token_mixer[s], e2);
    }
    if (parse_mlp(cfg->mlp) < 0) return VFAIL("unknown channel mlp '%s' (mlp, glu, geglu, swiglu, reglu)", nm, cfg->mlp);
    if (!(cfg->mlp_hidden_scale >= 0)) return VFAIL("mlp-hidden-scale %g must be >= 0", nm, cfg->mlp_hidden_scale);
    if (cfg->mem_units < 1) return VFAIL("mem-units %d must be >= 1", nm, cfg->mem_units);
    if (cfg->rep_reduction < 1) return VFAIL("rep-reduction %d must be >= 1", nm, cfg->rep_reduction);
    for (int i = 0; i < MT_MAX_STAGES && cfg->rep_kernels[i]; i++)
        if (cfg->rep_kernels[i] < 1 || cfg->rep_kernels[i] % 2 == 0)
            return VFAIL("rep-kernels: %d is not an odd kernel size", nm, cfg->rep_kernels[i]);
    if (gmlp && mlp_hidden(cfg, cfg->embed_dim, NULL) % 2)
        return VFAIL("gmlp: the gated width %d must be even (the spatial gating unit halves it)", nm,
                     mlp_hidden(cfg, cfg->embed_dim, NULL));
    if (!hier) {
        if (cfg->patch_size < 1 || cfg->embed_dim < 1 || cfg->depth < 1)
            return VFAIL("patch_size %d, embed_dim %d, depth %d must be >= 1", nm, cfg->patch_size, cfg->embed_dim,
                         cfg->depth);
        if (cfg->img_size % cfg->patch_size)
            return VFAIL("img-size %d is not divisible by patch-size %d", nm, cfg->img_size, cfg->patch_size);
        return 0;
    }
    for (int s = 0; s < MT_MAX_STAGES; s++) {
        if (s < nst && (cfg->depths[s] < 1 || cfg->dims[s] < 1))
            return VFAIL("stage %d: depth %d and dim %d must be >= 1 (depths and dims need %d entries each)", nm, s,
                         cfg->depths[s], cfg->dims[s], nst);
        if (s >= nst && cfg->dims[s] != 0)
            return VFAIL("dims has more entries than depths (%d stages)", nm, nst);
    }
    if (cfg->stem_kernel < 1 || cfg->stem_stride < 1 || cfg->stem_pad < 0)
        return VFAIL("stem kernel %d, stride %d, pad %d invalid", nm, cfg->stem_kernel, cfg->stem_stride,
                     cfg->stem_pad);
    int h = conv_out(cfg->img_size, cfg->stem_kernel, cfg->stem_stride, cfg->stem_pad);
    if (h < 1)
        return VFAIL("img-size %d is too small for the stem (kernel %d, stride %d, pad %d)", nm, cfg->img_size,
                     cfg->stem_kernel, cfg->stem_stride, cfg->stem_pad);
    return 0;
}

void model_config_describe(const ModelConfig *cfg, char *buf, size_t n) {
    int k = snprintf(buf, n, "model=%s family=%s num_classes=%d img_size=%d in_chans=%d", cfg->name, cfg->family,
                     cfg->num_classes, cfg->img_size, cfg->in_chans);
#define ADD(...) do { if (k >= 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, __VA_ARGS__); } while (0)
    if (is_hier(cfg)) {
        ADD(" depths=");
        for (int s = 0; s < cfg->num_stages; s++) ADD("%s%d", s ? "," : "", cfg->depths[s]);
        ADD(" dims=");
        for (int s = 0; s < cfg->num_stages; s++) ADD("%s%d", s ? "," : "", cfg->dims[s]);
        ADD(" stem=k%d/s%d/p%d", cfg->stem_kernel, cfg->stem_stride, cfg->stem_pad);
        ADD(" token_mixer=");
        for (int s = 0; s < cfg->num_stages; s++) ADD("%s%s", s ? "," : "", cfg->token_mixer[s]);
    } else {
        ADD(" patch_size=%d embed_dim=%d depth=%d token_mixer=%s", cfg->patch_size, cfg->embed_dim, cfg->depth,
            cfg->token_mixer[0]);
    }
    ADD(" mlp=%s", cfg->mlp);
    if (cfg->mlp_hidden_scale > 0) ADD(" mlp_hidden_scale=%g", cfg->mlp_hidden_scale);
    for (int s = 0; s < (is_hier(cfg) ? cfg->num_stages : 1); s++) {
        if (!strcmp(cfg->token_mixer[s], "external")) { ADD(" mem_units=%d", cfg->mem_units); break; }
    }
    for (int s = 0; s < (is_hier(cfg) ? cfg->num_stages : 1); s++) {
        if (!strcmp(cfg->token_mixer[s], "repmlp")) {
            ADD(" rep_kernels=");
            for (int i = 0; i < MT_MAX_STAGES && cfg->rep_kernels[i]; i++) ADD("%s%d", i ? "," : "", cfg->rep_kernels[i]);
            ADD(" rep_reduction=%d rep_deploy=%d", cfg->rep_reduction, cfg->rep_deploy);
            break;
        }
    }
    ADD(" mlp_ratio=%g mlp_ratio_tokens=%g pool_size=%d heads=%d norm=%s act=%s layer_scale=%s", cfg->mlp_ratio,
        cfg->mlp_ratio_tokens, cfg->pool_size, cfg->heads, cfg->norm, cfg->act, cfg->layer_scale ? "on" : "off");
    if (cfg->layer_scale) ADD(" layer_scale_init=%g", cfg->layer_scale_init);
    ADD(" drop=%g drop_path=%g", cfg->drop_rate, cfg->drop_path_rate);
#undef ADD
}
