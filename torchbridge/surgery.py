"""Physical removal of channels from a producer -> (channel-wise modules) -> consumer chain.

Given weights a (N,) over the producer's output channels (from any selector: convex, or free
for omp), the kept channels are those with a_i != 0. The producer convolution keeps only those
output channels; every channel-wise module with parameters in between (batch norms,
depthwise convolutions) keeps only those channels; the consumer keeps only those input
channels, each multiplied by N a_i (the weights folded back: docs/theory.md, first section).
The result is plain modules, no masks: the pruned chain computes exactly what the original
computes with its consumer input channels scaled by N a_i (zero for the dropped ones).

A squeeze-excitation module in between (a reduction N -> s and an expansion s -> N, 1x1
convolutions on the pooled channels: torchvision's ``fc1`` and ``fc2``, timm's
``conv_reduce`` and ``conv_expand``; :func:`squeeze_parts`) couples the channels: its gates
read every channel. It keeps the reduction's input columns and the expansion's output rows of
the kept channels; the dropped channels' share of the reduction's input is replaced by its
calibration mean, folded into its bias (``b1 += W1[:, dropped] @ mean[dropped]``) when the
means are given. The pruned chain
then equals the original with the consumer inputs scaled by N a_i *and* the dropped channels'
pooled values fixed at their means inside the squeeze (tested); the gates of the kept
channels move by what the dropped channels varied around their means.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def is_depthwise(module: nn.Module, n: int) -> bool:
    """A depthwise convolution over n channels (its inputs and outputs are the same)."""
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == module.in_channels == module.out_channels == n
    )


SQUEEZE_NAMES = (("fc1", "fc2"), ("conv_reduce", "conv_expand"))  # torchvision's, timm's


def squeeze_parts(module: nn.Module) -> tuple[str, str] | None:
    """The names of a squeeze-excitation block's reduction and expansion (1x1 convolutions
    n -> s and s -> n), or None when ``module`` is not one."""
    for reduce, expand in SQUEEZE_NAMES:
        first, second = getattr(module, reduce, None), getattr(module, expand, None)
        if (isinstance(first, nn.Conv2d) and isinstance(second, nn.Conv2d)
                and first.in_channels == second.out_channels):  # fmt: skip
            return reduce, expand
    return None


def is_squeeze_excitation(module: nn.Module, n: int | None = None) -> bool:
    """A squeeze-excitation block (:func:`squeeze_parts`) over n channels (any, when None)."""
    parts = squeeze_parts(module)
    return parts is not None and (n is None or getattr(module, parts[0]).in_channels == n)


def _check(
    producers: Sequence[nn.Module], between: Sequence[nn.Module], consumers: Sequence[nn.Module],
    n: int,
) -> None:  # fmt: skip
    for producer in producers:
        if not isinstance(producer, nn.Conv2d) or producer.groups != 1:
            raise ValueError(
                f"unsupported producer {type(producer).__name__}: need a dense nn.Conv2d"
            )
        if producer.out_channels != n:
            raise ValueError(
                f"weights have {n} entries; the producer has {producer.out_channels} outputs"
            )
    for module in between:
        norm = isinstance(module, nn.BatchNorm2d) and module.num_features == n
        if not (norm or is_depthwise(module, n) or is_squeeze_excitation(module, n)):
            raise ValueError(
                f"between producer and consumer only BatchNorm2d({n}), depthwise "
                f"Conv2d({n}, {n}, groups={n}) and squeeze-excitation over {n} channels can "
                f"be sliced; got {module!r}"
            )
    for consumer in consumers:
        if isinstance(consumer, nn.Conv2d):
            if consumer.groups != 1 or consumer.in_channels != n:
                raise ValueError(f"consumer must be a dense nn.Conv2d with {n} input channels")
        elif isinstance(consumer, nn.Linear):
            if consumer.in_features != n:
                raise ValueError(f"consumer must be an nn.Linear with {n} input features")
        else:
            raise ValueError(
                f"unsupported consumer {type(consumer).__name__}: use nn.Conv2d or nn.Linear"
            )


def _slice(module: nn.Module, keep: torch.Tensor) -> nn.Module:
    """A copy of a producer conv, batch norm or depthwise conv with only channels ``keep``."""
    new = copy.deepcopy(module)
    for name in ("weight", "bias"):
        param = getattr(module, name, None)
        if param is not None:
            setattr(new, name, nn.Parameter(param.detach()[keep].clone()))
    for name in ("running_mean", "running_var"):
        buffer = getattr(module, name, None)
        if buffer is not None:
            setattr(new, name, buffer[keep].clone())
    count = len(keep)
    if isinstance(new, nn.BatchNorm2d):
        new.num_features = count
    elif new.groups > 1:  # depthwise
        new.in_channels = new.out_channels = new.groups = count
    else:
        new.out_channels = count
    return new


def _slice_squeeze(module: nn.Module, keep: torch.Tensor, mean: torch.Tensor | None) -> nn.Module:
    """A copy of a squeeze-excitation block over only channels ``keep``; the dropped channels'
    pooled ``mean`` (N,) folded into the reduction's bias when given."""
    new = copy.deepcopy(module)
    reduce, expand = squeeze_parts(module)
    first, second = getattr(module, reduce), getattr(module, expand)
    new_first, new_second = getattr(new, reduce), getattr(new, expand)
    weight = first.weight.detach()
    new_first.weight = nn.Parameter(weight[:, keep].clone())
    new_first.in_channels = len(keep)
    if mean is not None:
        dropped = torch.ones(weight.shape[1], dtype=torch.bool)
        dropped[keep] = False
        shift = weight[:, dropped, 0, 0] @ mean.to(weight)[dropped]
        bias = first.bias.detach() if first.bias is not None else torch.zeros_like(shift)
        new_first.bias = nn.Parameter(bias + shift)
    new_second.weight = nn.Parameter(second.weight.detach()[keep].clone())
    if second.bias is not None:
        new_second.bias = nn.Parameter(second.bias.detach()[keep].clone())
    new_second.out_channels = len(keep)
    return new


def _slice_consumer(consumer: nn.Module, keep: torch.Tensor, a: np.ndarray) -> nn.Module:
    """A copy of a consumer with only input channels ``keep``, each scaled by N a_i."""
    scale = torch.as_tensor(
        a.size * a[a != 0], dtype=consumer.weight.dtype, device=consumer.weight.device
    )
    new = copy.deepcopy(consumer)
    kept = consumer.weight.detach()[:, keep]
    shape = (1, -1) + (1,) * (kept.dim() - 2)
    new.weight = nn.Parameter(kept * scale.reshape(shape))
    if isinstance(consumer, nn.Conv2d):
        new.in_channels = len(keep)
    else:
        new.in_features = len(keep)
    return new


def prune_group(
    producers: Sequence[nn.Conv2d],
    between: Sequence[nn.Module],
    consumers: Sequence[nn.Conv2d | nn.Linear],
    weights: np.ndarray,
    squeeze_means: dict[int, torch.Tensor] | None = None,
) -> tuple[list[nn.Conv2d], list[nn.Module], list[nn.Module]]:
    """:func:`prune_chain` of a channel group: every producer (the convolutions that write or
    add into the channels) and every module in between keep the channels with weights != 0,
    every consumer reads them folded N a_i. A residual stream's identity paths carry the kept
    channels as they are: the pruned network equals the original whose consumers see the
    stream scaled by N a_i (dropped channels at 0)."""
    a = np.asarray(weights, dtype=np.float64)
    _check(producers, between, consumers, a.size)
    if not producers or not consumers:
        raise ValueError("a group needs at least one producer and one consumer")
    if not np.all(np.isfinite(a)) or not a.any():
        raise ValueError("weights must be finite and not all zero")
    means = squeeze_means or {}
    keep = torch.as_tensor(np.flatnonzero(a))
    sliced = [
        _slice_squeeze(m, keep, means.get(i)) if is_squeeze_excitation(m) else _slice(m, keep)
        for i, m in enumerate(between)
    ]
    return ([_slice(p, keep) for p in producers], sliced,
            [_slice_consumer(c, keep, a) for c in consumers])  # fmt: skip


def prune_chain(
    producer: nn.Conv2d,
    between: Sequence[nn.Module],
    consumer: nn.Conv2d | nn.Linear,
    weights: np.ndarray,
    squeeze_means: dict[int, torch.Tensor] | None = None,
) -> tuple[nn.Conv2d, list[nn.Module], nn.Module]:
    """New (producer, between, consumer) keeping the channels with weights != 0, folded N a_i.

    ``squeeze_means``: for the squeeze-excitation modules in ``between`` (by position), the
    calibration mean of their pooled input (N,); without it the dropped channels simply leave
    the squeeze (shapes only, as when rebuilding a saved model)."""
    producers, sliced, consumers = prune_group([producer], between, [consumer], weights,
                                               squeeze_means)  # fmt: skip
    return producers[0], sliced, consumers[0]
