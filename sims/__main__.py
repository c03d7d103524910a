"""Command line: run an experiment, plot it, report its fitted rates.

    python -m sims run --preset quick [--seeds 10] [--steps 80] [--jobs 2] [--cluster ADDR]
    python -m sims run --config my.toml        (two-layer or deep: MLP families have widths)
    python -m sims config --preset rates > my.toml   (a preset as TOML or JSON, to edit)
    python -m sims run --preset deep [--seeds 5]     (MLPs pruned layer by layer)
    python -m sims plot RUN_DIR [--figures figures]
    python -m sims report RUN_DIR
    python -m sims explain RUN_DIR [--method greedy-local] [--at 50 | --eps 1e-8]
                               [--holdout activation=tanh]

``run`` resumes an interrupted run of the same configuration (the run folder is named by the
configuration's hash) and ends with the report and the figures.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path

from sims import config as cfg
from sims.curves import load_curves
from sims.deep import run_deep_instance
from sims.deep_report import deep_figure, deep_report
from sims.plots import plot_run
from sims.report import report
from sims.runner import run
from sims.spectrum import report as spectrum_report
from sims.store import check_folder, read_config
from theory.selectors import SELECTORS

TYPES = {"int": int, "float": float}
SCALARS = [f for f in fields(cfg.ExperimentConfig) if f.type in TYPES]


def parser() -> argparse.ArgumentParser:
    """The command line's parser, every subcommand with its flags."""
    parser = argparse.ArgumentParser(prog="python -m sims", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or resume) an experiment")
    source = run.add_mutually_exclusive_group()
    names = ", ".join([*cfg.PRESETS, "deep"])
    source.add_argument(
        "--preset", default="quick", choices=(*cfg.PRESETS, "deep"), help=f"one of: {names}"
    )
    source.add_argument("--config", type=Path, help="a .toml or .json configuration file")
    for f in SCALARS:  # every scalar field of the configuration is a flag
        text = f"{f.metadata['help']} (default: the preset's or the file's)"
        run.add_argument(f"--{f.name.replace('_', '-')}", type=TYPES[f.type], help=text)
    run.add_argument(
        "--methods", nargs="+", choices=tuple(SELECTORS), metavar="METHOD",
        help=f"the selectors to run, of: {', '.join(SELECTORS)}",
    )  # fmt: skip
    run.add_argument("--jobs", type=int, default=2, help="local processes (-1: all cores)")
    run.add_argument(
        "--cluster",
        default=None,
        help="a Dask scheduler (tcp://host:8786) or a Ray cluster (ray:auto, ray:HOST:6379, "
        "ray://HOST:10001)",
    )
    run.add_argument("--runs", type=Path, default=Path("runs"), help="where run folders go")
    run.add_argument("--figures", type=Path, default=Path("figures"), help="where figures go")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    show = sub.add_parser("config", help="print a configuration as TOML or JSON, to edit")
    shown = show.add_mutually_exclusive_group()
    shown.add_argument(
        "--preset", default="quick", choices=(*cfg.PRESETS, "deep"), help=f"one of: {names}"
    )
    shown.add_argument("--config", type=Path, help="a .toml or .json configuration file")
    show.add_argument("--format", choices=("toml", "json"), default="toml", help="file format")
    explain = sub.add_parser("explain", help="spectrum summaries against decay, held-out test")
    explain.add_argument("run_dir", type=Path, help="a run folder of `run`")
    explain.add_argument(
        "--method", default="greedy-local", choices=tuple(SELECTORS), metavar="METHOD",
        help="the selector whose decay is explained (default: greedy-local)",
    )  # fmt: skip
    explain.add_argument("--holdout", default="activation=tanh", help="FIELD=VALUE to test on")
    target = explain.add_mutually_exclusive_group()
    target.add_argument("--at", type=int, default=50, help="decades = log10(h_1 / h_at)")
    target.add_argument(
        "--eps", type=float, default=None, help="target log10 n_eps at this loss / sigma^2"
    )
    for name, text in (("plot", "write the figures of a run"), ("report", "print fitted rates")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run_dir", type=Path, help="a run folder of `run`")
        if name == "plot":
            p.add_argument(
                "--figures", type=Path, default=Path("figures"), help="into FIGURES/NAME"
            )
    return parser


def _config(args: argparse.Namespace):
    """The configuration the flags ask for: a preset or a file, with flags overriding fields
    (an ExperimentConfig, or a DeepConfig for MLPs)."""
    config = cfg.load(args.config) if args.config else cfg.preset(args.preset)
    overrides = {
        f.name: getattr(args, f.name) for f in SCALARS if getattr(args, f.name, None) is not None
    }
    if getattr(args, "methods", None):
        overrides["methods"] = tuple(args.methods)
    own = {f.name for f in fields(config)}
    unused = sorted(set(overrides) - own)
    if unused:
        raise ValueError(f"the {config.name} configuration has no field(s) {', '.join(unused)}")
    config = replace(config, **overrides)
    config.validate()
    return config


def _is_deep(run_dir: Path) -> bool:

    return cfg.is_deep(read_config(run_dir)["config"])


def _plot(run_dir: Path, figures: Path) -> None:
    """Figures of run_dir into figures/NAME (NAME: the configuration's name)."""
    if _is_deep(run_dir):
        paths = deep_figure(run_dir, figures / read_config(run_dir)["config"]["name"])
    else:
        curves = load_curves(run_dir)
        paths = plot_run(curves, figures / curves.config["name"])
    for path in paths:
        print(f"figure: {path}")


def _report(run_dir: Path) -> None:
    if _is_deep(run_dir):
        print(deep_report(run_dir))
    else:
        print(report(run_dir))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            check_folder(args.runs, "--runs")
            check_folder(args.figures, "--figures")
            config = _config(args)
            work = run_deep_instance if cfg.is_deep(config.as_dict()) else None
            run_dir = run(config, args.runs, args.jobs, args.cluster, not args.no_progress, work)
            print(f"run folder: {run_dir}")
            _report(run_dir)
            _plot(run_dir, args.figures)
        elif args.command == "config":
            print(cfg.dumps(_config(args), args.format), end="")
        elif args.command == "plot":
            check_folder(args.figures, "--figures")
            _plot(args.run_dir, args.figures)
        elif args.command == "explain":
            print(spectrum_report(args.run_dir, args.method, args.at, args.holdout, args.eps))
        else:
            _report(args.run_dir)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished instances are saved; run the same command to resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
