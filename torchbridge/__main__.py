"""Command line of the torch bridge.

    python -m torchbridge prune --arch ARCH --weights torchvision|package|none|PATH
        --data photos|IMAGEFOLDER --method METHOD (--keep F | --tol T | --flops F | --widths
        FILE.json) --out DIR
    python -m torchbridge prune --config prune.toml [any flag above, over the file] --out DIR
    python -m torchbridge config --arch ARCH --keep F [...] > prune.toml   (flags as a file)
    python -m torchbridge config --reference   (every key: type, default, range, help)
    python -m torchbridge eval --model DIR/pruned.pt --data ... [--weights ...]
    python -m torchbridge mnist --net cnn|resnet18|mobilenet_v2 (--keep F | --flops F)
        [--seeds 3] [--methods ...] [--out DIR]
    python -m torchbridge effnet (--keep F | --flops F) [--methods ...] [--weights PATH]
        [--images 96] [--device cuda]
    python -m torchbridge path --chain 7 --keep 0.775 [--methods ...] [--no-repeats]
        [--oracle-images 8] [--candidates K] [--every 4] [--out DIR]
    python -m torchbridge plot-path RUN_DIR [RUN_DIR ...] [--out figures/torchbridge]
    (mnist and effnet, for the global selectors: [--no-repeats] [--oracle-images 64]
        [--candidates K]; to prune only some chains, the others whole: [--chains 0 7 12];
        for the selectors of theory: [--compensate]; for those with convex weights: [--resolve])

``prune`` prunes the internal channels of a torchvision ResNet-18/34/50, MobileNetV2 or
MobileNetV3-Small/Large, or of EfficientNet-Lite0, layer by layer from the input side, and
writes the pruned model and report.json (see torchbridge.job); every flag is a field of
torchbridge.job.PruneConfig, declared once with its type, range and help (sims.schema).

``mnist`` compares methods at one budget on a network trained on the real MNIST-5k digits
(torchbridge.mnist: 4,000 for training, 1,000 held out; cached after the first training),
calibrating on 512 training images: held-out accuracy and agreement with the unpruned network
after pruning and after the same short fine-tune (one epoch of Adam on the training images),
FLOPs, parameters, latency, time. Repeats for each seed (a new split, initialisation and
calibration set) and prints mean +- standard deviation over seeds.

``effnet`` compares methods on EfficientNet-Lite0 with its real ImageNet weights, calibrated
on 96 (``--images``) random-resized views of 6 photos shipped in packages (on ``--device``),
evaluated on 80 views of 5 other photos by top-1 agreement with the unpruned network and
KL(unpruned || pruned), before and after the same short fine-tune without labels (two epochs
of distillation on the calibration views, batch norms frozen).

Methods: the selectors of theory (global ones included, and whole-output, which chooses each
consumer's channels by the least-squares refit of its whole output and sets those weights:
with --refit, its METHOD+refit row takes the refit's --ridge and --refit-toward) and
Torch-Pruning's tp-magnitude, tp-l1 and tp-taylor (torchbridge.baselines). Every command
writes report.json atomically (``effnet`` after each method, with "complete": false until the
last).
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
from torchbridge import compare
from torchbridge.budget import ALLOCATIONS
from torchbridge.chains import block_chains, pick_chains, sequential_chains
from torchbridge.efficientnet import load_efficientnet_lite0
from torchbridge.folding import folding_experiment
from torchbridge.images import photo_sets
from torchbridge.job import PruneConfig, check_device, eval_job, prune_job
from torchbridge.methods import METHODS
from torchbridge.mnist import NETS, split, train, trained
from torchbridge.models import views
from torchbridge.path import labelled, output_paths, plot_paths
from torchbridge.refit import TOWARD

MNIST_METHODS = ("greedy-local", "fully-corrective", "omp", "whole-output", "fixed-step",
                 "magnitude", "random", "tp-magnitude", "tp-taylor")  # fmt: skip
EFFNET_METHODS = ("greedy-local", "omp", "whole-output", "fixed-step", "magnitude", "random",
                  "tp-magnitude", "tp-taylor")  # fmt: skip
COLUMNS = ("accuracy", "accuracy_tuned", "agreement", "agreement_tuned", "kl", "kl_tuned",
           "kl_calibration", "kl_oracle", "flops", "params", "seconds")  # fmt: skip


def _print_table(runs: list[dict], methods: tuple[str, ...]) -> None:
    """Mean +- standard deviation over runs of every column present."""
    columns = [c for c in COLUMNS if c in runs[0]["methods"][methods[0]]]
    print(f"{'method':<24}" + "".join(f"{c:>16}" for c in columns))
    for method in methods:
        cells = []
        for c in columns:
            values = [r["methods"][method][c] for r in runs]
            cells.append(f"{np.mean(values):>9.3f} +-{np.std(values):.2f}")
        print(f"{method:<24}" + "".join(f"{c:>16}" for c in cells))


def _progress(method: str, row: dict) -> None:
    shown = ", ".join(f"{k} {row[k]:.3f}" for k in COLUMNS if k in row)
    print(f"  {method}: {shown}", file=sys.stderr)


def mnist(
    net: str,
    budget: dict,
    seeds: int,
    methods: tuple[str, ...],
    out: Path,
    positions: list[int] | None = None,
    refit: dict | None = None,
) -> dict:
    runs = []
    for seed in range(seeds):
        print(f"seed {seed}: training or loading {net}", file=sys.stderr)
        model = trained(net, seed)
        xt, yt, xs, ys = split(seed)
        chains = sequential_chains(model) if net == "cnn" else block_chains(model)
        chains = pick_chains(chains, positions)
        result = compare.compare_methods(
            model, chains, list(xt[:512].split(128)), xs, ys, methods, budget,
            finetune=lambda m, xt=xt, yt=yt, seed=seed: train(m, xt, yt, 1, seed),
            seed=seed, progress=_progress, refit=refit,
        )  # fmt: skip
        runs.append(result)
    report = {
        "config": {"net": net, "budget": budget, "seeds": seeds, "methods": list(methods),
                   "train": 4000, "test": 1000, "calibration": 512, "finetune": "1 epoch Adam",
                   "chains": positions, "refit": refit},
        "versions": versions() | {"torch": torch.__version__},
        "runs": runs,
    }  # fmt: skip
    accuracy = [r["unpruned"]["accuracy"] for r in runs]
    flops = runs[0]["unpruned"]["flops"]
    print(f"{net}: unpruned accuracy {np.mean(accuracy):.3f} +-{np.std(accuracy):.3f} "
          f"({seeds} seeds), {flops} FLOPs/image, budget {budget}")  # fmt: skip
    _print_table(runs, tuple(runs[0]["methods"]))
    atomic_write(out / "report.json", json.dumps(report, indent=2))
    print(f"report: {out / 'report.json'}")
    return report


def _effnet_setup(weights: Path | None, images: int, batch: int, device: str = "cpu") -> tuple:
    """EfficientNet-Lite0 with its ImageNet weights on ``device``, its chains, ``images``
    calibration views (N, 3, 224, 224), the 80 test views, and what the photos are."""
    if min(images, batch) < 1:
        raise ValueError("--images and --batch must be >= 1")
    check_device(device)
    model = load_efficientnet_lite0(weights).to(device)
    calibration, test, about = photo_sets(views("efficientnet_lite0"), images, seed=0)
    return model, block_chains(model), calibration.to(device), test.to(device), about


def effnet(
    budget: dict,
    methods: tuple[str, ...],
    weights: Path | None,
    out: Path,
    images: int = 96,
    batch: int = 32,
    device: str = "cpu",
    positions: list[int] | None = None,
    refit: dict | None = None,
) -> dict:
    model, every, calibration, test, about = _effnet_setup(weights, images, batch, device)
    chains = pick_chains(every, positions)
    report = {
        "config": {"budget": budget, "methods": list(methods), "calibration_images": images,
                   "batch": batch, "device": str(torch.device(device)), "test_images": len(test),
                   "finetune": "2 epochs distillation", "chains": positions, "refit": refit,
                   "pruned_chains": [c.producer for c in chains]} | about,
        "versions": versions() | {"torch": torch.__version__},
        "methods": {},
        "complete": False,
    }  # fmt: skip

    def progress(method: str, row: dict) -> None:  # each finished method is written at once
        _progress(method, row)
        report["methods"][method] = row
        atomic_write(out / "report.json", json.dumps(report, indent=2))

    result = compare.compare_methods(
        model, chains, list(calibration.split(batch)), test, None, methods, budget,
        finetune=lambda m: compare.distill(m, model, calibration), progress=progress,
        refit=refit,
    )  # fmt: skip
    report |= result | {"complete": True}
    base = result["unpruned"]
    print(f"EfficientNet-Lite0: {base['flops'] / 1e6:.0f} MFLOPs, {base['params'] / 1e6:.2f} M "
          f"parameters, {len(chains)} of {len(every)} chains pruned; budget {budget}; "
          f"calibration: {images} views; "
          f"test: {len(test)} views of {', '.join(about['test_photos'])}")  # fmt: skip
    _print_table([result], tuple(result["methods"]))
    atomic_write(out / "report.json", json.dumps(report, indent=2))
    print(f"report: {out / 'report.json'}")
    return report


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


def _budget(args: argparse.Namespace) -> dict:
    """The PruneConfig fields that ``mnist`` and ``effnet`` give every method."""
    if (args.keep is None) == (args.flops is None):
        raise ValueError("give exactly one budget: --keep or --flops")
    if args.allocation not in ALLOCATIONS:
        raise ValueError(
            f"unknown --allocation {args.allocation!r}; valid: {', '.join(ALLOCATIONS)}"
        )
    if args.keep is not None:
        if not 0 < args.keep <= 1:
            raise ValueError("--keep must be in (0, 1]")
        budget = {"keep": args.keep}
    elif not 0 < args.flops <= 1:
        raise ValueError("--flops must be in (0, 1]")
    else:
        budget = {"flops": args.flops, "allocation": args.allocation}
    if args.oracle_images < 1 or (args.candidates is not None and args.candidates < 1):
        raise ValueError("--oracle-images and --candidates must be >= 1")
    return budget | {
        "compensate": args.compensate,
        "recalibrate_bn": args.recalibrate_bn,
        "resolve": args.resolve,
        "no_repeats": args.no_repeats,
        "oracle_images": args.oracle_images,
        "candidates": args.candidates,
    }


def _refit(args: argparse.Namespace) -> dict | None:
    """The refit settings of ``mnist`` and ``effnet`` (None: no refit rows)."""
    if not args.refit:
        return None
    if not args.ridge >= 0:
        raise ValueError(f"--ridge must be >= 0; got {args.ridge}")
    return {"ridge": args.ridge, "refit_toward": args.refit_toward}


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
    run = sub.add_parser("mnist", help="compare methods on a network trained on MNIST-5k")
    run.add_argument("--net", default="cnn", help="cnn, resnet18 or mobilenet_v2")
    run.add_argument("--seeds", type=int, default=3)
    run.add_argument("--methods", nargs="+", default=list(MNIST_METHODS))
    run.add_argument("--out", type=Path, default=None, help="default: runs/torchbridge-mnist-NET")
    eff = sub.add_parser("effnet", help="compare methods on EfficientNet-Lite0 (real weights)")
    eff.add_argument("--methods", nargs="+", default=list(EFFNET_METHODS))
    eff.add_argument("--weights", type=Path, default=None, help="default: the weights package")
    eff.add_argument("--out", type=Path, default=Path("runs/torchbridge-effnet"))
    eff.add_argument("--images", type=int, default=96, help="calibration views (default: 96)")
    eff.add_argument("--batch", type=int, default=32, help="calibration batch (default: 32)")
    eff.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 (default: cpu)")
    for command in (run, eff):
        command.add_argument("--keep", type=float, default=None, help="fraction of each chain")
        command.add_argument("--flops", type=float, default=None, help="fraction of the FLOPs")
        command.add_argument(
            "--allocation", default="tolerance",
            help="--flops: 'tolerance' (search one shared tolerance), 'predicted' (the widths "
            "that tolerance predicts on the unpruned network: 2 passes) or 'uniform' (one kept "
            "fraction)",
        )  # fmt: skip
        command.add_argument("--compensate", action="store_true", help="bias compensation")
        command.add_argument(
            "--recalibrate-bn", action="store_true",
            help="every method: batch-norm statistics re-estimated on the calibration images",
        )  # fmt: skip
        command.add_argument(
            "--refit", action="store_true",
            help="every method also with its consumers refit by least squares (METHOD+refit)",
        )  # fmt: skip
        command.add_argument("--ridge", type=float, default=1e-4,
                             help="with --refit: the ridge (default: 1e-4)")  # fmt: skip
        command.add_argument("--refit-toward", choices=TOWARD, default="zero",
                             help="with --refit: the ridge pulls toward 0 or the selector's "
                             "weights (default: zero)")  # fmt: skip
        command.add_argument(
            "--resolve", action="store_true",
            help="re-solve each chain's weights on its kept channels (simplex QP) before surgery",
        )  # fmt: skip
        command.add_argument(
            "--no-repeats", action="store_true",
            help="global selectors: only channels never picked compete (k steps keep k)",
        )  # fmt: skip
        command.add_argument(
            "--oracle-images",
            type=int,
            default=64,
            help="global selectors: images of the output loss (default: 64)",
        )
        command.add_argument("--candidates", type=int, default=None,
                             help="global selectors: candidates scored per step")  # fmt: skip
        command.add_argument(
            "--chains", type=int, nargs="+", default=None,
            help="prune only the chains at these positions (0: nearest the input); the others "
            "stay whole (default: all)",
        )  # fmt: skip
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
        elif args.command == "folding":
            if args.seeds < 1:
                raise ValueError("--seeds must be >= 1")
            rows = folding_experiment(args.seeds, args.flops, args.allocation, args.method)
            for row in rows:
                print(json.dumps(row))
        elif args.command == "effnet":
            effnet(_budget(args), _methods(args.methods), args.weights, args.out,
                   args.images, args.batch, args.device, args.chains, _refit(args))  # fmt: skip
        else:
            if args.seeds < 1:
                raise ValueError("--seeds must be >= 1")
            out = args.out or Path(f"runs/torchbridge-mnist-{args.net}")

            if args.net not in NETS:
                raise ValueError(f"unknown --net {args.net!r}; valid: {', '.join(NETS)}")
            mnist(args.net, _budget(args), args.seeds, _methods(args.methods), out, args.chains,
                  _refit(args))  # fmt: skip
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
