#!/usr/bin/python3
"""Markdown table of `mixtape train` runs (used by the study scripts).

    table.py RUN_DIR... [--label L]... [--title T] [--note TEXT]

Columns: run, parameters (trainable, from /model of last.h5 minus frozen
buffers such as RandFormer's random_matrix and, with --freeze, frozen keys
listed in args.yaml), final val top-1 / top-5 / loss, best val top-1 (epoch),
training throughput (mean img/s of the epochs, as logged) and wall time.
"""
import argparse
import fnmatch
import json
import os
import sys

import h5py


def params(run):
    path = os.path.join(run, "last.h5")
    if not os.path.exists(path):
        return None, None
    frozen_pats = []
    args = os.path.join(run, "args.yaml")
    if os.path.exists(args):
        for line in open(args):
            if line.startswith("freeze:"):
                v = line.split(":", 1)[1].strip().strip("'\"")
                if v and v != "null":
                    frozen_pats = [p for p in v.split(",") if p]
    total = trainable = 0
    with h5py.File(path, "r") as f:
        for k in f["model"]:
            n = f["model"][k].size
            total += n
            if k.endswith("random_matrix") or any(fnmatch.fnmatchcase(k, p) for p in frozen_pats):
                continue
            trainable += n
    return total, trainable


def metrics(run):
    rows = []
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return [r for r in rows if "val_top1" in r]


def fmt_params(n):
    return "—" if n is None else (f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--label", action="append")
    ap.add_argument("--title", default="")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    labels = a.label or [os.path.basename(os.path.normpath(r)) for r in a.runs]
    if len(labels) != len(a.runs):
        ap.error("one --label per run")
    out = []
    if a.title:
        out += [f"### {a.title}", ""]
    if a.note:
        out += [a.note, ""]
    out += ["| run | params | val top-1 (%) | val top-5 (%) | val loss | best top-1 (%) @ epoch | train img/s | wall time |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for run, lab in zip(a.runs, labels):
        total, trainable = params(run)
        v = metrics(run)
        p = fmt_params(trainable)
        if total is not None and trainable != total:
            p += f" (of {fmt_params(total)})"
        wall = "—"
        wf = os.path.join(run, "wall_seconds")
        if os.path.exists(wf):
            s = int(open(wf).read().strip() or 0)
            wall = f"{s // 60}m{s % 60:02d}s"
        if not v:
            out.append(f"| {lab} | {p} | — | — | — | — | — | {wall} |")
            continue
        last = v[-1]
        best = max(v, key=lambda r: r["val_top1"])
        ips = [r["img_per_s"] for r in v if "img_per_s" in r]
        ips = f"{sum(ips) / len(ips):.0f}" if ips else "—"
        out.append(f"| {lab} | {p} | {100 * last['val_top1']:.2f} | {100 * last.get('val_top5', float('nan')):.2f} | "
                   f"{last.get('val_loss', float('nan')):.3f} | {100 * best['val_top1']:.2f} @ {best.get('epoch', '?')} | "
                   f"{ips} | {wall} |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
