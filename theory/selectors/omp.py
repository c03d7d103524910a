"""Orthogonal matching pursuit: unconstrained least squares on a greedily grown support.

The ThiNet / channel-pruning family: each step adds the neuron most correlated with the
residual F - f_w (correlation over ||psi_j||), then refits all weights w on the support by least
squares; w is free (no sign or sum constraint), so it leaves the simplex. The least squares are
solved through a Cholesky factor of G_SS grown one column at a time; a column whose part
outside the span of the support is below ``RANK_RTOL`` of its norm is declared dependent and
skipped (the rank cut), which keeps the refit stable and the loss non-increasing.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve, solve_triangular

from theory.problem import LayerProblem
from theory.trace import REFIT, Step

RANK_RTOL = 1e-10


class LeastSquaresIterate:
    """Free weights w on a support S, with G_SS = L L^T and G w kept up to date."""

    def __init__(self, problem: LayerProblem) -> None:
        self.problem = problem
        n = problem.n_neurons
        self.weights = np.zeros(n)
        self.order: list[int] = []
        self.chol = np.zeros((0, 0))
        self.gram_w = np.zeros(n)  # G w
        self.gram_target = problem.offset + problem.target_norm2  # G t
        self.norms2 = np.diag(problem.centred) + 2.0 * problem.offset + problem.target_norm2
        self.dependent = np.zeros(n, dtype=bool)

    @property
    def support(self) -> np.ndarray:
        order = np.asarray(self.order, dtype=np.intp)
        return order[self.weights[order] != 0.0]

    def loss(self) -> float:
        """L(w) in difference form: (w - t)^T C (w - t) + 2 (s - 1) w.offset + (s - 1)^2 |F|^2."""
        p = self.problem
        idx = np.asarray(self.order, dtype=np.intp)
        d = self.weights - p.target
        centred_d = p.centred[idx].T @ self.weights[idx] - p.centred_target
        s1 = self.weights.sum() - 1.0
        value = d @ centred_d + 2.0 * s1 * (self.weights @ p.offset) + s1 * s1 * p.target_norm2
        return max(float(value), 0.0)

    def gap(self) -> float:
        return float("nan")

    def add(self, j: int) -> bool:
        """Grow the support by j and refit; False (and j marked dependent) if j is in its span."""
        idx = np.asarray(self.order, dtype=np.intp)
        column = self.problem.gram_columns(np.array([j]))[:, 0]
        v = solve_triangular(self.chol, column[idx], lower=True) if idx.size else np.zeros(0)
        pivot = float(column[j] - v @ v)
        if pivot <= RANK_RTOL * self.norms2[j]:
            self.dependent[j] = True
            return False
        s = idx.size
        chol = np.zeros((s + 1, s + 1))
        chol[:s, :s] = self.chol
        chol[s, :s] = v
        chol[s, s] = np.sqrt(pivot)
        self.chol = chol
        self.order.append(j)
        idx = np.asarray(self.order, dtype=np.intp)
        w = cho_solve((chol, True), self.gram_target[idx])
        self.weights[:] = 0.0
        self.weights[idx] = w
        self.gram_w = self.problem.gram_columns(idx) @ w
        return True


def make(problem: LayerProblem, rng: np.random.Generator):
    """Stepper of orthogonal matching pursuit."""

    def step(it: LeastSquaresIterate) -> Step | None:
        correlation = it.gram_target - it.gram_w
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(it.norms2 > 0.0, correlation**2 / it.norms2, 0.0)
        score[it.order] = -np.inf
        score[it.dependent] = -np.inf
        while True:
            j = int(np.argmax(score))
            if not score[j] > 0.0:
                return None
            if it.add(j):
                return Step(REFIT, j, float(it.weights[j]))
            score[j] = -np.inf

    return LeastSquaresIterate(problem), step
