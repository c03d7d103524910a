"""Away-step Frank-Wolfe: the better of the Frank-Wolfe vertex and the away vertex, by gradient.

Forward: toward s = argmin_j grad_j, g in [0, 1]. Away: from v = argmax_{i in S} grad_i,
a <- (1 + g) a - g e_v, g in [0, a_v / (1 - a_v)]; at the largest step v leaves the support (a
"drop" step, outside docs/theory.md statement 4).
"""

from __future__ import annotations

import numpy as np

from theory.iterate import Iterate
from theory.problem import LayerProblem
from theory.trace import AWAY, DROP, FORWARD, VERTEX, Step


def make(problem: LayerProblem, rng: np.random.Generator):
    """Stepper of away-step Frank-Wolfe."""

    def step(it: Iterate) -> Step | None:
        if it.empty:
            return Step(VERTEX, it.start_at_best_vertex(), 1.0)
        b = it.slopes()
        q = it.curvatures()
        s = int(np.argmin(b))
        support = it.support
        v = int(support[np.argmax(b[support])])
        if -b[s] >= b[v] or it.weights[v] >= 1.0:
            g = min(max(-float(b[s]) / q[s], 0.0), 1.0) if q[s] > 0.0 else 0.0
            if g <= 0.0:
                return None
            it.forward(s, g)
            return Step(FORWARD, s, g)
        g_max = it.weights[v] / (1.0 - it.weights[v])
        g = min(float(b[v]) / q[v], g_max) if q[v] > 0.0 else g_max
        if g <= 0.0:
            return None
        drop = g >= g_max
        it.away(v, g, drop)
        return Step(DROP if drop else AWAY, v, g)

    return Iterate(problem), step
