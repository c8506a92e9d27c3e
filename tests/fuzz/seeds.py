"""Valid seed inputs for the mutation fuzzer, generated from fixed seeds.

Everything is tiny on purpose (a 8x8 mixer with 803 parameters, 6 images, a 4-sample shard) so
that one run of a command costs a few milliseconds and the mutations hit structure, not bulk data.
All commands run with the work directory as cwd and relative paths, so a checkpoint written by
`train` (which records its --train path) is resumable from any copy of the directory.
"""
import io
import os
import subprocess
import tarfile

import numpy as np

# The model every seed checkpoint uses; train/--initial-checkpoint runs pass the same flags.
MODEL = ["--model", "mixer_tiny", "--num-classes", "3", "--img-size", "8", "--in-chans", "1",
         "--patch-size", "4", "--embed-dim", "8", "--depth", "1"]
NUM_CLASSES = 3


def _run(mixtape, args, cwd, env):
    p = subprocess.run([mixtape] + args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("seed command failed: mixtape %s\n%s" % (" ".join(args), p.stdout.decode(errors="replace")))


def write_h5data(path, rng, n=6, chunked=False, label_dtype=np.int64):
    import h5py
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    y = (np.arange(n) % NUM_CLASSES).astype(label_dtype)
    with h5py.File(path, "w") as f:
        if chunked:
            f.create_dataset("images", data=x, chunks=(2, 1, 8, 8), compression="gzip", shuffle=True)
            f.create_dataset("labels", data=y, chunks=(3,))
        else:
            f["images"] = x
            f["labels"] = y


def _png_bytes(rng, size, mode):
    from PIL import Image
    c = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    a = rng.integers(0, 256, (size[1], size[0], c), dtype=np.uint8)
    img = Image.fromarray(a[:, :, 0] if c == 1 else a, mode)
    b = io.BytesIO()
    img.save(b, format="PNG")
    return b.getvalue()


def _jpeg_bytes(rng, size, mode, progressive=False):
    from PIL import Image
    c = {"L": 1, "RGB": 3}[mode]
    a = rng.integers(0, 256, (size[1], size[0], c), dtype=np.uint8)
    img = Image.fromarray(a[:, :, 0] if c == 1 else a, mode)
    b = io.BytesIO()
    img.save(b, format="JPEG", quality=90, progressive=progressive)
    return b.getvalue()


def shard_members(rng):
    """(name, bytes) members of the seed shard: PNG and JPEG, gray and RGB, a json extra."""
    return [
        ("s0000.png", _png_bytes(rng, (10, 10), "RGB")), ("s0000.cls", b"0\n"),
        ("s0001.jpg", _jpeg_bytes(rng, (12, 9), "RGB")), ("s0001.cls", b"1"),
        ("s0002.png", _png_bytes(rng, (8, 8), "L")), ("s0002.cls", b"2\n"),
        ("s0002.json", b'{"w": 8}'),
        ("s0003.jpeg", _jpeg_bytes(rng, (9, 11), "L", progressive=True)), ("s0003.cls", b" 1 "),
    ]


def tar_bytes(members):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1700000000
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
    return b.getvalue()


CLASSES_TXT = b"zero\none\ntwo\n"


def make_seeds(mixtape, seed_dir, env):
    """Writes the seeds into seed_dir; returns {kind: [(name, relative path), ...]}."""
    rng = np.random.default_rng(20261204)
    os.makedirs(seed_dir, exist_ok=True)
    write_h5data(os.path.join(seed_dir, "d.h5"), rng)
    write_h5data(os.path.join(seed_dir, "dz.h5"), rng, chunked=True, label_dtype=np.int32)
    _run(mixtape, ["init"] + MODEL + ["--seed", "1", "--threads", "1", "--out", "c.h5"], seed_dir, env)
    # a trained checkpoint: optimizer state, EMA, train_state, data mean/std
    _run(mixtape, ["train"] + MODEL + ["--train", "d.h5", "-b", "2", "--epochs", "1", "--max-steps", "2",
                                       "--threads", "1", "--model-ema", "--seed", "1", "--output", "run"],
         seed_dir, env)
    os.replace(os.path.join(seed_dir, "run", "last.h5"), os.path.join(seed_dir, "t.h5"))
    for f in os.listdir(os.path.join(seed_dir, "run")):
        os.remove(os.path.join(seed_dir, "run", f))
    os.rmdir(os.path.join(seed_dir, "run"))
    _run(mixtape, ["export", "--checkpoint", "c.h5", "--out", "w.safetensors"], seed_dir, env)
    with open(os.path.join(seed_dir, "s.tar"), "wb") as f:
        f.write(tar_bytes(shard_members(rng)))
    with open(os.path.join(seed_dir, "classes.txt"), "wb") as f:
        f.write(CLASSES_TXT)
    return {
        "ckpt": ["c.h5", "t.h5"],
        "h5data": ["d.h5", "dz.h5"],
        "shard": ["s.tar"],
    }


def idx_bytes(rng, n=5, h=8, w=8):
    """IDX images (magic 0x0803, big-endian dims) and labels (0x0801) files."""
    import struct
    imgs = struct.pack(">IIII", 0x803, n, h, w) + rng.integers(0, 256, n * h * w, dtype=np.uint8).tobytes()
    labs = struct.pack(">II", 0x801, n) + bytes(i % NUM_CLASSES for i in range(n))
    return imgs, labs


def cifar_bytes(rng, n=3):
    """CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes (R, G, B planes)."""
    return b"".join(bytes([i % NUM_CLASSES]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes()
                    for i in range(n))


def make_extra_seeds(seed_dir):
    """ImageFolder, IDX and CIFAR sources and a train config (args.yaml) for the other kinds."""
    rng = np.random.default_rng(20261205)
    members = [m for m in shard_members(rng) if m[0].rsplit(".", 1)[1] in ("png", "jpg", "jpeg")]
    root = os.path.join(seed_dir, "imgs")
    for i, (name, data) in enumerate(members):
        d = os.path.join(root, ("zero", "one", "two")[i % NUM_CLASSES])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    imgs, labs = idx_bytes(rng)
    with open(os.path.join(seed_dir, "train-images-idx3-ubyte"), "wb") as f:
        f.write(imgs)
    with open(os.path.join(seed_dir, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(labs)
    with open(os.path.join(seed_dir, "data_batch_1.bin"), "wb") as f:
        f.write(cifar_bytes(rng))
    cfg = ["model: mixer_tiny", "num_classes: 3", "img_size: 8", "in_chans: 1", "patch_size: 4", "embed_dim: 8",
           "depth: 1", "train: d.h5", "batch_size: 2", "epochs: 1", "max_steps: 1", "threads: 1", "workers: 1",
           "seed: 1", "output: out", "lr: 0.001", "opt: adamw", "weight_decay: 0.05", "sched: cosine",
           "warmup_epochs: 0", "smoothing: 0.1", "mixup: 0", "clip_grad: null", "token_mixer: null",
           "opt_betas: [0.9, 0.999]", "mean: [0.5]", "std: [0.25]", "log_interval: 1"]
    with open(os.path.join(seed_dir, "args.yaml"), "w") as f:
        f.write("\n".join(cfg) + "\n")
