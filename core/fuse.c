/* The fusion rules (core/fuse.h): in which modes each fused kernel may run. EVAL-only kernels
 * keep nothing a backward could use (an epilogue that overwrites the pre-activation, a chain
 * that never stores the hidden layer, a pool pass folding the norm into scales), so with a
 * tape the entry point records its primitives or a node kernel instead. The node kernels
 * (TAPED) also run without a tape when called directly; they then just record nothing. */
#include "core/fuse.h"
#include <stdlib.h>
#include <string.h>

enum { EVAL = 1, TAPED = 2 };

static const struct {
    const char *name, *replaces;
    int modes;
} rules[MT_FUSE_COUNT] = {
    [MT_FUSE_LINEAR_EPILOGUE] = {"linear_epilogue", "linear + bias_act | linear + residual", EVAL},
    [MT_FUSE_TOKEN_EPILOGUE] = {"token_epilogue", "token_linear + activation | token_linear + residual", EVAL},
    [MT_FUSE_NORM_PROLOGUE] = {"norm_prologue", "layernorm | groupnorm1 + linear", EVAL | TAPED},
    [MT_FUSE_MLP_CHAIN] = {"mlp_chain", "norm + linear + bias_act + linear + residual", EVAL},
    [MT_FUSE_ACT_LINEAR_RESIDUAL] = {"act_linear_residual", "bias_act + linear + residual", EVAL | TAPED},
    [MT_FUSE_TOKEN_ACT_LINEAR_RESIDUAL] = {"token_act_linear_residual", "activation + token_linear + residual",
                                           EVAL | TAPED},
    [MT_FUSE_POOL_RESIDUAL] = {"pool_residual", "groupnorm1 | affine + avgpool2d - x + residual", EVAL},
    [MT_FUSE_NORM_POOL_RESIDUAL] = {"norm_pool_residual", "groupnorm1 | affine + avgpool2d - x + residual",
                                    EVAL | TAPED},
};

int mt_fuse_ok(const Ctx *c, MtFuse f, int taped) {
    if (!c->fuse || (int)f < 0 || f >= MT_FUSE_COUNT) return 0;
    return (rules[f].modes & (taped ? TAPED : EVAL)) != 0;
}

const char *mt_fuse_name(MtFuse f) { return (int)f >= 0 && f < MT_FUSE_COUNT ? rules[f].name : "unknown"; }
const char *mt_fuse_replaces(MtFuse f) { return (int)f >= 0 && f < MT_FUSE_COUNT ? rules[f].replaces : ""; }

int mt_fuse_default(void) {
    const char *s = getenv("MIXTAPE_FUSION");
    return !(s && !strcmp(s, "0"));
}
