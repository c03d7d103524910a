"""Command line of the torch bridge.

    python -m torchbridge prune --arch ARCH --weights torchvision|package|none|PATH
        --data photos|IMAGEFOLDER --method METHOD (--keep F | --tol T | --flops F | --widths
        FILE.json) --out DIR
    python -m torchbridge prune --config prune.toml [any flag above, over the file] --out DIR
    python -m torchbridge config --arch ARCH --keep F [...] > prune.toml   (flags as a file)
    python -m torchbridge config --reference   (every key: type, default, range, help)
    python -m torchbridge eval --model DIR/pruned.pt --data ... [--weights ...]
    python -m torchbridge path --chain 7 --keep 0.775 [--methods ...] [--no-repeats]
        [--oracle-images 8] [--candidates K] [--every 4] [--out DIR]
    python -m torchbridge plot-path RUN_DIR [RUN_DIR ...] [--out figures/torchbridge]

``prune`` prunes the internal channels of a torchvision ResNet-18/34/50, MobileNetV2 or
MobileNetV3-Small/Large, or of EfficientNet-Lite0, layer by layer from the input side, and
writes the pruned model and report.json (see torchbridge.job); every flag is a field of
torchbridge.job.PruneConfig, declared once with its type, range and help (sims.schema).

Methods: the selectors of theory (global ones included, and whole-output, which chooses each
consumer's channels by the least-squares refit of its whole output and sets those weights)
and Torch-Pruning's tp-magnitude, tp-l1 and tp-taylor (torchbridge.baselines). Every command
writes report.json atomically. The comparisons of methods are experiments:
``python -m experiments run effnet-compare`` and ``mnist-compare``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from sims.config import dumps
from sims.schema import add_flags, check, given, read_mapping, reference
from sims.store import atomic_write, check_folder, versions
from theory.selectors import SELECTORS
from torchbridge.chains import block_chains, pick_chains
from torchbridge.efficientnet import load_efficientnet_lite0
from torchbridge.folding import folding_experiment
from torchbridge.images import photo_sets
from torchbridge.job import PruneConfig, check_device, eval_job, prune_job
from torchbridge.methods import METHODS
from torchbridge.models import views
from torchbridge.path import labelled, output_paths, plot_paths


def _effnet_setup(weights: Path | None, images: int, batch: int, device: str = "cpu") -> tuple:
    """EfficientNet-Lite0 with its ImageNet weights on ``device``, its chains, ``images``
    calibration views (N, 3, 224, 224), the 80 test views, and what the photos are."""
    if min(images, batch) < 1:
        raise ValueError("--images and --batch must be >= 1")
    check_device(device)
    model = load_efficientnet_lite0(weights).to(device)
    calibration, test, about = photo_sets(views("efficientnet_lite0"), images, seed=0)
    return model, block_chains(model), calibration.to(device), test.to(device), about


def effnet_path(
    position: int,
    keep: float,
    methods: tuple[str, ...],
    weights: Path | None,
    out: Path,
    *,
    images: int = 96,
    batch: int = 32,
    oracle_images: int = 8,
    candidates: int | None = None,
    no_repeats: bool = False,
    every: int = 1,
) -> dict:
    if candidates is not None and candidates < 1:
        raise ValueError("--candidates must be >= 1")
    if not 0 < keep <= 1 or min(oracle_images, every) < 1:
        raise ValueError("--keep must be in (0, 1], --oracle-images and --every >= 1")
    model, chains, calibration, _, about = _effnet_setup(weights, images, batch)
    (chain,) = pick_chains(chains, [position])
    config = {"chain": position, "producer": chain.producer, "keep": keep,
              "methods": list(methods), "calibration_images": images, "batch": batch,
              "oracle_images": oracle_images, "candidates": candidates,
              "no_repeats": no_repeats, "every": every, "seed": 0} | about  # fmt: skip
    report = {"config": config, "versions": versions() | {"torch": torch.__version__},
              "paths": {}, "complete": False}  # fmt: skip

    def finished(method: str, path: dict) -> None:
        report["paths"][method] = path
        atomic_write(out / "report.json", json.dumps(report, indent=2))
        low = int(np.argmin(path["output"]))
        print(f"  {method}: {path['step'][-1]} steps, {path['kept'][-1]} kept, layer error "
              f"{path['layer_rel'][-1]:.3g}, output {path['output'][-1]:.3g} (lowest "
              f"{path['output'][low]:.3g} at {path['kept'][low]} kept), local choices "
              f"{path['local_share']:.2f}, {path['seconds']:.0f} s; weights re-solved on its "
              f"channels: layer error {path['refit_layer_rel']:.3g}, output "
              f"{path['refit_output']:.3g}", file=sys.stderr)  # fmt: skip

    output_paths(model, chain, list(calibration.split(batch)), methods, keep,
                 oracle_images=oracle_images, candidates=candidates, repeats=not no_repeats,
                 every=every, progress=True, finished=finished)  # fmt: skip
    report["complete"] = True
    atomic_write(out / "report.json", json.dumps(report, indent=2))
    print(f"report: {out / 'report.json'}")
    plot_path_runs([out], out)
    return report


def plot_path_runs(runs: list[Path], out: Path) -> list[Path]:
    """One figure of the paths of ``path`` runs on the same chain, into ``out``."""
    reports = []
    for run in runs:
        file = run / "report.json"
        if not file.is_file():
            raise ValueError(f"no report.json of a path run in {run}")
        try:
            report = json.loads(file.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{file} is not JSON: {error}") from None
        config = report.get("config") if isinstance(report, dict) else None
        if not isinstance(config, dict) or "chain" not in config or not report.get("paths"):
            raise ValueError(f"{file} is not the report of a finished path run")
        reports.append(report)
    config = reports[0]["config"]
    if len({(r["config"]["chain"], r["config"]["keep"]) for r in reports}) != 1:
        raise ValueError("the runs must be of the same chain at the same keep")
    paths = {}
    for report in reports:
        paths |= labelled(report)
    title = (
        f"EfficientNet-Lite0, chain {config['chain']} ({config['producer']}) alone, keep "
        f"{config['keep']}; output KL on {config['oracle_images']} calibration views"
    )
    figures = plot_paths(paths, title, out, f"path-chain{config['chain']}")
    for figure in figures:
        print(f"figure: {figure}")
    return figures


def _prune_config(args: argparse.Namespace) -> PruneConfig:
    """The PruneConfig of a configuration file (``--config``), with the flags given over it,
    checked as declared (errors name the file, or the flag)."""
    flagged = given(args, PruneConfig)
    if getattr(args, "config", None) is None:  # `config` prints the flags' configuration
        return check(PruneConfig, flagged, "prune", as_flags=True)
    where = f"{args.config} with the flags" if flagged else str(args.config)
    return check(PruneConfig, read_mapping(args.config) | flagged, where)


def _prune(args: argparse.Namespace) -> None:
    report = prune_job(_prune_config(args), args.out)
    before, after = report["before"], report["after"]
    print(f"{'chain':<28}{'kept':>12}{'output_rel':>12}{'refit_rel':>12}{'seconds':>9}")
    for layer in report["layers"]:
        kept = f"{layer['kept']}/{layer['total']}"
        rel, refit, seconds = (
            "-" if layer[k] is None else f"{layer[k]:{f}}"
            for k, f in (("output_rel", ".2e"), ("refit_rel", ".2e"), ("seconds", ".2f"))
        )
        print(f"{layer['chain']['producer']:<28}{kept:>12}{rel:>12}{refit:>12}{seconds:>9}")
    for key in ("flops", "params", "latency_s"):
        print(f"{key}: {before[key]:.4g} -> {after[key]:.4g} ({report['ratios'][key]:.3f})")
    print(f"agreement {after['agreement']:.3f}, KL {after['kl']:.4g} on {after['images']} images")
    if "accuracy" in after:
        print(f"accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}")
    print(f"pruned model: {args.out / 'pruned.pt'}; report: {args.out / 'report.json'}")


def _eval(args: argparse.Namespace) -> None:
    config = PruneConfig(**given(args, PruneConfig))  # the arch: the saved model's
    row = eval_job(args.model, args.data, args.weights, config)
    print(json.dumps(row, indent=2))


def _methods(names: list[str], valid: tuple[str, ...] = tuple(METHODS)) -> tuple:
    unknown = sorted(set(names) - set(valid))
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"method(s) listed twice: {', '.join(twice)}")
    return tuple(names)


def parser() -> argparse.ArgumentParser:
    """The command line's parser, every subcommand with its flags."""
    parser = argparse.ArgumentParser(
        prog="python -m torchbridge", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    path = sub.add_parser(
        "path", help="EfficientNet-Lite0, one chain alone: output loss along each selector's path"
    )
    path.add_argument("--chain", type=int, required=True, help="its position (0: nearest input)")
    path.add_argument("--keep", type=float, required=True, help="fraction of its channels")
    path.add_argument(
        "--methods", nargs="+", default=["greedy-local", "global-imitation", "combined", "taylor"]
    )
    path.add_argument("--weights", type=Path, default=None, help="default: the weights package")
    path.add_argument("--out", type=Path, default=Path("runs/torchbridge-path"))
    path.add_argument("--images", type=int, default=96, help="calibration views (default: 96)")
    path.add_argument("--batch", type=int, default=32)
    path.add_argument("--oracle-images", type=int, default=8)
    path.add_argument("--candidates", type=int, default=None)
    path.add_argument(
        "--no-repeats", action="store_true",
        help="every method that can: only channels never picked (k steps keep k)",
    )  # fmt: skip
    path.add_argument("--every", type=int, default=1, help="read the output every this many steps")
    plot = sub.add_parser("plot-path", help="one figure of path runs on the same chain")
    plot.add_argument("runs", type=Path, nargs="+", help="output folders of path runs")
    plot.add_argument("--out", type=Path, default=Path("figures/torchbridge"))
    fold = sub.add_parser("folding", help="MNIST CNN: fine-tune with folded or original weights")
    fold.add_argument("--seeds", type=int, default=3)
    fold.add_argument("--flops", type=float, default=0.5)
    fold.add_argument("--allocation", default="uniform")
    fold.add_argument("--method", default="greedy-local")
    prune = sub.add_parser("prune", help="prune a pretrained CNN; write pruned.pt, report.json")
    prune.add_argument(
        "--config", type=Path, default=None,
        help="a .toml or .json file of the fields below (`config --reference`); flags override it",
    )  # fmt: skip
    add_flags(prune, PruneConfig)
    prune.add_argument("--out", type=Path, required=True, help="folder for pruned.pt, report.json")
    show = sub.add_parser("config", help="print a prune configuration as TOML, or the reference")
    show.add_argument(
        "--reference", action="store_true",
        help="every key of a prune configuration: type, default, range, help",
    )  # fmt: skip
    add_flags(show, PruneConfig)
    evaluate = sub.add_parser("eval", help="count and compare a pruned model")
    evaluate.add_argument("--model", type=Path, required=True, help="pruned.pt from prune")
    evaluate.add_argument(
        "--data", default="photos", help="photos or an ImageFolder directory (default: photos)"
    )
    evaluate.add_argument("--weights", default=None, help="the unpruned network to compare with")
    add_flags(evaluate, PruneConfig, names=("images", "test_images", "batch", "size", "seed"),
              note="; as given to prune, for the same held-out images")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if getattr(args, "out", None) is not None:
            check_folder(args.out, "--out")
        if args.command == "prune":
            _prune(args)
        elif args.command == "eval":
            _eval(args)
        elif args.command == "config" and args.reference:
            print(reference(PruneConfig, "Prune configuration (`prune --config FILE`)"), end="")
        elif args.command == "config":
            print(dumps(_prune_config(args)), end="")
        elif args.command == "path":
            methods = _methods(args.methods, tuple(SELECTORS))
            effnet_path(args.chain, args.keep, methods, args.weights, args.out,
                        images=args.images, batch=args.batch, oracle_images=args.oracle_images,
                        candidates=args.candidates, no_repeats=args.no_repeats,
                        every=args.every)  # fmt: skip
        elif args.command == "plot-path":
            plot_path_runs(args.runs, args.out)
        else:  # folding
            if args.seeds < 1:
                raise ValueError("--seeds must be >= 1")
            rows = folding_experiment(args.seeds, args.flops, args.allocation, args.method)
            for row in rows:
                print(json.dumps(row))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
