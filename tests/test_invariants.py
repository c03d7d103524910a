"""Invariants every selector keeps, on generated instances (all methods, default options)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sims.strategies import direct_loss, instances
from theory import LOCAL_METHODS as METHODS
from theory import SELECTORS, LayerProblem, select

ATOL = 1e-9


def _run(psi: np.ndarray, method: str, factor: int = 2, target=None):
    problem = LayerProblem.from_features(psi, target)
    n = factor * problem.n_neurons if SELECTORS[method].repeats else problem.n_neurons
    return problem, n, select(problem, n, method, seed=3)


def _scale(problem: LayerProblem) -> float:
    return float(np.diag(problem.centred).max()) + 1e-300


@pytest.mark.parametrize("method", METHODS)
@given(psi=instances())
def test_trace_shapes_support_and_non_negative_losses(psi, method):
    problem, n, trace = _run(psi, method)
    k = len(trace)
    if k == 0:  # only omp may stop before a step: w = 0 already fits F = 0 exactly
        assert method == "omp" and problem.target_norm2 == 0.0 and trace.stopped == "converged"
        return
    assert k <= n
    for name in ("losses", "step_sizes", "gaps", "neurons", "support_sizes"):
        assert getattr(trace, name).shape == (k,), name
    assert len(trace.kinds) == k
    assert np.all(trace.support_sizes <= np.arange(1, k + 1))
    assert trace.support.size == trace.support_sizes[-1] <= n
    off = np.setdiff1d(np.arange(problem.n_neurons), trace.support)
    assert np.all(trace.weights[off] == 0.0)
    assert set(trace.support) <= set(trace.order)
    assert trace.stopped in {"n", "tol", "converged"}
    assert (trace.stopped == "n") == (k == n) or trace.stopped == "tol"


@pytest.mark.parametrize("method", [m for m in METHODS if SELECTORS[m].simplex])
@given(psi=instances())
def test_convex_weights_stay_on_the_simplex(psi, method):
    _, _, trace = _run(psi, method)
    assert np.all(trace.weights >= 0.0)
    assert trace.weights.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("method", [m for m in METHODS if SELECTORS[m].monotone])
@given(psi=instances())
def test_losses_never_increase(psi, method):
    problem, _, trace = _run(psi, method)
    assert np.all(np.diff(trace.losses) <= ATOL * _scale(problem))


@pytest.mark.parametrize("method", METHODS)
@given(psi=instances(), weighted=st.booleans())
def test_trace_loss_equals_loss_recomputed_from_psi(psi, method, weighted):
    target = None
    if weighted:
        raw = np.random.default_rng(psi.shape[0]).random(psi.shape[0]) + 0.01
        target = raw / raw.sum()
    problem, _, trace = _run(psi, method, factor=1, target=target)
    from_psi = direct_loss(psi, trace.weights, problem.target)
    slack = ATOL * max(_scale(problem), problem.target_norm2)
    assert trace.loss == pytest.approx(from_psi, rel=1e-8, abs=slack)
    assert problem.loss(trace.weights) == pytest.approx(from_psi, rel=1e-8, abs=slack)


@given(psi=instances())
def test_from_gram_and_from_features_give_the_same_run(psi):
    """Whole greedy-local runs agree until the first step where two candidates tie to
    round-off (the runs may then pick either); at that step the losses still agree."""
    features = LayerProblem.from_features(psi)
    flat = psi.reshape(psi.shape[0], psi.shape[1], -1)
    gram = np.einsum("imp,jmp->ij", flat, flat) / psi.shape[1]
    slack = 1e-7 * max(_scale(features), features.target_norm2)
    a = select(features, 2 * features.n_neurons, "greedy-local")
    b = select(LayerProblem.from_gram(gram), 2 * features.n_neurons, "greedy-local")
    differ = np.flatnonzero(a.neurons[: len(b)] != b.neurons[: len(a)])
    upto = differ[0] + 1 if differ.size else min(len(a), len(b))
    assert a.losses[:upto] == pytest.approx(b.losses[:upto], rel=1e-6, abs=slack)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_trace(method):
    psi = np.random.default_rng(0).normal(size=(30, 8))
    problem = LayerProblem.from_features(psi)
    a, b = select(problem, 20, method, seed=11), select(problem, 20, method, seed=11)
    assert np.array_equal(a.losses, b.losses)
    assert np.array_equal(a.neurons, b.neurons)


def test_random_depends_on_the_seed():
    problem = LayerProblem.from_features(np.random.default_rng(0).normal(size=(30, 8)))
    a, b = select(problem, 10, "random", seed=1), select(problem, 10, "random", seed=2)
    assert not np.array_equal(a.neurons, b.neurons)


@pytest.mark.parametrize("method", METHODS)
def test_tolerance_stops_at_the_first_loss_below_it(method):
    problem = LayerProblem.from_features(np.random.default_rng(1).normal(size=(40, 12)))
    full = select(problem, 40, method, seed=0)
    tol = float(np.median(full.losses))
    trace = select(problem, 40, method, tol=tol, seed=0)
    assert trace.stopped == "tol"
    assert trace.losses[-1] <= tol
    assert np.all(trace.losses[:-1] > tol)
    assert np.array_equal(trace.losses, full.losses[: len(trace)])


def test_greedy_local_with_drop_sheds_a_neuron_when_f_is_near_the_boundary():
    """A skewed target puts F near a face of M; away steps then win and one neuron is dropped."""
    rng = np.random.default_rng(131)
    n, dim = rng.integers(3, 9), rng.integers(1, 4)  # (5, 2): found by a search over seeds
    psi = rng.normal(size=(n, 1, dim))
    target = rng.random(n) ** 6
    problem = LayerProblem.from_features(psi, target / target.sum())
    plain = select(problem, 40, "greedy-local")
    drop = select(problem, 40, "greedy-local", allow_drop=True)
    assert "drop" in drop.kinds and "away" in drop.kinds
    assert drop.support.size < drop.order.size  # a neuron left the support
    assert drop.loss < 0.5 * plain.loss


@pytest.mark.parametrize("method", ["greedy-local", "fixed-step", "random", "frank-wolfe"])
def test_size_budget_stops_at_that_many_neurons(method):
    problem = LayerProblem.from_features(np.random.default_rng(2).normal(size=(60, 5)))
    trace = select(problem, 600, method, size=12, seed=0)
    assert trace.stopped == "size" and trace.support_sizes[-1] == 12
    assert np.all(trace.support_sizes[:-1] < 12)


def test_size_must_fit_in_n():
    problem = LayerProblem.from_features(np.random.default_rng(2).normal(size=(10, 5)))
    with pytest.raises(ValueError, match=r"size must be an integer in \[1, n=5\]"):
        select(problem, 5, size=6)
