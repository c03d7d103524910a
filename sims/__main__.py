"""Command line: run an experiment, plot it, report its fitted rates.

    python -m sims run --preset quick [--seeds 10] [--steps 80] [--jobs 2] [--cluster ADDR]
    python -m sims run --config my.toml        (two-layer or deep: MLP families have widths)
    python -m sims config --preset rates > my.toml   (a preset as TOML or JSON, to edit)
    python -m sims config --reference                (every key: type, default, range, help)
    python -m sims run --preset quick --family-neurons 500   (a field of every family)
    python -m sims run --preset deep [--seeds 5]     (MLPs pruned layer by layer)
    python -m sims plot RUN_DIR [--figures runs/figures]
    python -m sims report RUN_DIR
    python -m sims explain RUN_DIR [--method greedy-local] [--at 50 | --eps 1e-8]
                               [--holdout activation=tanh]

Every field of a configuration (:mod:`sims.config`) is a flag of ``run`` and ``config``: the
experiment's as ``--FIELD``, its families' as ``--family-FIELD`` (set in every family).
``run`` resumes an interrupted run of the same configuration (the run folder is named by the
configuration's hash) and ends with the report and the figures (under runs/figures/NAME by
default: an ignored folder, like the run folders).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sims import config as cfg
from sims.deep import run_deep_instance
from sims.deep_report import deep_figure, deep_markdown, summarize_deep
from sims.plots import plot_run
from sims.report import markdown
from sims.runner import add_parallel_flags, run
from sims.schema import add_flags, flag, given, keys, reference
from sims.spectrum import report as spectrum_report
from sims.spectrum import report_table as spectrum_report_table
from sims.store import atomic_write, check_folder, read_config
from sims.summary import EXPLAINED, dumps, read, summarize
from theory.selectors import SELECTORS

# The configurations whose fields are flags: the experiment's as --FIELD, the families' as
# --family-FIELD. A field of one kind only says which in its help.
FIGURES = Path("runs/figures")  # the committed figures/ are written by the results command
TOPS = (cfg.ExperimentConfig, cfg.DeepConfig)
FAMILIES = (cfg.NetworkSpec, cfg.MLPSpec)
FAMILY = "family_"
KINDS = {cfg.ExperimentConfig: "two-layer", cfg.DeepConfig: "MLPs", cfg.NetworkSpec: "two-layer",
         cfg.MLPSpec: "MLPs"}  # fmt: skip


def _configuration_flags(parser: argparse.ArgumentParser) -> None:
    """Every field of the two-layer and the deep configurations and of their families as a
    flag; a field both kinds have takes the declaration with the wider choices (the deep
    kind's selectors include the two-layer ones)."""
    for (first, second), prefix in ((TOPS, ""), (FAMILIES, FAMILY)):
        what = "the experiment's" if not prefix else "every family's (--family-FIELD)"
        group = parser.add_argument_group(
            f"fields of {what} configuration",
            "a flag not given keeps the preset's or the file's value (`config --reference`)",
        )
        common = {"prefix": prefix, "defaults": False}
        declared = {cls: {key.name: key for key in keys(cls)} for cls in (first, second)}
        for name in [n for n in declared[first] if n in declared[second]]:  # in order
            wider = max((first, second), key=lambda cls, n=name: len(declared[cls][n].choices))
            add_flags(group, wider, names={name}, **common)
        for cls, other in ((first, second), (second, first)):
            own = declared[cls].keys() - declared[other].keys()
            add_flags(group, cls, names=own, note=f" [{KINDS[cls]} only]", **common)


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
    _configuration_flags(run)
    add_parallel_flags(run, jobs=2)
    run.add_argument("--runs", type=Path, default=Path("runs"), help="where run folders go")
    run.add_argument("--figures", type=Path, default=FIGURES,
                     help=f"where figures go, into FIGURES/NAME (default: {FIGURES})")  # fmt: skip
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    show = sub.add_parser("config", help="print a configuration as TOML or JSON, to edit")
    shown = show.add_mutually_exclusive_group()
    shown.add_argument(
        "--preset", default="quick", choices=(*cfg.PRESETS, "deep"), help=f"one of: {names}"
    )
    shown.add_argument("--config", type=Path, help="a .toml or .json configuration file")
    shown.add_argument(
        "--reference", action="store_true",
        help="print every key of the configurations (type, default, range, help) instead",
    )  # fmt: skip
    show.add_argument("--format", choices=("toml", "json"), default="toml", help="file format")
    _configuration_flags(show)
    explain = sub.add_parser("explain", help="spectrum summaries against decay, held-out test")
    explain.add_argument("run_dir", type=Path,
                         help="a run folder of `run`, or its summary file")  # fmt: skip
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
    commands = (("plot", "write the figures of a run"), ("report", "print fitted rates"),
                ("summary", "write a run's summary: what its report and figures show"))  # fmt: skip
    for name, text in commands:
        p = sub.add_parser(name, help=text)
        where = "a run folder of `run`" + (", or its summary file" if name == "plot" else "")
        p.add_argument("run_dir", type=Path, help=where)
        if name == "summary":
            p.add_argument("--out", type=Path, required=True,
                           help="the JSON file (results/summaries/NAME.json: kept)")  # fmt: skip
        if name == "plot":
            p.add_argument(
                "--figures",
                type=Path,
                default=FIGURES,
                help=f"into FIGURES/NAME (default: {FIGURES})",
            )
    return parser


def configuration(args: argparse.Namespace):
    """The configuration the flags ask for: a preset or a file, with flags overriding fields
    (an ExperimentConfig, or a DeepConfig for MLPs), checked as a file would be."""
    config = cfg.load(args.config) if args.config else cfg.preset(args.preset)
    where = f"{args.config}" if args.config else f"preset {args.preset}"
    top, family = type(config), type(config.networks[0])
    overrides = given(args, top)
    each = given(args, family, FAMILY)
    flagged = {flag(n) for cls in TOPS for n in given(args, cls)}
    flagged |= {flag(n, FAMILY) for cls in FAMILIES for n in given(args, cls, FAMILY)}
    unused = flagged - {flag(n) for n in overrides} - {flag(n, FAMILY) for n in each}
    if unused:
        flags = ", ".join(sorted(unused))
        raise ValueError(f"the {config.name} configuration ({KINDS[top]}) has no flag(s) {flags}")
    if not overrides and not each:
        return config
    data = config.as_dict() | overrides
    data["networks"] = [network | each for network in data["networks"]]
    return cfg.from_dict(data, f"{where} with the flags")


def reference_text() -> str:
    """Every key of the configuration files, as Markdown tables."""
    parts = [
        "## Keys of a configuration file\n\nA two-layer experiment, or MLPs when its families "
        "have `widths`. Each key is also a flag of `run` and `config` (a family's as "
        "`--family-KEY`, set in every family).\n",
        reference(cfg.ExperimentConfig, "Two-layer experiment (top level)"),
        reference(cfg.NetworkSpec, "Two-layer family (each [[networks]] table)"),
        reference(cfg.DeepConfig, "MLP experiment (top level)"),
        reference(cfg.MLPSpec, "MLP family (each [[networks]] table)"),
    ]
    return "\n".join(parts)


def _is_deep(run_dir: Path) -> bool:

    return cfg.is_deep(read_config(run_dir)["config"])


def _plot(run_dir: Path, figures: Path) -> None:
    """Figures of a run folder, or of a summary file of one, into figures/NAME (NAME: the
    configuration's name)."""
    if run_dir.is_file():
        summary = read(run_dir)
    else:
        summary = summarize_deep(run_dir) if _is_deep(run_dir) else summarize(run_dir)
    draw = deep_figure if summary["kind"] == "sims-deep" else plot_run
    paths = draw(summary, figures / summary["config"]["name"])
    for path in paths:
        print(f"figure: {path}")


def _explain_summary(args: argparse.Namespace) -> str:
    """``explain`` of a summary file: from the instance tables it keeps (:data:`EXPLAINED`)."""
    summary = read(args.run_dir)
    kept = {(at if eps is None else None, eps): key for key, (at, eps) in EXPLAINED.items()}
    key = kept.get((args.at if args.eps is None else None, args.eps))
    tables = summary.get("explain", {})
    if args.method != "greedy-local" or key not in tables:
        have = ", ".join(tables) or "none"
        raise ValueError(
            f"{args.run_dir} keeps greedy-local's instance tables {have} (at50: --at 50, "
            "eps1e-06: --eps 1e-6); explain the run folder for others"
        )
    found = tables[key]
    return spectrum_report_table(found["table"], found["censored"], args.method, args.at,
                                 args.holdout, args.eps)  # fmt: skip


def _report(run_dir: Path) -> None:
    """Print the report of run_dir; also written to run_dir/report.md."""
    if _is_deep(run_dir):
        text = deep_markdown(summarize_deep(run_dir))
    else:
        text = markdown(summarize(run_dir))
    atomic_write(run_dir / "report.md", text)
    print(text)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            check_folder(args.runs, "--runs")
            check_folder(args.figures, "--figures")
            config = configuration(args)
            work = run_deep_instance if cfg.is_deep(config.as_dict()) else None
            run_dir = run(config, args.runs, args.jobs, args.cluster, not args.no_progress, work)
            print(f"run folder: {run_dir}")
            _report(run_dir)
            _plot(run_dir, args.figures)
        elif args.command == "config" and args.reference:
            print(reference_text(), end="")
        elif args.command == "config":
            print(cfg.dumps(configuration(args), args.format), end="")
        elif args.command == "plot":
            check_folder(args.figures, "--figures")
            _plot(args.run_dir, args.figures)
        elif args.command == "summary":
            deep = _is_deep(args.run_dir)
            summary = summarize_deep(args.run_dir) if deep else summarize(args.run_dir)
            atomic_write(args.out, dumps(summary))
            print(f"summary: {args.out}")
        elif args.command == "explain" and args.run_dir.is_file():
            print(_explain_summary(args))
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
