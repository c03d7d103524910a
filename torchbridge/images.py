"""Calibration and evaluation images, offline: real photos shipped inside packages, any
ImageFolder-layout directory, or the first batches of any DataLoader, as batches of inputs.

Views are (3, size, size) float tensors: RGB in [0, 1] minus ``mean`` over ``std`` per channel
(ImageNet statistics for torchvision's networks; 0.5 and 0.5, i.e. [-1, 1], for
EfficientNet-Lite). Photos: scikit-image's sample images and scikit-learn's two sample images.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional
from torchvision.datasets import ImageFolder

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
          "coins", "retina", "camera", "china", "flower")  # fmt: skip
# (skimage's "cat" is the same picture as "chelsea", so it is not used)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
SYMMETRIC = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def photos() -> dict[str, np.ndarray]:
    """Real photos as uint8 RGB arrays (H, W, 3), from scikit-image and scikit-learn."""
    import skimage.data  # noqa: PLC0415 (slow to import; the photos only)
    from sklearn.datasets import load_sample_images  # noqa: PLC0415

    out = {}
    for name in PHOTOS[:-2]:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        out[name] = image[:, :, :3].astype(np.uint8)
    for name, image in zip(PHOTOS[-2:], load_sample_images().images, strict=True):
        out[name] = np.asarray(image, dtype=np.uint8)
    return out


@dataclass(frozen=True)
class Views:
    """How images become network inputs: crop size and per-channel normalisation."""

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET[0]
    std: tuple[float, float, float] = IMAGENET[1]

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean)[:, None, None]
        return (x - mean) / torch.tensor(self.std)[:, None, None]

    def centre(self, image: np.ndarray) -> torch.Tensor:
        """Short side resized to size * 8/7 (256 for 224), centre crop: (3, size, size)."""
        x = torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
        h, w = x.shape[2:]
        scale = round(self.size * 8 / 7) / min(h, w)
        size = (round(h * scale), round(w * scale))
        x = functional.interpolate(x, size=size, mode="bilinear", antialias=True)
        top, left = (x.shape[2] - self.size) // 2, (x.shape[3] - self.size) // 2
        return self._normalise(x[0, :, top : top + self.size, left : left + self.size])

    def random(self, image: np.ndarray, count: int, rng: np.random.Generator) -> torch.Tensor:
        """Random-resized crops (8% to 100% of the area, aspect 3/4 to 4/3), flipped at random:
        (count, 3, size, size)."""
        x = torch.tensor(image, dtype=torch.float32).permute(2, 0, 1) / 255.0
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
            size = (self.size, self.size)
            crop = functional.interpolate(crop, size=size, mode="bilinear", antialias=True)[0]
            views.append(self._normalise(crop.flip(2) if rng.random() < 0.5 else crop))
        return torch.stack(views)


def photo_sets(
    views: Views, calibration_images: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Calibration views (random crops of the first 6 photos, ``calibration_images`` in all,
    in a seeded random order, so that any prefix mixes the photos) and held-out test views
    (centre crop and 15 random crops of each of the other 5), drawn from a generator of their
    own: the same 80 test views whatever the number of calibration views."""
    rng = np.random.default_rng(seed)
    images = photos()
    names = sorted(images)
    calibration_names, test_names = names[:6], names[6:]
    per = -(-calibration_images // len(calibration_names))
    calibration = torch.cat([views.random(images[n], per, rng) for n in calibration_names])
    order = torch.as_tensor(rng.permutation(len(calibration))[:calibration_images])
    held_out = np.random.default_rng([seed, 1])
    test = torch.cat(
        [torch.cat([views.centre(images[n])[None], views.random(images[n], 15, held_out)])
         for n in test_names]
    )  # fmt: skip
    about = {"calibration_photos": calibration_names, "test_photos": test_names}
    return calibration[order], test, about


def folder_sets(
    root: Path, views: Views, calibration_images: int, test_images: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """Disjoint seeded samples of an ImageFolder tree (root/CLASS/IMAGE): calibration views,
    test views (centre crops, both) and the labels (class index in sorted folder order) of
    the calibration views, then of the test views."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder not found: {root} (expected ROOT/CLASS/IMAGE files)")
    try:
        found = ImageFolder(str(root))
    except (FileNotFoundError, RuntimeError) as error:
        raise ValueError(f"no images in {root}: {error}") from None
    if len(found) < calibration_images + test_images:
        raise ValueError(
            f"{root} holds {len(found)} images; {calibration_images} calibration and "
            f"{test_images} test images were asked for"
        )
    order = np.random.default_rng(seed).permutation(len(found))

    def load(indices):
        tensors = []
        for i in indices:
            file = found.samples[i][0]
            try:
                with Image.open(file) as image:
                    tensors.append(views.centre(np.asarray(image.convert("RGB"))))
            except OSError as error:  # PIL's UnidentifiedImageError is one
                raise ValueError(f"cannot read the image {file}: {error}") from None
        return torch.stack(tensors)

    calibration = load(order[:calibration_images])
    test_ids = order[calibration_images : calibration_images + test_images]
    labels = torch.tensor([found.samples[i][1] for i in order[: len(calibration) + len(test_ids)]])
    return calibration, load(test_ids), labels, {"classes": len(found.classes)}


def loader_batches(
    loader: Iterable, batches: int, seed: int = 0, device: str | torch.device = "cpu"
) -> list[torch.Tensor]:
    """The first ``batches`` input batches (B, ...) of ``loader`` (a DataLoader or any iterable
    of tensors, or of (inputs, labels, ...) tuples: the first item is kept), on ``device``.
    Iterated with torch's random generator seeded by ``seed`` (and restored after), so a
    shuffling DataLoader without a generator of its own gives the same batches for a seed."""
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise ValueError(f"batches must be a positive number of batches; got {batches!r}")
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for item in loader:
            out.append(item[0] if isinstance(item, tuple | list) and item else item)
            if len(out) == batches:
                return [batch.to(device) for batch in calibration_list(out)]
    raise ValueError(f"the loader gave {len(out)} batches; {batches} were asked for")


def calibration_list(batches: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """``batches`` as a list, with a clear error unless each is a finite tensor of inputs
    (B, ...) (a DataLoader of (inputs, labels): :func:`torchbridge.images.loader_batches`)."""
    batches = list(batches)
    if not batches:
        raise ValueError("no calibration batches")
    for i, batch in enumerate(batches):
        if not torch.is_tensor(batch) or batch.dim() < 2:
            raise ValueError(
                f"calibration batch {i} is not a tensor of inputs (B, ...) but "
                f"{type(batch).__name__}; for a DataLoader of (inputs, labels) use "
                "torchbridge.images.loader_batches"
            )
        if batch.is_floating_point() and not torch.isfinite(batch).all():
            raise ValueError(f"calibration batch {i} holds NaN or infinite values")
    return batches
