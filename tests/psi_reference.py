"""psi computed explicitly, channel by channel, as the reference for the Gram matrices that
torchbridge accumulates from activations."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional


def explicit_psi(consumer: nn.Module, h: torch.Tensor) -> np.ndarray:
    """psi_i = N * consumer(h with only channel i kept), minus the bias: (N, B, ...) float64."""
    n = h.shape[1]
    out = []
    for i in range(n):
        only = torch.zeros_like(h)
        only[:, i] = h[:, i]
        if isinstance(consumer, nn.Linear):
            y = functional.linear(only, consumer.weight)
        else:
            y = functional.conv2d(
                only, consumer.weight, None, consumer.stride, consumer.padding, consumer.dilation
            )
        out.append(n * y.detach().reshape(h.shape[0], -1).numpy())
    return np.stack(out)
