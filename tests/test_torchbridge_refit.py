"""The least-squares refit of a consumer (torchbridge.refit): its moments against an explicit
least-squares solve with torch.linalg.lstsq, and the refit layer against the computation."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torch.nn import functional

from torchbridge.refit import RefitMoments

CONSUMERS = {
    "1x1": lambda: nn.Conv2d(6, 5, 1),
    "3x3 stride 2": lambda: nn.Conv2d(6, 5, 3, stride=2, padding=1),
    "3x3 dilated, no bias": lambda: nn.Conv2d(6, 5, 3, padding=2, dilation=2, bias=False),
    "linear": lambda: nn.Linear(6, 5),
}


def _inputs(consumer: nn.Module, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(unpruned input (B, 6, ...), a pruned network's input (B, 4, ...)), float64: the
    pruned one is a perturbed mix of the unpruned channels, as after earlier pruning."""
    generator = torch.Generator().manual_seed(seed)
    shape = (7, 6) if isinstance(consumer, nn.Linear) else (7, 6, 9, 8)
    unpruned = torch.randn(shape, generator=generator, dtype=torch.float64)
    mix = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    pruned = torch.einsum("kc,bc...->bk...", mix, unpruned)
    return unpruned, pruned + 0.1 * torch.randn(pruned.shape, generator=generator,
                                                dtype=torch.float64)  # fmt: skip


def _explicit(consumer: nn.Module, batches: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The design matrix [patches, 1] of the pruned inputs and the unpruned outputs, as
    (M, C' K + 1) and (M, C_out), formed image by image with the layer itself."""
    xs, ys = [], []
    for unpruned, pruned in batches:
        out = consumer(unpruned)
        if isinstance(consumer, nn.Linear):
            x, y = pruned, out
        else:
            geometry = {k: getattr(consumer, k) for k in ("kernel_size", "dilation", "padding",
                                                          "stride")}  # fmt: skip
            unfolded = functional.unfold(pruned, **geometry)  # (B, C' K, P)
            x = unfolded.transpose(1, 2).reshape(-1, unfolded.shape[1])
            y = out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])
        xs.append(torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1))
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def _accumulated(kind: str) -> tuple[nn.Module, list, RefitMoments, torch.Tensor, torch.Tensor]:
    """A consumer of ``kind`` in float64, two batches, their moments and explicit data."""
    consumer = CONSUMERS[kind]().double()
    batches = [_inputs(consumer, seed) for seed in (0, 1)]
    moments = RefitMoments(consumer, kept=4)
    with torch.no_grad():
        for unpruned, pruned in batches:
            moments.update(pruned, unpruned)
        x, y = _explicit(consumer, batches)
    return consumer, batches, moments, x, y


@pytest.mark.parametrize("kind", CONSUMERS)
def test_refit_is_the_least_squares_solution(kind):
    consumer, batches, moments, x, y = _accumulated(kind)
    weight, bias = moments.solve(ridge=0.0)
    reference = torch.linalg.lstsq(x, y).solution  # (C' K + 1, C_out)
    assert moments.patches == x.shape[0]
    torch.testing.assert_close(weight.reshape(5, -1), reference[:-1].T, rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(bias, reference[-1], rtol=1e-8, atol=1e-9)
    # the refit layer, run as a layer, gives the least-squares residual and no smaller one
    refit = CONSUMERS[kind]().double()
    refit = (nn.Linear(4, 5) if kind == "linear" else nn.Conv2d(
        4, 5, refit.kernel_size, stride=refit.stride, padding=refit.padding,
        dilation=refit.dilation)).double()  # fmt: skip
    with torch.no_grad():
        refit.weight.copy_(weight)
        refit.bias.copy_(bias)
        residual = sum(((refit(p) - consumer(u)) ** 2).sum() for u, p in batches)
        best = ((x @ reference - y) ** 2).sum()
    torch.testing.assert_close(residual, best, rtol=1e-9, atol=1e-9)


def test_kept_channels_with_their_weights_are_recovered_exactly():
    """When the dropped channels never reached the output, the refit is the original layer
    on the kept channels."""
    consumer = nn.Conv2d(6, 5, 3, padding=1).double()
    kept = torch.tensor([0, 2, 3, 5])
    with torch.no_grad():
        consumer.weight[:, [1, 4]] = 0.0
    moments = RefitMoments(consumer, kept=4)
    for seed in (0, 1):
        unpruned, _ = _inputs(consumer, seed)
        moments.update(unpruned[:, kept], unpruned)
    weight, bias = moments.solve(ridge=0.0)
    torch.testing.assert_close(weight, consumer.weight[:, kept].detach(), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(bias, consumer.bias.detach(), rtol=1e-8, atol=1e-10)


def test_the_ridge_shrinks_the_weights_and_spares_the_bias():
    consumer = nn.Linear(6, 5).double()
    moments = RefitMoments(consumer, kept=4)
    unpruned, pruned = _inputs(consumer, 0)
    moments.update(pruned, unpruned)
    free, _ = moments.solve(ridge=0.0)
    shrunk, _ = moments.solve(ridge=10.0)
    assert shrunk.norm() < 0.5 * free.norm()
    with torch.no_grad():
        moments = RefitMoments(consumer, kept=4)
        moments.update(torch.zeros(7, 4, dtype=torch.float64), unpruned)
        _, bias = moments.solve(ridge=1e6)  # no input: the bias is the mean output
        torch.testing.assert_close(bias, consumer(unpruned).mean(dim=0))


@pytest.mark.parametrize("kind", ["3x3 stride 2", "linear"])
def test_the_ridge_toward_a_prior_is_least_squares_with_the_prior_as_data(kind):
    """ridge * s * ||W - W0||^2 added to the squares: the same solution as lstsq on the
    design matrix stacked over sqrt(ridge s) I (bias column 0) against sqrt(ridge s) W0."""
    _, _, moments, x, y = _accumulated(kind)
    prior = torch.randn(5, x.shape[1] - 1, dtype=torch.float64, generator=torch.Generator()
                        .manual_seed(3))  # fmt: skip
    ridge = 0.3
    s = (x[:, :-1] ** 2).sum(dim=0).mean()
    root = torch.sqrt(ridge * s)
    extra = torch.cat([root * torch.eye(x.shape[1] - 1, dtype=x.dtype),
                       torch.zeros(x.shape[1] - 1, 1, dtype=x.dtype)], dim=1)  # fmt: skip
    reference = torch.linalg.lstsq(torch.cat([x, extra]), torch.cat([y, root * prior.T]))
    weight, bias = moments.solve(ridge, prior.reshape(5, 4, -1) if kind != "linear" else prior)
    torch.testing.assert_close(weight.reshape(5, -1), reference.solution[:-1].T)
    torch.testing.assert_close(bias, reference.solution[-1])
    far, _ = moments.solve(1e9, prior)
    torch.testing.assert_close(far.reshape(5, -1), prior, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="prior must have"):
        moments.solve(ridge, prior[:, :2])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda m: m.update(torch.zeros(2, 3, 4, 4), torch.zeros(2, 6, 4, 4)),
         r"pruned input must be \(B, 4, H, W\)"),
        (lambda m: m.update(torch.zeros(2, 4, 4, 4), torch.zeros(3, 6, 4, 4)),
         "must be of the same images"),
        (lambda m: m.solve(), "no inputs were accumulated"),
        (lambda m: m.update(torch.full((2, 4, 4, 4), float("nan")), torch.zeros(2, 6, 4, 4)),
         "NaN or infinite"),
    ],
)  # fmt: skip
def test_bad_input_is_named(make, message):
    with pytest.raises(ValueError, match=message):
        make(RefitMoments(nn.Conv2d(6, 5, 1), kept=4))


def test_bad_consumers_and_counts_are_named():
    with pytest.raises(ValueError, match="kept must be in"):
        RefitMoments(nn.Conv2d(6, 5, 1), kept=7)
    with pytest.raises(ValueError, match="groups=6"):
        RefitMoments(nn.Conv2d(6, 6, 3, groups=6), kept=3)
    moments = RefitMoments(nn.Linear(6, 5), kept=4)
    moments.update(torch.ones(2, 4), torch.ones(2, 6))
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        moments.solve(ridge=-1.0)


def _gated(gate: torch.Tensor, _module: nn.Module, args: tuple) -> tuple:
    """A forward pre-hook: the module's input channels times ``gate`` (C,)."""
    return (args[0] * gate.reshape(1, -1, *[1] * (args[0].dim() - 2)),)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2", "efficientnet_lite0"])
def test_refit_network_equals_the_masked_computation(arch):
    """Every chain keeps a random subset of its channels, then every consumer is refit: the
    physically pruned network equals the original whose consumers see only the kept channels
    (the others at 0) through the refit weights (at the kept columns) and bias, in float64."""
    import copy

    import numpy as np

    from torchbridge.chains import block_chains
    from torchbridge.models import build
    from torchbridge.prune import apply_weights
    from torchbridge.refit import refit_chains

    torch.manual_seed(0)
    model = build(arch, num_classes=10).double().eval()
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    rng = np.random.default_rng(0)
    chains = block_chains(model)
    pruned, kept = copy.deepcopy(model), {}
    for chain in chains:
        a = rng.dirichlet(np.ones(model.get_submodule(chain.consumer).in_channels))
        a[rng.random(a.size) < 0.5] = 0.0
        a[rng.integers(a.size)] = 1.0
        apply_weights(pruned, chain, a / a.sum())
        kept[chain.consumer] = torch.as_tensor(np.flatnonzero(a))
    folded = copy.deepcopy(pruned)
    errors = refit_chains(pruned, model, chains, [x[:2], x[2:]], ridge=1e-3)
    assert len(errors) == len(chains) and all(0.0 <= e < 1.0 for e in errors)
    masked, hooks = copy.deepcopy(model), []
    for chain in chains:
        ours, theirs = pruned.get_submodule(chain.consumer), masked.get_submodule(chain.consumer)
        gate = torch.zeros(theirs.in_channels, dtype=torch.float64)
        gate[kept[chain.consumer]] = 1.0
        with torch.no_grad():
            theirs.weight.zero_()
            theirs.weight[:, kept[chain.consumer]] = ours.weight
        theirs.bias = nn.Parameter(ours.bias.detach().clone())
        hooks.append(theirs.register_forward_pre_hook(functools.partial(_gated, gate)))
    with torch.no_grad():
        expected = masked(x)
        scale = float(expected.abs().max())
        assert not torch.allclose(folded(x), expected, rtol=1e-3, atol=1e-3 * scale)  # refit
        torch.testing.assert_close(pruned(x), expected, rtol=1e-9, atol=1e-9 * scale)


@pytest.fixture(scope="module")
def resnet():
    from torchbridge.chains import block_chains
    from torchbridge.models import build

    torch.manual_seed(0)
    model = build("resnet18", num_classes=10).double().eval()
    return model, block_chains(model), [torch.randn(4, 3, 48, 48, dtype=torch.float64)]


@pytest.mark.slow
def test_prune_chains_refits_each_consumer_by_least_squares(resnet):
    """The first chain's refit consumer is the least-squares solution on its kept channels
    (torch.linalg.lstsq on the explicit patches), whether the calibration inputs come from
    the walk or from whole forward passes; its error is at most the selector's."""
    from torchbridge.prune import prune_chains
    from torchbridge.refit import consumer_input

    model, chains, batches = resnet
    runs = [prune_chains(model, chains, batches, keep=0.5, method="magnitude", refit=True,
                         ridge=0.0, walk_graph=walk) for walk in (True, False)]  # fmt: skip
    (pruned, reports), (again, _) = runs
    first = chains[0].consumer
    ours, theirs = pruned.get_submodule(first), model.get_submodule(first)
    with torch.no_grad():
        x = consumer_input(pruned, first, batches[0])
        y = theirs(consumer_input(model, first, batches[0]))
        geometry = {k: getattr(theirs, k) for k in ("kernel_size", "dilation", "padding",
                                                    "stride")}  # fmt: skip
        patches = functional.unfold(x, **geometry).transpose(1, 2).reshape(-1, x.shape[1] * 9)
        design = torch.cat([patches, torch.ones(patches.shape[0], 1, dtype=x.dtype)], dim=1)
        solution = torch.linalg.lstsq(design, y.permute(0, 2, 3, 1).reshape(-1, y.shape[1]))
    torch.testing.assert_close(ours.weight.reshape(ours.out_channels, -1),
                               solution.solution[:-1].T, rtol=1e-6, atol=1e-8)  # fmt: skip
    torch.testing.assert_close(ours.bias, solution.solution[-1], rtol=1e-6, atol=1e-8)
    assert all(r.refit_rel is not None for r in reports)
    assert reports[0].refit_rel <= reports[0].output_rel + 1e-12
    with torch.no_grad():
        torch.testing.assert_close(again(batches[0]), pruned(batches[0]), rtol=1e-8, atol=1e-8)


@pytest.mark.slow
def test_a_strong_ridge_toward_the_selection_keeps_the_selected_weights(resnet):
    from torchbridge.prune import prune_chains

    model, chains, batches = resnet
    plain, _ = prune_chains(model, chains[:1], batches, keep=0.5, method="magnitude")
    pulled, reports = prune_chains(model, chains[:1], batches, keep=0.5, method="magnitude",
                                   refit=True, ridge=1e9, refit_toward="selected")  # fmt: skip
    ours, theirs = (m.get_submodule(chains[0].consumer) for m in (pulled, plain))
    torch.testing.assert_close(ours.weight, theirs.weight, rtol=1e-5, atol=1e-7)
    assert reports[0].refit_rel <= reports[0].output_rel + 1e-9  # only the bias moved
    with pytest.raises(ValueError, match="unknown refit_toward 'one'"):
        prune_chains(model, chains, batches, keep=0.5, refit=True, refit_toward="one")


def test_refit_after_pruning_needs_the_consumer_outputs_whole():
    from torchbridge.chains import block_chains
    from torchbridge.models import build
    from torchbridge.prune import prune_chains
    from torchbridge.refit import refit_chains

    model = build("resnet50", num_classes=10).eval()
    chains = block_chains(model)[:2]  # conv1 -> conv2, conv2 -> conv3 of the first block
    x = torch.randn(2, 3, 32, 32)
    pruned, _ = prune_chains(model, chains, [x], keep=0.5, method="magnitude")
    with pytest.raises(ValueError, match=r"consumer layer1\.0\.conv2 lost output channels"):
        refit_chains(pruned, model, chains, [x])
    inside, reports = prune_chains(model, chains, [x], keep=0.5, method="magnitude", refit=True)
    assert all(r.refit_rel is not None for r in reports)  # refit before the next chain: fine
    with torch.no_grad():
        assert inside(x).shape == (2, 10)


@pytest.mark.slow
def test_prune_command_refits_recalibrates_and_reports_it(tmp_path, capsys):
    import json

    from torchbridge.__main__ import main

    argv = ["prune", "--arch", "resnet18", "--weights", "none", "--size", "32", "--images", "4",
            "--test-images", "4", "--keep", "0.5", "--method", "tp-magnitude", "--refit",
            "--recalibrate-bn", "--device", "cpu", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["config"]["refit"] is True and report["config"]["recalibrate_bn"] is True
    state = torch.load(tmp_path / "pruned.pt", weights_only=True)["state_dict"]
    assert state["bn1.running_mean"].abs().max() > 0  # a fresh network's are 0: re-estimated
    assert all(layer["refit_rel"] >= 0.0 for layer in report["layers"])
    assert "refit_rel" in capsys.readouterr().out
    assert main(["eval", "--model", str(tmp_path / "pruned.pt"), "--size", "32"]) == 0


def _explicit_moments(model: nn.Module, name: str, batch: torch.Tensor):
    """Explicit patches [X, 1] (M, C K + 1) of consumer ``name``'s input in ``model`` and its
    output Y (M, C_out), as numpy float64."""
    from torchbridge.refit import consumer_input

    consumer = model.get_submodule(name)
    with torch.no_grad():
        x = consumer_input(model, name, batch)
        y = consumer(x)
    geometry = {k: getattr(consumer, k) for k in ("kernel_size", "dilation", "padding", "stride")}
    unfolded = functional.unfold(x, **geometry)
    patches = unfolded.transpose(1, 2).reshape(-1, unfolded.shape[1])
    design = torch.cat([patches, torch.ones(patches.shape[0], 1, dtype=x.dtype)], dim=1)
    return design.numpy(), y.permute(0, 2, 3, 1).reshape(-1, y.shape[1]).numpy()


@pytest.mark.slow
def test_whole_output_keeps_the_greedy_channels_with_their_least_squares_weights(resnet):
    """On the first chain, whole-output keeps the channels that forward selection on the
    explicit patches picks, and its consumer is the least-squares solution on them, walked
    or not; the reported error is that solution's."""
    import numpy as np

    from theory import select
    from theory.output_problem import OutputProblem
    from torchbridge.prune import prune_chains

    model, chains, batches = resnet
    runs = [prune_chains(model, chains[:1], batches, keep=0.25, method="whole-output",
                         ridge=0.0, walk_graph=walk) for walk in (True, False)]  # fmt: skip
    (pruned, reports), (again, _) = runs
    name = chains[0].consumer
    x, y = _explicit_moments(model, name, batches[0])
    problem = OutputProblem.from_moments(x.T @ x, x.T @ y, float((y * y).sum()), width=9, fixed=1)
    n = model.get_submodule(name).in_channels
    trace = select(problem, n // 4, "whole-output", size=n // 4)
    producer = model.get_submodule(chains[0].producer).weight.reshape(n, -1)
    kept_rows = pruned.get_submodule(chains[0].producer).weight.reshape(-1, producer.shape[1])
    kept = [int(torch.cdist(row[None], producer).argmin()) for row in kept_rows]
    assert kept == sorted(trace.support.tolist()) and reports[0].kept == n // 4
    coefficients = problem.solve(np.array(kept))
    ours = pruned.get_submodule(name)
    np.testing.assert_allclose(ours.weight.detach().reshape(ours.out_channels, -1).numpy(),
                               coefficients[:-1].T, rtol=1e-6, atol=1e-8)  # fmt: skip
    np.testing.assert_allclose(ours.bias.detach().numpy(), coefficients[-1], rtol=1e-6, atol=1e-8)
    assert model.get_submodule(name).bias is None  # the output's energy is all of ||Y||^2
    energy = float((y * y).sum())
    assert reports[0].refit_rel == pytest.approx(problem.loss(np.array(kept)) / energy, rel=1e-6)
    assert reports[0].output_rel == reports[0].refit_rel and reports[0].loss is None
    with torch.no_grad():
        torch.testing.assert_close(again(batches[0]), pruned(batches[0]), rtol=1e-8, atol=1e-8)


@pytest.mark.slow
def test_whole_output_prunes_depthwise_chains_to_a_tolerance():
    """MobileNetV2's chains (a depthwise convolution between producer and consumer) prune to a
    relative tolerance: each chain stops at its first width whose refit error is within it,
    or keeps every channel; settings it cannot use are refused."""
    from torchbridge.chains import block_chains
    from torchbridge.models import build
    from torchbridge.prune import prune_chains

    torch.manual_seed(0)
    model = build("mobilenet_v2", num_classes=10).double().eval()
    chains = block_chains(model)[:4]
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    pruned, reports = prune_chains(model, chains, [x], tol=0.05, method="whole-output")
    assert all(r.refit_rel <= 0.05 or r.kept == r.total for r in reports)
    assert any(r.kept < r.total for r in reports)
    with torch.no_grad():
        assert torch.isfinite(pruned(x)).all()
    for extra, named in (({"compensate": True}, "compensate"), ({"repeats": False}, "repeats")):
        with pytest.raises(ValueError, match=f"whole-output .* no selector options; got {named}"):
            prune_chains(model, chains, [x], keep=0.5, method="whole-output", **extra)
