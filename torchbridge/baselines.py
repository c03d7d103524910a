"""Torch-Pruning's pruners on the same chains, as baselines in the same run.

Torch-Pruning (PyPI ``torch-pruning``) builds a dependency graph of the network and removes
coupled channels physically. Restricted to our chains (every convolution or linear layer that
is not a chain's producer, a sliced module in between, or a squeeze-excitation's expansion is
ignored), it prunes exactly the modules our surgery prunes (tested on ResNet-18/50,
MobileNetV2/V3 and EfficientNet-Lite0). Importances: ``tp-magnitude`` (the L2 norm of each
channel's group of weights: producer filter, batch norms, depthwise filter, consumer column,
averaged over the group, then divided by the mean over the channels), ``tp-l1`` (L1-norm
filter pruning, Li et al. 2017: the L1 norm of the producer's filter alone), ``tp-taylor``
(|weight x gradient| of the group, the gradient of the cross-entropy against the unpruned
network's own top-1 labels on the calibration images, so no labels are needed). Every chain
keeps the
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
from torchbridge.prune import check_widths
from torchbridge.surgery import is_squeeze_excitation, squeeze_parts

TP_METHODS = ("tp-magnitude", "tp-l1", "tp-taylor")


def _importance(method: str, producers: list[nn.Module]):
    """Torch-Pruning's importance for ``method``; ``producers``: the chains' producer convs."""
    try:
        import torch_pruning as tp  # noqa: PLC0415 (optional: the tp-* methods only)
    except ImportError:
        raise ValueError(f"{method} needs Torch-Pruning: pip install torch-pruning") from None
    if method == "tp-magnitude":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if method == "tp-l1":
        return _FilterL1({id(m) for m in producers}, tp.pruner.function.prune_conv_out_channels)
    if method == "tp-taylor":
        return tp.importance.GroupTaylorImportance()
    raise ValueError(f"unknown Torch-Pruning method {method!r}; valid: {', '.join(TP_METHODS)}")


class _FilterL1:
    """L1-norm filter pruning (Li et al. 2017): a group's channels scored by the L1 norm of the
    producer's filters alone. (Torch-Pruning's ``group_reduction="first"`` scores its group's
    root, which in an inverted residual is the depthwise convolution, not the producer.)"""

    def __init__(self, producers: set[int], prune_out) -> None:
        self.producers, self.prune_out = producers, prune_out

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        for i, (dep, idxs) in enumerate(group):
            if id(dep.layer) in self.producers and dep.pruning_fn == self.prune_out:
                l1 = dep.layer.weight[idxs].abs().flatten(1).sum(dim=1)
                at = torch.as_tensor(group[i].root_idxs, device=l1.device)  # in the group's order
                scores = l1.new_zeros(len(group[0].root_idxs))
                return scores.scatter_(0, at, l1)
        raise ValueError("tp-l1: a Torch-Pruning group without a chain's producer")


def _ignored(model: nn.Module, chains: list[Chain]) -> list[nn.Module]:
    allowed = set()
    for chain in chains:
        allowed.add(id(model.get_submodule(chain.producer)))
        for name in chain.between:
            module = model.get_submodule(name)
            allowed.add(id(module))
            if is_squeeze_excitation(module):
                allowed.add(id(getattr(module, squeeze_parts(module)[1])))
    return [
        m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear) and id(m) not in allowed
    ]


def torch_pruning_prune(
    model: nn.Module,
    chains: list[Chain],
    batches: list[torch.Tensor],
    method: str,
    keep: float | None = None,
    widths: dict[str, int] | None = None,
) -> nn.Module:
    """A copy of ``model`` whose chains keep max(1, round(keep N)) channels each (the widths
    of :func:`torchbridge.budget.uniform_widths`, as our selectors keep them) or ``widths``
    (channels by producer name, every chain), chosen by Torch-Pruning's ``method`` importance
    (``batches``: calibration, for tp-taylor)."""
    if (keep is None) == (widths is None):
        raise ValueError("give exactly one of keep (a fraction) and widths (channels per chain)")
    if keep is not None and not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be a fraction in (0, 1]; got {keep}")
    if widths is not None:
        check_widths(model, chains, widths)
    model = copy.deepcopy(model).eval()
    importance = _importance(method, [model.get_submodule(c.producer) for c in chains])
    import torch_pruning as tp  # noqa: PLC0415 (optional: the tp-* methods only)

    totals = chain_widths(model, chains)
    widths = uniform_widths(totals, keep) if widths is None else widths
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
