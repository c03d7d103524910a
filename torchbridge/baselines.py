"""Torch-Pruning's pruners on the same chains, as baselines in the same run.

Torch-Pruning (PyPI ``torch-pruning``) builds a dependency graph of the network and removes
coupled channels physically. Restricted to our chains (every convolution or linear layer that
is not a chain's producer, a sliced module in between, or a squeeze-excitation's ``fc2`` is
ignored), it prunes exactly the modules our surgery prunes (checked on ResNet-18,
MobileNetV2/V3 and EfficientNet-Lite0). Importances: ``tp-magnitude`` (the L2 norm of each
channel's group of weights), ``tp-l1`` (L1: filter-norm pruning), ``tp-taylor`` (|weight x
gradient| of the group, the gradient of the cross-entropy against the unpruned network's own
top-1 labels on the calibration images, so no labels are needed). A uniform ratio per chain;
a FLOPs target is reached by bisecting that ratio. The kept channels keep their weights (no
folding, no compensation).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from torchbridge.chains import Chain
from torchbridge.counting import count
from torchbridge.surgery import is_squeeze_excitation

TP_METHODS = ("tp-magnitude", "tp-l1", "tp-taylor")


def _importance(method: str):
    try:
        import torch_pruning as tp
    except ImportError:
        raise ValueError(f"{method} needs Torch-Pruning: pip install torch-pruning") from None
    if method == "tp-magnitude":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if method == "tp-l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if method == "tp-taylor":
        return tp.importance.GroupTaylorImportance()
    raise ValueError(f"unknown Torch-Pruning method {method!r}; valid: {', '.join(TP_METHODS)}")


def _ignored(model: nn.Module, chains: list[Chain]) -> list[nn.Module]:
    allowed = set()
    for chain in chains:
        allowed.add(id(model.get_submodule(chain.producer)))
        for name in chain.between:
            module = model.get_submodule(name)
            allowed.add(id(module))
            if is_squeeze_excitation(module):
                allowed.add(id(module.fc2))
    return [
        m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear) and id(m) not in allowed
    ]


def torch_pruning_prune(
    model: nn.Module,
    chains: list[Chain],
    batches: list[torch.Tensor],
    method: str,
    ratio: float,
) -> nn.Module:
    """A copy of ``model`` with the fraction ``ratio`` of every chain's channels removed by
    Torch-Pruning's ``method`` importance (``batches``: calibration, for tp-taylor)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"the pruning ratio must be in [0, 1); got {ratio}")
    importance = _importance(method)
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Torch-Pruning warns about unwrapped parameters
        pruner = tp.pruner.MetaPruner(
            model,
            batches[0][:1],
            importance=importance,
            pruning_ratio=ratio,
            ignored_layers=_ignored(model, chains),
        )
        if method == "tp-taylor":
            model.zero_grad()
            for batch in batches:
                logits = model(batch)
                labels = logits.detach().argmax(dim=1)
                nn.functional.cross_entropy(logits, labels).backward()
        pruner.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


def torch_pruning_to_flops(
    model: nn.Module,
    chains: list[Chain],
    batches: list[torch.Tensor],
    method: str,
    flops: float,
    iterations: int = 10,
) -> tuple[nn.Module, float]:
    """The Torch-Pruning result with the most FLOPs <= ``flops`` (a fraction) over a bisection
    of the uniform ratio; (model, ratio)."""
    example = batches[0][:1]
    base = count(model, example).flops
    low, high, best = 0.0, 0.99, None
    for _ in range(iterations):
        ratio = (low + high) / 2
        pruned = torch_pruning_prune(model, chains, batches, method, ratio)
        fraction = count(pruned, example).flops / base
        if fraction <= flops:
            high = ratio
            if best is None or fraction > best[2]:
                best = (pruned, ratio, fraction)
        else:
            low = ratio
    if best is None:
        raise ValueError(f"{method}: no ratio up to {high:.2f} reaches {flops:.3f} of the FLOPs")
    return best[0], best[1]
