"""Layer-by-layer channel pruning of an nn.Sequential CNN, from the input side.

A chain is a dense convolution (the producer), an optional BatchNorm2d, any channel-wise
modules (activations, pooling, dropout; a Flatten only after a global pooling), and the next
dense convolution or linear layer (the consumer). For each chain in order the consumer's
inputs are captured on the calibration batches (earlier chains already pruned), their Gram
matrix is accumulated (:mod:`torchbridge.gram`), a selector of :mod:`theory` picks the
channels and their weights, and :mod:`torchbridge.surgery` removes the others.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from theory import LayerProblem, select
from torchbridge.gram import GramAccumulator
from torchbridge.surgery import prune_chain

CHANNELWISE = (
    nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.Tanh, nn.Identity, nn.Dropout,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
)  # fmt: skip


@dataclass(frozen=True)
class Chain:
    """Indices into the Sequential: producer, norm (or None), consumer."""

    producer: int
    norm: int | None
    consumer: int


def find_chains(model: nn.Sequential) -> list[Chain]:
    """Every producer -> consumer chain of a Sequential, in order (see the module docstring)."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be an nn.Sequential; got {type(model).__name__}")
    layers = list(model)
    chains = []
    for i, layer in enumerate(layers):
        if not (isinstance(layer, nn.Conv2d) and layer.groups == 1):
            continue
        norm, pooled = None, False
        for j in range(i + 1, len(layers)):
            nxt = layers[j]
            if isinstance(nxt, nn.BatchNorm2d) and norm is None and j == i + 1:
                norm = j
            elif isinstance(nxt, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                pooled = nxt.output_size in (1, (1, 1))
            elif isinstance(nxt, nn.Flatten):
                if not pooled:
                    raise ValueError(
                        f"layer {j}: Flatten of a spatial map mixes channels with pixels; "
                        "only a Flatten after global pooling is supported"
                    )
            elif isinstance(nxt, CHANNELWISE):
                continue
            elif isinstance(nxt, nn.Conv2d | nn.Linear):
                if isinstance(nxt, nn.Conv2d) and nxt.groups != 1:
                    raise ValueError(f"layer {j}: grouped convolution consumers are not supported")
                chains.append(Chain(i, norm, j))
                break
            else:
                raise ValueError(f"layer {j}: unsupported module {type(nxt).__name__} in a chain")
    return chains


@dataclass(frozen=True)
class LayerReport:
    chain: Chain
    kept: int
    total: int
    loss: float  # the consumer's output change, E ||.||^2 (the trace's final loss)
    output_rel: float  # loss / E ||F||^2: the relative squared error of the consumer's output


def prune_sequential(
    model: nn.Sequential,
    batches: Iterable[torch.Tensor] | list[torch.Tensor],
    keep: float,
    method: str = "greedy-local",
    seed: int = 0,
    **options: object,
) -> tuple[nn.Sequential, list[LayerReport]]:
    """A pruned copy of ``model``: every chain keeps at most round(keep * N) channels.

    ``batches``: calibration inputs (a list, iterated once per chain). ``method``/``options``
    go to :func:`theory.select` with n = that many steps.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be a fraction in (0, 1]; got {keep}")
    batches = list(batches)
    if not batches:
        raise ValueError("no calibration batches")
    model = copy.deepcopy(model)
    reports = []
    for chain in find_chains(model):
        consumer = model[chain.consumer]
        accumulator = GramAccumulator(consumer)
        handle = consumer.register_forward_pre_hook(
            lambda _, args, acc=accumulator: acc.update(args[0])
        )
        try:
            with torch.no_grad():
                for batch in batches:
                    model(batch)
        finally:
            handle.remove()
        problem = LayerProblem.from_gram(accumulator.gram())
        n = problem.n_neurons
        trace = select(problem, max(1, round(keep * n)), method, seed=seed, **options)
        norm = model[chain.norm] if chain.norm is not None else None
        producer, new_norm, new_consumer = prune_chain(
            model[chain.producer], norm, consumer, trace.weights
        )
        model[chain.producer], model[chain.consumer] = producer, new_consumer
        if chain.norm is not None:
            model[chain.norm] = new_norm
        energy = problem.target_norm2
        reports.append(
            LayerReport(chain, int(trace.support.size), n, trace.loss, trace.loss / energy)
        )
    return model, reports


def accuracy(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == labels).float().mean())


def agreement(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == reference(x).argmax(dim=1)).float().mean())
