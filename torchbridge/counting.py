"""FLOPs, multiply-accumulates and parameters of a module, by torch's own flop counter; latency.

torch.utils.flop_counter counts a multiply-accumulate as 2 FLOPs (convolutions, matrix
products); ``macs`` is FLOPs / 2. Counts are per forward pass of the example batch.
"""

from __future__ import annotations

import statistics
import time
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


def leaf_flops(model: nn.Module, example: torch.Tensor) -> tuple[int, dict[str, int]]:
    """(FLOPs of model(example), {name: FLOPs} of every leaf module that has any), from one
    count by torch's flop counter (which names modules by class name and path)."""
    mode = FlopCounterMode(display=False)
    with torch.no_grad(), mode:
        model(example)
    counts, prefix = mode.get_flop_counts(), type(model).__name__ + "."
    leaves = {}
    for name, module in model.named_modules():
        flops = sum(counts.get(prefix + name, {}).values())
        if name and flops and next(module.children(), None) is None:
            leaves[name] = int(flops)
    return int(mode.get_total_flops()), leaves


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a CUDA device; nothing to wait for elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latency(model: nn.Module, example: torch.Tensor, repeats: int = 10) -> float:
    """Median seconds of one forward pass of ``example`` on its device (after one warm-up)."""
    timings = []
    with torch.no_grad():
        for i in range(repeats + 1):
            synchronize(example.device)
            start = time.perf_counter()
            model(example)
            synchronize(example.device)
            if i:
                timings.append(time.perf_counter() - start)
    return statistics.median(timings)
