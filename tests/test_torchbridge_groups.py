"""Chains of any CNN from Torch-Pruning's dependency graph (:mod:`torchbridge.groups`): the
same chains as the hand-written finders where those exist, every chain of torchvision's
EfficientNet-B0 (squeeze-excitation inside), the groups kept whole with their reasons, and
surgery on every chain at once equal to the masked computation in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("torch_pruning")
torchvision = pytest.importorskip("torchvision")

from masked_reference import masked_and_pruned  # noqa: E402

from theory import LayerProblem  # noqa: E402
from torchbridge.chain_check import module_inputs  # noqa: E402
from torchbridge.chains import Chain, Group, block_chains  # noqa: E402
from torchbridge.groups import graph_chains, graph_groups  # noqa: E402
from torchbridge.models import found_chains  # noqa: E402
from torchbridge.prune import layer_problems  # noqa: E402
from torchbridge.surgery import is_squeeze_excitation  # noqa: E402


def _effnet_b0_chains() -> list[Chain]:
    """EfficientNet-B0's single-producer chains, read off torchvision's block structure: the
    stem into the first block's projection (through its depthwise convolution and
    squeeze-excitation); each expanding block's expansion into its projection; the
    projections of the two one-block stages (no residual: the stream has one producer) into
    the next convolution; the head convolution into the classifier."""

    def inner(b: str) -> tuple[str, ...]:  # depthwise conv, its norm, squeeze-excitation
        return (f"{b}.block.0.1", f"{b}.block.1.0", f"{b}.block.1.1", f"{b}.block.2")

    blocks = [f"features.{s}.{k}" for s, count in enumerate((1, 2, 2, 3, 3, 4, 1), 1)
              for k in range(count)]  # fmt: skip
    stem = Chain("features.0.0", ("features.0.1", "features.1.0.block.0.0",
                                  "features.1.0.block.0.1", "features.1.0.block.1"),
                 "features.1.0.block.2.0")  # fmt: skip
    chains = [stem, Chain("features.1.0.block.2.0", ("features.1.0.block.2.1",),
                          "features.2.0.block.0.0")]  # fmt: skip
    chains += [Chain(f"{b}.block.0.0", inner(b), f"{b}.block.3.0") for b in blocks[1:]]
    chains += [Chain("features.7.0.block.3.0", ("features.7.0.block.3.1",), "features.8.0"),
               Chain("features.8.0", ("features.8.1",), "classifier.1")]  # fmt: skip
    return chains


def test_resnet18_groups_are_its_block_chains_and_its_residual_streams_stay_whole():
    model = torchvision.models.resnet18(num_classes=10).eval()
    found = graph_chains(model, torch.randn(1, 3, 64, 64))
    assert found.chains == block_chains(model)
    # the stem and every stage's stream: each block's last convolution (and the downsample)
    # adds into it
    assert list(found.kept_whole) == ["conv1", "layer2.0.conv2", "layer3.0.conv2",
                                      "layer4.0.conv2"]  # fmt: skip
    assert found.kept_whole["conv1"].startswith(
        "3 producers add into it (conv1, layer1.0.conv2, layer1.1.conv2)"
    )
    assert "layer2.0.downsample.0" in found.kept_whole["layer2.0.conv2"]


def test_efficientnet_b0_chains_with_squeeze_excitation_inside():
    model = torchvision.models.efficientnet_b0(num_classes=10).eval()
    found = graph_chains(model, torch.randn(1, 3, 64, 64))
    assert found.chains == _effnet_b0_chains()
    assert all(is_squeeze_excitation(model.get_submodule(c.between[-1]))
               for c in found.chains if c.between[-1].endswith("block.2"))  # fmt: skip
    streams = [f"features.{s}.0.block.3.0" for s in (2, 3, 4, 5, 6)]
    assert list(found.kept_whole) == streams
    assert all("producers add into it" in found.kept_whole[s] for s in streams)


class _Branches(nn.Module):
    """Two branches concatenated, then one output read by two convolutions that add."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3), nn.Conv2d(3, 8, 3)
        self.c, self.d, self.e = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 5, 1), nn.Conv2d(4, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c(torch.cat([self.a(x), self.b(x)], dim=1))
        return self.d(y) + self.e(y)


def test_groups_that_are_not_one_chain_are_kept_whole_with_the_reason():
    found = graph_chains(_Branches().eval(), torch.randn(1, 3, 8, 8))
    assert found.chains == []
    assert found.kept_whole == {
        "a": "a concatenation", "b": "a concatenation", "c": "2 consumers (d, e)",
        "d": "the network's output; no layer reads them",
    }  # fmt: skip


def test_a_graph_torch_pruning_cannot_build_is_named():
    model = torchvision.models.shufflenet_v2_x0_5().eval()
    with pytest.raises(ValueError, match="cannot build the dependency graph of ShuffleNetV2"):
        graph_chains(model, torch.randn(1, 3, 64, 64))


def _build(arch: str) -> nn.Module:
    """A torchvision network, or timm's (``timm:NAME``), random, 10 classes, float64."""
    if arch.startswith("timm:"):
        timm = pytest.importorskip("timm")
        model = timm.create_model(arch.removeprefix("timm:"), pretrained=False, num_classes=10)
    else:
        model = getattr(torchvision.models, arch)(num_classes=10)
    return model.double().eval()


@pytest.mark.parametrize("finder", ["chains", "groups"])
@pytest.mark.parametrize(
    "arch",
    [
        "resnet18",
        "resnet50",
        "mobilenet_v2",
        "efficientnet_b0",
        "timm:efficientnet_b0",
        "timm:mobilenetv3_small_050",
        "timm:tf_efficientnet_lite0",
        "shufflenet_v2_x0_5",
    ],
)
def test_every_graph_chain_or_group_pruned_at_once_equals_the_masked_computation(arch, finder):
    """Every chain (or every group: residual streams included) keeps a random subset of its
    channels with convex weights a: the pruned network equals the original whose consumers
    see their inputs scaled by N a_i (and whose squeezes see the dropped channels at 0), in
    float64. On EfficientNet-B0 a one-block stage's projection is one chain's consumer and the
    next chain's producer; on ResNet-18 a downsample convolution reads one stream and writes
    the next; timm's squeeze-excitation blocks (conv_reduce, conv_expand) are sliced like
    torchvision's (fc1, fc2)."""
    torch.manual_seed(0)
    model = _build(arch)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    if arch.startswith("shufflenet"):  # no dependency graph: the chains inside Sequentials
        found = found_chains(model, arch).chains
    elif finder == "chains":
        found = graph_chains(model, x[:1]).chains
    else:
        found = graph_groups(model, x[:1]).groups
    squeezes = [
        b for g in found for b in g.between if is_squeeze_excitation(model.get_submodule(b))
    ]
    plain = ("resnet18", "resnet50", "mobilenet_v2", "timm:tf_efficientnet_lite0", "shufflenet")
    assert bool(squeezes) == (not arch.startswith(plain))  # the others have squeeze-excitation
    if arch.endswith("efficientnet_b0"):  # timm's and torchvision's: the same network
        assert len(found) == (19 if finder == "chains" else 24)
    unmasked, masked, pruned = masked_and_pruned(model, found, x)
    assert not torch.allclose(unmasked, masked)  # the masks do change the output
    with torch.no_grad():
        assert torch.allclose(pruned(x), masked, rtol=1e-10, atol=1e-10 * masked.abs().max())


def test_resnet18_groups_are_its_chains_and_its_four_residual_streams():
    model = torchvision.models.resnet18(num_classes=10).eval()
    found = graph_groups(model, torch.randn(1, 3, 64, 64))
    assert found.kept_whole == {}
    chains = [Group(c.producers, c.between, c.consumers) for c in block_chains(model)]
    streams = [g for g in found.groups if g not in chains]
    assert [g for g in found.groups if g in chains] == chains
    assert streams[0] == Group(
        ("conv1", "layer1.0.conv2", "layer1.1.conv2"),
        ("bn1", "layer1.0.bn2", "layer1.1.bn2"),
        ("layer1.0.conv1", "layer1.1.conv1", "layer2.0.conv1", "layer2.0.downsample.0"),
    )
    assert streams[1].producers == ("layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv2")
    assert streams[3].consumers == ("layer4.1.conv1", "fc")  # the last stream: and the classifier
    assert len(streams) == 4


class _Stream(nn.Module):
    """A residual stream of 6 channels: a stem and one block add into it; the block's first
    convolution (3x3), a strided 1x1 and a linear layer after pooling read it."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.norm = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.inner, self.out = nn.Conv2d(6, 4, 3, padding=1), nn.Conv2d(4, 6, 1)
        self.down, self.fc = nn.Conv2d(6, 5, 1, stride=2), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.norm(self.stem(x)))
        s = s + self.out(torch.relu(self.inner(s)))
        pooled = s.mean(dim=(2, 3))
        return self.fc(pooled) + self.down(s).mean(dim=(1, 2, 3))[:, None]


def test_a_groups_layer_problem_is_the_one_of_every_consumers_output_concatenated():
    """psi_i of a group stacks channel i's contribution to each consumer's output (as the
    theory's layer problem over their concatenation): the Gram matrix from the activations
    equals that of the explicit psi, in float64."""
    from psi_reference import explicit_psi

    torch.manual_seed(2)
    model = _Stream().double().eval()
    model.norm.running_mean.uniform_(-0.5, 0.5)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    (group,) = [g for g in graph_groups(model, x[:1]).groups if len(g.producers) == 2]
    assert group == Group(("stem", "out"), ("norm",), ("inner", "down", "fc"))
    (problem,) = layer_problems(model, [group], [x[:2], x[2:]])
    inputs = module_inputs(model, list(group.consumers), x)
    psi = np.concatenate([explicit_psi(model.get_submodule(name), inputs[name])
                          for name in group.consumers], axis=2)  # fmt: skip
    reference = LayerProblem.from_features(psi).gram
    assert np.allclose(problem.gram, reference, rtol=1e-10, atol=1e-10 * np.abs(reference).max())


@pytest.mark.parametrize(
    ("arch", "chains", "whole"),
    [("efficientnet_b0", 19, 5), ("timm:efficientnet_b0", 19, 5), ("shufflenet_v2_x0_5", 16, 21)],
)
def test_prune_and_eval_a_network_the_block_finder_does_not_know(
    tmp_path, capsys, arch, chains, whole
):
    """``prune --arch NAME``: the chains from the dependency graph (or, for ShuffleNetV2, from
    its Sequentials), each at half its channels, the groups kept whole in the report; ``eval``
    rebuilds the saved model from the same chains and counts the same FLOPs and parameters."""
    import json

    from torchbridge.__main__ import main

    out = tmp_path / "run"
    small = ["--weights", "none", "--size", "64", "--images", "4", "--test-images", "2"]
    assert main(["prune", "--arch", arch, *small, "--keep", "0.5", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    found = [Chain(**{k: tuple(v) if k == "between" else v for k, v in layer["chain"].items()})
             for layer in report["layers"]]  # fmt: skip
    assert len(found) == chains and len(report["kept_whole"]) == whole
    if arch == "efficientnet_b0":
        assert found == _effnet_b0_chains()
        streams = [f"features.{s}.0.block.3.0" for s in (2, 3, 4, 5, 6)]
        assert list(report["kept_whole"]) == streams
    assert all(layer["kept"] == round(layer["total"] / 2) for layer in report["layers"])
    assert report["after"]["flops"] < report["before"]["flops"]
    capsys.readouterr()
    assert main(["eval", "--model", str(out / "pruned.pt"), *small]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert (evaluated["flops"], evaluated["params"]) == (
        report["after"]["flops"], report["after"]["params"])  # fmt: skip


def test_a_network_without_any_chain_is_named():
    from torchbridge.models import build, chains_of

    with pytest.raises(ValueError, match=r"vit_b_16: none of its \d+ channel groups is one chain"):
        chains_of(build("vit_b_16", num_classes=10), "vit_b_16")


def test_every_chain_is_checked_against_the_network_and_a_chain_across_a_shuffle_is_refused():
    """The chains of the finders pass (squeeze-excitation included); a hand-written chain from
    one ShuffleNetV2 unit's last convolution to the next unit's first, across the channel
    shuffle and split, is refused by the check and by prune_chains, naming the channels that
    moved."""
    from torchbridge.chain_check import check_chains
    from torchbridge.prune import prune_chains

    x = torch.randn(2, 3, 64, 64)
    for arch in ("resnet18", "mobilenet_v3_small", "efficientnet_b0"):
        model = getattr(torchvision.models, arch)(num_classes=10).eval()
        check_chains(model, graph_chains(model, x[:1]).chains, x)
    model = torchvision.models.shufflenet_v2_x0_5().eval()
    across = Chain("stage2.0.branch2.5", ("stage2.0.branch2.6",), "stage2.1.branch2.0")
    message = r"chain stage2\.0\.branch2\.5 -> stage2\.1\.branch2\.0 is not channel-wise"
    with pytest.raises(ValueError, match=message + ": perturbing producer channels moved"):
        check_chains(model, [across], x)
    with pytest.raises(ValueError, match=message):
        prune_chains(model, [across], [x], keep=0.5)
    inside = Chain("stage2.1.branch2.0", ("stage2.1.branch2.1", "stage2.1.branch2.3",
                                          "stage2.1.branch2.4"), "stage2.1.branch2.5")  # fmt: skip
    check_chains(model, [inside], x)


def test_a_chain_whose_ends_do_not_match_is_named():
    from torchbridge.chain_check import check_chain

    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 6, 1), nn.Conv2d(6, 2, 1)).eval()
    with pytest.raises(ValueError, match="the consumer reads 6 channels, the producer writes 4"):
        check_chain(model, Chain("0", (), "2"), torch.randn(1, 3, 4, 4))


def test_shufflenet_falls_back_to_the_chains_inside_its_units():
    """Torch-Pruning cannot trace ShuffleNetV2; the chains proved from its Sequentials are the
    second branch's first convolution into its last, in each of the 16 units; the other
    convolutions are kept whole with the reason."""
    model = torchvision.models.shufflenet_v2_x0_5(num_classes=10).eval()
    found = found_chains(model, "shufflenet_v2_x0_5")
    units = [f"stage{s}.{k}" for s, count in ((2, 4), (3, 8), (4, 4)) for k in range(count)]
    assert found.chains == [
        Chain(f"{u}.branch2.0", (f"{u}.branch2.1", f"{u}.branch2.3", f"{u}.branch2.4"),
              f"{u}.branch2.5") for u in units]  # fmt: skip
    assert "stage2.0.branch2.5" in found.kept_whole and "conv5.0" in found.kept_whole
    graph = "Torch-Pruning cannot build the dependency graph of ShuffleNetV2"
    assert all(reason.startswith(graph) for reason in found.kept_whole.values())


def test_a_residual_stream_pruned_reports_the_loss_measured_on_its_consumers():
    """prune_chains on ResNet-18's first residual stream alone (stem and two blocks write it,
    four convolutions read it): the reported loss equals a fresh measurement, the squared
    change of every consumer's output (pruned consumer on the kept channels of its original
    input, against the unpruned consumer), summed over consumers and averaged over images, in
    float64; every producer keeps the same channels."""
    from torchbridge.prune import prune_chains

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).double().eval()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    (stream, *_) = [g for g in graph_groups(model, x[:1]).groups if len(g.producers) > 1]
    pruned, (report,) = prune_chains(model, [stream], [x[:2], x[2:]], keep=0.5)
    kept = torch.as_tensor(report.channels)
    assert report.kept == len(kept) == 32 and report.total == 64
    for name in stream.producers:
        assert pruned.get_submodule(name).out_channels == 32
    inputs = module_inputs(model, list(stream.consumers), x)
    with torch.no_grad():
        fresh = sum(
            ((pruned.get_submodule(name)(inputs[name][:, kept])
              - model.get_submodule(name)(inputs[name])) ** 2).sum()
            for name in stream.consumers
        ) / len(x)  # fmt: skip
    assert report.loss == pytest.approx(float(fresh), rel=1e-9)
    assert 0 < report.output_rel < 1


def test_groups_take_the_layer_selectors_only():
    from torchbridge.prune import prune_chains

    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    groups = graph_groups(model, x[:1]).groups
    for method in ("global-imitation", "whole-output"):
        with pytest.raises(ValueError, match=r"channel groups \(conv1, \.\.\.\) are pruned by"):
            prune_chains(model, groups, [x], keep=0.5, method=method)


def _first_stream(model: nn.Module, x: torch.Tensor) -> Group:
    return next(g for g in graph_groups(model, x[:1]).groups if len(g.producers) > 1)


def test_a_residual_stream_refit_fits_every_consumer_at_least_as_well_as_the_selector():
    """``refit`` on ResNet-18's first residual stream (four consumers): the reported error is
    a fresh float64 measurement of every consumer's refit output against the unpruned one,
    all residuals over all energies, and with no ridge it is at most the selector's (whose
    folded weights are one candidate of the least squares); every consumer gets a bias."""
    from torchbridge.prune import prune_chains

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).double().eval()
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    stream = _first_stream(model, x)
    pruned, (report,) = prune_chains(model, [stream], [x[:3], x[3:]], keep=0.5, refit=True,
                                     ridge=0.0)  # fmt: skip
    ours = module_inputs(pruned, list(stream.consumers), x)
    theirs = module_inputs(model, list(stream.consumers), x)
    residual, energy = 0.0, 0.0
    with torch.no_grad():
        for name in stream.consumers:
            target = model.get_submodule(name)(theirs[name])  # ResNet's convolutions: no bias
            residual += float(((pruned.get_submodule(name)(ours[name]) - target) ** 2).sum())
            energy += float((target**2).sum())
            assert pruned.get_submodule(name).bias is not None
    assert report.refit_rel == pytest.approx(residual / energy, rel=1e-8)
    assert report.refit_rel <= report.output_rel * (1 + 1e-9)
    assert report.refit_rel < 0.9 * report.output_rel  # the refit does lower the error


def test_compensated_groups_move_no_consumer_output_on_average():
    """``compensate`` on a residual stream: every consumer's bias absorbs the mean change of
    its output over the calibration images, as the group's layer problem defines it (the
    consumer on its unpruned input's kept channels), which without it moves; on the pruned
    network, the first consumer (whose input no pruned block has changed) is exactly so."""
    from torchbridge.prune import prune_chains

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).double().eval()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    stream = _first_stream(model, x)
    theirs = module_inputs(model, list(stream.consumers), x)

    def mean(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(h).mean(dim=(0, 2, 3))

    gaps, first = {}, stream.consumers[0]
    for compensate in (False, True):
        pruned, (report,) = prune_chains(model, [stream], [x[:2], x[2:]], keep=0.25,
                                         compensate=compensate)  # fmt: skip
        kept = torch.as_tensor(report.channels)
        gaps[compensate] = max(
            float((mean(pruned.get_submodule(n), theirs[n][:, kept])
                   - mean(model.get_submodule(n), theirs[n])).abs().max())
            for n in stream.consumers
        )  # fmt: skip
        ours = module_inputs(pruned, [first], x)[first]
        assert torch.equal(ours, theirs[first][:, kept])
    assert gaps[True] < 1e-9 < 1e-3 < gaps[False]


@pytest.mark.slow
def test_groups_are_walked_as_the_network_run_per_group_and_refit_after_their_producers():
    """Every group of ResNet-18 (its chains and four residual streams) pruned with ``refit``:
    walked, the stem runs only in the first stream's reads (the stream starts at it) and once
    per walk, instead of in every group's reads, and the channels, weights and errors are
    those of a full forward pass per group. A chain whose consumer is a stream's producer
    already pruned (layer1.0.conv2) is refit to the unpruned output on the channels the
    stream kept: its reported error is a fresh measurement on the pruned network."""
    from torchbridge.prune import prune_chains

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).double().eval()
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    groups = graph_groups(model, x[:1]).groups
    calls = []
    model.conv1.register_forward_pre_hook(lambda *_: calls.append(1))
    runs, counted = {}, {}
    for walk in (True, False):
        calls.clear()
        runs[walk] = prune_chains(model, groups, [x[:3], x[3:]], keep=0.5, refit=True,
                                  walk_graph=walk, check=False)  # fmt: skip
        counted[walk] = len(calls)
    # walked, per batch: the stem runs in the first stream's reads (its Gram matrix, then
    # each of its 4 consumers' refit, pruned copy and reference) and once in each walk
    assert counted[True] == 2 * (1 + 2 * 4 + 2)
    assert counted[False] >= 2 * 3 * len(groups)
    (walked, walked_reports), (full, full_reports) = runs[True], runs[False]
    assert [r.channels for r in walked_reports] == [r.channels for r in full_reports]
    assert [r.refit_rel for r in walked_reports] == pytest.approx(
        [r.refit_rel for r in full_reports], rel=1e-9)  # fmt: skip
    for (key, a), b in zip(walked.state_dict().items(), full.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), key
    name = "layer1.0.conv2"
    (stream_report,) = [r for r in walked_reports if name in r.chain.producers]
    (chain_report,) = [r for r in walked_reports if r.chain.consumers == (name,)]
    kept = torch.as_tensor(stream_report.channels)
    with torch.no_grad():
        target = model.get_submodule(name)(module_inputs(model, [name], x)[name])[:, kept]
        output = walked.get_submodule(name)(module_inputs(walked, [name], x)[name])
    fresh = float(((output - target) ** 2).sum() / (target**2).sum())
    assert chain_report.refit_rel == pytest.approx(fresh, rel=1e-8)


@pytest.mark.slow
def test_prune_groups_from_the_command_line_residual_streams_included(tmp_path, capsys):
    """``prune --groups``: ResNet-18's 8 chains and 4 residual streams at half their channels
    (every producer of a stream cut alike), nothing kept whole; ``eval`` rebuilds it from the
    same groups; FLOPs targets are met with the streams cut too, with --refit (every
    layer's refit error reported) and --compensate; the methods that take chains only are
    refused."""
    import json

    from torchbridge.__main__ import main

    out = tmp_path / "run"
    small = ["--weights", "none", "--size", "32", "--images", "4", "--test-images", "2"]
    argv = ["prune", "--arch", "resnet18", *small, "--groups", "--keep", "0.5", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    streams = [layer["chain"] for layer in report["layers"] if "producers" in layer["chain"]]
    assert [s["producer"] for s in streams] == ["conv1", "layer2.0.conv2", "layer3.0.conv2",
                                                 "layer4.0.conv2"]  # fmt: skip
    assert len(report["layers"]) == 12 and report["kept_whole"] == {}
    assert all(layer["kept"] == layer["total"] // 2 for layer in report["layers"])
    capsys.readouterr()
    assert main(["eval", "--model", str(out / "pruned.pt"), *small]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert (evaluated["flops"], evaluated["params"]) == (
        report["after"]["flops"], report["after"]["params"])  # fmt: skip
    for allocation, extra in (("uniform", ["--refit"]), ("tolerance", ["--compensate"])):
        assert main([*argv[:-4], "--flops", "0.5", "--allocation", allocation, *extra,
                     "--out", str(tmp_path / allocation)]) == 0  # fmt: skip
        found = json.loads((tmp_path / allocation / "report.json").read_text())
        assert 0.4 < found["ratios"]["flops"] <= 0.5 and len(found["layers"]) == 12
        refits = [layer["refit_rel"] for layer in found["layers"]]
        assert all(r is not None and 0 <= r < 1 for r in refits) == (allocation == "uniform")
    for method in ("tp-l1", "global-imitation", "whole-output"):
        capsys.readouterr()
        assert main([*argv[:-4], "--keep", "0.5", "--method", method, "--out",
                     str(tmp_path)]) == 2  # fmt: skip
        error = capsys.readouterr().err
        assert "--groups is for methods that prune channel groups (greedy-local," in error
        assert error.rstrip().endswith(f"not {method}")


NETWORK = """
from torch import nn


def make():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    )


def not_a_network():
    return 3
"""


def test_a_network_of_your_own_is_pruned_and_evaluated(tmp_path, capsys, monkeypatch):
    """``--arch py:MODULE:CALLABLE``: the callable's network, its two chains from the
    dependency graph, pruned and rebuilt by ``eval``; a module, callable or return value that
    does not fit is named."""
    import json

    from torchbridge.__main__ import main

    (tmp_path / "mynet.py").write_text(NETWORK)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    small = ["--weights", "none", "--size", "32", "--images", "4", "--test-images", "2"]
    assert main(["prune", "--arch", "py:mynet:make", *small, "--keep", "0.5",
                 "--out", str(out)]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert [(r["chain"]["producer"], r["chain"]["consumer"], r["kept"]) for r in
            report["layers"]] == [("0", "3", 4), ("3", "8", 8)]  # fmt: skip
    capsys.readouterr()
    assert main(["eval", "--model", str(out / "pruned.pt"), *small]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == report["after"]["params"]
    for arch, message in [
        ("py:nomodule:make", "cannot import nomodule"),
        ("py:mynet:missing", "mynet has no callable missing"),
        ("py:mynet:not_a_network", "returned int, not an nn.Module"),
        ("py:mynet", "a network of your own is py:MODULE:CALLABLE"),
    ]:
        assert main(["prune", "--arch", arch, *small, "--keep", "0.5",
                     "--out", str(tmp_path / "x")]) == 2  # fmt: skip
        assert message in capsys.readouterr().err


def test_every_group_is_checked_and_a_consumer_that_does_not_read_the_group_is_refused():
    """ResNet-18's and EfficientNet-B0's groups pass the check, residual streams included
    (what a block's first convolution feeds back into the stream does not count); a stream
    given a consumer that reads a block's inner channels (64 of them, as many as the stream)
    is refused, naming that consumer."""
    from torchbridge.chain_check import check_chains

    x = torch.randn(2, 3, 64, 64)
    for arch in ("resnet18", "efficientnet_b0"):
        model = getattr(torchvision.models, arch)(num_classes=10).eval()
        check_chains(model, graph_groups(model, x[:1]).groups, x)
    model = torchvision.models.resnet18(num_classes=10).eval()
    stream = graph_groups(model, x[:1]).groups[0]
    assert stream.producers[0] == "conv1"
    wrong = Group(stream.producers, stream.between, (*stream.consumers, "layer1.0.conv2"))
    with pytest.raises(ValueError, match=r"chain conv1 -> layer1\.0\.conv2 is not channel-wise"):
        check_chains(model, [wrong], x)
