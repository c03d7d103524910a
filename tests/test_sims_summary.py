"""A run's summary: what its report and figures show, small enough to commit, and giving back
the same report and figures as the run folder it came from."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sims import runner
from sims.__main__ import main
from sims.curves import load_curves, quantiles
from sims.fit import fit_curve, local_rates
from sims.plots import planned, plot_run
from sims.report import markdown
from sims.summary import DRAWN, drawn_points, dumps, read, summarize
from tests.test_sims_pipeline import TINY


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return runner.run(TINY, tmp_path_factory.mktemp("runs"), jobs=1, progress=False)


def test_summary_round_trips_through_its_file(run_dir, tmp_path):
    summary = summarize(run_dir)
    path = tmp_path / "tiny.json"
    path.write_text(dumps(summary))
    assert read(path) == summary
    record = json.loads((run_dir / "config.json").read_text())
    assert summary["config"] == record["config"] and summary["run"] == run_dir.name
    assert summary["commit"] == record["commit"] and summary["versions"] == record["versions"]
    assert "NaN" not in path.read_text()  # strict JSON: NaN is written as null


def test_summary_holds_the_curves_the_figures_draw(run_dir):
    """Median and band at the drawn steps are the quantiles over seeds (4 digits), the floor is
    the smallest positive median, the local rates those of the whole median curve, and each
    instance's c the fit of its own curve."""
    run, summary = load_curves(run_dir), summarize(run_dir)
    for family, methods in run.curves.items():
        for method, curves in methods.items():
            kept = summary["curves"][str(family)][method]
            lo, mid, hi = quantiles(curves)
            k = drawn_points(mid.size)
            assert kept["n"] == (k + 1).tolist()
            for name, values in (("lo", lo), ("mid", mid), ("hi", hi)):
                np.testing.assert_allclose(kept[name], values[k], rtol=5e-4)
            assert kept["floor"] == mid[mid > 0].min()
            at, rate = local_rates(np.arange(1, mid.size + 1), mid)
            np.testing.assert_allclose(kept["rate_at"], at, rtol=5e-4)
            np.testing.assert_allclose(kept["rate"], rate, rtol=5e-4)
    points = {(p["family"], p["seed"]): p for p in summary["instances"]}
    assert len(points) == len(TINY.networks) * TINY.seeds
    for family, methods in run.curves.items():
        for curve in methods["greedy-local"]:
            fitted = fit_curve(curve.n, curve.loss_rel, TINY.fit_window).c
            assert points[(family, curve.seed)]["c"] == pytest.approx(fitted)


def test_drawn_points_keep_both_ends_and_at_most_the_stated_number():
    assert drawn_points(10).tolist() == list(range(10))
    k = drawn_points(5000)
    assert k[0] == 0 and k[-1] == 4999 and len(k) <= DRAWN
    assert np.all(np.diff(k) > 0) and 1 in k  # log-spaced points reach the start


@pytest.mark.slow
def test_a_stored_summary_gives_back_the_report_and_the_same_figure_bytes(run_dir, tmp_path):
    summary = summarize(run_dir)
    path = tmp_path / "tiny.json"
    path.write_text(dumps(summary))
    stored = read(path)
    assert markdown(stored) == markdown(summary)
    first = plot_run(summary, tmp_path / "a")
    second = plot_run(stored, tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second] and len(first) == 8
    assert [p.stem for p in first[::2]] == list(planned(summary))  # PNG and PDF of each
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name  # no dates, no random ids inside


def test_summary_command_writes_the_file_and_names_bad_input(run_dir, tmp_path, capsys):
    out = tmp_path / "kept" / "tiny.json"
    assert main(["summary", str(run_dir), "--out", str(out)]) == 0
    assert read(out)["rows"] == summarize(run_dir)["rows"]
    assert main(["summary", str(tmp_path), "--out", str(out)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text('{"experiment": "mnist-compare"}')
    with pytest.raises(ValueError, match="not the summary of a simulation run"):
        read(other)


def test_plot_draws_a_stored_summary_file(run_dir, tmp_path, capsys):
    path = tmp_path / "tiny.json"
    path.write_text(dumps(summarize(run_dir)))
    assert main(["plot", str(path), "--figures", str(tmp_path / "fig")]) == 0
    drawn = sorted(p.name for p in (tmp_path / "fig" / "tiny").iterdir())
    stems = planned(read(path))
    assert drawn == sorted(f"{stem}.{ext}" for stem in stems for ext in ("png", "pdf"))
    assert capsys.readouterr().out.count("figure: ") == len(drawn)


def test_explain_reads_the_instance_tables_a_summary_keeps(run_dir, tmp_path, capsys):
    from sims.spectrum import instance_table

    summary = summarize(run_dir)
    table, censored = instance_table(run_dir, "greedy-local", 50, None)
    assert summary["explain"]["at50"] == {"table": table, "censored": censored}
    path = tmp_path / "tiny.json"
    path.write_text(dumps(summary))
    flags = {"at50": ["--at", "50"], "eps1e-06": ["--eps", "1e-6"]}
    for key in summary["explain"]:  # at50 always; eps1e-06 where an instance reached 1e-6
        assert main(["explain", str(run_dir), *flags[key]]) == 0
        from_run = capsys.readouterr().out
        assert main(["explain", str(path), *flags[key]]) == 0
        assert capsys.readouterr().out == from_run and "held-out R^2" in from_run
    assert main(["explain", str(path), "--at", "20"]) == 2
    assert "keeps greedy-local's instance tables at50" in capsys.readouterr().err
