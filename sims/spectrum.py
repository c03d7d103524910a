"""Does the spectrum of the centred Gram matrix explain the observed decay? A held-out test.

docs/theory.md statement 6: the linear rate is set by the thinnest direction of the polytope,
and the features of real layers have fast-decaying spectra. For every instance of a run this module
summarises the spectrum (eigenvalues of C, descending) by

- ``log_rank``: log of the affine dimension d (eigenvalues above the rank cut);
- ``log_effective_rank``: log of the participation ratio (sum lambda)^2 / sum lambda^2;
- ``spectral_slope``: alpha of lambda_k ~ k^-alpha, fitted on the eigenvalues down to 1e-8 of
  the largest,

and, from the geometry, ``log_d_over_upper_r`` and ``log_d_over_lower_r`` (log D/r with r's
certified upper and lower bounds; statement 4 makes n_eps grow like 2 log(D/r) if its rate
were the mechanism). It measures the decay of a selector by a model-free target:
``decades``, log10(h_1 / h_n) at a fixed n (how many orders of magnitude n neurons buy), or
``log_n_eps``, log10 of the first n with h / sigma^2 <= eps (the asymptotic view; instances
that never get there are left out and counted). It fits the target on the features by least
squares on the training instances and reports R^2 on held-out instances from other regimes
(e.g. train on relu, test on tanh), next to a baseline that predicts the training mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sims import store
from sims.config import is_deep

FEATURES = ("log_rank", "log_effective_rank", "spectral_slope")
GEOMETRY = ("log_d_over_upper_r", "log_d_over_lower_r")
TARGETS = ("decades", "log_n_eps")


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


def geometry_features(geometry: dict[str, float]) -> dict[str, float]:
    """log(D / r) from r's upper and lower bounds (nan where a bound is 0 or unknown)."""
    d = geometry["diameter"]
    out = {}
    for name, key in zip(GEOMETRY, ("margin_upper", "margin"), strict=True):
        r = geometry.get(key, float("nan"))  # margin_upper is absent from older run folders
        out[name] = float(np.log(d / r)) if r > 0 and d > 0 else float("nan")
    return out


@dataclass(frozen=True)
class Explanation:
    """Least squares target ~ features on train, scored on held-out instances."""

    features: tuple[str, ...]
    coefficients: tuple[float, ...]  # intercept first
    train_r2: float
    test_r2: float
    n_train: int
    n_test: int


def _r2(y: np.ndarray, fit: np.ndarray, reference_mean: float) -> float:
    return float(1.0 - ((y - fit) ** 2).sum() / ((y - reference_mean) ** 2).sum())


def explain(
    table: list[dict], features: tuple[str, ...], train: np.ndarray, target: str = "decades"
) -> Explanation:
    """Fit on rows where ``train`` (bool (R,)) holds; R^2 on the others against the train mean."""
    x = np.array([[row[f] for f in features] for row in table])
    y = np.array([row[target] for row in table])
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{' + '.join(features)} is not finite on every instance")
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


def decades(h1: float, h: float) -> float:
    """log10(h_1 / h): the orders of magnitude from the first loss to ``h``, capped at 16."""
    return float(np.log10(h1 / max(h, FLOOR * h1)))


def instance_table(
    run_dir: Path,
    method: str,
    at: int = 50,
    eps: float | None = None,
    instances: tuple[list[dict], list[dict]] | None = None,
) -> tuple[list[dict], list[dict]]:
    """One row per instance: its network fields, spectrum and geometry features, and the
    target: ``decades`` at n = at (from the last loss at or before n = at when the run stopped
    earlier, capped at 16), or with ``eps`` ``log_n_eps``. Returns (rows, the network fields
    of the instances left out because they never reached eps). ``instances``: the run's
    :func:`sims.store.read_instances`, when the caller has read them already."""
    if is_deep(store.read_config(run_dir)["config"]):
        raise ValueError(f"{run_dir} is a deep run: explain reads two-layer runs")
    if at < 1 or (eps is not None and not 0 < eps < np.inf):
        raise ValueError(f"at must be >= 1 and eps a finite loss > 0; got at={at}, eps={eps}")
    rows, metas = instances if instances is not None else store.read_instances(run_dir)
    curves: dict[tuple[int, int], list[tuple[int, float, float]]] = {}
    for row in rows:
        if row["method"] == method:
            curves.setdefault((row["family"], row["seed"]), []).append(
                (row["n"], row["loss"], row["loss_rel"])
            )
    table, censored = [], []
    for meta in metas:
        points = sorted(curves.get((meta["family"], meta["seed"]), []))
        if not points or points[0][1] <= 0.0:
            continue  # not run, or F is a neuron: nothing to decay
        features = (
            meta["network"]
            | summarise(np.asarray(meta["spectrum"]))
            | geometry_features(meta["geometry"])
        )
        if eps is None:
            h1, h = points[0][1], [loss for n, loss, _ in points if n <= at][-1]
            table.append(features | {"decades": decades(h1, h)})
            continue
        reached = [n for n, _, rel in points if rel <= eps]
        if not reached:
            censored.append(meta["network"])
            continue
        table.append(features | {"log_n_eps": float(np.log10(reached[0]))})
    if not table:
        raise ValueError(
            f"no instance of {run_dir} ran {method}"
            + (f" and reached eps = {eps:g}" if eps is not None else "")
        )
    return table, censored


FEATURE_SETS = [(f,) for f in FEATURES + GEOMETRY] + [FEATURES, FEATURES + GEOMETRY]


def held_out(table: list[dict], holdout: str) -> np.ndarray:
    """bool (R,): the rows of ``table`` with ``holdout`` (FIELD=VALUE), the test set."""
    field_name, _, value = holdout.partition("=")
    if field_name not in table[0]:
        raise ValueError(f"unknown field {field_name!r} in holdout; fields: {', '.join(table[0])}")
    return np.array([str(row[field_name]) == value for row in table])


def report(
    run_dir: Path,
    method: str = "greedy-local",
    at: int = 50,
    holdout: str = "activation=tanh",
    eps: float | None = None,
) -> str:
    """Markdown: each feature set fitted on the instances without ``holdout`` (FIELD=VALUE),
    scored on those with it; the target is decades at n = at, or log10 n_eps with ``eps``."""
    table, censored = instance_table(run_dir, method, at, eps)
    return report_table(table, censored, method, at, holdout, eps)


def report_table(
    table: list[dict],
    censored: list[dict],
    method: str = "greedy-local",
    at: int = 50,
    holdout: str = "activation=tanh",
    eps: float | None = None,
) -> str:
    """:func:`report` of an instance table (:func:`instance_table`), as a run's summary keeps
    it."""
    target = "decades" if eps is None else "log_n_eps"
    held = held_out(table, holdout)
    field_name, _, value = holdout.partition("=")
    held_out_censored = sum(str(row[field_name]) == value for row in censored)
    what = (
        f"decades = log10(h_1 / h_{at})"
        if eps is None
        else f"log10 n_eps, the first n with h / sigma^2 <= {eps:g} (left out, never got "
        f"there: {len(censored) - held_out_censored} training and {held_out_censored} held-out "
        "instances)"
    )
    lines = [
        f"# Spectrum and geometry against decay: {method}, {what}",
        "",
        f"Fitted on {int((~held).sum())} instances without {holdout}, tested on the "
        f"{int(held.sum())} with it (R^2 against the training mean; < 0: worse than it).",
        "",
        "| features | coefficients (intercept first) | train R^2 | held-out R^2 |",
        "| --- | --- | --- | --- |",
    ]
    for features in FEATURE_SETS:
        try:
            e = explain(table, features, ~held, target)
        except ValueError as error:
            lines.append(f"| {' + '.join(features)} | {error} | | |")
            continue
        coef = ", ".join(f"{c:.3g}" for c in e.coefficients)
        lines.append(f"| {' + '.join(features)} | {coef} | {e.train_r2:.3f} | {e.test_r2:.3f} |")
    return "\n".join(lines) + "\n"
