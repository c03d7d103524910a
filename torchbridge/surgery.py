"""Physical removal of channels from a producer -> (channel-wise modules) -> consumer chain.

Given weights a (N,) over the producer's output channels (from any selector: convex, or free
for omp), the kept channels are those with a_i != 0. The producer convolution keeps only those
output channels; every channel-wise module with parameters in between (batch norms,
depthwise convolutions) keeps only those channels; the consumer keeps only those input
channels, each multiplied by N a_i (the weights folded back, THEORY.md section 1). The result
is plain modules, no masks: the pruned chain computes exactly what the original computes with
its consumer input channels scaled by N a_i (zero for the dropped ones).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def _is_depthwise(module: nn.Module, n: int) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == module.in_channels == module.out_channels == n
    )


def _check(producer: nn.Module, between: Sequence[nn.Module], consumer: nn.Module, n: int) -> None:
    if not isinstance(producer, nn.Conv2d) or producer.groups != 1:
        raise ValueError(f"unsupported producer {type(producer).__name__}: need a dense nn.Conv2d")
    if producer.out_channels != n:
        raise ValueError(
            f"weights have {n} entries; the producer has {producer.out_channels} outputs"
        )
    for module in between:
        norm = isinstance(module, nn.BatchNorm2d) and module.num_features == n
        if not (norm or _is_depthwise(module, n)):
            raise ValueError(
                f"between producer and consumer only BatchNorm2d({n}) and depthwise "
                f"Conv2d({n}, {n}, groups={n}) can be sliced; got {module!r}"
            )
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


def prune_chain(
    producer: nn.Conv2d,
    between: Sequence[nn.Module],
    consumer: nn.Conv2d | nn.Linear,
    weights: np.ndarray,
) -> tuple[nn.Conv2d, list[nn.Module], nn.Module]:
    """New (producer, between, consumer) keeping the channels with weights != 0, folded N a_i."""
    a = np.asarray(weights, dtype=np.float64)
    _check(producer, between, consumer, a.size)
    if not np.all(np.isfinite(a)) or not a.any():
        raise ValueError("weights must be finite and not all zero")
    keep = torch.as_tensor(np.flatnonzero(a))
    scale = torch.as_tensor(a.size * a[a != 0], dtype=consumer.weight.dtype)

    new_consumer = copy.deepcopy(consumer)
    kept = consumer.weight.detach()[:, keep]
    shape = (1, -1) + (1,) * (kept.dim() - 2)
    new_consumer.weight = nn.Parameter(kept * scale.reshape(shape))
    if isinstance(consumer, nn.Conv2d):
        new_consumer.in_channels = len(keep)
    else:
        new_consumer.in_features = len(keep)
    return _slice(producer, keep), [_slice(m, keep) for m in between], new_consumer
