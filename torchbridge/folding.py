"""Does the folding of N a_i into the consumer hurt fine-tuning? The same kept channels with
the folded weights against the original consumer weights, each fine-tuned the same way.

For the MNIST CNN of :mod:`torchbridge.mnist` (its convolutions have biases, which identify a
kept channel in the pruned producer): prune to a FLOPs target, then build the copy whose
consumers take back their original weights on the kept channels (a_i = 1/N, no folding), and
fine-tune both for one epoch. ``python -m experiments run mnist-folding``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from torchbridge.budget import prune_to_flops
from torchbridge.chains import sequential_chains
from torchbridge.evaluate import accuracy
from torchbridge.mnist import split, train, trained


def unfolded(model: nn.Sequential, pruned: nn.Sequential) -> nn.Sequential:
    """``pruned`` with every consumer's weights replaced by the original ones on the kept
    channels (kept channels found by their producer's bias)."""
    chains = sequential_chains(model)
    kept = {}
    for chain in chains:
        original = model.get_submodule(chain.producer).bias.detach()
        biases = pruned.get_submodule(chain.producer).bias.detach()
        kept[chain.producer] = [int(torch.argmin((original - b).abs())) for b in biases]
    out = copy.deepcopy(pruned)
    for chain in chains:
        weight = model.get_submodule(chain.consumer).weight.detach()
        rows = kept.get(chain.consumer, list(range(weight.shape[0])))
        out.get_submodule(chain.consumer).weight = nn.Parameter(
            weight[rows][:, kept[chain.producer]].clone()
        )
    return out


def folding_row(seed: int, flops: float, allocation: str, method: str = "greedy-local") -> dict:
    """Seed's MNIST CNN pruned to ``flops``: held-out accuracy of the folded network and of
    the one with its original consumer weights, before and after one epoch of fine-tuning."""
    model = trained("cnn", seed)
    xt, yt, xs, ys = split(seed)
    chains = sequential_chains(model)
    pruned, _, _ = prune_to_flops(
        model, chains, list(xt[:512].split(128)), flops, allocation=allocation,
        method=method, seed=seed,
    )  # fmt: skip
    plain = unfolded(model, pruned)
    row = {"folded": accuracy(pruned, xs, ys), "original": accuracy(plain, xs, ys)}
    train(pruned, xt, yt, 1, seed)
    train(plain, xt, yt, 1, seed)
    tuned = {"folded_tuned": accuracy(pruned, xs, ys), "original_tuned": accuracy(plain, xs, ys)}
    return row | tuned
