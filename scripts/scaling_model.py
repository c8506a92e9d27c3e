#!/usr/bin/env python3
"""Data-parallel scaling model for mixtape (docs/distributed.md, "What scaling to expect").

The gradient all-reduce is a ring: 2 (N - 1) steps, in each of which every rank sends and
receives S / N bytes of every bucket. On N machines, each with its own link of bandwidth
beta (bytes/s) and latency alpha (s per message), one step's all-reduce costs

    T_ar(N) = k * 2 (N - 1) * alpha + 2 (N - 1) / N * S / beta       (k buckets, S bytes)

and the buckets overlap the backward pass, so only what does not fit under the backward
that remains after the first bucket is ready is added to the step:

    T_step(N) = T_compute + max(0, T_ar(N) - overlap * T_compute)

Usage:
  scripts/scaling_model.py predict --step-s 0.8 --grad-mb 240 --bucket-mb 4 \\
        --alpha-us 50 --beta-gbs 1.17 [--overlap 0.6] [--batch 64]
      prints T_ar, the exposed part, images/s and efficiency for N = 1..64 machines.
  scripts/scaling_model.py check N2.txt N4.txt
      reads two `mpirun -np N mixtape bench --comm` outputs from one machine (ranks on
      network-namespace hosts sharing its cores): there every byte a rank sends crosses
      the same CPUs, so the cost is per byte moved on the machine, C bytes/s, and the ring
      moves 2 (N - 1) S bytes in all: T(N) = 2 (N - 1) S / C. C is fitted at N = 2 and
      T(4) predicted for every message size, next to the measured T(4).
"""
import argparse, re, sys


def ring_time(n, s_bytes, k, alpha, beta):
    if n <= 1:
        return 0.0
    return k * 2 * (n - 1) * alpha + 2 * (n - 1) / n * s_bytes / beta


def predict(a):
    s = a.grad_mb * 1048576
    k = max(1, round(a.grad_mb / a.bucket_mb))
    print(f"gradients {a.grad_mb:.1f} MB in {k} buckets of {a.bucket_mb} MB; compute {a.step_s * 1e3:.0f} ms/step per "
          f"machine at batch {a.batch}; links: {a.alpha_us:.0f} us, {a.beta_gbs:.2f} GB/s; overlap {a.overlap:.0%} of the step")
    print("| machines | all-reduce ms | exposed ms | step ms | images/s | efficiency |")
    print("|---:|---:|---:|---:|---:|---:|")
    base = a.batch / a.step_s
    for n in (1, 2, 4, 8, 16, 32, 64):
        t = ring_time(n, s, k, a.alpha_us * 1e-6, a.beta_gbs * 1e9)
        exp = max(0.0, t - a.overlap * a.step_s) if n > 1 else 0.0
        step = a.step_s + exp
        ips = n * a.batch / step
        print(f"| {n} | {t * 1e3:.0f} | {exp * 1e3:.0f} | {step * 1e3:.0f} | {ips:.0f} | {ips / (n * base):.0%} |")


LINE = re.compile(r"^allreduce ([0-9.]+) MB: ([0-9.]+) ms")


def read(path):
    out = {}
    for line in open(path):
        m = LINE.match(line.strip())
        if m:
            out[float(m.group(1))] = float(m.group(2)) * 1e-3
    if not out:
        sys.exit(f"scaling_model: no 'allreduce X MB: Y ms' lines in {path}")
    return out


def check(a):
    t2, t4 = read(a.n2), read(a.n4)
    print("| size MB | measured N=2 ms | C fitted (MB/s) | predicted N=4 ms | measured N=4 ms | predicted / measured |")
    print("|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for mb in sorted(set(t2) & set(t4)):
        s = mb * 1048576
        c = 2 * (2 - 1) * s / t2[mb]
        p4 = 2 * (4 - 1) * s / c
        r = p4 / t4[mb]
        if mb >= a.min_mb:
            worst = max(worst, abs(r - 1))
        print(f"| {mb:g} | {t2[mb] * 1e3:.1f} | {c / 1048576:.0f} | {p4 * 1e3:.1f} | {t4[mb] * 1e3:.1f} | {r:.2f} |")
    print(f"largest deviation at >= {a.min_mb:g} MB: {worst:.0%}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("predict")
    q.add_argument("--step-s", type=float, required=True, help="compute time of one step on one machine (s)")
    q.add_argument("--grad-mb", type=float, required=True, help="gradient megabytes (4 x trainable parameters)")
    q.add_argument("--bucket-mb", type=float, default=4.0)
    q.add_argument("--alpha-us", type=float, default=50.0)
    q.add_argument("--beta-gbs", type=float, default=1.17, help="link bandwidth, GB/s (10 GbE ~ 1.17)")
    q.add_argument("--overlap", type=float, default=0.6, help="share of the step the all-reduce can hide under")
    q.add_argument("--batch", type=int, default=64, help="images per machine per step")
    c = sub.add_parser("check")
    c.add_argument("n2")
    c.add_argument("n4")
    c.add_argument("--min-mb", type=float, default=4.0, help="sizes from which the deviation is judged")
    a = p.parse_args()
    predict(a) if a.cmd == "predict" else check(a)


if __name__ == "__main__":
    main()
