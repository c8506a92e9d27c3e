#!/usr/bin/python3
"""Write an HDF5 dataset for `mixtape train --train/--val X.h5` from IDX files
(MNIST / Fashion-MNIST layout), optionally restricted to some classes and to a
number of samples.

    scripts/make_subset.py IMAGES.idx[.gz] --out X.h5 [--labels LABELS.idx[.gz]]
        [--classes 0-4 | 5,6,7,8,9] [--per-class N | --limit N] [--seed S]
        [--mean 0.286 --std 0.353]

Output: /images (N, 1, H, W) float32, (pixel/255 - mean) / std;
        /labels (N) int64 in 0..K-1, where K is the number of selected classes
        (the i-th selected class becomes label i); attributes `classes` (the
        original class indices), `mean`, `std`, `source`.

--per-class N keeps N random samples of each selected class (stratified),
--limit N keeps N random samples of the selection (class-stratified as far as
possible). Selection is deterministic given --seed. The labels file is found
beside the images file by name (images-idx3 -> labels-idx1) unless given.
"""
import argparse
import gzip
import os
import struct
import sys

import h5py
import numpy as np


def read_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {arr.size} bytes of data for dims {dims}")
    return arr.reshape(dims)


def parse_classes(s):
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    if len(set(out)) != len(out):
        raise ValueError(f"--classes {s}: repeated class")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images")
    ap.add_argument("--labels")
    ap.add_argument("--out", required=True)
    ap.add_argument("--classes", help="e.g. 0-4 or 5,6,7,8,9 (default: all)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--per-class", type=int)
    g.add_argument("--limit", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mean", type=float, default=0.286)
    ap.add_argument("--std", type=float, default=0.353)
    a = ap.parse_args()

    lab_path = a.labels
    if not lab_path:
        d, b = os.path.split(a.images)
        lab_path = os.path.join(d, b.replace("images-idx3", "labels-idx1"))
        if lab_path == a.images or not os.path.exists(lab_path):
            ap.error(f"no labels file beside {a.images}; give --labels")
    x = read_idx(a.images)
    y = read_idx(lab_path).astype(np.int64)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        ap.error(f"images {x.shape} and labels {y.shape} do not match")

    classes = parse_classes(a.classes) if a.classes else sorted(np.unique(y).tolist())
    rng = np.random.default_rng(a.seed)
    per = {c: np.flatnonzero(y == c) for c in classes}
    for c, idx in per.items():
        if len(idx) == 0:
            ap.error(f"class {c} has no samples in {a.images}")
    if a.per_class:
        sel = [rng.permutation(per[c])[:a.per_class] for c in classes]
    elif a.limit:
        k = len(classes)
        quota = [a.limit // k + (1 if i < a.limit % k else 0) for i in range(k)]
        sel = [rng.permutation(per[c])[:q] for c, q in zip(classes, quota)]
    else:
        sel = [per[c] for c in classes]
    idx = np.concatenate(sel)
    idx = idx[rng.permutation(len(idx))] if (a.per_class or a.limit) else np.sort(idx)

    remap = np.full(256, -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))
    images = ((x[idx].astype(np.float32) / 255.0 - a.mean) / a.std)[:, None, :, :]
    labels = remap[y[idx]]
    assert labels.min() >= 0

    tmp = a.out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with h5py.File(tmp, "w") as f:
        f["images"] = images.astype(np.float32)
        f["labels"] = labels
        f.attrs["classes"] = np.array(classes, dtype=np.int64)
        f.attrs["mean"] = a.mean
        f.attrs["std"] = a.std
        f.attrs["source"] = os.path.basename(a.images)
    os.replace(tmp, a.out)
    counts = np.bincount(labels, minlength=len(classes))
    print(f"wrote {a.out}: {len(idx)} samples, {len(classes)} classes "
          f"(original {classes}), per class {counts.tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
