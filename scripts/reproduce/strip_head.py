#!/usr/bin/python3
"""Fine-tuning helpers for mixtape checkpoints (used by finetune.sh).

    strip_head.py IN.h5 OUT.h5        copy /model and the root attributes without the
                                      classifier (head.weight/bias or head.fc.*), so that
                                      `mixtape train --initial-checkpoint OUT.h5` initialises
                                      a fresh head whatever its number of classes
    strip_head.py --freeze-patterns IN.h5
                                      print a --freeze list covering every parameter but
                                      the classifier (a linear probe)
"""
import sys

import h5py

CLASSIFIER = ("head.weight", "head.bias", "head.fc.weight", "head.fc.bias")


def freeze_patterns(keys):
    pats = []
    for k in keys:
        if k in CLASSIFIER:
            continue
        parts = k.split(".")
        p = ".".join(parts[:2]) + ".*" if parts[0] == "head" else parts[0] + ".*"
        if len(parts) == 1:
            p = k
        if p not in pats:
            pats.append(p)
    return ",".join(pats)


def main(argv):
    if len(argv) == 2 and argv[0] == "--freeze-patterns":
        with h5py.File(argv[1], "r") as f:
            print(freeze_patterns(list(f["model"])))
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = argv
    with h5py.File(src, "r") as f, h5py.File(dst + ".tmp", "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        m = g.create_group("model")
        dropped = []
        for k in f["model"]:
            if k in CLASSIFIER:
                dropped.append(k)
                continue
            f.copy(f["model"][k], m, name=k)
    import os
    os.replace(dst + ".tmp", dst)
    print(f"wrote {dst} without {', '.join(dropped) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
