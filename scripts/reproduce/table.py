#!/usr/bin/python3
"""Markdown table of `mixtape train` runs over seeds (used by the study scripts).

    table.py CONFIG_DIR... [--label L]... [--seeds S,S,...] [--baseline L]
             [--title T] [--note TEXT] [--matrix ROW_HEADER] [--json FILE]
    table.py --t-quantile P DF        print Student's t quantile (e.g. 0.975 4 -> 2.776)
    table.py --stat [--seeds S,...] CONFIG_DIR   print "mean ± std % (n seeds)" of its final top-1

A configuration dir holds one run per seed in seed-S/ (scripts/reproduce/common.sh
`train_run`), or is itself a single run (metrics.jsonl in it; seed "-"). --seeds picks the
seed dirs (default: every seed-* present). Per configuration: the final val top-1 and val
loss as mean ± sample std over its seeds; the difference of top-1 to the baseline (first
configuration, or --baseline LABEL) paired by seed, with its 95% Student-t interval over
the seeds both have (df = pairs - 1), and whether that interval excludes 0; trainable
parameters (from /model of last.h5 minus frozen buffers such as RandFormer's random_matrix
and, with --freeze, the keys args.yaml lists), training throughput (mean logged img/s) and
wall time per run (mean over seeds). A second table lists each seed's final top-1 / loss.

--matrix ROW_HEADER: labels are "ROW|COLUMN" (e.g. "10|scratch"); one table row per ROW
with each COLUMN's mean ± std and, for every COLUMN but the baseline column (--baseline,
default the first), its paired difference to the baseline column of the same ROW.
"""
import argparse
import fnmatch
import json
import math
import os
import re
import sys


# ---- Student's t quantile (no scipy): regularised incomplete beta + bisection ----------

def _betacf(a, b, x):
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-15:
            break
    return h


def betainc(a, b, x):
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t, df):
    p = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - p if t >= 0 else p


def t_quantile(p, df):
    """Quantile of Student's t with df degrees of freedom, 0 < p < 1 (bisection, |err| < 1e-12)."""
    if not (0.0 < p < 1.0) or not (df > 0):
        raise ValueError(f"t_quantile: need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def mean_std(xs):
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    m = sum(xs) / n
    if n < 2:
        return m, math.nan
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))


def paired_interval(a, b, level=0.95):
    """Mean of a[s] - b[s] over the common seeds s and its Student-t interval (None if < 2 pairs)."""
    common = [s for s in a if s in b]
    d = [a[s] - b[s] for s in common]
    if not d:
        return None
    m, sd = mean_std(d)
    if len(d) < 2:
        return m, None, None, len(d)
    half = t_quantile(0.5 + level / 2.0, len(d) - 1) * sd / math.sqrt(len(d))
    return m, m - half, m + half, len(d)


# ---- reading the runs --------------------------------------------------------------------

def params(run):
    path = os.path.join(run, "last.h5")
    if not os.path.exists(path):
        return None, None
    import h5py
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
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    # a resumed run may repeat epochs: the last row of each epoch wins
    by_epoch = {}
    for r in rows:
        if isinstance(r, dict) and isinstance(r.get("val_top1"), (int, float)):
            by_epoch[r.get("epoch", len(by_epoch) + 1)] = r
    return [by_epoch[k] for k in sorted(by_epoch)]


def seed_dirs(cfg, seeds):
    """{seed: run dir} of one configuration."""
    if os.path.exists(os.path.join(cfg, "metrics.jsonl")) and not seeds:
        return {"-": cfg}
    if seeds:
        return {s: os.path.join(cfg, f"seed-{s}") for s in seeds}
    out = {}
    if os.path.isdir(cfg):
        for e in os.listdir(cfg):
            m = re.fullmatch(r"seed-(\d+)", e)
            if m and os.path.isdir(os.path.join(cfg, e)):
                out[m.group(1)] = os.path.join(cfg, e)
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def load_config(cfg, seeds):
    """Per-seed final metrics of one configuration (missing/unfinished seeds are left out)."""
    res = {"top1": {}, "top5": {}, "loss": {}, "best": {}, "ips": [], "wall": [], "resumed": False,
           "params": (None, None), "missing": []}
    for s, d in seed_dirs(cfg, seeds).items():
        v = metrics(d)
        if not v:
            res["missing"].append(s)
            continue
        last = v[-1]
        res["top1"][s] = 100.0 * last["val_top1"]
        res["top5"][s] = 100.0 * last.get("val_top5", math.nan)
        res["loss"][s] = last.get("val_loss", math.nan)
        best = max(v, key=lambda r: r["val_top1"])
        res["best"][s] = (100.0 * best["val_top1"], best.get("epoch", "?"))
        ips = [r["img_per_s"] for r in v if isinstance(r.get("img_per_s"), (int, float))]
        if ips:
            res["ips"].append(sum(ips) / len(ips))
        wf = os.path.join(d, "wall_seconds")
        if os.path.exists(wf):
            try:
                res["wall"].append(int(open(wf).read().strip() or 0))
            except ValueError:
                pass
        if os.path.exists(os.path.join(d, "resumed")):
            res["resumed"] = True
        if res["params"] == (None, None):
            res["params"] = params(d)
    return res


# ---- formatting --------------------------------------------------------------------------

def fmt_params(n):
    return "—" if n is None else (f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K")


def fmt_ms(xs, digits=2):
    m, sd = mean_std(list(xs))
    if math.isnan(m):
        return "—"
    return f"{m:.{digits}f}" if math.isnan(sd) else f"{m:.{digits}f} ± {sd:.{digits}f}"


def fmt_wall(ws, resumed):
    if not ws:
        return "—"
    s = int(round(sum(ws) / len(ws)))
    return f"{s // 60}m{s % 60:02d}s" + (" (resumed)" if resumed else "")


def fmt_diff(iv):
    """(Δ [lo, hi], marker) of a paired interval."""
    if iv is None:
        return "—", "n/a"
    m, lo, hi, n = iv
    if lo is None:
        return f"{m:+.2f} (1 seed)", "n/a"
    mark = "yes ↑" if lo > 0 else "yes ↓" if hi < 0 else "no"
    if lo == hi and mark != "no":
        mark += " (zero spread)"   # every seed's difference equal: a degenerate interval
    return f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]", mark


def simple_table(cfgs, labels, base_i, seeds_shown):
    base = cfgs[base_i]
    out = [f"| run | seeds | params | val top-1 (%) | val loss | Δ top-1 vs {labels[base_i]} [95% CI] | CI excludes 0 "
           "| best top-1 (%) | train img/s | wall time / run |",
           "|---|---:|---:|---:|---:|---:|:---:|---:|---:|---:|"]
    for i, (c, lab) in enumerate(zip(cfgs, labels)):
        total, trainable = c["params"]
        p = fmt_params(trainable)
        if total is not None and trainable != total:
            p += f" (of {fmt_params(total)})"
        n = len(c["top1"])
        seeds = f"{n}" + (f" (missing {','.join(c['missing'])})" if c["missing"] else "")
        if i == base_i:
            d, mark = "baseline", "—"
        else:
            d, mark = fmt_diff(paired_interval(c["top1"], base["top1"]))
        ips = f"{sum(c['ips']) / len(c['ips']):.0f}" if c["ips"] else "—"
        best = fmt_ms([b for b, _ in c["best"].values()])
        out.append(f"| {lab} | {seeds} | {p} | {fmt_ms(c['top1'].values())} | {fmt_ms(c['loss'].values(), 3)} | "
                   f"{d} | {mark} | {best} | {ips} | {fmt_wall(c['wall'], c['resumed'])} |")
    # per seed
    out += ["", "Per seed, final val top-1 (%) / val loss:", "",
            "| run | " + " | ".join(f"seed {s}" for s in seeds_shown) + " |",
            "|---|" + "---:|" * len(seeds_shown)]
    for c, lab in zip(cfgs, labels):
        cells = []
        for s in seeds_shown:
            cells.append(f"{c['top1'][s]:.2f} / {c['loss'][s]:.4f}" if s in c["top1"] else "—")
        out.append(f"| {lab} | " + " | ".join(cells) + " |")
    return out


def matrix_table(cfgs, labels, row_header, base_col):
    rows, cols, cell = [], [], {}
    for c, lab in zip(cfgs, labels):
        if "|" not in lab:
            raise SystemExit(f"table.py: --matrix label '{lab}' is not ROW|COLUMN")
        r, k = lab.split("|", 1)
        if r not in rows:
            rows.append(r)
        if k not in cols:
            cols.append(k)
        cell[(r, k)] = c
    base_col = base_col if base_col is not None else cols[0]
    if base_col not in cols:
        raise SystemExit(f"table.py: --baseline '{base_col}' is not a column ({', '.join(cols)})")
    others = [k for k in cols if k != base_col]
    head = f"| {row_header} | " + " | ".join(f"{k} top-1 (%)" for k in cols) + " | " + \
        " | ".join(f"Δ {k} − {base_col} [95% CI] | excl. 0" for k in others) + " | seeds |"
    out = [head, "|---|" + "---:|" * len(cols) + "---:|:---:|" * len(others) + "---:|"]
    verdict = {k: [] for k in others}
    for r in rows:
        cells = [fmt_ms(cell[(r, k)]["top1"].values()) if (r, k) in cell else "—" for k in cols]
        diffs = []
        for k in others:
            if (r, k) in cell and (r, base_col) in cell:
                iv = paired_interval(cell[(r, k)]["top1"], cell[(r, base_col)]["top1"])
                d, mark = fmt_diff(iv)
                verdict[k].append((r, mark))
            else:
                d, mark = "—", "n/a"
            diffs += [d, mark]
        n = min(len(cell[(r, k)]["top1"]) for k in cols if (r, k) in cell)
        out.append(f"| {r} | " + " | ".join(cells + diffs) + f" | {n} |")
    out.append("")
    for k in others:
        desc = {"yes ↑": "above 0", "yes ↓": "below 0", "no": "contains 0", "n/a": "n/a (1 seed)"}
        out.append(f"- {k} − {base_col}: " + "; ".join(
            f"{row_header} {r}: {desc.get(m.split(' (')[0], m)}" for r, m in verdict[k]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--label", action="append")
    ap.add_argument("--title", default="")
    ap.add_argument("--note", default="")
    ap.add_argument("--seeds", default="", help="comma-separated seeds (default: every seed-* dir)")
    ap.add_argument("--baseline", help="label (or --matrix column) the differences are taken to")
    ap.add_argument("--matrix", metavar="ROW_HEADER")
    ap.add_argument("--json", help="also write the per-seed numbers as JSON")
    ap.add_argument("--t-quantile", nargs=2, type=float, metavar=("P", "DF"))
    ap.add_argument("--stat", action="store_true", help="one line: mean ± std of the final top-1")
    a = ap.parse_args()
    if a.t_quantile:
        print(f"{t_quantile(a.t_quantile[0], a.t_quantile[1]):.6f}")
        return 0
    if not a.runs:
        ap.error("no run dirs")
    labels = a.label or [os.path.basename(os.path.normpath(r)) for r in a.runs]
    if len(labels) != len(a.runs):
        ap.error("one --label per run")
    seeds = [s for s in a.seeds.split(",") if s]
    if any(not s.isdigit() for s in seeds):
        ap.error(f"--seeds {a.seeds}: want comma-separated non-negative integers")
    cfgs = [load_config(r, seeds) for r in a.runs]
    if a.stat:
        for c in cfgs:
            print(f"{fmt_ms(c['top1'].values())} % ({len(c['top1'])} seed{'s' if len(c['top1']) != 1 else ''})")
        return 0
    seeds_shown = seeds or sorted({s for c in cfgs for s in c["top1"]}, key=lambda s: (s == "-", s.zfill(12)))
    out = []
    if a.title:
        out += [f"### {a.title}", ""]
    if a.note:
        out += [a.note, ""]
    if a.matrix:
        out += matrix_table(cfgs, labels, a.matrix, a.baseline)
    else:
        base_i = 0
        if a.baseline is not None:
            names = [os.path.basename(os.path.normpath(r)) for r in a.runs]
            if a.baseline in labels:
                base_i = labels.index(a.baseline)
            elif a.baseline in names:
                base_i = names.index(a.baseline)
            else:
                ap.error(f"--baseline '{a.baseline}' is neither a label nor a run name")
        out += simple_table(cfgs, labels, base_i, seeds_shown)
    n = max((len(c["top1"]) for c in cfgs), default=0)
    out += ["", f"Mean ± sample standard deviation over {n} seed(s); Δ: difference of final top-1 to the "
            "baseline paired by seed, with its 95% Student-t interval (df = seeds − 1); "
            "\"CI excludes 0\": yes ↑ / yes ↓ when the whole interval is above / below 0, no when it contains 0."]
    print("\n".join(out))
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump({lab: {"top1": c["top1"], "loss": c["loss"], "top5": c["top5"]}
                       for lab, c in zip(labels, cfgs)}, f, indent=1, sort_keys=True)
        os.replace(a.json + ".tmp", a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
