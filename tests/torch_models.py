"""Reference PyTorch definitions of mixtape's families (MLP-Mixer, ResMLP,
PoolFormer, gMLP, ViT/DeiT, RepMLP) with the same ablation switches (token mixers
incl. External Attention and RepMLP, GLU channel MLPs), written from the papers and timm's
naming, so that state_dict keys and shapes equal mixtape's checkpoint /model.

build(cfg) takes the config dict mixtape stores in a checkpoint's `config`
attribute (layers/config_json.c) and returns an nn.Module. The isotropic models
run on tokens (B, N, C) as timm's MlpMixer; PoolFormer runs NCHW as timm's
MetaFormer (tokens (B, N, C) in attention stages), so the layouts differ from
mixtape's channels-last kernels and the comparison is not circular.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def act_fn(name):
    return {
        "gelu": lambda x: F.gelu(x),
        "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
        "relu": F.relu,
        "silu": F.silu,
    }[name]


# ---- norms; cl = channels-last (..., C), cf = channels-first (B, C, H, W) ----

class Affine(nn.Module):  # ResMLP's Aff
    def __init__(self, dim, cf=False):
        super().__init__()
        self.cf = cf
        self.alpha = nn.Parameter(torch.ones(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x):
        if self.cf:
            return x * self.alpha.view(-1, 1, 1) + self.beta.view(-1, 1, 1)
        return self.alpha * x + self.beta


class LayerNormAny(nn.Module):
    def __init__(self, dim, eps, cf=False):
        super().__init__()
        self.cf, self.eps = cf, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        if not self.cf:
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        v = ((x - u) ** 2).mean(1, keepdim=True)
        return (x - u) / torch.sqrt(v + self.eps) * self.weight.view(-1, 1, 1) + self.bias.view(-1, 1, 1)


class GroupNorm1(nn.Module):
    """GroupNorm with one group: statistics over every element of a sample."""
    def __init__(self, dim, eps, cf=False):
        super().__init__()
        self.cf, self.eps = cf, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        if self.cf:
            return F.group_norm(x, 1, self.weight, self.bias, self.eps)
        dims = tuple(range(1, x.dim()))
        u = x.mean(dims, keepdim=True)
        v = ((x - u) ** 2).mean(dims, keepdim=True)
        return (x - u) / torch.sqrt(v + self.eps) * self.weight + self.bias


class RMSNorm(nn.Module):
    def __init__(self, dim, eps, cf=False):
        super().__init__()
        self.cf, self.eps = cf, eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        d = 1 if self.cf else -1
        y = x * torch.rsqrt((x * x).mean(d, keepdim=True) + self.eps)
        return y * (self.weight.view(-1, 1, 1) if self.cf else self.weight)


def make_norm(kind, dim, cf=False):
    if kind == "layernorm":
        return LayerNormAny(dim, 1e-6, cf)
    if kind == "groupnorm":
        return GroupNorm1(dim, 1e-5, cf)
    if kind == "affine":
        return Affine(dim, cf)
    if kind == "rmsnorm":
        return RMSNorm(dim, 1e-6, cf)
    if kind == "none":
        return nn.Identity()
    raise ValueError(kind)


# ---- MLPs and token mixers ----

class Mlp(nn.Module):
    def __init__(self, dim, hidden, act, conv=False):
        super().__init__()
        L = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.fc1, self.fc2, self.act = L(dim, hidden), L(hidden, dim), act

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def mlp_hidden(cfg, dim):
    kind = cfg.get("mlp", "mlp")
    sc = cfg.get("mlp_hidden_scale", 0.0)
    if sc > 0 or kind == "mlp":
        return int(cfg["mlp_ratio"] * dim * (sc if sc > 0 else 1.0))
    return int(cfg["mlp_ratio"] * dim * 2.0 / 3.0 + 1e-6)  # auto: 2/3 of the plain width


GATES = {"glu": torch.sigmoid, "geglu": F.gelu, "swiglu": F.silu, "reglu": F.relu}


class GluMlp(nn.Module):
    """timm GluMlp (gate_last): fc1 -> chunk [value | gate] -> value * act(gate) -> fc2."""
    def __init__(self, dim, h, gate, conv=False):
        super().__init__()
        L = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.fc1, self.fc2, self.gate, self.cdim = L(dim, 2 * h), L(h, dim), gate, 1 if conv else -1

    def forward(self, x):
        a, g = self.fc1(x).chunk(2, dim=self.cdim)
        return self.fc2(a * self.gate(g))


def chan_mlp(cfg, dim, act, conv=False):
    kind = cfg.get("mlp", "mlp")
    h = mlp_hidden(cfg, dim)
    if kind == "mlp":
        return Mlp(dim, h, act, conv)
    return GluMlp(dim, h, GATES[kind], conv)


class ExternalAttention(nn.Module):
    """Guo et al. 2021 on (B, N, C): mv(l1norm_S(softmax_N(mk(x))))."""
    def __init__(self, dim, S):
        super().__init__()
        self.mk = nn.Linear(dim, S, bias=False)
        self.mv = nn.Linear(S, dim, bias=False)

    def forward(self, x):
        a = torch.softmax(self.mk(x), dim=1)
        a = a / (1e-9 + a.sum(dim=2, keepdim=True))
        return self.mv(a)


class RepMLPMixer(nn.Module):
    """mixtape's RepMLP variant on NCHW: (fc3 + shared convs) * sigmoid(global perceptron)."""
    def __init__(self, dim, h, cfg, deploy=None):
        super().__init__()
        N = h * h
        hid = max(dim // cfg["rep_reduction"], 1)
        self.gp = nn.Module()
        self.gp.fc1, self.gp.fc2 = nn.Linear(dim, hid), nn.Linear(hid, dim)
        self.fc3 = nn.Linear(N, N)
        deploy = cfg["rep_deploy"] if deploy is None else deploy
        self.ks = [] if deploy else [k for k in cfg["rep_kernels"] if k]
        for k in self.ks:
            setattr(self, f"repconv{k}", nn.Conv2d(1, 1, k, padding=k // 2))

    def forward(self, x):
        B, C, H, W = x.shape
        g = torch.sigmoid(self.gp.fc2(F.relu(self.gp.fc1(x.mean((2, 3))))))
        y = self.fc3(x.reshape(B, C, H * W)).reshape(B, C, H, W)
        for k in self.ks:
            y = y + getattr(self, f"repconv{k}")(x.reshape(B * C, 1, H, W)).reshape(B, C, H, W)
        return y * g[:, :, None, None]


class Attention(nn.Module):
    """Multi-head self-attention on (B, N, C): qkv without bias (ViT: with), proj with bias."""
    def __init__(self, dim, heads_knob, qkv_bias=False):
        super().__init__()
        if heads_knob > 0:
            self.heads, attn = heads_knob, dim
        else:
            self.heads = max(dim // 32, 1)
            attn = self.heads * 32
        self.hd = attn // self.heads
        self.qkv = nn.Linear(dim, 3 * attn, bias=qkv_bias)
        self.proj = nn.Linear(attn, dim)

    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * self.hd ** -0.5).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, N, -1))


class RandomMixing(nn.Module):
    def __init__(self, N):
        super().__init__()
        self.random_matrix = nn.Parameter(torch.softmax(torch.rand(N, N), -1), requires_grad=False)

    def forward(self, x):  # (B, N, C)
        return torch.einsum("mn,bnc->bmc", self.random_matrix, x)


def pool_tokens(x, k):  # x (B, C, H, W): PoolFormer's pool(x) - x
    return F.avg_pool2d(x, k, 1, k // 2, count_include_pad=False) - x


# ---- isotropic: MLP-Mixer / ResMLP ----

class IsoBlock(nn.Module):
    def __init__(self, cfg, dim, g, act):
        super().__init__()
        N = g * g
        self.g, self.act, self.pool = g, act, cfg["pool_size"]
        self.kind = cfg["token_mixer"][0]
        if cfg["layer_scale"]:
            self.ls1 = nn.Parameter(cfg["layer_scale_init"] * torch.ones(dim))
            self.ls2 = nn.Parameter(cfg["layer_scale_init"] * torch.ones(dim))
        else:
            self.ls1 = self.ls2 = None
        self.norm1 = make_norm(cfg["norm"], dim)
        if self.kind == "mlp":
            self.mlp_tokens = Mlp(N, int(cfg["mlp_ratio_tokens"] * dim), act)
        elif self.kind == "linear":
            self.linear_tokens = nn.Linear(N, N)
        elif self.kind == "random":
            self.token_mixer = RandomMixing(N)
        elif self.kind == "attention":
            self.token_mixer = Attention(dim, cfg["heads"])
        elif self.kind == "external":
            self.token_mixer = ExternalAttention(dim, cfg["mem_units"])
        elif self.kind == "repmlp":
            self.token_mixer = RepMLPMixer(dim, g, cfg)
        self.norm2 = make_norm(cfg["norm"], dim)
        self.mlp_channels = chan_mlp(cfg, dim, act)

    def mix(self, y):
        if self.kind == "mlp":
            return self.mlp_tokens(y.transpose(1, 2)).transpose(1, 2)
        if self.kind == "linear":
            return self.linear_tokens(y.transpose(1, 2)).transpose(1, 2)
        if self.kind in ("random", "attention", "external"):
            return self.token_mixer(y)
        if self.kind == "identity":
            return y
        if self.kind in ("pool", "repmlp"):
            B, N, C = y.shape
            grid = y.transpose(1, 2).reshape(B, C, self.g, self.g)
            out = pool_tokens(grid, self.pool) if self.kind == "pool" else self.token_mixer(grid)
            return out.reshape(B, C, N).transpose(1, 2)
        raise ValueError(self.kind)

    def forward(self, x):
        y = self.mix(self.norm1(x))
        x = x + (self.ls1 * y if self.ls1 is not None else y)
        y = self.mlp_channels(self.norm2(x))
        return x + (self.ls2 * y if self.ls2 is not None else y)


class PatchEmbed(nn.Module):
    def __init__(self, cin, dim, p):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, p, p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Isotropic(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, P = cfg["embed_dim"], cfg["patch_size"]
        g = cfg["img_size"] // P
        act = act_fn(cfg["act"])
        self.stem = PatchEmbed(cfg["in_chans"], D, P)
        self.blocks = nn.Sequential(*[IsoBlock(cfg, D, g, act) for _ in range(cfg["depth"])])
        self.norm = make_norm(cfg["norm"], D)
        self.head = nn.Linear(D, cfg["num_classes"])

    def forward(self, x):
        x = self.norm(self.blocks(self.stem(x)))
        return self.head(x.mean(1))


# ---- hierarchical: PoolFormer / MetaFormer ----

class Scale(nn.Module):
    def __init__(self, dim, v):
        super().__init__()
        self.scale = nn.Parameter(v * torch.ones(dim))


class TokenMixer2d(nn.Module):
    """mlp / linear token mixers on NCHW: they act on the flattened H*W axis."""
    def __init__(self, kind, N, dim, cfg, act):
        super().__init__()
        self.kind = kind
        if kind == "mlp":
            self.fc1 = nn.Linear(N, int(cfg["mlp_ratio_tokens"] * dim))
            self.fc2 = nn.Linear(int(cfg["mlp_ratio_tokens"] * dim), N)
            self.act = act
        else:
            self.weight = nn.Parameter(torch.zeros(N, N))
            self.bias = nn.Parameter(torch.zeros(N))

    def forward(self, x):
        B, C, H, W = x.shape
        t = x.reshape(B, C, H * W)
        if self.kind == "mlp":
            t = self.fc2(self.act(self.fc1(t)))
        else:
            t = F.linear(t, self.weight, self.bias)
        return t.reshape(B, C, H, W)


class MetaBlock(nn.Module):
    def __init__(self, cfg, kind, dim, h, act):
        super().__init__()
        self.kind, self.pool = kind, cfg["pool_size"]
        self.tokens = kind == "attention"  # timm runs attention stages on (B, N, C)
        cf = not self.tokens
        self.norm1 = make_norm(cfg["norm"], dim, cf)
        N = h * h
        if kind in ("mlp", "linear"):
            self.token_mixer = TokenMixer2d(kind, N, dim, cfg, act)
        elif kind == "random":
            self.token_mixer = RandomMixing(N)
        elif kind == "attention":
            self.token_mixer = Attention(dim, cfg["heads"])
        elif kind == "external":
            self.token_mixer = ExternalAttention(dim, cfg["mem_units"])
        elif kind == "repmlp":
            self.token_mixer = RepMLPMixer(dim, h, cfg)
        ls = cfg["layer_scale"]
        if ls:
            self.layer_scale1 = Scale(dim, cfg["layer_scale_init"])
        self.norm2 = make_norm(cfg["norm"], dim, cf)
        self.mlp = chan_mlp(cfg, dim, act, conv=cf)
        if ls:
            self.layer_scale2 = Scale(dim, cfg["layer_scale_init"])
        self.ls = ls

    def scale(self, y, which):
        if not self.ls:
            return y
        s = getattr(self, which).scale
        return y * (s if self.tokens else s.view(-1, 1, 1))

    def mix(self, y):
        if self.kind == "pool":
            return pool_tokens(y, self.pool)
        if self.kind == "identity":
            return y
        if self.kind in ("random", "external"):
            B, C, H, W = y.shape
            t = self.token_mixer(y.reshape(B, C, H * W).transpose(1, 2))
            return t.transpose(1, 2).reshape(B, C, H, W)
        return self.token_mixer(y)

    def forward(self, x):
        x = x + self.scale(self.mix(self.norm1(x)), "layer_scale1")
        return x + self.scale(self.mlp(self.norm2(x)), "layer_scale2")


class Downsample(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 2, 1)


class Stage(nn.Module):
    def __init__(self, cfg, s, cin, h, act):
        super().__init__()
        dim = cfg["dims"][s]
        self.downsample = Downsample(cin, dim) if cin != dim else None
        if self.downsample is not None:
            h = (h + 2 - 3) // 2 + 1
        self.h = h
        self.tokens = cfg["token_mixer"][s] == "attention"
        self.blocks = nn.Sequential(*[MetaBlock(cfg, cfg["token_mixer"][s], dim, h, act)
                                      for _ in range(cfg["depths"][s])])

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample.conv(x)
        if not self.tokens:
            return self.blocks(x)
        B, C, H, W = x.shape
        t = self.blocks(x.reshape(B, C, H * W).transpose(1, 2))
        return t.transpose(1, 2).reshape(B, C, H, W)


class Head(nn.Module):
    def __init__(self, dim, classes):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc = nn.Linear(dim, classes)


class PoolFormer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        act = act_fn(cfg["act"])
        k, s, p = cfg["stem_kernel"], cfg["stem_stride"], cfg["stem_pad"]
        self.stem = nn.Module()
        self.stem.conv = nn.Conv2d(cfg["in_chans"], cfg["dims"][0], k, s, p)
        h = (cfg["img_size"] + 2 * p - k) // s + 1
        stages, cin = [], cfg["dims"][0]
        for i in range(cfg["num_stages"]):
            st = Stage(cfg, i, cin, h, act)
            stages.append(st)
            h, cin = st.h, cfg["dims"][i]
        self.stages = nn.Sequential(*stages)
        self.head = Head(cin, cfg["num_classes"])

    def forward(self, x):
        x = self.stages(self.stem.conv(x))
        return self.head.fc(self.head.norm(x.mean((2, 3))))


# ---- gMLP ----

class SpatialGatingUnit(nn.Module):
    def __init__(self, width, N):
        super().__init__()
        self.norm = nn.LayerNorm(width // 2)  # eps 1e-5, as timm
        self.proj = nn.Linear(N, N)

    def forward(self, x):  # (B, N, width)
        u, v = x.chunk(2, dim=-1)
        v = self.proj(self.norm(v).transpose(1, 2)).transpose(1, 2)
        return u * v


class GatedMlp(nn.Module):
    def __init__(self, cfg, dim, N, act):
        super().__init__()
        kind = cfg.get("mlp", "mlp")
        w = mlp_hidden(cfg, dim)
        self.glu = GATES.get(kind)
        self.fc1 = nn.Linear(dim, w if self.glu is None else 2 * w)
        self.act = act
        self.gate = SpatialGatingUnit(w, N)
        self.fc2 = nn.Linear(w // 2, dim)

    def forward(self, x):
        h = self.fc1(x)
        if self.glu is None:
            h = self.act(h)
        else:
            a, g = h.chunk(2, dim=-1)
            h = a * self.glu(g)
        return self.fc2(self.gate(h))


class GmlpBlock(nn.Module):
    def __init__(self, cfg, dim, N, act):
        super().__init__()
        self.norm = make_norm(cfg["norm"], dim)
        self.mlp_channels = GatedMlp(cfg, dim, N, act)

    def forward(self, x):
        return x + self.mlp_channels(self.norm(x))


class Gmlp(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, P = cfg["embed_dim"], cfg["patch_size"]
        N = (cfg["img_size"] // P) ** 2
        act = act_fn(cfg["act"])
        self.stem = PatchEmbed(cfg["in_chans"], D, P)
        self.blocks = nn.Sequential(*[GmlpBlock(cfg, D, N, act) for _ in range(cfg["depth"])])
        self.norm = make_norm(cfg["norm"], D)
        self.head = nn.Linear(D, cfg["num_classes"])

    def forward(self, x):
        return self.head(self.norm(self.blocks(self.stem(x))).mean(1))


# ---- ViT / DeiT ----

class Gamma(nn.Module):
    def __init__(self, dim, v):
        super().__init__()
        self.gamma = nn.Parameter(v * torch.ones(dim))


class VitBlock(nn.Module):
    def __init__(self, cfg, dim, T, act):
        super().__init__()
        self.kind = cfg["token_mixer"][0]
        self.norm1 = make_norm(cfg["norm"], dim)
        if self.kind == "attention":
            self.attn = Attention(dim, cfg["heads"], qkv_bias=True)
        elif self.kind == "mlp":
            self.token_mixer = Mlp(T, int(cfg["mlp_ratio_tokens"] * dim), act)
        elif self.kind == "linear":
            self.token_mixer = nn.Linear(T, T)
        elif self.kind == "random":
            self.token_mixer = RandomMixing(T)
        elif self.kind == "external":
            self.token_mixer = ExternalAttention(dim, cfg["mem_units"])
        ls = cfg["layer_scale"]
        if ls:
            self.ls1 = Gamma(dim, cfg["layer_scale_init"])
        self.norm2 = make_norm(cfg["norm"], dim)
        self.mlp = chan_mlp(cfg, dim, act)
        if ls:
            self.ls2 = Gamma(dim, cfg["layer_scale_init"])
        self.ls = ls

    def mix(self, y):
        if self.kind == "attention":
            return self.attn(y)
        if self.kind == "identity":
            return y
        if self.kind in ("mlp", "linear"):
            return self.token_mixer(y.transpose(1, 2)).transpose(1, 2)
        return self.token_mixer(y)

    def forward(self, x):
        y = self.mix(self.norm1(x))
        x = x + (self.ls1.gamma * y if self.ls else y)
        y = self.mlp(self.norm2(x))
        return x + (self.ls2.gamma * y if self.ls else y)


class ViT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, P = cfg["embed_dim"], cfg["patch_size"]
        T = (cfg["img_size"] // P) ** 2 + 1
        act = act_fn(cfg["act"])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, T, D))
        self.patch_embed = PatchEmbed(cfg["in_chans"], D, P)
        self.blocks = nn.Sequential(*[VitBlock(cfg, D, T, act) for _ in range(cfg["depth"])])
        self.norm = make_norm(cfg["norm"], D)
        self.head = nn.Linear(D, cfg["num_classes"])

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def build(cfg):
    if cfg["family"] == "gmlp":
        return Gmlp(cfg)
    if cfg["family"] == "vit":
        return ViT(cfg)
    if cfg["family"] in ("mixer", "resmlp", "repmlp"):
        return Isotropic(cfg)
    if cfg["family"] == "poolformer":
        return PoolFormer(cfg)
    raise ValueError(cfg["family"])
