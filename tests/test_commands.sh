#!/bin/bash
# End-to-end checks of init / inspect / predict / grads / models and of the
# command-line error contract (exit code 2 with a message naming the culprit).
# Env: MIXTAPE (binary), MIXTAPE_PYTHON (python with h5py + numpy).
set -u
source "$(dirname "$0")/common.sh"
require_py h5py numpy
tmpdir cmds

# ---- a small dataset: 6 grayscale 28x28 images, int8 labels; and a 3-channel one ----
"$PY" - "$T" <<'PYEOF' || { echo "FAIL cannot make the test data with $PY"; exit 1; }
import sys, numpy as np, h5py
t = sys.argv[1]
rng = np.random.default_rng(0)
with h5py.File(f"{t}/d.h5", "w") as f:
    f["images"] = rng.standard_normal((6, 1, 28, 28)).astype(np.float32)
    f["labels"] = np.array([3, 1, 4, 1, 5, 9], dtype=np.int8)
with h5py.File(f"{t}/nolabels.h5", "w") as f:
    f["images"] = rng.standard_normal((5, 1, 28, 28)).astype(np.float32)
with h5py.File(f"{t}/rgb.h5", "w") as f:
    f["images"] = rng.standard_normal((2, 3, 28, 28)).astype(np.float32)
    f["labels"] = np.array([0, 1], dtype=np.int64)
with h5py.File(f"{t}/badlabels.h5", "w") as f:
    f["images"] = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    f["labels"] = np.array([0, 1, 2], dtype=np.int32)
PYEOF

# ---- help and models ----
for c in models init predict grads inspect; do expect 0 "usage: mixtape $c" -- "$M" $c --help; done
expect 0 "mixer_tiny" -- "$M" models

# ---- init / inspect ----
expect 0 "wrote" -- "$M" init --model mixer_tiny --seed 1 --threads 1 --out "$T/c.h5"
expect 0 "blocks.0.mlp_tokens.fc1.weight" -- "$M" inspect "$T/c.h5"
grep -q '"num_classes": 10' "$T/out" || bad "inspect does not show the config"
expect 0 "wrote" -- "$M" init --model poolformer_tiny --num-classes 7 --img-size 32 --in-chans 3 \
    --token-mixer pool,identity,pool,identity --drop-path 0.1 --drop 0.0 --out "$T/pf.h5"
ls "$T" | grep -q '\.tmp\.' && bad "temp file left behind"

# ---- predict / grads ----
expect 0 "wrote" -- "$M" predict --checkpoint "$T/c.h5" --data "$T/d.h5" -b 4 --out "$T/p.h5"
expect 0 "wrote" -- "$M" predict --checkpoint "$T/c.h5" --data "$T/nolabels.h5" --batch-size 2 --out "$T/p2.h5"
expect 0 "wrote" -- "$M" grads --checkpoint "$T/c.h5" --data "$T/d.h5" -b 4 --out "$T/g.h5"

"$PY" - "$T" <<'PYEOF' || bad "h5py checks of the outputs"
import sys, json, numpy as np, h5py
t = sys.argv[1]
with h5py.File(f"{t}/c.h5", "r") as f:
    assert f.attrs["format"] == "mixtape", f.attrs["format"]
    assert int(f.attrs["format_version"]) >= 1
    cfg = json.loads(f.attrs["config"])
    assert cfg["name"] == "mixer_tiny" and cfg["num_classes"] == 10, cfg
    assert int(f.attrs["epoch"]) == 0
    keys = list(f["model"])
    assert keys[0] == "stem.proj.weight", keys[:3]          # timm's order, not alphabetical
    assert f["model/stem.proj.weight"].shape == (128, 1, 4, 4)
    assert f["model/head.weight"].dtype == np.float32
    shapes = {k: f["model"][k].shape for k in keys}
with h5py.File(f"{t}/pf.h5", "r") as f:
    cfg = json.loads(f.attrs["config"])
    assert cfg["num_classes"] == 7 and cfg["img_size"] == 32 and cfg["in_chans"] == 3, cfg
    assert abs(cfg["drop_path_rate"] - 0.1) < 1e-6, cfg
    assert cfg["token_mixer"][:2] == ["pool", "identity"], cfg
with h5py.File(f"{t}/p.h5", "r") as f:
    lg = f["logits"][...]
    assert lg.shape == (6, 10) and lg.dtype == np.float32 and np.isfinite(lg).all()
    assert list(f["labels"][...]) == [3, 1, 4, 1, 5, 9]
with h5py.File(f"{t}/p2.h5", "r") as f:
    assert f["logits"].shape == (5, 10) and "labels" not in f
with h5py.File(f"{t}/g.h5", "r") as f:
    loss = f["loss"][()]
    assert f["loss"].shape == () and np.isfinite(loss) and 0.5 < loss < 10, loss
    assert list(f["grads"]) == keys, "grads keys differ from model keys"
    for k in keys:
        g = f["grads"][k]
        assert g.shape == shapes[k] and np.isfinite(g[...]).all(), k
    assert np.abs(f["grads/head.weight"][...]).sum() > 0
    # same model, dropout off: the batch's logits agree with predict's
    assert np.allclose(f["logits"][...], lg[:4], atol=1e-4), "grads logits != predict logits"
    # loss is the mean cross-entropy of those logits
    z = f["logits"][...].astype(np.float64); y = f["labels"][...]
    ce = (np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - z[np.arange(4), y]).mean()
    assert abs(ce - loss) < 1e-4, (ce, loss)
print("h5py checks passed")
PYEOF

# ---- bad input: exit 2 with a message naming the culprit ----
expect 2 "no_such_model" -- "$M" init --model no_such_model --out "$T/x.h5"
expect 2 "--bogus-flag" -- "$M" init --model mixer_tiny --bogus-flag 3 --out "$T/x.h5"
expect 2 "--bogus-flag" -- "$M" predict --checkpoint "$T/c.h5" --data "$T/d.h5" --out "$T/x.h5" --bogus-flag
expect 2 "num-classes" -- "$M" init --model mixer_tiny --num-classes zero --out "$T/x.h5"
expect 2 "$T/missing.h5" -- "$M" inspect "$T/missing.h5"
expect 2 "$T/missing.h5" -- "$M" predict --checkpoint "$T/missing.h5" --data "$T/d.h5" --out "$T/x.h5"
expect 2 "$T/missing_data.h5" -- "$M" predict --checkpoint "$T/c.h5" --data "$T/missing_data.h5" --out "$T/x.h5"
expect 2 "(3,28,28)" -- "$M" grads --checkpoint "$T/c.h5" --data "$T/rgb.h5" -b 2 --out "$T/x.h5"
expect 2 "no labels" -- "$M" grads --checkpoint "$T/c.h5" --data "$T/nolabels.h5" -b 2 --out "$T/x.h5"
expect 2 "labels" -- "$M" predict --checkpoint "$T/c.h5" --data "$T/badlabels.h5" --out "$T/x.h5"
expect 2 "not an HDF5 file" -- "$M" inspect "$MIXTAPE_SRC/tests/test_commands.sh"
expect 1 "$T/no/such/dir/c.h5" -- "$M" init --model mixer_tiny --out "$T/no/such/dir/c.h5"
[ -e "$T/x.h5" ] && bad "a failed command left its output behind"

# shape mismatch: a 5-class checkpoint whose config claims 10 classes
expect 0 "wrote" -- "$M" init --model mixer_tiny --num-classes 5 --out "$T/c5.h5"
"$PY" - "$T" <<'PYEOF' || bad "cannot edit c5.h5"
import sys, json, h5py
with h5py.File(f"{sys.argv[1]}/c5.h5", "r+") as f:
    cfg = json.loads(f.attrs["config"]); cfg["num_classes"] = 10
    f.attrs["config"] = json.dumps(cfg)
PYEOF
expect 2 "/model/head.weight has shape (5,128) but the model wants (10,128)" -- \
    "$M" predict --checkpoint "$T/c5.h5" --data "$T/d.h5" --out "$T/x.h5"
expect 2 "/model/head.weight has shape (5,128)" -- "$M" grads --checkpoint "$T/c5.h5" --data "$T/d.h5" -b 2 --out "$T/x.h5"
# truncated checkpoint
head -c 3000 "$T/c.h5" > "$T/trunc.h5"
expect 2 "trunc.h5" -- "$M" predict --checkpoint "$T/trunc.h5" --data "$T/d.h5" --out "$T/x.h5"
expect 2 "trunc.h5" -- "$M" inspect "$T/trunc.h5"

finish
