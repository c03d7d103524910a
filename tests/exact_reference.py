"""Greedy-local and fixed-step in exact rational arithmetic, written independently of theory/.

For integer points psi (N, p) with target t, every quantity is a Fraction: the loss of a
candidate a' = (1 - g) a + g e_j is computed from the points themselves (no Gram tricks), and
the exact line search minimises that quadratic in g over [0, 1].
"""

from __future__ import annotations

from fractions import Fraction


def _combine(points, weights):
    dim = len(points[0])
    return [sum(w * p[k] for w, p in zip(weights, points, strict=True)) for k in range(dim)]


def _dist2(u, v):
    return sum((x - y) ** 2 for x, y in zip(u, v, strict=True))


def greedy_local(points, target, steps):
    """[(neuron, step size, loss, runner-up gap)] of the exact greedy-local run."""
    n = len(points)
    f = _combine(points, target)
    out, weights = [], None
    for _ in range(steps):
        best = []
        for j in range(n):
            if weights is None:
                g, cand = Fraction(1), [Fraction(int(i == j)) for i in range(n)]
            else:
                fa = _combine(points, weights)
                e = [x - y for x, y in zip(fa, f, strict=True)]  # f_a - F
                u = [p - x for p, x in zip(points[j], fa, strict=True)]  # psi_j - f_a
                q = sum(x * x for x in u)
                b = sum(x * y for x, y in zip(u, e, strict=True))
                g = min(max(-b / q, Fraction(0)), Fraction(1)) if q else Fraction(0)
                cand = [(1 - g) * w + (g if i == j else 0) for i, w in enumerate(weights)]
            best.append((_dist2(_combine(points, cand), f), j, g, cand))
        best.sort(key=lambda item: (item[0], item[1]))
        loss, j, g, weights = best[0]
        margin = best[1][0] - loss if n > 1 else Fraction(1)
        out.append((j, g, loss, margin))
    return out


def fixed_step(points, target, steps):
    """[(neuron, loss, runner-up gap)] of the exact fixed-step (GFS) run with repeats."""
    n = len(points)
    f = _combine(points, target)
    out, weights = [], [Fraction(0)] * n
    for k in range(steps):
        g = Fraction(1, k + 1)
        best = []
        for j in range(n):
            cand = [(1 - g) * w + (g if i == j else 0) for i, w in enumerate(weights)]
            best.append((_dist2(_combine(points, cand), f), j, cand))
        best.sort(key=lambda item: (item[0], item[1]))
        loss, j, weights = best[0]
        margin = best[1][0] - loss if n > 1 else Fraction(1)
        out.append((j, loss, margin))
    return out
