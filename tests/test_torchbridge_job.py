"""Budgets (tolerance, FLOPs target), saved pruned models, and the prune / eval command line."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from image_folder import image_folder  # noqa: E402

from torchbridge.budget import prune_to_flops  # noqa: E402
from torchbridge.chains import block_chains  # noqa: E402
from torchbridge.counting import count  # noqa: E402
from torchbridge.models import build, load, load_pruned, pruned_metadata, save_pruned  # noqa: E402
from torchbridge.prune import STOPPED, prune_chains  # noqa: E402


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = build("resnet18", num_classes=10)
    x = torch.randn(12, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    return model, block_chains(model), [x[:6], x[6:]]


def test_reports_name_the_kept_channels_and_why_each_chain_stopped(resnet):
    """Each report lists the producer's kept channels (its rows left in the pruned network)
    and why its selection ended: its width reached, or its tolerance met."""
    model, chains, batches = resnet
    pruned, reports = prune_chains(model, chains[:3], batches, keep=0.5, method="magnitude")
    for chain, report in zip(chains[:3], reports, strict=True):
        assert report.stopped == "width" and len(report.channels) == report.kept
        assert list(report.channels) == sorted(set(report.channels))
        original = model.get_submodule(chain.producer).weight
        kept = pruned.get_submodule(chain.producer).weight
        assert torch.equal(kept, original[list(report.channels)])
        assert report.as_dict()["channels"] == report.channels
    _, loose = prune_chains(model, chains[:2], batches, tol=0.5, method="greedy-local")
    assert all(r.stopped == "tolerance" and r.output_rel <= 0.5 for r in loose)


@pytest.mark.slow
def test_tolerance_budget_bounds_every_chain_error(resnet):
    model, chains, batches = resnet
    for tol in (0.3, 0.03):
        _, reports = prune_chains(model, chains, batches, tol=tol)
        assert all(r.output_rel <= tol or r.kept == r.total for r in reports)
    loose, _ = prune_chains(model, chains, batches, tol=0.3)
    tight, _ = prune_chains(model, chains, batches, tol=0.03)
    x = batches[0][:1]
    assert count(loose, x).flops < count(tight, x).flops < count(model, x).flops


@pytest.mark.slow
def test_flops_target_is_met_by_the_best_probe(resnet):
    model, chains, batches = resnet
    x = batches[0][:1]
    pruned, reports, probes = prune_to_flops(model, chains, batches, 0.6, iterations=4)
    reached = count(pruned, x).flops / count(model, x).flops
    assert reached <= 0.6
    real = [p for p in probes if not p.predicted]
    assert 1 <= len(real) <= 5 and len(probes) > len(real)
    assert reached == pytest.approx(max(p.flops for p in real if p.flops <= 0.6))
    assert [pruned.get_submodule(c.producer).out_channels for c in chains] == [
        r.kept for r in reports
    ]
    # a larger shared tolerance never kept more FLOPs, among predictions and among real probes
    for group in ([p for p in probes if p.predicted], real):
        ordered = sorted(group, key=lambda p: p.value)
        assert all(a.flops >= b.flops - 1e-9 for a, b in itertools.pairwise(ordered))


@pytest.mark.slow
def test_uniform_allocation_keeps_one_fraction_everywhere_under_the_target(resnet):
    model, chains, batches = resnet
    x = batches[0][:1]
    pruned, reports, probes = prune_to_flops(
        model, chains, batches, 0.6, allocation="uniform", method="magnitude"
    )
    assert count(pruned, x).flops / count(model, x).flops <= 0.6
    keep = probes[-1].value
    assert probes[-1].budget == "keep" and not probes[-1].predicted
    assert [r.kept for r in reports] == [max(1, round(keep * r.total)) for r in reports]
    wider = {r.chain.producer: max(1, round((keep + 0.02) * r.total)) for r in reports}
    from torchbridge.prune import resize

    assert count(resize(model, chains, wider), x).flops / count(model, x).flops > 0.6
    with pytest.raises(ValueError, match="unknown allocation 'even'"):
        prune_to_flops(model, chains, batches, 0.6, allocation="even")


@pytest.mark.slow
def test_predicted_allocation_prunes_once_to_the_widths_predicted_under_the_target(resnet):
    from torchbridge.budget import predicted_widths
    from torchbridge.prune import resize

    model, chains, batches = resnet
    x = batches[0][:1]
    pruned, reports, probes = prune_to_flops(model, chains, batches, 0.6, allocation="predicted")
    real = [p for p in probes if not p.predicted]
    assert len(real) == 1 and real[0] is probes[-1]
    widths = predicted_widths(model, chains, batches, "greedy-local", seed=0)(real[0].value)
    assert {r.chain.producer: r.kept for r in reports} == widths
    base = count(model, x).flops
    assert real[0].flops == pytest.approx(count(resize(model, chains, widths), x).flops / base)
    assert count(pruned, x).flops / base == pytest.approx(real[0].flops)
    assert real[0].flops <= 0.6
    # the predictions that kept more FLOPs than the chosen one were all over the target
    assert all(p.flops > 0.6 for p in probes[:-1] if p.flops > real[0].flops + 1e-12)


def _with_a_duplicated_layer() -> tuple[torch.nn.Module, torch.Tensor]:
    """A small CNN whose middle chain is cheap to prune: its producer's channels 8-15 repeat
    channels 0-7 (and its consumer reads them alike), so that half of them can go with
    their weight moved onto their twins at no change of its consumer's output."""
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()  # fmt: skip
    with torch.no_grad():
        model[2].weight[8:] = model[2].weight[:8]
        model[2].bias[8:] = model[2].bias[:8]
        model[4].weight[:, 8:] = model[4].weight[:, :8]
    return model, torch.randn(16, 3, 12, 12, generator=torch.Generator().manual_seed(0))


def test_the_marginal_allocation_finds_the_layer_that_is_cheap_to_prune():
    """``allocation="marginal"`` removes channels where the output loss added per FLOP saved
    is least: at a target that half the duplicated chain's channels would meet, it cuts
    that chain the most and leaves the first whole; its FLOPs are at most the target and its
    chosen widths within one channel's FLOPs of it; every layer's loss is below the uniform
    allocation's worst."""
    from torchbridge.budget import LossCurves, flops_fraction, marginal_curves, marginal_widths
    from torchbridge.chains import sequential_chains

    model, x = _with_a_duplicated_layer()
    chains = sequential_chains(model)
    fraction_of = flops_fraction(model, chains, x[:1])
    target = fraction_of({"2": 8})
    batches = [x[:8], x[8:]]
    pruned, reports, probes = prune_to_flops(model, chains, batches, target,
                                             allocation="marginal")  # fmt: skip
    kept = {r.chain.producer: r.kept for r in reports}
    assert kept["0"] == 16 and reports[0].output_rel == 0.0  # left whole, not re-weighted
    assert kept["2"] < kept["4"] <= 16 and kept["2"] <= 9
    assert count(pruned, x[:1]).flops / count(model, x[:1]).flops == pytest.approx(
        probes[-1].flops)  # fmt: skip
    assert probes[-1].flops <= probes[-1].value <= target
    curves = LossCurves(model, chains, batches, "greedy-local", 0)
    chosen = marginal_widths(marginal_curves(model, chains, batches, curves, {}), chains, target,
                             fraction_of)  # fmt: skip
    assert probes[-1].value == fraction_of(chosen)
    wider = [chosen | {p: chosen[p] + 1} for p in chosen if chosen[p] < 16]
    assert min(fraction_of(w) for w in wider) > target  # one channel more is over it
    _, uniform, _ = prune_to_flops(model, chains, batches, target, allocation="uniform")
    assert max(r.output_rel for r in reports) < max(r.output_rel for r in uniform)


def test_loss_curves_by_width_are_where_a_pruning_to_that_width_stops():
    """Entry k of a chain's curve is the relative loss a pruning of that chain alone to k
    channels reports (the first step at k channels); entry N is 0, the chain left whole."""
    from torchbridge.budget import LossCurves
    from torchbridge.chains import sequential_chains

    model, x = _with_a_duplicated_layer()
    chains = sequential_chains(model)
    curve = LossCurves(model, chains, [x], "greedy-local", 0).losses_by_width(0)
    for k in (1, 5, 12):
        _, (report,) = prune_chains(model, chains[:1], [x], widths={"0": k})
        assert curve[k] == pytest.approx(report.output_rel, rel=1e-9)
    assert curve[16] == 0.0 and curve[0] == 1.0


@pytest.mark.slow
def test_widths_budget_keeps_those_channels_and_rejects_bad_widths(resnet):
    model, chains, batches = resnet
    widths = {c.producer: 1 + i for i, c in enumerate(chains)}
    pruned, reports = prune_chains(model, chains, batches, widths=widths)
    assert [pruned.get_submodule(c.producer).out_channels for c in chains] == [
        widths[c.producer] for c in chains
    ]
    assert [r.kept for r in reports] == [widths[c.producer] for c in chains]
    first = chains[0].producer
    total = model.get_submodule(chains[0].consumer).weight.shape[1]
    for bad, message in (
        (widths | {"fc": 3}, "widths name no chain's producer: fc"),
        ({k: v for k, v in widths.items() if k != first}, f"no width for the chains of {first}"),
        (widths | {first: 0}, f"width of {first} must be an integer from 1 to its {total}"),
        (widths | {first: total + 1}, f"got {total + 1}"),
    ):
        with pytest.raises(ValueError, match=message):
            prune_chains(model, chains, batches, widths=bad)
    with pytest.raises(ValueError, match="exactly one budget"):
        prune_chains(model, chains, batches, widths=widths, keep=0.5)


@pytest.mark.slow
def test_predicted_widths_run_lazily_equal_those_of_runs_to_the_lowest_tolerance(resnet):
    """A run stopped at a floor is a prefix of the full run: asked in any order, down to
    1e-8, the lazy prediction gives the widths of selector runs to 1e-8."""
    from theory import select
    from torchbridge.budget import LOWEST, predicted_widths
    from torchbridge.prune import MAX_REPEATS, layer_problems

    model, chains, batches = resnet
    full = []
    for problem in layer_problems(model, chains, batches):
        n, energy = problem.n_neurons, problem.target_norm2
        trace = select(problem, MAX_REPEATS * n, "greedy-local", tol=10.0**LOWEST * energy)
        full.append((trace.losses / energy, trace.support_sizes, n))
    widths = predicted_widths(model, chains, batches, "greedy-local", seed=0)
    for tol in (0.3, 1e-3, 0.05, 1e-8, 2e-6, 0.5):
        expected = {}
        for chain, (losses, sizes, n) in zip(chains, full, strict=True):
            reached = np.flatnonzero(losses <= tol)
            expected[chain.producer] = int(sizes[reached[0]]) if reached.size else n
        assert widths(tol) == expected
    assert len(set(map(str, (widths(t) for t in (0.3, 1e-3, 1e-8))))) == 3  # not all equal


@pytest.mark.slow
def test_predicted_widths_are_the_first_chain_widths_of_a_real_run(resnet):
    """The first chain sees the unpruned network in both: its predicted width is exact."""
    from torchbridge.budget import predicted_widths

    model, chains, batches = resnet
    widths = predicted_widths(model, chains, batches, "greedy-local", seed=0)
    for tol in (0.3, 0.05):
        _, reports = prune_chains(model, chains, batches, tol=tol)
        assert widths(tol)[chains[0].producer] == reports[0].kept


def test_a_flops_target_below_the_floor_is_a_clear_error(resnet):
    model, chains, batches = resnet
    with pytest.raises(ValueError, match=r"FLOPs target of 0\.010 cannot be met.*one channel"):
        prune_to_flops(model, chains, batches, 0.01)
    with pytest.raises(ValueError, match=r"must be a fraction in \(0, 1\]"):
        prune_to_flops(model, chains, batches, 1.5)


@pytest.mark.slow
def test_saved_pruned_model_reloads_without_pickled_code(resnet, tmp_path):
    model, chains, batches = resnet
    pruned, _ = prune_chains(model, chains, batches, keep=0.3)
    path = tmp_path / "pruned.pt"
    save_pruned(path, "resnet18", pruned, chains)
    raw = torch.load(path, weights_only=True)  # plain tensors, ints and strings only
    assert raw["arch"] == "resnet18" and set(raw["widths"]) == {c.producer for c in chains}
    again = load_pruned(path)
    assert isinstance(again, torch.nn.Module) and not again.training
    found = pruned_metadata(path)
    assert found["arch"] == "resnet18" and found["widths"] == raw["widths"]
    with torch.no_grad():
        assert torch.allclose(again(batches[0]), pruned(batches[0]), atol=1e-6)
    with pytest.raises(ValueError, match="pruned model not found"):
        load_pruned(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not a pruned model saved by logtickets"):
        load_pruned(tmp_path / "other.pt")


@pytest.mark.slow
def test_a_compensated_model_reloads_with_its_new_biases(resnet, tmp_path):
    model, chains, batches = resnet
    pruned, _ = prune_chains(model, chains, batches, keep=0.5, compensate=True)
    assert pruned.get_submodule(chains[0].consumer).bias is not None  # conv2 had none
    save_pruned(tmp_path / "pruned.pt", "resnet18", pruned, chains)
    again = load_pruned(tmp_path / "pruned.pt")
    with torch.no_grad():
        assert torch.allclose(again(batches[0]), pruned(batches[0]), atol=1e-6)


def test_weights_errors_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=r"put resnet18-f37072fd\.pth into .*checkpoints"):
        load("resnet18", "torchvision")
    with pytest.raises(ValueError, match="weights file not found"):
        load("resnet18", str(tmp_path / "nothing.pth"))
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match=r"does not hold resnet18 weights: \d+ tensors missing"):
        load("resnet18", str(tmp_path / "wrong.pth"))
    torch.save(build("mobilenet_v2").state_dict(), tmp_path / "mobilenet.pth")
    with pytest.raises(ValueError, match=r"resnet18 weights: \d+ tensors missing, \d+ unexp"):
        load("resnet18", str(tmp_path / "mobilenet.pth"))
    (tmp_path / "text.pth").write_text("not a tensor file")
    with pytest.raises(ValueError, match=r"text\.pth cannot be read as resnet18 weights \("):
        load("resnet18", str(tmp_path / "text.pth"))
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list\.pth is not a state dict of tensors"):
        load("resnet18", str(tmp_path / "list.pth"))
    with pytest.raises(ValueError, match="unknown architecture 'resnet19'"):
        build("resnet19")
    with pytest.raises(ValueError, match="torchvision has no weights for timm:resnet18"):
        load("timm:resnet18", "torchvision")
    with pytest.raises(ValueError, match="package holds EfficientNet-Lite0 weights only"):
        load("resnet18", "package")


@pytest.mark.slow
def test_prune_and_eval_commands_end_to_end(tmp_path, capsys):
    from torchbridge.__main__ import main

    data = image_folder(tmp_path / "data")
    out = tmp_path / "run"
    args = ["--arch", "mobilenet_v2", "--weights", "none", "--data", str(data), "--size", "48",
            "--images", "6", "--test-images", "4", "--batch", "3", "--flops", "0.8",
            "--out", str(out)]  # fmt: skip
    assert main(["prune", *args]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["flops"] == 0.8 and report["config"]["seed"] == 0
    assert report["config"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert {"numpy", "torch"} <= set(report["versions"])
    assert len(report["layers"]) == 16 and report["flops_search"]
    for layer in report["layers"]:
        assert len(layer["channels"]) == layer["kept"] and layer["stopped"] in STOPPED.values()
    assert "commit" in report and "dirty" in report and report["machine"]["cpus"] >= 1
    assert report["ratios"]["flops"] <= 0.8
    assert report["after"]["flops"] < report["before"]["flops"]
    # two folders are not the network's 1,000 classes: no accuracy against folder indices
    assert "accuracy" not in report["after"] and report["after"]["images"] == 4
    assert "agreement" in printed and "pruned.pt" in printed
    assert main(["eval", "--model", str(out / "pruned.pt"), "--data", str(data),
                 "--size", "48", "--images", "6", "--test-images", "4"]) == 0  # fmt: skip
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["flops"] == report["after"]["flops"]
    assert evaluated["params"] == report["after"]["params"]


@pytest.mark.slow
def test_widths_budget_reuses_the_kept_counts_of_another_run(tmp_path, capsys):
    """--widths: a kept-channel count per chain, from a JSON mapping or from another run's
    report.json, the same for our selectors and for Torch-Pruning's; wrong files are named."""
    from torchbridge.__main__ import main

    small = ["--arch", "resnet18", "--weights", "none", "--size", "32", "--images", "4"]
    assert main(["prune", *small, "--tol", "0.3", "--out", str(tmp_path / "tol")]) == 0
    first = json.loads((tmp_path / "tol" / "report.json").read_text())
    kept = {layer["chain"]["producer"]: layer["kept"] for layer in first["layers"]}
    assert len(set(kept.values())) > 1  # a tolerance gives chains different widths
    for method, source in (("magnitude", "report"), ("tp-l1", "mapping")):
        widths = tmp_path / "tol" / "report.json"
        if source == "mapping":
            widths = tmp_path / "widths.json"
            widths.write_text(json.dumps(kept))
        out = tmp_path / method
        argv = ["prune", *small, "--method", method, "--widths", str(widths), "--out", str(out)]
        assert main(argv) == 0
        report = json.loads((out / "report.json").read_text())
        assert {layer["chain"]["producer"]: layer["kept"] for layer in report["layers"]} == kept
        assert report["config"]["widths"] == str(widths)
    capsys.readouterr()
    for content, message in (
        ({"layer1.0.conv1": 3}, "widths give no width for the chains of layer1.1.conv1"),
        (kept | {"fc": 3}, "widths name no chain's producer: fc"),
        (kept | {"layer1.0.conv1": 0}, "layer1.0.conv1"),
        ([1, 2], "must map chain producers to channel counts"),
    ):
        (tmp_path / "bad.json").write_text(json.dumps(content))
        argv = ["prune", *small, "--widths", str(tmp_path / "bad.json"), "--out", str(tmp_path)]
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert main(["prune", *small, "--widths", str(tmp_path / "none.json"), "--out", "x"]) == 2
    assert "--widths file not found" in capsys.readouterr().err
    assert main(["prune", *small, "--keep", "0.5", "--widths", str(widths), "--out", "x"]) == 2
    assert "exactly one budget" in capsys.readouterr().err


@pytest.mark.slow
def test_damaged_inputs_are_named_before_any_work(tmp_path, capsys, monkeypatch):
    """Files that are not what a command needs give one line naming the file and the fault:
    an --out that is a file, an image that is not one, a hand-edited or foreign pruned.pt,
    a damaged cache; and eval checks its numbers; the studies' flags refuse as well."""
    from experiments.__main__ import main as experiments
    from torchbridge.__main__ import main
    from torchbridge.mnist import trained

    def error(argv: list[str]) -> str:
        assert main(argv) == 2
        return capsys.readouterr().err

    text = tmp_path / "text.txt"
    text.write_text("not a folder, not a model")
    small = ["--weights", "none", "--size", "32", "--images", "2", "--test-images", "2"]
    argv = ["prune", "--arch", "resnet18", *small, "--keep", "0.5", "--out"]
    assert f"--out {text}: {text} is a file, not a folder" in error([*argv, str(text)])
    assert f"{text} is a file, not a folder" in error([*argv, str(text / "run")])
    data = image_folder(tmp_path / "data", per_class=2)
    (data / "class0" / "9.png").write_text("not an image")
    out = tmp_path / "out"
    message = error([*argv, str(out), "--data", str(data), "--images", "3"])
    assert f"cannot read the image {data / 'class0' / '9.png'}" in message
    assert main([*argv, str(out)]) == 0
    model = torch.load(out / "pruned.pt", weights_only=True)
    for name, change in {"no-state": {"state_dict": None}, "other-arch": {"arch": "mobilenet_v2"},
                         "list-widths": {"widths": [1, 2]}}.items():  # fmt: skip
        torch.save(model | change, tmp_path / f"{name}.pt")
        message = error(["eval", "--model", str(tmp_path / f"{name}.pt"), "--size", "32"])
        expected = "does not hold a pruned mobilenet_v2" if name == "other-arch" else "is damaged"
        assert expected in message and f"{name}.pt" in message
    for flag in ("--images", "--test-images", "--batch", "--size"):
        assert ">= 1" in error(["eval", "--model", str(out / "pruned.pt"), flag, "0"])
    assert "--seed must be >= 0" in error([*argv, str(out), "--seed", "-1"])
    with pytest.raises(SystemExit):  # argparse: a value outside the choices
        experiments(["config", "effnet-path", "--methods", "tp-magnitude"])
    assert "invalid choice: 'tp-magnitude'" in capsys.readouterr().err
    assert experiments(["config", "mnist-folding", "--seeds", "0"]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err
    argv = ["config", "mnist-compare", "--keep", "0.5", "--methods", "magnitude", "random",
            "magnitude"]  # fmt: skip
    assert experiments(argv) == 2
    assert "method(s) listed twice: magnitude" in capsys.readouterr().err
    monkeypatch.setenv("LOGTICKETS_CACHE", str(tmp_path / "cache"))
    trained("cnn", 0, epochs=0)  # an untrained network, cached
    (cached,) = (tmp_path / "cache").glob("mnist-cnn-*.pt")
    cached.write_bytes(b"torn")
    with pytest.raises(ValueError, match=f"{cached} cannot be read as a cached cnn .delete it"):
        trained("cnn", 0, epochs=0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--keep", "0.5", "--tol", "0.1"], "exactly one budget"),
        (["--keep", "0.5", "--data", "/no/such/folder"], "data folder not found: /no/such/folder"),
        (["--keep", "0.5", "--method", "best"], "--method: invalid choice: 'best'"),
        (["--keep", "0.5", "--arch", "resnet19"], "unknown architecture 'resnet19'; valid: a"),
        (["--keep", "0.5", "--arch", "timm:nonet"], "unknown timm model 'nonet'"),
        (["--flops", "0.01"], "cannot be met"),
        (["--flops", "0.5", "--allocation", "even"], "--allocation: invalid choice: 'even'"),
    ],
)
def test_prune_command_errors_are_clear(tmp_path, capsys, extra, message):
    from torchbridge.__main__ import main

    base = ["--arch", "resnet18", "--weights", "none", "--size", "32", "--images", "4",
            "--out", str(tmp_path)]  # fmt: skip
    flags = dict(zip(base[::2], base[1::2], strict=True))
    flags |= dict(zip(extra[::2], extra[1::2], strict=True))
    argv = [item for pair in flags.items() for item in pair]
    try:
        code = main(["prune", *argv])
    except SystemExit as refused:  # a value outside a flag's choices: the parser's exit
        code = refused.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "pruned.pt").exists()


@pytest.mark.slow
def test_global_method_through_the_command_line(tmp_path, capsys):
    from torchbridge.__main__ import main

    out = tmp_path / "run"
    argv = ["prune", "--arch", "resnet18", "--weights", "none", "--size", "32", "--images", "8",
            "--method", "taylor", "--candidates", "3", "--oracle-images", "4", "--keep", "0.1",
            "--compensate", "--no-repeats", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["method"] == "taylor" and report["config"]["compensate"] is True
    assert report["config"]["no_repeats"] is True
    assert all(layer["kept"] == round(0.1 * layer["total"]) for layer in report["layers"])
    assert np.isfinite(report["after"]["kl"])
    tp_argv = [*argv[:9], "--method", "tp-l1", "--keep", "0.5", "--compensate", "--out", str(out)]
    assert main(tp_argv) == 2
    refused = "--compensate is for methods that keep the consumer's folded weights"
    assert refused in capsys.readouterr().err
    local_argv = [*argv[:9], "--method", "omp", "--keep", "0.5", "--no-repeats", "--out", str(out)]
    assert main(local_argv) == 2
    err = capsys.readouterr().err
    assert "--no-repeats is for methods that may pick a channel again (greedy-local," in err
    assert err.rstrip().endswith("not omp")


@pytest.mark.slow
def test_device_benchmark_rows_on_the_cpu_time_every_task_against_the_forward_passes():
    """The rows the GPU benchmark records, here on the CPU (no speed-up row without a
    device): every task at or under its FLOPs target, timed, and no quality figures for a
    network with random weights."""
    from torchbridge.device_bench import device_rows

    row = device_rows("mobilenet_v3_small", "cpu", 8, batch=4, size=64, flops=0.8)
    assert row["chains"] == 10 and row["images"] == 8 and row["flops_target"] == 0.8
    assert {"gram_pass_over_forward", "keep_half_over_forward"} <= set(row)
    for task in ("greedy-local-predicted", "tp-magnitude", "tp-taylor"):
        timing = row[task]
        assert timing["over_forward"] == pytest.approx(timing["seconds"] / row["forward_s"])
        assert "agreement" not in timing and "kl" not in timing  # random weights: no quality
        assert 0.0 < timing["flops"] <= 0.8
    assert "device_speedup" not in row


@pytest.mark.parametrize(
    "arch", ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_lite0",
             "cnn"],
)  # fmt: skip
def test_flops_fraction_equals_the_count_of_a_resized_copy(arch):
    """The FLOPs fraction from one count and the widths (each layer scaled by k/N of every
    chain it touches: Bottleneck middles by two chains, squeeze-excitation layers, depthwise
    convolutions) equals torch's count of the copy resized to those widths, exactly."""
    from torchbridge.budget import flops_fraction
    from torchbridge.chains import chain_widths, sequential_chains
    from torchbridge.mnist import small_cnn
    from torchbridge.prune import resize

    if arch == "efficientnet_lite0":
        pytest.importorskip("timm")
    model = small_cnn().eval() if arch == "cnn" else build(arch, num_classes=10)
    chains = sequential_chains(model) if arch == "cnn" else block_chains(model)
    x = torch.zeros(1, 1, 28, 28) if arch == "cnn" else torch.zeros(1, 3, 64, 64)
    fraction_of = flops_fraction(model, chains, x)
    base = count(model, x).flops
    rng = np.random.default_rng(0)
    totals = chain_widths(model, chains)
    for _ in range(3):
        widths = {name: int(rng.integers(1, n + 1)) for name, n in totals.items()}
        assert fraction_of(widths) == count(resize(model, chains, widths), x).flops / base
    assert fraction_of({}) == 1.0  # a chain left out keeps its channels
    name, n = next(iter(totals.items()))
    for bad, message in (({name: 0}, "is not in"), ({name: n + 1}, "is not in"),
                         ({"nowhere": 1}, "name no chain")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            fraction_of(bad)


def test_only_the_cpu_and_present_cuda_devices_are_accepted():
    from torchbridge.job import check_device

    check_device("cpu")
    for device in ("meta", "mps", "gpu", "cuda:x"):
        with pytest.raises(ValueError, match="is not a device here"):
            check_device(device)
    message = "CUDA device" if torch.cuda.is_available() else "CUDA is not available here"
    with pytest.raises(ValueError, match=message):
        check_device(f"cuda:{torch.cuda.device_count() + 7}")


@pytest.mark.slow
def test_resolve_through_the_command_line(tmp_path, capsys):
    """``--resolve`` is recorded, lowers the first chain's loss (the same inputs with or
    without it), and is refused for weights off the simplex and for Torch-Pruning."""
    from torchbridge.__main__ import main

    base = ["prune", "--arch", "resnet18", "--weights", "none", "--size", "32", "--images", "8",
            "--keep", "0.5"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, "--resolve", "--out", str(tmp_path / "resolved")]) == 0
    plain, resolved = (
        json.loads((tmp_path / name / "report.json").read_text()) for name in ("plain", "resolved")
    )
    assert plain["config"]["resolve"] is False and resolved["config"]["resolve"] is True
    first, first_plain = resolved["layers"][0], plain["layers"][0]
    assert first["kept"] <= first_plain["kept"]
    assert first["loss"] < first_plain["loss"]
    for method, message in (
        ("omp", "--resolve is for methods that keep convex weights"),
        ("tp-l1", "--resolve is for methods that keep convex weights"),
    ):
        argv = [*base, "--method", method, "--resolve", "--out", str(tmp_path / method)]
        assert main(argv) == 2
        assert message in capsys.readouterr().err
