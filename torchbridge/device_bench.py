"""Rows "device" of the torch-bridge benchmark: pruning at ImageNet resolution with thousands
of calibration images on one device (a CUDA GPU where there is one).

For each network (torchvision's MobileNetV2 with random weights, for timing: its ImageNet
weights cannot be loaded offline; EfficientNet-Lite0 with its real ImageNet weights, for
timing and quality), on ``images`` random-resized views of the shipped photos: the forward
passes over all of them (the baseline every time is divided by), one pass accumulating every
chain's Gram matrix on the unpruned network, one pruning pass with greedy-local at keep 0.5,
pruning to a FLOPs target with greedy-local (``allocation="predicted"``: two passes) and
with Torch-Pruning's magnitude and Taylor pruners at the same FLOPs; agreement and KL with
the unpruned network on the 80 held-out views (real weights only); peak device memory. Then
the pruning pass at keep 0.5 on the first ``cpu_images`` views, on the device and on the
CPU, in this process: the device's speed-up on the same work.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from torchbridge.budget import prune_to_flops
from torchbridge.chains import block_chains
from torchbridge.counting import synchronize
from torchbridge.images import photo_sets
from torchbridge.job import PruneConfig, measure, prune_model
from torchbridge.models import load, views
from torchbridge.prune import layer_problems, prune_chains

DEVICE_NETWORKS = ("mobilenet_v2", "efficientnet_lite0")


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    """(fn(), seconds), the device's queued work included."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def _forward(model: nn.Module, batches: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for batch in batches:
            model(batch)


def device_rows(
    arch: str,
    device: str,
    images: int,
    *,
    batch: int = 128,
    size: int = 224,
    flops: float = 0.8,
    cpu_images: int = 64,
) -> dict:
    """One network's rows on ``device`` (see the module's docstring): seconds of each task
    and its ratio to the forward passes, quality of the pruned networks, and the CPU
    comparison (absent when ``device`` is the CPU)."""
    target = torch.device(device)
    weights = "package" if arch == "efficientnet_lite0" else "none"
    model = load(arch, weights).to(target).eval()
    chains = block_chains(model)
    calibration, test, _ = photo_sets(views(arch, size), images, seed=0)
    batches = list(calibration.to(target).split(batch))
    test = test.to(target)
    _forward(model, batches[:1])  # warm-up: kernels chosen, memory pools filled
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    _, forward = _timed(lambda: _forward(model, batches), target)
    row = {"arch": arch, "weights": weights, "device": str(target), "images": images,
           "batch": batch, "size": size, "chains": len(chains), "forward_s": forward}  # fmt: skip
    _, row["gram_pass_s"] = _timed(lambda: layer_problems(model, chains, batches), target)
    _, row["keep_half_s"] = _timed(lambda: prune_chains(model, chains, batches, keep=0.5), target)
    base = measure(model, model, test, None, batch)
    tasks = {
        "greedy-local-predicted": lambda: prune_to_flops(
            model, chains, batches, flops, allocation="predicted"
        )[0],
        **{
            name: lambda name=name: prune_model(
                model, chains, batches, PruneConfig(method=name, flops=flops)
            )[0]
            for name in ("tp-magnitude", "tp-taylor")
        },
    }
    row["flops_target"] = flops
    for name, task in tasks.items():
        pruned, seconds = _timed(task, target)
        after = measure(pruned, model, test, None, batch)
        row[name] = {"seconds": seconds, "over_forward": seconds / forward,
                     "flops": after["flops"] / base["flops"],
                     "latency": after["latency_s"] / base["latency_s"]}  # fmt: skip
        if weights != "none":  # a random network's outputs are not worth agreeing with
            row[name] |= {"agreement": after["agreement"], "kl": after["kl"]}
    for key in ("gram_pass_s", "keep_half_s"):
        row[key.replace("_s", "_over_forward")] = row[key] / forward
    if target.type == "cuda":
        row["peak_device_mib"] = torch.cuda.max_memory_allocated(target) / 2**20
        row["device_name"] = torch.cuda.get_device_name(target)
        row["tf32_convolutions"] = torch.backends.cudnn.allow_tf32
        row |= _against_cpu(model, chains, calibration[:cpu_images], batch, target)
    return row


def _against_cpu(
    model: nn.Module, chains: list, images: torch.Tensor, batch: int, device: torch.device
) -> dict:
    """One pruning pass at keep 0.5 on ``images``, on ``device`` and on the CPU."""
    on_device = list(images.to(device).split(batch))
    _, device_s = _timed(lambda: prune_chains(model, chains, on_device, keep=0.5), device)
    cpu_model = model.cpu()
    try:
        _, cpu_s = _timed(
            lambda: prune_chains(cpu_model, chains, list(images.split(batch)), keep=0.5),
            torch.device("cpu"),
        )
    finally:
        model.to(device)
    return {"cpu_images": len(images), "cpu_threads": torch.get_num_threads(),
            "keep_half_cpu_s": cpu_s, "keep_half_device_s": device_s,
            "device_speedup": cpu_s / device_s}  # fmt: skip
