#!/usr/bin/python3
"""Plot the metrics.jsonl of one or more `mixtape train` runs.

    scripts/plot_metrics.py RUN_DIR [RUN_DIR ...] [--out DIR] [--labels a,b,...] [--title T]
                            [--seeds S,S,...]

Writes PNGs into DIR (default: the run dir when one run is given, else the
current directory):

    train_loss.png   training loss per logged step (interval rows) against epochs
    val_top1.png     validation top-1 (%) per epoch
    val_top5.png     validation top-5 (%) per epoch
    val_loss.png     validation loss per epoch
    lr.png           learning rate per logged step
    metrics.png      the four main panels (train loss, val top-1, val top-5, lr) in one figure

Several runs are overlaid, each labelled by its directory name (or --labels).
A RUN_DIR holding seed-S/ subdirectories (scripts/reproduce/ studies: one run per
seed) is one configuration: its curve is the mean over the seeds (those of --seeds,
default every seed-* dir) with a shaded band from the lowest to the highest seed.
Rows of metrics.jsonl: interval rows {epoch, step, lr, loss, ...} and
per-epoch rows that additionally carry val_loss / val_top1 / val_top5
(fractions in [0, 1]). A resumed run may repeat steps; the last value wins.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load_run(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl") if os.path.isdir(run_dir) else run_dir
    steps, val, epoch_rows = {}, {}, {}
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"plot_metrics: {path}:{ln}: skipping bad JSON ({e})", file=sys.stderr)
                continue
            if "step" not in row:
                continue
            if "val_top1" in row or "val_loss" in row or "epoch_time" in row:
                # per-epoch row: its "loss" is the mean over the whole epoch
                val[int(row.get("epoch", len(val) + 1))] = row
                epoch_rows[int(row["step"])] = row
            elif "loss" in row or "lr" in row:
                steps[int(row["step"])] = row
    # train loss / lr curves from the interval rows; the epoch rows only when there are
    # none (--log-interval longer than an epoch)
    steps = steps or epoch_rows
    steps = [steps[k] for k in sorted(steps)]
    val = [val[k] for k in sorted(val) if "val_top1" in val[k]]
    return path, steps, val


def seed_runs(run_dir, seeds):
    """Run dirs of one configuration: RUN_DIR/seed-S for each seed, else RUN_DIR itself."""
    if not os.path.isdir(run_dir) or os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
        return [run_dir]
    if seeds:
        return [os.path.join(run_dir, f"seed-{s}") for s in seeds]
    found = sorted((int(e[5:]), e) for e in os.listdir(run_dir)
                   if e.startswith("seed-") and e[5:].isdigit() and os.path.isdir(os.path.join(run_dir, e)))
    return [os.path.join(run_dir, e) for _, e in found] or [run_dir]


def aggregate(curves):
    """[(x, y)] of several seeds -> x, mean, min, max over the x every seed has."""
    curves = [dict(zip(x, y)) for x, y in curves if y and len(x) == len(y)]
    if not curves:
        return [], [], [], []
    xs = sorted(set(curves[0]).intersection(*curves[1:]))
    ys = [[c[x] for c in curves] for x in xs]
    return xs, [sum(v) / len(v) for v in ys], [min(v) for v in ys], [max(v) for v in ys]


def steps_per_epoch(steps, val):
    """Steps per epoch from the per-epoch rows (epoch e ends at step s)."""
    for r in val:
        if int(r.get("epoch", 0)) > 0 and int(r["step"]) > 0:
            return int(r["step"]) / int(r["epoch"])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directory (or metrics.jsonl)")
    ap.add_argument("--out", help="output directory (default: the run dir for one run, else .)")
    ap.add_argument("--labels", help="comma-separated labels, one per run (default: dir names)")
    ap.add_argument("--label", action="append", help="label of the next run (repeatable; for labels with commas)")
    ap.add_argument("--title", default="", help="title prefix for the figures")
    ap.add_argument("--dpi", type=int, default=80, help="PNG resolution (default 80: small files)")
    ap.add_argument("--seeds", default="", help="comma-separated seeds: RUN_DIR/seed-S of each (default: all)")
    a = ap.parse_args()

    out = a.out or (a.runs[0] if len(a.runs) == 1 and os.path.isdir(a.runs[0]) else ".")
    os.makedirs(out, exist_ok=True)
    labels = a.label if a.label else a.labels.split(",") if a.labels else [
        os.path.basename(os.path.normpath(r if os.path.isdir(r) else os.path.dirname(r) or "."))
        for r in a.runs]
    if len(labels) != len(a.runs):
        ap.error(f"--labels has {len(labels)} entries for {len(a.runs)} runs")

    seeds = [x for x in a.seeds.split(",") if x]
    runs = []   # (label, [(steps, val) per seed])
    for r, lab in zip(a.runs, labels):
        per_seed = []
        for d in seed_runs(r, seeds):
            try:
                path, steps, val = load_run(d)
            except OSError as e:
                print(f"plot_metrics: cannot read {d}: {e}", file=sys.stderr)
                return 1
            if not steps and not val:
                print(f"plot_metrics: {path}: no metric rows", file=sys.stderr)
            per_seed.append((steps, val))
        runs.append((lab, per_seed))

    def xs_of(steps, val):
        spe = steps_per_epoch(steps, val)
        if spe:
            return [int(r["step"]) / spe for r in steps], "epoch"
        return [int(r["step"]) for r in steps], "step"

    panels = {
        "train_loss": ("train loss", lambda s, v: (xs_of(s, v)[0], [r["loss"] for r in s if "loss" in r] if all("loss" in r for r in s) else None), False),
        "val_top1": ("val top-1 (%)", lambda s, v: ([int(r["epoch"]) for r in v], [100 * r["val_top1"] for r in v]), True),
        "val_top5": ("val top-5 (%)", lambda s, v: ([int(r["epoch"]) for r in v], [100 * r["val_top5"] for r in v if "val_top5" in r]), True),
        "val_loss": ("val loss", lambda s, v: ([int(r["epoch"]) for r in v], [r["val_loss"] for r in v if "val_loss" in r]), True),
        "lr": ("learning rate", lambda s, v: (xs_of(s, v)[0], [r["lr"] for r in s if "lr" in r]), False),
    }

    def draw(ax, key):
        ylabel, get, per_epoch = panels[key]
        any_data = False
        xlabel = "epoch"
        for lab, per_seed in runs:
            x, y, lo, hi = aggregate([get(steps, val) for steps, val in per_seed])
            if not y:
                continue
            if not per_epoch:
                xlabel = xs_of(*per_seed[0])[1]
            n = len(per_seed)
            line, = ax.plot(x, y, marker="o" if per_epoch and len(x) < 30 else None, markersize=3,
                            linewidth=1.2, label=lab + (f" (mean of {n} seeds)" if n > 1 else ""))
            if n > 1:
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
            any_data = True
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if key == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        if any_data and len(runs) > 1:
            ax.legend(fontsize=7)
        return any_data

    written = []
    for key in panels:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        if draw(ax, key):
            ax.set_title((a.title + " " if a.title else "") + panels[key][0], fontsize=9)
            fig.tight_layout()
            p = os.path.join(out, key + ".png")
            fig.savefig(p, dpi=a.dpi)
            written.append(p)
        plt.close(fig)

    fig, axs = plt.subplots(2, 2, figsize=(9, 6.5))
    for ax, key in zip(axs.flat, ["train_loss", "val_top1", "val_top5", "lr"]):
        draw(ax, key)
        ax.set_title(panels[key][0], fontsize=9)
    if a.title:
        fig.suptitle(a.title, fontsize=10)
    fig.tight_layout()
    p = os.path.join(out, "metrics.png")
    fig.savefig(p, dpi=a.dpi)
    plt.close(fig)
    written.append(p)
    for p in written:
        print("wrote", p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
