"""Taylor-guided global imitation: rank every candidate by the first-order change of the
global loss, then score only the best few exactly.

``gradient(weights) -> (N,)`` returns the gradient of the global loss with respect to the
weights a (in a network: one backward pass through per-channel gates on the consumer's
input). The directional derivative toward neuron j, d_j = grad_j - <a, grad>, is the slope of
the global loss along a <- (1 - g) a + g e_j at g = 0 (at the empty start, grad_j). The
``candidates`` neurons with the most negative d_j, among those whose local line-search step
is positive (the others would not move), are scored by the oracle at their exact local
line-search step sizes, as in :mod:`theory.selectors.global_imitation`, and the lowest wins.
``repeats=False``: only neurons never picked are ranked (every step adds one).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from theory.iterate import Iterate
from theory.problem import LayerProblem
from theory.selectors.scored import Oracle, check_oracle, stepper

Gradient = Callable[[np.ndarray], np.ndarray]


def make(
    problem: LayerProblem,
    rng: np.random.Generator,
    oracle: Oracle | None = None,
    gradient: Gradient | None = None,
    candidates: int = 5,
    repeats: bool = True,
):
    """Stepper of taylor: ``candidates`` neurons by gradient, then the oracle decides."""
    check_oracle(oracle, "taylor")
    if gradient is None or not callable(gradient):
        raise ValueError("taylor needs gradient=f, f(weights) -> d(global loss)/d(weights) (N,)")
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1; got {candidates}")
    n = problem.n_neurons

    def propose(it: Iterate, movable: np.ndarray) -> np.ndarray:
        a = it.weights.copy()
        grad = np.asarray(gradient(a), dtype=np.float64)
        if grad.shape != (n,) or not np.all(np.isfinite(grad)):
            raise ValueError(f"gradient must return {n} finite values; got shape {grad.shape}")
        slope = np.where(movable, grad - a @ grad, np.inf)  # only neurons that can move
        ranked = np.argsort(slope, kind="stable")[:candidates]
        return ranked[movable[ranked]]

    return Iterate(problem), stepper(oracle, propose, include_local=False, repeats=repeats)
