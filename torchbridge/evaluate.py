"""How a pruned network compares with labels and with the network it came from."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from torchbridge.oracle import output_distance


def accuracy(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, batch: int = 256) -> float:
    """Top-1 accuracy of ``model`` on images x (B, ...) with labels (B,), ``batch`` at a time."""
    with torch.no_grad():
        right = sum(
            int((model(xb).argmax(dim=1) == yb.to(xb.device)).sum())
            for xb, yb in zip(x.split(batch), labels.split(batch), strict=True)
        )
    return right / len(labels)


def compare(model: nn.Module, reference: nn.Module, batches: Iterable[torch.Tensor]) -> dict:
    """Top-1 agreement and mean KL(reference || model) of the softmax outputs over batches."""
    same, kl, images = 0, 0.0, 0
    with torch.no_grad():
        for x in batches:
            ref, out = reference(x).double(), model(x).double()
            same += int((out.argmax(dim=1) == ref.argmax(dim=1)).sum())
            kl += float(output_distance(out, ref, "kl").sum())
            images += x.shape[0]
    if images == 0:
        raise ValueError("no evaluation images")
    return {"agreement": same / images, "kl": kl / images, "images": images}
