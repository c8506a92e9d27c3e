"""Tiny test data the tests generate themselves: grey PNG bytes, WebDataset tar shards, and a
small HDF5 classification set."""
import io, struct, tarfile, zlib


def png_gray(a):
    """8-bit greyscale PNG bytes of a 2-D uint8 array (no PIL)."""
    h, w = a.shape
    raw = b"".join(b"\x00" + bytes(row) for row in a)

    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_shard(path, items):
    """items: (key, image bytes, class index); writes <key>.png and <key>.cls members."""
    with tarfile.open(path, "w") as t:
        for key, img, cls in items:
            for ext, data in (("png", img), ("cls", b"%d" % cls)):
                ti = tarfile.TarInfo(f"{key}.{ext}")
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))


def write_h5_bands(path, n=128, classes=4, seed=5):
    """(n, 1, 8, 8) float32 images whose class k brightens rows 2k, 2k+1, and int64 labels."""
    import numpy as np, h5py
    r = np.random.default_rng(seed)
    y = r.integers(0, classes, n)
    x = r.normal(0, 1, (n, 1, 8, 8)).astype(np.float32)
    for i, k in enumerate(y):
        x[i, 0, 2 * k:2 * k + 2, :] += 1.5
    with h5py.File(path, "w") as f:
        f["images"] = x
        f["labels"] = y.astype(np.int64)
