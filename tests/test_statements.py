"""docs/theory.md statements 1-4, asserted at every step on generated instances.

Tolerances: the margin r and diameter D are exact to round-off, and losses carry an absolute
error of order eps * D^2; every inequality is given ATOL * D^2 of slack, nothing more.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sims.strategies import instances, two_layer
from theory import SELECTORS, LayerProblem, geometry, select
from theory.bounds import fixed_step_margin, fixed_step_worst, greedy_local, random_expected
from theory.trace import LINEAR_RATE_KINDS

ATOL = 1e-9
LINE_SEARCH = [
    ("greedy-local", {}),
    ("greedy-local", {"allow_drop": True}),
    ("frank-wolfe", {}),
    ("away", {}),
    ("pairwise", {}),
    ("fully-corrective", {}),
    ("fully-corrective", {"choice": "gradient"}),
]


def _steps(method: str, n_neurons: int, factor: int) -> int:
    """factor * N steps, or N for the selectors that never pick a neuron twice."""
    return factor * n_neurons if SELECTORS[method].repeats else n_neurons


def _setup(psi: np.ndarray):
    problem = LayerProblem.from_features(psi)
    geo = geometry(problem)
    return problem, geo, ATOL * max(geo.diameter**2, 1e-300)


@pytest.mark.parametrize(("method", "options"), LINE_SEARCH)
@given(psi=instances())
def test_statement4_linear_rate_on_every_covered_step(psi, method, options):
    problem, geo, atol = _setup(psi)
    trace = select(problem, _steps(method, problem.n_neurons, 3), method, **options)
    factor = 1.0 - geo.ratio2
    drops_allowed = method == "greedy-local"  # the joint choice dominates the forward step
    for k in range(1, len(trace)):
        if drops_allowed or trace.kinds[k] in LINEAR_RATE_KINDS:
            assert trace.losses[k] <= factor * trace.losses[k - 1] + atol, (k, trace.kinds[k])


@given(psi=instances())
def test_statement4_greedy_curve_bounds_greedy_local(psi):
    problem, geo, atol = _setup(psi)
    trace = select(problem, 2 * problem.n_neurons, "greedy-local")
    steps = np.arange(1, len(trace) + 1)
    bound = greedy_local(trace.losses[0], geo.diameter, geo.margin, steps)
    assert np.all(trace.losses <= bound + atol)


@given(psi=instances())
def test_frank_wolfe_gap_at_least_2h_plus_2r_sqrt_h(psi):
    """The step of the proof of statement 4: gap >= 2 h + 2 r sqrt(h) (so gap >= h - min L)."""
    problem, geo, atol = _setup(psi)
    for method in ("greedy-local", "frank-wolfe", "fixed-step", "pairwise", "random"):
        trace = select(problem, 2 * problem.n_neurons, method)
        known = np.maximum(trace.losses - atol, 0.0)  # h is known to +-atol; sqrt amplifies that
        need = 2.0 * trace.losses + 2.0 * geo.margin * np.sqrt(known)
        assert np.all(trace.gaps >= need - atol), method


@given(psi=instances())
def test_first_greedy_loss_at_most_sigma2(psi):
    problem, geo, atol = _setup(psi)
    for method in ("greedy-local", "frank-wolfe", "fixed-step", "fully-corrective"):
        assert select(problem, 1, method).losses[0] <= geo.sigma2 + atol, method


@given(psi=instances())
def test_statement2_fixed_step_at_most_sigma2_over_n(psi):
    problem, geo, atol = _setup(psi)
    trace = select(problem, 3 * problem.n_neurons, "fixed-step")
    steps = np.arange(1, len(trace) + 1)
    assert np.all(trace.losses <= fixed_step_worst(geo.sigma2, steps) + atol)
    assert np.allclose(trace.step_sizes, 1.0 / steps)


@given(psi=instances())
def test_statement3_fixed_step_herding_bound(psi):
    problem, geo, atol = _setup(psi)
    trace = select(problem, 4 * problem.n_neurons, "fixed-step")
    steps = np.arange(1, len(trace) + 1)
    assert np.all(trace.losses <= fixed_step_margin(geo.diameter, geo.margin, steps) + atol)


@settings(max_examples=8)
@given(psi=two_layer(max_n=12), steps=st.integers(1, 6), data=st.data())
def test_statement1_random_subsets_expected_loss(psi, steps, data):
    """Mean of h_n over 600 seeded runs is sigma^2/n within 5 standard errors (target too)."""
    target = None
    if data.draw(st.booleans()):
        raw = np.random.default_rng(data.draw(st.integers(0, 99))).random(psi.shape[0])
        target = raw / raw.sum()
    problem = LayerProblem.from_features(psi, target)
    geo = geometry(problem)
    finals = np.array([select(problem, steps, "random", seed=s).loss for s in range(600)])
    expected = float(random_expected(geo.sigma2, steps))
    spread = finals.std(ddof=1) / np.sqrt(finals.size)
    assert abs(finals.mean() - expected) <= 5.0 * spread + ATOL * geo.diameter**2


def test_statement1_random_is_exact_in_the_mean_for_two_neurons():
    """Two points at +-1 (F = 0): after n draws h_n = ((#plus - #minus)/n)^2, mean exactly 1/n."""
    psi = np.array([[[1.0]], [[-1.0]]])
    problem = LayerProblem.from_features(psi)
    n = 5
    finals = np.array([select(problem, n, "random", seed=s).loss for s in range(4000)])
    assert finals.mean() == pytest.approx(1.0 / n, rel=0.05)
    assert set(np.round(finals * n * n).astype(int)) <= {1, 9, 25}
