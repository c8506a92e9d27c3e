"""safetensors in C: `mixtape export` writes timm's keys in timm's order as F32 with
exact shapes and string metadata, read back here by an independent reader (struct +
json + numpy) bit-exactly; `mixtape import` and `train --initial-checkpoint` read files
written by this test's own writer (F32, F16, BF16); hostile headers each give exit 1
with a message naming the file and the key, never a crash."""
import json
import os
import struct
import tempfile

import harness
from harness import check

h5py, np = harness.require("h5py", "numpy")


mt = harness.mt


# ---- an independent reader and writer (the format, nothing from mixtape) ----
DT = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}


def st_read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n].decode("utf-8"), object_pairs_hook=list)
    data = b[8 + n:]
    meta, tensors = {}, []
    for k, v in hdr:
        if k == "__metadata__":
            meta = dict(v)
            continue
        v = dict(v)
        s, e = v["data_offsets"]
        if v["dtype"] == "BF16":
            u = np.frombuffer(data[s:e], "<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(data[s:e], DT[v["dtype"]])
        tensors.append((k, v["dtype"], arr.reshape(v["shape"]), (s, e)))
    return n, meta, tensors, len(data)


def st_write(path, tensors, meta=None, dtype="F32"):
    """tensors: list of (name, float32 array); dtype F32 / F16 / BF16 for all."""
    hdr, blobs, off = {}, [], 0
    if meta is not None:
        hdr["__metadata__"] = meta
    for k, a in tensors:
        a = np.ascontiguousarray(a, np.float32)
        if dtype == "F16":
            raw = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            raw = (a.view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            raw = a.astype("<f4").tobytes()
        hdr[k] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr).encode()
    h += b" " * (-(8 + len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def expected_from(a, dtype):
    a = np.asarray(a, np.float32)
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return ((a.view(np.uint32) >> 16) << 16).view(np.float32)
    return a


MODEL = ["--model", "mixer_s16_224", "--img-size", "32", "--patch-size", "8", "--embed-dim", "48", "--depth", "2",
         "--num-classes", "5"]

with tempfile.TemporaryDirectory() as tmp:
    P = lambda n: os.path.join(tmp, n)  # noqa: E731
    rc, out = mt("init", *MODEL, "--seed", "3", "--mean", "0.5,0.4,0.3", "--std", "0.2,0.25,0.3", "--out", P("a.h5"))
    check(rc == 0, f"init: {out.strip()}")
    # perturb every tensor so no value is an init constant, and add /ema
    rng = np.random.default_rng(0)
    with h5py.File(P("a.h5"), "r+") as f:
        keys = list(f["model"].keys())
        for k in keys:
            f["model"][k][...] = rng.standard_normal(f["model"][k].shape).astype(np.float32)
        g = f.create_group("ema", track_order=True)
        for k in keys:
            g[k] = f["model"][k][...] * 0.5
        ref = {k: f["model"][k][...] for k in keys}
        cfg = json.loads(f.attrs["config"])

    # ---- export ----
    rc, out = mt("export", "--checkpoint", P("a.h5"), "--format", "safetensors", "--out", P("w.safetensors"))
    check(rc == 0, f"export: {out.strip()}")
    n, meta, tens, dsize = st_read(P("w.safetensors"))
    check([t[0] for t in tens] == keys, "exported keys are the checkpoint's, in timm's (creation) order")
    check(all(t[1] == "F32" for t in tens), "every exported tensor is F32")
    check(all(t[2].shape == ref[t[0]].shape and np.array_equal(t[2].view(np.uint32), ref[t[0]].view(np.uint32))
              for t in tens), "exported tensors equal /model bit-exactly with exact shapes")
    check((8 + n) % 8 == 0, "header padded to a multiple of 8 bytes")
    spans = sorted(t[3] for t in tens)
    check(spans[0][0] == 0 and spans[-1][1] == dsize and all(a[1] == b[0] for a, b in zip(spans, spans[1:])),
          "data_offsets are contiguous and cover the data section")
    check(meta.get("format") == "pt" and meta.get("mixtape_model") == "mixer_s16_224"
          and json.loads(meta["mixtape_config"]) == cfg and all(isinstance(v, str) for v in meta.values()),
          f"metadata: format pt, model name, config, strings only ({sorted(meta)})")
    check(meta.get("mixtape_data_mean", "").startswith("0.5,0.4"), "metadata carries the data mean")

    rc, out = mt("export", "--checkpoint", P("a.h5"), "--ema", "--out", P("e.safetensors"))
    _, _, tens_e, _ = st_read(P("e.safetensors"))
    check(rc == 0 and all(np.array_equal(t[2], ref[t[0]] * 0.5) for t in tens_e), "export --ema writes /ema")
    rc, out = mt("export", "--checkpoint", P("a.h5"), "--out", P("a.h5"))
    check(rc == 2 and "input" in out, f"export onto its own input refused: {out.strip()}")
    rc, out = mt("export", "--checkpoint", P("a.h5"), "--format", "gguf", "--out", P("x.gguf"))
    check(rc == 2 and "--format" in out, "unknown --format is a usage error")

    # torch (no safetensors package): the reader's tensors load strictly into a torch model
    try:
        import torch
        import torch_models
        net = torch_models.build(cfg)
        sd = {k: torch.from_numpy(a.copy()) for k, _, a, _ in tens}
        res = net.load_state_dict(sd, strict=True)
        x = torch.from_numpy(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
        with h5py.File(P("x.h5"), "w") as f:
            f["images"] = x.numpy()
        rc, out = mt("predict", "--checkpoint", P("a.h5"), "--data", P("x.h5"), "--out", P("lg.h5"))
        with h5py.File(P("lg.h5"), "r") as f:
            lg = f["logits"][...]
        net.eval()
        with torch.no_grad():
            tl = net(x).numpy()
        check(np.allclose(lg, tl, rtol=1e-3, atol=1e-4), "torch model loaded from the exported file agrees with mixtape's logits")
    except ImportError as e:
        harness.part_skipped(f"the torch check needs torch ({e})")

    # ---- import: export round trip, own writer F32/F16/BF16 ----
    rc, out = mt("import", P("w.safetensors"), "--out", P("b.h5"))
    check(rc == 0, f"import from the file's metadata: {out.strip()}")
    rc, out = mt("export", "--checkpoint", P("b.h5"), "--out", P("w2.safetensors"))
    check(open(P("w.safetensors"), "rb").read() == open(P("w2.safetensors"), "rb").read(),
          "export -> import -> export is byte-identical")
    with h5py.File(P("b.h5"), "r") as f:
        check(np.allclose(f.attrs["data_mean"], [0.5, 0.4, 0.3]), "import keeps data mean from the metadata")

    for dt in ("F32", "F16", "BF16"):
        order = list(reversed(keys))  # another order than timm's: lookups are by name
        st_write(P(f"{dt}.safetensors"), [(k, ref[k]) for k in order], {"format": "pt"}, dtype=dt)
        rc, out = mt("import", P(f"{dt}.safetensors"), *MODEL, "--out", P(f"{dt}.h5"))
        ok = rc == 0
        if ok:
            with h5py.File(P(f"{dt}.h5"), "r") as f:
                ok = list(f["model"].keys()) == keys and all(
                    np.array_equal(f["model"][k][...], expected_from(ref[k], dt)) for k in keys)
        check(ok, f"import of a {dt} file from the test's writer round-trips ({out.strip()[:120]})")
    rc, out = mt("import", P("F32.safetensors"), "--out", P("nom.h5"))
    check(rc == 2 and "--model" in out, "import of a file without mixtape metadata asks for --model")
    st_write(P("miss.safetensors"), [(k, ref[k]) for k in keys[1:]], dtype="F32")
    rc, out = mt("import", P("miss.safetensors"), *MODEL, "--out", P("miss.h5"))
    check(rc == 1 and keys[0] in out and not os.path.exists(P("miss.h5")), f"missing key named, nothing written: {out.strip()}")

    # ---- train --initial-checkpoint W.safetensors (all but the head frozen: the body passes through unchanged) ----
    with h5py.File(P("d.h5"), "w") as f:
        f["images"] = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
        f["labels"] = np.arange(8) % 5
    rc, out = mt("train", *MODEL, "--train", P("d.h5"), "-b", "4", "--epochs", "1", "--max-steps", "1", "--freeze", "stem.*,blocks.*,norm.*",
                 "--weight-decay", "0", "--warmup-epochs", "0", "--initial-checkpoint", P("BF16.safetensors"),
                 "--output", P("run"), "--threads", "2")
    check(rc == 0 and f"{len(keys)} tensors loaded" in out, f"train --initial-checkpoint reads safetensors: {out.strip()[-300:]}")
    if rc == 0:
        with h5py.File(P("run/last.h5"), "r") as f:
            body = [k for k in keys if not k.startswith("head")]
            check(len(body) > 0 and all(np.array_equal(f["model"][k][...], expected_from(ref[k], "BF16")) for k in body),
                  "trained (body frozen) weights equal the BF16 file's")

    # ---- hostile files: exit 1, message names the file and the key, no crash ----
    good = open(P("F32.safetensors"), "rb").read()
    k0 = keys[0]
    t0 = ref[k0]
    nb = t0.size * 4

    def raw(hdr_bytes, data=b"", length=None):
        return struct.pack("<Q", len(hdr_bytes) if length is None else length) + hdr_bytes + data

    def hj(d):
        return json.dumps(d).encode()

    def ent(s, e, dtype="F32", shape=None):
        return {"dtype": dtype, "shape": list(t0.shape) if shape is None else shape, "data_offsets": [s, e]}

    blob = t0.astype("<f4").tobytes()
    cases = {
        "huge header length": (raw(b"{}", length=1 << 62), "100 MB"),
        "length past end of file": (raw(b"{}", length=4096), "beyond"),
        "shorter than 8 bytes": (b"\x01\x02", "8 bytes"),
        "offsets out of range": (raw(hj({k0: ent(0, nb + 4)}), blob), k0),
        "end before begin": (raw(hj({k0: ent(nb, 0)}), blob), k0),
        "overlapping": (raw(hj({k0: ent(0, nb), "other": ent(4, nb + 4, shape=list(t0.shape))}), blob + b"\0" * 4), "overlap"),
        "gap in data": (raw(hj({k0: ent(4, nb + 4)}), b"\0" * 4 + blob), k0),
        "bad dtype": (raw(hj({k0: ent(0, nb, dtype="F33")}), blob), k0),
        "rank 100": (raw(hj({k0: ent(0, nb, shape=[1] * 100)}), blob), k0),
        "numel overflow": (raw(hj({k0: ent(0, nb, shape=[1 << 40, 1 << 40, 1 << 40])}), blob), k0),
        "size != numel * dtype size": (raw(hj({k0: ent(0, nb, shape=[3])}), blob), k0),
        "non-UTF8 header": (raw(b'{"\xff\xfe": {}}'), "UTF-8"),
        "garbage JSON": (raw(b"{not json at all"), "header"),
        "not an object": (raw(b'[1, 2, 3]'), "'{'"),
        "duplicate keys": (raw(('{"%s": %s, "%s": %s}' % (k0, json.dumps(ent(0, nb)), k0, json.dumps(ent(nb, 2 * nb)))).encode(),
                               blob + blob), k0),
        "metadata not a string": (raw(hj({"__metadata__": {"format": 1}, k0: ent(0, nb)}), blob), "format"),
        "unknown field": (raw(hj({k0: dict(ent(0, nb), extra=1)}), blob), k0),
        "integer dtype": (raw(hj({k0: ent(0, t0.size * 8, dtype="I64")}), b"\0" * (t0.size * 8)), k0),
        "negative offset": (raw(('{"%s": {"dtype": "F32", "shape": %s, "data_offsets": [-4, %d]}}' % (k0, list(t0.shape), nb)).encode(), blob), k0),
        "trailing bytes after JSON": (raw(hj({k0: ent(0, nb)}) + b"xx", blob), "trailing"),
        "data truncated": (good[:len(good) - 16], "beyond"),
    }
    for name, (content, needle) in cases.items():
        path = P(f"bad_{name.replace(' ', '_')}.safetensors")
        with open(path, "wb") as f:
            f.write(content)
        rc, out = mt("import", path, *MODEL, "--out", P("bad.h5"))
        check(rc == 1 and path in out and needle in out and not os.path.exists(P("bad.h5")),
              f"hostile '{name}': exit {rc}, {out.strip()[:160]}")
    rc, out = mt("train", *MODEL, "--train", P("d.h5"), "-b", "4", "--max-steps", "1",
                 "--initial-checkpoint", P("bad_overlapping.safetensors"), "--output", P("run2"))
    check(rc == 2 and "overlap" in out, f"train --initial-checkpoint refuses a hostile file: {out.strip()[:160]}")

harness.finish()
