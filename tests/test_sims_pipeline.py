"""The simulation pipeline end to end: configurations, runs, resume, report and figures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sims import config as cfg
from sims import runner, store
from sims.__main__ import main
from sims.instance import instances

TINY = cfg.ExperimentConfig(
    name="tiny",
    networks=cfg.grid(cfg.NetworkSpec(neurons=60, dim=2, samples=8), activation=["relu", "tanh"]),
    methods=("greedy-local", "fixed-step", "fully-corrective", "omp", "random"),
    steps=15,
    seeds=3,
    fit_window=(2, 15),
)


def _contents(run_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((run_dir / "instances").glob("*.csv"))}


def test_tiny_run_writes_every_instance_with_its_record(tmp_path):
    run_dir = runner.run(TINY, tmp_path, jobs=1, progress=False)
    assert run_dir.name == f"tiny-{TINY.digest()}"
    record = json.loads((run_dir / "config.json").read_text())
    assert record["config"] == json.loads(json.dumps(TINY.as_dict()))
    assert record["config"]["seed"] == 0 and record["versions"]["numpy"]
    rows, metas = store.read_instances(run_dir)
    assert len(metas) == 2 * 3
    assert {r["method"] for r in rows} == set(TINY.methods)
    assert all(r["loss"] >= 0 for r in rows)
    assert {m["geometry"]["rank"] for m in metas} <= set(range(1, 9))
    assert not list(run_dir.rglob("*.tmp"))  # atomic writes leave nothing behind


def test_same_config_same_results_and_resume_after_a_kill(tmp_path, monkeypatch):
    first = runner.run(TINY, tmp_path / "a", jobs=1, progress=False)
    calls = {"n": 0}
    real = runner.run_instance

    def dies_after_two(config, instance):
        if calls["n"] == 2:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(config, instance)

    monkeypatch.setattr(runner, "run_instance", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        runner.run(TINY, tmp_path / "b", jobs=1, progress=False)
    second = tmp_path / "b" / TINY.run_name
    assert len(list((second / "instances").glob("*.json"))) == 2  # finished ones were kept
    monkeypatch.setattr(runner, "run_instance", real)
    runner.run(TINY, tmp_path / "b", jobs=1, progress=False)
    assert _contents(second) == _contents(first)


def test_parallel_run_equals_serial_run(tmp_path):
    serial = runner.run(TINY, tmp_path / "s", jobs=1, progress=False)
    parallel = runner.run(TINY, tmp_path / "p", jobs=2, progress=False)
    assert _contents(parallel) == _contents(serial)


@pytest.mark.slow
def test_dask_cluster_run_equals_serial_run(tmp_path):
    """--cluster: the same joblib Parallel call on a Dask cluster (here a local one)."""
    distributed = pytest.importorskip("dask.distributed")
    serial = runner.run(TINY, tmp_path / "s", jobs=1, progress=False)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = runner.run(TINY, tmp_path / "d", cluster=cluster.scheduler_address, progress=False)
    assert _contents(remote) == _contents(serial)
    with pytest.raises(
        ValueError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:1"
    ):
        runner.run(TINY, tmp_path / "x", cluster="tcp://127.0.0.1:1", progress=False)


@pytest.mark.slow
def test_ray_cluster_run_equals_serial_run(tmp_path, monkeypatch):
    """--cluster ray:ADDRESS: a Ray cluster started as a user would (``ray start --head``), at
    the address it prints. Skipped when a Ray cluster already runs here: ``ray stop`` would
    stop it too."""
    pytest.importorskip("ray")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray_cli is None:
        pytest.skip("the ray command is not installed beside this interpreter")
    if subprocess.run(["pgrep", "-f", "gcs_server"], capture_output=True).returncode == 0:
        pytest.skip("a Ray cluster already runs on this machine; not touching it")
    serial = runner.run(TINY, tmp_path / "s", jobs=1, progress=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a private test cluster, no tokens
    start = ["start", "--head", "--num-cpus=2", "--include-dashboard=false"]
    start.append("--disable-usage-stats")
    started = subprocess.run([ray_cli, *start], check=True, capture_output=True, text=True)
    try:
        address = re.search(r"--address='([^']+)'", started.stdout + started.stderr).group(1)
        remote = runner.run(TINY, tmp_path / "r", cluster=f"ray:{address}", progress=False)
    finally:
        subprocess.run([ray_cli, "stop"], check=False, capture_output=True)
    assert _contents(remote) == _contents(serial)


def test_a_ray_cluster_needs_an_address(tmp_path):
    pytest.importorskip("ray")
    with pytest.raises(ValueError, match="Ray cluster address is ray:auto"):
        runner.run(TINY, tmp_path, cluster="ray:", progress=False)


def test_digest_changes_with_the_configuration():
    assert TINY.digest() == replace(TINY).digest()
    assert TINY.digest() != replace(TINY, steps=16).digest()
    assert len(instances(TINY)) == 6


@pytest.mark.slow
def test_cli_run_report_and_plot(tmp_path, capsys):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY.as_dict()))
    code = main(
        ["run", "--config", str(path), "--runs", str(tmp_path / "runs"),
         "--figures", str(tmp_path / "fig"), "--jobs", "1", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "| greedy-local | 3 |" in out and "verdict" in out
    for stem in ("decay_f000", "decay_f001", "rate_vs_margin", "rates_by_family"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "fig" / "tiny" / f"{stem}.{ext}").stat().st_size > 1000
    run_dir = tmp_path / "runs" / TINY.run_name
    assert (run_dir / "report.md").read_text().startswith("# Report: tiny")


def test_toml_configuration(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(
        'name = "t"\nmethods = ["greedy-local"]\nsteps = 5\nseeds = 2\nfit_window = [2, 5]\n'
        '[[networks]]\nneurons = 30\nsamples = 5\nactivation = "gelu"\n'
    )
    config = cfg.load(path)
    assert config.networks[0].activation == "gelu" and config.steps == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"networks": (cfg.NetworkSpec(neurons=-5),)},
            r"networks\[0\]\.neurons must be >= 2; got -5",
        ),
        (
            {"networks": (cfg.NetworkSpec(samples=0),)},
            r"networks\[0\]\.samples must be >= 1; got 0",
        ),
        (
            {"networks": (cfg.NetworkSpec(activation="swish"),)},
            "activation must be one of: relu, tanh, gelu; got 'swish'",
        ),
        (
            {"networks": (cfg.NetworkSpec(inputs="cifar"),)},
            "inputs must be one of: gaussian, sphere, digits, mnist5k; got 'cifar'",
        ),
        ({"networks": (cfg.NetworkSpec(inputs="digits"),)}, "digits fixes the input dimension"),
        ({"networks": (cfg.NetworkSpec(training="labels"),)}, "needs real data"),
        ({"networks": (cfg.NetworkSpec(outputs=0),)}, "outputs must be >= 1; got 0"),
        ({"networks": (cfg.NetworkSpec(training="teacher", outputs=3),)}, "fits 1 output"),
        ({"networks": ()}, "networks must list at least 1"),
        ({"methods": ("greedy",)}, r"methods\[0\] must be one of: greedy-local, .*; got 'greedy'"),
        ({"steps": 0}, "steps must be >= 1; got 0"),
        ({"fit_window": (5, 2)}, "fit_window must be"),
        ({"eps_grid": ()}, "eps_grid must list at least 1"),
        ({"eps_grid": (1e-3, 0.0)}, r"eps_grid\[1\] must be > 0"),
    ],
)
def test_bad_configurations_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        replace(TINY, **change).validate()


def test_unknown_preset_and_file_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown preset 'fast'; valid presets: quick"):
        cfg.preset("fast")
    with pytest.raises(SystemExit) as refused:  # the parser's choices
        main(["run", "--preset", "fast", "--runs", str(tmp_path)])
    assert refused.value.code == 2
    assert "--preset: invalid choice: 'fast'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="configuration file not found"):
        cfg.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stepz": 3}))
    with pytest.raises(
        ValueError, match=r"bad\.json: stepz is not a key here; valid keys: name, networks, methods"
    ):
        cfg.load(bad)
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_every_preset_is_valid():
    for name in cfg.PRESETS:
        cfg.preset(name).validate()


@pytest.mark.slow
def test_grid_runs_get_a_regime_map(tmp_path):
    from sims.plots import plot_run
    from sims.summary import summarize

    config = replace(
        TINY,
        name="grid",
        networks=cfg.grid(cfg.NetworkSpec(dim=2), neurons=[30, 60], samples=[4, 8]),
        methods=("greedy-local", "random"),
        seeds=2,
    )
    run_dir = runner.run(config, tmp_path, jobs=1, progress=False)
    paths = plot_run(summarize(run_dir), tmp_path / "fig")
    names = {p.name for p in paths}
    assert {"regime_map_greedy-local.png", "regime_map_greedy-local.pdf"} <= names
    assert "regime_map_fully-corrective.png" not in names  # not run, so not drawn


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (cfg.NetworkSpec(inputs="digits", dim=64, samples=900, training="labels"), "1797 images"),
        (cfg.NetworkSpec(train_samples=0, training="teacher"), "train_samples must be >= 1"),
    ],
)
def test_real_data_sizes_are_checked(spec, message):
    with pytest.raises(ValueError, match=message):
        spec.validate()


def test_trained_network_calibrates_on_samples_it_did_not_see():
    from sims.instance import build_problem

    spec = cfg.NetworkSpec(neurons=50, dim=64, samples=30, inputs="digits", training="labels",
                           activation="relu", train_steps=20, train_samples=200)  # fmt: skip
    problem = build_problem(spec, 3)
    assert problem.n_neurons == 50
    random_spec = replace(spec, training="random")
    assert not np.allclose(build_problem(random_spec, 3).centred, problem.centred)


def test_atomic_write_replaces_whole_files_readable_by_others(tmp_path):
    path = tmp_path / "deep" / "report.json"
    store.atomic_write(path, "first")
    store.atomic_write(path, "second")
    assert path.read_text() == "second"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temporary left


def test_report_brackets_the_rate_bound_where_r_is_not_exact(tmp_path):
    """Statement 4's c from r's certified lower and upper bounds: ordered, and one number
    where r is exact (affine rank <= 6); the report prints the bracket as 'LOW to HIGH'."""
    from sims.curves import load_curves
    from sims.report import markdown, rows
    from sims.summary import summarize

    config = replace(TINY, networks=cfg.grid(cfg.NetworkSpec(neurons=60, dim=2), samples=[4, 12]))
    run_dir = runner.run(config, tmp_path, jobs=1, progress=False)
    run = load_curves(run_dir)
    table = rows(run)
    exact = {
        f: all(c.geometry["margin_exact"] for c in methods["greedy-local"])
        for f, methods in run.curves.items()
    }
    assert exact == {0: True, 1: False}
    for row in table:
        if exact[row["family"]]:
            assert row["c_bound_upper"] == row["c_bound"] > 0
        else:
            assert 0 <= row["c_bound"] < row["c_bound_upper"]
    text = markdown(summarize(run_dir))
    low, high = table[-1]["c_bound"], table[-1]["c_bound_upper"]
    assert f"| {low:.2g} to {high:.2g} |" in text


def test_report_gives_the_neurons_each_selector_needs(tmp_path):
    """The 'neurons needed' table: per selector and eps, the median over seeds of the first n
    with loss / sigma^2 <= eps, '> K' when most seeds never got there."""
    from sims.curves import load_curves
    from sims.fit import n_eps
    from sims.report import markdown, rows
    from sims.summary import summarize

    run_dir = runner.run(TINY, tmp_path, jobs=1, progress=False)
    run = load_curves(run_dir)
    table = rows(run)
    eps_grid = run.config["eps_grid"]
    for row in table:
        curves = run.curves[row["family"]][row["method"]]
        for eps, value in zip(eps_grid, row["n_eps"], strict=True):
            direct = [n_eps(c.n, c.loss_rel, eps) for c in curves]
            reached = sorted(v for v in direct if np.isfinite(v))
            if len(reached) * 2 > len(direct):  # 3 seeds: the median is the 2nd smallest
                assert value == sorted(direct, key=lambda v: (np.isnan(v), v))[1]
            else:
                assert np.isnan(value)
    text = markdown(summarize(run_dir))
    assert text.count("Neurons needed") == 2 and f"> {TINY.steps}" in text


def test_outputs_set_the_layer_width_and_the_rank():
    """k outputs per neuron: psi_i(x) in R^k, so the affine rank reaches k m (here 3 x 4)."""
    from sims.instance import build_problem
    from theory import geometry

    spec = cfg.NetworkSpec(neurons=200, dim=3, samples=4, outputs=3)
    spec.validate()
    assert spec.label.endswith("m=4 k=3")
    assert geometry(build_problem(spec, 0)).rank == 12
    assert geometry(build_problem(replace(spec, outputs=None), 0)).rank == 4
    labels = cfg.NetworkSpec(inputs="digits", dim=64, training="labels")
    assert labels.n_outputs == 10
    with pytest.raises(ValueError, match="fits 10 output"):
        replace(labels, outputs=1).validate()


@pytest.mark.parametrize("name", [*cfg.PRESETS, "deep"])
@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_every_preset_round_trips_through_toml_and_json(tmp_path, name, fmt):
    """``python -m sims config`` prints a file that ``--config`` reads back to an equal
    configuration (same run folder), for two-layer and deep presets alike."""
    path = tmp_path / f"{name}.{fmt}"
    path.write_text(cfg.dumps(cfg.preset(name), fmt))
    again = cfg.load(path)
    assert again == cfg.preset(name) and again.run_name == cfg.preset(name).run_name


def test_regime_maps_need_a_full_grid():
    """A regime map (N against m) is drawn for a full grid, not for one-factor designs."""
    from sims.plots import is_grid

    def specs(name):
        return [vars(s) for s in cfg.preset(name).networks]

    assert is_grid(specs("regimes"), ("neurons", "samples"))
    assert not is_grid(specs("rates"), ("neurons", "samples"))  # varies one factor at a time
    assert not is_grid(specs("quick"), ("neurons", "samples"))  # N does not vary
    assert not is_grid(specs("regimes")[:-1], ("neurons", "samples"))  # a cell missing
    regimes = specs("regimes")
    twice = [*regimes[:-1], regimes[0]]  # as many families, one cell twice, one missing
    assert not is_grid(twice, ("neurons", "samples"))


def test_run_folder_names_do_not_move_when_a_field_is_added_with_a_none_default():
    """The digest leaves None-valued fields out: NetworkSpec.outputs (None by default) came
    after run folders like quick-b2e615a92f existed, and those still resume."""
    assert cfg.preset("quick").run_name == "quick-b2e615a92f"
    assert replace(TINY).digest() == TINY.digest()
    three = replace(TINY, networks=(replace(TINY.networks[0], outputs=3),))
    assert three.digest() != TINY.digest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('methods = "greedy-local"\n', r"bad\.toml: methods must be a list; got 'greedy-local'"),
        ("fit_window = 5\n", r"bad\.toml: fit_window must be a list; got 5"),
        ("fit_window = [1]\n", r"fit_window has too few values; got \[1\]"),
        ("seeds = 1.5\n", r"bad\.toml: seeds must be an integer; got 1\.5"),
        ("seeds = true\n", "seeds must be an integer; got True"),
        ('steps = "ten"\n', "steps must be an integer; got 'ten'"),
        ("name = 5\n", "name must be a string; got 5"),
        ('eps_grid = ["a"]\n', r"eps_grid\[0\] must be a number; got 'a'"),
        ("[[networks]]\nneurons = 50.5\n", r"networks\[0\]\.neurons must be an integer; got 50\.5"),
        ("networks = 5\n", "networks must be a list; got 5"),
        ("networks = [1, 2]\n", r"networks\[0\] must be a table of keys; got 1"),
        (
            '[[networks]]\nwidths = [64, "a", 10]\n',
            r"networks\[0\]\.widths\[1\] must be an integer; got 'a'",
        ),
        ("seed = -1\n", "seed must be >= 0; got -1"),
        ("steps = [\n", r"bad\.toml cannot be parsed"),
    ],
)
def test_configuration_files_with_wrong_types_are_named(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        cfg.load(path)


def test_configuration_files_that_are_not_tables_are_named(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"list\.json must hold a table of keys; got list"):
        cfg.load(tmp_path / "list.json")
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(ValueError, match="configuration file not found"):
        cfg.load(tmp_path / "folder.toml")


def test_damaged_run_folders_and_file_outputs_are_named(tmp_path, capsys):
    """report, plot and explain name the damaged file of a run folder instead of failing
    inside the csv or json readers; a --runs or --figures that is a file is refused before
    any instance runs."""
    good = runner.run(replace(TINY, seeds=1, methods=("greedy-local",)), tmp_path / "r", 1,
                      progress=False)  # fmt: skip

    def error(argv: list[str]) -> str:
        assert main(argv) == 2
        return capsys.readouterr().err

    file = tmp_path / "file"
    file.write_text("")
    assert f"--runs {file}: {file} is a file, not a folder" in error(
        ["run", "--preset", "quick", "--runs", str(file)]
    )
    assert f"{file} is a file, not a folder" in error(["plot", str(good), "--figures", str(file)])
    table = sorted((good / "instances").glob("*.csv"))[0].relative_to(good)
    lines = (good / table).read_text().splitlines()
    for damage, message in (
        (lambda run: (run / "config.json").write_text("{}"), "holds no configuration"),
        (lambda run: (run / "config.json").write_text("{"), "cannot be read as JSON"),
        (lambda run: (run / table).write_text("\n".join([*lines[:2], "1,2"])), "is damaged"),
        (lambda run: (run / table).write_text(lines[0]), "is damaged"),
        (lambda run: (run / table).unlink(), "the rows of a finished instance"),
    ):
        run = tmp_path / "damaged"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(good, run)
        damage(run)
        for command in (["report", str(run)], ["explain", str(run)]):
            assert message in error(command)
