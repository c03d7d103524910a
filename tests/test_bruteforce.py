"""Tiny instances (N <= 6): every selector against the best subset of each size.

The best subset of size n with optimal simplex weights comes from cvxpy over all subsets;
unconstrained least squares (for omp) from numpy's SVD solver on the features.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sims.strategies import gaussian_points, grid_points, two_layer
from theory import LOCAL_METHODS as METHODS
from theory import SELECTORS, LayerProblem, select
from theory.simplex_qp import objective, solve_simplex_qp

ATOL = 1e-9


def _best_convex(problem: LayerProblem) -> np.ndarray:
    """best[k] = min loss over supports of size k + 1 with simplex weights (cvxpy)."""
    n = problem.n_neurons
    const = float(problem.target @ problem.centred_target)
    best = np.full(n, np.inf)
    for size in range(1, n + 1):
        for subset in combinations(range(n), size):
            s = np.asarray(subset)
            quad = problem.centred[np.ix_(s, s)]
            lin = -problem.centred_target[s]
            x = solve_simplex_qp(quad, lin, solver="cvxpy") if size > 1 else np.ones(1)
            best[size - 1] = min(best[size - 1], objective(quad, lin, x) + const)
    return np.maximum(np.minimum.accumulate(best), 0.0)


def _best_least_squares(psi: np.ndarray) -> np.ndarray:
    n, m = psi.shape[:2]
    flat = psi.reshape(n, -1)
    output = flat.mean(axis=0)
    best = np.full(n, np.inf)
    for size in range(1, n + 1):
        for subset in combinations(range(n), size):
            w = np.linalg.lstsq(flat[list(subset)].T, output, rcond=None)[0]
            resid = flat[list(subset)].T @ w - output
            best[size - 1] = min(best[size - 1], float(resid @ resid) / m)
    return np.minimum.accumulate(best)


tiny = st.one_of(grid_points(max_n=6, max_dim=3), gaussian_points(max_n=6), two_layer(max_n=6))


@pytest.mark.slow
@settings(max_examples=15)
@given(psi=tiny)
def test_no_selector_beats_the_best_subset(psi):
    problem = LayerProblem.from_features(psi)
    best = _best_convex(problem)
    slack = ATOL * max(float(np.diag(problem.centred).max()), 1e-300)
    for method in METHODS:
        if not SELECTORS[method].simplex:
            continue
        n = 3 * problem.n_neurons if SELECTORS[method].repeats else problem.n_neurons
        trace = select(problem, n, method)
        assert np.all(trace.losses >= best[trace.support_sizes - 1] - slack), method


@settings(max_examples=15)
@given(psi=tiny)
def test_greedy_local_first_step_is_the_best_single_neuron(psi):
    problem = LayerProblem.from_features(psi)
    trace = select(problem, 1, "greedy-local")
    singles = [problem.loss(np.eye(problem.n_neurons)[j]) for j in range(problem.n_neurons)]
    assert trace.losses[0] == min(singles) or np.isclose(trace.losses[0], min(singles))
    assert np.isclose(singles[trace.support[0]], min(singles), rtol=1e-12, atol=0.0)


@settings(max_examples=15)
@given(psi=tiny)
def test_omp_never_beats_the_best_least_squares_subset(psi):
    problem = LayerProblem.from_features(psi)
    best = _best_least_squares(psi)
    trace = select(problem, problem.n_neurons, "omp")
    slack = ATOL * max(float(np.diag(problem.centred).max()), problem.target_norm2, 1e-300)
    assert np.all(trace.losses >= best[trace.support_sizes - 1] - slack)


@settings(max_examples=15)
@given(psi=tiny)
def test_fully_corrective_at_full_support_reaches_the_global_optimum(psi):
    """With every neuron allowed, the loss can reach 0 (a = t); fully-corrective must get there."""
    problem = LayerProblem.from_features(psi)
    trace = select(problem, problem.n_neurons, "fully-corrective")
    best = _best_convex(problem)
    slack = ATOL * max(float(np.diag(problem.centred).max()), 1e-300)
    assert trace.loss <= best[-1] + slack
