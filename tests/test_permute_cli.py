"""`--permute none|patches|global` end to end (eval prints top-1 to 0.01% and loss to 1e-4: compared at
that precision): a permuted run records its permutation in the
checkpoint (and args.yaml); `eval` of that checkpoint applies it without flags and reproduces the
run's validation numbers exactly, while `--permute none` / another seed give different ones;
`predict` (its own data path) applies the same table; `--resume` keeps it and refuses a change;
hostile flag values and checkpoint attributes are refused with messages naming them."""
import json, os, shutil

import harness
from harness import check

np, h5py = harness.require("numpy", "h5py")
import tinydata  # noqa: E402


mt = harness.mt


eval_numbers = harness.eval_figures


T = harness.tempdir("permute")
try:
    tr, va = os.path.join(T, "train.h5"), os.path.join(T, "val.h5")
    tinydata.write_h5_bands(tr, n=256, seed=1)
    tinydata.write_h5_bands(va, n=128, seed=2)
    MODEL = ["--model", "mixer_tiny", "--img-size", "8", "--in-chans", "1", "--num-classes", "4",
             "--patch-size", "4", "--embed-dim", "16", "--depth", "1"]
    COMMON = MODEL + ["--train", tr, "--val", va, "-b", "32", "--lr", "1e-2", "-j", "1", "--threads", "1"]
    run = os.path.join(T, "run")
    rc, out = mt("train", *COMMON, "--epochs", "2", "--permute", "patches", "--permute-seed", "3",
                 "--output", run)
    check(rc == 0, f"train --permute patches runs (rc {rc}) {out[-300:]}")
    check("input permutation: patches, seed 3, patch 4 (--permute)" in out, "train prints the permutation")
    ck = os.path.join(run, "last.h5")
    with h5py.File(ck, "r") as f:
        a = dict(f.attrs)
    check(a.get("data_permute") in ("patches", b"patches") and int(a.get("data_permute_seed", -1)) == 3
          and int(a.get("data_permute_patch", -1)) == 4,
          f"checkpoint records patches / seed 3 / patch 4 (the model's patch size): "
          f"{ {k: a[k] for k in a if 'permute' in k} }")
    yaml = open(os.path.join(run, "args.yaml")).read()
    check("permute: patches" in yaml and "permute_seed: 3" in yaml, "args.yaml records the permutation")
    last = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if "val_top1" in l][-1]

    rc, out = mt("eval", "--checkpoint", ck, "--data", va)
    e = eval_numbers(out)
    check(rc == 0 and e is not None, f"eval runs (rc {rc})")
    check("(checkpoint " + ck + ")" in out, "eval takes the permutation from the checkpoint")
    check(e is not None and abs(e[0] - 100 * last["val_top1"]) <= 0.0051 and abs(e[1] - last["val_loss"]) < 5e-5,
          f"eval with the recorded permutation reproduces the run: {e} vs "
          f"{100 * last['val_top1']:.4f}% loss {last['val_loss']}")
    rc, out = mt("eval", "--checkpoint", ck, "--data", va, "--permute", "none")
    n = eval_numbers(out)
    check(rc == 0 and n is not None and e is not None and n[1] != e[1],
          f"eval --permute none on the same checkpoint gives another loss: {n} vs {e}")
    rc, out = mt("eval", "--checkpoint", ck, "--data", va, "--permute", "patches", "--permute-seed", "4")
    s4 = eval_numbers(out)
    check(rc == 0 and s4 is not None and e is not None and s4[1] != e[1], f"another seed gives another loss: {s4}")
    rc, out = mt("eval", "--checkpoint", ck, "--data", va, "--permute", "patches", "--permute-seed", "3")
    s3 = eval_numbers(out)
    check(rc == 0 and s3 == e, f"the same permutation given as flags gives the same numbers: {s3}")

    # predict reads HDF5 through its own source: the same table must reach it
    pout = os.path.join(T, "pred.h5")
    rc, out = mt("predict", "--checkpoint", ck, "--data", va, "--out", pout)
    check(rc == 0, f"predict runs (rc {rc}) {out[-200:]}")
    if rc == 0:
        with h5py.File(pout, "r") as f:
            top1 = float((f["logits"][...].argmax(1) == f["labels"][...]).mean())
        check(e is not None and abs(100 * top1 - e[0]) <= 0.0051, f"predict's top-1 {100 * top1}% equals eval's {e}")
    rc, out = mt("predict", "--checkpoint", ck, "--data", va, "--out", os.path.join(T, "pred0.h5"),
                 "--permute", "none")
    if rc == 0:
        with h5py.File(os.path.join(T, "pred0.h5"), "r") as f, h5py.File(pout, "r") as g:
            check(not np.array_equal(f["logits"][...], g["logits"][...]), "predict --permute none: other logits")

    # grads (the parity command) applies the recorded permutation too: its logits are predict's
    gout = os.path.join(T, "grads.h5")
    rc, out = mt("grads", "--checkpoint", ck, "--data", va, "-b", "16", "--out", gout)
    check(rc == 0 and "input permutation: patches, seed 3, patch 4 (checkpoint " in out,
          f"grads runs and names the checkpoint's permutation (rc {rc}) {out[-200:]}")
    if rc == 0 and os.path.exists(pout):
        with h5py.File(gout, "r") as f, h5py.File(pout, "r") as g:
            gl, pl = f["logits"][...], g["logits"][:16]
        check(np.allclose(gl, pl, rtol=1e-4, atol=1e-5),
              f"grads' logits equal predict's under the permutation (max diff {np.abs(gl - pl).max():.2e})")

    # an image source (ImageFolder of PNGs): eval's loader and predict's source apply the same table
    fold = os.path.join(T, "folder")
    with h5py.File(va, "r") as f:
        xs, ys = f["images"][...], f["labels"][...]
    for i, (x, y) in enumerate(zip(xs, ys)):
        d = os.path.join(fold, str(int(y)))
        os.makedirs(d, exist_ok=True)
        img = np.clip(x[0] * 40 + 110, 0, 255).astype(np.uint8)
        open(os.path.join(d, f"{i:04d}.png"), "wb").write(tinydata.png_gray(img))
    rc, out = mt("eval", "--checkpoint", ck, "--data", fold)
    ef = eval_numbers(out)
    rc2, out2 = mt("eval", "--checkpoint", ck, "--data", fold, "--permute", "none")
    nf = eval_numbers(out2)
    pf = os.path.join(T, "predf.h5")
    rc3, out3 = mt("predict", "--checkpoint", ck, "--data", fold, "--out", pf)
    check(rc == 0 and rc2 == 0 and rc3 == 0 and ef and nf and ef[1] != nf[1],
          f"ImageFolder: eval with the permutation {ef}, without {nf} (rc {rc} {rc2} {rc3})")
    if rc3 == 0 and ef:
        with h5py.File(pf, "r") as f:
            top1 = float((f["logits"][...].argmax(1) == f["labels"][...]).mean())
        check(abs(100 * top1 - ef[0]) <= 0.0051, f"ImageFolder: predict's top-1 {100 * top1}% equals eval's {ef}")

    # --resume keeps the permutation and refuses another
    rc, out = mt("train", "--resume", run, "--epochs", "3")
    check(rc == 0, f"--resume runs (rc {rc}) {out[-300:]}")
    with h5py.File(ck, "r") as f:
        check(int(f.attrs["epoch"]) == 3 and f.attrs.get("data_permute") in ("patches", b"patches")
              and int(f.attrs["data_permute_seed"]) == 3, "the resumed run's checkpoint keeps the permutation")
    rc, out = mt("train", "--resume", run, "--epochs", "4", "--permute", "global")
    check(rc == 2 and "permute" in out, f"--resume with another --permute is refused (rc {rc}) {out[-200:]}")

    # global, and none records nothing
    rg = os.path.join(T, "rg")
    rc, out = mt("train", *COMMON, "--epochs", "1", "--permute", "global", "--permute-seed", "9", "--output", rg)
    with h5py.File(os.path.join(rg, "last.h5"), "r") as f:
        check(rc == 0 and f.attrs.get("data_permute") in ("global", b"global")
              and int(f.attrs["data_permute_seed"]) == 9, "global run records global / seed 9")
    rn = os.path.join(T, "rn")
    rc, out = mt("train", *COMMON, "--epochs", "1", "--output", rn)
    with h5py.File(os.path.join(rn, "last.h5"), "r") as f:
        check(rc == 0 and "data_permute" not in f.attrs, "an unpermuted run records no permutation")

    # hostile flags: exit 2, the flag named
    for flags, want in [(["--permute-seed", "-1", "--permute", "global"], "--permute-seed"),
                        (["--permute-seed", "4294967296", "--permute", "global"], "--permute-seed"),
                        (["--permute", "patches", "--permute-patch", "0"], "--permute-patch"),
                        (["--permute", "patches", "--permute-patch", "3"], "--permute-patch 3 does not divide the image side 8"),
                        (["--permute", "patches", "--permute-patch", "99999"], "--permute-patch"),
                        (["--permute", "spiral"], "--permute"),
                        (["--permute-seed", "5"], "need --permute")]:
        rc, out = mt("train", *COMMON, "--epochs", "1", "--output", os.path.join(T, "bad"), *flags)
        check(rc == 2 and want in out, f"train {' '.join(flags)}: exit {rc}, names '{want}': {out.strip()[-160:]}")
    rc, out = mt("eval", "--checkpoint", ck, "--data", va, "--permute", "patches", "--permute-patch", "5")
    check(rc == 2 and "--permute-patch 5" in out and "8" in out, f"eval: patch 5 on 8x8 refused: {out.strip()[-160:]}")

    # hostile checkpoint attributes
    for attr, val, want in [("data_permute", "spiral", "data_permute"),
                            ("data_permute_seed", np.int64(-5), "data_permute_seed"),
                            ("data_permute_seed", np.int64(1 << 40), "data_permute_seed"),
                            ("data_permute_patch", np.int64(0), "data_permute_patch"),
                            ("data_permute_patch", np.int64(3), "--permute-patch 3"),
                            ("data_permute_patch", 2.5, "data_permute_patch")]:
        bad = os.path.join(T, "bad.h5")
        shutil.copy(ck, bad)
        with h5py.File(bad, "r+") as f:
            f.attrs[attr] = val
        rc, out = mt("eval", "--checkpoint", bad, "--data", va)
        check(rc in (1, 2) and want in out, f"checkpoint {attr}={val!r}: exit {rc}, names '{want}': {out.strip()[-160:]}")
        rc, out = mt("predict", "--checkpoint", bad, "--data", va, "--out", os.path.join(T, "p.h5"))
        check(rc in (1, 2) and want in out, f"predict, checkpoint {attr}={val!r}: exit {rc}: {out.strip()[-120:]}")
        rc, out = mt("grads", "--checkpoint", bad, "--data", va, "-b", "4", "--out", os.path.join(T, "g.h5"))
        check(rc in (1, 2) and want in out, f"grads, checkpoint {attr}={val!r}: exit {rc}: {out.strip()[-120:]}")

    rc, out = mt("train", "--help")
    check(rc == 0 and "--permute none|patches|global" in out and "--permute-seed" in out and "--permute-patch" in out,
          "train --help lists the permute flags")
finally:
    shutil.rmtree(T, ignore_errors=True)
harness.finish()
