"""Forward selection on a consumer's whole output (multi-output orthogonal least squares).

On an :class:`theory.output_problem.OutputProblem`, each step adds the channel whose columns
lower loss(S) the most once all the weights are refit, exactly: with P the residual moments of
the columns after projecting out those already kept and R = the residual cross moments with
the output, channel j (columns J) lowers the loss by tr(R_J^T P_JJ^+ R_J). After a step, P and
R are updated by the rank-K Schur complement of the new columns (a rank-one update per column),
so a step costs O(d^2 K) for d columns, and no least squares is ever re-solved. Directions of
P_JJ below ``RANK_RTOL`` of the channel's own scale are in the span of what is kept and are
left out; a channel with none left is marked dependent and never chosen.

Unlike the paper's selectors (and omp), which weight each channel's fixed contribution, this
one lets each kept channel's map to every output be refit; see the problem's module docstring.
The iterate's ``weights`` are 1 on the kept channels: the refit weights are
:meth:`OutputProblem.solve` of the support.
"""

from __future__ import annotations

import numpy as np

from theory.output_problem import OutputProblem
from theory.trace import REFIT, Step

RANK_RTOL = 1e-10


class OutputIterate:
    """The kept channels, in order, with the residual moments of every column."""

    def __init__(self, problem: OutputProblem) -> None:
        self.problem = problem
        n, k = problem.n_neurons, problem.width
        self.weights = np.zeros(n)
        self.order: list[int] = []
        self.dependent = np.zeros(n, dtype=bool)
        self.residual_xx = problem.xx.copy()  # P (d, d)
        self.residual_xy = problem.xy.copy()  # R (d, C_out)
        self._loss = problem.yy
        own = np.arange(n * k).reshape(n, k)
        self._scale = problem.xx[own[:, :, None], own[:, None, :]].diagonal(0, 1, 2).max(axis=1)
        fixed = np.arange(n * k, problem.xx.shape[0])
        if fixed.size:
            self._project(fixed)

    @property
    def support(self) -> np.ndarray:
        return np.asarray(self.order, dtype=np.intp)

    def loss(self) -> float:
        return max(float(self._loss), 0.0)

    def gap(self) -> float:
        return float("nan")

    def _inverse(self, blocks: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Pseudo-inverses (..., K, K) of symmetric blocks, dropping eigenvalues at or below
        RANK_RTOL of ``scale`` (...,)."""
        values, vectors = np.linalg.eigh(blocks)
        keep = values > RANK_RTOL * scale[..., None]
        inverted = np.where(keep, 1.0 / np.where(keep, values, 1.0), 0.0)
        return (vectors * inverted[..., None, :]) @ np.swapaxes(vectors, -1, -2)

    def decreases(self) -> np.ndarray:
        """(C,) what adding each channel would lower the loss by (-inf: kept or dependent)."""
        n, k = self.problem.n_neurons, self.problem.width
        own = np.arange(n * k).reshape(n, k)
        blocks = self.residual_xx[own[:, :, None], own[:, None, :]]  # (C, K, K)
        inverse = self._inverse(blocks, self._scale)
        r = self.residual_xy[: n * k].reshape(n, k, -1)  # (C, K, C_out)
        gains = np.einsum("jkc,jkl,jlc->j", r, inverse, r)
        self.dependent |= ~inverse.any(axis=(1, 2))
        gains[self.order] = -np.inf
        gains[self.dependent] = -np.inf
        return gains

    def _project(self, cols: np.ndarray, scale: float | None = None) -> float:
        """Project the residual moments off ``cols``; returns the loss decrease."""
        p, r = self.residual_xx, self.residual_xy
        block = p[np.ix_(cols, cols)]
        if scale is None:
            scale = max(float(np.diag(block).max()), np.finfo(float).tiny)
        inverse = self._inverse(block, np.asarray(scale))
        across = p[:, cols] @ inverse  # (d, |cols|)
        decrease = float((r[cols] * (inverse @ r[cols])).sum())
        self.residual_xy = r - across @ r[cols]
        self.residual_xx = p - across @ p[cols]
        self._loss -= decrease
        return decrease

    def add(self, j: int) -> None:
        """Keep channel j: project its columns out of the residual moments."""
        k = self.problem.width
        self._project(np.arange(j * k, (j + 1) * k), float(self._scale[j]))
        self.order.append(j)
        self.weights[j] = 1.0


def make(problem: OutputProblem, rng: np.random.Generator):
    """Stepper of forward selection on the whole output."""

    def step(it: OutputIterate) -> Step | None:
        gains = it.decreases()
        j = int(np.argmax(gains))
        if not gains[j] > 0.0:
            return None
        it.add(j)
        return Step(REFIT, j, 1.0)

    return OutputIterate(problem), step
