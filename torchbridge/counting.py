"""FLOPs, multiply-accumulates and parameters of a module, by torch's own flop counter.

torch.utils.flop_counter counts a multiply-accumulate as 2 FLOPs (convolutions, matrix
products); ``macs`` is FLOPs / 2. Counts are per forward pass of the example batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Counts:
    flops: int
    macs: int
    params: int


def count(model: nn.Module, example: torch.Tensor) -> Counts:
    """FLOPs and MACs of model(example), and the number of parameters of model."""
    mode = FlopCounterMode(display=False)
    with torch.no_grad(), mode:
        model(example)
    flops = int(mode.get_total_flops())
    return Counts(flops=flops, macs=flops // 2, params=sum(p.numel() for p in model.parameters()))
