"""Two-layer networks in mean-field form, their neuron contributions, and a small trainer.

    f(x) = (1/N) sum_i c_i act(w_i . x + b_i),        c_i in R^k,

so the neuron contributions in docs/theory.md's scaling are psi_i(x) = c_i act(w_i . x + b_i) and
f = F = (1/N) sum_i psi_i, the barycentre of the psi_i.

Training is full-batch Adam on the squared error E_x ||f(x) - y(x)||^2 (sum over the k outputs,
mean over the m samples). Every parameter belongs to one neuron, and its gradient carries a factor
1/N: dL/dtheta_i = v_i / N with v_i the O(1) mean-field velocity of neuron i. The standard
mean-field time scaling steps along v_i = N dL/dtheta_i, so that training time is lr x steps
whatever N (a network with every neuron doubled follows the same trajectory). For plain gradient
descent that is the learning rate times N; Adam divides out the gradient's scale, so the factor N
goes into the gradient it reads instead, which keeps Adam's epsilon small relative to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sims import activations
from sims.adam import Adam


def _at_least_one(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1; got {value}")


@dataclass(frozen=True, eq=False)
class TwoLayer:
    """f(x) = (1/N) sum_i c_i act(w_i . x + b_i): w (N, d), b (N,), c (N, k), float64."""

    w: np.ndarray
    b: np.ndarray
    c: np.ndarray
    activation: str

    def __post_init__(self) -> None:
        activations.activation(self.activation)
        w, b, c = (np.asarray(a, dtype=np.float64) for a in (self.w, self.b, self.c))
        if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
            raise ValueError(f"w must have shape (N, d) with N, d >= 1; got {w.shape}")
        n = w.shape[0]
        if b.shape != (n,):
            raise ValueError(f"b must have shape ({n},), one bias per neuron; got {b.shape}")
        if c.ndim != 2 or c.shape[0] != n or c.shape[1] < 1:
            raise ValueError(f"c must have shape ({n}, k) with k >= 1; got {c.shape}")
        for name, value in (("w", w), ("b", b), ("c", c)):
            object.__setattr__(self, name, value)

    @property
    def n_neurons(self) -> int:
        return self.w.shape[0]

    @property
    def dim(self) -> int:
        return self.w.shape[1]

    @property
    def outputs(self) -> int:
        return self.c.shape[1]

    def check_inputs(self, x: np.ndarray) -> np.ndarray:
        """x as float64 (m, d); ValueError if its shape does not fit the network."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != self.dim:
            raise ValueError(
                f"x must have shape (m, {self.dim}) with m >= 1 samples; got {x.shape}"
            )
        return x

    def hidden(self, x: np.ndarray) -> np.ndarray:
        """Hidden activations act(x w^T + b), shape (m, N)."""
        x = self.check_inputs(x)
        return activations.activation(self.activation).value(x @ self.w.T + self.b)

    def features(self, x: np.ndarray) -> np.ndarray:
        """Neuron contributions psi_i(x) = c_i act(w_i . x + b_i), shape (N, m, k)."""
        return self.hidden(x).T[:, :, None] * self.c[:, None, :]

    def output(self, x: np.ndarray) -> np.ndarray:
        """f(x) = (1/N) sum_i psi_i(x), shape (m, k)."""
        return self.hidden(x) @ self.c / self.n_neurons


def random_two_layer(
    neurons: int, dim: int, outputs: int, activation: str, rng: np.random.Generator
) -> TwoLayer:
    """Random network: w ~ N(0, 1/d) (unit-variance w.x for unit-variance x), b, c ~ N(0, 1)."""
    _at_least_one("neurons", neurons)
    _at_least_one("dim", dim)
    _at_least_one("outputs", outputs)
    activations.activation(activation)
    w = rng.standard_normal((neurons, dim)) / np.sqrt(dim)
    b = rng.standard_normal(neurons)
    c = rng.standard_normal((neurons, outputs))
    return TwoLayer(w, b, c, activation)


def teacher_targets(
    x: np.ndarray, rng: np.random.Generator, activation: str = "tanh", width: int = 8
) -> np.ndarray:
    """Smooth regression targets (m, 1): the output of a random mean-field teacher of this width."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (m, d); got {x.shape}")
    return random_two_layer(width, x.shape[1], 1, activation, rng).output(x)


def loss_and_gradients(
    net: TwoLayer, x: np.ndarray, y: np.ndarray
) -> tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Loss E_x ||f(x) - y||^2 and its exact gradients w.r.t. (w (N, d), b (N,), c (N, k))."""
    x = net.check_inputs(x)
    y = _check_targets(net, x, y)
    z = x @ net.w.T
    z += net.b
    h, slope = activations.activation(net.activation).with_slope(z)  # (m, N) each
    n, m = net.n_neurons, x.shape[0]
    residual = h @ net.c / n - y  # (m, k)
    d_f = (2.0 / (m * n)) * residual  # dL/df, times the 1/N of f's mean over neurons
    d_z = slope * (d_f @ net.c.T)  # dL/dz, (m, N)
    loss = float(np.sum(residual * residual)) / m
    return loss, (d_z.T @ x, d_z.sum(axis=0), h.T @ d_f)


def _check_targets(net: TwoLayer, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (x.shape[0], net.outputs):
        raise ValueError(
            f"y must have shape (m, k) = ({x.shape[0]}, {net.outputs}), one row per sample of "
            f"x and one column per network output; got {y.shape}"
        )
    return y


def train_two_layer(
    net: TwoLayer,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    lr: float,
) -> tuple[TwoLayer, np.ndarray]:
    """Full-batch Adam on E_x ||f(x) - y||^2, training w, b and c; deterministic.

    y (m, k): regression targets, or one-hot labels for classification. Adam reads the
    mean-field velocity N * grad (see the module docstring), so lr is a step size per neuron.
    Returns the trained network and the losses (steps + 1,): losses[t] after t steps.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0; got {steps}")
    x = net.check_inputs(x)
    y = _check_targets(net, x, y)
    params = [net.w.copy(), net.b.copy(), net.c.copy()]
    adam = Adam(params, lr)
    losses = np.empty(steps + 1)
    for t in range(steps):
        losses[t], grads = loss_and_gradients(TwoLayer(*params, net.activation), x, y)
        adam.step([net.n_neurons * g for g in grads])  # the mean-field velocity N * grad
    trained = TwoLayer(*params, net.activation)
    losses[steps] = loss_and_gradients(trained, x, y)[0]
    return trained, losses
