"""Mutators. Each takes a random.Random and returns the mutated input plus a short description
(the description is what a reproducer's meta.json and the failure line print).

- bytes: flips, random bytes, insert/delete, truncation, boundary integers, splicing, chunk copies;
- hdf5 (h5py, in place on a copy): attribute values and types, config / train_state JSON fields,
  dataset shapes / dtypes / storage (chunked, compressed, huge unallocated, external storage,
  external and soft links, hard-link cycles), values (NaN, out-of-range labels);
- tar: header fields (size, typeflag, name, linkname, mode, magic) with the checksum recomputed so
  the change reaches the parser, member contents (.cls text, image bytes, PNG/JPEG dimensions with
  the PNG CRC recomputed), member order / duplication / removal, end-of-archive, gzip wrapping;
- classes.txt contents.
"""
import gzip
import json
import struct
import warnings
import zlib

import numpy as np

INT_BOUNDARY = [0, 1, -1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
                0xFFFFFFFF, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
JSON_BOUNDARY = [0, -1, 1, 2, 3, 255, 1024, 1025, 4097, 65536, 100000, 2**31 - 1, 2**31, 2**32 + 1, 2**63 - 1, 2**63, -2**63, 2**64,
                 10**30, 1e308, -1e308, 1e-320, 0.5, -0.5, "", "x", "mlp", "a" * 5000, None, True,
                 False, [], {}, [1, 2, 3, 4, 5], [0, 0, 0, 0], [-1, 2**31, 0, 0], ["mlp"] * 9,
                 "vit_tiny_28", "poolformer_tiny", "gmlp_tiny", "repmlp_tiny", "resmlp_tiny", "vit",
                 "poolformer", "gmlp", "repmlp", "attention", "pool", "sgu", "external", "swiglu",
                 "groupnorm", "none", ["attention", "pool", "sgu", "repmlp"]]
JSON_RAW = ["NaN", "Infinity", "-Infinity", "1e999", "-0", "0x10", "01", "1.", ".5", "+1",
            "\"\\u0000\"", "\"\\ud800\"", "\"\\", "[" * 100000, "{" * 50000, "[1," * 3000 + "1" + "]" * 3000,
            "\"" + "\\u1234" * 4000 + "\""]


# What a mutation may write or hold in memory: inputs may *declare* any size (that is the point),
# but the fuzzer's work directory is on tmpfs (RAM), so the bytes really written stay small.
MAX_WRITE = 1 << 20     # bytes of one file written by a mutation (external storage, ...)
MAX_ELEMS = 1 << 20     # elements of a dataset read or written with data by a mutation


def _pick(rng, seq):
    return seq[rng.randrange(len(seq))]


# ---------------------------------------------------------------- bytes
def _int_bytes(rng, value):
    width = _pick(rng, [1, 2, 4, 8])
    v = value & ((1 << (8 * width)) - 1)
    return v.to_bytes(width, _pick(rng, ["little", "little", "big"]))


def mutate_bytes(rng, data, others=()):
    b = bytearray(data)
    if not b:
        return bytes([rng.randrange(256)]), "empty->1 byte"
    op = rng.randrange(9)
    n = len(b)
    if op == 0:
        k = rng.randint(1, 8)
        offs = []
        for _ in range(k):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
            offs.append(i)
        return bytes(b), "bitflip@%s" % ",".join(map(str, offs))
    if op == 1:
        i = rng.randrange(n)
        k = min(n - i, rng.randint(1, 16))
        for j in range(i, i + k):
            b[j] = rng.randrange(256)
        return bytes(b), "randbytes@%d+%d" % (i, k)
    if op == 2:
        i = rng.randrange(n + 1)
        k = _pick(rng, [1, 2, 4, 8, 64, 512, 4096])
        ins = bytes(rng.randrange(256) for _ in range(k)) if rng.random() < 0.5 else b"\0" * k
        return bytes(b[:i] + ins + b[i:]), "insert@%d+%d" % (i, k)
    if op == 3:
        i = rng.randrange(n)
        k = min(n - i, _pick(rng, [1, 2, 4, 8, 64, 512, 4096]))
        return bytes(b[:i] + b[i + k:]), "delete@%d+%d" % (i, k)
    if op == 4:
        i = rng.randrange(n)
        return bytes(b[:i]), "truncate@%d/%d" % (i, n)
    if op in (5, 6):  # boundary integers, often aligned (HDF5 fields are)
        i = rng.randrange(n)
        if rng.random() < 0.7:
            i &= ~7 if rng.random() < 0.5 else ~3
        v = _pick(rng, INT_BOUNDARY)
        ib = _int_bytes(rng, v)
        b[i:i + len(ib)] = ib
        return bytes(b[:n]) if len(b) > n else bytes(b), "int%d=%#x@%d" % (8 * len(ib), v, i)
    if op == 7 and others:
        o = _pick(rng, others)
        i, j = rng.randrange(n), rng.randrange(len(o)) if o else 0
        return bytes(b[:i]) + o[j:], "splice@%d<-%d" % (i, j)
    i, j = rng.randrange(n), rng.randrange(n)
    k = min(n - i, n - j, _pick(rng, [8, 16, 64, 512]))
    b[j:j + k] = b[i:i + k]
    return bytes(b), "copy %d->%d+%d" % (i, j, k)


# ---------------------------------------------------------------- JSON text
def mutate_json_text(rng, text):
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    op = rng.randrange(6)
    if isinstance(obj, dict) and obj and op <= 2:
        key = _pick(rng, sorted(obj))
        if op == 0:
            v = _pick(rng, JSON_BOUNDARY)
            obj[key] = v
            return json.dumps(obj), "json %s=%s" % (key, json.dumps(v)[:40])
        if op == 1:
            del obj[key]
            return json.dumps(obj), "json del %s" % key
        raw = _pick(rng, JSON_RAW)
        s = json.dumps(obj).replace(json.dumps(key) + ": " + json.dumps(obj[key]), json.dumps(key) + ": " + raw, 1)
        return s, "json %s=raw %s" % (key, raw[:30])
    if op == 3 and isinstance(obj, dict):
        key = _pick(rng, ["zzz", "name", "num_classes", "", "a" * 300])
        obj2 = dict(obj)
        obj2[key] = _pick(rng, JSON_BOUNDARY)
        s = json.dumps(obj2)
        if key in obj:  # duplicate key: which one wins?
            s = s[:-1] + ", " + json.dumps(key) + ": " + json.dumps(_pick(rng, JSON_BOUNDARY)) + "}"
        return s, "json add/dup %s" % key[:20]
    if op == 4:
        return _pick(rng, JSON_RAW + ["", "{}", "[]", "null", "{\"name\": 1}", text + text]), "json raw whole"
    raw = text.encode()
    m, d = mutate_bytes(rng, raw)
    return m.decode("latin-1"), "json bytes " + d


# ---------------------------------------------------------------- HDF5
def _all_datasets(f):
    import h5py
    out = []
    f.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Dataset) else None)
    return out


def _new_shape(rng, shape):
    shape = list(shape)
    op = rng.randrange(6)
    if op == 0 and shape:
        i = rng.randrange(len(shape))
        shape[i] = max(0, shape[i] + _pick(rng, [-1, 1, 2]))
    elif op == 1 and shape:
        shape[rng.randrange(len(shape))] = 0
    elif op == 2:
        shape.insert(rng.randrange(len(shape) + 1), _pick(rng, [1, 2]))
    elif op == 3 and shape:
        shape.pop(rng.randrange(len(shape)))
    elif op == 4 and len(shape) >= 2:
        shape[0], shape[-1] = shape[-1], shape[0]
    else:
        shape = [] if rng.random() < 0.5 else [1]
    return tuple(shape)


def _huge_shape(rng, shape):
    shape = list(shape) or [1]
    i = rng.randrange(len(shape))
    shape[i] = _pick(rng, [2**16, 2**20, 2**31 - 1, 2**31, 2**32 + 3, 2**40])
    return tuple(shape)


DTYPES = ["f8", "f2", "i1", "u1", "i2", "i4", "u4", "i8", "u8", "b1", "S4", "vlen-str", "compound", "c8", "f4be"]


def _make_dtype(name):
    import h5py
    if name == "vlen-str":
        return h5py.string_dtype()
    if name == "compound":
        return np.dtype([("a", "f4"), ("b", "i4")])
    if name == "f4be":
        return np.dtype(">f4")
    return np.dtype(name)


def _replace_dataset(f, name, shape=None, dtype=None, fill=None, **kw):
    old = f[name]
    shape = old.shape if shape is None else shape
    dtype = old.dtype if dtype is None else dtype
    n = int(np.prod(shape)) if shape else 1
    data = None
    if "maxshape" not in kw and n <= MAX_ELEMS:
        try:
            with warnings.catch_warnings():  # complex -> real drops the imaginary part, as intended
                warnings.simplefilter("ignore")
                src = old[()].astype(np.float64).ravel() if 0 < old.size <= MAX_ELEMS else np.zeros(0)
        except Exception:
            src = np.zeros(0)
        flat = np.resize(src, n) if src.size else np.zeros(n)
        if fill is not None:
            flat[:] = fill
        if dtype.kind in "SO":
            data = np.array(["%g" % v for v in flat], dtype=object).reshape(shape)
        elif dtype.names:
            data = np.zeros(shape, dtype)
        else:
            with np.errstate(all="ignore"):
                data = flat.astype(dtype).reshape(shape)
    del f[name]
    if data is None:
        f.create_dataset(name, shape=shape, dtype=dtype, **kw)
    else:
        f.create_dataset(name, data=data, dtype=dtype, **kw)


def mutate_h5_dataset(rng, f, name, outside):
    """One structural or value mutation of dataset `name` in open h5py File f."""
    import h5py
    ds = f[name]
    op = rng.randrange(14)
    if op == 0:
        old, s = ds.shape, _new_shape(rng, ds.shape)
        _replace_dataset(f, name, shape=s)
        return "%s shape %s->%s" % (name, old, s)
    if op == 1:
        dt = _pick(rng, DTYPES)
        _replace_dataset(f, name, dtype=_make_dtype(dt))
        return "%s dtype %s" % (name, dt)
    if op == 2:
        s = _huge_shape(rng, ds.shape)
        chunks = tuple(min(d, 64) or 1 for d in s)
        _replace_dataset(f, name, shape=s, dtype=np.dtype("f4") if ds.dtype.kind == "f" else ds.dtype,
                         chunks=chunks, maxshape=s)
        return "%s huge unallocated shape %s" % (name, s)
    if op == 3:
        del f[name]
        return "%s deleted" % name
    if op == 4:
        del f[name]
        f.create_group(name)
        return "%s -> group" % name
    if op == 5 and ds.size <= MAX_ELEMS:  # (a huge declared shape is never read into memory)
        v = _pick(rng, [np.nan, np.inf, -np.inf, 3.4e38, -0.0, 1e-45])
        if ds.dtype.kind in "iu":
            v = _pick(rng, [-1, 3, 2**31 - 1, -2**31, 2**63 - 1, -2**63, 255, 2**64 - 1])
            if ds.dtype.kind == "u" and v < 0 or not np.can_cast(np.min_scalar_type(v), ds.dtype):
                v = np.iinfo(ds.dtype).max if rng.random() < 0.5 else np.iinfo(ds.dtype).min
        a = ds[()]
        if np.ndim(a) == 0:
            ds[()] = v
        elif a.size:
            flat = a.reshape(-1)
            flat[rng.randrange(flat.size) if rng.random() < 0.7 else slice(None)] = v
            ds[...] = flat.reshape(a.shape)
        return "%s value %r" % (name, v)
    if op == 6:
        kw = _pick(rng, [dict(compression="gzip"), dict(compression="lzf"), dict(shuffle=True, compression="gzip"),
                         dict(fletcher32=True), dict(scaleoffset=3)])
        if not ds.shape:
            kw = {}
        _replace_dataset(f, name, chunks=True if ds.shape else None, **kw)
        return "%s storage %s" % (name, kw)
    if op == 7:  # external raw storage in a file beside it
        shape, dt = ds.shape, ds.dtype
        nbytes = int(np.prod(shape)) * dt.itemsize if shape else dt.itemsize
        with open(outside, "wb") as o:  # the declared extent may be huge; what is written is not
            o.write(b"\x3f" * min(max(nbytes, 1), MAX_WRITE))
        del f[name]
        f.create_dataset(name, shape=shape, dtype=dt, external=[(outside.split("/")[-1], 0, max(nbytes, 1))])
        return "%s external storage -> %s" % (name, outside.split("/")[-1])
    if op == 8:  # an external link to a valid dataset of the same shape in a file beside it
        shape, dt = ds.shape, ds.dtype
        with h5py.File(outside + ".h5", "w") as o:
            o.create_dataset("x", shape=shape, dtype=dt)
        del f[name]
        f[name] = h5py.ExternalLink(outside.split("/")[-1] + ".h5", "/x")
        return "%s external link -> %s.h5" % (name, outside.split("/")[-1])
    if op == 9:
        del f[name]
        f[name] = h5py.SoftLink("/" + name)  # dangling self link
        return "%s soft self link" % name
    if op == 10:  # hard-link cycle: a group that contains its parent
        parent = name.rsplit("/", 1)[0] if "/" in name else "/"
        f[parent].create_group("zz_cycle")["up"] = f[parent]
        return "%s hard-link cycle in %s" % (name, parent)
    if op == 11:
        key = name.rsplit("/", 1)[0] + "/" + _pick(rng, ["zz_extra", "a" * 200, "b.c/../d", " "]) if "/" in name else "zz"
        try:
            f.create_dataset(key, data=np.zeros(_pick(rng, [(3,), (), (2, 2)]), "f4"))
        except (ValueError, KeyError):
            pass
        return "extra dataset %s" % key[:40]
    if op == 12 and ds.shape:
        s = ds.shape
        _replace_dataset(f, name, shape=s, chunks=True, maxshape=tuple(None for _ in s), fillvalue=np.nan)
        return "%s chunked resizable unwritten (fill NaN)" % name
    attrs = ds.attrs
    attrs[_pick(rng, ["a", "config", "shape"])] = _pick(rng, [1, "x", np.arange(3)])
    return "%s attribute added" % name


def mutate_h5_attr(rng, obj, key):
    """Replace / delete / retype attribute `key` of obj (a File or Group)."""
    import h5py
    op = rng.randrange(8)
    old = obj.attrs.get(key)
    if op == 0 and key in obj.attrs:
        del obj.attrs[key]
        return "attr %s deleted" % key
    if isinstance(old, (str, bytes)) and op <= 3:
        text = old.decode("latin-1") if isinstance(old, bytes) else old
        t, d = mutate_json_text(rng, text)
        if op == 3:
            obj.attrs.create(key, t.encode("latin-1", "replace")[:65535] or b"\0",
                             dtype=h5py.string_dtype("ascii", max(1, len(t.encode("latin-1", "replace")[:65535]))))
            return "attr %s fixed-length %s" % (key, d)
        obj.attrs[key] = t
        return "attr %s %s" % (key, d)
    if op == 4:
        v = _pick(rng, INT_BOUNDARY + [-2**63, -2**31])
        dt = _pick(rng, ["i8", "u8", "i4", "u1", "f8", "f4"])
        with np.errstate(all="ignore"):
            try:
                arr = np.array(v).astype(dt)
            except OverflowError:
                arr = np.array(-1).astype(dt)
        obj.attrs[key] = arr
        return "attr %s=%s as %s" % (key, v, dt)
    if op == 5:
        v = _pick(rng, [np.nan, np.inf, -1.0, 2.0, 1e300, -0.0])
        obj.attrs[key] = np.float64(v)
        return "attr %s=%r" % (key, v)
    if op == 6:
        n = _pick(rng, [0, 1, 2, 3, 8, 9, 1000, 100000])
        dt = _pick(rng, ["u8", "f4", "i4", "f8"])
        try:
            obj.attrs[key] = np.full(n, _pick(rng, [0, 1, np.nan, 2**31]) if dt[0] == "f" else 7, dtype=dt)
        except Exception:
            obj.attrs[key] = np.zeros(n, dt)
        return "attr %s array[%d] %s" % (key, n, dt)
    v = _pick(rng, ["", "mixtape", "x" * 17000, "\xff\xfe", "mixer_tiny\0evil", "vit_tiny_28", "resmlp_tiny",
                    "poolformer_tiny", "gmlp_tiny", "repmlp_tiny", "mixer_l16_224", ["a", "b"], b"\x00\x01"])
    obj.attrs[key] = v
    return "attr %s=%r" % (key, str(v)[:30])


# ---------------------------------------------------------------- tar
def tar_split(data):
    """[(header, payload padded to 512)] of a tar archive, and the trailing bytes."""
    out, o = [], 0
    while o + 512 <= len(data):
        h = data[o:o + 512]
        if h == b"\0" * 512:
            break
        size = _size_field(h)
        end = o + 512 + (size + 511) // 512 * 512
        out.append((bytearray(h), data[o + 512:end]))
        o = end
    return out, data[o:]


def _size_field(h):
    """A header's octal size field; 0 when an earlier mutation made it unreadable (base-256,
    non-octal digits, empty): stacked mutations re-read headers they damaged themselves."""
    try:
        return max(0, int(bytes(h[124:136]).split(b"\0")[0].strip() or b"0", 8))
    except ValueError:
        return 0


def tar_checksum(h):
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % (sum(h) & 0o777777)


def tar_join(members, tail):
    return b"".join(bytes(h) + p for h, p in members) + tail


def _set_field(h, off, width, value):
    v = value[:width]
    h[off:off + width] = v + b"\0" * (width - len(v))


def _member_name(h):
    return bytes(h[0:100]).split(b"\0")[0].decode("latin-1")


def _with_payload(h, payload):
    _set_field(h, 124, 12, b"%011o" % len(payload))
    tar_checksum(h)
    return (h, payload + b"\0" * (-len(payload) % 512))


CLS_TEXT = [b"-1", b"3", b"2", b"0", b"2147483647", b"2147483648", b"4294967296", b"9223372036854775807",
            b"9223372036854775808", b"99999999999999999999999999", b"", b" ", b"\n", b"1e3", b"0x1", b"nan",
            b"1\n2", b"\0", b"1\0", b"+1", b"-0", b"01", b"1" * 5000, b"\xff\xfe"]
TYPEFLAGS = b"0123456 7xgLKSVAM\0"
SIZE_FIELDS = [b"00000000000", b"77777777777", b"99999999999", b"-0000000001", b"", b" ", b"0x1000",
               b"\x80" + b"\0" * 3 + b"\xff" * 8, b"\x80\0\0\0\0\0\0\0\0\0\x10\0", b"\xff" * 12,
               b"\x80" + b"\x7f" + b"\xff" * 10, b"00000001000", b"00000000001", b"00001000000"]
NAMES = [b"", b".cls", b".png", b"x", b"../../etc/passwd.cls", b"/abs/s0000.png", b"a/b/c/s0000.png",
         b"s0000.PNG", b"s0000.CLS", b"s0000.jpg.cls", b"s0001.cls", b"s0000.png", b"s0000..png",
         b"x" * 100, b"k.cls\0hidden.png", b"\xff\xfe.png", b"./s0009.png", b"s0000"]


def png_with_chunk_field(rng, png):
    """Rewrites IHDR width/height/depth/colour/interlace and fixes its CRC (so libpng sees it)."""
    if len(png) < 33 or png[12:16] != b"IHDR":
        return png, "png (no IHDR)"
    b = bytearray(png)
    field = rng.randrange(5)
    if field < 2:
        v = _pick(rng, [0, 1, 32768, 32769, 65535, 2**28, 2**31 - 1, 2**31, 2**32 - 1])
        b[16 + 4 * field:20 + 4 * field] = struct.pack(">I", v)
        d = "png %s=%d" % ("width" if field == 0 else "height", v)
    else:
        off = {2: 24, 3: 25, 4: 28}[field]
        v = _pick(rng, [0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 255])
        b[off] = v
        d = "png %s=%d" % ({24: "depth", 25: "colour", 28: "interlace"}[off], v)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    return bytes(b), d


def jpeg_with_sof_field(rng, jpg):
    i = 2
    while i + 9 < len(jpg):
        if jpg[i] != 0xFF:
            break
        m = jpg[i + 1]
        seglen = struct.unpack(">H", jpg[i + 2:i + 4])[0]
        if m in (0xC0, 0xC1, 0xC2):
            b = bytearray(jpg)
            f = rng.randrange(4)
            if f < 2:
                v = _pick(rng, [0, 1, 32768, 32769, 65535])
                b[i + 5 + 2 * (1 - f):i + 7 + 2 * (1 - f)] = struct.pack(">H", v)
                return bytes(b), "jpeg %s=%d" % ("width" if f == 0 else "height", v)
            if f == 2:
                v = _pick(rng, [0, 2, 4, 5, 255])
                b[i + 9] = v
                return bytes(b), "jpeg components=%d" % v
            b[i + 4] = _pick(rng, [0, 1, 12, 16, 255])
            return bytes(b), "jpeg precision=%d" % b[i + 4]
        i += 2 + seglen
    return jpg, "jpeg (no SOF)"


def mutate_tar(rng, data, others=()):
    members, tail = tar_split(data)
    if not members or rng.random() < 0.25:
        return mutate_bytes(rng, data, others)
    k = rng.randrange(len(members))
    h, payload = members[k]
    name = _member_name(h)
    op = rng.randrange(12)
    d = None
    if op == 0:
        _set_field(h, 124, 12, _pick(rng, SIZE_FIELDS))
        d = "size field %r" % bytes(h[124:136])
    elif op == 1:
        h[156] = _pick(rng, TYPEFLAGS)
        if h[156] in b"12":
            _set_field(h, 157, 100, _pick(rng, [b"/etc/passwd", b"../../../etc/passwd", b"s0000.png", name.encode()]))
        d = "typeflag %r" % chr(h[156])
    elif op == 2:
        _set_field(h, 0, 100, _pick(rng, NAMES))
        d = "name %r" % _member_name(h)
    elif op == 3:
        _set_field(h, 345, 155, _pick(rng, [b"dir", b"x" * 155, b"..", b"/"]))
        d = "ustar prefix %r" % bytes(h[345:360])
    elif op == 4:
        off, w = _pick(rng, [(100, 8), (108, 8), (116, 8), (136, 12), (257, 6), (263, 2), (329, 8), (337, 8)])
        _set_field(h, off, w, _pick(rng, [b"", b"7777777", b"\xff" * w, b"\x80" + b"\xff" * (w - 1), b"zzz"]))
        d = "header field @%d" % off
    elif op == 5 and name.endswith(".cls"):
        t = _pick(rng, CLS_TEXT)
        members[k] = _with_payload(h, t)
        d = "%s = %r" % (name, t[:20])
    elif op == 6 and name.rsplit(".", 1)[-1] in ("png", "jpg", "jpeg"):
        size = _size_field(h)
        img = payload[:size] if 0 < size <= len(payload) else payload
        if img[:4] == b"\x89PNG":
            m, d = png_with_chunk_field(rng, img)
        elif rng.random() < 0.6:
            m, d = jpeg_with_sof_field(rng, img)
        else:
            m, d = mutate_bytes(rng, img, [o for o in others])
            d = "image bytes " + d
        members[k] = _with_payload(h, m)
        d = "%s %s" % (name, d)
    elif op == 7:
        members.pop(k)
        d = "member %s removed" % name
    elif op == 8:
        members.insert(rng.randrange(len(members) + 1), (bytearray(h), payload))
        d = "member %s duplicated" % name
    elif op == 9:
        j = rng.randrange(len(members))
        members[k], members[j] = members[j], members[k]
        d = "members %d<->%d swapped" % (k, j)
    elif op == 10:
        tail = _pick(rng, [b"", b"\0" * 512, b"garbage" * 100, bytes(rng.randrange(256) for _ in range(700))])
        d = "end of archive -> %d bytes" % len(tail)
    else:
        # a member larger than the reader's limit, declared but not present
        _set_field(h, 124, 12, b"%011o" % _pick(rng, [64 << 20, (64 << 20) + 1, 8**11 - 1]))
        d = "%s declared huge" % name
    if d is None:
        return mutate_bytes(rng, data, others)
    if op <= 4 or op == 11:
        if rng.random() < 0.9:
            tar_checksum(h)
        else:
            d += " (bad checksum)"
    return tar_join(members, tail), d


def mutate_classes(rng, data):
    op = rng.randrange(6)
    if op == 0:
        return _pick(rng, [b"", b"\n", b"\0", b"a\0b\n", b"one\n", b"\xff\xfe\xfd\n" * 3, b"\r\n\r\n\r\n"]), "classes.txt small"
    if op == 1:
        return b"c\n" * _pick(rng, [2, 4, 1000, 200000]), "classes.txt many lines"
    if op == 2:
        return b"x" * _pick(rng, [255, 256, 4096, 1 << 20]) + b"\n", "classes.txt one long line"
    if op == 3:
        return None, "classes.txt missing"
    if op == 4:
        return "dir", "classes.txt is a directory"
    m, d = mutate_bytes(rng, data)
    return m, "classes.txt " + d


def gzip_bytes(data):
    return gzip.compress(data, mtime=0)


# ---------------------------------------------------------------- ImageFolder
def _copytree(src, dst):
    import shutil
    shutil.copytree(src, dst, symlinks=True)


def mutate_imagefolder(rng, src_root, root, outside):
    """Copies the seed ImageFolder to root and changes one thing in it. `outside` is a valid PNG
    beside root that only a followed symlink reaches (following symlinks to regular files is
    allowed: subsets are often built that way; FIFOs, devices and directories are not images)."""
    import os
    _copytree(src_root, root)
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs)
    victim = _pick(rng, files)
    with open(outside, "wb") as o:
        o.write(open(_pick(rng, [f for f in files if f.endswith(".png")]), "rb").read())
    cls_dir = os.path.dirname(victim)
    op = rng.randrange(11)
    rel = os.path.relpath(victim, root)
    if op <= 2:
        data = open(victim, "rb").read()
        if data[:4] == b"\x89PNG" and op == 0:
            m, d = png_with_chunk_field(rng, data)
        elif data[:2] == b"\xff\xd8" and op == 0:
            m, d = jpeg_with_sof_field(rng, data)
        else:
            m, d = mutate_bytes(rng, data)
        open(victim, "wb").write(m)
        return "%s %s" % (rel, d)
    if op == 3:
        os.remove(victim)
        target = _pick(rng, [os.path.relpath(outside, cls_dir), "/dev/zero", "/nonexistent.png", "."])
        os.symlink(target, victim)
        return "%s -> symlink %s" % (rel, target)
    if op == 4:
        os.remove(victim)
        os.mkfifo(victim)
        return "%s -> fifo" % rel
    if op == 5:
        os.remove(victim)
        os.mkdir(victim)
        return "%s -> directory" % rel
    if op == 6:
        with open(victim, "r+b") as f:
            f.truncate(_pick(rng, [0, 1, 8, (64 << 20) + 1, 1 << 30]))
        return "%s sparse/empty size %d" % (rel, os.path.getsize(victim))
    if op == 7:
        n = _pick(rng, [1, 4, 300, 2000])
        for i in range(n):
            os.mkdir(os.path.join(root, "c%05d" % i))
        if rng.random() < 0.5:
            open(os.path.join(root, "c%05d" % (n - 1), "x.png"), "wb").write(open(outside, "rb").read())
        return "%d extra class dirs" % n
    if op == 8:
        name = _pick(rng, ["a\nb", "x" * 255, ".hidden", "\xe9t\xe9", " ", "-", "zz.png"])
        try:
            os.mkdir(os.path.join(root, name))
            open(os.path.join(root, name, "y.png"), "wb").write(open(outside, "rb").read())
        except OSError:
            pass
        return "class dir %r" % name[:20]
    if op == 9:
        for d in os.listdir(root):
            import shutil
            shutil.rmtree(os.path.join(root, d))
        return "no class dirs"
    target = _pick(rng, ["..", "/", os.path.relpath(os.path.dirname(outside), root)])
    os.symlink(target, os.path.join(root, "zlink"))
    return "class dir symlink -> %s" % target


# ---------------------------------------------------------------- IDX / YAML
def mutate_idx(rng, data):
    """IDX header fields: data type, number of dimensions, a dimension (big-endian int32)."""
    b = bytearray(data)
    if len(b) < 8:
        return mutate_bytes(rng, data)
    op = rng.randrange(3)
    if op == 0:
        b[2] = _pick(rng, [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF])
        return bytes(b), "idx type %#x" % b[2]
    if op == 1:
        b[3] = _pick(rng, [0, 1, 2, 3, 4, 255])
        return bytes(b), "idx ndims %d" % b[3]
    ndims = max(1, min(b[3], (len(b) - 4) // 4))
    k = rng.randrange(ndims)
    v = _pick(rng, [0, 1, 2, 3, 4, 6, 7, 9, 28, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 65536])
    b[4 + 4 * k:8 + 4 * k] = struct.pack(">I", v)
    return bytes(b), "idx dim%d=%d" % (k, v)


YAML_VALUES = ["-1", "0", "1e309", "nan", "inf", "-inf", "2147483648", "9223372036854775808", "", "[", "{a: b}",
               "~", "null", "yes", "0x10", "'unterminated", "\"esc\\", "a" * 5000, "[1, 2, 3, 4, 5, 6, 7, 8, 9]",
               "&anchor", "*alias", "!!python/object:os.system", "- item", "1e-320", "3.5", "[]", "'  '"]


def mutate_yaml(rng, text):
    lines = text.split(b"\n")
    op = rng.randrange(7)
    i = rng.randrange(len(lines))
    key = lines[i].split(b":", 1)[0]
    if op <= 2 and key not in (b"output", b"train", b"val", b"resume", b"initial_checkpoint", b"config"):
        v = _pick(rng, YAML_VALUES).encode()
        lines[i] = key + b": " + v
        return b"\n".join(lines), "yaml %s: %r" % (key.decode("latin-1"), v[:20])
    if op == 3:
        lines.insert(i, _pick(rng, [b"zz_unknown: 1", b"model: vit_tiny_28", b"lr: 1", key + b": 2", b"no colon here",
                                    b"\tindented: 1", b"  nested:\n    deep: 1", b"key: [1,\n  2]", b"\0", b"---",
                                    b"#" * 100000]))
        return b"\n".join(lines), "yaml insert @%d" % i
    if op == 4:
        del lines[i]
        return b"\n".join(lines), "yaml del line %d" % i
    if op == 5:  # longer configs, at most ~1 MiB however the mutations stack
        n = max(1, min(_pick(rng, [2, 1000]), (1 << 20) // max(1, len(text))))
        return b"\n".join(lines * n), "yaml lines repeated x%d" % n
    m, d = mutate_bytes(rng, text)
    return m, "yaml bytes " + d


STRUCT_KEYS = ["num_classes", "img_size", "in_chans", "patch_size", "embed_dim", "depth", "depths", "dims",
               "heads", "mem_units", "pool_size", "rep_reduction", "rep_kernels", "mlp_ratio", "mlp_ratio_tokens",
               "stem_kernel", "stem_stride", "stem_pad", "num_stages", "mlp_hidden_scale", "layer_scale_init"]
STRUCT_VALUES = [0, -1, 2, 7, 1024, 1025, 4097, 65536, 100000, 2**31 - 1, 2**31, 10**12, 1e30, 0.5, -0.5, 1e-30,
                 "8", None, [8], [1, 1, 1, 1, 1]]


def mutate_config_struct(rng, text):
    """A model-shape field of the checkpoint's config JSON set to a value at or past the flag
    limits: the stored config must be validated like the flags before a model is built."""
    try:
        obj = json.loads(text)
    except ValueError:
        return text, "config not JSON"
    if not isinstance(obj, dict):
        return text, "config not an object"
    key = _pick(rng, [k for k in STRUCT_KEYS if k in obj] or STRUCT_KEYS)
    v = _pick(rng, STRUCT_VALUES)
    if isinstance(obj.get(key), list) and obj[key] and not isinstance(v, list) and rng.random() < 0.7:
        lst = list(obj[key])
        lst[rng.randrange(len(lst))] = v
        v = lst
    obj[key] = v
    return json.dumps(obj), "config %s=%s" % (key, json.dumps(v)[:40])


# ---------------------------------------------------------------- safetensors
ST_DTYPES = ["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "", "f32", "F32 "]


def mutate_safetensors(rng, data):
    """Header length, JSON header (dtype, shape, data_offsets, metadata config) or raw bytes."""
    if len(data) < 8 or rng.random() < 0.3:
        return mutate_bytes(rng, data)
    n = struct.unpack("<Q", data[:8])[0]
    try:
        hdr = json.loads(data[8:8 + n])
    except ValueError:
        return mutate_bytes(rng, data)
    body = data[8 + n:]
    op = rng.randrange(7)
    keys = [k for k in hdr if k != "__metadata__"]
    k = _pick(rng, keys) if keys else None
    if op == 0:
        v = _pick(rng, [0, 7, n - 1, n + 1, len(data), 2**31, 2**63, 2**64 - 1])
        return struct.pack("<Q", v) + data[8:], "header length %d" % v
    if op == 1 and k:
        hdr[k]["dtype"] = _pick(rng, ST_DTYPES)
        d = "%s dtype %s" % (k, hdr[k]["dtype"])
    elif op == 2 and k:
        hdr[k]["shape"] = _pick(rng, [[], [0], [2**31], [2**32, 2**32], [-1], [1] * 9, [3, "a"], None,
                                      list(reversed(hdr[k].get("shape", [])))])
        d = "%s shape %s" % (k, hdr[k]["shape"])
    elif op == 3 and k:
        a, b = hdr[k].get("data_offsets", [0, 0])
        hdr[k]["data_offsets"] = _pick(rng, [[b, a], [0, 2**63], [a, a], [a, b + 4], [-4, b], [a], [a, b, 0],
                                             [a, len(body) + 1], [0, 0], "0-4"])
        d = "%s data_offsets %s" % (k, hdr[k]["data_offsets"])
    elif op == 4 and k:
        other = _pick(rng, keys)
        hdr[k]["data_offsets"] = hdr[other].get("data_offsets")
        d = "%s aliases %s" % (k, other)
    elif op == 5 and isinstance(hdr.get("__metadata__"), dict):
        md = hdr["__metadata__"]
        mk = _pick(rng, sorted(md) + ["mixtape_config"])
        if mk == "mixtape_config" and isinstance(md.get(mk), str) and rng.random() < 0.6:
            md[mk], d = mutate_config_struct(rng, md[mk])
        else:
            md[mk] = _pick(rng, ["", "x" * 20000, "vit_tiny_28", "{", 1, None])
            d = "metadata %s" % mk
    else:
        if k:
            del hdr[k]
        hdr[_pick(rng, ["extra.weight", k or "x", "", "a" * 300])] = {"dtype": "F32", "shape": [1],
                                                                     "data_offsets": [0, 4]}
        d = "tensor removed/added"
    h = json.dumps(hdr).encode()
    return struct.pack("<Q", len(h)) + h + body, d
