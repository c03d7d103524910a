"""Pairwise Frank-Wolfe: move weight from the away vertex v to the Frank-Wolfe vertex s.

a <- a + g (e_s - e_v), g in [0, a_v] by exact line search; at g = a_v neuron v leaves the
support (a "swap" step, outside docs/theory.md statement 4).
"""

from __future__ import annotations

import numpy as np

from theory.iterate import Iterate
from theory.problem import LayerProblem
from theory.trace import PAIRWISE, SWAP, VERTEX, Step


def make(problem: LayerProblem, rng: np.random.Generator):
    """Stepper of pairwise Frank-Wolfe."""
    centred = problem.centred

    def step(it: Iterate) -> Step | None:
        if it.empty:
            return Step(VERTEX, it.start_at_best_vertex(), 1.0)
        r = it.residual()
        s = int(np.argmin(r))
        support = it.support
        v = int(support[np.argmax(r[support])])
        slope = float(r[v] - r[s])  # -<grad/2, e_s - e_v>
        if s == v or slope <= 0.0:
            return None
        curvature = max(float(centred[s, s] + centred[v, v] - 2.0 * centred[s, v]), 0.0)
        g_max = float(it.weights[v])
        g = min(slope / curvature, g_max) if curvature > 0.0 else g_max
        drop = g >= g_max
        it.pairwise(v, s, g, drop)
        return Step(SWAP if drop else PAIRWISE, s, g)

    return Iterate(problem), step
