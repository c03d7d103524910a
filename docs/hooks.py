"""Build hook of the documentation site: the configuration references are generated from the
declarations at build time (a marker ``<!-- reference: NAME -->`` in a page is replaced), so
the pages can never disagree with the code."""

from __future__ import annotations

import re

from experiments.catalog import EXPERIMENTS
from sims.__main__ import reference_text
from sims.schema import reference
from torchbridge.job import PruneConfig

MARKER = re.compile(r"<!-- reference: ([a-z-]+) -->")


def _text(name: str) -> str:
    if name == "sims":
        return reference_text()
    if name == "prune":
        return reference(PruneConfig, "Prune configuration (`prune --config FILE`)")
    if name in EXPERIMENTS:
        return reference(EXPERIMENTS[name].config, f"`{name}`")
    raise ValueError(f"unknown reference {name!r} in a page")


def on_page_markdown(markdown: str, **_: object) -> str:
    """Replace each reference marker by its generated table."""
    return MARKER.sub(lambda found: _text(found.group(1)), markdown)
