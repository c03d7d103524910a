"""What a selector run returns: the final weights and one record per step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# What each step did to the weights a (the move, not how it was chosen).
VERTEX = "vertex"  # a <- e_j (the first step)
FORWARD = "forward"  # a <- (1 - g) a + g e_j
AWAY = "away"  # a <- (1 + g) a - g e_i, a_i stays > 0
DROP = "drop"  # an away step of the largest size: a_i becomes 0
PAIRWISE = "pairwise"  # a <- a + g (e_j - e_i), a_i stays > 0
SWAP = "swap"  # a pairwise step of the largest size: a_i becomes 0
CORRECTIVE = "corrective"  # add j, then re-solve the weights on the support (simplex)
REFIT = "refit"  # add j, then re-solve unconstrained least squares (weights leave the simplex)

# Steps after which docs/theory.md statement 4 promises h_{k+1} <= (1 - r^2/D^2) h_k (for the
# line-search selectors); drop and swap steps are outside it.
LINEAR_RATE_KINDS = frozenset({FORWARD, AWAY, PAIRWISE, CORRECTIVE})


@dataclass(frozen=True)
class Step:
    """One step as a selector reports it: the move, the neuron, and the step size g."""

    kind: str
    neuron: int
    step_size: float


@dataclass(frozen=True, eq=False)
class Trace:
    """A selector run. Per-step arrays have one entry per step taken (K <= n).

    weights        (N,)  final weights (convex unless the method is ``omp``; ``whole-output``: 1
                         on the kept channels, its refit weights are the problem's solve)
    support        (S,)  neurons with non-zero final weight, in the order they were first added
    order          (M,)  every neuron ever added, in order (M >= S when steps dropped neurons)
    losses         (K,)  L(a_k) after step k, exact from the centred Gram matrix, >= 0
    step_sizes     (K,)  g of each step (for corrective/refit steps: the new neuron's weight)
    gaps           (K,)  Frank-Wolfe gap at a_k: L(a_k) - min L <= gap (NaN for ``omp``)
    neurons        (K,)  the neuron each step moved toward (away/drop: moved away from)
    kinds          (K,)  the move of each step (see the constants of this module)
    support_sizes  (K,)  |support| after each step
    loss           the final loss, L(weights)
    stopped        why the run ended: "n" (n steps), "tol" (loss <= tol), "size" (size
                   neurons kept), "converged" (the selector had no step left: for the
                   line-search selectors, no step lowers the loss)
    """

    method: str
    options: dict[str, Any]
    weights: np.ndarray
    support: np.ndarray
    order: np.ndarray
    losses: np.ndarray
    step_sizes: np.ndarray
    gaps: np.ndarray
    neurons: np.ndarray
    kinds: tuple[str, ...]
    support_sizes: np.ndarray
    stopped: str
    loss: float  # L(weights) at the end (for omp with no step: the loss of w = 0, ||F||^2)
    seed: int | None = field(default=None)

    def __len__(self) -> int:
        return len(self.losses)
