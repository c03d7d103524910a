"""The whole-output problem and its forward selection, against explicit least squares and
brute force on small instances."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import LayerProblem, select
from theory.output_problem import OutputProblem


def _data(seed: int, channels: int = 6, width: int = 1, outputs: int = 3, rows: int = 40,
          bias: bool = True):  # fmt: skip
    """Explicit patches X (M, C K [+ 1]) and outputs Y (M, C_out) of a noisy linear map."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, channels * width)) @ rng.standard_normal(
        (channels * width, channels * width)
    ) * 0.5 + rng.standard_normal((rows, channels * width))
    if bias:
        x = np.c_[x, np.ones(rows)]
    y = x @ rng.standard_normal((x.shape[1], outputs)) + 0.3 * rng.standard_normal((rows, outputs))
    return x, y


def _problem(x, y, width=1, bias=True, **kw) -> OutputProblem:
    return OutputProblem.from_moments(
        x.T @ x, x.T @ y, float((y * y).sum()), width=width, fixed=int(bias), **kw
    )


def _explicit(x, y, cols, weight_cols, lam, prior):
    """Least squares on X[:, cols] with the ridge written as extra rows; (coefficients, loss)."""
    rows, targets = [x[:, cols]], [y]
    if lam > 0:
        for i, c in enumerate(cols):
            if c < weight_cols:
                row = np.zeros(len(cols))
                row[i] = np.sqrt(lam)
                rows.append(row[None, :])
                pull = prior[c][None, :] if prior is not None else 0 * y[:1]
                targets.append(np.sqrt(lam) * pull)
    a, b = np.vstack(rows), np.vstack(targets)
    w = np.linalg.lstsq(a, b, rcond=None)[0]
    loss = float(((a @ w - b) ** 2).sum())
    if prior is not None:
        dropped = [c for c in range(weight_cols) if c not in set(cols)]
        loss += lam * float((prior[dropped] ** 2).sum())
    return w, loss


@pytest.mark.parametrize("width", [1, 3])
@pytest.mark.parametrize("ridge", [0.0, 0.2])
@pytest.mark.parametrize("with_prior", [False, True])
def test_solve_and_loss_are_the_explicit_least_squares(width, ridge, with_prior):
    x, y = _data(1, channels=5, width=width)
    weight_cols = x.shape[1] - 1
    prior = np.random.default_rng(2).standard_normal((weight_cols, y.shape[1]))
    problem = _problem(x, y, width, ridge=ridge, prior=prior if with_prior else None)
    lam = ridge * float(np.mean((x[:, :weight_cols] ** 2).sum(axis=0)))
    for channels in ([0], [3, 1], [4, 0, 2], list(range(5))):
        cols = problem.columns(np.array(channels))
        w, loss = _explicit(x, y, cols, weight_cols, lam, prior if with_prior else None)
        np.testing.assert_allclose(problem.solve(np.array(channels)), w, rtol=1e-8, atol=1e-10)
        assert problem.loss(np.array(channels)) == pytest.approx(loss, rel=1e-8)


@pytest.mark.parametrize("width", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("ridge", [0.0, 0.05])
def test_each_step_adds_the_channel_that_lowers_the_refit_loss_most(width, bias, ridge):
    x, y = _data(3, channels=7, width=width, bias=bias)
    problem = _problem(x, y, width, bias, ridge=ridge)
    trace = select(problem, 7, "whole-output")
    kept: list[int] = []
    for step, neuron in enumerate(trace.neurons):
        brute = {j: problem.loss(np.array([*kept, j])) for j in range(7) if j not in kept}
        assert brute[int(neuron)] == pytest.approx(min(brute.values()), rel=1e-9, abs=1e-9)
        kept.append(int(neuron))
        assert trace.losses[step] == pytest.approx(brute[int(neuron)], rel=1e-8, abs=1e-8)
    assert np.all(np.diff(trace.losses) <= 1e-9 * trace.losses[0])
    np.testing.assert_array_equal(trace.support, trace.neurons)
    np.testing.assert_array_equal(trace.weights, np.isin(np.arange(7), kept).astype(float))


def test_orthogonal_channels_are_kept_by_the_energy_they_carry():
    # X's columns orthonormal: channel j alone explains ||W_j||^2, whatever else is kept, so the
    # whole iterate sequence is known in closed form
    rng = np.random.default_rng(0)
    x = np.linalg.qr(rng.standard_normal((30, 5)))[0]
    coef = rng.standard_normal((5, 2)) * np.array([1.0, 3.0, 0.5, 2.0, 0.1])[:, None]
    y = x @ coef
    trace = select(_problem(x, y, bias=False), 5, "whole-output")
    energies = (coef**2).sum(axis=1)
    np.testing.assert_array_equal(trace.neurons, np.argsort(-energies))
    expected = energies.sum() - np.cumsum(np.sort(energies)[::-1])
    np.testing.assert_allclose(trace.losses, np.maximum(expected, 0), atol=1e-10)
    assert trace.stopped in ("n", "converged")


def test_greedy_is_never_better_than_the_best_subset_and_exact_at_the_ends():
    for seed in range(5):
        x, y = _data(seed, channels=6, width=2)
        problem = _problem(x, y, 2)
        trace = select(problem, 6, "whole-output")
        for size in range(1, 7):
            best = min(problem.loss(np.array(s)) for s in combinations(range(6), size))
            assert trace.losses[size - 1] >= best - 1e-9 * problem.yy
            if size in (1, 6):
                assert trace.losses[size - 1] == pytest.approx(best, rel=1e-8, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), channels=st.integers(2, 6), outputs=st.integers(1, 4),
       size=st.integers(1, 6))  # fmt: skip
def test_on_a_support_the_whole_output_loss_is_at_most_omps(seed, channels, outputs, size):
    # omp weights each channel's fixed contribution psi_j = N X_j W0_j by one number; the
    # whole-output refit frees the channel's whole map, so on any support it does no worse
    rng = np.random.default_rng(seed)
    rows = 20
    x = rng.standard_normal((rows, channels))
    w0 = rng.standard_normal((channels, outputs))
    y = x @ w0  # the output without a bias
    psi = channels * x[None, :, :].transpose(2, 1, 0) * w0[:, None, :]  # (N, M, C_out)
    layer = LayerProblem.from_features(psi)
    support = rng.permutation(channels)[: min(size, channels)]
    flat = psi.reshape(channels, -1)[support].T
    target = psi.reshape(channels, -1).mean(axis=0)  # F = sum_j X_j W0_j = Y
    a = np.linalg.lstsq(flat, target, rcond=None)[0]
    weights = np.zeros(channels)
    weights[support] = a
    output = _problem(x, y, bias=False)
    assert output.loss(support) / rows <= layer.loss(weights) + 1e-9 * layer.target_norm2


def test_a_channel_in_the_span_of_the_kept_ones_is_never_added():
    x, y = _data(4, channels=4, bias=False)
    x = np.c_[x, 2.0 * x[:, 1]]  # channel 4 repeats channel 1
    trace = select(_problem(x, y, bias=False), 5, "whole-output")
    assert not ({1, 4} <= set(trace.neurons.tolist()))
    assert trace.stopped == "converged"


def test_a_zero_output_keeps_nothing():
    x, _ = _data(5, channels=3, bias=False)
    trace = select(_problem(x, np.zeros((40, 2)), bias=False), 3, "whole-output")
    assert trace.stopped == "converged" and trace.losses.size == 0 and trace.loss == 0.0


def test_budgets_stop_the_run():
    x, y = _data(6, channels=8, width=1)
    problem = _problem(x, y)
    assert select(problem, 8, "whole-output", size=3).support.size == 3
    tol = 0.5 * problem.loss(np.arange(2))
    trace = select(problem, 8, "whole-output", tol=tol)
    assert trace.stopped == "tol" and trace.loss <= tol


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda x, y: OutputProblem.from_moments(x.T @ x, x.T @ y, 1.0, width=4, fixed=1),
            "are not channels of width 4",
        ),
        (lambda x, y: OutputProblem.from_moments(x.T @ x, y.T @ y, 1.0, fixed=1), "xy must be"),
        (lambda x, y: OutputProblem.from_moments(x.T @ x, x.T @ y, -1.0), "yy must be"),
        (lambda x, y: OutputProblem.from_moments(x.T @ x, x.T @ y, 1.0, ridge=-1), "ridge must"),
        (
            lambda x, y: OutputProblem.from_moments(
                x.T @ x, x.T @ y, 1.0, fixed=1, prior=np.ones(3)
            ),
            "prior must be",
        ),
        (lambda x, y: OutputProblem.from_moments(-x.T @ x, x.T @ y, 1.0), "not positive semi"),
        (lambda x, y: OutputProblem.from_moments(x.T @ x, x.T @ y, 1.0, width=True), "width"),
        (lambda x, y: OutputProblem.from_moments(x, x.T @ y, 1.0, psd=True), "xx must be a square"),
        (
            lambda x, y: OutputProblem.from_moments(
                np.full((7, 7), np.nan), x.T @ y, 1.0, psd=True
            ),
            "xx has 49 NaN",
        ),
    ],
)
def test_bad_moments_are_named(call, message):
    x, y = _data(7, channels=6)
    with pytest.raises(ValueError, match=message):
        call(x, y)


def test_channels_and_problems_of_the_wrong_kind_are_named():
    x, y = _data(8, channels=3)
    problem = _problem(x, y)
    with pytest.raises(ValueError, match=r"channels must be in \[0, 3\)"):
        problem.loss(np.array([3]))
    with pytest.raises(ValueError, match="channels must be distinct"):
        problem.solve(np.array([1, 1]))
    with pytest.raises(ValueError, match="whole-output selects on a OutputProblem; got Layer"):
        select(LayerProblem.from_gram(np.eye(3)), 2, "whole-output")
    with pytest.raises(ValueError, match="greedy-local selects on a LayerProblem; got Output"):
        select(problem, 2)
