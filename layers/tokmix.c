/* The token-mixer table: one line per mixer (its file defines the MixerDef). */
#include "layers/layers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const MixerDef mixer_mlp, mixer_linear, mixer_pool, mixer_identity, mixer_random, mixer_attention,
    mixer_external, mixer_repmlp, mixer_sgu;

static const MixerDef *const table[] = {
    &mixer_mlp,       /* MLP-Mixer's token MLP */
    &mixer_linear,    /* ResMLP's linear over tokens */
    &mixer_pool,      /* PoolFormer's pool(x) - x */
    &mixer_identity,  /* MetaFormer ablation: no token mixing */
    &mixer_random,    /* RandFormer: a frozen random mixing matrix */
    &mixer_attention, /* multi-head self-attention */
    &mixer_external,  /* External Attention (two memories) */
    &mixer_repmlp,    /* RepMLP: fc3 + re-parameterisable convs, gated */
    &mixer_sgu,       /* gMLP's spatial gating unit (inside the channel MLP) */
};
#define NMIX ((int)(sizeof table / sizeof table[0]))

int mixer_count(void) { return NMIX; }
const MixerDef *mixer_at(int i) { return i >= 0 && i < NMIX ? table[i] : NULL; }

const MixerDef *mixer_find(const char *name) {
    for (int i = 0; name && i < NMIX; i++)
        if (!strcmp(table[i]->name, name)) return table[i];
    return NULL;
}

const char *mixer_list(int with_gmlp) {
    static char buf[2][256];
    char *b = buf[with_gmlp != 0];
    if (!b[0]) {
        size_t k = 0;
        for (int i = 0; i < NMIX; i++)
            if (with_gmlp || !table[i]->gmlp_only)
                k += (size_t)snprintf(b + k, sizeof buf[0] - k, "%s%s", k ? ", " : "", table[i]->name);
    }
    return b;
}

int mixer_register(Model *m, TokenMixer *tm, const MixerDef *def, const char *prefix, int h, int w, int C,
                   const FamilyInit *fi, char *err, size_t n) {
    memset(tm, 0, sizeof *tm);
    tm->def = def;
    return def->reg ? def->reg(m, tm, prefix, h, w, C, fi, err, n) : 0;
}

const char *mixer_module(const MixerDef *def, const char *family) {
    const char *s = !strcmp(family, "vit") ? def->vit_module : def->iso_module;
    return s ? s : "token_mixer";
}

void *mixer_state(TokenMixer *tm, size_t size, char *err, size_t n) {
    tm->state = calloc(1, size);
    if (!tm->state) snprintf(err, n, "out of memory (token mixer %s)", tm->def->name);
    return tm->state;
}
