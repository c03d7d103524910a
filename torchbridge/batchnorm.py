"""Batch-norm statistics re-estimated on calibration data after pruning (adaptive batch
normalisation, Li et al. 2020, EagleEye; Li et al. 2016, AdaBN).

Pruning (and refitting) changes what reaches the batch norms after the pruned layers, while
their running means and variances are still those of the unpruned network. Re-estimating
them is one pass over the calibration batches with the batch norms alone in training mode
(every other module, dropout included, stays in eval mode) and a cumulative average
(``momentum=None``): each running mean becomes the average over batches of its input's batch
means, each running variance the average of the unbiased batch variances. Within the pass a
batch norm normalises with its batch statistics, as in training.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def recalibrate_batch_norms(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate, in place, the running statistics of every batch norm of ``model`` on
    ``batches`` (see the module docstring); the model is left in eval mode, its weights
    untouched. Returns the number of batch norms re-estimated."""
    batches = list(batches)
    if not batches:
        raise ValueError("no calibration batches: batch norm statistics need at least one")
    if min(batch.shape[0] for batch in batches) < 2:
        raise ValueError("batch norm statistics need batches of 2 images or more")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bad := [m for m in norms if not m.track_running_stats]:
        raise ValueError(f"{len(bad)} batch norm(s) track no running statistics to re-estimate")
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches
        norm.train()
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.eval()
    return len(norms)
