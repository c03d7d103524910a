"""EfficientNet-Lite0 with its real ImageNet weights and the photos it is calibrated and
tested on, as the EfficientNet experiments share them."""

from __future__ import annotations

from pathlib import Path

from torchbridge.chains import block_chains
from torchbridge.efficientnet import load_efficientnet_lite0
from torchbridge.images import photo_sets
from torchbridge.models import views


def effnet_setup(weights: str | None, images: int, device: str = "cpu") -> dict:
    """{"model" (on ``device``, eval), "chains" (every chain), "calibration" (``images``
    random-resized views of 6 photos, (images, 3, 224, 224)), "test" (80 views of 5 others),
    "photos" (which photos)}; ``weights``: a file, or None for the package's."""
    model = load_efficientnet_lite0(Path(weights) if weights is not None else None).to(device)
    calibration, test, photos = photo_sets(views("efficientnet_lite0"), images, seed=0)
    return {"model": model, "chains": block_chains(model), "calibration": calibration.to(device),
            "test": test.to(device), "photos": photos}  # fmt: skip
