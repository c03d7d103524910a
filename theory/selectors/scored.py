"""Steps chosen by a score over a pool of candidate neurons: the step machinery that greedy
local (pool: none, the local proposal only), global imitation, combined and taylor share.

An :data:`Oracle` ``oracle(weights, neurons, step_sizes) -> losses`` scores candidates: the
current weights a (N,), candidate neurons (K,) and step sizes (K,) in, the loss (K,) of each
candidate (1 - g_j) a + g_j e_j out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from theory.iterate import Iterate
from theory.trace import FORWARD, VERTEX, Step

Oracle = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def check_oracle(oracle: object, name: str) -> None:
    if oracle is None or not callable(oracle):
        raise ValueError(f"{name} needs oracle=f, f(weights, neurons, step_sizes) -> losses")


def stepper(
    oracle: Oracle,
    propose: Callable[[Iterate, np.ndarray], np.ndarray],
    include_local: bool,
    repeats: bool = True,
):
    """A step that scores the pool ``propose(it, movable)`` (neuron indices, drawn among those
    where ``movable`` (N,) is True: a local line-search step g_j > 0 and, without
    ``repeats``, never picked) by the oracle, each candidate at its exact local line-search
    step size (without ``repeats``, when no unpicked neuron has g_j > 0: at 1/(k+1)), and takes
    the lowest."""

    def step(it: Iterate) -> Step | None:
        if it.empty:
            pool = np.asarray(propose(it, np.ones(it.weights.size, dtype=bool)), dtype=np.intp)
            if include_local:
                pool = np.union1d(pool, [int(np.argmin(it.vertex_losses()))])
            sizes = np.ones(pool.size)
        else:
            g, change = it.forward_changes()
            movable = g > 0.0  # a candidate with step 0 would not move the weights
            if not repeats:
                movable[it.order] = False
                if not movable.any():  # no unpicked neuron lowers the layer loss
                    g, change = it.forward_changes(1.0 / (len(it.order) + 1))
                    movable = np.ones(g.size, dtype=bool)
                    movable[it.order] = False
            if not movable.any():
                return None
            pool = np.asarray(propose(it, movable), dtype=np.intp)
            if include_local:
                pool = np.union1d(pool, [int(np.argmin(np.where(movable, change, np.inf)))])
            pool = pool[movable[pool]]
            sizes = g[pool]
        k = 0  # a pool of one is taken without asking the oracle
        if pool.size > 1:
            losses = np.asarray(oracle(it.weights.copy(), pool, sizes), dtype=np.float64)
            if losses.shape != pool.shape or not np.all(np.isfinite(losses)):
                raise ValueError(
                    f"oracle must return {pool.size} finite losses, one a candidate; "
                    f"got {losses.shape}"
                )
            k = int(np.argmin(losses))
        j, g_j = int(pool[k]), float(sizes[k])
        if it.empty:
            it.start(j)
            return Step(VERTEX, j, 1.0)
        it.forward(j, g_j)
        return Step(FORWARD, j, g_j)

    return step
