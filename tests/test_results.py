"""The stored results page is what the committed summaries give (make results), and each
section's command runs the same configuration again."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from experiments import results
from experiments.__main__ import configuration, main, parser
from experiments.catalog import EXPERIMENTS
from experiments.results import check, command, draw, pages, render
from sims import summary as sims_summary
from sims.__main__ import configuration as sims_configuration
from sims.__main__ import parser as sims_parser
from sims.experiment import record

ROOT = Path(__file__).resolve().parents[1]


KEPT = sorted((ROOT / results.SUMMARIES).glob("*.json"))
SIMULATIONS = [f for f in KEPT if f.stem.startswith("sims-")]
EXPERIMENT_RUNS = [f for f in KEPT if f not in SIMULATIONS]


def test_the_committed_page_is_what_the_summaries_give():
    check(*(ROOT / path for path in (results.SUMMARIES, results.DOCS, results.FIGURES)),
          ROOT / results.TEMPLATES)  # fmt: skip


def _copy(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The summaries copied, a template of one page, and the pages written from them, under
    tmp_path."""
    folder, templates, docs = tmp_path / "summaries", tmp_path / "pages", tmp_path / "docs"
    shutil.copytree(ROOT / results.SUMMARIES, folder)
    (templates / "results").mkdir(parents=True)
    (templates / "results" / "simulations.md").write_text(
        "# Quick\n\nWith m = 4: {{ sims-quick rate 0 greedy-local }}.\n"
    )
    (docs / "results").mkdir(parents=True)
    for name, text in pages(folder, templates).items():
        (docs / name).write_text(text)
    return folder, templates, docs


def test_a_changed_summary_page_or_template_fails_the_check(tmp_path):
    folder, templates, docs = _copy(tmp_path)
    figures = ROOT / results.FIGURES
    check(folder, docs, figures, templates)
    (file,) = folder.glob("mnist-compare-*0.5*.json")
    summary = json.loads(file.read_text())
    summary["rows"]["omp"]["accuracy"]["mean"] += 0.001
    file.write_text(json.dumps(summary))
    with pytest.raises(ValueError, match=r"stored\.md is not what the summaries .* give"):
        check(folder, docs, figures, templates)
    folder, templates, docs = _copy(tmp_path / "again")
    page = docs / "results" / "simulations.md"
    page.write_text(page.read_text().replace("exponential", "power", 1))  # a hand edit
    with pytest.raises(ValueError, match=r"simulations\.md is not what the summaries"):
        check(folder, docs, figures, templates)
    (folder / "broken.json").write_text("{")
    with pytest.raises(ValueError, match=r"broken\.json cannot be read as JSON"):
        render(folder)


def test_a_number_typed_into_a_template_is_refused(tmp_path):
    folder, templates, _ = _copy(tmp_path)
    template = templates / "results" / "simulations.md"
    written = template.read_text()
    template.write_text(written + "\nThe rate is 0.0163 per neuron.\n")
    with pytest.raises(ValueError, match=r"decimal numbers typed by hand \(0\.0163\)"):
        pages(folder, templates)
    template.write_text(written)
    (templates / results.STORED).write_text("# mine\n")  # results/stored.md
    with pytest.raises(ValueError, match="written from the summaries alone"):
        pages(folder, templates)


@pytest.mark.parametrize("file", EXPERIMENT_RUNS, ids=lambda f: f.stem)
def test_each_section_command_gives_back_its_configuration(file):
    summary = json.loads(file.read_text())
    argv = shlex.split(command(summary["experiment"], summary["config"]))
    assert argv[:4] == ["python", "-m", "experiments", "run"]
    config = configuration(parser().parse_args(["config", *argv[4:]]))
    assert record(EXPERIMENTS[summary["experiment"]], config) == summary["config"]


def test_the_results_command_checks(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["results", "--check"]) == 0
    assert "are what the summaries give" in capsys.readouterr().out


@pytest.mark.parametrize("file", SIMULATIONS, ids=lambda f: f.stem)
def test_each_simulation_command_gives_back_its_configuration(file):
    summary = sims_summary.read(file)
    argv = shlex.split(sims_summary.command(summary["config"]))
    assert argv[:4] == ["python", "-m", "sims", "run"]
    config = sims_configuration(sims_parser().parse_args(argv[3:]))
    assert json.loads(json.dumps(config.as_dict())) == summary["config"]


def test_a_configuration_no_preset_gives_is_refused():
    config = json.loads((ROOT / results.SUMMARIES / "sims-quick.json").read_text())["config"]
    config["networks"] = config["networks"][:1]
    with pytest.raises(ValueError, match="no preset has its network families"):
        sims_summary.command(config)


@pytest.mark.slow
def test_results_draw_the_simulations_figures_and_remove_stale_ones(tmp_path):
    folder = tmp_path / "summaries"
    folder.mkdir()
    shutil.copy(ROOT / results.SUMMARIES / "sims-quick.json", folder)
    stale = tmp_path / "figures" / "quick" / "decay_f009.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    docs, templates = tmp_path / "docs", tmp_path / "pages"
    (docs / "results").mkdir(parents=True)
    templates.mkdir()
    (docs / results.STORED).write_text(render(folder))
    with pytest.raises(ValueError, match="lacks decay_f000, decay_f001"):
        check(folder, docs, tmp_path / "figures", templates)
    paths = draw(folder, tmp_path / "figures")
    assert not stale.exists()
    check(folder, docs, tmp_path / "figures", templates)
    committed = ROOT / results.FIGURES / "quick"
    assert sorted(p.name for p in paths) == sorted(p.name for p in committed.iterdir())
    (tmp_path / "figures" / "by-hand").mkdir()
    with pytest.raises(ValueError, match="figures/by-hand: figures that no summary gives"):
        check(folder, docs, tmp_path / "figures", templates)


def test_a_run_of_many_families_commits_one_decay_figure(tmp_path):
    folder = tmp_path / "summaries"
    folder.mkdir()
    shutil.copy(ROOT / results.SUMMARIES / "sims-regimes.json", folder)
    shutil.copy(ROOT / results.SUMMARIES / "sims-quick.json", folder)
    quick, regimes = results.figures_of(folder)  # file-name order: quick first
    every, kept = quick.stems, regimes.stems
    assert len(json.loads((folder / "sims-regimes.json").read_text())["families"]) > (
        results.DECAY_KEPT
    )
    assert (quick.name, regimes.name) == ("quick", "regimes")
    assert [s for s in kept if s.startswith("decay_")] == ["decay_f000"]
    assert {"rate_vs_margin", "regime_map_greedy-local"} <= set(kept)
    assert [s for s in every if s.startswith("decay_")] == [f"decay_f00{f}" for f in range(3)]
