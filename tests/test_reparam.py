"""RepMLP structural re-parameterisation: `mixtape reparam` folds every RepMLP
mixer's conv branches into fc3; the deploy checkpoint must give the same logits
(`mixtape predict`, rel err <= 1e-4), carry rep_deploy = 1 in its config, hold no
repconv keys, and load strictly into the torch reference built with deploy = 1."""
import json
import os
import tempfile

import harness

h5py, np, torch = harness.require("h5py", "numpy", "torch")
import torch_models  # noqa: E402

CASES = [
    ("repmlp_tiny", ["--depth", "2"]),
    ("repmlp_tiny_32", ["--depth", "1", "--rep-kernels", "1,3,5,7", "--mlp", "swiglu"]),
    ("poolformer_tiny", ["--depths", "1,1,1,1", "--token-mixer", "repmlp,repmlp,pool,repmlp"]),
]


def run(args):
    return harness.must(args).out


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for i, (model, over) in enumerate(CASES):
            ck, dep = os.path.join(tmp, f"ck{i}.h5"), os.path.join(tmp, f"dep{i}.h5")
            data, p1, p2 = (os.path.join(tmp, f"{n}{i}.h5") for n in ("d", "p", "q"))
            run(["init", "--model", model, *over, "--seed", str(3 + i), "--out", ck])
            rng = np.random.default_rng(i)
            with h5py.File(ck, "r+") as f:  # well-scaled random weights, strong conv branches
                for k in f["model"]:
                    v = f["model"][k][...]
                    fan = int(np.prod(v.shape[1:])) if v.ndim > 1 else 16
                    f["model"][k][...] = (v + rng.standard_normal(v.shape) / np.sqrt(fan) * 0.5).astype(np.float32)
                cfg = json.loads(f.attrs["config"])
            x = rng.standard_normal((5, cfg["in_chans"], cfg["img_size"], cfg["img_size"])).astype(np.float32)
            with h5py.File(data, "w") as f:
                f["images"] = x
                f["labels"] = np.zeros(5, np.int64)
            run(["predict", "--checkpoint", ck, "--data", data, "--out", p1])
            out = run(["reparam", ck, dep])
            run(["predict", "--checkpoint", dep, "--data", data, "--out", p2])
            with h5py.File(p1, "r") as a, h5py.File(p2, "r") as b:
                la, lb = a["logits"][...], b["logits"][...]
            err = float(np.abs(la - lb).max() / np.abs(la).max())
            with h5py.File(dep, "r") as f:
                dcfg = json.loads(f.attrs["config"])
                keys = list(f["model"].keys())
                sd = {k: torch.from_numpy(f["model"][k][...]).double() for k in keys}
            net = torch_models.build(dcfg).double()
            net.load_state_dict(sd, strict=True)
            with torch.no_grad():
                tl = net(torch.from_numpy(x).double()).numpy()
            terr = float(np.abs(tl - la).max() / np.abs(la).max())
            ok = (err <= 1e-4 and terr <= 1e-4 and dcfg["rep_deploy"] == 1
                  and not any("repconv" in k for k in keys))
            harness.check(ok, f"{model} {' '.join(over)}: deploy vs train logits {err:.2e}, "
                    f"torch deploy vs mixtape train {terr:.2e}; {out.strip()}")
    harness.finish()


if __name__ == "__main__":
    main()
