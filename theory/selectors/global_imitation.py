"""Global imitation: choose each step by the loss of the whole network, through an oracle.

Each step draws ``candidates`` neurons at random (as the GFS authors' code does) among those
that can move, gives each its exact local line-search step size g_j (the greedy-local closed
form; neurons with g_j = 0 would not move and are not drawn), and asks the oracle for the
global loss of every candidate a' = (1 - g_j) a + g_j e_j; the lowest wins, even when it raises
the global loss. With ``include_local=True`` (registered as ``combined``: the paper's deep-
network rule) the greedy-local proposal competes too, so each step is the better of the local
and the global proposal by the global loss. With ``repeats=False`` only neurons never picked
compete (the pool, and the local proposal), as in the GFS authors' code: every step then adds
a neuron, so k steps keep k (with repeats, a network's global loss often prefers re-weighting a
kept neuron, and a width budget may need many more steps). When no neuron left unpicked has a
positive line-search step (each would raise the layer loss: the descent directions all point
at kept neurons), every unpicked neuron competes at the GFS authors' fixed step 1/(k+1), k the
neurons kept, so that a width is still reached.

The oracle is the extension point: ``oracle(weights, neurons, step_sizes) -> losses`` takes
the current weights a (N,), candidate neurons (K,) and step sizes (K,), and returns the global
loss (K,) of each candidate. The first step (a vertex) is scored the same way, with g = 1. A
pool of one candidate is taken without asking the oracle (taylor with ``candidates=1``: one
backward pass a step and no exact scoring).
"""

from __future__ import annotations

import numpy as np

from theory.iterate import Iterate
from theory.problem import LayerProblem
from theory.selectors.scored import Oracle, check_oracle, stepper


def make(
    problem: LayerProblem,
    rng: np.random.Generator,
    oracle: Oracle | None = None,
    candidates: int = 50,
    include_local: bool = False,
    repeats: bool = True,
):
    """Stepper of global imitation (``include_local=True``: the combined rule;
    ``repeats=False``: never a neuron picked before)."""
    check_oracle(oracle, "global imitation")
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1; got {candidates}")

    def propose(it: Iterate, movable: np.ndarray) -> np.ndarray:
        choices = np.flatnonzero(movable)
        return rng.choice(choices, size=min(candidates, choices.size), replace=False)

    return Iterate(problem), stepper(oracle, propose, include_local, repeats)
