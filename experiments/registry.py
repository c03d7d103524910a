"""What an experiment is, and the registry of them by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    (:mod:`experiments.results`).
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


def headline(doc: str) -> str:
    """What ``list`` shows of an experiment: its module docstring's first line, after the
    name (``"``NAME``: does this." -> "does this."``)."""
    return doc.splitlines()[0].split(": ", 1)[-1]
