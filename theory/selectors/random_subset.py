"""Monte Carlo baseline: draw neurons with replacement from the target t, uniform weights.

After k draws the weights are the draw counts over k (a <- (1 - 1/k) a + e_j / k), so
E L(a_k) = sigma^2 / k exactly (docs/theory.md statement 1).
"""

from __future__ import annotations

import numpy as np

from theory.iterate import Iterate
from theory.problem import LayerProblem
from theory.trace import FORWARD, VERTEX, Step


def make(problem: LayerProblem, rng: np.random.Generator):
    """Stepper of random sampling, seeded by ``rng``."""
    draws = 0

    def step(it: Iterate) -> Step | None:
        nonlocal draws
        j = int(rng.choice(problem.n_neurons, p=problem.target))
        draws += 1
        if draws == 1:
            it.start(j)
            return Step(VERTEX, j, 1.0)
        it.forward(j, 1.0 / draws)
        return Step(FORWARD, j, 1.0 / draws)

    return Iterate(problem), step
