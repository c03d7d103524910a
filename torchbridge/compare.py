"""Several methods on one network at one budget, in one run: quality before and after the same
short fine-tune, FLOPs, parameters, latency and time, for the comparison tables."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from torchbridge.chains import Chain
from torchbridge.evaluate import compare
from torchbridge.job import PruneConfig, measure, prune_model
from torchbridge.methods import METHODS, usable


def variants(
    methods: tuple[str, ...],
    budget: dict[str, object],
    refit: dict[str, object] | None = None,
    seed: int = 0,
    groups: bool = False,
    allocations: tuple[str, ...] = (),
) -> dict[str, PruneConfig]:
    """The rows of a comparison, by name: every method at ``budget`` (PruneConfig fields, e.g.
    {"keep": f} or {"flops": f, "allocation": "uniform"}; each method takes those its
    capabilities allow, :func:`torchbridge.methods.usable`), and with ``refit`` (PruneConfig
    settings, e.g. {"ridge": 0.1}; {} for the defaults) also each with its consumers refit
    (:mod:`torchbridge.refit`), as the row ``METHOD+refit``; with ``groups``, each method
    that prunes channel groups (its capability ``groups``) also on every group of the
    dependency graph, as ``METHOD+groups`` (and ``METHOD+groups+refit``); each of
    ``allocations`` (of a FLOPs target) also for theory's methods, as ``METHOD+ALLOCATION``
    (and ``METHOD+ALLOCATION+refit``). Each configuration is checked."""
    rows = {}
    for method in methods:
        settings = {"method": method, "seed": seed, **usable(method, budget)}
        sets = [("", {})]
        if groups and METHODS[method].groups:
            sets.append(("+groups", {"groups": True}))
        if METHODS[method].theory:
            sets += [(f"+{a}", {"allocation": a}) for a in allocations]
        for suffix, extra in sets:
            rows[method + suffix] = PruneConfig(**settings | extra)
            if refit is not None:
                rows[f"{method}{suffix}+refit"] = PruneConfig(**settings | extra, refit=True,
                                                              **refit)  # fmt: skip
    for config in rows.values():
        config.check()
    return rows


def compare_row(
    model: nn.Module,
    chains: list[Chain],
    calibration: list[torch.Tensor],
    test: torch.Tensor,
    labels: torch.Tensor | None,
    config: PruneConfig,
    finetune: Callable[[nn.Module], None],
    base: dict,
) -> dict:
    """One row of a comparison: ``measure`` of the network ``config`` prunes (ratios to
    ``base``, the unpruned network's measure, for FLOPs, parameters and latency), seconds,
    kept widths, agreement and KL on the data it was chosen on (suffix ``_calibration``: every
    calibration image; ``_oracle``: the first ``oracle_images``, those the global selectors'
    loss reads), and agreement, KL and accuracy again after ``finetune(pruned)`` (suffix
    ``_tuned``)."""
    seen = torch.cat(calibration)
    start = time.perf_counter()
    pruned, reports, _ = prune_model(model, chains, calibration, config)
    seconds = time.perf_counter() - start
    row = measure(pruned, model, test, labels, 32)
    for key in ("flops", "params", "latency_s"):
        row[key] /= base[key]
    row |= {"seconds": seconds, "widths": [r.kept for r in reports]}
    for part, x in (("calibration", seen), ("oracle", seen[: config.oracle_images])):
        fit = compare(pruned, model, x.split(32))
        row |= {f"agreement_{part}": fit["agreement"], f"kl_{part}": fit["kl"]}
    finetune(pruned)
    tuned = measure(pruned, model, test, labels, 32)
    return row | {f"{k}_tuned": tuned[k] for k in ("agreement", "kl", "accuracy") if k in tuned}


def compare_methods(
    model: nn.Module,
    chains: list[Chain],
    calibration: list[torch.Tensor],
    test: torch.Tensor,
    labels: torch.Tensor | None,
    methods: tuple[str, ...],
    budget: dict[str, float],
    finetune: Callable[[nn.Module], None],
    seed: int = 0,
    progress: Callable[[str, dict], None] | None = None,
    refit: dict[str, object] | None = None,
) -> dict[str, dict]:
    """{"unpruned": the unpruned network's ``measure``, "methods": {name: row}}: every row of
    :func:`variants` (methods, budget, refit, seed) by :func:`compare_row`, in one run;
    ``progress(name, row)`` after each."""
    base = measure(model, model, test, labels, 32)
    rows = {}
    for name, config in variants(methods, budget, refit, seed).items():
        rows[name] = compare_row(model, chains, calibration, test, labels, config, finetune, base)
        if progress is not None:
            progress(name, rows[name])
    return {"unpruned": base, "methods": rows}
