"""Physical removal of channels from a producer -> (batch norm) -> consumer chain.

Given convex weights a (N,) over the producer's output channels (from any selector), the kept
channels are those with a_i > 0. The producer convolution and its batch norm keep only those
output channels; the consumer keeps only those input channels, each multiplied by N a_i (the
weights folded back, THEORY.md section 1). The result is plain modules, no masks: the pruned
chain computes exactly what the original computes with its consumer input channels scaled by
N a_i (zero for the dropped ones).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


def _check(producer: nn.Module, norm: nn.Module | None, consumer: nn.Module, n: int) -> None:
    if not isinstance(producer, nn.Conv2d) or producer.groups != 1:
        raise ValueError(f"unsupported producer {type(producer).__name__}: need a dense nn.Conv2d")
    if producer.out_channels != n:
        raise ValueError(
            f"weights have {n} entries; the producer has {producer.out_channels} outputs"
        )
    if norm is not None and (not isinstance(norm, nn.BatchNorm2d) or norm.num_features != n):
        raise ValueError(f"norm must be nn.BatchNorm2d({n}) or None; got {norm!r}")
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


def prune_chain(
    producer: nn.Conv2d,
    norm: nn.BatchNorm2d | None,
    consumer: nn.Conv2d | nn.Linear,
    weights: np.ndarray,
) -> tuple[nn.Conv2d, nn.BatchNorm2d | None, nn.Module]:
    """New (producer, norm, consumer) keeping the channels with weights > 0, folded N a_i."""
    a = np.asarray(weights, dtype=np.float64)
    _check(producer, norm, consumer, a.size)
    if not np.all(np.isfinite(a)) or np.any(a < 0) or not a.any():
        raise ValueError("weights must be finite, >= 0 and not all zero")
    keep = torch.as_tensor(np.flatnonzero(a))
    scale = torch.as_tensor(a.size * a[a > 0], dtype=consumer.weight.dtype)

    new_producer = copy.deepcopy(producer)
    new_producer.weight = nn.Parameter(producer.weight.detach()[keep].clone())
    if producer.bias is not None:
        new_producer.bias = nn.Parameter(producer.bias.detach()[keep].clone())
    new_producer.out_channels = len(keep)

    new_norm = None
    if norm is not None:
        new_norm = copy.deepcopy(norm)
        new_norm.num_features = len(keep)
        for name in ("weight", "bias"):
            if getattr(norm, name) is not None:
                setattr(new_norm, name, nn.Parameter(getattr(norm, name).detach()[keep].clone()))
        for name in ("running_mean", "running_var"):
            if getattr(norm, name) is not None:
                setattr(new_norm, name, getattr(norm, name)[keep].clone())

    new_consumer = copy.deepcopy(consumer)
    kept = consumer.weight.detach()[:, keep]
    shape = (1, -1) + (1,) * (kept.dim() - 2)
    new_consumer.weight = nn.Parameter(kept * scale.reshape(shape))
    if isinstance(consumer, nn.Conv2d):
        new_consumer.in_channels = len(keep)
    else:
        new_consumer.in_features = len(keep)
    return new_producer, new_norm, new_consumer
