"""GFS's fixed step: g = 1/(k+1) at step k, so the weights stay uniform over the picks.

Each step picks the neuron whose addition lowers the loss most. With ``repeats`` (the default,
docs/theory.md statements 2 and 3) a neuron may be picked again, which doubles its weight; without,
as in the GFS authors' code, only unpicked neurons compete.
"""

from __future__ import annotations

import numpy as np

from theory.iterate import Iterate
from theory.problem import LayerProblem
from theory.trace import FORWARD, VERTEX, Step


def make(problem: LayerProblem, rng: np.random.Generator, repeats: bool = True):
    """Stepper of fixed-step; ``repeats=False`` never picks a neuron twice."""
    picks = 0

    def step(it: Iterate) -> Step | None:
        nonlocal picks
        if it.empty:
            picks = 1
            return Step(VERTEX, it.start_at_best_vertex(), 1.0)
        g = 1.0 / (picks + 1)
        _, change = it.forward_changes(g)
        if not repeats:
            change[it.order] = np.inf
        j = int(np.argmin(change))
        if not np.isfinite(change[j]):
            return None
        it.forward(j, g)
        picks += 1
        return Step(FORWARD, j, g)

    return Iterate(problem), step
