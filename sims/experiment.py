"""What an experiment is, and how one runs into its run folder, resuming where it stopped.

An :class:`Experiment` is a configuration dataclass and the functions that compute its units
of work and summarise them; :func:`run` runs one into RUN_DIR = ROOT/NAME-HASH (the
configuration's name and the hash of all of it):

    config.json        the experiment, its configuration, versions, machine, git commit
    units/KEY.json     one unit's result, written atomically as it finishes
    summary.json       the summary of every unit (written once every unit is done), with the
                       configuration, the run's name and config.json's record (versions,
                       commit, dirty flag, machine, creation time)
    figures/           the figures drawn from the summary, where the experiment draws any

A run killed at any moment leaves the units finished so far; the same command skips them.
A folder whose recorded configuration is not the one asked (edited by hand, or another
experiment's) is refused rather than mixed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sims import store
from sims.config import drop_none


@dataclass(frozen=True)
class Experiment:
    """A configured experiment.

    config: a frozen configuration dataclass declared with :mod:`sims.schema`, with a ``name``
    (its run folder is NAME-HASH, :class:`sims.config.Named`) and a ``check()``;
    units(config): the keys of its units of work, in the order they run;
    unit(config, key, cache): one unit's result (JSON-able), ``cache`` a dict the units of one
    process share (a trained network, the data);
    summary(config, results): the summary of every unit's result, {key: result};
    table(summary): the summary as text for the terminal;
    figures(summary, folder): the figures drawn from the summary into ``folder``, their paths
    (None: the experiment draws none);
    markdown(summary): the summary as a Markdown table for the results page
    (:mod:`experiments.results`);
    figure_stems: the file stems ``figures`` writes, where a stored summary's figures are
    committed (the results command draws them; empty: they are not).
    """

    name: str
    about: str
    config: type
    units: Callable[[Any], list[str]]
    unit: Callable[[Any, str, dict], dict]
    summary: Callable[[Any, dict[str, dict]], dict]
    table: Callable[[dict], str]
    figures: Callable[[dict, Path], list[Path]] | None = None
    markdown: Callable[[dict], str] | None = None
    figure_stems: tuple[str, ...] = ()


def headline(doc: str) -> str:
    """What ``list`` shows of an experiment: its module docstring's first line, after the
    name (``"``NAME``: does this." -> "does this."``)."""
    return doc.splitlines()[0].split(": ", 1)[-1]


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a command that runs an experiment: ``--runs`` and ``--no-progress``."""
    parser.add_argument("--runs", type=Path, default=Path("runs"),
                        help="where run folders go (default: runs)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def record(experiment: Experiment, config: Any) -> dict:
    """What config.json records as the configuration: the experiment and every field."""
    return {"experiment": experiment.name} | drop_none(config.as_dict())


def _unit_path(run_dir: Path, key: str) -> Path:
    return run_dir / "units" / f"{key}.json"


def read_unit(run_dir: Path, key: str) -> dict | None:
    """A finished unit's result, None if it has not finished; a clear error if damaged."""
    path = _unit_path(run_dir, key)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as error:
        raise ValueError(
            f"{path} is damaged ({error}): delete it and run the same command to redo it"
        ) from None


def run(
    experiment: Experiment,
    config: Any,
    root: Path = Path("runs"),
    progress: bool = True,
    options: dict | None = None,
) -> Path:
    """Run (or resume) ``experiment`` at ``config`` under ``root``; returns the run folder,
    whose summary.json holds the summary. ``options``: how to run, not what (the number of
    processes, say), given to the units in their shared cache; they are not part of the
    configuration, and must not change a result."""
    config.check()
    run_dir = root / config.run_name
    wanted = record(experiment, config)
    if (run_dir / "config.json").exists():
        found = store.read_config(run_dir)["config"]
        if found != wanted:
            keys = found.keys() | wanted.keys()
            changed = sorted(k for k in keys if found.get(k) != wanted.get(k))
            raise ValueError(
                f"{run_dir} holds another configuration (it differs in {', '.join(changed)}): "
                "its config.json was edited, or the folder is another run's; use another --runs"
            )
    store.write_config(run_dir, wanted)
    keys = experiment.units(config)
    results = {key: read_unit(run_dir, key) for key in keys}
    cache: dict = dict(options or {})
    todo = [key for key in keys if results[key] is None]
    bar = tqdm(total=len(keys), initial=len(keys) - len(todo), desc=config.run_name,
               unit="unit", disable=not progress)  # fmt: skip
    with bar:
        for key in todo:
            bar.set_postfix_str(key)
            results[key] = experiment.unit(config, key, cache)
            store.atomic_write(_unit_path(run_dir, key), json.dumps(results[key], indent=2))
            bar.update(1)
    made = store.read_config(run_dir)  # the record of the run's first start
    provenance = {k: made.get(k) for k in ("versions", "commit", "dirty", "machine", "created")}
    summary = {"experiment": experiment.name, "config": wanted, "run": run_dir.name,
               **provenance} | experiment.summary(config, results)  # fmt: skip
    store.atomic_write(run_dir / "summary.json", json.dumps(summary, indent=2))
    if experiment.figures is not None:
        experiment.figures(summary, run_dir / "figures")
    return run_dir
