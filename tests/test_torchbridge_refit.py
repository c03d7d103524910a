"""The least-squares refit of a consumer (torchbridge.refit): its moments against an explicit
least-squares solve with torch.linalg.lstsq, and the refit layer against the computation."""

from __future__ import annotations

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


@pytest.mark.parametrize("kind", CONSUMERS)
def test_refit_is_the_least_squares_solution(kind):
    consumer = CONSUMERS[kind]().double()
    batches = [_inputs(consumer, seed) for seed in (0, 1)]
    moments = RefitMoments(consumer, kept=4)
    with torch.no_grad():
        for unpruned, pruned in batches:
            moments.update(pruned, unpruned)
        weight, bias = moments.solve(ridge=0.0)
        x, y = _explicit(consumer, batches)
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
