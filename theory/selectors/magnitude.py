"""Magnitude baseline (L1/L2 filter pruning): keep the neurons of largest ||psi_i||.

Step k adds the k-th largest norm (ties to the lower index); the kept neurons share uniform
weights 1/k, the simplex version of rescaling the kept channels.
"""

from __future__ import annotations

import numpy as np

from theory.iterate import Iterate
from theory.problem import LayerProblem
from theory.trace import FORWARD, VERTEX, Step


def make(problem: LayerProblem, rng: np.random.Generator):
    """Stepper of magnitude pruning."""
    norms2 = np.diag(problem.centred) + 2.0 * problem.offset + problem.target_norm2
    ranking = np.argsort(-norms2, kind="stable")

    def step(it: Iterate) -> Step | None:
        k = len(it.order)
        if k == problem.n_neurons:
            return None
        j = int(ranking[k])
        if k == 0:
            it.start(j)
            return Step(VERTEX, j, 1.0)
        it.forward(j, 1.0 / (k + 1))
        return Step(FORWARD, j, 1.0 / (k + 1))

    return Iterate(problem), step
