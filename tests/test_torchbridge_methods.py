"""The registry of pruning methods: theory's selectors and Torch-Pruning's baselines, with the
capabilities that alone decide which settings a method takes."""

from __future__ import annotations

import pytest

from theory.selectors import OUTPUT_SELECTORS, SELECTORS
from torchbridge.baselines import TP_METHODS
from torchbridge.job import PruneConfig
from torchbridge.methods import METHODS, able, check_settings, method, usable


def test_every_selector_and_baseline_is_registered_with_its_capabilities():
    assert list(METHODS) == [*SELECTORS, *OUTPUT_SELECTORS, *TP_METHODS]
    for name, spec in (SELECTORS | OUTPUT_SELECTORS).items():
        found = METHODS[name]
        assert found.theory and found.convex == spec.simplex
        assert found.folded == (name in SELECTORS)
        assert found.output_loss == spec.needs_oracle
        assert found.repeats == ("repeats" in spec.options)
        assert found.groups == (name in SELECTORS and not spec.needs_oracle)
    for name in TP_METHODS:
        found = METHODS[name]
        assert not any((found.theory, found.convex, found.repeats, found.groups))
    assert "greedy-local" in able("groups") and "omp" in able("groups")
    assert not {"global-imitation", "whole-output", "tp-l1"} & set(able("groups"))
    assert able("no_repeats") == (
        "greedy-local", "fixed-step", "global-imitation", "combined", "taylor"
    )  # fmt: skip
    assert able("resolve") == tuple(n for n, s in SELECTORS.items() if s.simplex)


def test_a_setting_is_refused_for_a_method_without_the_capability_naming_those_with_it():
    with pytest.raises(ValueError, match=r"--no-repeats is for methods that may pick a channel "
                       r"again \(greedy-local, fixed-step, .*\), not omp"):  # fmt: skip
        check_settings("omp", {"no_repeats": True})
    with pytest.raises(ValueError, match="--tol is for methods that choose channels by the "):
        check_settings("tp-l1", {"tol": 0.1})
    with pytest.raises(ValueError, match="--candidates is for methods that score steps"):
        check_settings("greedy-local", {"candidates": 5})
    check_settings("greedy-local", {"no_repeats": True, "tol": 0.1, "resolve": True})
    check_settings("omp", {"no_repeats": False, "candidates": None})  # not given: no error
    with pytest.raises(ValueError, match="unknown method 'l1'; valid: greedy-local, "):
        method("l1")


def test_usable_keeps_only_what_each_method_takes():
    settings = {"keep": 0.5, "compensate": True, "resolve": True, "no_repeats": True}
    assert usable("greedy-local", settings) == settings
    assert usable("omp", settings) == {"keep": 0.5, "compensate": True}
    assert usable("tp-l1", settings) == {"keep": 0.5}
    assert usable("whole-output", settings) == {"keep": 0.5}


def test_prune_configurations_follow_the_registry():
    PruneConfig("resnet18", method="greedy-local", keep=0.5, no_repeats=True, device="cpu").check()
    PruneConfig("resnet18", method="fixed-step", keep=0.5, no_repeats=True, device="cpu").check()
    for name, flag in (("omp", "no_repeats"), ("tp-l1", "compensate"), ("omp", "resolve"),
                       ("whole-output", "compensate"), ("whole-output", "resolve")):  # fmt: skip
        config = PruneConfig("resnet18", method=name, keep=0.5, device="cpu", **{flag: True})
        with pytest.raises(ValueError, match=f"--{flag.replace('_', '-')} is for methods that"):
            config.check()
