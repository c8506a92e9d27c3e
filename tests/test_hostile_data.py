#!/usr/bin/env python3
"""Hostile data files against the `mixtape` binary: shards, tar files, ImageFolders, classes.txt
and `mixtape shards`. Every input is built here (tarfile, os.mkfifo, zlib PNG bytes, IDX bytes) in
a temporary directory; every case runs with a timeout and checks the exit code, that no signal
killed the process, that the message names the culprit, that inputs are unchanged and that no
stray file is left.

Env: MIXTAPE (the binary). Exit 77 (skipped) without mkfifo.
"""
import gzip
import os
import shutil
import signal
import struct
import subprocess
import tarfile
import time

import harness
from harness import check
from tinydata import png_bytes, write_shard

if not hasattr(os, "mkfifo"):
    harness.skip("no os.mkfifo on this platform")
M = harness.MIXTAPE
T = harness.tempdir("hostile")
ENV = dict(harness.BASE_ENV, OMP_NUM_THREADS="1")


def run(args, timeout=40):
    """(exit code, stdout+stderr); exit code None on a hang."""
    return harness.run(args, timeout, env=ENV, cwd=T)


def expect(name, args, code, *needles, timeout=40, absent=()):
    return harness.expect(name, args, code, *needles, timeout=timeout, absent=absent, env=ENV, cwd=T)


def png(w=28, h=28, seed=0):
    return png_bytes(w, h, 0, (bytes((x * 31 + y * 7 + seed * 50) & 255 for x in range(w)) for y in range(h)))


def good_samples(n, ncls=3):
    return [(f"s{i:04d}", png(seed=i), str(i % ncls).encode()) for i in range(n)]


def snapshot(root):
    """Every entry under root (FIFOs by type only). An ImageFolder's statistics cache
    (.mixtape-dataset.json, written by train on first use) is not an input."""
    return harness.snapshot(root, ignore=(".mixtape-dataset.json",))


def stray(root):
    return harness.temporaries(root)


def make_imagefolder(root, classes, per_class=2):
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            with open(os.path.join(root, c, f"{i}.png"), "wb") as f:
                f.write(png(seed=i))


def tar_members(path):
    with tarfile.open(path) as t:
        return [m.name for m in t.getmembers()]


try:
    CK = os.path.join(T, "c.h5")
    harness.must(["init", "--model", "mixer_tiny", "--seed", "1", "--threads", "1", "--out", CK], env=ENV, cwd=T)
    EVAL = ["eval", "--checkpoint", CK, "-b", "4", "-j", "1", "--data"]
    # data with 2 / 3 classes needs a head of that size (train and eval refuse other class counts)
    EVALK = {}
    for k in (2, 3):
        ck = os.path.join(T, f"c{k}.h5")
        harness.must(["init", "--model", "mixer_tiny", "--num-classes", str(k), "--seed", "1", "--threads", "1",
                "--out", ck], env=ENV, cwd=T)
        EVALK[k] = ["eval", "--checkpoint", ck, "-b", "4", "-j", "1", "--data"]

    # ---- 1. labels: huge, negative, non-numeric, overlong cls are bad samples, never a class count ----
    lab = os.path.join(T, "labels")
    os.makedirs(lab)
    hostile_cls = [b"1000000000", b"-3", b"abc", b"99999999999999999999999", b"7" * 100]
    write_shard(os.path.join(lab, "l-000000.tar"),
                good_samples(5) + [(f"h{i}", png(), c) for i, c in enumerate(hostile_cls)])
    before = snapshot(lab)
    rc, out = expect("cls 10^9 is not a class count (bench-data, no classes.txt)",
                     ["bench-data", "--data", "labels", "-b", "2", "--batches", "1", "--img-size", "28", "-j", "1"],
                     0, "(shards, 3 classes)")
    if rc == 0 and "(shards, 3 classes)" in out:  # only then is --mixup safe to run (else 10^9 soft targets)
        expect("cls 10^9 with --mixup stays bounded",
               ["bench-data", "--data", "labels", "-b", "2", "--batches", "1", "--img-size", "28", "-j", "1",
                "--mixup", "0.2"], 0, "(shards, 3 classes)")
    rc, out = expect("hostile cls skipped and counted per reason (eval)", EVAL + ["labels"], 0,
                     "5 samples  top-1", "(skipped 5)", "5 samples skipped: 5 missing or out-of-range label",
                     "l-000000.tar", "h0")
    check("cls '1000000000' is not a class index" in out and "cls '-3'" in out and "cls 'abc'" in out,
          "each hostile cls is named in a warning", out)
    check(snapshot(lab) == before, "label inputs unchanged")

    # ---- 2. special files: FIFOs named like images, shards, lists, classes.txt never block ----
    fold = os.path.join(T, "fold")
    make_imagefolder(fold, ["c0", "c1"])
    os.mkfifo(os.path.join(fold, "c0", "x.png"))
    before = snapshot(fold)
    expect("FIFO image in an ImageFolder: eval skips it", EVALK[2] + ["fold"], 0, "(skipped 1)", "c0/x.png",
           "not a regular file", "1 sample skipped: 1 unreadable file or shard", timeout=30)
    expect("FIFO image in an ImageFolder: train skips it",
           ["train", "--model", "mixer_tiny", "--num-classes", "2", "--train", "fold", "--output", "tr", "--epochs", "1", "-b", "2",
            "-j", "1", "--threads", "1"], 0, "c0/x.png", "not a regular file", timeout=60)
    rc, out = expect("FIFO image in an ImageFolder: shards --from imagefolder skips it",
                     ["shards", "--from", "imagefolder", "fold", "--out", "fs/t"], 0, "c0/x.png",
                     "4 samples", "(1 unreadable files skipped)", timeout=30)
    if rc == 0:
        check(len([m for m in tar_members(os.path.join(T, "fs/t-000000.tar")) if m.endswith(".png")]) == 4,
              "the converted shard holds the 4 regular images")
    check(snapshot(fold) == before, "ImageFolder with a FIFO unchanged")

    sp = os.path.join(T, "sp")
    os.makedirs(sp)
    write_shard(os.path.join(sp, "ok.tar"), good_samples(4))
    os.mkfifo(os.path.join(sp, "fifo.tar"))
    with open(os.path.join(sp, "list.txt"), "w") as f:
        f.write("ok.tar\nfifo.tar\n")
    os.mkfifo(os.path.join(sp, "fifolist"))
    expect("FIFO given as a shard", EVAL + ["sp/fifo.tar"], 2, "sp/fifo.tar", "not a regular file", timeout=20)
    expect("FIFO listed in a list file", EVAL + ["sp/list.txt"], 2, "sp/fifo.tar", "not a regular file", timeout=20)
    expect("FIFO given as a list file", EVAL + ["sp/fifolist"], 2, "sp/fifolist", "not a regular file", timeout=20)
    expect("FIFO in a shard directory is skipped with a warning", EVAL + ["sp"], 0, "sp/fifo.tar",
           "not a regular file", "4 samples  top-1", timeout=20)
    spc = os.path.join(T, "spc")
    os.makedirs(spc)
    write_shard(os.path.join(spc, "ok.tar"), good_samples(4))
    os.mkfifo(os.path.join(spc, "classes.txt"))
    expect("FIFO classes.txt", EVAL + ["spc"], 2, "spc/classes.txt", "not a regular file", timeout=20)

    os.makedirs(os.path.join(T, "cifar"))
    os.mkfifo(os.path.join(T, "cifar", "data_batch_1.bin"))
    os.mkfifo(os.path.join(T, "fifo-images-idx3-ubyte"))
    expect("FIFO CIFAR batch: shards refuses it", ["shards", "--from", "cifar", "cifar", "--out", "cf/t"], 1,
           "cifar/data_batch_1.bin", "not a regular file", timeout=20)
    expect("FIFO IDX file: shards refuses it", ["shards", "--from", "idx", "fifo-images-idx3-ubyte", "--out", "fi/t"],
           1, "fifo-images-idx3-ubyte", "not a regular file", timeout=20)
    check(not os.path.exists(os.path.join(T, "cf")) or not os.listdir(os.path.join(T, "cf")), "nothing written")

    # ---- 3. a tar cut at a 512-byte boundary (no end-of-archive blocks) is warned about ----
    cut = os.path.join(T, "cut")
    os.makedirs(cut)
    write_shard(os.path.join(cut, "whole.tar"), good_samples(6))
    data = open(os.path.join(cut, "whole.tar"), "rb").read()
    members_end = len(data)
    while data[members_end - 512:members_end] == bytes(512):
        members_end -= 512
    # cut after the 4th sample (8 members): the member boundary found by walking the headers
    off = 0
    for _ in range(8):
        size = int(data[off + 124:off + 136].strip(b"\0 ") or b"0", 8)
        off += 512 + (size + 511) // 512 * 512
    with open(os.path.join(cut, "cut.tar"), "wb") as f:
        f.write(data[:off])
    with open(os.path.join(cut, "ends.tar"), "wb") as f:  # every member there, marker gone
        f.write(data[:members_end])
    expect("tar cut at a member boundary: warned, names the shard and the count", EVAL + ["cut/cut.tar"], 0,
           "cut/cut.tar", "end-of-archive", "after 4 samples", "4 samples  top-1")
    expect("tar without end-of-archive blocks: warned", EVAL + ["cut/ends.tar"], 0, "cut/ends.tar",
           "end-of-archive", "after 6 samples")
    expect("a whole tar: no warning", EVAL + ["cut/whole.tar"], 0, "6 samples  top-1", absent=("end-of-archive",))

    # ---- 4. control characters in class names and file names ----
    ctl = os.path.join(T, "ctl")
    make_imagefolder(ctl, ["a", "b\nx", "c\x1b[31m"])
    before = snapshot(ctl)
    rc, out = expect("class dir with a newline refused by shards", ["shards", "--from", "imagefolder", "ctl",
                                                                     "--out", "ctlout/t"], 1, "b\\nx",
                     "control character")
    check("\x1b" not in out and not os.path.exists(os.path.join(T, "ctlout")), "no raw escape printed, nothing written",
          out)
    rc, out = expect("class dir with a newline refused by eval", EVAL + ["ctl"], 2, "control character")
    check("\x1b" not in out, "eval prints no raw escape", out)
    check(snapshot(ctl) == before, "ImageFolder with control characters unchanged")
    esc = os.path.join(T, "esc")
    make_imagefolder(esc, ["a", "b"])
    with open(os.path.join(esc, "a", "\x1b[2Jevil.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n broken")
    rc, out = expect("undecodable image with an escape in its name: warned, escaped", EVALK[2] + ["esc"], 0,
                     "(skipped 1)", "\\x1b[2Jevil.png", "1 undecodable image")
    check("\x1b" not in out, "no raw escape in the warning", out)

    # ---- 5. classes.txt shorter / longer than the model's classes, huge lines and files ----
    def shard_dir(name, classes_txt, n=6):
        d = os.path.join(T, name)
        os.makedirs(d)
        write_shard(os.path.join(d, "s.tar"), good_samples(n))
        if isinstance(classes_txt, int):  # sparse file of that size
            with open(os.path.join(d, "classes.txt"), "wb") as f:
                f.truncate(classes_txt)
        else:
            with open(os.path.join(d, "classes.txt"), "wb") as f:
                f.write(classes_txt)
        return name

    rc, out = expect("classes.txt shorter than the model's classes: refused", EVAL + [shard_dir("short", b"zero\n")],
                     2, "1 classes (classes.txt)", "has 10 outputs")
    rc, out = expect("classes.txt longer than the model's classes: refused",
                     EVAL + [shard_dir("long", b"".join(b"n%d\n" % i for i in range(20)))], 2, "lists 20 classes",
                     "20 classes (classes.txt)", "has 10 outputs")
    rc, out = expect("classes.txt name with an escape is printed escaped",
                     EVALK[3] + [shard_dir("escname", b"a\x1b[31mred\nb\nc\n")], 0, "a\\x1b[31mred")
    check("\x1b" not in out, "no raw escape in the per-class table", out)
    expect("classes.txt with a huge line", EVAL + [shard_dir("hugeline", b"a\n" + b"x" * 100000 + b"\n")], 2,
           "hugeline/classes.txt", "longer than")
    expect("classes.txt over the size limit", EVAL + [shard_dir("hugefile", (64 << 20) + 1)], 2,
           "hugefile/classes.txt", "larger than")
    expect("classes.txt with more lines than any model", EVAL + [shard_dir("manylines", b"a\n" * ((1 << 20) + 1))], 2,
           "manylines/classes.txt", "more than 1048576 classes")

    # ---- 6. mixtape shards: all or nothing, no mixing with an older set ----
    def idx_files(name, n, extra=b"", seed=7):
        """IDX images + labels; with extra bytes the images file is gzip'd, so that the trailing bytes
        are only found after the last image (a failure at the very end of the conversion)."""
        img = os.path.join(T, f"{name}-images-idx3-ubyte" + (".gz" if extra else ""))
        lab_ = os.path.join(T, f"{name}-labels-idx1-ubyte")
        pix = bytes((i * seed) & 255 for i in range(784))
        body = struct.pack(">IIII", 0x803, n, 28, 28) + pix * n + extra
        with open(img, "wb") as f:
            f.write(gzip.compress(body) if extra else body)
        with open(lab_, "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n)))
        return img

    def prefix_files(d, base="t"):
        if not os.path.isdir(d):
            return []
        return sorted(n for n in os.listdir(d) if n.startswith(base + "-"))

    # a conversion that fails at its end (trailing bytes after the images) leaves nothing
    bad = idx_files("trail", 300, extra=b"junk")
    expect("failed conversion", ["shards", "--from", "idx", bad, "--out", "trail/t", "--per-shard", "50"], 1,
           "trailing bytes")
    check(prefix_files(os.path.join(T, "trail")) == [] and not stray(os.path.join(T, "trail")),
          "failed conversion leaves no shard and no temporary", str(prefix_files(os.path.join(T, "trail"))))

    # interrupted conversions: SIGTERM and SIGINT once shards are being written
    big = idx_files("big", 40000)
    for sig in (signal.SIGTERM, signal.SIGINT):
        out_dir = os.path.join(T, f"int{int(sig)}")
        p = subprocess.Popen([M, "shards", "--from", "idx", big, "--out", out_dir + "/t", "--per-shard", "200"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV)
        t0 = time.time()
        while p.poll() is None and time.time() - t0 < 60:
            if os.path.isdir(out_dir) and len(os.listdir(out_dir)) >= 3:  # shards (or temporaries) under way
                break
            time.sleep(0.02)
        running = p.poll() is None
        p.send_signal(sig)
        try:
            out = p.communicate(timeout=30)[0].decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            p.kill()
            out = p.communicate()[0].decode("utf-8", "replace")
        left = prefix_files(out_dir)
        check("Sanitizer" not in out and "runtime error:" not in out, f"{sig.name}: no sanitizer report", out)
        check(running and p.returncode == 128 + int(sig),
              f"{sig.name} during conversion: exit {p.returncode} (want {128 + int(sig)})", out)
        check(left == [] and not stray(out_dir) and not os.path.exists(os.path.join(out_dir, "classes.txt")),
              f"{sig.name}: no shard, temporary or classes.txt left ({len(left)} left)", out)

    # a smaller set into the same prefix: refused; with --overwrite the old higher shards go
    nine = idx_files("nine", 9)
    three = idx_files("three", 3, seed=13)  # other pixels: the new shard differs from the old one
    sd = os.path.join(T, "same")
    expect("first set", ["shards", "--from", "idx", nine, "--out", "same/t", "--per-shard", "3"], 0, "9 samples")
    old = snapshot(sd)
    expect("existing prefix refused", ["shards", "--from", "idx", three, "--out", "same/t", "--per-shard", "3"], 2,
           "same/t-000000.tar", "--overwrite")
    check(snapshot(sd) == old, "refused conversion leaves the old set untouched")
    expect("--overwrite with a smaller set",
           ["shards", "--from", "idx", three, "--out", "same/t", "--per-shard", "3", "--overwrite"], 0, "3 samples")
    check(prefix_files(sd) == ["t-000000.tar"] and not stray(sd), "only the new shard remains", str(prefix_files(sd)))
    expect("the prefix reads as the new set", EVAL + ["same"], 0, "3 samples  top-1")

    # classes.txt of another prefix in the same directory with other classes: refused
    c2 = os.path.join(T, "c2src")
    make_imagefolder(c2, ["p", "q"])
    expect("classes.txt of another prefix with other classes refused",
           ["shards", "--from", "imagefolder", "c2src", "--out", "same/v"], 1, "same/classes.txt", "--overwrite")
    check(prefix_files(sd, "v") == [] and not stray(sd), "refused at commit: no shard of the new prefix left",
          str(prefix_files(sd, "v")))
finally:
    shutil.rmtree(T, ignore_errors=True)
harness.finish()
