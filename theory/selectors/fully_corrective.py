"""Fully corrective: add a neuron, then re-solve the weights over the simplex on the support.

The neuron is the greedy-local choice (``choice="greedy"``, the default) or the Frank-Wolfe
vertex (``choice="gradient"``). The re-solve is the gamma subproblem of :mod:`theory.simplex_qp`,
warm-started from the current weights; ``solver="cvxpy"`` uses the reference solver.
"""

from __future__ import annotations

import numpy as np

from theory.iterate import Iterate
from theory.problem import LayerProblem
from theory.simplex_qp import SOLVERS, minimise
from theory.trace import CORRECTIVE, VERTEX, Step

CHOICES = ("greedy", "gradient")


def make(
    problem: LayerProblem,
    rng: np.random.Generator,
    choice: str = "greedy",
    solver: str = "active-set",
):
    """Stepper of fully-corrective Frank-Wolfe."""
    if choice not in CHOICES:
        raise ValueError(f"unknown choice {choice!r}; valid choices: {', '.join(CHOICES)}")
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; valid solvers: {', '.join(SOLVERS)}")

    def step(it: Iterate) -> Step | None:
        if it.empty:
            return Step(VERTEX, it.start_at_best_vertex(), 1.0)
        _, change = it.forward_changes()
        j = int(np.argmin(change)) if choice == "greedy" else int(np.argmin(it.slopes()))
        if not change[j] < 0.0:
            return None
        support = it.support
        if j not in support:
            support = np.append(support, j)
        x = best_on(problem, support, start=it.weights[support], solver=solver)
        it.assign(support, x)
        return Step(CORRECTIVE, j, float(x[support == j][0]))

    return Iterate(problem), step


def best_on(
    problem: LayerProblem,
    support: np.ndarray,
    start: np.ndarray | None = None,
    solver: str = "active-set",
) -> np.ndarray:
    """The gamma subproblem on ``support`` (S,): the weights x (S,) on the simplex there that
    minimise the layer loss (``start`` (S,) warm-starts the active-set solver)."""
    support = np.asarray(support, dtype=np.intp)
    quad = problem.centred[np.ix_(support, support)]
    lin = -problem.centred_target[support]
    return minimise(quad, lin, start, solver)


def resolved(problem: LayerProblem, weights: np.ndarray) -> np.ndarray:
    """Convex ``weights`` (N,) with the values on their support replaced by the gamma subproblem's
    solution there (N,): the least layer loss on the same neurons, never above theirs (a
    re-solved weight may be 0, so the support may shrink). The active-set solver starts from
    ``weights`` (a cold start would admit the support one neuron at a time)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (problem.n_neurons,) or not np.any(weights) or weights.min() < 0.0:
        raise ValueError(
            f"weights must be convex weights of shape ({problem.n_neurons},): non-negative, "
            f"not all 0; got shape {weights.shape}"
        )
    support = np.flatnonzero(weights)
    out = np.zeros(problem.n_neurons)
    out[support] = best_on(problem, support, start=weights[support])
    return out
