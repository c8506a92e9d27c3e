/* The MetaFormer block on the tape:
 *   x = x + drop_path(ls1 * token_mixer(norm1(x)))
 *   x = x + drop_path(ls2 * mlp(norm2(x)))
 * Activations are channels-last (B, H, W, C). Without drop path the residual is handed to
 * the branch, whose last GEMM adds it; a mixer may take the whole first branch as one op
 * (MixerDef.norm_branch). */
#include "layers/layers.h"

/* x + gamma * drop_path(y): the residual join when drop path is drawn. */
static Tensor *join(Ctx *c, const Block *blk, Tensor *x, Tensor *y, Tensor *gamma) {
    return mt_residual(c, x, mt_drop_path(c, y, blk->drop_path), gamma);
}

/* Drop path sits between a branch and its residual; when it is off (inference, or rate 0)
 * the residual is handed to the branch, whose last GEMM adds it in its epilogue. */
Tensor *block_forward(Ctx *c, const Block *blk, Tensor *x, mt_act act) {
    int dp = c->training && blk->drop_path > 0;
    if (blk->gmlp) { /* timm SpatialGatingBlock: x + drop_path(mlp_channels(norm(x))) */
        mt_scope(c, "%s.norm+%s", blk->name, blk->mlp_name);
        if (!dp) return mlp_forward(c, &blk->mlp, &blk->norm1, x, act, x, NULL);
        return join(c, blk, x, mlp_forward(c, &blk->mlp, &blk->norm1, x, act, NULL, NULL), NULL);
    }
    Tensor *ls1 = vec_view(c, blk->ls1), *ls2 = vec_view(c, blk->ls2), *y, *fused = NULL;
    const MixerDef *mix = blk->mix.def;
    mt_scope(c, "%s.%s", blk->name, blk->mix_name);
    if (!dp && mix->norm_branch) fused = mix->norm_branch(c, &blk->mix, &blk->norm1, x, ls1);
    if (fused || c->failed) x = fused;
    else {
        mt_scope(c, "%s.norm1", blk->name);
        y = norm_forward(c, &blk->norm1, x);
        mt_scope(c, "%s.%s", blk->name, blk->mix_name);
        if (!dp) x = mix->forward(c, &blk->mix, y, act, x, ls1);
        else x = join(c, blk, x, mix->forward(c, &blk->mix, y, act, NULL, NULL), ls1);
    }
    mt_scope(c, "%s.norm2+%s", blk->name, blk->mlp_name);
    if (!dp) return mlp_forward(c, &blk->mlp, &blk->norm2, x, act, x, ls2);
    return join(c, blk, x, mlp_forward(c, &blk->mlp, &blk->norm2, x, act, NULL, NULL), ls2);
}
