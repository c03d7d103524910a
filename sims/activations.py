"""The activations of the simulated networks: value, slope and Lipschitz constant, one table.

    relu  max(z, 0)             slope 1[z > 0]               Lipschitz 1
    tanh  tanh z                slope 1 - tanh^2 z           Lipschitz 1
    gelu  z Phi(z) (exact)      slope Phi(z) + z phi(z)      Lipschitz Phi(r) + r phi(r), r = sqrt 2

Phi is scipy's ``ndtr`` (accurate in the left tail). ``with_slope`` computes both at once,
sharing the work, for the trainers' backward passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_SQRT_2 = float(np.sqrt(2.0))


@dataclass(frozen=True)
class Activation:
    """act(z), (act(z), act'(z)) together, and sup |act'| (the Lipschitz constant)."""

    value: Callable[[np.ndarray], np.ndarray]
    with_slope: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    lipschitz: float


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def _relu_slope(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.maximum(z, 0.0), z > 0.0


def _tanh_slope(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = np.tanh(z)
    slope = h * h
    np.subtract(1.0, slope, out=slope)
    return h, slope


def _gelu(z: np.ndarray) -> np.ndarray:
    return z * ndtr(z)


def _gelu_slope(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cdf = ndtr(z)
    slope = z * z
    slope *= -0.5
    np.exp(slope, out=slope)
    slope *= z
    slope *= _INV_SQRT_2PI
    slope += cdf  # Phi(z) + z phi(z)
    cdf *= z
    return cdf, slope


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(_relu, _relu_slope, 1.0),
    "tanh": Activation(np.tanh, _tanh_slope, 1.0),
    "gelu": Activation(
        _gelu, _gelu_slope, float(ndtr(_SQRT_2) + _SQRT_2 * _INV_SQRT_2PI * np.exp(-1.0))
    ),
}


def activation(name: str) -> Activation:
    """The activation called ``name``; ValueError listing the valid names if none."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        valid = ", ".join(ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; valid activations: {valid}") from None
