"""Command line of the experiments.

    python -m experiments list
    python -m experiments run NAME [--config FILE] [flags of NAME's fields] [--runs runs]
    python -m experiments config NAME [flags] > NAME.toml      (flags as a file)
    python -m experiments config NAME --reference              (every key: type, default, help)
    python -m experiments results [--check]    (the results page from results/summaries/)

``run`` writes (or resumes) the run folder RUNS/NAME-HASH (:mod:`sims.experiment`) and
prints its summary; every flag is a field of the experiment's configuration, declared once
with its type, range and help (:mod:`sims.schema`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments import results
from experiments.catalog import EXPERIMENTS
from sims.config import dumps
from sims.experiment import add_run_flags, run
from sims.schema import add_flags, check, given, read_mapping, reference
from sims.store import atomic_write, check_folder


def parser() -> argparse.ArgumentParser:
    """The command line's parser: per command, a parser per experiment with its fields' flags."""
    parser = argparse.ArgumentParser(prog="python -m experiments",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every experiment, with what it does")
    made = sub.add_parser(
        "results", help=f"write {results.DOCS}/ and the figures from {results.SUMMARIES}"
    )
    made.add_argument(
        "--check", action="store_true",
        help="write nothing; fail unless the pages are what the summaries give",
    )  # fmt: skip
    commands = (("run", "run or resume an experiment into its run folder"),
                ("config", "print an experiment's configuration, or its reference"))  # fmt: skip
    for command, text in commands:
        named = sub.add_parser(command, help=text).add_subparsers(dest="experiment", required=True)
        for name, found in EXPERIMENTS.items():
            each = named.add_parser(name, help=found.about)
            each.add_argument(
                "--config", type=Path, default=None,
                help="a .toml or .json file of the keys; flags override it",
            )  # fmt: skip
            add_flags(each, found.config)
            if command == "run":
                add_run_flags(each)
            else:
                each.add_argument("--reference", action="store_true",
                                  help="every key: type, default, range, help")  # fmt: skip
    return parser


def configuration(args: argparse.Namespace):
    """The experiment's configuration: its file (``--config``) with the flags over it."""
    cls = EXPERIMENTS[args.experiment].config
    flagged = given(args, cls)
    if args.config is None:
        config = check(cls, flagged, args.experiment, as_flags=True)
    else:
        where = f"{args.config} with the flags" if flagged else str(args.config)
        config = check(cls, read_mapping(args.config) | flagged, where)
    config.check()
    return config


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "list":
            for name, found in EXPERIMENTS.items():
                print(f"{name:<20}{found.about}")
        elif args.command == "results" and args.check:
            results.check()
            print(f"the pages of {results.DOCS} are what the summaries give")
        elif args.command == "results":
            for name, text in results.pages().items():
                atomic_write(results.DOCS / name, text)
                print(f"wrote {results.DOCS / name}")
            print(f"drew {len(results.draw())} figure files into {results.FIGURES}/")
        elif args.command == "config" and args.reference:
            found = EXPERIMENTS[args.experiment]
            print(reference(found.config, f"{found.name} configuration"), end="")
        elif args.command == "config":
            print(dumps(configuration(args)), end="")
        else:
            check_folder(args.runs, "--runs")
            found = EXPERIMENTS[args.experiment]
            run_dir = run(found, configuration(args), args.runs, not args.no_progress)
            print(found.table(json.loads((run_dir / "summary.json").read_text())))
            print(f"run folder: {run_dir}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished units are saved; run the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
