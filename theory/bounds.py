"""The predicted curves of docs/theory.md statements 1 to 4, functions of the step count n >= 1."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from annotated_types import Ge
from pydantic import AllowInfNan

from theory.arguments import Array, checked

Size = Annotated[float, Ge(0), AllowInfNan(False)]  # a finite value >= 0 (sigma^2, D, r, h_1)
Margin = float  # r, or NaN where it is not known (then the rate is NaN)


def steps(n: Array) -> np.ndarray:
    """``n`` as float64 step counts, refused unless each is finite and >= 1."""
    counts = np.asarray(n)
    if not np.issubdtype(counts.dtype, np.number) or np.iscomplexobj(counts):
        raise ValueError(f"n must be step counts; got dtype {counts.dtype}")
    counts = counts.astype(np.float64)
    if not np.all(np.isfinite(counts) & (counts >= 1)):
        raise ValueError(f"n must be finite step counts >= 1; got min {np.min(counts)}")
    return counts


@checked
def random_expected(sigma2: Size, n: Array) -> np.ndarray:
    """Statement 1: E h_n = sigma^2 / n for n draws with replacement."""
    return sigma2 / steps(n)


@checked
def fixed_step_worst(sigma2: Size, n: Array) -> np.ndarray:
    """Statement 2: fixed step 1/(k+1), best neuron each step: h_n <= sigma^2 / n."""
    return sigma2 / steps(n)


@checked
def fixed_step_margin(diameter: Size, margin: Size, n: Array) -> np.ndarray:
    """Statement 3: h_n <= (D + D^2 / (2 r))^2 / n^2 (infinite when r = 0)."""
    n = steps(n)
    if margin <= 0.0:
        return np.full_like(n, np.inf)
    return (diameter + diameter**2 / (2.0 * margin)) ** 2 / n**2


@checked
def linear_rate(diameter: Size, margin: Margin) -> float:
    """Statement 4's rate constant c = -log(1 - r^2 / D^2) (0 when D = 0; NaN when r is)."""
    if diameter <= 0.0:
        return 0.0
    return float(-np.log1p(-min((margin / diameter) ** 2, 1.0)))


@checked
def greedy_local(first_loss: Size, diameter: Size, margin: Margin, n: Array) -> np.ndarray:
    """Statement 4: h_n <= h_1 (1 - r^2 / D^2)^(n - 1) = h_1 exp(-c (n - 1))."""
    n = steps(n)
    return first_loss * np.exp(-linear_rate(diameter, margin) * (n - 1.0))
