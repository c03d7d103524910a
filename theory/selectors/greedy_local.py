"""The paper's greedy local step: choose the neuron j and step size g jointly, exactly.

Every candidate a <- (1 - g) a + g e_j, g in [0, 1], is scored in closed form from the
maintained C a, O(N) per step. With ``allow_drop`` the away candidates a <- (1 + g) a - g e_i
of the support (g up to the value that drops neuron i) compete too, scored the same way.
With ``repeats=False`` only neurons never picked compete (k steps keep k neurons, as the
global selectors' ``repeats=False``, whose step this is: their stepper with the local proposal
alone, falling back to the step 1/(k+1) when no unpicked neuron lowers the loss).
"""

from __future__ import annotations

import numpy as np

from theory.iterate import Iterate
from theory.problem import LayerProblem
from theory.selectors.scored import stepper
from theory.trace import AWAY, DROP, FORWARD, VERTEX, Step


def make(
    problem: LayerProblem, rng: np.random.Generator, allow_drop: bool = False, repeats: bool = True
):
    """Stepper of greedy-local; ``allow_drop`` adds away/drop candidates on the support;
    ``repeats=False``: never a neuron picked before."""
    if not repeats:
        if allow_drop:
            raise ValueError("greedy-local: allow_drop needs repeats (a dropped neuron may return)")
        no_pool = np.empty(0, dtype=np.intp)  # the local proposal alone: no oracle is asked
        return Iterate(problem), stepper(None, lambda it, movable: no_pool, True, repeats=False)

    def step(it: Iterate) -> Step | None:
        if it.empty:
            return Step(VERTEX, it.start_at_best_vertex(), 1.0)
        g, change = it.forward_changes()
        j = int(np.argmin(change))
        best = float(change[j])
        if allow_drop:
            away = _best_away(it)
            if away is not None and away[2] < best:
                i, g_away, _, drop = away
                it.away(i, g_away, drop)
                return Step(DROP if drop else AWAY, i, g_away)
        if not best < 0.0:
            return None
        it.forward(j, float(g[j]))
        return Step(FORWARD, j, float(g[j]))

    return Iterate(problem), step


def _best_away(it: Iterate) -> tuple[int, float, float, bool] | None:
    """(i, g, loss change, drops) of the best away step a <- (1 + g) a - g e_i over the support."""
    support = it.support
    a = it.weights[support]
    movable = a < 1.0
    if not movable.any():
        return None
    support, a = support[movable], a[movable]
    b = it.slopes()[support]
    q = it.curvatures()[support]
    g_max = a / (1.0 - a)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(q > 0.0, np.minimum(np.maximum(b / q, 0.0), g_max), 0.0)
    change = g * (g * q - 2.0 * b)
    k = int(np.argmin(change))
    return int(support[k]), float(g[k]), float(change[k]), bool(g[k] >= g_max[k])
