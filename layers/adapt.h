/* Adapting pretrained weights to a model built for another input, as timm does when it
 * loads a checkpoint into a model of another in_chans or img_size:
 *   - the stem conv's input channels: timm's adapt_input_conv (timm/models/_manipulate.py)
 *   - ViT's absolute position embedding: timm's resample_abs_pos_embed
 *     (timm/layers/pos_embed.py), which resizes the token grid with
 *     torch.nn.functional.interpolate(mode='bicubic', align_corners=False, antialias=True)
 *     (timm's default antialias).
 * Plain float arrays with explicit shapes; the caller decides which tensors these apply to
 * (model_stem_weight / model_pos_embed name them for a built model). */
#pragma once
#include "layers/model.h"

/* Conv weight w (O, I, kh, kw) trained on I input channels -> out (O, in_chans, kh, kw):
 *   in_chans 1, I <= 3: sum over the I input channels;
 *   in_chans != 1 and != 3, I == 3: the 3 channels repeated ceil(in_chans / 3) times, the
 *   first in_chans kept, scaled by 3 / in_chans.
 * (timm's space-to-depth case, I > 3 -> I / 3 channels, has no stem here.)
 * Any other pair (I == in_chans included) is not adapted: returns -1 (timm raises or leaves
 * the weight to fail its shape check), else 0. *how (may be NULL) names the rule. */
int adapt_input_conv(const float *w, int O, int I, int kh, int kw, int in_chans, float *out, const char **how);

/* torch.nn.functional.interpolate(x, size=(oh, ow), mode='bicubic', align_corners=False,
 * antialias=True) of C planes x (C, H, W) into y (C, oh, ow), the resize timm's
 * resample_abs_pos_embed uses by default. torch's antialiased kernel is PIL's: cubic
 * a = -0.5 (plain bicubic uses -0.75), stretched by in / out when shrinking (a low-pass),
 * taps inside the image only with weights normalised to 1 (plain bicubic clamps the edge),
 * so it differs from plain bicubic when enlarging too. Separable: width pass, then height.
 * 0 ok, -1 out of memory. */
int resize_bicubic_aa(const float *x, int C, int H, int W, float *y, int oh, int ow);

/* pe (1, prefix + gh * gw, D) -> out (1, prefix + nh * nw, D): the prefix (class / distillation)
 * tokens kept, the (gh, gw) grid of D-vectors resized to (nh, nw) by resize_bicubic_aa.
 * 0 ok, -1 out of memory. */
int resample_abs_pos_embed(const float *pe, int prefix, int gh, int gw, int D, float *out, int nh, int nw);

/* The stem (first) conv weight of a built model, (embed, in_chans, k, k); NULL when none. */
const Tensor *model_stem_weight(const Model *m);
/* ViT's pos_embed (1, prefix + grid^2, D) and its prefix token count; NULL when the model has none. */
const Tensor *model_pos_embed(const Model *m, int *prefix_tokens);
