#!/usr/bin/env python3
"""Fine-tuning as timm adapts it, and the data checked against the model.

- train --initial-checkpoint: a stem trained on 3 channels adapted to 1 / 5 / 2 input channels
  (compared with a re-implementation of timm's adapt_input_conv), ViT's pos_embed resampled to
  another grid (compared with torch.nn.functional.interpolate(mode='bicubic',
  align_corners=False, antialias=True) as timm's resample_abs_pos_embed), every other key
  loaded or listed as re-initialised; the checkpoint's mean/std/interpolation/crop-pct used
  unless flags give them, and recorded in the run's checkpoints.
- the data's classes / channels / size against the model for shards, ImageFolder and HDF5, in
  train and eval: a clear error (exit 2) naming both values, or notices with --data-convert.
Env: MIXTAPE (binary). Data and checkpoints are made here.
"""
import io, os, re

import harness
from harness import check
from tinydata import write_shard

h5py, np, torch, Image = harness.require("h5py", "numpy", "torch", "PIL.Image")
import torch.nn.functional as F  # noqa: E402

T = harness.tempdir("ft")


def run(*args, code=0, want=()):
    r = harness.run(args, 300, env={"OMP_NUM_THREADS": "2"})
    out = r.text
    good = r.rc == code and all(w in out for w in want)
    check(good, f"{' '.join(map(str, args[:3]))} ... -> {r.rc} (want {code}, {list(want)})", out[-3000:])
    return out


def png(arr):
    b = io.BytesIO()
    Image.fromarray(arr).save(b, format="PNG")
    return b.getvalue()


def shards(path, n, side, chans, classes, seed):
    """One tar shard of n PNG images (side x side, chans 1 or 3), labels < classes, and classes.txt."""
    r = np.random.default_rng(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shape = (side, side) if chans == 1 else (side, side, 3)
    write_shard(path, [(f"{i:06d}", png(r.integers(0, 256, shape, dtype=np.uint8)), i % classes) for i in range(n)])
    with open(os.path.join(os.path.dirname(path), "classes.txt"), "w") as f:
        f.write("".join(f"class{k}\n" for k in range(classes)))


def h5data(path, n, c, side, classes, seed):
    r = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["images"] = r.standard_normal((n, c, side, side)).astype(np.float32)
        f["labels"] = (np.arange(n) % classes).astype(np.int64)


def model_keys(path):
    with h5py.File(path, "r") as f:
        return {k: f["model"][k][...] for k in f["model"]}


def counts(out):
    m = re.search(r"(\d+) tensors loaded, (\d+) adapted, (\d+) re-initialised", out)
    return tuple(map(int, m.groups())) if m else None


# ---- timm's adapt_input_conv and resample_abs_pos_embed, in numpy / torch ----
def adapt_input_conv(in_chans, w):
    w = torch.from_numpy(w).float()
    O, I, J, K = w.shape
    if in_chans == 1:
        w = w.sum(dim=1, keepdim=True)
    elif in_chans != 3:
        repeat = int(np.ceil(in_chans / 3))
        w = w.repeat(1, repeat, 1, 1)[:, :in_chans, :, :]
        w *= 3 / float(in_chans)
    return w.numpy()


def resample_abs_pos_embed(pe, new_size, prefix=1, antialias=True):
    pe = torch.from_numpy(pe)
    hw = int(np.sqrt(pe.shape[1] - prefix))
    pre, grid = pe[:, :prefix], pe[:, prefix:]
    D = grid.shape[-1]
    grid = grid.reshape(1, hw, hw, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new_size, mode="bicubic", align_corners=False, antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, D)
    return torch.cat([pre, grid], dim=1).numpy()


# ---- 1. poolformer_s12 (3 channels, 224 px) fine-tuned on 1-channel 64-px shards ----
ck = f"{T}/pf.h5"
run("init", "--model", "poolformer_s12", "--mean", "0.5,0.4,0.3", "--std", "0.2,0.25,0.3", "--seed", "3",
    "--out", ck, want=("wrote",))
with h5py.File(ck, "a") as f:   # as a checkpoint trained with these eval settings records them
    f.attrs["data_interpolation"] = "bilinear"
    f.attrs["data_crop_pct"] = np.float32(0.95)
shards(f"{T}/g64/train-000000.tar", 4, 64, 1, 10, 1)
ft = ["train", "--model", "poolformer_s12", "--in-chans", "1", "--img-size", "64", "--num-classes", "10",
      "--initial-checkpoint", ck, "--train", f"{T}/g64/train-000000.tar", "-b", "2", "--epochs", "1",
      "--max-steps", "1", "--warmup-epochs", "0", "--threads", "2", "-j", "1", "--seed", "1",
      "--freeze", "stem.*,stages.0.*"]
out = run(*ft, "--output", f"{T}/pf_run", want=("adapted stem.conv.weight", "re-initialised head.fc.weight"))
src, dst = model_keys(ck), model_keys(f"{T}/pf_run/last.h5")
c = counts(out)
check(c == (len(src) - 3, 1, 2), f"poolformer_s12: every body weight loaded, stem adapted, head re-initialised {c}")
check(re.findall(r"re-initialised (\S+?):", out) == ["head.fc.weight", "head.fc.bias"], "only the head re-initialised")
d = np.abs(dst["stem.conv.weight"] - adapt_input_conv(1, src["stem.conv.weight"])).max()
check(dst["stem.conv.weight"].shape == (64, 1, 7, 7) and d < 1e-6, f"stem 3 -> 1 channel = timm's sum ({d:.2e})")
same = all(np.array_equal(dst[k], src[k]) for k in dst if k.startswith("stages.0.") or k == "stem.conv.bias")
check(same, "frozen body weights equal the checkpoint's (loaded, not re-initialised)")
check("mean 0.4 (checkpoint), std 0.25 (checkpoint); eval resize: bilinear (checkpoint), crop-pct 0.95 (checkpoint)"
      in out, "the checkpoint's mean/std (averaged for 1 channel), interpolation and crop-pct are used and named")
check("first sample 64x64 grey" in out and "10 classes (classes.txt)" in out, "the data is described")
with h5py.File(f"{T}/pf_run/last.h5", "r") as f:
    rec = (f.attrs["data_interpolation"], float(f.attrs["data_crop_pct"]), f.attrs["data_mean"].tolist())
check(rec[0] in ("bilinear", b"bilinear") and abs(rec[1] - 0.95) < 1e-6 and abs(rec[2][0] - 0.4) < 1e-6,
      f"the run records data_interpolation / data_crop_pct / data_mean {rec}")

# ---- 2. stems from 3 channels to 5 and 2 (HDF5 data), and an unsupported 1 -> 3 ----
ck3 = f"{T}/pt3.h5"
run("init", "--model", "poolformer_tiny", "--in-chans", "3", "--img-size", "16", "--seed", "5", "--out", ck3)
for cin in (5, 2):
    h5data(f"{T}/d{cin}.h5", 8, cin, 16, 10, cin)
    out = run("train", "--model", "poolformer_tiny", "--in-chans", cin, "--img-size", "16", "--initial-checkpoint", ck3,
              "--train", f"{T}/d{cin}.h5", "-b", "4", "--epochs", "1", "--max-steps", "1", "--threads", "2",
              "--freeze", "stem.conv.weight", "--output", f"{T}/pt{cin}", want=("adapted stem.conv.weight",))
    w = model_keys(f"{T}/pt{cin}/last.h5")["stem.conv.weight"]
    ref = adapt_input_conv(cin, model_keys(ck3)["stem.conv.weight"])
    check(w.shape == ref.shape and np.abs(w - ref).max() < 1e-6, f"stem 3 -> {cin} channels = timm's repeat and scale")
    check(counts(out)[2] == 0, f"3 -> {cin}: nothing re-initialised")
ck1 = f"{T}/pt1.h5"
run("init", "--model", "poolformer_tiny", "--img-size", "16", "--out", ck1)
h5data(f"{T}/d3.h5", 8, 3, 16, 10, 3)
run("train", "--model", "poolformer_tiny", "--in-chans", "3", "--img-size", "16", "--initial-checkpoint", ck1,
    "--train", f"{T}/d3.h5", "-b", "4", "--epochs", "1", "--max-steps", "1", "--threads", "2", "--output", f"{T}/pt13",
    want=("re-initialised stem.conv.weight: checkpoint (32,1,3,3) vs model (32,3,3,3)",))

# ---- 3. ViT pos_embed resampled to a smaller and a larger grid ----
ckv = f"{T}/vit.h5"
run("init", "--model", "vit_tiny_28", "--seed", "9", "--out", ckv)      # patch 4: a 7x7 grid
pe0 = model_keys(ckv)["pos_embed"]
for side, g in ((16, 4), (40, 10), (28, 7)):
    h5data(f"{T}/v{side}.h5", 4, 1, side, 10, side)
    out = run("train", "--model", "vit_tiny_28", "--img-size", side, "--initial-checkpoint", ckv, "--train",
              f"{T}/v{side}.h5", "-b", "2", "--epochs", "1", "--max-steps", "1", "--threads", "2", "--freeze",
              "pos_embed", "--output", f"{T}/v{side}")
    pe = model_keys(f"{T}/v{side}/last.h5")["pos_embed"]
    if side == 28:
        check(np.array_equal(pe, pe0) and counts(out)[1] == 0, "same grid: pos_embed loaded as it is")
        continue
    check("adapted pos_embed: checkpoint (1,50,128) -> model (1,%d,128)" % (g * g + 1) in out, f"pos_embed 7x7 -> {g}x{g} listed")
    ref = resample_abs_pos_embed(pe0, (g, g))
    d = np.abs(pe - ref).max()
    check(pe.shape == ref.shape and d < 1e-5, f"pos_embed 7x7 -> {g}x{g} = timm's resample (antialiased bicubic) ({d:.2e})")
    dn = np.abs(pe - resample_abs_pos_embed(pe0, (g, g), antialias=False)).max()
    check(dn > 1e-3, f"... and differs from the plain bicubic ({dn:.2e}), so the comparison can fail")

# the same from timm weights in a .safetensors file (mixtape export)
run("export", "--checkpoint", ckv, "--out", f"{T}/vit.safetensors")
out = run("train", "--model", "vit_tiny_28", "--img-size", 16, "--initial-checkpoint", f"{T}/vit.safetensors",
          "--train", f"{T}/v16.h5", "-b", "2", "--epochs", "1", "--max-steps", "1", "--threads", "2", "--freeze",
          "pos_embed", "--output", f"{T}/vst", want=("adapted pos_embed",))
d = np.abs(model_keys(f"{T}/vst/last.h5")["pos_embed"] - resample_abs_pos_embed(pe0, (4, 4))).max()
check(d < 1e-5, f"pos_embed from .safetensors resampled as timm ({d:.2e})")

# ---- 4. data against the model: shards, ImageFolder, HDF5; train and eval ----
shards(f"{T}/g28/train-000000.tar", 4, 28, 1, 10, 2)
g28 = f"{T}/g28/train-000000.tar"
base = ["-b", "2", "--epochs", "1", "--max-steps", "1", "--threads", "2", "-j", "1"]
out = run("train", "--model", "mixer_s16_224", "--train", g28, *base, "--output", f"{T}/x1", code=2,
          want=("10 classes (classes.txt)", "mixer_s16_224 has 1000 outputs"))
out = run("train", "--model", "mixer_s16_224", "--num-classes", "10", "--train", g28, *base, "--output", f"{T}/x2",
          code=2, want=(g28, "is a 1-channel (grey) 28x28 image", "mixer_s16_224 wants 3-channel 224x224", "--data-convert"))
check(not os.path.exists(f"{T}/x2/last.h5"), "refused before the first step")
out = run("train", "--model", "poolformer_tiny", "--in-chans", "3", "--img-size", "32", "--train", g28, *base,
          "--data-convert", "--output", f"{T}/x3",
          want=("--data-convert: grey images converted to 3 channels (grey replicated)",
                "--data-convert: 28x28 images resized up to 32x32"))
check(os.path.exists(f"{T}/x3/last.h5"), "--data-convert trains")
run("train", "--model", "poolformer_tiny", "--img-size", "24", "--train", g28, *base, "--output", f"{T}/x4",
    want=("first sample 28x28 grey",))       # larger images are cropped as usual: no conversion needed
# ImageFolder: 3 classes of RGB images
for k in range(3):
    os.makedirs(f"{T}/folder/c{k}", exist_ok=True)
    for i in range(2):
        Image.fromarray(np.full((20, 20, 3), 40 * k + i, np.uint8)).save(f"{T}/folder/c{k}/{i}.png")
run("train", "--model", "poolformer_tiny", "--img-size", "16", "--train", f"{T}/folder", *base, "--output",
    f"{T}/x5", code=2, want=("3 classes (class directories)", "has 10 outputs"))
run("train", "--model", "poolformer_tiny", "--img-size", "16", "--num-classes", "3", "--train", f"{T}/folder", *base,
    "--output", f"{T}/x6", code=2, want=("3-channel (RGB)", "wants 1-channel 16x16"))
run("train", "--model", "poolformer_tiny", "--img-size", "16", "--num-classes", "3", "--in-chans", "3", "--train",
    f"{T}/folder", *base, "--output", f"{T}/x7", want=("first sample 20x20 RGB",))
# HDF5: labels beyond the head
h5data(f"{T}/l12.h5", 12, 1, 16, 12, 4)
run("train", "--model", "poolformer_tiny", "--img-size", "16", "--train", f"{T}/l12.h5", *base, "--output",
    f"{T}/x8", code=2, want=("l12.h5", "10 is outside 0..9"))     # refused at open by the loader
# eval: a 1000-class checkpoint on 10-class data; then matching data
run("init", "--model", "poolformer_tiny", "--num-classes", "1000", "--out", f"{T}/k1000.h5")
run("eval", "--checkpoint", f"{T}/k1000.h5", "--data", g28, "-j", "1", code=2,
    want=("--data " + g28, "10 classes (classes.txt)", "(poolformer_tiny) has 1000 outputs"))
run("eval", "--checkpoint", f"{T}/x4/last.h5", "--data", f"{T}/folder", "-j", "1", code=2,
    want=("3 classes (class directories)", "has 10 outputs"))
run("eval", "--checkpoint", f"{T}/x7/last.h5", "--data", f"{T}/folder", "-j", "1", want=("top-1",))

# ---- 5. flags win over recorded settings; hostile recorded settings ----
ckf = f"{T}/flags.h5"
run("init", "--model", "poolformer_tiny", "--img-size", "16", "--mean", "0.3", "--std", "0.25", "--out", ckf)
with h5py.File(ckf, "a") as f:
    f.attrs["data_interpolation"] = "bilinear"
    f.attrs["data_crop_pct"] = np.float32(0.95)
out = run("train", "--model", "poolformer_tiny", "--img-size", "16", "--initial-checkpoint", ckf, "--train",
          f"{T}/v16.h5", *base, "--mean", "0.1", "--crop-pct", "0.8", "--output", f"{T}/flags")
check("mean 0.1 (command line), std 0.25 (checkpoint); eval resize: bilinear (checkpoint), crop-pct 0.8 (command line)"
      in out, "flags win over the checkpoint's settings, the rest comes from it")
out = run("train", "--resume", f"{T}/flags", "--train", f"{T}/v16.h5", "-b", "2", "--epochs", "1", "--threads", "2")
check("mean 0.1 (checkpoint), std 0.25 (checkpoint); eval resize: bilinear (checkpoint), crop-pct 0.8 (checkpoint)"
      in out, "a resumed run continues with the settings its checkpoint records (not args.yaml's defaults)")
for attr, val, msg in (("data_crop_pct", np.float32(np.nan), "data_crop_pct"),
                       ("data_interpolation", "nearest", "data_interpolation"),
                       ("data_std", np.array([0.2, 0, 0.3], np.float32), "data_std")):
    bad = f"{T}/bad_{attr}.h5"
    run("init", "--model", "poolformer_tiny", "--img-size", "16", "--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2",
        "--out", bad)
    with h5py.File(bad, "a") as f:
        f.attrs[attr] = val
    run("train", "--model", "poolformer_tiny", "--img-size", "16", "--initial-checkpoint", bad, "--train",
        f"{T}/v16.h5", *base, "--output", f"{T}/b_{attr}", code=2, want=(bad, msg))
    run("eval", "--checkpoint", bad, "--data", f"{T}/v16.h5", code=2, want=(msg,))

harness.finish()
