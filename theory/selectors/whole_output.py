"""Forward selection on a consumer's whole output (multi-output orthogonal least squares).

On an :class:`theory.output_problem.OutputProblem`, each step adds the channel whose columns
lower loss(S) the most once all the weights are refit, exactly: with P the residual moments of
the columns after projecting out those already kept and R = the residual cross moments with
the output, channel j (columns J) lowers the loss by tr(R_J^T P_JJ^+ R_J). P is never formed:
it is xx - Q Q^T with Q an xx-orthonormal basis of the kept columns, grown by K columns a step
(the rank-K Schur complement of the new columns, a rank-one update per column), and only R
and P's K x K diagonal blocks are kept up to date. A step costs O(d s K^2) for d columns and
s kept channels, and no least squares is ever re-solved. Directions of
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
    """The kept channels, in order, with what the residual moments of the columns need: an
    xx-orthonormal basis Q of the kept columns (so the residual moments are xx - Q Q^T), the
    residual cross moments R, and the diagonal blocks of the residual moments (one K x K
    block per channel)."""

    def __init__(self, problem: OutputProblem) -> None:
        self.problem = problem
        n, k = problem.n_neurons, problem.width
        self.weights = np.zeros(n)
        self.order: list[int] = []
        self.dependent = np.zeros(n, dtype=bool)
        own = np.arange(n * k).reshape(n, k)
        self.blocks = problem.xx[own[:, :, None], own[:, None, :]]  # (C, K, K)
        self._scale = self.blocks.diagonal(0, 1, 2).max(axis=1)  # (C,)
        self.residual_xy = problem.xy.copy()  # R (d, C_out)
        self._basis = np.empty((problem.xx.shape[0], min(64, problem.xx.shape[0])))  # Q
        self._rank = 0  # the columns of Q in use
        self._loss = problem.yy
        fixed = np.arange(n * k, problem.xx.shape[0])
        if fixed.size:
            self._project(fixed, float(np.diag(problem.xx)[fixed].max()))

    @property
    def support(self) -> np.ndarray:
        return np.asarray(self.order, dtype=np.intp)

    def loss(self) -> float:
        return max(float(self._loss), 0.0)

    def gap(self) -> float:
        return float("nan")

    def decreases(self) -> np.ndarray:
        """(C,) what adding each channel would lower the loss by (-inf: kept or dependent)."""
        n, k = self.problem.n_neurons, self.problem.width
        open_ = np.ones(n, dtype=bool)
        open_[self.order] = False
        open_ &= ~self.dependent
        j = np.flatnonzero(open_)  # the candidates
        values, vectors = np.linalg.eigh(self.blocks[j])  # (J, K), (J, K, K)
        keep = values > RANK_RTOL * self._scale[j, None]
        self.dependent[j[~keep.any(axis=1)]] = True
        inverted = np.where(keep, 1.0 / np.where(keep, values, 1.0), 0.0)
        r = self.residual_xy[: n * k].reshape(n, k, -1)[j]  # (J, K, C_out)
        rotated = np.swapaxes(vectors, 1, 2) @ r  # (J, K, C_out)
        gains = np.full(n, -np.inf)
        gains[j] = np.einsum("jk,jkc->j", inverted, rotated * rotated)
        gains[self.dependent] = -np.inf
        return gains

    def _project(self, cols: np.ndarray, scale: float) -> None:
        """Keep the columns ``cols``: the residual moments lose their span (the directions of
        their residual block above RANK_RTOL of ``scale``), and the loss what they explain."""
        q = self._basis[:, : self._rank]
        column = self.problem.xx[:, cols] - q @ q[cols].T  # residual moments P[:, cols]
        values, vectors = np.linalg.eigh(column[cols])
        keep = values > RANK_RTOL * max(scale, np.finfo(float).tiny)
        root = vectors[:, keep] / np.sqrt(values[keep])  # root root^T = P[cols, cols]^+
        new = column @ root  # (d, r): the new basis columns
        z = root.T @ self.residual_xy[cols]  # (r, C_out)
        self.residual_xy -= new @ z
        self._loss -= float((z * z).sum())
        n, k = self.problem.n_neurons, self.problem.width
        mine = new[: n * k].reshape(n, k, -1)
        self.blocks -= mine @ np.swapaxes(mine, 1, 2)
        if self._rank + new.shape[1] > self._basis.shape[1]:  # grow Q's storage by doubling
            grown = np.empty((self._basis.shape[0], 2 * (self._rank + new.shape[1])))
            grown[:, : self._rank] = q
            self._basis = grown
        self._basis[:, self._rank : self._rank + new.shape[1]] = new
        self._rank += new.shape[1]

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
