"""Multi-layer perceptrons in numpy: forward passes, exact gradients, and a small trainer.

An MLP x -> z_1 = W_1 x + b_1 -> h_1 = act(z_1) -> ... -> z_L = W_L h_{L-1} + b_L (logits),
trained by full-batch Adam (:mod:`sims.adam`) on the softmax cross-entropy against labels.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from sims.activations import activation
from sims.adam import Adam


@dataclass(frozen=True)
class MLP:
    """weights[l]: (n_{l+1}, n_l); biases[l]: (n_{l+1},); the last layer is linear."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activation: str

    def pre_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """[z_1, ..., z_L] on inputs x (m, d), each (m, n_l)."""
        act = activation(self.activation).value
        zs, h = [], x
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = h @ w.T + b
            zs.append(z)
            if layer < len(self.weights) - 1:
                h = act(z)
        return zs

    def output(self, x: np.ndarray) -> np.ndarray:
        """The logits (m, k) on inputs x (m, d)."""
        return self.pre_activations(x)[-1]

    def forward_from(self, z: np.ndarray, layer: int) -> np.ndarray:
        """The output from the pre-activation z (..., n) of weight layer ``layer`` (0-based)."""
        act = activation(self.activation).value
        for w, b in zip(self.weights[layer + 1 :], self.biases[layer + 1 :], strict=True):
            z = act(z) @ w.T + b
        return z

    def lipschitz_after(self, layer: int) -> float:
        """Lipschitz constant of z_{layer+1} -> output: prod of later spectral norms x Lip(act)."""
        lip = activation(self.activation).lipschitz
        return float(np.prod([lip * np.linalg.norm(w, 2) for w in self.weights[layer + 1 :]]))

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        """Top-1 accuracy on inputs x (m, d) with integer labels (m,)."""
        return float((self.output(x).argmax(axis=1) == labels).mean())


def random_mlp(widths: tuple[int, ...], act: str, rng: np.random.Generator) -> MLP:
    """He-initialised MLP with layer widths (d, n_1, ..., n_{L-1}, k), zero biases."""
    weights = tuple(
        rng.normal(size=(n_out, n_in)) * np.sqrt(2.0 / n_in)
        for n_in, n_out in itertools.pairwise(widths)
    )
    return MLP(weights, tuple(np.zeros(w.shape[0]) for w in weights), act)


def cross_entropy_gradients(
    mlp: MLP, x: np.ndarray, labels: np.ndarray
) -> tuple[float, list[np.ndarray]]:
    """Mean softmax cross-entropy of the logits against labels (m,), and its gradients
    [dW_1, db_1, ..., dW_L, db_L] by backpropagation."""
    with_slope = activation(mlp.activation).with_slope
    zs = mlp.pre_activations(x)
    logits = zs[-1] - zs[-1].max(axis=1, keepdims=True)
    log_prob = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    m = x.shape[0]
    loss = -float(log_prob[np.arange(m), labels].mean())
    delta = np.exp(log_prob)
    delta[np.arange(m), labels] -= 1.0
    delta /= m  # d loss / d z_L
    grads: list[np.ndarray] = []
    for layer in range(len(mlp.weights) - 1, -1, -1):
        below, slope = (x, None) if layer == 0 else with_slope(zs[layer - 1])
        grads = [delta.T @ below, delta.sum(axis=0), *grads]
        if layer:
            delta = (delta @ mlp.weights[layer]) * slope
    return loss, grads


def train_mlp(mlp: MLP, x: np.ndarray, labels: np.ndarray, steps: int, lr: float) -> MLP:
    """Full-batch Adam on the softmax cross-entropy of the logits against integer labels (m,)."""
    params = [p.copy() for pair in zip(mlp.weights, mlp.biases, strict=True) for p in pair]
    adam = Adam(params, lr)
    for _ in range(steps):
        net = MLP(tuple(params[0::2]), tuple(params[1::2]), mlp.activation)
        adam.step(cross_entropy_gradients(net, x, labels)[1])
    return MLP(tuple(params[0::2]), tuple(params[1::2]), mlp.activation)
