"""The results page written from the committed summaries, never by hand.

Every ``results/summaries/*.json`` is a run folder's summary (its configuration, commit,
versions and machine inside): an experiment's summary.json, or a simulation's
(``python -m sims summary RUN_DIR --out FILE``, :mod:`sims.summary`). :func:`render` turns them
into the stored results page, a section per summary: where and when it was made, the command
that makes it again, and its table (each experiment's ``markdown``, a simulation's report);
:func:`pages` adds every page of the templates in ``results/pages/`` (its numbers filled from
the summaries, :mod:`experiments.pages`); :func:`draw` draws every simulation's figures into
``figures/NAME/``. ``python -m experiments results`` writes them all; ``--check`` (run by the
tests) fails when a committed page is not what the summaries give, a figure they give is
missing, or ``figures/`` holds one that none gives.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path

from experiments.catalog import EXPERIMENTS
from experiments.pages import render_page
from sims import summary as sims_summary
from sims.deep_report import deep_markdown, planned_deep
from sims.plots import planned
from sims.report import markdown as sims_report
from sims.schema import flag, keys
from torchbridge.rates_plots import regime_placement_figure

SUMMARIES = Path("results/summaries")
TEMPLATES = Path("results/pages")  # mirrors docs/: results/pages/X/Y.md is written to docs/X/Y.md
DOCS = Path("docs")
STORED = "results/stored.md"
FIGURES = Path("figures")
DECAY_KEPT = 8  # decay figures committed per run, at most (see simulations)
HEAD = """# Stored results

Written by `make results` (`python -m experiments results`) from the summaries committed in
`results/summaries/`, one section per summary: never edit this page by hand. Each section
gives the run's commit and machine and the command that runs it again (into `runs/`, where
its summary.json can replace the stored one). Columns: see
[the experiments' columns](../experiments.md#the-comparisons-columns).
"""


def command(name: str, config: dict) -> str:
    """The ``python -m experiments run`` command line of ``config``: its keys that differ
    from the declared defaults, as flags."""
    parts = ["python -m experiments run", name]
    for key in keys(EXPERIMENTS[name].config):
        if key.name not in config:
            continue
        value = config[key.name]
        default = key.default if key.default is not dataclasses.MISSING else None
        default = list(default) if isinstance(default, tuple) else default
        if value == default:
            continue
        if key.base is bool:
            parts.append(flag(key.name) if value else "--no-" + flag(key.name)[2:])
        elif isinstance(value, list):
            parts.append(flag(key.name) + " " + " ".join(map(str, value)))
        else:
            parts.append(f"{flag(key.name)} {value}")
    return " ".join(parts)


def _made(summary: dict) -> str:
    """Where and when a summary's run was made."""
    machine, versions = summary.get("machine") or {}, summary.get("versions") or {}
    dirty = " with uncommitted changes" if summary.get("dirty") else ""
    made = (
        f"Run `{summary.get('run')}`, {str(summary.get('created', '?'))[:10]}, code at "
        f"`{str(summary.get('commit'))[:7]}`{dirty}; {machine.get('cpus', '?')} CPUs "
        f"({machine.get('platform', '?')}); numpy {versions.get('numpy', '?')}, torch "
        f"{versions.get('torch', '?')}."
    )
    return made


def section(stem: str, summary: dict) -> str:
    """One summary's section: heading, provenance, command, table."""
    if summary.get("kind") in sims_summary.KINDS:
        report = sims_report if summary["kind"] == "sims" else deep_markdown
        again, table = sims_summary.command(summary["config"]), report(summary, level=3)
    else:
        name = summary.get("experiment")
        if name not in EXPERIMENTS or EXPERIMENTS[name].markdown is None:
            raise ValueError(f"{stem}.json: no experiment {name!r} with a Markdown table")
        again, table = command(name, summary["config"]), EXPERIMENTS[name].markdown(summary)
    return f"## {stem}\n\n{_made(summary)}\n\n```sh\n{again}\n```\n\n{table}"


def _read(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except (ValueError, OSError) as error:
        raise ValueError(f"{file} cannot be read as JSON: {error}") from None


@dataclasses.dataclass(frozen=True)
class Figures:
    """The committed figures of one summary: FIGURES/``name``/STEM.png for each of ``stems``,
    all drawn by ``draw(folder)``."""

    name: str
    stems: tuple[str, ...]
    draw: Callable[[Path], list[Path]]


def figures_of(folder: Path) -> list[Figures]:
    """The committed figures of every summary in ``folder``: a simulation's (every figure of
    :func:`sims.plots.planned`, or the deep run's, into its configuration's name; of a run
    with more than DECAY_KEPT families only the first family's decay figure: ``python -m
    sims plot SUMMARY.json`` draws the others), an experiment's that declares its figures
    (into the summary's file name), and the real layers of every ``rates`` summary placed on
    the regime map of the simulation named ``regimes`` (into ``real-layers``)."""
    found, rates, regimes = [], {}, None
    for file in sorted(Path(folder).glob("*.json")):
        summary = _read(file)
        if summary.get("experiment") == "rates":
            rates[file.stem] = summary
        if summary.get("kind") == "sims" and summary["config"]["name"] == "regimes":
            regimes = summary
        if summary.get("kind") in sims_summary.KINDS:
            plan = planned(summary) if summary["kind"] == "sims" else planned_deep(summary)
            decay = [stem for stem in plan if stem.startswith("decay_f")]
            if len(decay) > DECAY_KEPT:
                plan = {k: v for k, v in plan.items() if k not in decay[1:]}
            found.append(Figures(summary["config"]["name"], tuple(plan), functools.partial(
                _draw_each, tuple(plan.values()))))  # fmt: skip
            continue
        experiment = EXPERIMENTS.get(summary.get("experiment"))
        if experiment is not None and experiment.figure_stems:
            found.append(Figures(file.stem, experiment.figure_stems,
                                 functools.partial(experiment.figures, summary)))  # fmt: skip
    if rates and regimes is not None:
        found.append(Figures("real-layers", ("regime_map",), functools.partial(
            regime_placement_figure, regimes, rates)))  # fmt: skip
    return found


def _draw_each(plan: tuple[Callable[[Path], list[Path]], ...], out: Path) -> list[Path]:
    return [path for draw_one in plan for path in draw_one(out)]


def draw(folder: Path = SUMMARIES, figures: Path = FIGURES) -> list[Path]:
    """Every summary's committed figures into FIGURES/NAME/ (:func:`figures_of`), and no
    other figure there (a figure of an earlier run that its summary no longer gives is
    removed)."""
    paths = []
    for plan in figures_of(folder):
        out = figures / plan.name
        for old in [*out.glob("*.png"), *out.glob("*.pdf")]:
            if old.stem not in plan.stems:
                old.unlink()
        paths += plan.draw(out)
    return paths


def render(folder: Path = SUMMARIES) -> str:
    """The whole page from every summary in ``folder``, in file-name order."""
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise ValueError(f"no summaries in {folder}")
    parts = [HEAD]
    for file in files:
        parts.append(section(file.stem, _read(file)))
    return "\n".join(parts).rstrip() + "\n"


def pages(folder: Path = SUMMARIES, templates: Path = TEMPLATES) -> dict[str, str]:
    """Every written page by its path under the docs folder: the stored results
    (:func:`render`) and one page per template under ``templates``, at the same relative path
    (:func:`experiments.pages.render_page`)."""
    summaries = {file.stem: _read(file) for file in sorted(Path(folder).glob("*.json"))}
    out = {STORED: render(folder)}
    for template in sorted(Path(templates).rglob("*.md")):
        where = template.relative_to(templates).as_posix()
        if where == STORED:
            raise ValueError(f"{template}: {STORED} is written from the summaries alone")
        out[where] = render_page(template, summaries, where)
    return out


def check(
    folder: Path = SUMMARIES, docs: Path = DOCS, figures: Path = FIGURES,
    templates: Path = TEMPLATES,
) -> None:  # fmt: skip
    """A clear error unless every page in ``docs`` is what the summaries and templates give,
    every figure of the summaries is in ``figures``, and nothing else is there."""
    for name, text in pages(folder, templates).items():
        page = Path(docs) / name
        if not page.is_file() or page.read_text() != text:
            raise ValueError(
                f"{page} is not what the summaries in {folder} give: run `make results` and "
                "commit the page"
            )
    drawn = set()
    for plan in figures_of(folder):
        out = figures / plan.name
        drawn.add(plan.name)
        missing = [stem for stem in plan.stems if not (out / f"{stem}.png").is_file()]
        if missing:
            raise ValueError(f"{out} lacks {', '.join(missing)}: run `make results`")
    if Path(figures).is_dir():
        stray = sorted(d.name for d in Path(figures).iterdir() if d.name not in drawn)
        if stray:
            raise ValueError(
                f"{figures}/{', '.join(stray)}: figures that no summary gives; store their "
                "run's summary in results/summaries/, or delete them"
            )
