"""The stored results page is what the committed summaries give (make results), and each
section's command runs the same configuration again."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from experiments.__main__ import configuration, main, parser
from experiments.catalog import EXPERIMENTS
from experiments.results import PAGE, SUMMARIES, check, command, render
from experiments.runner import record

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_page_is_what_the_summaries_give():
    check(ROOT / PAGE, ROOT / SUMMARIES)


def test_a_changed_summary_or_page_fails_the_check(tmp_path):
    folder = tmp_path / "summaries"
    shutil.copytree(ROOT / SUMMARIES, folder)
    page = tmp_path / "stored.md"
    page.write_text(render(folder))
    check(page, folder)
    (file,) = folder.glob("mnist-compare-*0.5*.json")
    summary = json.loads(file.read_text())
    summary["rows"]["omp"]["accuracy"]["mean"] += 0.001
    file.write_text(json.dumps(summary))
    with pytest.raises(ValueError, match="run `make results`"):
        check(page, folder)
    (folder / "broken.json").write_text("{")
    with pytest.raises(ValueError, match=r"broken\.json cannot be read as JSON"):
        render(folder)


@pytest.mark.parametrize("file", sorted((ROOT / SUMMARIES).glob("*.json")), ids=lambda f: f.stem)
def test_each_section_command_gives_back_its_configuration(file):
    summary = json.loads(file.read_text())
    argv = shlex.split(command(summary["experiment"], summary["config"]))
    assert argv[:4] == ["python", "-m", "experiments", "run"]
    config = configuration(parser().parse_args(["config", *argv[4:]]))
    assert record(EXPERIMENTS[summary["experiment"]], config) == summary["config"]


def test_the_results_command_checks_and_writes(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["results", "--check"]) == 0
    assert "is what the summaries give" in capsys.readouterr().out
