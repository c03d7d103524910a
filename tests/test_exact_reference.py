"""Whole iterate sequences pinned against exact rational arithmetic (tests/exact_reference.py)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from exact_reference import fixed_step, greedy_local
from hypothesis import given
from hypothesis import strategies as st

from theory import LayerProblem, select

PENTAGON = [(0, 0), (6, 0), (0, 6), (5, 5), (1, 4)]


def _problem(points) -> LayerProblem:
    return LayerProblem.from_features(np.asarray(points, dtype=np.float64)[:, None, :])


def test_greedy_local_pinned_on_five_points():
    """Neurons, step sizes and losses of five greedy-local steps, exact values in fractions."""
    trace = select(_problem(PENTAGON), 5, "greedy-local")
    assert trace.neurons.tolist() == [4, 1, 3, 2, 3]
    sizes = [Fraction(1), Fraction(11, 41), Fraction(63, 2330), Fraction(4450, 792221),
             Fraction(332908950, 4072296711269)]  # fmt: skip
    losses = [Fraction(74, 25), Fraction(9, 1025), Fraction(9, 19106),
              Fraction(1089, 15136174426),
              Fraction(1596358967841, 61638993336193743806594)]  # fmt: skip
    assert trace.step_sizes == pytest.approx([float(g) for g in sizes], rel=1e-12)
    # Losses fall by 11 orders of magnitude; the absolute error stays at round-off of h_1.
    assert trace.losses == pytest.approx([float(h) for h in losses], rel=1e-9, abs=1e-15 * 2.96)
    assert trace.kinds == ("vertex", "forward", "forward", "forward", "forward")


@st.composite
def integer_points(draw):
    n = draw(st.integers(2, 7))
    d = draw(st.integers(1, 3))
    coords = draw(st.lists(st.integers(-5, 5), min_size=n * d, max_size=n * d))
    return [tuple(coords[i * d : (i + 1) * d]) for i in range(n)]


def _compare_until_near_tie(reference, float_neurons, float_losses, h1):
    for k, row in enumerate(reference):
        neuron, loss, margin = row[0], row[-2], row[-1]
        if margin <= 1e-9 * h1:  # two candidates tie to round-off: the float run may pick either
            return
        assert float_neurons[k] == neuron, k
        assert float_losses[k] == pytest.approx(float(loss), rel=1e-9, abs=1e-13 * h1), k


@given(points=integer_points())
def test_greedy_local_matches_exact_rational_run(points):
    n = len(points)
    reference = greedy_local(points, [Fraction(1, n)] * n, 6)
    h1 = float(reference[0][2]) or 1.0
    trace = select(_problem(points), 6, "greedy-local")
    _compare_until_near_tie(reference, trace.neurons, trace.losses, h1)
    for k, (_, g, _, margin) in enumerate(reference[: len(trace)]):
        if margin <= 1e-9 * h1:
            break
        assert trace.step_sizes[k] == pytest.approx(float(g), rel=1e-9, abs=1e-12)


@given(points=integer_points())
def test_fixed_step_matches_exact_rational_run(points):
    n = len(points)
    reference = fixed_step(points, [Fraction(1, n)] * n, 8)
    h1 = float(reference[0][1]) or 1.0
    trace = select(_problem(points), 8, "fixed-step")
    _compare_until_near_tie(reference, trace.neurons, trace.losses, h1)
