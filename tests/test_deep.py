"""Deep networks: the couplings between layer problem, folding and oracle; statement 7."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sims import config as cfg
from sims import runner
from sims.config import DeepConfig, MLPSpec
from sims.deep import run_deep_instance
from sims.deep_report import deep_figure, deep_markdown, summarize_deep
from sims.instance import Instance
from sims.mlp import MLP, cross_entropy_gradients, random_mlp, train_mlp
from sims.mlp_layers import fold, layer_problem, output_losses, output_oracle
from theory import select
from theory.iterate import replay

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 6))
LABELS = RNG.integers(0, 3, size=40)


def _net(activation: str = "relu") -> MLP:
    return random_mlp((6, 12, 9, 3), activation, np.random.default_rng(1))


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
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


def test_replay_gives_the_weights_and_the_share_of_local_choices():
    """The replayed weights equal a_k after every step; greedy-local's own steps are all local
    choices; for the other selectors the share equals a count over explicit psi (each
    candidate's best step size from its parabola in the step size, not from the Gram matrix)."""
    net = _net()
    problem, psi = layer_problem(net, X, 1)
    target = psi.mean(axis=0)
    for method in ("greedy-local", "random", "fixed-step"):
        trace = select(problem, 8, method, seed=3)
        weights, share = replay(problem, trace)
        assert weights.shape == (len(trace), psi.shape[0])
        assert np.allclose(weights[-1], trace.weights, atol=1e-15)
        expected, a = 0, np.zeros(psi.shape[0])
        for k, (j, g) in enumerate(zip(trace.neurons, trace.step_sizes, strict=True)):
            start = np.tensordot(a, psi, axes=1) - target  # f_a - F, (m, k)
            moves = psi - target - start  # psi_i - f_a, (N, m, k)
            if a.any():  # L(t) = ||start + t move||^2 is a parabola in t, minimised on [0, 1]
                curve = (moves**2).sum(axis=(1, 2))
                slope = (moves * start).sum(axis=(1, 2))
                ratio = np.divide(-slope, curve, out=np.zeros_like(curve), where=curve > 0)
                t = np.clip(ratio, 0.0, 1.0)
            else:
                t = np.ones(psi.shape[0])
            losses = ((start + t[:, None, None] * moves) ** 2).sum(axis=(1, 2))
            expected += int(j == int(np.argmin(losses)))
            a = (1 - g) * a
            a[j] += g
            assert np.allclose(weights[k], a, atol=1e-15)
            f_k = np.tensordot(weights[k], psi, axes=1) - target
            assert (f_k**2).sum(axis=1).mean() == pytest.approx(trace.losses[k], rel=1e-9)
        assert share == pytest.approx(expected / len(trace.neurons)), method
        if method == "greedy-local":
            assert share == 1.0


TINY = DeepConfig(
    name="deep-tiny",
    networks=(
        MLPSpec(widths=(64, 16, 16, 10), keep=5),
        MLPSpec(widths=(64, 16, 16, 16, 10), keep=6, trained=False),
    ),
    train_samples=300,
    calib_samples=100,
    test_samples=100,
    train_steps=60,
    candidates=8,
    seeds=2,
)


def test_replay_refuses_steps_other_than_vertex_and_forward():
    problem, _ = layer_problem(_net(), X, 1)
    trace = select(problem, 4, "fully-corrective")
    with pytest.raises(ValueError, match=r"vertex and forward steps only.*corrective"):
        replay(problem, trace)


@pytest.mark.parametrize("family", [0, 1])
def test_statement7_holds_for_every_method(family):
    _, meta = run_deep_instance(TINY, Instance(family, 0))
    spec = TINY.networks[family]
    assert meta["network"]["trained"] == spec.trained
    for method, result in meta["methods"].items():
        assert result["output_rms_change"] <= result["statement7_bound"] * (1 + 1e-9), method
        assert len(result["layers"]) == len(spec.widths) - 2
        assert all(layer["kept"] <= spec.keep for layer in result["layers"])
        assert all(0.0 <= layer["local_choice_share"] <= 1.0 for layer in result["layers"])
    local = meta["methods"]["greedy-local"]["layers"]
    assert all(layer["local_choice_share"] == 1.0 for layer in local)


@pytest.mark.slow
def test_deep_run_report_and_figure(tmp_path):
    from sims.deep import run_deep_instance as work

    run_dir = runner.run(TINY, tmp_path, jobs=1, progress=False, work=work)
    summary = summarize_deep(run_dir)
    text = deep_markdown(summary)
    assert text.count("| combined |") == 2 and text.count("unpruned test accuracy") == 2
    local_rows = [line for line in text.splitlines() if line.startswith("| greedy-local |")]
    assert all("| 0/2 |" in line for line in local_rows)  # never below itself
    assert "## Family 1: 4-layer relu MLP (16/16/16 hidden), random, on digits" in text
    paths = deep_figure(summary, tmp_path / "fig")
    assert sorted(p.name for p in paths) == [
        f"deep_layers_f00{f}.{ext}" for f in (0, 1) for ext in ("pdf", "png")
    ]
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"activation": "elu"}, "activation must be one of: relu, tanh, gelu; got 'elu'"),
        ({"inputs": "gaussian"}, "inputs must be one of: digits, mnist5k; got 'gaussian'"),
        ({"keep": 40}, "keep must be in"),
        ({"widths": (64, 10)}, "widths must list"),
        ({"widths": (64, 16, 5)}, "end with the classes of digits"),
        ({"widths": (784, 16, 10)}, "start with the input dimension"),
    ],
)
def test_bad_mlp_families(change, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, networks=(replace(TINY.networks[0], **change),)).validate()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"methods": ("best",)}, r"methods\[0\] must be one of: .*; got 'best'"),
        ({"networks": ()}, "networks must list at least 1"),
        ({"seeds": 0}, "seeds must be >= 1; got 0"),
        ({"candidates": 0}, "candidates must be >= 1"),
        ({"train_samples": 1600}, "digits has 1797 images"),
    ],
)
def test_bad_deep_configurations(change, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **change).validate()


@pytest.mark.slow
def test_cli_deep_preset_runs_reports_and_plots(tmp_path, monkeypatch, capsys):
    """``python -m sims run --preset deep`` takes the deep work and its report and figures;
    ``plot`` and ``report`` on its run folder recognise it (the preset shrunk to TINY)."""
    from sims.__main__ import main

    named = cfg.preset
    monkeypatch.setattr(cfg, "preset", lambda name: TINY if name == "deep" else named(name))
    runs, figures = tmp_path / "runs", tmp_path / "fig"
    common = ["--runs", str(runs), "--figures", str(figures), "--jobs", "1", "--no-progress"]
    assert main(["run", "--preset", "deep", "--seeds", "1", *common]) == 0
    out = capsys.readouterr().out
    assert out.count("| global-imitation |") == 2
    run_dir = runs / replace(TINY, seeds=1).run_name
    assert main(["report", str(run_dir)]) == 0
    report = capsys.readouterr().out
    assert "## Family 0: 3-layer relu MLP (16/16 hidden), trained on digits" in report
    assert main(["plot", str(run_dir), "--figures", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "deep-tiny" / "deep_layers_f001.png").stat().st_size > 1000
    assert main(["run", "--preset", "deep", "--steps", "5", *common]) == 2  # not a deep flag
    assert "configuration (MLPs) has no flag(s) --steps" in capsys.readouterr().err


def test_cli_runs_a_deep_configuration_file(tmp_path, capsys):
    """A TOML file whose families have widths is a deep configuration: it runs the deep work."""
    from sims.__main__ import main

    path = tmp_path / "mine.toml"
    path.write_text(cfg.dumps(replace(TINY, seeds=1, networks=TINY.networks[:1])))
    common = ["--runs", str(tmp_path / "runs"), "--figures", str(tmp_path / "fig")]
    assert main(["run", "--config", str(path), "--jobs", "1", "--no-progress", *common]) == 0
    assert "3-layer relu MLP (16/16 hidden), trained on digits" in capsys.readouterr().out
    path.write_text(path.read_text().replace("keep = 5", "keep = 5\nwidth = 3"))
    assert main(["run", "--config", str(path), *common]) == 2
    assert "mine.toml: networks[0].width is not a key here; valid keys: widths" in (
        capsys.readouterr().err
    )
