"""Every flag of the command lines has help text, and every list of valid values agrees with
the registry it comes from (a parser is walked, not its --help output read).

The studies are experiments now: the experiments' parsers are walked per command and
experiment ("run effnet-compare")."""

from __future__ import annotations

import argparse

import pytest

from experiments.__main__ import parser as experiments_parser
from experiments.catalog import EXPERIMENTS
from sims import config as cfg
from sims.__main__ import parser as sims_parser
from theory.selectors import SELECTORS
from torchbridge.__main__ import parser as torchbridge_parser
from torchbridge.budget import ALLOCATIONS
from torchbridge.methods import METHODS
from torchbridge.mnist import NETS
from torchbridge.oracle import OBJECTIVES

STUDIES: set[str] = set()  # every study is an experiment now


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Subcommand name -> its parser."""
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every flag or positional of a subcommand but --help, by its longest name."""
    return {
        max(a.option_strings, key=len) if a.option_strings else a.dest: a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction)
    }


PARSERS = {
    "sims": commands(sims_parser()),
    "torchbridge": commands(torchbridge_parser()),
    "experiments": {
        f"{command} {name}": each
        for command, parser in commands(experiments_parser()).items()
        if command in ("run", "config")
        for name, each in commands(parser).items()
    }
    | {
        command: parser
        for command, parser in commands(experiments_parser()).items()
        if command in ("list", "results")
    },
}
WALKED = [
    (tool, name, parser)
    for tool, found in PARSERS.items()
    for name, parser in found.items()
    if not (tool == "torchbridge" and name in STUDIES)
]


def test_the_walk_reaches_every_command():
    assert set(PARSERS["sims"]) == {"run", "config", "explain", "plot", "report", "summary"}
    assert set(PARSERS["torchbridge"]) == {"prune", "eval", "finetune", "config", "rates"} | STUDIES
    assert set(PARSERS["experiments"]) == {
        f"{c} {n}" for c in ("run", "config") for n in EXPERIMENTS
    } | {"list", "results"}


@pytest.mark.parametrize(("tool", "name", "parser"), WALKED, ids=[f"{t}-{n}" for t, n, _ in WALKED])
def test_every_flag_has_help_text(tool, name, parser):
    bare = [flag for flag, action in flags(parser).items() if not (action.help or "").strip()]
    assert not bare, f"{tool} {name}: no help for {', '.join(bare)}"


@pytest.mark.parametrize(
    ("tool", "name", "flag", "valid"),
    [
        ("torchbridge", "prune", "--method", tuple(METHODS)),
        ("torchbridge", "prune", "--allocation", ALLOCATIONS),
        ("torchbridge", "prune", "--objective", OBJECTIVES),
        ("sims", "run", "--methods", tuple(SELECTORS)),
        ("sims", "run", "--preset", (*cfg.PRESETS, "deep")),
        ("sims", "config", "--preset", (*cfg.PRESETS, "deep")),
        ("sims", "explain", "--method", tuple(SELECTORS)),
        ("sims", "run", "--family-activation", cfg.ACTIVATIONS),
        ("sims", "run", "--family-inputs", cfg.INPUTS),
        ("sims", "run", "--family-training", cfg.TRAINING),
        ("sims", "config", "--family-activation", cfg.ACTIVATIONS),
        ("torchbridge", "config", "--method", tuple(METHODS)),
        ("experiments", "run effnet-compare", "--methods", tuple(METHODS)),
        ("experiments", "run mnist-compare", "--methods", tuple(METHODS)),
        ("experiments", "run mnist-compare", "--net", NETS),
        ("experiments", "config mnist-compare", "--allocation", ALLOCATIONS),
    ],
)
def test_choices_agree_with_their_registry(tool, name, flag, valid):
    action = flags(PARSERS[tool][name])[flag]
    assert tuple(action.choices) == tuple(valid)
    for value in valid:  # each named in the help text or the usage line
        assert value in (action.help or "") + " ".join(map(str, action.choices))


def test_a_value_outside_the_choices_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as stopped:
        torchbridge_parser().parse_args(["prune", "--method", "best", "--out", "x"])
    assert stopped.value.code == 2
    assert "invalid choice: 'best'" in capsys.readouterr().err
