#!/usr/bin/python3
"""PyTorch side of scripts/bench_vs_pytorch.sh: the same model (tests/torch_models.py,
built from the config mixtape stores in a checkpoint), batch, thread count and
AdamW step on random in-memory data. Prints `train: X img/s`, `forward: X img/s`
and `peak RSS: X MB`, the same lines as `mixtape bench`."""
import argparse, json, os, resource, sys, time

import h5py
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import torch_models  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("checkpoint")
ap.add_argument("-b", type=int, default=32)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--amp", choices=["fp32", "bf16"], default="fp32",
                help="bf16: torch.autocast(cpu, bfloat16) around forward and loss (fp32 master weights)")
a = ap.parse_args()

torch.set_num_threads(a.threads)
with h5py.File(a.checkpoint, "r") as f:
    cfg = json.loads(f.attrs["config"])
model = torch_models.build(cfg)
x = torch.randn(a.b, cfg["in_chans"], cfg["img_size"], cfg["img_size"])
y = torch.randint(0, cfg["num_classes"], (a.b,))
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
loss_fn = torch.nn.CrossEntropyLoss()

if a.amp == "bf16":
    # PyTorch 1.13's CPU autocast passes bf16 activations to layer_norm / group_norm with
    # fp32 weights and fails; run the norms in fp32, as CUDA autocast does.
    for name in ("layer_norm", "group_norm"):
        def fp32_norm(x, *args, _f=getattr(torch.nn.functional, name), **kw):
            return _f(x.float(), *args, **kw)
        setattr(torch.nn.functional, name, fp32_norm)
amp = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.amp == "bf16")
model.train()
for i in range(a.warmup + a.steps):
    if i == a.warmup:
        t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    with amp():
        loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
dt = time.perf_counter() - t0
print(f"train: {a.b * a.steps / dt:.1f} img/s  ({1e3 * dt / a.steps:.1f} ms/step)")
model.eval()
with torch.no_grad():
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            t0 = time.perf_counter()
        with amp():
            model(x)
dt = time.perf_counter() - t0
print(f"forward: {a.b * a.steps / dt:.1f} img/s  ({1e3 * dt / a.steps:.1f} ms/batch)")
print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB")
