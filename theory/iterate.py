"""The iterate a on the simplex, with the products every selector scores from.

Maintained in O(N) per step: the weights ``a`` (N,), ``centred_a = C a`` (N,), the support in the
order neurons were first added. From them, in O(N):

    residual r = C (a - t)                 (half the gradient of L)
    loss       = (a - t) . r               (never negative)
    b_j        = r_j - a.r                 (= <psi_j - f_a, f_a - F>)
    q_j        = C_jj - 2 (C a)_j + a.C a  (= ||psi_j - f_a||^2)
    gap        = -2 min_j b_j              (Frank-Wolfe gap: L(a) - min L <= gap)

Moves, each O(N) (a column of C is a row, since C is symmetric):

    forward(j, g):   a <- (1 - g) a + g e_j                  g in [0, 1]
    away(i, g):      a <- (1 + g) a - g e_i                  g in [0, a_i / (1 - a_i)]
    pairwise(i,j,g): a <- a + g (e_j - e_i)                  g in [0, a_i]
    assign(S, w):    a <- w on S, 0 elsewhere                O(N |S|)
"""

from __future__ import annotations

import numpy as np

from theory.problem import LayerProblem
from theory.trace import FORWARD, VERTEX, Trace


class Iterate:
    """Convex weights over the neurons of one problem, with C a kept up to date."""

    def __init__(self, problem: LayerProblem) -> None:
        self.problem = problem
        n = problem.n_neurons
        self.weights = np.zeros(n)
        self.centred_a = np.zeros(n)
        self.order: list[int] = []  # neurons in the order they were first added
        self._in_order = np.zeros(n, dtype=bool)
        self.diag = np.ascontiguousarray(np.diag(problem.centred))

    # ---- state --------------------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return not self.order

    @property
    def support(self) -> np.ndarray:
        """Neurons with non-zero weight, in the order they were first added."""
        order = np.asarray(self.order, dtype=np.intp)
        return order[self.weights[order] != 0.0]

    def residual(self) -> np.ndarray:
        """r = C (a - t), shape (N,)."""
        return self.centred_a - self.problem.centred_target

    def loss(self, residual: np.ndarray | None = None) -> float:
        r = self.residual() if residual is None else residual
        return max(float((self.weights - self.problem.target) @ r), 0.0)

    def slopes(self, residual: np.ndarray | None = None) -> np.ndarray:
        """b_j = r_j - a.r, shape (N,): L((1-g) a + g e_j) = L + 2 g b_j + g^2 q_j."""
        r = self.residual() if residual is None else residual
        return r - self.weights @ r

    def curvatures(self) -> np.ndarray:
        """q_j = ||psi_j - f_a||^2, shape (N,), clipped at 0 against round-off."""
        q = self.diag - 2.0 * self.centred_a + self.weights @ self.centred_a
        return np.maximum(q, 0.0)

    def gap(self, slopes: np.ndarray | None = None) -> float:
        """Frank-Wolfe gap max_s <-grad L, s - a> over vertices s; at least L(a) - min L."""
        b = self.slopes() if slopes is None else slopes
        return max(-2.0 * float(b.min()), 0.0)

    def vertex_losses(self) -> np.ndarray:
        """L(e_j) = ||psi_j - F||^2 for every j, shape (N,)."""
        ct = self.problem.centred_target
        return np.maximum(self.diag - 2.0 * ct + self.problem.target @ ct, 0.0)

    def forward_changes(self, step_size: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Step sizes g (N,) and loss changes (N,) of a <- (1 - g) a + g e_j for every j.

        With ``step_size`` None, g_j is the exact line search on [0, 1]; else g_j = step_size.
        """
        b = self.slopes()
        q = self.curvatures()
        if step_size is None:
            with np.errstate(divide="ignore", invalid="ignore"):
                g = np.where(q > 0.0, np.clip(-b / q, 0.0, 1.0), 0.0)
        else:
            g = np.full_like(b, step_size)
        return g, g * (2.0 * b + g * q)

    # ---- moves --------------------------------------------------------------------------------

    def _note(self, j: int) -> None:
        if not self._in_order[j]:
            self._in_order[j] = True
            self.order.append(j)

    def start_at_best_vertex(self) -> int:
        """a <- e_j for the j with the least loss L(e_j) (ties: lowest j); returns j."""
        j = int(np.argmin(self.vertex_losses()))
        self.start(j)
        return j

    def start(self, j: int) -> None:
        """a <- e_j: the first step of every simplex selector."""
        self.weights[:] = 0.0
        self.weights[j] = 1.0
        self.centred_a[:] = self.problem.centred[j]
        self._note(j)

    def forward(self, j: int, g: float) -> None:
        """a <- (1 - g) a + g e_j."""
        if g == 1.0:
            self.start(j)
            return
        self.weights *= 1.0 - g
        self.weights[j] += g
        self.centred_a *= 1.0 - g
        self.centred_a += g * self.problem.centred[j]
        self._note(j)

    def away(self, i: int, g: float, drop: bool) -> None:
        """a <- (1 + g) a - g e_i; with drop, g is the largest step and a_i becomes exactly 0."""
        self.weights *= 1.0 + g
        self.weights[i] -= g
        self.centred_a *= 1.0 + g
        self.centred_a -= g * self.problem.centred[i]
        if drop:
            self.weights[i] = 0.0

    def pairwise(self, i: int, j: int, g: float, drop: bool) -> None:
        """a <- a + g (e_j - e_i); with drop, g = a_i and a_i becomes exactly 0."""
        self.weights[i] -= g
        self.weights[j] += g
        self.centred_a += g * (self.problem.centred[j] - self.problem.centred[i])
        if drop:
            self.weights[i] = 0.0
        self._note(j)

    def assign(self, support: np.ndarray, values: np.ndarray) -> None:
        """a <- values on support (in that order), 0 elsewhere; recomputes C a exactly."""
        support = np.asarray(support, dtype=np.intp)
        self.weights[:] = 0.0
        self.weights[support] = values
        self.centred_a = self.problem.centred[support].T @ values
        for j in support:
            self._note(int(j))


def replay(problem: LayerProblem, trace: Trace, repeats: bool = True) -> tuple[np.ndarray, float]:
    """Replay a run of vertex and forward steps: the weights a_k (K, N) after each step, and
    the fraction of steps whose neuron is the one the greedy local step would have chosen from
    the same weights (1 for greedy-local itself; ``repeats=False``: its choice among neurons
    never picked, 1 for greedy-local without repeats)."""
    if moves := sorted(set(trace.kinds) - {VERTEX, FORWARD}):
        raise ValueError(
            f"replay takes vertex and forward steps only; this {trace.method} run took "
            f"{', '.join(moves)} steps"
        )
    it, weights, same = Iterate(problem), [], 0
    for j, g in zip(trace.neurons.tolist(), trace.step_sizes.tolist(), strict=True):
        if it.empty:
            same += j == int(np.argmin(it.vertex_losses()))
            it.start(j)
        else:
            change = it.forward_changes()[1]
            if not repeats:
                change[it.order] = np.inf
            same += j == int(np.argmin(change))
            it.forward(j, g)
        weights.append(it.weights.copy())
    return np.array(weights), same / max(len(weights), 1)
