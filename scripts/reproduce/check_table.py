#!/usr/bin/python3
"""Checks a study table written by scripts/reproduce/table.py (used by tests/test_reproduce*.sh; independent of table.py except for the t quantile).

    check_table.py TABLE.md ROWS SEEDS          a per-configuration table
    check_table.py --matrix TABLE.md ROWS SEEDS COLUMNS   a --matrix table

Asserts every configuration row has a finite mean ± std top-1 (SEEDS >= 2) in [0, 100], and
every non-baseline row a Δ [lo, hi] interval whose numbers equal the paired Student-t
interval recomputed here from the per-seed numbers of TABLE.json (written beside the
table; t quantile from table.py, itself checked against known values by the tests), and an
"excludes 0" marker that agrees with it; the per-seed table agrees with TABLE.json.
Exit 1 with a message on the first failure.
"""
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from table import t_quantile  # noqa: E402

NUM = r"[+-]?\d+\.\d+"


def fail(msg):
    print("FAIL", msg)
    sys.exit(1)


def rows_of(lines, start):
    """Data rows of the Markdown table beginning at lines[start] (header), split in cells."""
    out = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        out.append([c.strip() for c in ln.strip().strip("|").split("|")])
    return out


def per_seed(lines, seeds, path):
    """{label: [top-1 per seed]} from TABLE.json, checked against the per-seed Markdown table."""
    js = json.load(open(os.path.splitext(path)[0] + ".json"))
    exact = {lab: [v for _, v in sorted(d["top1"].items(), key=lambda kv: int(kv[0]))] for lab, d in js.items()}
    i = next((k for k, ln in enumerate(lines) if ln.startswith("Per seed")), None)
    if i is None:
        fail(f"{path}: no per-seed table")
    j = next(k for k in range(i, len(lines)) if lines[k].startswith("| run"))
    res = {}
    for cells in rows_of(lines, j):
        vals = []
        for c in cells[1:]:
            m = re.fullmatch(rf"({NUM}) / ({NUM})", c)
            if not m:
                fail(f"per-seed cell '{c}' of {cells[0]} is not 'top1 / loss'")
            vals.append(float(m.group(1)))
        if len(vals) != seeds:
            fail(f"per-seed row {cells[0]} has {len(vals)} seeds, want {seeds}")
        if cells[0] not in exact or any(abs(x - y) > 0.0051 for x, y in zip(vals, exact[cells[0]])):
            fail(f"{path}: per-seed row {cells[0]} {vals} disagrees with the JSON {exact.get(cells[0])}")
        res[cells[0]] = exact[cells[0]]
    return res


def check_interval(cell, mark, a, b, what):
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    m = sum(d) / n
    if n < 2:
        if not re.fullmatch(rf"{NUM} \(1 seed\)", cell):
            fail(f"{what}: Δ '{cell}' with one seed")
        return
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    g = re.fullmatch(rf"({NUM}) \[({NUM}), ({NUM})\]", cell)
    if not g:
        fail(f"{what}: Δ cell '{cell}' is not 'd [lo, hi]'")
    got = [float(x) for x in g.groups()]
    want = [m, m - half, m + half]
    # the table prints 2 decimals
    if any(not math.isfinite(x) for x in got) or any(abs(x - y) > 0.0051 for x, y in zip(got, want)):
        fail(f"{what}: Δ '{cell}', recomputed from the per-seed table {want}")
    lo, hi = got[1], got[2]
    want_mark = "yes ↑" if lo > 0 else "yes ↓" if hi < 0 else "no"
    if not mark.startswith(want_mark):
        fail(f"{what}: marker '{mark}' for interval [{lo}, {hi}]")


def check_ms(cell, seeds, what):
    pat = rf"({NUM}) ± ({NUM})" if seeds >= 2 else rf"({NUM})"
    g = re.fullmatch(pat, cell)
    if not g:
        fail(f"{what}: '{cell}' is not mean ± std")
    v = [float(x) for x in g.groups()]
    if not all(math.isfinite(x) for x in v) or not 0 <= v[0] <= 100 or (seeds >= 2 and v[1] < 0):
        fail(f"{what}: '{cell}' out of range")


def simple(path, nrows, seeds):
    lines = open(path).read().splitlines()
    h = next((k for k, ln in enumerate(lines) if ln.startswith("| run | seeds |")), None)
    if h is None:
        fail(f"{path}: no '| run | seeds |' table")
    head = [c.strip() for c in lines[h].strip().strip("|").split("|")]
    for col in ("val top-1 (%)", "CI excludes 0", "params", "train img/s", "wall time / run"):
        if col not in head:
            fail(f"{path}: no column '{col}' in {head}")
    rows = rows_of(lines, h)
    if len(rows) != nrows:
        fail(f"{path}: {len(rows)} rows, want {nrows}")
    ps = per_seed(lines, seeds, path)
    base = rows[0][0]
    for r in rows:
        c = dict(zip(head, r))
        if c["seeds"] != str(seeds):
            fail(f"{path}: row {r[0]} has '{c['seeds']}' seeds, want {seeds}")
        check_ms(c["val top-1 (%)"], seeds, f"{path} {r[0]} top-1")
        dcol = next(k for k in head if k.startswith("Δ top-1"))
        if r[0] == base:
            if c[dcol] != "baseline":
                fail(f"{path}: first row's Δ is '{c[dcol]}', want baseline")
            continue
        check_interval(c[dcol], c["CI excludes 0"], ps[r[0]], ps[base], f"{path} {r[0]}")
    print(f"ok {path}: {nrows} rows, {seeds} seed(s), intervals agree with the per-seed numbers")


def matrix(path, nrows, seeds, ncols):
    lines = open(path).read().splitlines()
    h = next((k for k, ln in enumerate(lines) if ln.startswith("| ") and "[95% CI]" in ln), None)
    if h is None:
        fail(f"{path}: no matrix table")
    head = [c.strip() for c in lines[h].strip().strip("|").split("|")]
    rows = rows_of(lines, h)
    if len(rows) != nrows:
        fail(f"{path}: {len(rows)} rows, want {nrows}")
    cols = [k for k in head if k.endswith(" top-1 (%)")]
    if len(cols) != ncols:
        fail(f"{path}: {len(cols)} method columns, want {ncols}: {head}")
    for r in rows:
        c = dict(zip(head, r))
        for k in cols:
            check_ms(c[k], seeds, f"{path} {r[0]} {k}")
        dcols = [i for i, k in enumerate(head) if k.startswith("Δ ")]
        if len(dcols) != ncols - 1:
            fail(f"{path}: {len(dcols)} Δ columns")
        for i in dcols:
            cell, mark = r[i], r[i + 1]
            if seeds >= 2 and not re.fullmatch(rf"{NUM} \[{NUM}, {NUM}\]", cell):
                fail(f"{path}: row {r[0]} Δ '{cell}'")
            if mark not in ("yes ↑", "yes ↓", "no", "n/a") and "zero spread" not in mark:
                fail(f"{path}: row {r[0]} marker '{mark}'")
    print(f"ok {path}: {nrows} rows x {ncols} methods, {seeds} seed(s)")


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "--matrix":
        matrix(a[1], int(a[2]), int(a[3]), int(a[4]))
    elif len(a) == 3:
        simple(a[0], int(a[1]), int(a[2]))
    else:
        print(__doc__)
        sys.exit(2)
