"""Loss curves of a run folder, grouped: family -> method -> one curve per seed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sims import store


@dataclass(frozen=True)
class Curve:
    """One selector on one instance: n (K,), loss / sigma^2 (K,), and the instance's geometry."""

    seed: int
    n: np.ndarray
    loss_rel: np.ndarray
    geometry: dict[str, Any]
    samples: int


@dataclass(frozen=True)
class RunCurves:
    config: dict[str, Any]
    families: list[dict[str, Any]]  # the NetworkSpec of each family, as a dict
    curves: dict[int, dict[str, list[Curve]]]  # family -> method -> curves over seeds
    metas: list[dict[str, Any]]


def family_title(spec: dict[str, Any]) -> str:
    """A NetworkSpec (as a dict) in words, e.g. ``relu, gaussian inputs, random first layer:
    N=4000, d=10, m=50`` (``, k=10 outputs`` when there is more than one)."""
    outputs = spec.get("outputs")  # absent from older run folders
    k = f", k={outputs} outputs" if outputs not in (None, 1) else ""
    return (
        f"{spec['activation']}, {spec['inputs']} inputs, {spec['training']} first layer: "
        f"N={spec['neurons']}, d={spec['dim']}, m={spec['samples']}{k}"
    )


def load_curves(run_dir: Path, instances: tuple[list[dict], list[dict]] | None = None) -> RunCurves:
    """The curves of a run folder; ``instances``: its :func:`sims.store.read_instances`, when
    the caller has read them already."""
    record = store.read_config(run_dir)
    rows, metas = instances if instances is not None else store.read_instances(run_dir)
    if not metas:
        raise ValueError(f"{run_dir} has no finished instances yet: run it first")
    by_key: dict[tuple[int, int, str], list[tuple[int, float]]] = defaultdict(list)
    for row in rows:
        by_key[(row["family"], row["seed"], row["method"])].append((row["n"], row["loss_rel"]))
    meta_of = {(m["family"], m["seed"]): m for m in metas}
    curves: dict[int, dict[str, list[Curve]]] = defaultdict(lambda: defaultdict(list))
    for (family, seed, method), points in sorted(by_key.items()):
        points.sort()
        meta = meta_of[(family, seed)]
        curves[family][method].append(
            Curve(
                seed=seed,
                n=np.array([p[0] for p in points]),
                loss_rel=np.array([p[1] for p in points]),
                geometry=meta["geometry"],
                samples=meta["network"]["samples"],
            )
        )
    config = record["config"]
    return RunCurves(config, config["networks"], curves, metas)


def quantiles(curves: list[Curve], qs: tuple[float, ...] = (0.25, 0.5, 0.75)) -> np.ndarray:
    """Quantiles over seeds of loss / sigma^2 at each n: (len(qs), K) for the longest curve.

    Curves that stopped early (converged) are extended with their last value.
    """
    length = max(len(c.n) for c in curves)
    stacked = np.full((len(curves), length), np.nan)
    for i, c in enumerate(curves):
        stacked[i, : len(c.n)] = c.loss_rel
        stacked[i, len(c.n) :] = c.loss_rel[-1] if len(c.n) else np.nan
    return np.nanquantile(stacked, qs, axis=0)
