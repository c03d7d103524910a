"""Torch-Pruning's pruners on the same chains, as baselines in the same run.

Torch-Pruning (PyPI ``torch-pruning``) builds a dependency graph of the network and removes
coupled channels physically. Restricted to our chains (every convolution or linear layer that
is not a chain's producer, a sliced module in between, or a squeeze-excitation's ``fc2`` is
ignored), it prunes exactly the modules our surgery prunes (checked on ResNet-18,
MobileNetV2/V3 and EfficientNet-Lite0). Importances: ``tp-magnitude`` (the L2 norm of each
channel's group of weights), ``tp-l1`` (L1: filter-norm pruning), ``tp-taylor`` (|weight x
gradient| of the group, the gradient of the cross-entropy against the unpruned network's own
top-1 labels on the calibration images, so no labels are needed). Every chain keeps the
same widths as our selectors at the same kept fraction (a FLOPs target: the uniform fraction
of :func:`torchbridge.budget.uniform_keep`). The kept channels keep their weights (no folding,
no compensation).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from torchbridge.budget import uniform_widths
from torchbridge.chains import Chain, chain_widths
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
    keep: float,
) -> nn.Module:
    """A copy of ``model`` whose chains keep max(1, round(keep N)) channels each (the widths
    of :func:`torchbridge.budget.uniform_widths`, as our selectors keep them), chosen by
    Torch-Pruning's ``method`` importance (``batches``: calibration, for tp-taylor)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be a fraction in (0, 1]; got {keep}")
    importance = _importance(method)
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    totals = chain_widths(model, chains)
    widths = uniform_widths(totals, keep)
    # Torch-Pruning keeps int(N (1 - ratio)) channels: half a channel of margin gives ours
    ratios = {
        model.get_submodule(name): 1.0 - (widths[name] + 0.5) / n for name, n in totals.items()
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Torch-Pruning warns about unwrapped parameters
        pruner = tp.pruner.MetaPruner(
            model,
            batches[0][:1],
            importance=importance,
            pruning_ratio_dict=ratios,
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
    kept = {name: model.get_submodule(name).out_channels for name in totals}
    if kept != widths:
        raise ValueError(f"Torch-Pruning kept {kept}, not the widths asked for {widths}")
    return model.eval()
