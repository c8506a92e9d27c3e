/* Parameter groups as timm builds them, resolved per parameter.
 *
 * Weight decay (timm's param_groups_weight_decay): a parameter gets NO decay when
 *   - it is 1-D (ndim <= 1): biases, norm weights, layer scale gammas, or
 *   - its name ends in ".bias", or
 *   - it is a broadcast vector (1, ..., 1, C) whose name does not end in ".weight"
 *     (ResMLP's Affine alpha/beta are stored as (1, 1, C) to match timm's shapes;
 *     timm itself would decay these - this is the one deliberate difference), or
 *   - its name matches one of the no-wd patterns (timm's model.no_weight_decay()),
 * unless wd_all is set, in which case every trainable parameter is decayed.
 *
 * lr multipliers: "PATTERN=MULT,PATTERN=MULT,..."; the first matching pattern
 * gives the multiplier, no match gives 1. Fine-tuning with a 10x smaller body lr:
 * "head.*=1,*=0.1".
 *
 * Freezing: "PATTERN,PATTERN,..."; matching parameters get requires_grad = 0.
 *
 * Patterns are globs on the timm name where '*' matches any run of characters
 * (dots included) and everything else matches itself: "head.*", "stages.0.*",
 * "*.norm*". A pattern that matches no parameter is an error (catches typos). */
#pragma once
#include "core/params.h"
#include <stddef.h>

/* Glob match, '*' only. */
int pg_match(const char *pattern, const char *name);
/* Does this parameter belong to the no-decay group by shape / name (ignoring patterns)? */
int pg_is_no_decay_shape(const Tensor *t);

/* Per-parameter weight decay: wd[i] = weight_decay or 0 by the rules above.
 * no_wd may be NULL / "". 0, or -1 with err (pattern matching nothing). */
int pg_weight_decay(const ParamList *p, double weight_decay, int wd_all, const char *no_wd, double *wd, char *err,
                    size_t n);
/* Per-parameter lr multiplier from "PATTERN=MULT,...". spec may be NULL / "" (all 1).
 * -1 with err on a malformed rule, a negative/NaN multiplier or a pattern matching nothing. */
int pg_lr_mult(const ParamList *p, const char *spec, double *mult, char *err, size_t n);
/* Sets requires_grad = 0 on every parameter matching one of the patterns.
 * Returns the number frozen, or -1 with err (pattern matching nothing). */
int pg_freeze(ParamList *p, const char *patterns, char *err, size_t n);
