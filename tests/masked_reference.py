"""The masked computation that surgery must equal: the unpruned network whose consumers see
their inputs scaled by N a_i (dropped channels at 0) and whose squeeze-excitation blocks see
the dropped channels' pooled values at 0, beside the physically pruned copy."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from torchbridge.chains import Chain, Group
from torchbridge.prune import apply_weights
from torchbridge.surgery import is_squeeze_excitation, squeeze_parts


def random_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    """Convex weights (n,) on a random subset of about half the channels (at least one)."""
    a = rng.dirichlet(np.ones(n))
    a[rng.random(n) < 0.5] = 0.0
    a[rng.integers(n)] = 1.0
    return a / a.sum()


def masked_and_pruned(
    model: nn.Module, groups: list[Chain | Group], x: torch.Tensor, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, nn.Module]:
    """(the unpruned output, the masked output, the pruned copy) of ``model`` on ``x`` with
    every chain or group of ``groups`` cut to :func:`random_weights` at once."""
    rng = np.random.default_rng(seed)
    pruned, hooks = copy.deepcopy(model), []
    for group in groups:
        n = model.get_submodule(group.producer).out_channels
        a = random_weights(n, rng)
        for name in group.consumers:
            consumer = model.get_submodule(name)
            shape = (1, -1, 1, 1) if isinstance(consumer, nn.Conv2d) else (1, -1)
            gates = torch.as_tensor(n * a, dtype=x.dtype).reshape(shape)
            hooks.append(consumer.register_forward_pre_hook(
                lambda _, args, g=gates: (args[0] * g,)))  # fmt: skip
        keep = torch.as_tensor(a != 0.0, dtype=x.dtype).reshape(1, -1, 1, 1)
        for name in group.between:
            module = model.get_submodule(name)
            if is_squeeze_excitation(module):
                reduce = getattr(module, squeeze_parts(module)[0])
                hooks.append(reduce.register_forward_pre_hook(
                    lambda _, args, k=keep: (args[0] * k,)))  # fmt: skip
        apply_weights(pruned, group, a)
        for name in group.producers:
            assert pruned.get_submodule(name).out_channels == np.count_nonzero(a)
    with torch.no_grad():
        masked = model(x)
        for hook in hooks:
            hook.remove()
        return model(x), masked, pruned
