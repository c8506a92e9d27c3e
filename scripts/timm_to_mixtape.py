#!/usr/bin/python3
"""Convert a PyTorch / timm state_dict file into a mixtape HDF5 checkpoint.

    timm_to_mixtape.py IN.pth OUT.h5 --model NAME [model overrides, e.g. --num-classes 10]

IN is a .safetensors file (read here, no safetensors package needed), or a
torch.save of a dict of tensors, or of a dict holding one under 'state_dict' /
'model' (or 'state_dict_ema' / 'model_ema' with --ema), loaded with
torch.load(weights_only=True) (--trust-pickle lifts that for files you trust,
e.g. timm train.py checkpoints that pickle their 'args'). A 'module.' prefix
(DataParallel) is stripped; the original sail-sg PoolFormer layout (network.*,
patch_embed.proj, layer_scale_1, ...) is renamed to timm's metaformer names.
Other formats (HDF5, GGUF, .npz, ...) are named in a one-line message. The root attributes (format,
model, config, ...) come from `mixtape init --model NAME [overrides]`, so the
checkpoint is exactly what mixtape would write; then /model is filled from the
state_dict. Every key and shape must match the mixtape model: differences are
listed and nothing is written (exit code 2). float32 tensors are copied
bit-exactly; other float dtypes are converted to float32 (with a note).

Needs torch, h5py, numpy (Debian: python3-torch python3-h5py). The mixtape
binary is taken from --mixtape, else $MIXTAPE, else `mixtape` on PATH.
"""
import argparse
import json
import os
import re
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


# ---- safetensors, read here without the safetensors package ----
ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
             "I8": "i1", "U8": "u1", "BOOL": "?", "U16": "<u2", "U32": "<u4", "U64": "<u8"}


def is_safetensors(head):
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= 100 << 20


def read_safetensors(path):
    """{key: numpy array} in the header's order; the header is checked like mixtape's C reader
    (length, JSON, dtypes, shapes, offsets inside the data and matching the size)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n > 100 << 20 or n > size - 8:
            die(f"{path}: safetensors header length {n} is impossible for a {size}-byte file")
        try:
            hdr = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            die(f"{path}: safetensors header is not valid JSON: {e}")
        if not isinstance(hdr, dict):
            die(f"{path}: safetensors header is not a JSON object")
        data_size = size - 8 - n
        out = {}
        for k, v in hdr.items():
            if k == "__metadata__":
                continue
            try:
                dt, shape, (b, e) = v["dtype"], [int(d) for d in v["shape"]], v["data_offsets"]
            except (KeyError, TypeError, ValueError):
                die(f"{path}: tensor '{k}': needs dtype, shape and data_offsets [begin, end]")
            if dt not in ST_DTYPES:
                die(f"{path}: tensor '{k}': dtype {dt!r} is not supported here")
            item = np.dtype(ST_DTYPES[dt]).itemsize
            if len(shape) > 8 or any(d < 0 for d in shape):
                die(f"{path}: tensor '{k}': bad shape {shape}")
            if not (isinstance(b, int) and isinstance(e, int) and 0 <= b <= e <= data_size
                    and e - b == int(np.prod(shape, dtype=object)) * item):
                die(f"{path}: tensor '{k}': data_offsets [{b}, {e}] do not fit {dt} {shape} in {data_size} data bytes")
            fh.seek(8 + n + b)
            a = np.frombuffer(fh.read(e - b), ST_DTYPES[dt]).reshape(shape)
            if dt == "BF16":  # the upper half of a float32
                a = (a.astype(np.uint32) << 16).view(np.float32)
                SOURCE_DTYPES[k] = "bfloat16"
            out[k] = a
        return out


def sniff(path, head):
    """A one-line description of a file that is neither safetensors nor a torch checkpoint."""
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file (a mixtape checkpoint needs no conversion; Keras / other HDF5 weights are not supported)"
    if head.startswith(b"GGUF"):
        return "a GGUF file (not supported)"
    if head.startswith(b"PK\x03\x04"):
        import zipfile
        try:
            names = zipfile.ZipFile(path).namelist()
        except zipfile.BadZipFile:
            names = []
        if not any(n.endswith("data.pkl") for n in names):
            return "a zip archive that is not a torch checkpoint (an .npz? not supported)"
        return None
    if head[:1] == b"\x80":
        return None  # a legacy pickle: torch.load decides
    return f"not a safetensors, torch or HDF5 file (starts with {head[:8]!r})"


def load_state_dict(path, ema, trust_pickle=False):
    """{key: numpy array} from a .safetensors file or a torch.save'd dict (of dicts) of tensors."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if is_safetensors(head):
        if ema:
            die(f"{path}: a safetensors file holds one set of weights; --ema does not apply")
        return read_safetensors(path)
    what = sniff(path, head)
    if what:
        die(f"{path}: {what}")
    global torch
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:  # noqa: BLE001 - any unpickling problem, reported in one line
        msg = str(e).strip()
        # torch's own text suggests weights_only=False; only the unpickler's reason is of use here
        reason = (msg.split("WeightsUnpickler error:")[-1].strip() if "WeightsUnpickler error:" in msg
                  else msg.splitlines()[-1] if msg else type(e).__name__)[:200]
        if not trust_pickle and "eights only" in str(e):
            die(f"{path}: holds pickled objects other than tensors, which torch.load(weights_only=True) refuses "
                f"({reason}); re-save the state_dict alone or as .safetensors, or pass --trust-pickle for a file "
                f"you trust (unpickling runs code)")
        die(f"{path}: cannot be read as a torch checkpoint: {reason}")
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
    out = {}
    for k, v in sd.items():
        v = v.detach().cpu()
        if v.is_floating_point():  # bfloat16 has no numpy type: floats become float32 here
            if v.dtype != torch.float32:
                SOURCE_DTYPES[k] = str(v.dtype).replace("torch.", "")
            out[k] = v.to(torch.float32).numpy()
        else:
            out[k] = v.numpy()
    return out


SOURCE_DTYPES = {}


def sail_poolformer_key(k):
    """The original sail-sg PoolFormer (v1) names -> timm's metaformer names: network.{2s} holds
    stage s's blocks, network.{2s-1}.proj is stage s's downsampling conv, layer_scale_1 -> layer_scale1.scale,
    patch_embed.proj -> stem.conv, norm -> head.norm, head -> head.fc."""
    m = re.match(r"network\.(\d+)\.(\d+)\.(.+)$", k)
    if m and int(m.group(1)) % 2 == 0:
        rest = re.sub(r"^layer_scale_(\d)$", r"layer_scale\1.scale", m.group(3))
        return f"stages.{int(m.group(1)) // 2}.blocks.{m.group(2)}.{rest}"
    m = re.match(r"network\.(\d+)\.proj\.(weight|bias)$", k)
    if m and int(m.group(1)) % 2 == 1:
        return f"stages.{(int(m.group(1)) + 1) // 2}.downsample.conv.{m.group(2)}"
    for old, new in (("patch_embed.proj.", "stem.conv."), ("norm.", "head.norm."), ("head.", "head.fc.")):
        if k.startswith(old):
            return new + k[len(old):]
    return k


def remap_layout(sd, path):
    """Known non-timm layouts -> timm names (with a note); others pass through unchanged."""
    if any(k.startswith("network.") for k in sd) and "stem.conv.weight" not in sd:
        out = {sail_poolformer_key(k): v for k, v in sd.items()}
        if len(out) != len(sd):
            die(f"{path}: sail-sg PoolFormer keys collide after renaming to timm's names")
        print(f"timm_to_mixtape: note: {path}: sail-sg PoolFormer layout (network.*), renamed to timm's names",
              file=sys.stderr)
        return out
    if any(k.startswith("downsample_layers.") for k in sd):
        die(f"{path}: the sail-sg MetaFormer v2 layout (downsample_layers.*) is not supported; "
            f"load it in timm and save model.state_dict()")
    return sd


def main():
    ap = argparse.ArgumentParser(
        description="timm / PyTorch state_dict -> mixtape HDF5 checkpoint",
        epilog="Any other --flag VALUE is passed to `mixtape init` as a model override "
        "(--num-classes, --img-size, --in-chans, --token-mixer, ...).")
    ap.add_argument("input", help="state_dict file (torch.save) or .safetensors")
    ap.add_argument("output", help="mixtape checkpoint to write (.h5)")
    ap.add_argument("--model", required=True, help="mixtape / timm model name")
    ap.add_argument("--mixtape", help="path of the mixtape binary")
    ap.add_argument("--ema", action="store_true", help="take 'state_dict_ema' / 'model_ema'")
    ap.add_argument("--trust-pickle", action="store_true",
                    help="unpickle any object (timm train.py checkpoints with 'args'); runs code from the file")
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
        sd = remap_layout(load_state_dict(args.input, args.ema, args.trust_pickle), args.input)

        wanted = dict(want)
        missing = [k for k, _ in want if k not in sd]
        unexpected = [k for k in sd if k not in wanted]
        mismatch = [(k, tuple(sd[k].shape), s) for k, s in want if k in sd and tuple(sd[k].shape) != s]
        nonfloat = [k for k, _ in want if k in sd and sd[k].dtype.kind != "f"]
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

        converted = sorted({SOURCE_DTYPES.get(k, str(sd[k].dtype)) for k, _ in want
                            if sd[k].dtype != np.float32 or k in SOURCE_DTYPES})
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
                    m.create_dataset(k, data=np.ascontiguousarray(sd[k], dtype=np.float32), dtype="<f4")
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
