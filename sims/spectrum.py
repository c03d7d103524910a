"""Does the spectrum of the centred Gram matrix explain the observed decay? A held-out test.

THEORY.md section 6: the linear rate is set by the thinnest direction of the polytope, and the
features of real layers have fast-decaying spectra. For every instance of a run this module
summarises the spectrum (eigenvalues of C, descending) by

- ``log_rank``: log of the affine dimension d (eigenvalues above the rank cut);
- ``log_effective_rank``: log of the participation ratio (sum lambda)^2 / sum lambda^2;
- ``spectral_slope``: alpha of lambda_k ~ k^-alpha, fitted on the eigenvalues down to 1e-8 of
  the largest,

and measures the decay of a selector by ``decades``: log10(h_1 / h_n) at a fixed n (model-free:
how many orders of magnitude n neurons buy). It fits decades ~ spectrum summaries by least
squares on the training instances and reports R^2 on held-out instances from other regimes
(e.g. train on relu, test on tanh), next to a baseline that predicts the training mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sims import store

FEATURES = ("log_rank", "log_effective_rank", "spectral_slope")


def summarise(eigenvalues: np.ndarray) -> dict[str, float]:
    """Spectrum summaries (see the module docstring) of positive eigenvalues (d,), descending."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    lam = lam[lam > 0]
    if lam.size == 0:
        raise ValueError("the spectrum is empty: all neurons coincide")
    top = lam[lam >= 1e-8 * lam[0]]
    if top.size >= 3:
        k = np.arange(1, top.size + 1)
        slope = -np.polyfit(np.log(k), np.log(top), 1)[0]
    else:
        slope = 0.0
    return {
        "log_rank": float(np.log(lam.size)),
        "log_effective_rank": float(np.log(lam.sum() ** 2 / (lam**2).sum())),
        "spectral_slope": float(slope),
    }


@dataclass(frozen=True)
class Explanation:
    """Least squares decades ~ features on train, scored on held-out instances."""

    features: tuple[str, ...]
    coefficients: tuple[float, ...]  # intercept first
    train_r2: float
    test_r2: float
    n_train: int
    n_test: int


def _r2(y: np.ndarray, fit: np.ndarray, reference_mean: float) -> float:
    return float(1.0 - ((y - fit) ** 2).sum() / ((y - reference_mean) ** 2).sum())


def explain(table: list[dict], features: tuple[str, ...], train: np.ndarray) -> Explanation:
    """Fit on rows where ``train`` (bool (R,)) holds; R^2 on the others against the train mean."""
    x = np.array([[row[f] for f in features] for row in table])
    y = np.array([row["decades"] for row in table])
    design = np.column_stack([np.ones(len(table)), x])
    if train.sum() <= len(features) + 1 or (~train).sum() < 2:
        raise ValueError(f"need more than {len(features) + 1} training rows and 2 held-out rows")
    coef, *_ = np.linalg.lstsq(design[train], y[train], rcond=None)
    mean = float(y[train].mean())
    return Explanation(
        features=features,
        coefficients=tuple(float(c) for c in coef),
        train_r2=_r2(y[train], design[train] @ coef, mean),
        test_r2=_r2(y[~train], design[~train] @ coef, mean),
        n_train=int(train.sum()),
        n_test=int((~train).sum()),
    )


FLOOR = 1e-16  # losses below this fraction of h_1 are round-off: decades are capped at 16


def instance_table(run_dir: Path, method: str, at: int) -> list[dict]:
    """One row per instance: its network fields, spectrum summaries and decades at n = at
    (from the last loss at or before n = at when the run stopped earlier, capped at 16)."""
    rows, metas = store.read_instances(run_dir)
    first: dict[tuple[int, int], float] = {}
    last: dict[tuple[int, int], tuple[int, float]] = {}
    for row in rows:
        key = (row["family"], row["seed"])
        if row["method"] != method or row["n"] > at:
            continue
        if row["n"] == 1:
            first[key] = row["loss"]
        if row["n"] >= last.get(key, (0, 0.0))[0]:
            last[key] = (row["n"], row["loss"])
    table = []
    for meta in metas:
        key = (meta["family"], meta["seed"])
        if first.get(key, 0.0) <= 0.0:
            continue  # F is a neuron: nothing to decay
        h1, h = first[key], last[key][1]
        table.append(
            meta["network"]
            | summarise(np.asarray(meta["spectrum"]))
            | {"decades": float(np.log10(h1 / max(h, FLOOR * h1)))}
        )
    if not table:
        raise ValueError(f"no instance of {run_dir} ran {method}")
    return table


def report(
    run_dir: Path, method: str = "greedy-local", at: int = 50, holdout: str = "activation=tanh"
) -> str:
    """Markdown: each feature set fitted on the instances without ``holdout`` (FIELD=VALUE),
    scored on those with it."""
    field_name, _, value = holdout.partition("=")
    table = instance_table(run_dir, method, at)
    if field_name not in table[0]:
        raise ValueError(f"unknown field {field_name!r} in holdout; fields: {', '.join(table[0])}")
    held = np.array([str(row[field_name]) == value for row in table])
    lines = [
        f"# Spectrum against decay: {method}, decades = log10(h_1 / h_{at})",
        "",
        f"Fitted on {int((~held).sum())} instances without {holdout}, tested on the "
        f"{int(held.sum())} with it (R^2 against the training mean; < 0: worse than it).",
        "",
        "| features | coefficients (intercept first) | train R^2 | held-out R^2 |",
        "| --- | --- | --- | --- |",
    ]
    for features in [(f,) for f in FEATURES] + [FEATURES]:
        try:
            e = explain(table, features, ~held)
        except ValueError as error:
            lines.append(f"| {' + '.join(features)} | {error} | | |")
            continue
        coef = ", ".join(f"{c:.3g}" for c in e.coefficients)
        lines.append(f"| {' + '.join(features)} | {coef} | {e.train_r2:.3f} | {e.test_r2:.3f} |")
    return "\n".join(lines) + "\n"
