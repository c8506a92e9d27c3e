#!/usr/bin/python3
"""Convert a mixtape HDF5 checkpoint into a PyTorch state_dict file for timm.

    mixtape_to_timm.py IN.h5 OUT.pth [--ema] [--wrap state_dict]

Writes torch.save(OrderedDict(key -> float32 tensor)) from /model (or /ema with
--ema), in the checkpoint's (timm's) order; bit-exact. --wrap NAME stores
{NAME: state_dict, 'arch': model, 'epoch': epoch} instead (timm's train.py
checkpoint form; 'mixtape_config' holds the model config as JSON text, so the file
holds only tensors, str and int and loads with torch.load(..., weights_only=True)). Load with timm.create_model(NAME, num_classes=...) and
model.load_state_dict(torch.load('OUT.pth')).

Needs torch, h5py, numpy (Debian: python3-torch python3-h5py).
"""
import argparse
import collections
import json
import os
import sys

import h5py
import numpy as np


def die(msg, code=2):
    print(f"mixtape_to_timm: {msg}", file=sys.stderr)
    sys.exit(code)


def main():
    ap = argparse.ArgumentParser(description="mixtape HDF5 checkpoint -> PyTorch state_dict")
    ap.add_argument("input", help="mixtape checkpoint (.h5)")
    ap.add_argument("output", help="state_dict file to write (.pth)")
    ap.add_argument("--ema", action="store_true", help="export the EMA weights (/ema)")
    ap.add_argument("--wrap", metavar="NAME", help="store the state_dict under this key of a dict")
    args = ap.parse_args()

    if not os.path.isfile(args.input):
        die(f"{args.input}: no such file")
    try:
        f = h5py.File(args.input, "r")
    except OSError as e:
        die(f"{args.input}: not a readable HDF5 file ({e})")
    with f:
        fmt = f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt != "mixtape":
            die(f"{args.input}: not a mixtape checkpoint (no format='mixtape' attribute)")
        group = "ema" if args.ema else "model"
        if group not in f:
            die(f"{args.input}: no /{group} group")
        arrays = collections.OrderedDict()
        for k in f[group]:
            d = f[group][k]
            if not isinstance(d, h5py.Dataset) or d.dtype.kind != "f":
                die(f"{args.input}: /{group}/{k} is not a float dataset")
            arrays[k] = np.ascontiguousarray(d[...], dtype=np.float32)
        model = f.attrs.get("model", "")
        epoch = int(f.attrs.get("epoch", 0))
        cfg = f.attrs.get("config", "{}")
    import torch  # slow to import: only once the input is known to be good
    sd = collections.OrderedDict((k, torch.from_numpy(a)) for k, a in arrays.items())
    obj = sd
    if args.wrap:
        # Only tensors, str and int: torch.load(..., weights_only=True) of torch 1.13 refuses
        # pickled floats, so the config travels as its JSON text.
        obj = {args.wrap: sd, "arch": str(model), "epoch": int(epoch)}
        if isinstance(cfg, bytes):
            cfg = cfg.decode()
        try:
            json.loads(cfg)
            obj["mixtape_config"] = str(cfg)
        except (TypeError, ValueError):
            pass
    tmp = f"{args.output}.tmp.{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, args.output)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        die(f"{args.output}: {e}", 1)
    n = sum(t.numel() for t in sd.values())
    print(f"wrote {args.output}: {model}, {len(sd)} tensors, {n / 1e6:.3f}M parameters")


if __name__ == "__main__":
    main()
