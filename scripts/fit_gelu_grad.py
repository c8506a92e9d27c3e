#!/usr/bin/env python3
"""Fit the piecewise polynomial of GELU's derivative that core/act_gelu.h uses.

gelu'(v) = Phi(v) + v phi(v) on [-6, 6] in 16 pieces of width 0.75; piece i is a degree-6
polynomial in u = v - c_i, c_i = -5.625 + 0.75 i (the piece's centre, |u| <= 0.375), fitted
by least squares at 64 Chebyshev nodes of the piece (close to the minimax fit). Outside
[-6, 6] the kernels clamp v to the interval (gelu' is 0 or 1 there to 3.5e-8).

Prints the C table (coefficient k of piece i at MT_GELU_D[k][i]) and the largest error of
the fit against double-precision gelu' on a fine grid. Pure Python (no numpy).
Usage: python3 scripts/fit_gelu_grad.py > table.txt
"""
import math

PIECES, DEG, LO, WIDTH, NODES = 16, 6, -6.0, 0.75, 64


def dgelu(v):
    return 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) + v * math.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi)


def solve(a, b):
    """a x = b by Gaussian elimination with partial pivoting (a small dense system)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            for k in range(c, n + 1):
                m[r][k] -= f * m[c][k]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x


def fit_piece(i):
    c = LO + WIDTH * (i + 0.5)
    h = WIDTH / 2
    us = [h * math.cos(math.pi * (k + 0.5) / NODES) for k in range(NODES)]
    ys = [dgelu(c + u) for u in us]
    # normal equations in the scaled variable s = u / h (well conditioned on [-1, 1])
    ata = [[sum((u / h) ** (p + q) for u in us) for q in range(DEG + 1)] for p in range(DEG + 1)]
    aty = [sum(y * (u / h) ** p for u, y in zip(us, ys)) for p in range(DEG + 1)]
    s = solve(ata, aty)
    return [s[p] / h ** p for p in range(DEG + 1)]  # coefficients in u


def main():
    coef = [fit_piece(i) for i in range(PIECES)]
    worst = 0.0
    for i, cs in enumerate(coef):
        c = LO + WIDTH * (i + 0.5)
        for k in range(2001):
            u = -WIDTH / 2 + WIDTH * k / 2000
            p = 0.0
            for a in reversed(cs):
                p = p * u + a
            worst = max(worst, abs(p - dgelu(c + u)))
    print(f"/* fit: {PIECES} pieces on [{LO}, {-LO}], degree {DEG}, max |error| {worst:.2e} (double) */")
    print(f"static const float MT_GELU_D[{DEG + 1}][{PIECES}] = {{")
    for k in range(DEG + 1):
        vals = [f"{coef[i][k]:.9e}f" for i in range(PIECES)]
        rows = [", ".join(vals[i:i + 4]) for i in range(0, PIECES, 4)]
        print("    {" + ",\n     ".join(rows) + "},")
    print("};")


if __name__ == "__main__":
    main()
