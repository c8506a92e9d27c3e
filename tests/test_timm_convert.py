"""timm state_dict <-> mixtape checkpoint conversion (scripts/timm_to_mixtape.py,
scripts/mixtape_to_timm.py): bit-exact round trip, key / shape mismatches
reported clearly with nothing written, and the result loads in mixtape."""
import collections
import contextlib
import io
import json
import os
import runpy
import sys
import tempfile

import harness
from harness import check

h5py, np, torch = harness.require("h5py", "numpy", "torch")
MIXTAPE = harness.MIXTAPE
TO_MT = os.path.join(harness.SRC, "scripts", "timm_to_mixtape.py")
TO_TIMM = os.path.join(harness.SRC, "scripts", "mixtape_to_timm.py")


def run(*cmd):
    """A python script (with this interpreter) or a binary."""
    py = cmd[0].endswith(".py")
    return harness.run(cmd if py else cmd[1:], exe=sys.executable if py else cmd[0], env={"MIXTAPE": MIXTAPE})


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

    # ---- safetensors input (no safetensors package): the test's own writer, F32 and BF16 ----
    import struct

    def st_write(path, tensors, dtype="F32"):
        hdr, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
        for k, a in tensors.items():
            a = np.ascontiguousarray(a, np.float32)
            raw = (a.view(np.uint32) >> 16).astype("<u2").tobytes() if dtype == "BF16" else a.astype("<f4").tobytes()
            hdr[k] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
            blobs.append(raw)
            off += len(raw)
        h = json.dumps(hdr).encode()
        with open(path, "wb") as fh:
            fh.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

    np_ok = {k: v.numpy() for k, v in sd_ok.items()}
    st_write(p("w.safetensors"), np_ok)
    rc, out = run_inproc(TO_MT, p("w.safetensors"), p("st.h5"), "--model", "mixer_tiny", "--mixtape", MIXTAPE)
    ok = rc == 0
    if ok:
        with h5py.File(p("st.h5"), "r") as f:
            ok = all(np.array_equal(f["model"][k][...].view(np.uint32), np_ok[k].view(np.uint32)) for k in np_ok)
    check(ok, f"timm_to_mixtape reads .safetensors bit-exactly ({out.strip()[:200]})")
    st_write(p("bf.safetensors"), np_ok, "BF16")
    rc, out = run_inproc(TO_MT, p("bf.safetensors"), p("bf.h5"), "--model", "mixer_tiny", "--mixtape", MIXTAPE)
    ok = rc == 0 and "bfloat16" in out
    if ok:
        with h5py.File(p("bf.h5"), "r") as f:
            ok = all(np.array_equal(f["model"][k][...].view(np.uint32), (np_ok[k].view(np.uint32) >> 16) << 16) for k in np_ok)
    check(ok, f"BF16 safetensors converted to float32 with a note ({out.strip()[:200]})")
    rc, out = run(MIXTAPE, "export", "--checkpoint", p("ok.h5"), "--out", p("exp.safetensors"))
    rc2, out2 = run_inproc(TO_MT, p("exp.safetensors"), p("exp.h5"), "--model", "mixer_tiny", "--mixtape", MIXTAPE)
    ok = rc == 0 and rc2 == 0
    if ok:
        with h5py.File(p("exp.h5"), "r") as f, h5py.File(p("ok.h5"), "r") as f2:
            ok = all(np.array_equal(f["model"][k][...], f2["model"][k][...]) for k in f2["model"])
    check(ok, f"a `mixtape export` file converts back to the same weights ({out2.strip()[:160]})")
    with open(p("cut.safetensors"), "wb") as fh:
        fh.write(open(p("w.safetensors"), "rb").read()[:-8])
    rc, out = run_inproc(TO_MT, p("cut.safetensors"), p("cut.h5"), "--model", "mixer_tiny", "--mixtape", MIXTAPE)
    check(rc == 2 and "cut.safetensors" in out and "data_offsets" in out and not os.path.exists(p("cut.h5")),
          f"truncated safetensors named with its tensor ({out.strip()[:200]})")

    # ---- the original sail-sg PoolFormer layout maps onto timm's metaformer names ----
    rc, out = run(MIXTAPE, "init", "--model", "poolformer_tiny", "--out", p("pf.h5"))
    with h5py.File(p("pf.h5"), "r") as f:
        pf_shapes = [(k, f["model"][k].shape) for k in f["model"]]

    def sail_name(k):  # written from the sail-sg poolformer.py module tree, the inverse of the script's map
        parts = k.split(".")
        if k.startswith("stem.conv."):
            return "patch_embed.proj." + parts[-1]
        if k.startswith("head.norm."):
            return "norm." + parts[-1]
        if k.startswith("head.fc."):
            return "head." + parts[-1]
        s = int(parts[1])
        if parts[2] == "downsample":
            return f"network.{2 * s - 1}.proj.{parts[-1]}"
        rest = ".".join(parts[4:]).replace("layer_scale1.scale", "layer_scale_1").replace("layer_scale2.scale", "layer_scale_2")
        return f"network.{2 * s}.{parts[3]}.{rest}"

    pf = collections.OrderedDict((sail_name(k), torch.randn(s, generator=g)) for k, s in pf_shapes)
    check(len(pf) == len(pf_shapes) and "network.0.0.layer_scale_1" in pf and "network.1.proj.weight" in pf,
          "test builds a sail-sg PoolFormer state_dict")
    torch.save({"model": pf}, p("sail.pth"))
    rc, out = run_inproc(TO_MT, p("sail.pth"), p("sail.h5"), "--model", "poolformer_tiny", "--mixtape", MIXTAPE)
    ok = rc == 0 and "sail-sg" in out
    if ok:
        with h5py.File(p("sail.h5"), "r") as f:
            ok = all(torch.equal(torch.from_numpy(f["model"][k][...]), pf[sail_name(k)]) for k, _ in pf_shapes)
    check(ok, f"sail-sg PoolFormer keys renamed to timm's, values in place ({out.strip()[:200]})")
    torch.save({"downsample_layers.0.conv.weight": torch.zeros(1)}, p("v2.pth"))
    rc, out = run_inproc(TO_MT, p("v2.pth"), p("v2.h5"), "--model", "poolformer_tiny", "--mixtape", MIXTAPE)
    check(rc == 2 and "not supported" in out, f"MetaFormer v2 layout named as unsupported ({out.strip()[:160]})")

    # ---- formats it cannot read: one clear line each, never torch's weights_only advice ----
    np.savez(p("w.npz"), a=np.zeros(3))
    open(p("w.gguf"), "wb").write(b"GGUF" + b"\0" * 60)
    open(p("w.bin"), "wb").write(b"hello world, not weights")
    import argparse
    torch.save({"state_dict": dict(sd_ok), "args": argparse.Namespace(lr=0.1)}, p("train.pth"))
    for name, needle in (("d.h5", "HDF5"), ("w.npz", "zip"), ("w.gguf", "GGUF"), ("w.bin", "not a safetensors"),
                         ("train.pth", "--trust-pickle")):
        rc, out = run_inproc(TO_MT, p(name), p("x.h5"), "--model", "mixer_tiny", "--mixtape", MIXTAPE)
        line = out.strip()
        check(rc == 2 and needle in line and p(name) in line and "\n" not in line and "Re-running" not in line
              and not os.path.exists(p("x.h5")), f"{name}: {line[:200]}")
    rc, out = run_inproc(TO_MT, p("train.pth"), p("tp.h5"), "--model", "mixer_tiny", "--trust-pickle", "--mixtape", MIXTAPE)
    check(rc == 0, f"--trust-pickle reads a timm train.py checkpoint ({out.strip()[:160]})")

    # ---- mixtape_to_timm --wrap: loadable with torch.load(weights_only=True) ----
    rc, out = run_inproc(TO_TIMM, p("ok.h5"), p("wrap.pth"), "--wrap", "state_dict")
    try:
        obj = torch.load(p("wrap.pth"), weights_only=True)
        ok = rc == 0 and list(obj["state_dict"]) == list(sd_ok) and obj["arch"] == "mixer_tiny" \
            and json.loads(obj["mixtape_config"])["name"] == "mixer_tiny" \
            and all(torch.equal(obj["state_dict"][k], sd_ok[k]) for k in sd_ok)
        why = ""
    except Exception as e:  # noqa: BLE001
        ok, why = False, str(e)[-200:]
    check(ok, f"--wrap state_dict loads with weights_only=True {why}")

harness.finish()
