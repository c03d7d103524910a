"""Adam (Kingma and Ba 2015) on a list of numpy arrays, in place: the trainers' one optimiser.

With m_t, v_t the running means of g and g^2, the update is the paper's efficient form
``p -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m_t / (sqrt(v_t) + eps)``.
"""

from __future__ import annotations

import numpy as np

BETAS = (0.9, 0.999)
EPS = 1e-8


class Adam:
    """Adam over ``params`` (a list of arrays, updated in place by :meth:`step`)."""

    def __init__(self, params: list[np.ndarray], lr: float) -> None:
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0; got {lr}")
        self.params = params
        self.lr = lr
        self.first = [np.zeros_like(p) for p in params]
        self.second = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        """One update with gradients ``grads`` (the parameters' shapes)."""
        beta1, beta2 = BETAS
        self.t += 1
        size = self.lr * np.sqrt(1.0 - beta2**self.t) / (1.0 - beta1**self.t)
        for p, g, m1, m2 in zip(self.params, grads, self.first, self.second, strict=True):
            m1 *= beta1
            m1 += (1.0 - beta1) * g
            m2 *= beta2
            m2 += (1.0 - beta2) * g * g
            p -= size * m1 / (np.sqrt(m2) + EPS)
