"""optim/ against torch.optim: AdamW, Adam, SGD (momentum, Nesterov, plain) and
torch.nn.utils.clip_grad_norm_, on the same tensors, grads and per-step lrs.

The C side is the test_optim executable run as a driver
(`test_optim --driver IN OUT`, format in tests/test_optim.c); it sits next to
$MIXTAPE in the build directory. Parameter groups are rebuilt here with the
same rules (no decay on 1-D / .bias / (1,..,1,C) non-.weight; lr multipliers
first match wins; frozen params left out of the torch optimizer).
Tolerance: 1e-6 relative on every parameter after every step and on the final
optimizer state, relative to |value| + rms(tensor): fp32 rounding happens at the
scale of the operands, and an element whose update cancels to near zero keeps
the absolute error of its operands (torch fuses some multiply-adds, we may fuse
others)."""
import fnmatch
import os
import tempfile

import harness

np, torch = harness.require("numpy", "torch")
torch.set_num_threads(1)
DRIVER = os.path.join(harness.BUILD, "test_optim")
RTOL, ATOL = 1e-6, 1e-7

SPECS = [
    ("stem.proj.weight", (8, 3, 2, 2)),
    ("stem.proj.bias", (8,)),
    ("blocks.0.norm1.alpha", (1, 1, 8)),
    ("blocks.0.norm1.weight", (8,)),
    ("blocks.0.mlp.fc1.weight", (200, 180)),  # 36000 elements: the OpenMP path
    ("blocks.0.mlp.fc1.bias", (200,)),
    ("head.weight", (10, 8)),
    ("head.bias", (10,)),
]


def glob(pat, name):
    # '*' only; fnmatch also knows [] and ?, which our names never contain
    return fnmatch.fnmatchcase(name, pat)


def no_decay(name, shape):
    if len(shape) <= 1 or name.endswith(".bias"):
        return True
    return all(d == 1 for d in shape[:-1]) and not name.endswith(".weight")


def groups(cfg, params):
    """[(index, wd, lr_mult)] for the trainable params."""
    rules = []
    for item in filter(None, cfg.get("lr_mult", "").split(",")):
        pat, mult = item.rsplit("=", 1)
        rules.append((pat, float(mult)))
    frozen = [p for p in filter(None, cfg.get("freeze", "").split(","))]
    out = []
    for i, (name, shape) in enumerate(SPECS):
        if any(glob(f, name) for f in frozen):
            continue
        wd = 0.0 if (not cfg.get("wd_all") and no_decay(name, shape)) else cfg["wd"]
        mult = next((m for pat, m in rules if glob(pat, name)), 1.0)
        out.append((i, wd, mult))
    return out


def run_case(label, cfg, nsteps=5, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.uniform(-1, 1, shape).astype(np.float32) for _, shape in SPECS]
    grads = [[(rng.standard_normal(shape) * (3.0 if s == 2 else 1.0)).astype(np.float32) for _, shape in SPECS]
             for s in range(nsteps)]
    lrs = np.array([cfg["lr"] * (0.5 + 0.25 * s) for s in range(nsteps)], dtype=np.float32)

    # ---- C
    with tempfile.TemporaryDirectory() as tmp:
        fin, fout = os.path.join(tmp, "in.bin"), os.path.join(tmp, "out.bin")
        keys = " ".join(f"{k}={v}" for k, v in cfg.items())
        with open(fin, "wb") as f:
            f.write(f"{keys} nsteps={nsteps}\n".encode())
            f.write((" ".join(f"{n}:{'x'.join(map(str, s))}" for n, s in SPECS) + "\n").encode())
            f.write(lrs.tobytes())
            for a in init:
                f.write(a.tobytes())
            for gs in grads:
                for g in gs:
                    f.write(g.tobytes())
        r = harness.run(["--driver", fin, fout], exe=DRIVER)
        if r.rc != 0:
            return harness.check(False, f"[{label}] driver ran", r.err)
        out = np.fromfile(fout, dtype=np.float32)
    tot = sum(a.size for a in init)
    states = r.out.split("\n")[0].split()[1:]

    def split(flat):
        res, o = [], 0
        for a in init:
            res.append(flat[o:o + a.size].reshape(a.shape))
            o += a.size
        return res

    c_steps = [split(out[s * tot:(s + 1) * tot]) for s in range(nsteps)]
    base = nsteps * tot
    c_states = {name: split(out[base + k * tot: base + (k + 1) * tot]) for k, name in enumerate(states)}
    c_grads = split(out[base + len(states) * tot:])

    # ---- torch
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    gl = groups(cfg, params)
    pg = [{"params": [params[i]], "weight_decay": wd, "lr": float(lrs[0]) * m, "mult": m} for i, wd, m in gl]
    opt = cfg["opt"]
    if opt == "adamw":
        o = torch.optim.AdamW(pg, lr=float(lrs[0]), betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"])
    elif opt == "adam":
        o = torch.optim.Adam(pg, lr=float(lrs[0]), betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"])
    else:
        nesterov = {"nesterov": True, "momentum": False}.get(opt, bool(cfg.get("nesterov", 1)))
        o = torch.optim.SGD(pg, lr=float(lrs[0]), momentum=cfg["momentum"], nesterov=nesterov)
    trainable = [params[i] for i, _, _ in gl]
    ok, worst = True, 0.0
    for s in range(nsteps):
        for p, g in zip(params, grads[s]):
            p.grad = torch.tensor(g.copy())
        if cfg.get("clip", 0) > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg["clip"])
        for group in o.param_groups:
            group["lr"] = float(lrs[s]) * group["mult"]
        o.step()
        for k, (p, c) in enumerate(zip(params, c_steps[s])):
            t = p.detach().numpy()
            err = np.abs(c - t) / (ATOL + RTOL * (np.abs(t) + np.sqrt(np.mean(t.astype(np.float64) ** 2))))
            worst = max(worst, float(err.max()))
            if err.max() > 1:
                j = int(err.argmax())
                print(f"[{label}] step {s + 1} {SPECS[k][0]}[{j}]: C {c.flat[j]:.9g} torch {t.flat[j]:.9g}")
                ok = False
    # final state, by torch's state_dict names
    sworst = 0.0
    for i, _, _ in gl:
        st = o.state[params[i]]
        for name in states:
            if name not in st:
                print(f"[{label}] torch has no state '{name}'")
                ok = False
                continue
            t = st[name].numpy()
            c = c_states[name][i]
            err = np.abs(c - t) / (ATOL + RTOL * (np.abs(t) + np.sqrt(np.mean(t.astype(np.float64) ** 2))))
            sworst = max(sworst, float(err.max()))
            if err.max() > 1:
                print(f"[{label}] state {name} of {SPECS[i][0]} differs: max err/tol {err.max():.3g}")
                ok = False
    expect = {"adamw": ["exp_avg", "exp_avg_sq"], "adam": ["exp_avg", "exp_avg_sq"]}.get(
        opt, ["momentum_buffer"] if cfg.get("momentum", 0) > 0 else [])
    if states != expect:
        print(f"[{label}] state names {states}, want {expect}")
        ok = False
    if cfg.get("clip", 0) > 0:  # the clipped grads of the last step (torch adds 1e-6 to the norm)
        for i, _, _ in gl:
            t = params[i].grad.numpy()
            if not np.allclose(c_grads[i], t, rtol=1e-6, atol=1e-8):
                print(f"[{label}] clipped grad of {SPECS[i][0]} differs")
                ok = False
    # frozen parameters never move
    for i, (name, _) in enumerate(SPECS):
        if i not in [g[0] for g in gl] and not np.array_equal(c_steps[-1][i], init[i]):
            print(f"[{label}] frozen {name} changed")
            ok = False
    return harness.check(ok, f"{label:<48} (worst err/tol {worst:.3f}, state {sworst:.3f})")


def main():
    if not os.path.exists(DRIVER):
        harness.die(f"test_optim not found at {DRIVER} (set MIXTAPE to a binary in the build directory)")
    adam = dict(lr=1e-2, wd=0.05, eps=1e-8, beta1=0.9, beta2=0.999)
    cases = [
        ("adamw", dict(opt="adamw", **adam)),
        ("adamw, lr mult head x1 body x0.1", dict(opt="adamw", **adam, lr_mult="head.*=1,*=0.1")),
        ("adamw, wd on everything", dict(opt="adamw", **adam, wd_all=1)),
        ("adamw, clip 1.0, freeze stem", dict(opt="adamw", **adam, clip=1.0, freeze="stem.*")),
        ("adam (L2)", dict(opt="adam", lr=1e-2, wd=0.01, eps=1e-6, beta1=0.8, beta2=0.99)),
        ("sgd momentum", dict(opt="momentum", lr=0.05, wd=1e-4, momentum=0.9)),
        ("sgd nesterov", dict(opt="nesterov", lr=0.05, wd=1e-4, momentum=0.9)),
        ("sgd nesterov, lr mult", dict(opt="sgd", lr=0.05, wd=1e-3, momentum=0.8, nesterov=1,
                                       lr_mult="head.*=2,*.bias=0.5")),
        ("sgd plain", dict(opt="sgd", lr=0.1, wd=1e-3, momentum=0.0, nesterov=0)),
    ]
    for label, cfg in cases:
        run_case(label, cfg)
    harness.finish()


if __name__ == "__main__":
    main()
