"""The predicted curves of docs/theory.md statements 1 to 4, functions of the step count n >= 1."""

from __future__ import annotations

import numpy as np


def random_expected(sigma2: float, n: np.ndarray) -> np.ndarray:
    """Statement 1: E h_n = sigma^2 / n for n draws with replacement."""
    return sigma2 / np.asarray(n, dtype=np.float64)


def fixed_step_worst(sigma2: float, n: np.ndarray) -> np.ndarray:
    """Statement 2: fixed step 1/(k+1), best neuron each step: h_n <= sigma^2 / n."""
    return sigma2 / np.asarray(n, dtype=np.float64)


def fixed_step_margin(diameter: float, margin: float, n: np.ndarray) -> np.ndarray:
    """Statement 3: h_n <= (D + D^2 / (2 r))^2 / n^2 (infinite when r = 0)."""
    n = np.asarray(n, dtype=np.float64)
    if margin <= 0.0:
        return np.full_like(n, np.inf)
    return (diameter + diameter**2 / (2.0 * margin)) ** 2 / n**2


def linear_rate(diameter: float, margin: float) -> float:
    """Statement 4's rate constant c = -log(1 - r^2 / D^2) (0 when D = 0)."""
    if diameter <= 0.0:
        return 0.0
    return float(-np.log1p(-min((margin / diameter) ** 2, 1.0)))


def greedy_local(first_loss: float, diameter: float, margin: float, n: np.ndarray) -> np.ndarray:
    """Statement 4: h_n <= h_1 (1 - r^2 / D^2)^(n - 1) = h_1 exp(-c (n - 1))."""
    n = np.asarray(n, dtype=np.float64)
    return first_loss * np.exp(-linear_rate(diameter, margin) * (n - 1.0))
