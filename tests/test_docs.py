"""The documentation cannot go stale: every Python block of the README and of the site's
pages runs (mktestdocs), and every file the README names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mktestdocs import check_md_file, grab_code_blocks

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
RUNNABLE = [page for page in PAGES if grab_code_blocks(page.read_text(), lang="python")]


def test_the_guides_with_python_are_the_ones_expected():
    names = {str(page.relative_to(ROOT)) for page in RUNNABLE}
    assert {"README.md", "docs/selectors.md", "docs/pruning.md", "docs/python.md"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a block that writes files writes here
    check_md_file(fpath=page, memory=True)


def test_every_file_the_readme_names_exists():
    text = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`((?:docs|tests|figures)/[\w./-]+)`", text))
    named |= set(re.findall(r"\b((?:docs|tests)/[\w/-]+\.(?:md|py))\b", text))
    assert named, "the README names no file: the pattern is wrong"
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing, f"the README names files the project lacks: {missing}"
