"""Bad inputs to the pruning functions: one clear error naming the problem, never a
traceback from deep inside torch."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from torchbridge.budget import prune_to_flops  # noqa: E402
from torchbridge.chains import Chain, sequential_chains  # noqa: E402
from torchbridge.prune import prune_chains  # noqa: E402


def _network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ).eval()  # fmt: skip


X = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "batch, message",
    [
        (X.double(), "the calibration images are torch.float64 but the network's weights are "
                     r"torch.float32: convert one to the other"),
        (X[:, 0], r"the network does not run on calibration images of shape \(8, 8\) each"),
        (X[:, :1], r"the network does not run on calibration images of shape \(1, 8, 8\) each: "
                   ".*expected input.* to have 3 channels"),
        (X.reshape(4, 3, 64), r"does not run on calibration images of shape \(3, 64\) each"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("prune", ["chains", "flops"])
def test_batches_the_network_cannot_take_are_named(batch, message, prune):
    model = _network()
    chains = sequential_chains(model)
    with pytest.raises(ValueError, match=message):
        if prune == "chains":
            prune_chains(model, chains, [batch], keep=0.5)
        else:
            prune_to_flops(model, chains, [batch], 0.8, allocation="uniform")


@pytest.mark.parametrize(
    "chain, message",
    [
        (Chain("layer1.0.conv1", (), "layer1.0.conv2"),
         "chain layer1.0.conv1 names 'layer1.0.conv1', which this network does not have"),
        (Chain("0", ("1",), "1"), "chain 0: consumer 1 is a ReLU, not a Conv2d or Linear"),
        (Chain("6", (), "6"), "chain 6: producer 6 is a Linear, not a Conv2d"),
    ],
)  # fmt: skip
def test_chains_of_another_network_are_named(chain, message):
    with pytest.raises(ValueError, match=message):
        prune_chains(_network(), [chain], [X], keep=0.5)


def test_an_unknown_objective_is_refused_even_where_unused():
    model = _network()
    with pytest.raises(ValueError, match="unknown objective 'l1'; valid: kl, mse"):
        prune_chains(model, sequential_chains(model), [X], keep=0.5, objective="l1")
