"""The results page written from the committed summaries, never by hand.

Every ``results/summaries/*.json`` is a run folder's summary.json (its configuration, commit,
versions and machine inside). :func:`render` turns them into one Markdown page, a section per
summary: where and when it was made, the command that makes it again, and its table (each
experiment's ``markdown``). ``python -m experiments results`` writes the page;
``--check`` (run by the tests) fails when the committed page is not what the summaries give.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from experiments.catalog import EXPERIMENTS
from sims.schema import flag, keys

SUMMARIES = Path("results/summaries")
PAGE = Path("docs/results/stored.md")
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
        if key.name not in config or key.name == "name":
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


def section(stem: str, summary: dict) -> str:
    """One summary's section: heading, provenance, command, table."""
    name = summary.get("experiment")
    if name not in EXPERIMENTS or EXPERIMENTS[name].markdown is None:
        raise ValueError(f"{stem}.json: no experiment {name!r} with a Markdown table")
    machine, versions = summary.get("machine") or {}, summary.get("versions") or {}
    dirty = " with uncommitted changes" if summary.get("dirty") else ""
    made = (
        f"Run `{summary.get('run')}`, {str(summary.get('created', '?'))[:10]}, code at "
        f"`{str(summary.get('commit'))[:7]}`{dirty}; {machine.get('cpus', '?')} CPUs "
        f"({machine.get('platform', '?')}); torch {versions.get('torch', '?')}."
    )
    again = command(name, summary["config"])
    return f"## {stem}\n\n{made}\n\n```sh\n{again}\n```\n\n{EXPERIMENTS[name].markdown(summary)}"


def render(folder: Path = SUMMARIES) -> str:
    """The whole page from every summary in ``folder``, in file-name order."""
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise ValueError(f"no summaries in {folder}")
    parts = [HEAD]
    for file in files:
        try:
            summary = json.loads(file.read_text())
        except (ValueError, OSError) as error:
            raise ValueError(f"{file} cannot be read as JSON: {error}") from None
        parts.append(section(file.stem, summary))
    return "\n".join(parts).rstrip() + "\n"


def check(page: Path = PAGE, folder: Path = SUMMARIES) -> None:
    """A clear error unless ``page`` is what the summaries give."""
    if not page.is_file() or page.read_text() != render(folder):
        raise ValueError(
            f"{page} is not what the summaries in {folder} give: run `make results` and "
            "commit the page"
        )
