"""Every `mixtape train` flag survives args.yaml exactly.

The flag list comes from `mixtape train --list-flags` (the declarations the parser itself
uses). Each flag gets a valid non-default value derived from its type, range and choices;
`--dry-run` writes args.yaml; a second dry run loads it with `--config` and must write
the same file. A flag declared without help or range, or one that is not recorded in
args.yaml, fails the test; a flag read without a declaration is an unknown flag."""
import json
import math
import os
import struct
import tempfile

import harness
from harness import check


def run(args):
    r = harness.run(args, 60)
    return r.rc, r.out, r.err


def load_yaml(path):
    """The flat YAML args_dump_yaml writes: `key: value`, lists as `- item` lines."""
    out, key = {}, None
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("- "):
            out[key] = (out[key] + "," if out[key] else "") + unquote(line[2:])
            continue
        k, _, v = line.partition(": ") if ": " in line else line.partition(":")
        key = k
        out[k] = unquote(v.strip())
    return out


def unquote(v):
    if len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return v


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def pick(f):
    """A valid value != the default, from the declaration alone."""
    t, d, lo, hi = f["type"], f["default"], f["min"], f["max"]
    if t == "bool":
        return "false" if d == "true" else "true"
    if t == "choice":
        cs = f["choices"].split("|")
        return next((c for c in cs if c != d), cs[0])  # a single choice (--mixup-mode batch) is its default
    if t == "int":
        if d is None:
            return str(int(lo))
        d = int(d)
        return str(d + 1 if d + 1 <= hi else d - 1)
    if t == "float":
        if d is None:
            return repr(lo if lo > 0 else min(hi, 0.5))
        d = float(d)
        for c in (d * 0.5, (d + hi) / 2, lo, hi):
            if lo <= c <= hi and c != d:
                return repr(c)
    if t in ("list", "ints"):
        n = len(d.split(",")) if d and d != "none" else 2
        if t == "ints":
            return ",".join([str(int(lo))] * n)
        return ",".join(repr(lo + (hi - lo) * (k + 1) / (n + 2)) for k in range(n))
    if t == "str":
        if f["examples"]:
            return next(c for c in f["examples"].split("|") if c != d)
        return "v_" + f["name"][2:]
    raise AssertionError("no value for %s" % f)


def same(set_value, written, t):
    if t in ("float", "list"):
        a = [float(x) for x in set_value.split(",")]
        b = [float(x) for x in written.split(",")]
        # aug values are stored as fp32 and written in their shortest exact form
        return len(a) == len(b) and all(x == y or f32(x) == f32(y) for x, y in zip(a, b))
    return set_value == written


def main():
    rc, out, err = run(["train", "--list-flags"])
    check(rc == 0, "train --list-flags exits 0 (%d %s)" % (rc, err.strip()))
    flags = [json.loads(l) for l in out.splitlines() if l.strip()]
    check(len(flags) >= 90, "%d train flags listed" % len(flags))
    names = [f["name"] for f in flags]
    check(len(names) == len(set(names)), "each flag declared once")
    undocumented = [f["name"] for f in flags if not f["help"]]
    check(not undocumented, "every flag has a one-line help: missing %s" % undocumented)
    unbounded = [f["name"] for f in flags
                 if f["type"] in ("int", "float", "list", "ints")
                 and (f["min"] is None or f["max"] is None or not math.isfinite(f["min"]) or not math.isfinite(f["max"]))]
    check(not unbounded, "every numeric flag has a finite range: missing %s" % unbounded)
    for n in ("--scale", "--ratio", "--color-jitter", "--cutmix-minmax", "--mean", "--std", "--opt-betas"):
        f = next((f for f in flags if f["name"] == n), None)
        check(f is not None and f["type"] == "list" and f["yaml"], "%s is a recorded list flag" % n)
    aa = next(f for f in flags if f["name"] == "--aa")
    check(aa["default"] == "none", "--aa default is what the code uses (none), got %s" % aa["default"])

    with tempfile.TemporaryDirectory() as T:
        # hierarchical-only overrides need a poolformer, isotropic-only ones a mixer
        for model, skip in (("poolformer_tiny", "isotropic"), ("mixer_tiny", "hierarchical")):
            args, want = [], {}
            for f in flags:
                if f["name"] in ("--config", "--dry-run", "--output") or f["scope"] == skip:
                    continue
                v = model if f["name"] == "--model" else pick(f)
                args.append(f["name"] + "=" + v)
                want[f["name"]] = v
            d1, d2 = os.path.join(T, model + "1"), os.path.join(T, model + "2")
            rc, out, err = run(["train", "--dry-run", "--output", d1] + args)
            check(rc == 0, "%s: dry run with %d non-default flags exits 0 (%d %s)" % (model, len(args), rc, err.strip()))
            if rc:
                continue
            y1 = load_yaml(os.path.join(d1, "args.yaml"))
            recorded = {f["yaml"] for f in flags if f["yaml"]}
            check(set(y1) == recorded, "%s: args.yaml has exactly the recorded flags (extra %s, missing %s)"
                  % (model, sorted(set(y1) - recorded), sorted(recorded - set(y1))))
            bad = []
            for f in flags:
                if f["name"] in want and f["yaml"]:
                    if not same(want[f["name"]], y1.get(f["yaml"], "?"), f["type"]):
                        bad.append("%s=%s -> %s" % (f["name"], want[f["name"]], y1.get(f["yaml"])))
            check(not bad, "%s: every value is recorded as set: %s" % (model, bad[:5]))
            rc, out, err = run(["train", "--dry-run", "--config", os.path.join(d1, "args.yaml"), "--output", d2])
            check(rc == 0, "%s: --config args.yaml parses (%d %s)" % (model, rc, err.strip()))
            if rc:
                continue
            y2 = load_yaml(os.path.join(d2, "args.yaml"))
            diff = {k: (y1.get(k), y2.get(k)) for k in set(y1) | set(y2) if k != "output" and y1.get(k) != y2.get(k)}
            check(not diff, "%s: the reloaded run writes the same args.yaml: %s" % (model, diff))
            check(y2.get("output") == d2, "%s: the command line wins over the config (--output)" % model)

        # list-valued flags given the timm way (several arguments) land in args.yaml
        d3 = os.path.join(T, "lists")
        rc, out, err = run(["train", "--dry-run", "--model", "mixer_tiny", "--train", "x", "--output", d3,
                            "--scale", "0.5", "0.75", "--mean", "0.5", "0.25", "0.125", "--color-jitter", "0.3"])
        check(rc == 0, "list flags as separate arguments parse (%s)" % err.strip())
        if rc == 0:
            y = load_yaml(os.path.join(d3, "args.yaml"))
            check(y.get("scale") == "0.5,0.75" and y.get("mean") == "0.5,0.25,0.125" and y.get("color_jitter") == "0.3,0.3,0.3",
                  "args.yaml records --scale --mean --color-jitter: %s %s %s"
                  % (y.get("scale"), y.get("mean"), y.get("color_jitter")))
    harness.finish()


if __name__ == "__main__":
    main()
