"""Tiny test data the tests generate themselves: grey PNG bytes, WebDataset tar shards, and a
small HDF5 classification set."""
import io, struct, tarfile, zlib


def png_bytes(w, h, color_type, rows):
    """PNG bytes from raw 8-bit rows (each w * channels bytes; color type 0 grey, 2 RGB), no PIL."""
    raw = b"".join(b"\x00" + bytes(row) for row in rows)

    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png(a):
    """PNG bytes of a uint8 numpy array: (H, W) grey or (H, W, 3) RGB."""
    h, w = a.shape[:2]
    return png_bytes(w, h, 0 if a.ndim == 2 else 2, (a[i].tobytes() for i in range(h)))


def png_gray(a):
    """8-bit greyscale PNG bytes of a 2-D uint8 array."""
    return png(a)


def write_shard(path, items):
    """items: (key, image bytes, class); writes <key>.png and <key>.cls members (ustar). The
    class is an int or raw bytes; a None image or class leaves that member out."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
        for key, img, cls in items:
            if isinstance(cls, int):
                cls = b"%d" % cls
            for ext, data in (("png", img), ("cls", cls)):
                if data is None:
                    continue
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
