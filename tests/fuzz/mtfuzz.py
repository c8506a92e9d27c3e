#!/usr/bin/python3
"""Mutation fuzzer over mixtape's untrusted inputs: checkpoints, HDF5 data files, tar shards.

Seeds are generated from fixed seeds (seeds.py), mutated (mutate.py), and each mutated input is run
through one real command of the `mixtape` binary in a fresh directory, with a timeout. Outcomes:

  ok      exit 0                                 error   exit 1/2 with a message
  crash   a signal, another exit code, or an ASan/UBSan report
  hang    the timeout expired
  debris  a temporary/unexpected file left behind, an input modified, or an output file left
          after a failed run
  silent  exit 1/2 without any message
  known   a crash inside a third-party library listed in KNOWN (reported, not a failure)
  nan-ok  eval exited 0 reporting a NaN loss or accuracy, or train a NaN validation figure (NaN
          is a failure, never a plausible result)
  escape  the run read a file the input only points to (HDF5 external storage / external link
          target `outside*`, detected by its access time)

Input i is generated from random.Random("<seed>:<i>") alone, so `--seed S --only i` replays it; the
inputs of every failing case are also saved under --out with cmd.sh, stderr.txt and meta.json.
"""
import argparse
import collections
import hashlib
import json
import os
import random
import re
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mutate as mu  # noqa: E402
import seeds as sd  # noqa: E402

KINDS = ("ckpt", "h5data", "shard", "imagefolder", "convert", "yaml", "safetensors")
# input i has kind KIND_CYCLE[i % len] (restricted to --kinds): checkpoints, HDF5 data and shards
# get most of the budget
KIND_CYCLE = ("ckpt", "h5data", "shard", "ckpt", "h5data", "shard", "ckpt", "imagefolder", "convert", "yaml",
              "safetensors")
ASAN_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "asan.supp")
FAIL_CLASSES = ("crash", "hang", "debris", "escape", "nan-ok", "silent")
RUN = ["--threads", "1"]
TRAIN = ["-b", "2", "--epochs", "1", "--max-steps", "2", "--warmup-epochs", "0", "-j", "1", "--log-interval", "1"]

# command name -> argv after the binary; IN is the mutated input, the rest are pristine seeds
COMMANDS = {
    "ckpt": {
        "inspect": ["inspect", "IN"],
        "eval": ["eval", "--checkpoint", "IN", "--data", "d.h5", "-b", "3"] + RUN,
        "eval-ema": ["eval", "--checkpoint", "IN", "--data", "d.h5", "-b", "3", "--ema"] + RUN,
        "predict": ["predict", "--checkpoint", "IN", "--data", "d.h5", "-b", "4", "--out", "out.h5"] + RUN,
        "grads": ["grads", "--checkpoint", "IN", "--data", "d.h5", "-b", "2", "--out", "out.h5"] + RUN,
        "finetune": ["train"] + sd.MODEL + ["--initial-checkpoint", "IN", "--train", "d.h5", "--output", "out"]
        + TRAIN + RUN,
        "export": ["export", "--checkpoint", "IN", "--out", "out.safetensors"],
        "resume": ["train", "--resume", "IN", "--train", "d.h5", "-b", "2", "--epochs", "2", "--max-steps", "3", "--model-ema",
                   "-j", "1", "--output", "out"] + RUN,
    },
    "h5data": {
        "eval": ["eval", "--checkpoint", "c.h5", "--data", "IN", "-b", "4"] + RUN,
        "predict": ["predict", "--checkpoint", "c.h5", "--data", "IN", "-b", "4", "--out", "out.h5"] + RUN,
        "grads": ["grads", "--checkpoint", "c.h5", "--data", "IN", "-b", "2", "--out", "out.h5"] + RUN,
        "train": ["train"] + sd.MODEL + ["--train", "IN", "--val", "IN", "--output", "out"] + TRAIN + RUN,
    },
    "shard": {
        # the seeds' images are RGB, the model grey: --data-convert lets them through the data check
        "eval": ["eval", "--checkpoint", "c.h5", "--data", "IN", "-b", "2", "--data-convert"] + RUN,
        "train": ["train"] + sd.MODEL + ["--train", "IN", "--val", "IN", "--output", "out", "--shuffle-buffer", "4",
                                         "--data-convert"] + TRAIN + RUN,
        "predict": ["predict", "--checkpoint", "c.h5", "--data", "IN", "-b", "2", "--out", "out.h5",
                    "--out-csv", "out.csv"] + RUN,
    },
    "safetensors": {
        "import": ["import", "IN", "--out", "out.h5"] + RUN,
        "import-model": ["import", "IN"] + sd.MODEL + ["--out", "out.h5"] + RUN,
        "finetune": ["train"] + sd.MODEL + ["--initial-checkpoint", "IN", "--train", "d.h5", "--output", "out"]
        + TRAIN + RUN,
    },
    "imagefolder": {
        "eval": ["eval", "--checkpoint", "c.h5", "--data", "imgs", "-b", "2", "--data-convert"] + RUN,
        "train": ["train"] + sd.MODEL + ["--train", "imgs", "--output", "out", "--data-convert"] + TRAIN + RUN,
        "shards": ["shards", "--from", "imagefolder", "imgs", "--out", "out/f", "--per-shard", "2"],
        "predict": ["predict", "--checkpoint", "c.h5", "--data", "imgs", "-b", "2", "--out-jsonl", "out.jsonl"] + RUN,
    },
    "convert": {
        "idx": ["shards", "--from", "idx", "train-images-idx3-ubyte", "--out", "out/i", "--per-shard", "2"],
        "idx-labels": ["shards", "--from", "idx", "train-images-idx3-ubyte", "--labels", "train-labels-idx1-ubyte",
                       "--out", "out/i"],
        "cifar": ["shards", "--from", "cifar", "data_batch_1.bin", "--out", "out/c", "--per-shard", "2"],
        "cifar-dir": ["shards", "--from", "cifar", ".", "--out", "out/c"],
    },
    "yaml": {
        "train": ["train", "--config", "args.yaml"],
        "train-flags": ["train", "--config", "args.yaml", "--max-steps", "1", "--epochs", "1"],
    },
}
# output files of a command: allowed after exit 0, debris after a failure
OUTPUTS = {"predict": ("out.h5", "out.csv", "out.jsonl"), "grads": ("out.h5",), "export": ("out.safetensors",),
           "import": ("out.h5",), "import-model": ("out.h5",)}
# The work directory is on tmpfs (RAM): bounds on what one input and one run may occupy, and the
# free space below which the fuzzer stops instead of starting more runs.
MAX_CASE_BYTES = 64 << 20
MAX_RUN_BYTES = 256 << 20
MIN_FREE_BYTES = 1 << 30
FSIZE_LIMIT = 1 << 30  # RLIMIT_FSIZE of the fuzzer and its children (a mutation truncates to 1 GiB)
LAST_STATS = {}  # kind -> class -> count of the last main() call (for tests/test_fuzz.py)
LAST_FAILURES = []  # (class, kind, command, signature, count, reproducer dir) of the last main() call
SAN_MARKERS = ("ERROR: AddressSanitizer", "AddressSanitizer:DEADLYSIGNAL", "runtime error:",
               "ERROR: LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer", "SUMMARY: AddressSanitizer")


# ------------------------------------------------------------------ input generation
class Case:
    def __init__(self, index, kind, cmd, desc, root, argv, out_dirs=("out",)):
        self.index, self.kind, self.cmd, self.desc, self.root, self.argv = index, kind, cmd, desc, root, argv
        self.out_dirs = tuple(out_dirs)  # run directories the command may create (relative to its cwd)


def config_output_dirs(text):
    """Run directories a (mutated) train config names: every `output:` value, and the default
    parent of `experiment:` runs, as mixtape's YAML reader would see them (key with '-' or '_',
    value up to a ' #' comment, quotes stripped). A renamed output is the run's, not debris."""
    dirs = ["out"]
    for line in text.split(b"\n"):
        key, sep, val = line.partition(b":")
        key = key.strip().replace(b"-", b"_")
        if not sep or key not in (b"output", b"experiment"):
            continue
        val = val.split(b" #", 1)[0].strip().strip(b"'\"").strip()
        if key == b"experiment":
            dirs.append("output")
        if key == b"output" and val:
            v = os.fsdecode(val)
            while v.startswith("./"):
                v = v[2:]
            v = v.rstrip("/")
            if v and v not in (".", "..") and not v.startswith(("/", "../")):
                dirs.append(v)
    return dirs


def _in_dirs(rel, dirs):
    return any(rel == d + "/" or rel.startswith(d + "/") for d in dirs)


def printable(s):
    """A path or message with undecodable file-name bytes (surrogate escapes) shown as \\xNN, so
    printing it or writing it to a UTF-8 file cannot raise."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _h5_mutation(rng, path, kind, outside):
    import h5py
    descs = []
    for _ in range(rng.choice((1, 1, 1, 2))):
        with h5py.File(path, "r+") as f:
            if kind == "ckpt":
                r = rng.random()
                if r < 0.15 and isinstance(f.attrs.get("config"), (str, bytes)):
                    c = f.attrs["config"]
                    t, d = mu.mutate_config_struct(rng, c.decode("latin-1") if isinstance(c, bytes) else c)
                    f.attrs["config"] = t
                    descs.append(d)
                elif r < 0.45:
                    keys = sorted(f.attrs) + ["zz_unknown"]
                    weights = ["config"] * 4 + ["train_state"] * 2 + keys
                    descs.append(mu.mutate_h5_attr(rng, f, rng.choice(weights)))
                elif r < 0.52 and "optimizer" in f:
                    descs.append("optimizer " + mu.mutate_h5_attr(rng, f["optimizer"], rng.choice(["name", "step", "zz"])))
                else:
                    names = mu._all_datasets(f)
                    if not names:
                        continue
                    descs.append(mu.mutate_h5_dataset(rng, f, rng.choice(names), outside))
            else:
                if rng.random() < 0.12:
                    descs.append(mu.mutate_h5_attr(rng, f, rng.choice(["zz", "images", "labels", "classes"])))
                else:
                    names = [n for n in ("images", "labels", "images", "labels") if n in f] or mu._all_datasets(f)
                    if not names:
                        continue
                    descs.append(mu.mutate_h5_dataset(rng, f, rng.choice(names), outside))
    return "; ".join(descs)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def make_case(index, seed, seed_dir, seed_files, kinds, stage):
    """Writes case `index` into directory `stage` (pristine inputs); returns the Case."""
    rng = random.Random("%s:%d" % (seed, index))
    cycle = [k for k in KIND_CYCLE if k in kinds]
    kind = cycle[index % len(cycle)]
    cmd = rng.choice(sorted(COMMANDS[kind]))
    os.makedirs(stage)
    src = os.path.join(seed_dir, "")
    descs = []
    if kind == "ckpt":
        shutil.copy(src + "d.h5", stage)
        base = "t.h5" if cmd in ("resume", "eval-ema") or rng.random() < 0.5 else "c.h5"
        _h5_input(rng, kind, src, base, seed_files["ckpt"], stage, 0.35, (1, 1, 2, 3), descs)
        arg = "in.h5"
    elif kind == "h5data":
        shutil.copy(src + "c.h5", stage)
        base = rng.choice(seed_files["h5data"])
        _h5_input(rng, kind, src, base, seed_files["h5data"], stage, 0.3, (1, 1, 2), descs)
        arg = "in.h5"
    elif kind == "imagefolder":
        shutil.copy(src + "c.h5", stage)
        descs.append(mu.mutate_imagefolder(rng, src + "imgs", os.path.join(stage, "imgs"),
                                           os.path.join(stage, "linked.png")))
        arg = "imgs"
    elif kind == "convert":
        names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"] if cmd.startswith("idx") else ["data_batch_1.bin"]
        victim = rng.choice(names)
        written = {}
        for n in names:
            data = open(src + n, "rb").read()
            if n == victim:
                data, d = mu.mutate_idx(rng, data) if cmd.startswith("idx") and rng.random() < 0.5 else \
                    mu.mutate_bytes(rng, data)
                descs.append("%s %s" % (n, d))
            written[n] = n
            if n.endswith("ubyte") and rng.random() < 0.2:
                data, written[n] = mu.gzip_bytes(data), n + ".gz"
                descs.append("gzip " + n)
            _write(os.path.join(stage, written[n]), data)
        argv = [written.get(x, x) for x in COMMANDS[kind][cmd]]
        return Case(index, kind, cmd, " | ".join(descs), stage, argv)
    elif kind == "safetensors":
        shutil.copy(src + "d.h5", stage)
        data = open(src + "w.safetensors", "rb").read()
        for _ in range(rng.choice((1, 1, 2))):
            data, d = mu.mutate_safetensors(rng, data)
            descs.append(d)
        _write(os.path.join(stage, "w.safetensors"), data)
        arg = "w.safetensors"
    elif kind == "yaml":
        shutil.copy(src + "d.h5", stage)
        text = open(src + "args.yaml", "rb").read()
        for _ in range(rng.choice((1, 1, 2))):
            text, d = mu.mutate_yaml(rng, text)
            descs.append(d)
        _write(os.path.join(stage, "args.yaml"), text)
        argv = list(COMMANDS[kind][cmd])
        return Case(index, kind, cmd, " | ".join(d for d in descs if d), stage, argv, config_output_dirs(text))
    else:
        shutil.copy(src + "c.h5", stage)
        os.makedirs(os.path.join(stage, "shards"))
        data = open(src + "s.tar", "rb").read()
        classes = open(src + "classes.txt", "rb").read()
        r = rng.random()
        if r < 0.85:
            for _ in range(rng.choice((1, 1, 2))):
                data, d = mu.mutate_tar(rng, data)
                descs.append(d)
        if r > 0.75:
            classes, d = mu.mutate_classes(rng, classes)
            descs.append(d)
        name = "s-000000.tar"
        if rng.random() < 0.15:
            data, name = mu.gzip_bytes(data), "s-000000.tar.gz"
            descs.append("gzip")
        _write(os.path.join(stage, "shards", name), data)
        if classes == "dir":
            os.makedirs(os.path.join(stage, "shards", "classes.txt"))
        elif classes is not None:
            _write(os.path.join(stage, "shards", "classes.txt"), classes)
        arg = "shards/" + name if rng.random() < 0.8 else "shards"
    argv = [arg if x == "IN" else x for x in COMMANDS[kind][cmd]]
    return Case(index, kind, cmd, " | ".join(d for d in descs if d), stage, argv)


def make_control(kind, cmd, seed_dir, stage):
    """The unmutated seed for kind/cmd: must run cleanly (exit 0), or the fuzzing says nothing."""
    src = os.path.join(seed_dir, "")
    os.makedirs(stage)
    files = {"ckpt": {"d.h5": "d.h5", "t.h5": "in.h5"}, "h5data": {"c.h5": "c.h5", "d.h5": "in.h5"},
             "shard": {"c.h5": "c.h5", "s.tar": "shards/s-000000.tar", "classes.txt": "shards/classes.txt"},
             "imagefolder": {"c.h5": "c.h5"}, "yaml": {"d.h5": "d.h5", "args.yaml": "args.yaml"},
             "safetensors": {"d.h5": "d.h5", "w.safetensors": "w.safetensors"},
             "convert": {n: n for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "data_batch_1.bin")}}
    for a, b in files[kind].items():
        os.makedirs(os.path.dirname(os.path.join(stage, b)), exist_ok=True)
        shutil.copy(src + a, os.path.join(stage, b))
    if kind == "imagefolder":
        shutil.copytree(src + "imgs", os.path.join(stage, "imgs"))
    arg = {"ckpt": "in.h5", "h5data": "in.h5", "shard": "shards/s-000000.tar", "safetensors": "w.safetensors"}.get(kind)
    return Case(-1, kind, cmd, "control (unmutated seed)", stage, [arg if x == "IN" else x for x in COMMANDS[kind][cmd]])


def _h5_input(rng, kind, src, base, seeds, stage, p_bytes, rounds, descs):
    """stage/in.h5 from seed `base` of `kind`: with probability p_bytes byte-level mutations
    (a count drawn from rounds, splicing from the kind's seeds), else one HDF5-level one."""
    inp = os.path.join(stage, "in.h5")
    if rng.random() < p_bytes:
        data = open(src + base, "rb").read()
        others = [open(src + s, "rb").read() for s in seeds]
        for _ in range(rng.choice(rounds)):
            data, d = mu.mutate_bytes(rng, data, others)
            descs.append(d)
        _write(inp, data)
    else:
        shutil.copy(src + base, inp)
        descs.append(_try_h5(rng, inp, kind, os.path.join(stage, "outside"), src + base))
    descs.insert(0, base)


def _try_h5(rng, path, kind, outside, seed_path):
    """An HDF5-aware mutation; h5py refusing one (rare) falls back to byte mutation."""
    try:
        return _h5_mutation(rng, path, kind, outside)
    except Exception as e:  # noqa: BLE001 - h5py raises many types
        data, d = mu.mutate_bytes(rng, open(seed_path, "rb").read())
        _write(path, data)
        return "h5py refused (%s); bytes %s" % (type(e).__name__, d)


# ------------------------------------------------------------------ running and classifying
def snapshot(root):
    """{relative path: content hash} of every entry under root; links and special files are not
    followed or opened (a FIFO would block)."""
    out = {}
    for dp, dns, fns in os.walk(root):
        for n in fns + [d for d in dns if os.path.islink(os.path.join(dp, d))]:
            p = os.path.join(dp, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.readlink(p)
            elif not stat.S_ISREG(st.st_mode):
                out[rel] = "special:%o" % st.st_mode
            elif st.st_size > (16 << 20):
                out[rel] = "big:%d:%d" % (st.st_size, st.st_mtime_ns)
            else:
                with open(p, "rb") as f:
                    out[rel] = hashlib.sha1(f.read()).hexdigest()
        for d in dns:
            out.setdefault(os.path.relpath(os.path.join(dp, d), root) + "/", "dir")
    return out


SAN_FRAME = re.compile(r"__sanitizer|__asan|__ubsan|__interceptor|__lsan|libsanitizer|libasan|libubsan")
LIBC_FUNCS = {"malloc", "calloc", "realloc", "free", "memcpy", "memmove", "memset", "strlen", "abort", "raise",
              "printf", "fprintf", "snprintf", "vsnprintf", "__libc_start_main", "__libc_start_call_main",
              "__libc_start_main_impl", "_start", "printf_common", "start_thread", "clone3", "clone"}

# Crashes inside third-party libraries that mixtape cannot fix; counted as "known", not failures.
KNOWN = [
    (re.compile(r"H5G__link_release_table"),
     "libhdf5 1.10: after a failed dense-group iteration (e.g. a metadata checksum error) "
     "H5G__link_release_table frees table entries that were never filled; harmless with glibc's "
     "zeroed pages, a crash with ASan's malloc fill"),
    (re.compile(r"#[0-3] 0x[0-9a-f]+ in (?:__mem\w+|H5F__accum_read) .*\n(?:.*\n){0,3}.*H5C_protect", re.M),
     "libhdf5 1.10: a corrupt metadata address makes the metadata accumulator (H5F__accum_read, "
     "under H5C_protect) copy from a wild pointer before any checksum is verified"),
    (re.compile(r"#[0-3] 0x[0-9a-f]+ in (?:__mem\w+ .*\n.*#\d+ 0x[0-9a-f]+ in )?H5HG_read", re.M),
     "libhdf5 1.10: a corrupt global heap object (the storage of variable-length string attributes) "
     "makes H5HG_read copy past the heap collection"),
]


# Hangs inside third-party libraries (main thread's stack at the timeout), same treatment.
KNOWN_HANGS = [
    (re.compile(r"H5HG__protect|H5HG_read"),
     "libhdf5 1.10: a corrupt global heap collection (variable-length string storage) makes "
     "H5HG__protect / the metadata cache loop forever"),
]


def parse_frames(err):
    """[(function, location)] of the first sanitizer report's stack, sanitizer frames dropped."""
    frames = []
    for line in err.splitlines():
        m = re.match(r"\s*#(\d+) 0x[0-9a-f]+ (?:in (.+) )?(\S+)$", line.rstrip())
        if not m:
            if frames and not line.strip():
                break
            continue
        if m.group(1) == "0" and frames:
            break  # a second stack (allocation / free site): keep the crash's own
        fn, where = m.group(2) or "", m.group(3)
        if SAN_FRAME.search(fn + " " + where):
            continue
        fn = re.sub(r"\(.*", "", fn).split(" ")[-1] if fn else "??"
        if fn != "??":
            frames.append((fn, where.strip("()")))
    return frames


def stack_top(err, binary_name="mixtape"):
    """'<sanitizer error>: f0 < f1 [mixtape: first frame of our own code]' for grouping crashes."""
    frames = parse_frames(err)
    ext = [(f, w) for f, w in frames
           if f not in LIBC_FUNCS and not f.startswith(("__mem", "__str", "__pthread_kill", "__GI_"))]
    top = ["%s (%s)" % (f, re.sub(r"\+0x[0-9a-f]+$", "", os.path.basename(w))) for f, w in ext[:2]]
    own = next((f for f, w in ext if ("/" + binary_name + "+") in w
                or re.match(r"(?:.*/)?(?:core|data|layers|optim|train)/\w+\.c:\d+", w)), None)
    m = re.search(r"(ERROR: AddressSanitizer: [\w-]+|runtime error: [^\n]{0,80}|ERROR: LeakSanitizer)", err)
    head = m.group(1).replace("ERROR: ", "") if m else "sanitizer report"
    if not top:  # UBSan without a stack: file:line: runtime error
        m2 = re.search(r"^(\S+:\d+:\d+): runtime error", err, re.M)
        if m2:
            top.append(os.path.basename(m2.group(1)))
    return "%s at %s%s" % (head, " < ".join(top) or "?", ("  [mixtape: %s]" % own) if own and (
        not ext or own != ext[0][0]) else "")


def _copy_sparse(src, dst, size):
    """Copies only the data extents of a sparse file (a mutation may truncate an image up to
    1 GiB; copying the holes as zeros would fill the tmpfs work directory with them)."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        fd, off = fi.fileno(), 0
        while off < size:
            try:
                off = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fd, off, os.SEEK_HOLE)
            fi.seek(off)
            fo.seek(off)
            while off < end:
                chunk = fi.read(min(1 << 20, end - off))
                if not chunk:
                    break
                fo.write(chunk)
                off += len(chunk)
        fo.truncate(size)
    shutil.copystat(src, dst)


def _copy_entry(src, dst):
    st = os.lstat(src)
    if stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst)
    elif stat.S_ISREG(st.st_mode) and st.st_size > (1 << 20) and st.st_blocks * 512 < st.st_size:
        _copy_sparse(src, dst, st.st_size)
    else:
        shutil.copy2(src, dst)


def disk_bytes(root):
    """Bytes really allocated under root (sparse holes not counted); links not followed."""
    n = 0
    for dp, dns, fns in os.walk(root):
        for x in fns + dns:
            try:
                n += os.lstat(os.path.join(dp, x)).st_blocks * 512
            except OSError:
                pass
    return n


def copy_case(src, dst):
    """copytree that keeps symlinks as links and recreates FIFOs instead of reading them."""
    shutil.copytree(src, dst, symlinks=True, copy_function=_copy_entry)


def _gdb_frames(text, mixtape):
    """gdb backtraces -> sanitizer-style frames of one thread: the first one that is not parked on
    a futex / condition variable (the blocked or crashing one), else the first thread."""
    threads, cur = [], None
    for line in text.splitlines():
        if line.startswith("Thread ") or cur is None:
            cur = []
            threads.append(cur)
        m = re.match(r"#(\d+)\s+(?:0x[0-9a-f]+ in )?(\S+) \(.*?\)(?: (from|at) (\S+))?\s*$", line)
        if m:
            where = m.group(4) if m.group(4) else "(%s+0x0)" % mixtape
            cur.append("    #%s 0x0 in %s %s" % (m.group(1), m.group(2), where))
    threads = [t for t in threads if t]
    if not threads:
        return ""
    ours = [t for t in threads if any(("/%s+" % os.path.basename(mixtape)) in f for f in t)] or threads
    busy = [t for t in ours if not re.search(r"futex|pthread_cond|__GI___poll|epoll_wait|sched_yield|nanosleep|"
                                             r"gomp_|blas_thread", "\n".join(t[:4]))]
    return "\n".join((busy or ours)[0])


def gdb_attach(pid, timeout, mixtape):
    """Backtrace of the main thread of a hanging process ('' without gdb)."""
    gdb = shutil.which("gdb")
    if not gdb:
        return ""
    try:
        p = subprocess.run([gdb, "-batch", "-nx", "-q", "-p", str(pid), "-ex", "thread apply all bt 40"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout + 30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return _gdb_frames(p.stdout.decode("utf-8", "replace"), mixtape)


def gdb_stack(mixtape, argv, work, env, timeout):
    """Backtrace of a plain-build crash, rewritten as sanitizer-style frames ('' without gdb)."""
    gdb = shutil.which("gdb")
    if not gdb:
        return ""
    try:
        p = subprocess.run([gdb, "-batch", "-nx", "-q", "-ex", "run", "-ex", "bt 40", "--args", mixtape] + argv,
                           cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout + 30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return _gdb_frames(p.stdout.decode("utf-8", "replace"), mixtape)


def outside_files(root):
    return sorted(os.path.join(root, n) for n in os.listdir(root) if n.startswith("outside"))


def classify(case, rc, out, err, timed_out, before, after, escaped):
    if timed_out:
        return "hang", "timeout"
    if any(s in err for s in SAN_MARKERS):
        sig = stack_top(err)
        for pat, _ in KNOWN:
            if pat.search(err):
                return "known", sig
        return "crash", sig
    if rc < 0:
        return "crash", "signal %d" % -rc  # refined by Runner.run with a gdb backtrace
    if rc not in (0, 1, 2):
        return "crash", "exit code %d" % rc
    changed = sorted(k for k in before if after.get(k) != before[k])
    if changed:
        return "debris", "input modified/removed: %s" % ", ".join(changed[:4])
    allowed = set()
    for name in OUTPUTS.get(case.cmd, ()):
        # after exit 0; after a failure only an output the run announces (predict writes its
        # results and exits 1 when some logits are not finite)
        if rc == 0 or re.search(r"\bwrote\b[^\n]*\b" + re.escape(name) + r"\b", out + err):
            allowed.add(name)
    extra = []
    for k in sorted(set(after) - set(before)):
        if ".tmp" in k or "tmp" in os.path.basename(k.rstrip("/")).lower():
            extra.append(k)
        elif _in_dirs(k, getattr(case, "out_dirs", ("out",))) or k in allowed:
            continue
        elif os.path.basename(k) == ".mixtape-dataset.json":
            continue  # an ImageFolder's statistics, cached on first use (docs/data.md)
        else:
            extra.append(k)
    if extra:
        return "debris", "left behind: %s" % ", ".join(extra[:4])
    if escaped:
        return "escape", "read %s (exit %d)" % (", ".join(escaped), rc)
    # eval's loss / accuracy, or train's validation figures (a train loss of nan after an epoch
    # without a full batch is printed as such and is not counted here)
    pat = {"eval": r"(?:loss|top-1|top-5)[:= ]+[-+]?nan\b",
           "train": r"(?:val loss|val_loss|top-1|top-5|val_top1)[:= ]+[-+]?nan\b"}.get(case.argv[0])
    if rc == 0 and pat:
        m = re.search(pat, out + err, re.I)
        if m:
            return "nan-ok", "exit 0 with '%s'" % m.group(0)
    if rc == 0:
        return "ok", ""
    if not (out + err).strip():
        return "silent", "exit %d without a message" % rc
    return "error", ""


class Runner:
    def __init__(self, mixtape, timeout, env):
        self.mixtape, self.timeout, self.env = mixtape, timeout, env

    def run(self, case, work):
        copy_case(case.root, work)
        before = snapshot(work)
        outside = outside_files(work)
        for o in outside:  # atime older than mtime: relatime records the next read
            os.utime(o, (1, os.stat(o).st_mtime))
        env = dict(self.env, TMPDIR=work)
        t0 = time.time()
        timed_out, hang_bt = False, ""
        p = subprocess.Popen([self.mixtape] + case.argv, cwd=work, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=self.timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            timed_out, rc = True, -9
            hang_bt = gdb_attach(p.pid, self.timeout, self.mixtape)
            p.kill()
            out, err = p.communicate()
        dt = time.time() - t0
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        escaped = [os.path.basename(o) for o in outside if os.path.exists(o) and os.stat(o).st_atime > 1]
        after = snapshot(work)
        cls, why = classify(case, rc, out, err, timed_out, before, after, escaped)
        used = disk_bytes(work)
        shutil.rmtree(work, ignore_errors=True)
        if used > MAX_RUN_BYTES and cls in ("ok", "error"):  # a tiny input must not make big files
            cls, why = "debris", "the run left %d MiB in its directory" % (used >> 20)
        why = printable(why)
        if timed_out and hang_bt:
            err += "\n---- gdb backtrace at the timeout ----\n" + hang_bt + "\n"
            why = "timeout in %s" % stack_top(hang_bt).split(" at ", 1)[1]
            if any(pat.search(hang_bt) for pat, _ in KNOWN_HANGS):
                cls = "known"
        if cls == "crash" and rc < 0 and not any(m in err for m in SAN_MARKERS):
            copy_case(case.root, work)
            bt = gdb_stack(self.mixtape, case.argv, work, env, self.timeout)
            shutil.rmtree(work, ignore_errors=True)
            if bt:
                err += "\n---- gdb backtrace of the replay ----\n" + bt + "\n"
                why = "signal %d at %s" % (-rc, stack_top(bt).split(" at ", 1)[1])
                if any(pat.search(bt) for pat, _ in KNOWN):
                    cls = "known"
        return cls, why, rc, out, err, dt


def is_asan(binary):
    try:
        out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"libasan" in out


def child_env(asan):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASAN_", "UBSAN_", "LSAN_"))}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", LC_ALL="C")
    # allocator_may_return_null: a huge size read from a file must be refused by the reader, not
    # by ASan; leaks on error paths are reported separately with --leaks.
    # suppressions: libhdf5's own copies on damaged files (tests/fuzz/asan.supp says why)
    env["ASAN_OPTIONS"] = ("detect_leaks=%d:allocator_may_return_null=1:max_allocation_size_mb=3072:"
                           "hard_rss_limit_mb=3072:abort_on_error=0:handle_abort=1:detect_stack_use_after_return=0:"
                           "suppressions=%s" % (1 if os.environ.get("MIXTAPE_FUZZ_LEAKS") else 0, ASAN_SUPP))
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


# ------------------------------------------------------------------ reporting
def save_case(case, cls, why, rc, out, err, results, mixtape, seed, kinds):
    dest = os.path.join(results, "%s-%s-%s-%06d" % (cls, case.kind, case.cmd, case.index))
    shutil.rmtree(dest, ignore_errors=True)
    copy_case(case.root, dest)
    with open(os.path.join(dest, "cmd.sh"), "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("#!/bin/sh\n# replay: %s %s (input %d, seed %s): %s\n"
                "# regenerate: %s --mixtape BIN --seed %s --kinds %s --only %d\n"
                "cd \"$(dirname \"$0\")\" || exit 1\n"
                "export ASAN_OPTIONS=\"${ASAN_OPTIONS:-%s}\" UBSAN_OPTIONS=\"${UBSAN_OPTIONS:-%s}\"\n"
                "OMP_NUM_THREADS=1 exec \"${MIXTAPE:-%s}\" %s\n"
                % (cls, printable(why).replace("\n", " "), case.index, seed, printable(case.desc).replace("\n", " ")[:300],
                   os.path.abspath(__file__), seed, ",".join(kinds), case.index,
                   child_env(True)["ASAN_OPTIONS"], child_env(True)["UBSAN_OPTIONS"],
                   os.path.abspath(mixtape), " ".join("'%s'" % a for a in case.argv)))
    os.chmod(os.path.join(dest, "cmd.sh"), 0o755)
    with open(os.path.join(dest, "stderr.txt"), "w", encoding="utf-8", errors="backslashreplace") as f:
        f.write(err[-20000:])
        f.write("\n---- stdout ----\n" + out[-4000:])
    with open(os.path.join(dest, "meta.json"), "w") as f:
        json.dump({"index": case.index, "seed": seed, "kinds": ",".join(kinds), "kind": case.kind, "command": case.cmd, "class": cls,
                   "why": printable(why), "exit": rc, "mutation": printable(case.desc),
                   "argv": [printable(x) for x in case.argv]}, f, indent=1)
    return dest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixtape", default=os.environ.get("MIXTAPE"), help="the binary (default $MIXTAPE)")
    ap.add_argument("--seed", default="1")
    ap.add_argument("--budget", type=int, default=0, help="number of inputs (0: until --minutes)")
    ap.add_argument("--minutes", type=float, default=0)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--only", type=int, action="append", help="run only these input indices (replay)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=0, help="seconds per run (default 10, 30 under ASan)")
    ap.add_argument("--out", default="fuzz-results", help="directory for failing inputs")
    ap.add_argument("--keep-per-signature", type=int, default=3)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    if not a.mixtape or not os.access(a.mixtape, os.X_OK):
        ap.error("no mixtape binary (--mixtape or $MIXTAPE)")
    kinds = tuple(k for k in a.kinds.split(",") if k)
    for k in kinds:
        if k not in KINDS:
            ap.error("unknown kind %s (%s)" % (k, ", ".join(KINDS)))
    if not a.budget and not a.minutes and not a.only:
        a.budget = 2000
    asan = is_asan(a.mixtape)
    timeout = a.timeout or (30 if asan else 10)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)  # inherited: a runaway write gets SIGXFSZ
    if hard == resource.RLIM_INFINITY or hard > FSIZE_LIMIT:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, hard))
    for stream in (sys.stdout, sys.stderr):  # file names from mutations need not be UTF-8
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if not asan:  # ASan reserves terabytes of address space; it has its own limits (child_env)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        lim = 6 << 30
        if hard == resource.RLIM_INFINITY or hard > lim:
            resource.setrlimit(resource.RLIMIT_AS, (lim, hard))
    env = child_env(asan)
    # tmpfs when there is one: thousands of tiny files per minute
    work = tempfile.mkdtemp(prefix="mtfuzz.", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
    results = os.path.abspath(a.out)
    try:
        seed_files = sd.make_seeds(os.path.abspath(a.mixtape), os.path.join(work, "seeds"), env)
        sd.make_extra_seeds(os.path.join(work, "seeds"))
        return _loop(a, kinds, seed_files, work, results, env, timeout, asan)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _loop(a, kinds, seed_files, work, results, env, timeout, asan):
    runner = Runner(os.path.abspath(a.mixtape), timeout, env)
    stats = collections.defaultdict(collections.Counter)      # kind -> class -> n
    by_cmd = collections.defaultdict(collections.Counter)     # kind/cmd -> class -> n
    sigs = collections.OrderedDict()                          # (class, kind, cmd, why) -> [n, first dest]
    lock = threading.Lock()
    slots = threading.Semaphore(2 * a.jobs)
    t_start = time.time()
    deadline = t_start + 60 * a.minutes if a.minutes else None
    indices = a.only or range(a.budget if a.budget else 1 << 40)
    cpu0 = os.times()
    bad_controls = []
    for kind in kinds:  # every command on the unmutated seed first: each must succeed
        for cmd in sorted(COMMANDS[kind]):
            case = make_control(kind, cmd, os.path.join(work, "seeds"), os.path.join(work, "control-%s-%s" % (kind, cmd)))
            cls, why, rc, out, err, dt = runner.run(case, case.root + ".run")
            if cls != "ok":
                bad_controls.append("%s/%s: %s %s exit %d: %s" % (kind, cmd, cls, why, rc, (err or out).strip()[-300:]))
            shutil.rmtree(case.root, ignore_errors=True)
    if bad_controls:
        print("CONTROL FAILED: an unmutated seed does not run cleanly, so fuzzing it would test nothing:")
        for b in bad_controls:
            print("  " + b)
        return 1
    print("controls: %d commands on the unmutated seeds exit 0" % sum(len(COMMANDS[k]) for k in kinds), flush=True)

    def done(case, res):
        cls, why, rc, out, err, dt = res
        with lock:
            stats[case.kind][cls] += 1
            stats[case.kind]["tried"] += 1
            by_cmd[case.kind + "/" + case.cmd][cls] += 1
            by_cmd[case.kind + "/" + case.cmd]["tried"] += 1
            if a.verbose:
                print("%6d %-6s %-9s %-6s rc=%-4d %5.2fs %s%s" % (case.index, case.kind, case.cmd, cls, rc, dt,
                                                                 case.desc[:90], (" -- " + why) if why else ""))
            if cls in FAIL_CLASSES or cls == "known":
                key = (cls, case.kind, case.cmd, re.sub(r"0x[0-9a-f]+| \(exit \d\)", "", why))
                ent = sigs.setdefault(key, [0, None, case.desc, case.index])
                ent[0] += 1
                if ent[0] <= a.keep_per_signature:
                    dest = save_case(case, cls, why, rc, out, err, results, a.mixtape, a.seed, kinds)
                    ent[1] = ent[1] or dest
                    print("%s %s via %s: %s\n    input %d: %s\n    reproducer: %s/cmd.sh" % (
                        cls.upper(), case.kind, case.cmd, why, case.index, printable(case.desc)[:200], dest), flush=True)
        shutil.rmtree(case.root, ignore_errors=True)

    def job(case):
        try:
            res = runner.run(case, case.root + ".run")
            done(case, res)
        except Exception as e:  # noqa: BLE001 - a driver bug must not hang the pool
            print("fuzz driver error on input %d: %r" % (case.index, e), file=sys.stderr, flush=True)
            with lock:
                stats[case.kind]["driver-error"] += 1
        finally:
            shutil.rmtree(case.root + ".run", ignore_errors=True)
            shutil.rmtree(case.root, ignore_errors=True)
            slots.release()

    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        for i in indices:
            if deadline and time.time() > deadline:
                break
            slots.acquire()
            free = shutil.disk_usage(work).free
            if free < MIN_FREE_BYTES:
                print("fuzz driver: stopping at input %d: %d MiB free in %s (under %d MiB)" % (
                    i, free >> 20, work, MIN_FREE_BYTES >> 20), file=sys.stderr, flush=True)
                with lock:
                    stats["driver"]["driver-error"] += 1
                slots.release()
                break
            stage = os.path.join(work, "case%d" % i)
            try:
                case = make_case(i, a.seed, os.path.join(work, "seeds"), seed_files, kinds, stage)
                size = disk_bytes(stage)
                if size > MAX_CASE_BYTES:
                    raise RuntimeError("input %d occupies %d MiB (over %d MiB): a mutation wrote too much" % (
                        i, size >> 20, MAX_CASE_BYTES >> 20))
            except Exception as e:  # noqa: BLE001 - a mutator bug is reported, not fatal
                print("fuzz driver error generating input %d: %s" % (i, printable(repr(e))), file=sys.stderr, flush=True)
                with lock:
                    stats["driver"]["driver-error"] += 1
                shutil.rmtree(stage, ignore_errors=True)
                slots.release()
                continue
            pool.submit(job, case)
    elapsed = time.time() - t_start
    cpu = os.times()
    child_cpu = (cpu.children_user + cpu.children_system) - (cpu0.children_user + cpu0.children_system)
    own_cpu = (cpu.user + cpu.system) - (cpu0.user + cpu0.system)
    return report(stats, by_cmd, sigs, elapsed, (child_cpu, own_cpu), asan, a)


def report(stats, by_cmd, sigs, elapsed, cpu, asan, a):
    cols = ("tried", "ok", "error") + FAIL_CLASSES + ("known",)
    print("\nmixtape fuzz: seed %s, %s build, %.1f s wall, CPU %.1f s in mixtape + %.1f s in the driver" % (
        a.seed, "ASan+UBSan" if asan else "plain", elapsed, cpu[0], cpu[1]))
    print("%-22s" % "input kind" + "".join("%8s" % c for c in cols))
    total = collections.Counter()
    total.update(stats.get("driver", {}))
    for k in KINDS:
        if k in stats:
            total.update(stats[k])
            print("%-22s" % k + "".join("%8d" % stats[k][c] for c in cols))
    for kc in sorted(by_cmd):
        print("%-22s" % ("  " + kc) + "".join("%8d" % by_cmd[kc][c] for c in cols))
    print("%-22s" % "total" + "".join("%8d" % total[c] for c in cols))
    print("(clean = ok + error: exit 0, or exit 1/2 with a message)")
    if total["driver-error"]:
        print("driver errors: %d" % total["driver-error"])
    if sigs:
        print("\ndistinct failures (class kind/command: signature  count  first reproducer):")
        order = FAIL_CLASSES + ("known",)
        for (cls, kind, cmd, why), (n, dest, desc, idx) in sorted(
                sigs.items(), key=lambda kv: (order.index(kv[0][0]), KINDS.index(kv[0][1]), kv[0][2], kv[0][3])):
            print("  %s %s/%s: %s  x%d\n      %s/cmd.sh  (input %d: %s)" % (
                cls, kind, cmd, why, n, dest, idx, desc[:160]))
    bad = sum(total[c] for c in FAIL_CLASSES)
    LAST_STATS.clear()
    LAST_STATS.update({k: dict(v) for k, v in stats.items() if k in KINDS})
    LAST_FAILURES[:] = [(c, k, m, w, n, d) for (c, k, m, w), (n, d, _, _) in sigs.items() if c in FAIL_CLASSES]
    return 1 if bad or total["driver-error"] else 0


if __name__ == "__main__":
    sys.exit(main())
