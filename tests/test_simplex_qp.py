"""The gamma subproblem: the fast active-set solver against cvxpy, and its KKT conditions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from theory import LayerProblem, select
from theory.simplex_qp import objective, solve_simplex_qp


def _random_qp(seed: int, size: int, rank: int, duplicates: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, rank)) * rng.uniform(0.1, 10.0, size=rank)
    x[:duplicates] = x[size - duplicates :]  # repeated neurons: Q singular
    centre = x.mean(axis=0)
    quad = (x - centre) @ (x - centre).T
    lin = -rng.normal(size=size) * 0.1 * np.abs(quad).max()
    return quad, lin


CASES = [
    (seed, size, rank, dup)
    for seed, (size, rank, dup) in enumerate(
        [
            (3, 2, 0),
            (5, 5, 0),
            (8, 3, 2),
            (12, 40, 0),
            (20, 6, 5),
            (30, 30, 0),
            (40, 10, 10),
            (60, 200, 0),
            (80, 20, 0),
            (100, 400, 30),
        ]
        * 3
    )
]


@pytest.mark.parametrize(("seed", "size", "rank", "dup"), CASES)
def test_active_set_agrees_with_cvxpy_to_1e8(seed, size, rank, dup):
    quad, lin = _random_qp(seed, size, rank, dup)
    fast = solve_simplex_qp(quad, lin)
    reference = solve_simplex_qp(quad, lin, solver="cvxpy")
    f_fast, f_ref = objective(quad, lin, fast), objective(quad, lin, reference)
    shift = float(np.abs(quad).max())  # objectives may be negative: compare losses >= 0
    assert (f_fast + shift) == pytest.approx(f_ref + shift, rel=1e-8)
    assert f_fast <= f_ref + 1e-10 * shift  # the exact solver is never worse


@pytest.mark.parametrize(("seed", "size", "rank", "dup"), CASES[:10])
def test_active_set_solution_satisfies_kkt(seed, size, rank, dup):
    quad, lin = _random_qp(seed, size, rank, dup)
    x = solve_simplex_qp(quad, lin)
    assert np.all(x >= 0.0)
    assert x.sum() == pytest.approx(1.0, abs=1e-12)
    grad = quad @ x + lin
    reduced = grad - x @ grad
    scale = float(np.abs(quad).max())
    assert np.all(reduced >= -1e-9 * scale)  # no vertex lowers the objective
    assert np.allclose(reduced[x > 0], 0.0, atol=1e-9 * scale)  # stationary on the face


@pytest.mark.parametrize(("size", "rank", "dup"), [(3, 1, 0), (4, 2, 0), (5, 2, 1), (6, 3, 0)])
def test_singular_faces_with_a_generic_linear_term(size, rank, dup):
    """Small s, rank-deficient Q and c outside its range: the objective can fall along a line
    inside a face, which the face's pseudo-inverse alone does not see. 100 seeds each."""
    for seed in range(100):
        quad, lin = _random_qp(seed, size, rank, dup)
        fast = objective(quad, lin, solve_simplex_qp(quad, lin))
        reference = objective(quad, lin, solve_simplex_qp(quad, lin, solver="cvxpy"))
        assert fast <= reference + 1e-9 * float(np.abs(quad).max()), seed


@pytest.mark.parametrize(
    ("quad", "lin", "start", "best"),
    [
        (np.array([[0.0, 0, 0], [0, 2, -2], [0, -2, 2]]), np.array([0.0, -1, -1]), None, -2.0),
        (np.zeros((3, 3)), np.array([0.0, 1, 2]), np.ones(3) / 3, 0.0),
    ],
)
def test_descent_along_a_flat_face_is_followed(quad, lin, start, best):
    x = solve_simplex_qp(quad, lin, start=start)
    assert objective(quad, lin, x) == pytest.approx(best, abs=1e-12)


def test_near_singular_support_at_the_floor_terminates():
    """A 30-neuron support from a fully-corrective run (regimes preset: N=4000, d=1, m=500,
    tanh, seed 0) whose face Hessians have eigenvalues from 3e-15 to 18: the active-set solver
    used to cycle through KKT violations of round-off size and raise after 400 iterations."""
    data = np.load(Path(__file__).parent / "data" / "cycling_qp.npz")
    quad, lin = data["quad"], data["lin"]
    x = solve_simplex_qp(quad, lin, start=data["start"])
    reference = solve_simplex_qp(quad, lin, solver="cvxpy")
    scale = float(np.abs(quad).max())
    assert objective(quad, lin, x) <= objective(quad, lin, reference) + 1e-13 * scale


def test_warm_start_reaches_the_same_minimum():
    quad, lin = _random_qp(7, 50, 12, 4)
    cold = solve_simplex_qp(quad, lin)
    warm = solve_simplex_qp(quad, lin, start=np.ones(50) / 50)
    assert objective(quad, lin, warm) == pytest.approx(objective(quad, lin, cold), rel=1e-12)


def test_fully_corrective_trace_same_with_either_solver():
    psi = np.random.default_rng(2).normal(size=(25, 6, 2))
    problem = LayerProblem.from_features(psi)
    fast = select(problem, 12, "fully-corrective")
    reference = select(problem, 12, "fully-corrective", solver="cvxpy")
    assert np.array_equal(fast.neurons, reference.neurons)
    assert fast.losses == pytest.approx(reference.losses, rel=1e-7)
    assert np.all(fast.losses <= reference.losses * (1 + 1e-9))


def test_fully_corrective_weights_are_optimal_on_their_support():
    psi = np.random.default_rng(3).normal(size=(30, 10))
    problem = LayerProblem.from_features(psi)
    trace = select(problem, 10, "fully-corrective")
    s = trace.order
    quad = problem.centred[np.ix_(s, s)]
    best = solve_simplex_qp(quad, -problem.centred_target[s], solver="cvxpy")
    assert trace.loss == pytest.approx(problem.loss(_embed(best, s, 30)), rel=1e-8)


def _embed(values: np.ndarray, support: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[support] = values
    return out


NAN = np.array([[1.0, np.nan], [np.nan, 1.0]])


@pytest.mark.parametrize(
    ("quad", "lin", "start", "message"),
    [
        (
            np.eye(2),
            np.zeros(3),
            None,
            r"c must have shape \(2,\), one entry per row of Q; got \(3,\)",
        ),
        (np.eye(2), 0.5, None, r"c must have shape \(2,\), one entry per row of Q; got \(\)"),
        (np.zeros((0, 0)), np.zeros(0), None, r"Q is empty \(0 x 0\)"),
        (
            np.eye(3)[:2],
            np.zeros(2),
            None,
            r"Q must be a square \(N, N\) matrix; got shape \(2, 3\)",
        ),
        (NAN, np.zeros(2), None, "Q has 2 NaN or infinite entries"),
        (np.eye(2), np.array([np.nan, 0.0]), None, "c has 1 NaN or infinite entries"),
        (np.eye(2), np.array([np.inf, 0.0]), None, "c has 1 NaN or infinite entries"),
        (np.eye(2), np.array([1j, 0.0]), None, "c must be real numbers; got dtype complex128"),
        (np.eye(2), np.array(["a", "b"]), None, "c must be real numbers; got dtype <U1"),
        (np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), None, "Q is not symmetric"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), np.zeros(2), None, "Q is not positive semi-definite"),
        (np.eye(2) * (1 + 1j), np.zeros(2), None, "Q must be real numbers; got dtype complex128"),
        (np.eye(2), np.zeros(2), np.array([np.nan, 1.0]), "start has 1 NaN or infinite entries"),
        (np.eye(2), np.zeros(2), np.array([2.0, 1.0]), "start is not on the simplex: its weights"),
        (
            np.eye(2),
            np.zeros(2),
            np.array([1.5, -0.5]),
            "start is not on the simplex: it has negat",
        ),
        (np.eye(2), np.zeros(2), np.ones(3) / 3, r"start must have shape \(2,\)"),
    ],
)
def test_bad_inputs_are_named(quad, lin, start, message):
    """Every way Q, c or the start can be wrong is refused in one line naming it."""
    with pytest.raises(ValueError, match=message):
        solve_simplex_qp(quad, lin, start=start)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"solver": 3}, "solve_simplex_qp: solver must be one of: active-set, cvxpy; got 3"),
        ({"start": "uniform"}, "start must be real numbers; got dtype <U7"),
    ],
)
def test_arguments_of_the_wrong_type_are_named(given, message):
    with pytest.raises(ValueError, match=message):
        solve_simplex_qp(np.eye(2), np.zeros(2), **given)


def test_unknown_solver_lists_the_valid_ones():
    with pytest.raises(ValueError, match="active-set, cvxpy"):
        solve_simplex_qp(np.eye(2), np.zeros(2), solver="gurobi")


@pytest.mark.parametrize(
    ("seed", "method", "shape"),
    [
        (0, "greedy-local", (40, 30)),
        (1, "greedy-local", (60, 12, 3)),  # rank-deficient: 12 samples of 3 units, 60 neurons
        (2, "fixed-step", (40, 30)),
        (3, "random", (25, 50)),
    ],
)
def test_resolved_weights_solve_the_gamma_subproblem_on_the_selectors_support(seed, method, shape):
    """``resolved`` keeps (a subset of) the selector's neurons, stays on the simplex, lowers
    the loss, and reaches cvxpy's minimum over the simplex on that support."""
    from theory.selectors.fully_corrective import resolved

    problem = LayerProblem.from_features(np.random.default_rng(seed).normal(size=shape))
    trace = select(problem, 30, method, seed=seed)
    weights = resolved(problem, trace.weights)
    support = np.flatnonzero(trace.weights)
    assert set(np.flatnonzero(weights)) <= set(support)
    assert weights.min() >= 0.0 and weights.sum() == pytest.approx(1.0, abs=1e-12)
    loss = problem.loss(weights)
    assert loss < 0.5 * problem.loss(trace.weights)  # these selectors' weights are far off it
    best = solve_simplex_qp(
        problem.centred[np.ix_(support, support)], -problem.centred_target[support],
        solver="cvxpy",
    )  # fmt: skip
    reference = problem.loss(_embed(best, support, problem.n_neurons))
    scale = problem.target_norm2
    assert loss == pytest.approx(reference, rel=1e-7, abs=1e-10 * scale)
    assert loss <= reference + 1e-10 * scale


def test_resolving_fully_corrective_weights_changes_nothing():
    """Fully corrective's weights are already the minimum on their support: a fixed point."""
    from theory.selectors.fully_corrective import resolved

    problem = LayerProblem.from_features(np.random.default_rng(4).normal(size=(30, 10)))
    trace = select(problem, 10, "fully-corrective")
    weights = resolved(problem, trace.weights)
    assert problem.loss(weights) == pytest.approx(trace.loss, rel=1e-9)
    assert np.allclose(weights, trace.weights, atol=1e-8)


def test_resolved_names_bad_weights():
    from theory.selectors.fully_corrective import resolved

    problem = LayerProblem.from_features(np.random.default_rng(5).normal(size=(6, 4)))
    for weights in (np.ones(5) / 5, np.zeros(6), np.array([1.5, -0.5, 0, 0, 0, 0])):
        with pytest.raises(ValueError, match=r"convex weights of shape \(6,\): non-negative"):
            resolved(problem, weights)
