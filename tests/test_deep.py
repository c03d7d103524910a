"""Deep networks: the couplings between layer problem, folding and oracle; statement 7."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sims import runner
from sims.deep import (
    MLP,
    DeepConfig,
    cross_entropy_gradients,
    fold,
    layer_problem,
    output_losses,
    output_oracle,
    random_mlp,
    run_deep_instance,
    train_mlp,
)
from sims.deep_report import deep_figure, deep_report
from sims.instance import Instance
from theory import select

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 6))
LABELS = RNG.integers(0, 3, size=40)


def _net(activation: str = "relu") -> MLP:
    return random_mlp((6, 12, 9, 3), activation, np.random.default_rng(1))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_cross_entropy_gradients_match_finite_differences(activation):
    net = _net(activation)
    _, grads = cross_entropy_gradients(net, X, LABELS)
    params = [p for pair in zip(net.weights, net.biases, strict=True) for p in pair]
    rng = np.random.default_rng(2)
    for i, g in enumerate(grads):
        direction = rng.normal(size=g.shape)
        h = 1e-6

        def loss_at(t, i=i, direction=direction):
            moved = [p + t * direction if k == i else p for k, p in enumerate(params)]
            return cross_entropy_gradients(
                MLP(tuple(moved[0::2]), tuple(moved[1::2]), activation), X, LABELS
            )[0]

        numeric = (loss_at(h) - loss_at(-h)) / (2 * h)
        assert float((g * direction).sum()) == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_training_fits_the_labels():
    net = train_mlp(_net(), X, LABELS, 300, 0.01)
    assert (net.output(X).argmax(1) == LABELS).mean() > 0.9


def test_layer_problem_target_is_the_consumer_pre_activation():
    net = _net()
    problem, psi = layer_problem(net, X, 1)
    z2 = net.pre_activations(X)[1]
    assert np.allclose(psi.mean(axis=0), z2 - net.biases[1], atol=1e-12)
    assert problem.n_neurons == 12


def test_folding_uniform_weights_over_every_neuron_changes_nothing():
    net = _net()
    for layer in (1, 2):
        n = net.weights[layer - 1].shape[0]
        same = fold(net, layer, np.full(n, 1.0 / n))
        assert np.allclose(same.output(X), net.output(X), atol=1e-12)


def test_folded_network_matches_the_layer_loss_and_the_oracle():
    """Fold the weights of a greedy run: the new consumer pre-activation is sum a_i psi_i (its
    distance to F is the trace's loss) and the output loss is what the oracle reported."""
    net = _net()
    reference = net.output(X)
    problem, psi = layer_problem(net, X, 1)
    trace = select(problem, 5, "greedy-local")
    pruned = fold(net, 1, trace.weights)
    z = pruned.pre_activations(X)[1] - pruned.biases[1]
    target = net.pre_activations(X)[1] - net.biases[1]
    assert ((z - target) ** 2).sum(axis=1).mean() == pytest.approx(trace.loss, rel=1e-9)
    direct = ((pruned.output(X) - reference) ** 2).sum(axis=1).mean()
    assert output_losses(net, 1, z[None], reference)[0] == pytest.approx(direct, rel=1e-9)
    oracle = output_oracle(net, psi, 1, reference)
    a = trace.weights
    j, g = int(np.flatnonzero(a)[0]), 0.0  # g = 0: the candidate is a itself
    assert oracle(a, np.array([j]), np.array([g]))[0] == pytest.approx(direct, rel=1e-9)


TINY = DeepConfig(
    name="deep-tiny",
    widths=(64, 16, 16, 10),
    train_samples=300,
    calib_samples=100,
    test_samples=100,
    train_steps=60,
    keep=5,
    candidates=8,
    seeds=2,
)


def test_statement7_holds_for_every_method():
    _, meta = run_deep_instance(TINY, Instance(0, 0))
    for method, result in meta["methods"].items():
        assert result["output_rms_change"] <= result["statement7_bound"] * (1 + 1e-9), method
        assert all(layer["kept"] <= TINY.keep for layer in result["layers"])


def test_deep_run_report_and_figure(tmp_path):
    from sims.deep import run_deep_instance as work

    run_dir = runner.run(TINY, tmp_path, jobs=1, progress=False, work=work)
    text = deep_report(run_dir)
    assert "| combined |" in text and "Unpruned test accuracy" in text
    paths = deep_figure(run_dir, tmp_path / "fig")
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"activation": "gelu"}, "unknown activation"),
        ({"inputs": "gaussian"}, "unknown inputs"),
        ({"keep": 40}, "keep must be in"),
        ({"widths": (64, 10)}, "widths must list"),
        ({"methods": ("best",)}, "unknown method"),
    ],
)
def test_bad_deep_configurations(change, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **change).validate()
