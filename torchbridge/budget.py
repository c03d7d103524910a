"""A whole-network FLOPs target, reached by searching one per-chain tolerance shared by all
chains (:func:`torchbridge.prune.prune_chains` with ``tol``).

The FLOPs left fall as the shared tolerance grows, so the search bisects log10(tol) between a
tolerance that keeps (almost) everything and one that keeps one channel per chain, running the
whole layer-by-layer pruning at each probe, and returns the pruned network with the most FLOPs
at or under the target. Before searching it checks that the target can be met at all: with
every chain cut to one channel, the layers outside the chains may still cost more.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchbridge.chains import Chain
from torchbridge.counting import count
from torchbridge.prune import LayerReport, prune_chains, resize


@dataclass(frozen=True)
class Probe:
    tol: float
    flops: float  # fraction of the unpruned network's FLOPs


def prune_to_flops(
    model: nn.Module,
    chains: list[Chain],
    batches: list[torch.Tensor],
    flops: float,
    *,
    iterations: int = 8,
    slack: float = 0.02,
    **options: object,
) -> tuple[nn.Module, list[LayerReport], list[Probe]]:
    """The pruned network with the most FLOPs <= ``flops`` (a fraction of ``model``'s) found
    in ``iterations`` probes (stops early within ``slack`` under the target), its reports,
    and every probe. ``options`` go to :func:`prune_chains` (method, seed, ...)."""
    if not 0.0 < flops <= 1.0:
        raise ValueError(f"the FLOPs target must be a fraction in (0, 1]; got {flops}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1; got {iterations}")
    batches = list(batches)
    if not batches:
        raise ValueError("no calibration batches")
    example = batches[0][:1]
    base = count(model, example).flops
    floor = count(resize(model, chains, {c.producer: 1 for c in chains}), example).flops / base
    if floor > flops:
        raise ValueError(
            f"a FLOPs target of {flops:.3f} cannot be met: with every chain cut to one channel "
            f"the network keeps {floor:.3f} of its FLOPs (layers outside the chains are not pruned)"
        )
    low, high = -8.0, 2.0  # log10 of the shared relative tolerance
    best, probes = None, []
    for _ in range(iterations):
        middle = (low + high) / 2
        pruned, reports = prune_chains(model, chains, batches, tol=10.0**middle, **options)
        fraction = count(pruned, example).flops / base
        probes.append(Probe(10.0**middle, fraction))
        if fraction <= flops:
            high = middle
            if best is None or fraction > best[2]:
                best = (pruned, reports, fraction)
            if fraction >= flops - slack:
                break
        else:
            low = middle
    if best is None:  # every probe kept too much: take the widest tolerance probed and beyond
        pruned, reports = prune_chains(model, chains, batches, tol=10.0**high, **options)
        fraction = count(pruned, example).flops / base
        probes.append(Probe(10.0**high, fraction))
        if fraction > flops:
            raise ValueError(
                f"no tolerance up to {10.0**high:.3g} reaches {flops:.3f} of the FLOPs "
                f"(reached {fraction:.3f}); raise iterations"
            )
        best = (pruned, reports, fraction)
    return best[0], best[1], probes


def widths(reports: list[LayerReport]) -> dict[str, int]:
    """Kept width per chain (by producer name)."""
    return {r.chain.producer: r.kept for r in reports}
