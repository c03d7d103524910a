"""Bad input: a ValueError whose message names the problem, never a deep numpy traceback."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

from theory import METHODS, LayerProblem, select

GOOD = np.random.default_rng(0).normal(size=(6, 4))


def _gram(x: np.ndarray) -> np.ndarray:
    return x @ x.T / x.shape[1]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features(bad):
    psi = GOOD.copy()
    psi[2, 1] = bad
    with pytest.raises(ValueError, match="psi has 1 NaN or infinite"):
        LayerProblem.from_features(psi)


def test_non_finite_gram():
    gram = _gram(GOOD)
    gram[0, 0] = np.nan
    with pytest.raises(ValueError, match="gram has 1 NaN or infinite"):
        LayerProblem.from_gram(gram)


@pytest.mark.parametrize("shape", [(5,), ()])
def test_features_need_neurons_and_samples(shape):
    with pytest.raises(ValueError, match=r"psi must have shape \(N, m, ...\)"):
        LayerProblem.from_features(np.zeros(shape))


@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (3, 2, 0)])
def test_empty_features(shape):
    with pytest.raises(ValueError, match="psi is empty"):
        LayerProblem.from_features(np.zeros(shape))


@pytest.mark.parametrize("shape", [(3, 4), (3,), (2, 2, 2)])
def test_gram_must_be_square(shape):
    with pytest.raises(ValueError, match=r"gram must be a square \(N, N\) matrix"):
        LayerProblem.from_gram(np.zeros(shape))


def test_empty_gram():
    with pytest.raises(ValueError, match="gram is empty"):
        LayerProblem.from_gram(np.zeros((0, 0)))


def test_non_numeric_input():
    with pytest.raises(ValueError, match="psi must be real numbers"):
        LayerProblem.from_features(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="gram must be real numbers"):
        LayerProblem.from_gram(np.eye(2) * 1j)


def test_non_symmetric_gram():
    gram = _gram(GOOD)
    gram[0, 1] += 0.1
    with pytest.raises(ValueError, match="gram is not symmetric"):
        LayerProblem.from_gram(gram)


def test_gram_with_a_negative_diagonal():
    gram = _gram(GOOD)
    gram[3, 3] = -1.0
    with pytest.raises(ValueError, match=r"not positive semi-definite: G\[3,3\]"):
        LayerProblem.from_gram(gram)


def test_clearly_indefinite_gram():
    gram = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1
    with pytest.raises(ValueError, match="smallest eigenvalue -1"):
        LayerProblem.from_gram(gram)


def test_indefinite_gram_hidden_under_a_large_offset():
    """Eigenvalue -1 under a common 1e9: 1e-9 of the scale, far above float64 round-off."""
    with pytest.raises(ValueError, match="smallest eigenvalue -1"):
        LayerProblem.from_gram(np.array([[1e9 + 1, 1e9 + 2], [1e9 + 2, 1e9 + 1]]))


def test_float32_gram_of_low_rank_features_is_accepted():
    x = np.random.default_rng(1).normal(size=(200, 20)).astype(np.float32)
    problem = LayerProblem.from_gram(x @ x.T)
    assert problem.n_neurons == 200


def test_target_off_by_round_off_is_renormalised():
    target = np.full(6, 1.0 / 6) * (1 + 5e-10)
    problem = LayerProblem.from_features(GOOD, target)
    assert problem.target.sum() == pytest.approx(1.0, abs=1e-15)
    assert len(select(problem, 5, "random")) == 5


def test_round_off_indefiniteness_is_accepted():
    gram = _gram(np.r_[GOOD, GOOD[:1]])  # singular; eigenvalues ~ -1e-16 after round-off
    assert LayerProblem.from_gram(gram).n_neurons == 7


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (np.full(5, 0.2), r"target must have shape \(6,\)"),
        (np.r_[-0.1, np.full(5, 1.1 / 5)], "negative weights"),
        (np.full(6, 0.2), "sum to 1.2"),
        (np.r_[np.nan, np.full(5, 0.2)], "target has 1 NaN"),
    ],
)
def test_target_not_on_the_simplex(target, message):
    with pytest.raises(ValueError, match=message):
        LayerProblem.from_features(GOOD, target)
    with pytest.raises(ValueError, match=message):
        LayerProblem.from_gram(_gram(GOOD), target)


@pytest.mark.parametrize("n", [0, -3])
def test_non_positive_n(n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        select(LayerProblem.from_features(GOOD), n)


@pytest.mark.parametrize("n", [2.5, "4", True, None])
def test_n_not_an_integer(n):
    with pytest.raises(TypeError, match="select: n must be an integer or a numpy integer; got"):
        select(LayerProblem.from_features(GOOD), n)


@pytest.mark.parametrize("method", ["fully-corrective", "omp", "magnitude"])
def test_n_above_N_where_repeats_are_impossible(method):
    with pytest.raises(ValueError, match=f"n=7 exceeds N=6 neurons, and {method} never picks"):
        select(LayerProblem.from_features(GOOD), 7, method)


def test_fixed_step_without_repeats_stops_at_N():
    trace = select(LayerProblem.from_features(GOOD), 9, "fixed-step", repeats=False)
    assert len(trace) == 6 and trace.stopped == "converged"
    assert sorted(trace.neurons) == list(range(6))


@pytest.mark.parametrize("method", ["greedy-local", "random", "pairwise"])
def test_n_above_N_is_fine_where_repeats_are_possible(method):
    assert len(select(LayerProblem.from_features(GOOD), 9, method)) <= 9


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'greedy'") as info:
        select(LayerProblem.from_features(GOOD), 3, "greedy")
    for name in METHODS:
        assert name in str(info.value)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown option.*allow_drops.*valid: allow_drop"):
        select(LayerProblem.from_features(GOOD), 3, "greedy-local", allow_drops=True)
    with pytest.raises(ValueError, match="valid: none"):
        select(LayerProblem.from_features(GOOD), 3, "frank-wolfe", repeats=False)


def test_bad_choice_of_fully_corrective():
    with pytest.raises(ValueError, match="unknown choice 'best'; valid choices: greedy, gradient"):
        select(LayerProblem.from_features(GOOD), 3, "fully-corrective", choice="best")


FINITE = "must be a finite number"


@pytest.mark.parametrize(
    "tol, rule", [(-1.0, "must be >= 0.0"), (np.nan, FINITE), (np.inf, FINITE)]
)
def test_bad_tolerance(tol, rule):
    with pytest.raises(ValueError, match=f"select: tol {rule}; got {tol!r}"):
        select(LayerProblem.from_features(GOOD), 3, tol=tol)


def test_problem_of_the_wrong_type():
    with pytest.raises(
        TypeError,
        match=r"problem must be a LayerProblem or a OutputProblem; got ndarray of shape \(6, 4\)",
    ):
        select(GOOD, 3)


def test_loss_of_weights_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"weights must have shape \(6,\)"):
        LayerProblem.from_features(GOOD).loss(np.ones(4))


@pytest.mark.parametrize(
    "given, error, message",
    [
        ({"tol": "small"}, TypeError, "select: tol must be a number; got 'small'"),
        ({"method": ["omp"]}, TypeError, r"select: method must be a string; got \['omp'\]"),
        ({"seed": "abc"}, TypeError, "select: seed must be an integer or a numpy integer"),
        ({"seed": -1}, ValueError, "select: seed must be >= 0; got -1"),
        ({"seed": 1.5}, TypeError, "select: seed must be an integer or a numpy integer; got 1.5"),
        ({"on_step": 5}, TypeError, "select: on_step must be callable; got 5"),
        ({"size": "2"}, TypeError, "select: size must be an integer or a numpy integer"),
        ({"method": "fixed-step", "repeats": "no"}, TypeError,
         "fixed-step: repeats must be true or false; got 'no'"),
        ({"allow_drop": "yes"}, TypeError, "greedy-local: allow_drop must be true or false"),
        ({"method": "fully-corrective", "solver": 3}, TypeError,
         "fully-corrective: solver must be a string; got 3"),
        ({"method": "global-imitation", "candidates": 2.5}, TypeError,
         "global-imitation: candidates must be an integer; got 2.5"),
    ],
)  # fmt: skip
def test_arguments_and_options_of_the_wrong_type_are_named(given, error, message):
    """Each argument and each selector option is checked against its declaration (the
    signature of select, and of the selector's make) before any step."""
    with pytest.raises(error, match=message):
        select(LayerProblem.from_features(GOOD), 3, **given)


def test_a_wrong_type_is_also_a_value_error():
    """Callers that catch ValueError (the command lines) catch a wrong type too."""
    with pytest.raises(ValueError, match="select: tol must be a number"):
        select(LayerProblem.from_features(GOOD), 3, tol="small")


@pytest.mark.parametrize("name", ["geometry", "sigma2", "diameter", "margin", "spectrum"])
def test_geometry_of_a_bare_array_is_refused(name):
    function = getattr(importlib.import_module("theory.geometry"), name)
    with pytest.raises(TypeError, match=rf"{name}: problem must be a LayerProblem; got ndarray of"):
        function(GOOD)


def test_geometry_options_out_of_range_are_named():
    geometry = importlib.import_module("theory.geometry")
    problem = LayerProblem.from_features(GOOD)
    with pytest.raises(ValueError, match="diameter: block must be >= 1; got 0"):
        geometry.diameter(problem, block=0)
    with pytest.raises(ValueError, match="geometry: exact_max_dim must be >= 0; got -1"):
        geometry.geometry(problem, exact_max_dim=-1)


def test_a_string_target_is_refused():
    with pytest.raises(ValueError, match="target must be real numbers; got dtype <U5"):
        LayerProblem.from_features(GOOD, target="equal")


def test_features_whose_products_overflow_are_refused():
    """Features of 1e160 square to infinity in float64: refused with the remedy, not a
    problem with NaN losses and a warning."""
    with pytest.raises(ValueError, match="psi's inner products overflow float64"):
        LayerProblem.from_features(GOOD * 1e160)
    assert np.isfinite(LayerProblem.from_features(GOOD * 1e100).loss(np.full(6, 1 / 6)))


def test_a_gram_matrix_larger_than_memory_is_refused_before_it_is_built():
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    n = int(np.sqrt(available / 16)) + 1000
    with pytest.raises(ValueError, match=rf"N={n} neurons need .* GiB .* at most N=\d+ fits"):
        LayerProblem.from_features(np.broadcast_to(np.float64(1.0), (n, 1)))
