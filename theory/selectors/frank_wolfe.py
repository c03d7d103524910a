"""Classic Frank-Wolfe: the vertex that minimises the gradient, then exact line search."""

from __future__ import annotations

import numpy as np

from theory.iterate import Iterate
from theory.problem import LayerProblem
from theory.trace import FORWARD, VERTEX, Step


def make(problem: LayerProblem, rng: np.random.Generator):
    """Stepper of frank-wolfe (it starts at the best single neuron, like greedy-local)."""

    def step(it: Iterate) -> Step | None:
        if it.empty:
            return Step(VERTEX, it.start_at_best_vertex(), 1.0)
        b = it.slopes()
        j = int(np.argmin(b))
        q = float(it.curvatures()[j])
        g = min(max(-float(b[j]) / q, 0.0), 1.0) if q > 0.0 else 0.0
        if g <= 0.0:
            return None
        it.forward(j, g)
        return Step(FORWARD, j, g)

    return Iterate(problem), step
