"""`eval` / `predict --precision fp32|bf16`: a bf16 run's logged validation figures are reproduced by
`eval --precision bf16` (top-1 to 0.01%, loss to 1e-4, as eval prints them); fp32 (the default, as
timm's validate.py without --amp) and bf16 give different logits; a bad value is refused naming the
flag."""
import json, os, shutil

import harness
from harness import check

np, h5py = harness.require("numpy", "h5py")
import tinydata  # noqa: E402


mt = harness.mt


eval_numbers = harness.eval_figures


T = harness.tempdir("evalprec")
try:
    tr, va = os.path.join(T, "train.h5"), os.path.join(T, "val.h5")
    tinydata.write_h5_bands(tr, n=256, seed=1)
    tinydata.write_h5_bands(va, n=200, seed=2)
    run = os.path.join(T, "run")
    rc, out = mt("train", "--model", "mixer_tiny", "--img-size", "8", "--in-chans", "1", "--num-classes", "4",
                 "--patch-size", "2", "--embed-dim", "32", "--depth", "2", "--train", tr, "--val", va, "-b", "32",
                 "--lr", "1e-2", "-j", "1", "--threads", "1", "--epochs", "2", "--precision", "bf16",
                 "--output", run)
    check(rc == 0, f"bf16 train runs (rc {rc}) {out[-300:]}")
    ck = os.path.join(run, "last.h5")
    last = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if "val_top1" in l][-1]

    rc, out = mt("eval", "--checkpoint", ck, "--data", va, "--precision", "bf16")
    e = eval_numbers(out)
    check(rc == 0 and e is not None, f"eval --precision bf16 runs (rc {rc}) {out[-200:]}")
    check(e is not None and abs(e[0] - 100 * last["val_top1"]) <= 0.0051 and abs(e[1] - last["val_loss"]) < 5e-5,
          f"eval --precision bf16 reproduces the bf16 run's val: {e} vs {100 * last['val_top1']:.4f}% "
          f"loss {last['val_loss']:.5f}")
    rc, out = mt("eval", "--checkpoint", ck, "--data", va)
    check(rc == 0 and eval_numbers(out) is not None, f"eval (fp32 default) runs (rc {rc})")

    logits = {}
    for p in ("fp32", "bf16"):
        po = os.path.join(T, f"pred_{p}.h5")
        rc, out = mt("predict", "--checkpoint", ck, "--data", va, "--out", po, "--precision", p)
        check(rc == 0, f"predict --precision {p} runs (rc {rc}) {out[-200:]}")
        if rc == 0:
            with h5py.File(po, "r") as f:
                logits[p] = (f["logits"][...], f["labels"][...])
    if len(logits) == 2:
        d = np.abs(logits["fp32"][0] - logits["bf16"][0]).max()
        check(0 < d < 0.5, f"bf16 logits differ from fp32 ones, slightly (max diff {d:.2e})")
        top1 = 100 * float((logits["bf16"][0].argmax(1) == logits["bf16"][1]).mean())
        check(e is not None and abs(top1 - e[0]) <= 0.0051, f"predict --precision bf16 top-1 {top1}% equals eval's")

    for cmd in (["eval", "--checkpoint", ck, "--data", va], ["predict", "--checkpoint", ck, "--data", va, "--out",
                                                              os.path.join(T, "p.h5")]):
        rc, out = mt(*cmd, "--precision", "fp16")
        check(rc == 2 and "--precision" in out, f"{cmd[0]} --precision fp16 refused, naming the flag: {out.strip()[-120:]}")
finally:
    shutil.rmtree(T, ignore_errors=True)
harness.finish()
