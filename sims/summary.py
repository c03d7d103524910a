"""A two-layer run folder's summary: everything its report and figures show, in one small
JSON-able dict that can be committed.

The report (:func:`sims.report.markdown`) and the figures (:mod:`sims.plots`) are drawn from
the summary, never from the run folder directly, so that a committed summary redraws the same
report and figures as the run it came from. It holds:

- ``config``, ``run`` (the folder's name), ``commit``, ``dirty``, ``versions``, ``machine``,
  ``created``: the run's configuration and where it was made;
- ``families``: each family's network specification and its title in words;
- ``rows``: :func:`sims.report.rows`, the fitted rates, verdicts, bounds and neurons needed;
- ``curves``: per family and selector, the median and 25-75% band of loss / sigma^2 over
  seeds at the drawn steps (``n``; 4 significant digits), the smallest positive median
  (``floor``) and the local rates of the median curve (``rate_at``, ``rate``);
- ``geometry``: per family, the medians over seeds of D, r, sigma^2 and greedy-local's first
  loss, and whether r is exact on every seed;
- ``instances``: greedy-local's fitted rate c and r^2 / D^2 (both ends of r's bracket) of
  every instance;
- ``explain``: greedy-local's instance tables of :func:`sims.spectrum.instance_table` (each
  instance's network fields, spectrum and geometry features and target, and the instances
  left out), by EXPLAINED key: decades at n = 50 (``at50``), log10 n_eps at 1e-6 (``eps1e-06``).

A deep run's summary (kind ``sims-deep``) is :func:`sims.deep_report.summarize_deep`;
:func:`dumps`, :func:`read` and :func:`command` take both kinds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sims import config as cfg
from sims import store
from sims.curves import Curve, RunCurves, family_title, load_curves, quantiles
from sims.fit import fit_curve, local_rates
from sims.report import rows
from sims.schema import flag
from sims.spectrum import instance_table

DRAWN = 160  # points per summarised curve (evenly and log-spaced together)
DIGITS = 4  # significant digits of the summarised curves
EXPLAINED = {"at50": (50, None), "eps1e-06": (50, 1e-6)}  # (at, eps) of sims.spectrum
KINDS = ("sims", "sims-deep")  # a two-layer run's summary, a deep run's (sims.deep_report)


def drawn_points(size: int, most: int = DRAWN) -> np.ndarray:
    """Indices (P,) of the points of a curve of ``size`` points to keep: all of them up to
    ``most``, else evenly spaced and log-spaced ones together (both axes stay faithful)."""
    if size <= most:
        return np.arange(size)
    even = np.linspace(0, size - 1, most // 2)
    logs = np.geomspace(1, size, most // 2) - 1
    return np.unique(np.round(np.concatenate([even, logs])).astype(int))


def rounded(values: np.ndarray) -> list[float | None]:
    """Floats to DIGITS significant digits; NaN as None (JSON has no NaN)."""
    return [float(f"{v:.{DIGITS}g}") if math.isfinite(v) else None for v in values.tolist()]


def _curve(curves: list[Curve]) -> dict[str, Any]:
    lo, mid, hi = quantiles(curves)
    n = np.arange(1, mid.size + 1)
    k = drawn_points(n.size)
    at, rate = local_rates(n, mid)  # above the round-off floor only
    positive = mid[mid > 0]
    return {
        "n": n[k].tolist(),
        "lo": rounded(lo[k]),
        "mid": rounded(mid[k]),
        "hi": rounded(hi[k]),
        "floor": float(positive.min()) if positive.size else None,
        "rate_at": rounded(at),
        "rate": rounded(rate),
    }


def _geometry(methods: dict[str, list[Curve]]) -> dict[str, Any]:
    geos = [c.geometry for curves in methods.values() for c in curves]
    local = methods.get("greedy-local", [])
    return {
        "diameter": float(np.median([g["diameter"] for g in geos])),
        "margin": float(np.median([g["margin"] for g in geos])),
        "sigma2": float(np.median([g["sigma2"] for g in geos])),
        "exact": all(g["margin_exact"] for g in geos),
        "h1": float(np.median([c.loss_rel[0] for c in local])) if local else None,
        "seeds": len(next(iter(methods.values()))),
    }


def _instances(run: RunCurves) -> list[dict[str, Any]]:
    """Greedy-local's fitted c on the run's window and r^2 / D^2 from r's lower bound (``x``)
    and upper bound (``x_hi``; the same where r is exact), per instance."""
    window = tuple(run.config["fit_window"])
    out = []
    for family, methods in sorted(run.curves.items()):
        for curve in methods.get("greedy-local", []):
            g = curve.geometry
            try:
                c = fit_curve(curve.n, curve.loss_rel, window).c
            except ValueError:
                c = 0.0
            upper = g.get("margin_upper", float("nan"))  # absent from older run folders
            if g["margin_exact"] or not upper > 0:
                upper = g["margin"]
            d = g["diameter"]
            out.append({
                "family": family,
                "seed": curve.seed,
                "c": float(c),
                "x": (g["margin"] / d) ** 2 if d > 0 else 0.0,
                "x_hi": (upper / d) ** 2 if d > 0 else 0.0,
                "exact": bool(g["margin_exact"]),
            })  # fmt: skip
    return out


def _explain(run_dir: Path, instances: tuple[list[dict], list[dict]]) -> dict[str, Any]:
    """The instance tables EXPLAINED keeps of greedy-local (those the run can give)."""
    tables = {}
    for key, (at, eps) in EXPLAINED.items():
        try:
            table, censored = instance_table(run_dir, "greedy-local", at, eps, instances)
        except ValueError:  # greedy-local not run, or no instance reached eps
            continue
        tables[key] = {"table": table, "censored": censored}
    return tables


def plain(value: Any) -> Any:
    """Tuples as lists, NaN and infinities as None, numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summarize(run_dir: Path) -> dict[str, Any]:
    """The summary of a finished (or partly finished) two-layer run folder."""
    record = store.read_config(run_dir)
    instances = store.read_instances(run_dir)  # read once: the curves and the tables
    run = load_curves(run_dir, instances)
    return plain({
        "kind": "sims",
        "run": Path(run_dir).name,
        "config": run.config,
        **{key: record.get(key) for key in ("commit", "dirty", "versions", "machine", "created")},
        "families": [
            {"spec": spec, "title": family_title(spec)} for spec in run.families
        ],
        "rows": rows(run),
        "curves": {
            str(family): {method: _curve(curves) for method, curves in methods.items()}
            for family, methods in sorted(run.curves.items())
        },
        "geometry": {
            str(family): _geometry(methods) for family, methods in sorted(run.curves.items())
        },
        "instances": _instances(run),
        "explain": _explain(run_dir, instances),
    })  # fmt: skip


def dumps(summary: dict[str, Any]) -> str:
    """The summary as compact JSON text (no NaN: :func:`summarize` gives None instead)."""
    return json.dumps(summary, separators=(",", ":"), allow_nan=False) + "\n"


def read(path: Path) -> dict[str, Any]:
    """A summary written by :func:`dumps` (two-layer or deep: ``kind`` in KINDS), with a clear
    error when it is not one."""
    try:
        summary = json.loads(Path(path).read_text())
    except (ValueError, OSError) as error:
        raise ValueError(f"{path} cannot be read as JSON: {error}") from None
    if not isinstance(summary, dict) or summary.get("kind") not in KINDS:
        raise ValueError(
            f"{path} is not the summary of a simulation run (no kind 'sims' or 'sims-deep')"
        )
    return summary


def command(config: dict[str, Any]) -> str:
    """The ``python -m sims run`` command line of a configuration (as in a summary): the preset
    with the same network families and the fewest other differences (``deep`` for MLPs), and
    those as flags."""
    found = []
    for name in ["deep"] if cfg.is_deep(config) else cfg.PRESETS:
        base = json.loads(json.dumps(cfg.preset(name).as_dict()))
        if base["networks"] == config["networks"]:
            changed = [key for key in base if key != "networks" and base[key] != config.get(key)]
            found.append((len(changed), name, changed))
    if not found:
        raise ValueError(
            f"configuration {config.get('name')!r}: no preset has its network families, so no "
            "command line gives it back; run it from its configuration file instead"
        )
    _, name, changed = min(found)
    parts = ["python -m sims run --preset", name]
    for key in changed:
        value = config[key]
        shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{flag(key)} {shown}")
    return " ".join(parts)
