"""Hypothesis strategies of layer problems, and the profile the property tests run under.

Import them to write a property test of a lemma (docs/property-tests.md):
``@given(psi=instances())`` draws neuron contributions psi of shape (N, m, ...) from the three
families below; :func:`use_profile` makes runs reproducible (derandomised, no deadlines).

``points``: N points in d = 1..6 dimensions (one sample, psi shape (N, 1, d)), so the affine
dimension is at most 6 and the margin r is exact. Drawn either on an integer grid (exact
duplicates, collinear and coplanar sets come up by themselves) or Gaussian from a drawn seed,
then degraded on purpose: duplicated neurons, zero neurons, collapse onto a line.

``two_layer``: psi_i(x) = N c_i act(w_i . x + b_i) over m samples of Gaussian inputs, random
first layer (Gaussian weights and biases); m <= 6 keeps r exact.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from sims.activations import ACTIVATIONS


@st.composite
def grid_points(draw, max_n: int = 12, max_dim: int = 6) -> np.ndarray:
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_dim))
    values = draw(st.lists(st.integers(-6, 6), min_size=n * d, max_size=n * d))
    return np.asarray(values, dtype=np.float64).reshape(n, 1, d)


@st.composite
def gaussian_points(draw, max_n: int = 16, max_dim: int = 6) -> np.ndarray:
    n = draw(st.integers(2, max_n))
    d = draw(st.integers(1, max_dim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(size=(n, d)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    x += draw(st.sampled_from([0.0, 5.0, -100.0]))  # a common offset: F far from the origin
    damage = draw(st.sampled_from(["none", "duplicates", "zeros", "collinear"]))
    k = draw(st.integers(1, max(1, n // 2)))
    if damage == "duplicates":
        x[:k] = x[n - k :]
    elif damage == "zeros":
        x[:k] = 0.0
    elif damage == "collinear":
        x = np.outer(x[:, 0], rng.normal(size=d))
    return x.reshape(n, 1, d)


@st.composite
def two_layer(draw, max_n: int = 24, max_samples: int = 6) -> np.ndarray:
    n = draw(st.integers(2, max_n))
    m = draw(st.integers(1, max_samples))
    dim = draw(st.integers(1, 4))
    act = ACTIVATIONS[draw(st.sampled_from(sorted(ACTIVATIONS)))].value
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    inputs = rng.normal(size=(m, dim))
    w, b, c = rng.normal(size=(n, dim)), rng.normal(size=n), rng.normal(size=n)
    return n * c[:, None] * act(inputs @ w.T + b).T  # (N, m)


def instances() -> st.SearchStrategy[np.ndarray]:
    """Any of the three families: psi of shape (N, m, ...)."""
    return st.one_of(grid_points(), gaussian_points(), two_layer())


def direct_loss(psi: np.ndarray, weights: np.ndarray, target: np.ndarray | None = None) -> float:
    """E_x ||sum_i (a_i - t_i) psi_i(x)||^2 straight from the features (mean over axis 1)."""
    n, m = psi.shape[:2]
    t = np.full(n, 1.0 / n) if target is None else target
    diff = np.tensordot(weights - t, psi.reshape(n, m, -1), axes=1)  # (m, p)
    return float((diff**2).sum() / m)


def use_profile(max_examples: int = 60) -> None:
    """Load the profile of the project's property tests: derandomised (a run is reproducible
    from the code alone), no deadline (shared CPUs), ``max_examples`` examples a test."""
    settings.register_profile(
        "logtickets",
        derandomize=True,
        deadline=None,
        max_examples=max_examples,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile("logtickets")
