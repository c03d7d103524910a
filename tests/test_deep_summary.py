"""A deep run's summary: what its report and figures show, small enough to commit, and giving
back the same report and figures as the run folder it came from."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest

from sims import config as cfg
from sims import runner, store
from sims.__main__ import configuration, main, parser
from sims.deep import run_deep_instance
from sims.deep_report import deep_figure, deep_markdown, summarize_deep
from sims.summary import command, dumps, read
from tests.test_deep import TINY

RUN = replace(TINY, train_steps=40, lr=0.02, methods=("greedy-local", "global-imitation", "random"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return runner.run(RUN, runs, jobs=1, progress=False, work=run_deep_instance)


def _stored(summary: dict, path) -> dict:
    path.write_text(dumps(summary))
    return read(path)


def test_deep_summary_round_trips_through_its_file(run_dir, tmp_path):
    summary = summarize_deep(run_dir)
    path = tmp_path / "deep.json"
    assert _stored(summary, path) == summary
    assert "NaN" not in path.read_text()  # strict JSON: NaN is written as null
    record = json.loads((run_dir / "config.json").read_text())
    assert summary["kind"] == "sims-deep" and summary["run"] == run_dir.name
    assert summary["config"] == record["config"]
    for key in ("commit", "dirty", "versions", "machine", "created"):
        assert summary[key] == record[key], key
    assert [f["family"] for f in summary["families"]] == [0, 1]
    assert [f["seeds"] for f in summary["families"]] == [[0, 1], [0, 1]]
    assert (
        summary["families"][1]["label"] == "4-layer relu MLP (16/16/16 hidden), random, on digits"
    )


def test_summary_numbers_are_those_of_the_run_folder(run_dir):
    """Per-seed values, paired counts, layer-loss means, shares, worst bound ratio and the
    amplification at layer 1's last step, each computed here from the folder's records; the
    curves the quantiles over seeds of each step's output loss (4 digits)."""
    summary = summarize_deep(run_dir)
    rows, metas = store.read_instances(run_dir)
    for entry in summary["families"]:
        family = entry["family"]
        mine = sorted((m for m in metas if m["family"] == family), key=lambda m: m["seed"])
        assert entry["unpruned"] == [m["test_accuracy_unpruned"] for m in mine]
        assert entry["keep"] == RUN.networks[family].keep
        for method in RUN.methods:
            kept, runs = entry["methods"][method], [m["methods"][method] for m in mine]
            agreement = np.mean([r["test_agreement"] for r in runs])
            assert np.mean(kept["agreement"]) == pytest.approx(agreement, rel=1e-12)
            assert kept["test_accuracy"] == [r["test_accuracy"] for r in runs]
            changes = [r["output_rms_change"] / r["output_rms"] for r in runs]
            assert kept["change"] == pytest.approx(changes, rel=1e-12)
            local = [m["methods"]["greedy-local"]["output_rms_change"] for m in mine]
            below = sum(r["output_rms_change"] < ref for r, ref in zip(runs, local, strict=True))
            assert kept["fewer"] == below
            eps = np.mean([[layer["eps_rel"] for layer in r["layers"]] for r in runs], axis=0)
            assert kept["layer_loss"] == pytest.approx(eps, rel=1e-12)
            assert len(kept["layer_loss"]) == len(RUN.networks[family].widths) - 2
            shares = [layer["local_choice_share"] for r in runs for layer in r["layers"]]
            assert kept["local_share"] == pytest.approx(np.mean(shares), rel=1e-12)
            ratios = [r["output_rms_change"] / r["statement7_bound"] for r in runs]
            assert kept["worst_bound"] == pytest.approx(max(ratios), rel=1e-12)
            assert kept["worst_bound"] <= 1.0 + 1e-9  # statement 7
            for seed, value in zip(entry["seeds"], kept["amplification"], strict=True):
                first = [
                    r
                    for r in rows
                    if (r["family"], r["method"], r["seed"], r["layer"])
                    == (family, method, seed, 1)
                ]
                end = max(first, key=lambda r: r["n"])
                assert value == pytest.approx(end["output_rel"] / end["layer_loss_rel"], rel=1e-12)
        assert entry["methods"]["greedy-local"]["fewer"] == 0  # never below itself
        assert entry["methods"]["greedy-local"]["local_share"] == 1.0
    points = defaultdict(lambda: defaultdict(list))
    for r in rows:
        points[(r["family"], r["layer"], r["method"])][r["n"]].append(r["output_rel"])
    assert sorted(summary["curves"]) == ["0", "1"]
    for family, layers in summary["curves"].items():
        hidden = len(RUN.networks[int(family)].widths) - 2
        assert sorted(layers, key=int) == [str(k) for k in range(1, hidden + 1)]
        for layer, methods in layers.items():
            assert list(methods) == list(RUN.methods)
            for method, curve in methods.items():
                values = points[(int(family), int(layer), method)]
                assert curve["n"] == sorted(values) and len(curve["n"]) > 1
                q = np.array([np.quantile(values[n], (0.25, 0.5, 0.75)) for n in curve["n"]])
                for i, name in enumerate(("lo", "mid", "hi")):
                    np.testing.assert_allclose(curve[name], q[:, i], rtol=5e-4)


def test_a_stored_summary_gives_back_the_report(run_dir, tmp_path, capsys):
    summary = summarize_deep(run_dir)
    stored = _stored(summary, tmp_path / "deep.json")
    assert main(["report", str(run_dir)]) == 0  # the command's report, written to report.md
    text = (run_dir / "report.md").read_text()
    assert deep_markdown(stored) == text and text == capsys.readouterr().out[:-1]
    assert text.startswith("# Report: deep-tiny\n")
    assert text.count("\n## Family ") == 2 and text.count("| random |") == 2
    assert "## Family 1: 4-layer relu MLP (16/16/16 hidden), random, on digits, 6 neurons" in text
    local_rows = [line for line in text.splitlines() if line.startswith("| greedy-local |")]
    assert len(local_rows) == 2 and all("| 0/2 |" in line for line in local_rows)
    deeper = deep_markdown(stored, level=3)
    assert deeper.startswith("### Report: deep-tiny\n") and deeper.count("\n#### Family ") == 2
    assert deeper.replace("### ", "# ").replace("#### ", "## ") == text


@pytest.mark.slow
def test_a_stored_summary_gives_back_the_same_figure_bytes(run_dir, tmp_path):
    summary = summarize_deep(run_dir)
    stored = _stored(summary, tmp_path / "deep.json")
    first = deep_figure(summary, tmp_path / "a")
    second = deep_figure(stored, tmp_path / "b")
    assert [p.name for p in first] == [
        f"deep_layers_f00{f}.{ext}" for f in (0, 1) for ext in ("png", "pdf")
    ]
    assert [p.name for p in second] == [p.name for p in first]
    for a, b in zip(first, second, strict=True):
        assert a.stat().st_size > 1000 and a.read_bytes() == b.read_bytes(), a.name


def test_without_greedy_local_no_seeds_are_counted(tmp_path):
    """No greedy-local to pair with: ``fewer`` is None and the report says n/a."""
    config = replace(RUN, networks=RUN.networks[:1], seeds=1, methods=("random",))
    run_dir = runner.run(config, tmp_path, jobs=1, progress=False, work=run_deep_instance)
    summary = summarize_deep(run_dir)
    assert summary["families"][0]["methods"]["random"]["fewer"] is None
    row = [line for line in deep_markdown(summary).splitlines() if line.startswith("| random |")]
    assert len(row) == 1 and "| n/a |" in row[0]


def test_summary_command_writes_a_deep_summary(run_dir, tmp_path, capsys):
    out = tmp_path / "kept" / "deep.json"
    assert main(["summary", str(run_dir), "--out", str(out)]) == 0
    assert f"summary: {out}" in capsys.readouterr().out
    assert read(out) == summarize_deep(run_dir)
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out == deep_markdown(read(out)) + "\n"
    other = tmp_path / "other.json"
    other.write_text('{"kind": "sims-deeper"}')
    with pytest.raises(ValueError, match="not the summary of a simulation run"):
        read(other)


def test_command_gives_back_the_deep_configuration(run_dir, monkeypatch):
    """The preset (shrunk to TINY here) with flags for what differs; parsed back by the
    command line, it is the summary's configuration."""
    named = cfg.preset
    monkeypatch.setattr(cfg, "preset", lambda name: TINY if name == "deep" else named(name))
    config = summarize_deep(run_dir)["config"]
    line = command(config)
    assert line == (
        "python -m sims run --preset deep --train-steps 40 --lr 0.02 "
        "--methods greedy-local global-imitation random"
    )
    words = line.split()
    assert words[:3] == ["python", "-m", "sims"]
    again = configuration(parser().parse_args(words[3:]))
    assert json.loads(json.dumps(again.as_dict())) == config


def test_command_of_the_deep_preset_and_its_refusal():
    preset = json.loads(json.dumps(cfg.preset("deep").as_dict()))
    assert command(preset) == "python -m sims run --preset deep"
    assert command(preset | {"seeds": 3}) == "python -m sims run --preset deep --seeds 3"
    with pytest.raises(ValueError, match="no preset has its network families"):
        command(json.loads(json.dumps(TINY.as_dict())))
