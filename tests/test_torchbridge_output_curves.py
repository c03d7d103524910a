"""Each chain's curve of the network's output loss against its width (the marginal
allocation's): at every measured width it is the output loss of that chain pruned alone (and
refit), measured afresh; between them the layer curve scaled by the interpolated ratio."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from torchbridge.budget import LossCurves, marginal_curves  # noqa: E402
from torchbridge.chains import Group, block_chains, sequential_chains  # noqa: E402
from torchbridge.models import build  # noqa: E402
from torchbridge.oracle import output_distance  # noqa: E402
from torchbridge.output_curves import grid_widths, output_curve  # noqa: E402
from torchbridge.prune import prune_chains  # noqa: E402


def _network() -> tuple[nn.Module, list[torch.Tensor]]:
    """A small float64 CNN and two batches of its inputs."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 12, 3, padding=1), nn.ReLU(),
        nn.Conv2d(12, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).double().eval()  # fmt: skip
    x = torch.randn(16, 3, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, [x[:8], x[8:]]


def _fresh(model, pruned, batches, objective):
    """The mean over images of the output distance of ``pruned`` from ``model``."""
    with torch.no_grad():
        distances = [output_distance(pruned(b), model(b), objective) for b in batches]
    return float(torch.cat(distances).mean())


def test_grid_widths_are_distinct_widths_below_n():
    assert grid_widths(16).tolist() == [1, 2, 4, 6, 8, 10, 12, 14]
    assert grid_widths(3).tolist() == [1, 2] and grid_widths(2).tolist() == [1]
    assert grid_widths(1).size == 0


def test_output_curve_is_measured_at_the_grid_and_scaled_between():
    layer = np.array([1.0, 0.8, 0.4, 0.2, 0.1, 0.0])
    widths, measured = np.array([1, 3]), np.array([1.6, 0.6])  # ratios 2 and 3
    out = output_curve(layer, widths, measured)
    assert out[[1, 3]] == pytest.approx(measured, rel=1e-12)
    assert out[2] == pytest.approx(0.4 * 2.5) and out[4] == pytest.approx(0.1 * 3)
    assert out[0] == pytest.approx(2.0) and out[5] == 0.0
    # a width whose layer loss is 0 gives no ratio: the others' are used
    assert output_curve(layer, np.array([1, 5]), np.array([1.6, 0.0]))[3] == pytest.approx(0.4)
    # no ratio at all: the measured losses where the layer's are 0
    zero = output_curve(np.zeros(4), np.array([1, 2]), np.array([0.5, 0.25]))
    assert zero.tolist() == [0.0, 0.5, 0.25, 0.0]


@pytest.mark.parametrize(
    "objective, refit",
    [("kl", None), ("mse", None), ("kl", "zero"), ("kl", "selected")],
)
def test_each_measured_width_is_the_chain_pruned_alone_measured_afresh(objective, refit):
    """At every grid width, each chain's curve equals the output distance of the network
    with that chain alone pruned to that width by prune_chains (with --refit's consumer
    refit, pulled toward 0 or the selected weights), measured afresh (float64, 1e-9)."""
    model, batches = _network()
    chains = sequential_chains(model)
    options = {"objective": objective, "oracle_images": 16}
    if refit is not None:
        options |= {"refit": True, "ridge": 1e-3, "refit_toward": refit}
    curves = marginal_curves(
        model, chains, batches, LossCurves(model, chains, batches, "greedy-local", 0), options
    )
    for chain, curve in zip(chains, curves, strict=True):
        n = model.get_submodule(chain.producer).out_channels
        assert len(curve) == n + 1 and curve[n] == 0.0
        for k in grid_widths(n)[::3]:
            pruned, _ = prune_chains(model, [chain], batches, widths={chain.producer: int(k)},
                                     **{key: v for key, v in options.items()
                                        if key != "oracle_images"})  # fmt: skip
            assert curve[k] == pytest.approx(_fresh(model, pruned, batches, objective), rel=1e-9)
            assert curve[k] > 0


def test_the_output_is_measured_on_the_first_oracle_images():
    """With oracle_images = 8 only the first batch's images are measured."""
    model, batches = _network()
    chains = sequential_chains(model)[:1]
    curves = LossCurves(model, chains, batches, "greedy-local", 0)
    (curve,) = marginal_curves(model, chains, batches, curves, {"oracle_images": 8})
    pruned, _ = prune_chains(model, chains, batches, widths={chains[0].producer: 8})
    assert curve[8] == pytest.approx(_fresh(model, pruned, batches[:1], "kl"), rel=1e-9)
    assert curve[8] != pytest.approx(_fresh(model, pruned, batches, "kl"), rel=1e-3)


@pytest.mark.slow
def test_resnet_chains_are_measured_through_the_residual_stream():
    """A ResNet-18 block's chain (its consumer's output joins the identity) measured at a grid
    width equals the chain pruned alone, with its consumer refit, measured afresh."""
    torch.manual_seed(0)
    model = build("resnet18", num_classes=10).double().eval()
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    chains = block_chains(model)[2:3]
    options = {"refit": True, "ridge": 1e-4}
    curves = LossCurves(model, chains, [x], "greedy-local", 0)
    (curve,) = marginal_curves(model, chains, [x], curves, options)
    pruned, _ = prune_chains(model, chains, [x], widths={chains[0].producer: 32}, **options)
    assert curve[32] == pytest.approx(_fresh(model, pruned, [x], "kl"), rel=1e-9)


def test_groups_are_refused_by_the_marginal_allocation():
    model, batches = _network()
    chains = sequential_chains(model)
    group = Group(producers=(chains[0].producer,), between=chains[0].between,
                  consumers=chains[0].consumers)  # fmt: skip
    curves = LossCurves(model, chains, batches, "greedy-local", 0)
    with pytest.raises(ValueError, match=r"channel groups \(0, \.\.\.\) take another allocation"):
        marginal_curves(model, [group, *chains[1:]], batches, curves, {})
