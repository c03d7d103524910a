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
from experiments.results import FIGURES, PAGE, SUMMARIES, check, command, draw, render
from experiments.runner import record
from sims import summary as sims_summary
from sims.__main__ import configuration as sims_configuration
from sims.__main__ import parser as sims_parser

ROOT = Path(__file__).resolve().parents[1]


SIMULATIONS = [f for f in sorted((ROOT / SUMMARIES).glob("*.json")) if f.stem.startswith("sims-")]
EXPERIMENT_RUNS = [f for f in sorted((ROOT / SUMMARIES).glob("*.json")) if f not in SIMULATIONS]


def test_the_committed_page_is_what_the_summaries_give():
    check(ROOT / PAGE, ROOT / SUMMARIES, ROOT / FIGURES)


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


@pytest.mark.parametrize("file", EXPERIMENT_RUNS, ids=lambda f: f.stem)
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


@pytest.mark.parametrize("file", SIMULATIONS, ids=lambda f: f.stem)
def test_each_simulation_command_gives_back_its_configuration(file):
    summary = sims_summary.read(file)
    argv = shlex.split(sims_summary.command(summary["config"]))
    assert argv[:4] == ["python", "-m", "sims", "run"]
    config = sims_configuration(sims_parser().parse_args(argv[3:]))
    assert json.loads(json.dumps(config.as_dict())) == summary["config"]


def test_a_configuration_no_preset_gives_is_refused():
    config = json.loads((ROOT / SUMMARIES / "sims-quick.json").read_text())["config"]
    config["networks"] = config["networks"][:1]
    with pytest.raises(ValueError, match="no preset has its network families"):
        sims_summary.command(config)


@pytest.mark.slow
def test_results_draw_the_simulations_figures_and_remove_stale_ones(tmp_path):
    folder = tmp_path / "summaries"
    folder.mkdir()
    shutil.copy(ROOT / SUMMARIES / "sims-quick.json", folder)
    stale = tmp_path / "figures" / "quick" / "decay_f009.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    page = tmp_path / "stored.md"
    page.write_text(render(folder))
    with pytest.raises(ValueError, match="lacks decay_f000, decay_f001"):
        check(page, folder, tmp_path / "figures")
    paths = draw(folder, tmp_path / "figures")
    assert not stale.exists()
    check(page, folder, tmp_path / "figures")
    committed = ROOT / FIGURES / "quick"
    assert sorted(p.name for p in paths) == sorted(p.name for p in committed.iterdir())
