"""timm state_dict <-> mixtape checkpoint conversion (scripts/timm_to_mixtape.py,
scripts/mixtape_to_timm.py): bit-exact round trip, key / shape mismatches
reported clearly with nothing written, and the result loads in mixtape."""
import collections
import contextlib
import io
import json
import os
import runpy
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

MIXTAPE = os.environ["MIXTAPE"]
SRC = os.environ.get("MIXTAPE_SRC", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TO_MT = os.path.join(SRC, "scripts", "timm_to_mixtape.py")
TO_TIMM = os.path.join(SRC, "scripts", "mixtape_to_timm.py")
failures = 0


def check(cond, msg):
    global failures
    if cond:
        print(f"ok   {msg}")
    else:
        failures += 1
        print(f"FAIL {msg}")


def run(*cmd):
    r = subprocess.run([sys.executable, *cmd] if cmd[0].endswith(".py") else list(cmd),
                       capture_output=True, text=True, env=dict(os.environ, MIXTAPE=MIXTAPE))
    return r.returncode, r.stdout + r.stderr


def run_inproc(script, *args):
    """The script's main() in this process (importing torch once per script
    run dominates the test time otherwise); same exit codes and messages."""
    out = io.StringIO()
    saved = sys.argv
    sys.argv = [script, *args]
    rc = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved
    return rc, out.getvalue()


def bits(t):
    return t.contiguous().view(torch.int32)


with tempfile.TemporaryDirectory() as td:
    p = lambda n: os.path.join(td, n)  # noqa: E731
    # the model's keys and shapes, in timm's order
    rc, out = run(MIXTAPE, "init", "--model", "mixer_tiny", "--out", p("ref.h5"))
    check(rc == 0, f"mixtape init ({out.strip()})")
    with h5py.File(p("ref.h5"), "r") as f:
        shapes = [(k, f["model"][k].shape) for k in f["model"]]
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict((k, torch.randn(s, generator=g)) for k, s in shapes)
    # awkward values must survive bit for bit
    w = sd["head.weight"].view(-1)
    w[:6] = torch.tensor([-0.0, float("inf"), -float("inf"), 1e-45, 3.4028235e38, -1.17549435e-38])
    w[6] = float("nan")
    torch.save({"state_dict": sd, "epoch": 7}, p("in.pth"))

    rc, out = run_inproc(TO_MT, p("in.pth"), p("c.h5"), "--model", "mixer_tiny", "--mixtape", MIXTAPE)
    check(rc == 0, f"timm_to_mixtape ({out.strip()})")
    rc, out = run_inproc(TO_TIMM, p("c.h5"), p("back.pth"))
    check(rc == 0, f"mixtape_to_timm ({out.strip()})")
    back = torch.load(p("back.pth"))
    check(list(back) == list(sd), "round trip keeps keys and their order")
    check(all(back[k].dtype == torch.float32 and back[k].shape == sd[k].shape and torch.equal(bits(back[k]), bits(sd[k]))
              for k in sd), "round trip is bit-exact")

    with h5py.File(p("c.h5"), "r") as f:
        check(f.attrs["format"] == "mixtape" and json.loads(f.attrs["config"])["name"] == "mixer_tiny",
              "attributes come from mixtape init")
        check(all(f["model"][k].dtype == np.float32 for k in f["model"]), "datasets are float32")
        # the documented h5py recipe
        sd2 = {k: torch.from_numpy(f["model"][k][...]) for k in f["model"]}
        check(all(torch.equal(bits(sd2[k]), bits(sd[k])) for k in sd), "h5py recipe gives the state_dict")

    # mixtape itself loads the converted checkpoint (strict load)
    with h5py.File(p("d.h5"), "w") as f:
        f["images"] = np.zeros((2, 1, 28, 28), np.float32)
        f["labels"] = np.array([1, 2])
    sd_ok = collections.OrderedDict((k, torch.randn(s, generator=g) * 0.02) for k, s in shapes)
    # a plain dict with DataParallel's 'module.' prefix
    torch.save({"module." + k: v for k, v in sd_ok.items()}, p("dp.pth"))
    rc, out = run_inproc(TO_MT, p("dp.pth"), p("ok.h5"), "--model", "mixer_tiny", "--mixtape", MIXTAPE)
    check(rc == 0, f"'module.' prefix stripped ({out.strip()})")
    rc2, out2 = run(MIXTAPE, "predict", "--checkpoint", p("ok.h5"), "--data", p("d.h5"), "--out", p("pred.h5"))
    check(rc == 0 and rc2 == 0, f"mixtape predict loads a converted checkpoint ({out2.strip()})")
    rc, out = run(MIXTAPE, "inspect", p("ok.h5"))
    check(rc == 0 and "head.weight" in out, "mixtape inspect reads a converted checkpoint")

    # mismatches: shape, missing, unexpected -> exit 2, all listed, nothing written
    bad = collections.OrderedDict(sd_ok)
    bad["head.weight"] = torch.zeros(5, 128)
    del bad["norm.bias"]
    bad["extra.weight"] = torch.zeros(3)
    torch.save(bad, p("bad.pth"))
    rc, out = run_inproc(TO_MT, p("bad.pth"), p("bad.h5"), "--model", "mixer_tiny", "--mixtape", MIXTAPE)
    check(rc == 2, f"mismatch exits 2 (got {rc})")
    check("head.weight" in out and "(5, 128)" in out and "(10, 128)" in out, "shape mismatch names key and shapes")
    check("norm.bias" in out and "missing" in out, "missing key reported")
    check("extra.weight" in out, "unexpected key reported")
    check(not os.path.exists(p("bad.h5")) and not any(".tmp." in n for n in os.listdir(td)), "nothing written")
    print(out.strip())

    # the matching override fixes the head
    bad5 = collections.OrderedDict(sd_ok)
    bad5["head.weight"] = torch.randn(5, 128, generator=g)
    bad5["head.bias"] = torch.randn(5, generator=g)
    torch.save(bad5, p("c5.pth"))
    rc, out = run_inproc(TO_MT, p("c5.pth"), p("c5.h5"), "--model", "mixer_tiny", "--num-classes", "5", "--mixtape", MIXTAPE)
    check(rc == 0, f"--num-classes override passed to mixtape init ({out.strip()})")
    if rc == 0:
        with h5py.File(p("c5.h5"), "r") as f:
            check(json.loads(f.attrs["config"])["num_classes"] == 5 and f["model/head.weight"].shape == (5, 128),
                  "override recorded in the config")

    # bad inputs
    rc, out = run(TO_MT, p("nope.pth"), p("x.h5"), "--model", "mixer_tiny", "--mixtape", MIXTAPE)
    check(rc == 2 and "nope.pth" in out, "missing input file named")
    rc, out = run(TO_MT, p("in.pth"), p("x.h5"), "--model", "no_such_model", "--mixtape", MIXTAPE)
    check(rc == 2 and "no_such_model" in out, "unknown model named")
    rc, out = run(TO_TIMM, p("d.h5"), p("x.pth"))
    check(rc == 2 and "not a mixtape checkpoint" in out, "non-checkpoint HDF5 rejected")

sys.exit(1 if failures else 0)
