#!/usr/bin/env bash
# `mixtape train --grad-checkpointing` gives the same run as without: a few steps with drop
# path and dropout (fp32 on a Mixer, bf16 on a PoolFormer) write identical checkpoints
# (weights and optimizer state, compared exactly with h5py); args.yaml records the flag;
# `bench` takes it.
set -euo pipefail
source "$(dirname "$0")/mpi_common.sh"  # (keeps -e)
require_py h5py numpy
tmpdir grad_ckpt_train

"$PY" - "$T" <<'EOF'
import sys, numpy as np, h5py
r = np.random.default_rng(5)
with h5py.File(f"{sys.argv[1]}/train.h5", "w") as f:
    f["images"] = r.normal(0, 1, (48, 1, 16, 16)).astype(np.float32)
    f["labels"] = r.integers(0, 4, 48).astype(np.int64)
EOF

COMMON=(--train "$T/train.h5" -b 8 --epochs 1 --max-steps 4 --lr 1e-3 --warmup-epochs 0 --threads 2 --seed 3
        --drop-path 0.2 --drop 0.1 --log-interval 1 -j 1 --img-size 16 --in-chans 1 --num-classes 4)
run() { # name, extra flags...
  local name=$1; shift
  "$M" train "${COMMON[@]}" "$@" --output "$T/$name" > "$T/$name.log" 2>&1 || { cat "$T/$name.log"; return 1; }
}
same() { # a b: every /model and /optimizer dataset equal
  "$PY" - "$T/$1/last.h5" "$T/$2/last.h5" <<'EOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
keys = []
a.visititems(lambda k, v: keys.append(k) if isinstance(v, h5py.Dataset) and k.split("/")[0] in ("model", "optimizer") else None)
assert len([k for k in keys if k.startswith("model/")]) > 10, keys
bad = [k for k in keys if k not in b or not np.array_equal(a[k][...], b[k][...])]
assert not bad, f"{len(bad)} of {len(keys)} datasets differ, e.g. {bad[:3]}"
assert a.attrs["step"] == b.attrs["step"] > 0, (a.attrs["step"], b.attrs["step"])
EOF
}

MIX=(--model mixer_tiny --patch-size 4 --embed-dim 32 --depth 3)
run mix "${MIX[@]}"
run mix_ck "${MIX[@]}" --grad-checkpointing
check "mixer fp32: checkpoints identical with --grad-checkpointing" "same mix mix_ck"
check "args.yaml records grad_checkpointing" "grep -qx 'grad_checkpointing: true' $T/mix_ck/args.yaml && grep -qx 'grad_checkpointing: false' $T/mix/args.yaml"
check "--config args.yaml carries the flag on" \
  "'$M' train --config $T/mix_ck/args.yaml --dry-run --output $T/dry >/dev/null 2>&1 && grep -qx 'grad_checkpointing: true' $T/dry/args.yaml"

PF=(--model poolformer_tiny --dims 16,16,32,32 --depths 1,1,2,1 --precision bf16)
run pf "${PF[@]}"
run pf_ck "${PF[@]}" --grad-checkpointing
check "poolformer bf16: checkpoints identical with --grad-checkpointing" "same pf pf_ck"

check "bench --grad-checkpointing runs a train step" \
  "'$M' bench --model mixer_tiny -b 2 --steps 1 --warmup 0 --mode train --threads 2 --grad-checkpointing | grep -q 'peak RSS'"
check "a value after the flag is refused" \
  "! '$M' bench --model mixer_tiny -b 2 --steps 1 --warmup 0 --mode train --grad-checkpointing=2 >/dev/null 2>&1"
# A batch whose activations do not fit: a message naming the remedies and exit 1 (no abort).
# Address-space limits do not apply to sanitizer builds (their shadow memory is reserved up front).
if [ -z "${ASAN_OPTIONS:-}" ]; then
  rc=0; (ulimit -v 1500000; exec "$M" bench --model mixer_s16_224 -b 64 --steps 1 --warmup 0 --mode train \
    --threads 1) > "$T/oom.log" 2>&1 || rc=$?
  check "a batch beyond memory: exit 1 with a message naming --grad-checkpointing" \
    "[ $rc = 1 ] && grep -q 'out of memory.*--grad-checkpointing' $T/oom.log"
else
  echo "note: the out-of-memory check needs an address-space limit, which sanitizer builds do not take; not run"
fi

# Data parallel (when built with MPI): gradients are reduced in buckets while backward runs, each
# once its parameters are final. With many small buckets, overlapped runs (plain, whose 1x1-conv
# MLP weights are read through views, and checkpointed, whose block parameters are final when
# the checkpoint node is) train exactly as the reduction after backward does.
if mpi_available; then
  # Open MPI's own allocations read as leaks under a sanitizer build: leak checks are the
  # single-process runs' job above
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
  PFM=(--model poolformer_tiny --dims 8,8,16,16 --depths 1,1,1,1)
  mpi() { # name, env, flags...
    local name=$1 env=$2; shift 2
    timeout -k 5 120 env $env "${MPI[@]}" -x MIXTAPE_OVERLAP \
      -x MIXTAPE_BUCKET_MB -x ASAN_OPTIONS -np 2 "$M" train "${COMMON[@]}" "${PFM[@]}" "$@" --output "$T/$name" > "$T/$name.log" 2>&1 \
      || { tail -5 "$T/$name.log"; return 1; }
  }
  mpi ref MIXTAPE_OVERLAP=0
  mpi ovl MIXTAPE_BUCKET_MB=0.01
  mpi ovl_ck MIXTAPE_BUCKET_MB=0.01 --grad-checkpointing
  check "mpi: overlapped small buckets train as the reduction after backward" "same ref ovl"
  check "mpi: the same with --grad-checkpointing" "same ref ovl_ck"
else
  echo "note: the data-parallel part needs a binary built with MPI and mpirun; not run"
fi

finish
