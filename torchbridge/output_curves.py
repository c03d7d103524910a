"""Each chain's loss curve on the network's output: how far the network's output moves from
the unpruned network's when that chain alone is pruned to k channels, for every k.

A layer's relative loss does not see what its error does downstream: cut by the layer loss
alone, the first chains of EfficientNet-Lite0 (the most FLOPs per channel) lose nine tenths
of their channels. Here the network's output loss (:mod:`torchbridge.oracle`: KL or squared
distance on the first calibration images) is measured at a grid of widths per chain, with
the selector's weights at each width (and, with ``refit``, the consumer refit by least
squares on the kept channels, :mod:`torchbridge.refit`); between grid widths the layer
curve's shape is scaled by the measured ratio of output to layer loss, interpolated in k.
Each chain's measurements cost one pass to its consumer and a pass of the rest of the
network per grid width (the widths stacked in one batch where nothing is refit).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch import nn

from theory import LayerProblem, select
from theory.selectors import spec
from torchbridge.chains import Chain
from torchbridge.oracle import GlobalLoss, global_loss
from torchbridge.prune import MAX_REPEATS
from torchbridge.refit import TOWARD, RefitMoments

GRID = (1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2, 5 / 8, 3 / 4, 7 / 8)  # widths measured, of N


def grid_widths(n: int) -> np.ndarray:
    """The widths (G,) at which a chain of ``n`` channels is measured: round(f n) for f in
    GRID, in [1, n - 1], distinct and increasing (none for n = 1)."""
    if n <= 1:
        return np.zeros(0, dtype=int)
    return np.unique(np.clip(np.round(np.array(GRID) * n).astype(int), 1, n - 1))


def weights_at(problem: LayerProblem, k: int, method: str, seed: int) -> np.ndarray:
    """(N,): the selector's weights where its run on ``problem`` first carries ``k`` channels
    (as a pruning of this chain to width k sets them)."""
    steps = MAX_REPEATS * k if spec(method).repeats else k
    return select(problem, steps, method, size=k, seed=seed).weights


def refit_consumer(
    loss: GlobalLoss, kept: np.ndarray, ridge: float, prior: torch.Tensor | None
) -> nn.Module:
    """A copy of ``loss``'s consumer reading every input channel, its weights refit by ridge
    least squares on the ``kept`` channels (as a pruning's ``refit`` sets them, on ``loss``'s
    images), 0 on the others; ``prior``: the ridge's pull (on the kept channels)."""
    moments = RefitMoments(loss.consumer, kept.size)
    for x in loss.inputs:
        moments.update(x[:, torch.as_tensor(kept, device=x.device)], x)
    weight, bias = moments.solve(ridge, prior)
    consumer = loss.consumer
    full = torch.zeros_like(consumer.weight, dtype=torch.float64)
    full[:, torch.as_tensor(kept, device=full.device)] = weight.to(full.device)
    refit = copy.deepcopy(consumer)
    like = {"dtype": consumer.weight.dtype, "device": consumer.weight.device}
    refit.weight = nn.Parameter(full.to(**like))
    refit.bias = nn.Parameter(bias.to(**like))
    return refit


def measured_losses(loss: GlobalLoss, weights: np.ndarray, refit: dict | None) -> np.ndarray:
    """(G,): the network's output loss with the chain's weights (G, N) folded into its
    consumer (``refit``: {"ridge", "refit_toward"}: the consumer refit on each row's kept
    channels instead)."""
    if refit is None:
        return loss.losses(weights)
    n, weight = loss.n_channels, loss.consumer.weight.detach()
    out = []
    for row in weights:
        kept = np.flatnonzero(row)
        prior = None  # the selector's weights folded into the consumer, where pulled toward
        if refit["refit_toward"] == "selected":
            gates = torch.as_tensor(n * row, dtype=weight.dtype, device=weight.device)
            prior = (weight * gates.reshape(1, n, *[1] * (weight.dim() - 2)))[:, kept]
        consumer = refit_consumer(loss, kept, refit["ridge"], prior)
        whole = np.full((1, n), 1.0 / n)  # gates of 1: the refit consumer reads every channel
        out.append(dataclasses.replace(loss, consumer=consumer).losses(whole)[0])
    return np.array(out)


def output_curve(layer: np.ndarray, widths: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """(N + 1,): the layer curve ``layer`` (N + 1,) scaled, width by width, by the ratio of
    the ``measured`` output losses (G,) at ``widths`` (G,) to the layer's losses there,
    interpolated linearly in k (constant beyond the first and last; widths where the layer
    loss is 0 give no ratio; none at all: the output losses measured, where the layer's 0).
    Entry N is 0, the chain left whole."""
    n = len(layer) - 1
    usable = layer[widths] > 0
    if not usable.any():
        out = np.zeros(n + 1)
        out[widths] = measured
        return out
    ratio = np.interp(np.arange(n + 1), widths[usable], measured[usable] / layer[widths][usable])
    out = layer * ratio
    out[n] = 0.0
    return out


def output_curves(
    model: nn.Module,
    chains: list[Chain],
    problems: list[LayerProblem],
    layers: list[np.ndarray],
    batches: list[torch.Tensor],
    *,
    method: str,
    seed: int,
    objective: str = "kl",
    refit: dict | None = None,
) -> list[np.ndarray]:
    """Every chain's curve (N + 1,) of the network's output loss against its width (see the
    module docstring), from its layer ``problems`` and layer curves ``layers`` (N + 1,)
    (:meth:`torchbridge.budget.LossCurves.losses_by_width`), measured on ``batches``."""
    if refit is not None and refit["refit_toward"] not in TOWARD:
        raise ValueError(f"unknown refit_toward {refit['refit_toward']!r}; valid: {TOWARD}")
    with torch.no_grad():
        references = [model(batch) for batch in batches]
    curves = []
    for chain, problem, layer in zip(chains, problems, layers, strict=True):
        widths = grid_widths(problem.n_neurons)
        if widths.size == 0:  # one channel: nothing to remove
            curves.append(np.r_[layer[0], 0.0])
            continue
        weights = np.stack([weights_at(problem, int(k), method, seed) for k in widths])
        loss = global_loss(model, chain.consumer, batches, references, objective)
        curves.append(output_curve(layer, widths, measured_losses(loss, weights, refit)))
    return curves
