"""Command line of the torch bridge.

    python -m torchbridge prune --arch ARCH --weights torchvision|package|none|PATH
        --data photos|IMAGEFOLDER --method METHOD (--keep F | --tol T | --flops F | --widths
        FILE.json) --out DIR
    python -m torchbridge prune --config prune.toml [any flag above, over the file] --out DIR
    python -m torchbridge config --arch ARCH --keep F [...] > prune.toml   (flags as a file)
    python -m torchbridge config --reference   (every key: type, default, range, help)
    python -m torchbridge eval --model DIR/pruned.pt --data ... [--weights ...]
    python -m torchbridge finetune --model DIR/pruned.pt --weights ... --data ... --out DIR2
        [--epochs E --lr LR --schedule constant|cosine --batch B --weight-decay W --seed S]
    python -m torchbridge rates --network mnist-resnet18 [--training random] [...]

``prune`` prunes the internal channels of a torchvision ResNet-18/34/50, MobileNetV2 or
MobileNetV3-Small/Large, or of EfficientNet-Lite0, layer by layer from the input side, and
writes the pruned model and report.json (see torchbridge.job); every flag is a field of
torchbridge.job.PruneConfig, declared once with its type, range and help (sims.schema).

Methods: the selectors of theory (global ones included, and whole-output, which chooses each
consumer's channels by the least-squares refit of its whole output and sets those weights)
and Torch-Pruning's tp-magnitude, tp-l1 and tp-taylor (torchbridge.baselines). Every command
writes report.json atomically. The comparisons of methods are experiments:
``python -m experiments list`` names them (effnet-compare, mnist-compare, effnet-path,
mnist-folding).

``rates`` fits the decay of every layer of a network over disjoint resamples of its
calibration images into the run folder RUNS/NAME-HASH (torchbridge.rates_study; the same
experiment as ``python -m experiments run rates``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sims.config import dumps
from sims.experiment import add_run_flags, run
from sims.runner import add_parallel_flags
from sims.schema import add_flags, check, given, read_mapping, reference
from sims.store import check_folder
from torchbridge.finetune import Recipe
from torchbridge.job import DATA_FIELDS, PruneConfig, eval_job, finetune_job, prune_job
from torchbridge.rates_study import EXPERIMENT as RATES
from torchbridge.rates_study import LayerRates


def _config(args: argparse.Namespace, cls: type = PruneConfig, command: str = "prune"):
    """The configuration (a PruneConfig, or ``cls``) of a configuration file (``--config``),
    with the flags given over it, checked as declared (errors name the file, or the flag)."""
    flagged = given(args, cls)
    if getattr(args, "config", None) is None:  # `config` prints the flags' configuration
        return check(cls, flagged, command, as_flags=True)
    where = f"{args.config} with the flags" if flagged else str(args.config)
    return check(cls, read_mapping(args.config) | flagged, where)


def _rates(args: argparse.Namespace) -> None:
    config = _config(args, LayerRates, "rates")
    config.check()
    options = {"jobs": args.jobs, "cluster": args.cluster}  # how to run: not in the hash
    run_dir = run(RATES, config, args.runs, progress=not args.no_progress, options=options)
    print(RATES.table(json.loads((run_dir / "summary.json").read_text())))
    print(f"run folder: {run_dir}")


def _prune(args: argparse.Namespace) -> None:
    report = prune_job(_config(args), args.out)
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


def _finetune(args: argparse.Namespace) -> None:
    recipe = check(Recipe, given(args, Recipe), "finetune", as_flags=True)
    images = {k: v for k, v in given(args, PruneConfig).items() if k in DATA_FIELDS}
    images |= given(args, PruneConfig, "split_")  # the seed of prune's images
    report = finetune_job(args.model, args.weights, recipe,
                          PruneConfig(data=args.data, **images), args.out)  # fmt: skip
    before, after = report["before"], report["after"]
    print("epoch losses: " + " ".join(f"{loss:.4g}" for loss in report["losses"]))
    for key in ("agreement", "kl", "accuracy"):
        if key in after:
            print(f"{key}: {before[key]:.4g} -> {after[key]:.4g} on {after['images']} images")
    print(f"fine-tuned model: {args.out / 'pruned.pt'}; report: {args.out / 'report.json'}")


def _flags_and_file(parser: argparse.ArgumentParser, cls: type, keys: str) -> None:
    """``--config FILE`` (a .toml or .json file of ``keys``) and a flag per field of ``cls``."""
    parser.add_argument(
        "--config", type=Path, default=None,
        help=f"a .toml or .json file of {keys}; flags override it",
    )  # fmt: skip
    add_flags(parser, cls)


def parser() -> argparse.ArgumentParser:
    """The command line's parser, every subcommand with its flags."""
    parser = argparse.ArgumentParser(
        prog="python -m torchbridge", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    prune = sub.add_parser("prune", help="prune a pretrained CNN; write pruned.pt, report.json")
    _flags_and_file(prune, PruneConfig, "the fields below (`config --reference`)")
    prune.add_argument("--out", type=Path, required=True, help="folder for pruned.pt, report.json")
    show = sub.add_parser("config", help="print a prune configuration as TOML, or the reference")
    show.add_argument(
        "--reference", action="store_true",
        help="every key of a prune configuration: type, default, range, help",
    )  # fmt: skip
    add_flags(show, PruneConfig)
    rates = sub.add_parser("rates", help="fit the decay of every layer of a real network")
    _flags_and_file(rates, LayerRates, "the keys (the flags below)")
    add_run_flags(rates)
    add_parallel_flags(rates, jobs=1)
    evaluate = sub.add_parser("eval", help="count and compare a pruned model")
    evaluate.add_argument("--model", type=Path, required=True, help="pruned.pt from prune")
    evaluate.add_argument(
        "--data", default="photos", help="photos or an ImageFolder directory (default: photos)"
    )
    evaluate.add_argument("--weights", default=None, help="the unpruned network to compare with")
    add_flags(evaluate, PruneConfig, names=("images", "test_images", "batch", "size", "seed"),
              note="; as given to prune, for the same held-out images")  # fmt: skip
    tune = sub.add_parser("finetune", help="fine-tune a pruned model by distillation")
    tune.add_argument("--model", type=Path, required=True, help="pruned.pt from prune")
    tune.add_argument("--weights", default="torchvision",
                      help="the unpruned network distilled from, as given to prune")  # fmt: skip
    tune.add_argument(
        "--data", default="photos", help="photos or an ImageFolder directory (default: photos)"
    )
    tune.add_argument(
        "--out", type=Path, required=True,
        help="folder for pruned.pt, report.json and the checkpoint it resumes from",
    )  # fmt: skip
    add_flags(tune, Recipe)
    add_flags(tune, PruneConfig, names=DATA_FIELDS,
              note="; as given to prune, for the same images")  # fmt: skip
    add_flags(tune, PruneConfig, prefix="split_", names=("seed",),
              note="; prune's --seed, which chose its images")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if getattr(args, "out", None) is not None:
            check_folder(args.out, "--out")
        if args.command == "prune":
            _prune(args)
        elif args.command == "rates":
            _rates(args)
        elif args.command == "eval":
            _eval(args)
        elif args.command == "finetune":
            _finetune(args)
        elif args.command == "config" and args.reference:
            print(reference(PruneConfig, "Prune configuration (`prune --config FILE`)"), end="")
        else:
            print(dumps(_config(args)), end="")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
