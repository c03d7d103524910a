"""Global imitation and the combined rule, through the oracle interface."""

from __future__ import annotations

import numpy as np
import pytest

from theory import LayerProblem, select

PSI = np.random.default_rng(0).normal(size=(40, 6, 2))


def _local_oracle(problem: LayerProblem):
    """The layer loss itself as the 'global' loss: global imitation must then act locally."""

    def oracle(weights, neurons, step_sizes):
        out = []
        for j, g in zip(neurons, step_sizes, strict=True):
            cand = (1.0 - g) * weights
            cand[j] += g
            out.append(problem.loss(cand))
        return np.array(out)

    return oracle


def test_with_every_candidate_and_the_local_loss_it_is_greedy_local():
    problem = LayerProblem.from_features(PSI)
    greedy = select(problem, 25, "greedy-local")
    glob = select(problem, 25, "global-imitation", oracle=_local_oracle(problem), candidates=40)
    assert np.array_equal(glob.neurons, greedy.neurons)
    assert glob.losses == pytest.approx(greedy.losses, rel=1e-12)


def test_combined_keeps_the_local_proposal_whatever_the_random_pool():
    problem = LayerProblem.from_features(PSI)
    greedy = select(problem, 25, "greedy-local")
    combined = select(problem, 25, "combined", oracle=_local_oracle(problem), candidates=3)
    assert np.array_equal(combined.neurons, greedy.neurons)


def test_a_small_random_pool_is_worse_than_the_full_local_search():
    problem = LayerProblem.from_features(PSI)
    oracle = _local_oracle(problem)
    small = select(problem, 25, "global-imitation", oracle=oracle, candidates=3, seed=1)
    assert small.loss > select(problem, 25, "greedy-local").loss
    assert small.options == {"oracle": oracle, "candidates": 3}


def test_the_oracle_sees_the_current_weights_and_local_step_sizes():
    problem = LayerProblem.from_features(PSI)
    seen = []

    def oracle(weights, neurons, step_sizes):
        seen.append((weights.sum(), neurons.size, step_sizes.min(), step_sizes.max()))
        return _local_oracle(problem)(weights, neurons, step_sizes)

    select(problem, 5, "global-imitation", oracle=oracle, candidates=10)
    assert seen[0][0] == 0.0 and seen[0][2:] == (1.0, 1.0)  # the vertex step: empty weights, g=1
    for total, count, low, high in seen[1:]:
        assert total == pytest.approx(1.0) and 1 <= count <= 10 and 0.0 < low <= high <= 1.0


def test_missing_or_broken_oracle_is_a_clear_error():
    problem = LayerProblem.from_features(PSI)
    with pytest.raises(ValueError, match="global imitation needs oracle"):
        select(problem, 3, "global-imitation")
    with pytest.raises(ValueError, match="oracle must return 40 finite losses"):
        select(problem, 3, "combined", oracle=lambda w, n, g: np.zeros(2))
    with pytest.raises(ValueError, match=r"unknown option.*include_local"):
        select(problem, 3, "combined", oracle=_local_oracle(problem), include_local=False)


def test_candidates_that_would_not_move_never_win():
    """An oracle that prefers neuron 0 at any price: once 0 can no longer be moved toward
    (g = 0), other neurons are taken instead of stopping the run."""
    problem = LayerProblem.from_features(PSI)

    def oracle(weights, neurons, step_sizes):
        return np.where(np.asarray(neurons) == 0, -1.0, 1.0)

    trace = select(problem, 30, "global-imitation", oracle=oracle, candidates=40, size=10)
    assert trace.stopped == "size" and trace.support.size == 10
    assert np.all(trace.step_sizes > 0.0)


def _local_gradient(problem: LayerProblem):
    """d L / d a = 2 G (a - t): the gradient of the layer loss, from the full Gram matrix."""
    gram, target = problem.gram, problem.target
    return lambda weights: 2.0 * gram @ (weights - target)


def test_taylor_with_every_candidate_and_the_local_loss_is_greedy_local():
    problem = LayerProblem.from_features(PSI)
    greedy = select(problem, 25, "greedy-local")
    taylor = select(
        problem, 25, "taylor", oracle=_local_oracle(problem),
        gradient=_local_gradient(problem), candidates=40,
    )  # fmt: skip
    assert np.array_equal(taylor.neurons, greedy.neurons)
    assert taylor.losses == pytest.approx(greedy.losses, rel=1e-12)


def test_taylor_with_one_candidate_takes_the_frank_wolfe_vertex_at_every_step():
    """Replays the whole sequence: after the first vertex (argmin of the gradient), each step
    is argmin_j b_j (Frank-Wolfe's vertex) at the exact line-search step size, and the oracle
    is never asked."""
    from theory.iterate import Iterate

    problem = LayerProblem.from_features(PSI)
    gradient = _local_gradient(problem)
    calls = []

    def oracle(weights, neurons, step_sizes):  # a pool of one needs no scoring
        calls.append(neurons)
        return _local_oracle(problem)(weights, neurons, step_sizes)

    trace = select(problem, 30, "taylor", oracle=oracle, gradient=gradient, candidates=1)
    assert calls == []
    assert trace.neurons[0] == int(np.argmin(gradient(np.zeros(40))))
    it = Iterate(problem)
    it.start(int(trace.neurons[0]))
    for j, g in zip(trace.neurons[1:], trace.step_sizes[1:], strict=True):
        b, q = it.slopes(), it.curvatures()
        assert j == int(np.argmin(b))
        assert g == pytest.approx(min(max(-b[j] / q[j], 0.0), 1.0), rel=1e-12)
        it.forward(int(j), float(g))
    assert it.loss() == pytest.approx(trace.loss, rel=1e-12)


def test_taylor_asks_the_oracle_only_for_the_best_few():
    problem = LayerProblem.from_features(PSI)
    pools = []

    def oracle(weights, neurons, step_sizes):
        pools.append(np.asarray(neurons).size)
        return _local_oracle(problem)(weights, neurons, step_sizes)

    select(problem, 10, "taylor", oracle=oracle, gradient=_local_gradient(problem), candidates=4)
    assert len(pools) == 10 and max(pools) <= 4


def test_taylor_without_gradient_or_with_a_broken_one_is_a_clear_error():
    problem = LayerProblem.from_features(PSI)
    oracle = _local_oracle(problem)
    with pytest.raises(ValueError, match="taylor needs gradient"):
        select(problem, 3, "taylor", oracle=oracle)
    with pytest.raises(ValueError, match="taylor needs oracle"):
        select(problem, 3, "taylor", gradient=_local_gradient(problem))
    with pytest.raises(ValueError, match="gradient must return 40 finite values"):
        select(problem, 3, "taylor", oracle=oracle, gradient=lambda a: np.full(40, np.nan))


def test_taylor_ranks_only_neurons_that_can_move():
    """A gradient that always prefers neurons 0, 1, 2, ...: after the first step the chosen
    vertex cannot move (a step toward it changes nothing), so the pool must skip it and still
    hold three candidates, each with a positive step."""
    problem = LayerProblem.from_features(PSI)
    fixed = np.arange(40, dtype=np.float64)
    pools = []

    def oracle(weights, neurons, step_sizes):
        pools.append((np.asarray(neurons).copy(), np.asarray(step_sizes).copy()))
        return _local_oracle(problem)(weights, neurons, step_sizes)

    trace = select(problem, 20, "taylor", oracle=oracle, gradient=lambda a: fixed, candidates=3)
    assert pools[0][0].tolist() == [0, 1, 2]  # the start: every neuron can be a vertex
    assert trace.neurons[0] not in pools[1][0]
    assert all(neurons.size == 3 and np.all(sizes > 0.0) for neurons, sizes in pools[1:])


def test_without_repeats_every_step_is_the_best_unpicked_neuron_at_its_exact_step():
    """With every candidate and the layer loss as the oracle, ``repeats=False`` replays the
    greedy-local step restricted to neurons never picked; global imitation, the combined rule
    and taylor (every candidate) take the same sequence, one new neuron a step, and so does
    greedy-local with ``repeats=False``, which asks no oracle."""
    from theory.iterate import Iterate

    problem = LayerProblem.from_features(PSI)
    oracle, gradient = _local_oracle(problem), _local_gradient(problem)
    glob = select(problem, 12, "global-imitation", oracle=oracle, candidates=40, repeats=False)
    combined = select(problem, 12, "combined", oracle=oracle, candidates=2, repeats=False)
    taylor = select(problem, 12, "taylor", oracle=oracle, gradient=gradient, candidates=40,
                    repeats=False)  # fmt: skip
    local = select(problem, 12, "greedy-local", repeats=False)  # no oracle: its own rule
    assert np.array_equal(glob.neurons, combined.neurons)
    assert np.array_equal(glob.neurons, taylor.neurons)
    assert np.array_equal(glob.neurons, local.neurons)
    assert local.step_sizes == pytest.approx(glob.step_sizes, rel=1e-12)
    assert len(set(glob.neurons.tolist())) == glob.neurons.size == 12
    assert glob.support_sizes.tolist() == list(range(1, 13))
    it = Iterate(problem)
    it.start(int(np.argmin(it.vertex_losses())))
    assert glob.neurons[0] == it.order[0]
    for j, g in zip(glob.neurons[1:], glob.step_sizes[1:], strict=True):
        steps, change = it.forward_changes()
        change[it.order] = np.inf
        assert j == int(np.argmin(change))
        assert g == pytest.approx(steps[j], rel=1e-12)
        it.forward(int(j), float(g))
    assert it.loss() == pytest.approx(glob.loss, rel=1e-12)


def test_without_repeats_a_width_budget_takes_exactly_that_many_steps():
    """An oracle that always prefers the oldest kept neuron re-weights it forever with
    repeats (the cap of steps ends the run short of the width); without, k steps keep k."""
    problem = LayerProblem.from_features(PSI)

    def oracle(weights, neurons, step_sizes):
        return np.where(weights[np.asarray(neurons)] > 0.0, -1.0, 1.0)

    stuck = select(problem, 30, "global-imitation", oracle=oracle, candidates=40, size=8)
    assert stuck.stopped == "n" and stuck.support.size < 8
    fresh = select(problem, 30, "global-imitation", oracle=oracle, candidates=40, size=8,
                   repeats=False)  # fmt: skip
    assert fresh.stopped == "size" and fresh.losses.size == 8 and fresh.support.size == 8


def test_without_repeats_a_layer_at_zero_loss_still_reaches_its_width_by_the_fixed_step():
    """Neuron 0 is the mean of the others, so starting there the layer loss is exactly 0 and
    no other neuron has a positive line-search step: with repeats the run stops at one
    neuron; without, the second neuron comes in at the GFS step 1/2, after which the line
    search has positive steps again and takes over (replayed step by step); greedy-local
    without repeats takes the same steps."""
    from theory.iterate import Iterate

    others = np.array([[[3.0, -1.0]], [[0.0, 2.0]], [[-6.0, 5.0]]])  # (3, 1, 2)
    psi = np.concatenate([others.mean(axis=0, keepdims=True), others])  # psi_0 = mean
    problem = LayerProblem.from_features(psi)
    oracle = _local_oracle(problem)
    stuck = select(problem, 10, "global-imitation", oracle=oracle, candidates=4, size=4)
    assert stuck.support.size == 1 and stuck.loss == 0.0
    for method in ("global-imitation", "combined", "greedy-local"):
        scored = {} if method == "greedy-local" else {"oracle": oracle, "candidates": 4}
        trace = select(problem, 10, method, size=4, repeats=False, **scored)
        assert trace.stopped == "size" and sorted(trace.neurons.tolist()) == [0, 1, 2, 3]
        assert trace.neurons[0] == 0 and trace.step_sizes[:2].tolist() == [1.0, 0.5]
        it = Iterate(problem)
        it.start(0)
        it.forward(int(trace.neurons[1]), 0.5)
        for j, g in zip(trace.neurons[2:], trace.step_sizes[2:], strict=True):
            steps, change = it.forward_changes()
            change[it.order] = np.inf
            assert j == int(np.argmin(change)) and 0.0 < g == pytest.approx(steps[j], rel=1e-12)
            it.forward(int(j), float(g))
        assert trace.loss == pytest.approx(it.loss(), rel=1e-12)
    with pytest.raises(ValueError, match="allow_drop needs repeats"):
        select(problem, 4, "greedy-local", repeats=False, allow_drop=True)


def test_on_step_sees_every_step_of_the_trace_even_those_taken_without_the_oracle():
    """``select(..., on_step=f)`` calls f once a step with the step taken; taylor with one
    candidate takes every step without the oracle, and each is still reported."""
    problem = LayerProblem.from_features(PSI)
    calls = []

    def oracle(weights, neurons, step_sizes):
        calls.append(len(neurons))
        return np.zeros(len(neurons))

    seen = []
    trace = select(problem, 9, "taylor", oracle=oracle, gradient=_local_gradient(problem),
                   candidates=1, on_step=seen.append)  # fmt: skip
    assert calls == [] and len(seen) == trace.losses.size == 9
    assert [s.neuron for s in seen] == trace.neurons.tolist()
    assert [s.step_size for s in seen] == trace.step_sizes.tolist()
    assert [s.kind for s in seen] == list(trace.kinds)
