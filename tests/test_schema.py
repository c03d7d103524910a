"""The configuration mechanism (sims.schema): one declaration per field gives the strict check
of files and flags, the flags with their help and choices, and the reference of keys."""

from __future__ import annotations

import dataclasses
import json
import tomllib

import pytest

from sims import config as cfg
from sims.__main__ import main
from sims.__main__ import parser as sims_parser
from sims.schema import check, keys, reference
from theory.selectors import LOCAL_METHODS

CONFIGURATIONS = (cfg.ExperimentConfig, cfg.NetworkSpec, cfg.DeepConfig, cfg.MLPSpec)


def _dests(command: str) -> set[str]:
    (sub,) = [a for a in sims_parser()._actions if a.dest == "command"]
    return {a.dest for a in sub.choices[command]._actions}


@pytest.mark.parametrize("command", ["run", "config"])
def test_every_field_of_every_configuration_is_a_flag(command):
    dests = _dests(command)
    for cls in CONFIGURATIONS:
        prefix = "family_" if cls in (cfg.NetworkSpec, cfg.MLPSpec) else ""
        for key in keys(cls):
            if key.name != "networks":  # the families: a file, or --family-FIELD for each field
                assert prefix + key.name in dests, f"{cls.__name__}.{key.name} has no flag"


def test_every_field_is_declared_with_help():
    for cls in CONFIGURATIONS:
        for key in keys(cls):
            assert key.help, f"{cls.__name__}.{key.name} has no help text"


def test_declared_rules_are_read_back():
    found = {key.name: key for key in keys(cfg.ExperimentConfig)}
    assert found["corrective_cap"].bounds == ((">", 0), ("<=", 1))
    assert found["methods"].choices == LOCAL_METHODS and found["methods"].many is Ellipsis
    assert found["fit_window"].many == 2 and found["fit_window"].base is int
    spec = {key.name: key for key in keys(cfg.NetworkSpec)}
    assert spec["outputs"].optional and spec["outputs"].bounds == ((">=", 1),)


def test_reference_lists_every_key_with_type_default_and_rule():
    text = reference(cfg.NetworkSpec, "family")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [k.name for k in keys(cfg.NetworkSpec)]
    assert "| `neurons` | int | `1000` | >= 2 |" in text
    assert "| `outputs` | int or none | `null` | >= 1 |" in text
    assert '| `activation` | str | `"tanh"` | relu, tanh, gelu |' in text


def test_config_reference_command(capsys):
    assert main(["config", "--reference"]) == 0
    out = capsys.readouterr().out
    for cls in CONFIGURATIONS:
        for key in keys(cls):
            assert f"| `{key.name}` |" in out


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"steps": 0}, "f.toml: steps must be >= 1; got 0"),
        ({"steps": "3"}, "f.toml: steps must be an integer; got '3'"),
        ({"corrective_cap": True}, "f.toml: corrective_cap must be a number; got True"),
        ({"networks": [{"neuron": 5}]}, "f.toml: networks[0].neuron is not a key here; valid keys: "
         "neurons, dim"),
        ({"methods": []}, "f.toml: methods must list at least 1"),
        ({"fit_window": [1, 2, 3]}, "f.toml: fit_window must list at most 2"),
        ({"networks": [{"outputs": 0}, {"neurons": 1}]}, "(and 1 more)"),
    ],
)  # fmt: skip
def test_check_names_the_place_the_key_and_the_rule_in_one_line(data, message):
    with pytest.raises(ValueError) as refused:
        check(cfg.ExperimentConfig, data, "f.toml")
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_check_accepts_a_whole_preset_and_rebuilds_it():
    for name in cfg.PRESETS:
        data = json.loads(json.dumps(cfg.preset(name).as_dict()))
        assert check(cfg.ExperimentConfig, data, name) == cfg.preset(name)
    deep = cfg.preset("deep")
    assert check(cfg.DeepConfig, dataclasses.asdict(deep), "deep") == deep


def test_flags_override_the_preset_and_every_family(capsys):
    argv = ["config", "--preset", "regimes", "--seeds", "2", "--family-neurons", "500",
            "--methods", "omp", "random", "--eps-grid", "0.1", "0.01"]  # fmt: skip
    assert main(argv) == 0
    data = tomllib.loads(capsys.readouterr().out)
    assert data["seeds"] == 2 and data["methods"] == ["omp", "random"]
    assert data["eps_grid"] == [0.1, 0.01]
    assert {n["neurons"] for n in data["networks"]} == {500}
    assert len(data["networks"]) == len(cfg.preset("regimes").networks)


def test_boolean_family_flag_and_deep_only_flags(capsys):
    assert main(["config", "--preset", "deep", "--no-family-trained", "--lr", "0.5"]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    assert data["lr"] == 0.5 and not any(n["trained"] for n in data["networks"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "quick", "--steps", "0"], "preset quick with the flags: steps must be >= 1"),
        (["--preset", "quick", "--family-neurons", "1"],
         "preset quick with the flags: networks[0].neurons must be >= 2; got 1"),
        (["--preset", "quick", "--lr", "0.1"], "(two-layer) has no flag(s) --lr"),
        (["--preset", "deep", "--family-dim", "3"], "(MLPs) has no flag(s) --family-dim"),
        (["--preset", "quick", "--methods", "taylor"],
         "methods[0] must be one of: greedy-local"),
    ],
)  # fmt: skip
def test_bad_flags_are_one_line_errors(argv, message, capsys):
    assert main(["config", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_prune_configuration_file_with_flags_over_it(tmp_path, capsys):
    from torchbridge.__main__ import main as torchbridge
    from torchbridge.job import PruneConfig

    assert torchbridge(["config", "--arch", "resnet18", "--flops", "0.5", "--method", "omp"]) == 0
    path = tmp_path / "prune.toml"
    path.write_text(capsys.readouterr().out)
    assert check(PruneConfig, tomllib.loads(path.read_text()), "f") == PruneConfig(
        arch="resnet18", flops=0.5, method="omp"
    )
    path.write_text(path.read_text() + "keeps = 0.5\n")
    assert torchbridge(["prune", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: keeps is not a key here; valid keys: arch, weights" in err
    path.write_text(path.read_text().replace("keeps = 0.5\n", ""))
    argv = ["prune", "--config", str(path), "--seed", "-1", "--out", str(tmp_path / "o")]
    assert torchbridge(argv) == 2
    assert f"{path} with the flags: seed must be >= 0; got -1" in capsys.readouterr().err
    assert torchbridge(["prune", "--keep", "0.5", "--out", str(tmp_path / "o")]) == 2
    assert (
        "prune: give --arch, a torchvision classifier's name (resnet18, efficientnet_b0"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "o" / "pruned.pt").exists()


def test_prune_reference_and_flags_come_from_the_declaration(capsys):
    from torchbridge.__main__ import main as torchbridge
    from torchbridge.__main__ import parser as torchbridge_parser
    from torchbridge.job import PruneConfig

    assert torchbridge(["config", "--reference"]) == 0
    out = capsys.readouterr().out
    assert "| `keep` | float or none | `null` | > 0, <= 1 |" in out
    (sub,) = [a for a in torchbridge_parser()._actions if a.dest == "command"]
    prune = {a.dest: a for a in sub.choices["prune"]._actions}
    for key in keys(PruneConfig):
        assert f"| `{key.name}` |" in out
        assert key.name in prune and key.help in prune[key.name].help
    assert prune["compensate"].option_strings == ["--compensate"]
    evaluate = {a.dest for a in sub.choices["eval"]._actions}
    assert {"images", "test_images", "batch", "size", "seed"} <= evaluate
