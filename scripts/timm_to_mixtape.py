#!/usr/bin/python3
"""Convert a PyTorch / timm state_dict file into a mixtape HDF5 checkpoint.

    timm_to_mixtape.py IN.pth OUT.h5 --model NAME [model overrides, e.g. --num-classes 10]

IN.pth is a torch.save of a dict of tensors, or of a dict holding one under
'state_dict' / 'model' (or 'state_dict_ema' / 'model_ema' with --ema); a
'module.' prefix (DataParallel) is stripped. The root attributes (format,
model, config, ...) come from `mixtape init --model NAME [overrides]`, so the
checkpoint is exactly what mixtape would write; then /model is filled from the
state_dict. Every key and shape must match the mixtape model: differences are
listed and nothing is written (exit code 2). float32 tensors are copied
bit-exactly; other float dtypes are converted to float32 (with a note).

Needs torch, h5py, numpy (Debian: python3-torch python3-h5py). The mixtape
binary is taken from --mixtape, else $MIXTAPE, else `mixtape` on PATH.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

torch = None  # imported lazily: slow to import, and not needed to reject bad arguments


def die(msg, code=2):
    print(f"timm_to_mixtape: {msg}", file=sys.stderr)
    sys.exit(code)


def find_mixtape(arg):
    for cand in (arg, os.environ.get("MIXTAPE"), shutil.which("mixtape")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    here = os.path.dirname(os.path.abspath(__file__))
    for b in ("build", "build-release"):
        cand = os.path.join(here, "..", b, "mixtape")
        if os.path.isfile(cand):
            return cand
    die("cannot find the mixtape binary: pass --mixtape PATH or set MIXTAPE")


def load_state_dict(path, ema):
    global torch
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch without weights_only
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - report any unpickling problem plainly
        try:
            obj = torch.load(path, map_location="cpu")
        except Exception:  # noqa: BLE001
            die(f"{path}: cannot load with torch.load: {e}")
    if not isinstance(obj, dict):
        die(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    names = ("state_dict_ema", "model_ema") if ema else ("state_dict", "model")
    for n in names:
        if n in obj and isinstance(obj[n], dict):
            obj = obj[n]
            break
    else:
        if ema:
            die(f"{path}: no 'state_dict_ema' / 'model_ema' entry")
    sd = {k: v for k, v in obj.items() if torch.is_tensor(v)}
    if not sd:
        die(f"{path}: no tensors found (keys: {', '.join(list(obj)[:8])})")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def main():
    ap = argparse.ArgumentParser(
        description="timm / PyTorch state_dict -> mixtape HDF5 checkpoint",
        epilog="Any other --flag VALUE is passed to `mixtape init` as a model override "
        "(--num-classes, --img-size, --in-chans, --token-mixer, ...).")
    ap.add_argument("input", help="state_dict file (torch.save)")
    ap.add_argument("output", help="mixtape checkpoint to write (.h5)")
    ap.add_argument("--model", required=True, help="mixtape / timm model name")
    ap.add_argument("--mixtape", help="path of the mixtape binary")
    ap.add_argument("--ema", action="store_true", help="take 'state_dict_ema' / 'model_ema'")
    args, overrides = ap.parse_known_args()
    if any(not o.startswith("-") for o in overrides[:1]):
        die(f"unexpected argument {overrides[0]!r}")

    if not os.path.isfile(args.input):
        die(f"{args.input}: no such file")
    mixtape = find_mixtape(args.mixtape)
    outdir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(outdir):
        die(f"{args.output}: directory {outdir} does not exist")

    with tempfile.TemporaryDirectory() as td:
        ref = os.path.join(td, "init.h5")
        r = subprocess.run([mixtape, "init", "--model", args.model, *overrides, "--threads", "1", "--out", ref],
                           capture_output=True, text=True)
        if r.returncode != 0:
            die(f"mixtape init failed:\n{r.stderr.strip()}", 2 if r.returncode == 2 else 1)
        with h5py.File(ref, "r") as f:
            want = [(k, tuple(f["model"][k].shape)) for k in f["model"]]
            attrs = [(n, f.attrs[n], f.attrs.get_id(n).dtype) for n in f.attrs]
        sd = load_state_dict(args.input, args.ema)

        wanted = dict(want)
        missing = [k for k, _ in want if k not in sd]
        unexpected = [k for k in sd if k not in wanted]
        mismatch = [(k, tuple(sd[k].shape), s) for k, s in want if k in sd and tuple(sd[k].shape) != s]
        nonfloat = [k for k, _ in want if k in sd and not sd[k].is_floating_point()]
        if missing or unexpected or mismatch or nonfloat:
            lines = [f"{args.input} does not match mixtape model {args.model}"
                     f"{' with ' + ' '.join(overrides) if overrides else ''}:"]
            for k, got, w in mismatch:
                lines.append(f"  shape mismatch: {k}: state_dict {got} vs model {w}")
            for k in missing:
                lines.append(f"  missing from the state_dict: {k} {wanted[k]}")
            for k in unexpected:
                lines.append(f"  not in the model: {k} {tuple(sd[k].shape)}")
            for k in nonfloat:
                lines.append(f"  not a float tensor: {k} ({sd[k].dtype})")
            if mismatch:
                lines.append("  (a different --num-classes / --img-size / --in-chans override may be needed)")
            die("\n".join(lines))

        converted = sorted({str(sd[k].dtype) for k, _ in want if sd[k].dtype != torch.float32})
        if converted:
            print(f"timm_to_mixtape: note: converting {', '.join(converted)} tensors to float32", file=sys.stderr)
        tmp = f"{args.output}.tmp.{os.getpid()}"
        try:
            with h5py.File(tmp, "w", track_order=True) as g:
                for n, v, dt in attrs:
                    g.attrs.create(n, v, dtype=dt)
                g.attrs.create("converted_from", os.path.basename(args.input),
                               dtype=h5py.string_dtype("utf-8"))
                m = g.create_group("model", track_order=True)
                for k, _ in want:
                    t = sd[k].detach().to("cpu")
                    if t.dtype != torch.float32:
                        t = t.to(torch.float32)
                    m.create_dataset(k, data=t.contiguous().numpy(), dtype="<f4")
                g.flush()
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, args.output)
        except BaseException as e:
            if os.path.exists(tmp):
                os.unlink(tmp)
            if isinstance(e, OSError):
                die(f"{args.output}: {e}", 1)
            raise
    n = sum(int(np.prod(s)) for _, s in want)
    print(f"wrote {args.output}: {args.model}, {len(want)} tensors, {n / 1e6:.3f}M parameters")


if __name__ == "__main__":
    main()
