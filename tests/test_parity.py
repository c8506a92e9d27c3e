"""Parity of mixtape's models with independent PyTorch definitions (torch_models.py).

For each case: `mixtape init` writes a checkpoint; the test perturbs every weight
(so zero-init heads and tiny layer scales do not hide anything) and writes them
back; torch loads the SAME weights (strict load_state_dict: keys and shapes must
match); then `mixtape predict` logits and `mixtape grads` loss and EVERY parameter
gradient of the mean cross-entropy are compared with torch in double precision.
Error of a tensor = max|mixtape - torch| / max|torch| (<= 1e-4).
"""
import json
import os
import tempfile

import harness

h5py, np, torch = harness.require("h5py", "numpy", "torch")
import torch.nn.functional as F  # noqa: E402
import torch_models  # noqa: E402

TOL = 1e-4
B = 6

CASES = [
    ("mixer_tiny", ["--depth", "2"]),
    ("resmlp_tiny", ["--depth", "2"]),
    ("poolformer_tiny", ["--depths", "1,1,2,1"]),
    ("mixer_tiny", ["--depth", "2", "--token-mixer", "identity"]),
    ("mixer_tiny", ["--depth", "2", "--token-mixer", "attention", "--norm", "rmsnorm", "--act", "relu"]),
    ("resmlp_tiny", ["--depth", "2", "--token-mixer", "pool", "--norm", "layernorm", "--act", "silu"]),
    ("mixer_tiny", ["--depth", "2", "--token-mixer", "random", "--norm", "groupnorm", "--layer-scale", "on",
                    "--act", "gelu_tanh", "--img-size", "32", "--in-chans", "3"]),
    ("resmlp_tiny", ["--depth", "2", "--token-mixer", "mlp", "--layer-scale", "off", "--norm", "none",
                     "--heads", "4"]),
    ("poolformer_tiny", ["--depths", "1,1,1,1", "--token-mixer", "pool,pool,attention,attention"]),
    ("poolformer_tiny", ["--depths", "1,1,1,1", "--token-mixer", "mlp,linear,random,identity",
                         "--norm", "layernorm", "--act", "gelu_tanh", "--heads", "2"]),
    ("poolformer_tiny", ["--depths", "1,1,1,1", "--token-mixer", "identity,attention,attention,pool",
                         "--norm", "rmsnorm", "--act", "silu", "--heads", "4", "--layer-scale", "off"]),
    ("poolformer_tiny", ["--depths", "1,1,1,1", "--norm", "affine", "--pool-size", "5", "--dims", "16,32,32,48",
                         "--token-mixer", "pool,identity,pool,attention",
                         "--img-size", "32", "--in-chans", "3"]),
    # gMLP, ViT, RepMLP families; External Attention / RepMLP mixers; GLU channel MLPs
    ("gmlp_tiny", ["--depth", "2"]),
    ("vit_tiny_28", ["--depth", "2"]),
    ("repmlp_tiny", ["--depth", "2"]),
    ("repmlp_tiny_32", ["--depth", "1", "--rep-kernels", "1,3,5", "--mlp", "reglu", "--embed-dim", "64"]),
    ("mixer_tiny", ["--depth", "2", "--token-mixer", "external", "--mlp", "glu", "--mem-units", "16"]),
    ("resmlp_tiny", ["--depth", "1", "--mlp", "geglu", "--mlp-hidden-scale", "0.5"]),
    ("poolformer_tiny", ["--depths", "1,1,1,1", "--mlp", "swiglu", "--dims", "16,32,32,48",
                         "--token-mixer", "repmlp,external,pool,attention"]),
    ("vit_tiny_28", ["--depth", "1", "--mlp", "swiglu", "--token-mixer", "external", "--layer-scale", "on"]),
    ("gmlp_tiny", ["--depth", "1", "--mlp", "geglu", "--embed-dim", "64", "--img-size", "32", "--in-chans", "3"]),
]


def run(args):
    harness.must(args)


def rel(a, b, floor=1e-30):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(b).max(), floor)
    return float(np.abs(a - b).max() / scale)


def perturb(ck, rng):
    """Random, well-scaled weights for every trainable tensor, written back into the checkpoint."""
    with h5py.File(ck, "r+") as f:
        for k in f["model"]:
            d = f["model"][k]
            v = d[...]
            if k.endswith("random_matrix"):
                continue
            leaf = k.rsplit(".", 1)[-1]
            if leaf in ("ls1", "ls2", "scale", "gamma"):
                v = 0.5 + 0.2 * rng.standard_normal(v.shape)
            elif leaf == "alpha" or (leaf == "weight" and v.ndim == 1):
                v = 1.0 + 0.2 * rng.standard_normal(v.shape)
            else:
                fan_in = int(np.prod(v.shape[1:])) if v.ndim > 1 else 16
                v = v + rng.standard_normal(v.shape) / np.sqrt(fan_in) * 0.5
            d[...] = v.astype(np.float32)


def check_case(i, model, over, tmp):
    ck, data = os.path.join(tmp, f"ck{i}.h5"), os.path.join(tmp, f"d{i}.h5")
    gout, pout = os.path.join(tmp, f"g{i}.h5"), os.path.join(tmp, f"p{i}.h5")
    run(["init", "--model", model, *over, "--seed", str(7 + i), "--out", ck])
    rng = np.random.default_rng(100 + i)
    perturb(ck, rng)
    with h5py.File(ck, "r") as f:
        cfg = json.loads(f.attrs["config"])
        sd = {k: torch.from_numpy(f["model"][k][...]).double() for k in f["model"]}
    C, H, K = cfg["in_chans"], cfg["img_size"], cfg["num_classes"]
    x = rng.standard_normal((B, C, H, H)).astype(np.float32)
    y = rng.integers(0, K, B)
    with h5py.File(data, "w") as f:
        f["images"] = x
        f["labels"] = y.astype(np.int64)
    run(["grads", "--checkpoint", ck, "--data", data, "-b", str(B), "--out", gout])
    # predict runs without a tape: fused GEMM epilogues (bias, GELU, residual + layer scale)
    run(["predict", "--checkpoint", ck, "--data", data, "--out", pout])

    torch.manual_seed(0)
    net = torch_models.build(cfg).double()
    net.load_state_dict(sd, strict=True)
    net.train()
    logits = net(torch.from_numpy(x).double())
    loss = F.cross_entropy(logits, torch.from_numpy(y))
    loss.backward()

    errs = {}
    with h5py.File(pout, "r") as f:
        errs["logits(predict)"] = rel(f["logits"][...], logits.detach().numpy())
    with h5py.File(gout, "r") as f:
        errs["loss"] = rel(f["loss"][...], loss.item())
        if "logits" in f:
            errs["logits(grads)"] = rel(f["logits"][...], logits.detach().numpy())
        got = set(f["grads"].keys())
        want = {k for k, p in net.named_parameters() if p.requires_grad}
        if got != want:
            harness.die(f"{model} {over}: gradient keys differ: mixtape-only {sorted(got - want)}, "
                  f"torch-only {sorted(want - got)}")
        # Some gradients are exactly zero in exact arithmetic (a bias right before
        # pool(x) - x, or a per-token constant that every following LayerNorm
        # removes); float32 leaves rounding noise there. Their error is measured
        # against 1e-3 of the largest gradient of the model instead of zero.
        floor = 1e-3 * max(float(p.grad.abs().max()) for p in net.parameters() if p.requires_grad)
        worst_key, worst = None, 0.0
        for k, p in net.named_parameters():
            if not p.requires_grad:
                continue
            e = rel(f["grads"][k][...], p.grad.numpy(), floor)
            if os.environ.get("PARITY_VERBOSE"):
                print(f"   {k}: {e:.2e} (max|g| {float(p.grad.abs().max()):.2e})")
            if e > worst:
                worst_key, worst = k, e
        errs["grads(max)"] = worst
    ok = all(v <= TOL for v in errs.values())
    desc = " ".join(over)
    return harness.check(ok, f"{model} {desc}: " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items())
                   + f" (worst grad {worst_key})")


def main():
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (model, over) in enumerate(CASES):
            check_case(i, model, over, tmp)
    harness.finish()


if __name__ == "__main__":
    main()
