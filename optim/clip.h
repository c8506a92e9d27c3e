/* Gradient clipping over the trainable parameters (requires_grad) and the
 * gradient accumulation helper.
 *
 * Gradient accumulation over k micro-batches: zero the grads once, run k
 * forward/backward passes each with the loss divided by k (accum_backward
 * seeds d loss = 1/k instead of 1; grads add up on the tape), then clip and
 * step once, then zero. With mean losses this equals one batch k times larger. */
#pragma once
#include "core/params.h"
#include "core/tape.h"

/* Global L2 norm of all trainable grads (accumulated in double), returned
 * before clipping. When total > max_norm every grad is multiplied by exactly
 * max_norm / total (torch adds 1e-6 to total; we do not). Nothing changes when
 * total <= max_norm, max_norm <= 0, or total is not finite (NaN/Inf is returned
 * so the caller can skip the step). */
float clip_grad_norm(ParamList *p, float max_norm);
/* timm --clip-mode value: clamp every trainable grad element to [-clip, clip]. */
void clip_grad_value(ParamList *p, float clip);
/* Global L2 norm of the trainable grads without changing them. */
float grad_global_norm(const ParamList *p);
/* Multiply every trainable grad by s. */
void grads_scale(ParamList *p, float s);

/* mt_backward with the loss scaled by 1/k (k >= 1), for one of k micro-batches. */
int accum_backward(Ctx *c, Tensor *loss, int k);
