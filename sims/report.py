"""A markdown report of a run: fitted rates, 95% intervals, a verdict per family and selector.

For every network family and selector: c (exponential rate per neuron) and p (power-law
exponent), each a mean over seeds with its 95% interval; the mean held-out log error ratio
log(RMSE_exp / RMSE_pow) with its interval (negative: the exponential extrapolates better);
the verdict ("exponential", "power", or "unresolved" within the margin); statement 4's bound on
c from the geometry (median over seeds; where r is not exact, from r's certified lower and
upper bounds: the bound from the true r lies between); and the model-free slope of n_eps
against log(1/eps) with its R^2 (near 1 under exponential decay).

Selectors that re-solve their weights (fully-corrective, omp) fit exactly once n reaches the
number of samples m or the rank of the Gram matrix, and dive to the floating-point floor there:
their window is capped at ``corrective_cap * min(m, rank)``.
"""

from __future__ import annotations

import numpy as np

from sims.curves import Curve, RunCurves
from sims.fit import corrective_cap, fit_rates, n_eps_curve, n_eps_slope
from theory.bounds import linear_rate

CORRECTIVE = ("fully-corrective", "omp")


def _cap(method: str, curves: list[Curve], fraction: float) -> int | None:
    if method not in CORRECTIVE:
        return None
    return corrective_cap(min(min(c.samples, c.geometry["rank"]) for c in curves), fraction)


def _median_bound(curves: list[Curve], margin: str) -> float:
    """Median over seeds of statement 4's rate -log(1 - r^2/D^2) with r the geometry's
    ``margin`` (exact or certified lower bound) or ``margin_upper`` (nan where unknown)."""
    return float(
        np.median(
            [
                linear_rate(c.geometry["diameter"], c.geometry.get(margin, float("nan")))
                for c in curves
            ]
        )
    )


def _num(value: float | None) -> float:
    """A summary's number: None (a NaN in JSON's absence of one) as NaN."""
    return float("nan") if value is None else float(value)


def bound(low: float | None, high: float | None) -> str:
    """Statement 4's c from r's lower and upper bounds: one number where they agree (r
    exact, or the upper bound unknown), else the bracket."""
    low, high = _num(low), _num(high)
    return f"{low:.2g}" if not high > low else f"{low:.2g} to {high:.2g}"


def interval(mean: float | None, ci: tuple[float | None, float | None]) -> str:
    """A fitted value with its 95% interval, ``0.0163 [0.0139, 0.0186]``."""
    return f"{_num(mean):.3g} [{_num(ci[0]):.3g}, {_num(ci[1]):.3g}]"


def rows(run: RunCurves) -> list[dict]:
    """One dict per (family, method) with the fitted numbers (or the reason there are none)."""
    window = tuple(run.config["fit_window"])
    eps_grid = np.asarray(run.config["eps_grid"])
    out = []
    for family in sorted(run.curves):
        for method, curves in run.curves[family].items():
            pairs = [(c.n, c.loss_rel) for c in curves]
            row = {
                "family": family,
                "method": method,
                "seeds": len(curves),
                "c_bound": _median_bound(curves, "margin"),
                "c_bound_upper": _median_bound(curves, "margin_upper"),
                "n_eps": [float("nan")] * eps_grid.size,
                "steps": max(int(c.n[-1]) for c in curves),
            }
            cap = _cap(method, curves, run.config["corrective_cap"])
            try:
                row["n_eps"] = n_eps_curve(pairs, eps_grid)[1].tolist()
                summary = fit_rates(pairs, window, cap=cap)
            except ValueError as error:
                row["error"] = str(error)
                out.append(row)
                continue
            try:
                slope = n_eps_slope(eps_grid, np.array(row["n_eps"]))
                row["n_eps_slope"], row["n_eps_r2"] = slope.slope, slope.r2
            except ValueError:
                row["n_eps_slope"] = row["n_eps_r2"] = float("nan")
            row.update(
                c=(summary.c_mean, summary.c_ci),
                p=(summary.p_mean, summary.p_ci),
                log_ratio=(summary.log_ratio_mean, summary.log_ratio_ci),
                verdict=summary.verdict,
                window=summary.window,
                cap=cap,
                margin=summary.margin,
            )
            out.append(row)
    return out


def markdown(summary: dict, level: int = 1) -> str:
    """The report of a run's summary (:func:`sims.summary.summarize`): per family, the fits
    of every selector and the neurons needed; its title a heading of ``level``."""
    config, table = summary["config"], summary["rows"]
    lines = [
        f"{'#' * level} Report: {config['name']}",
        "",
        f"Fit window n in {tuple(config['fit_window'])} (capped for {', '.join(CORRECTIVE)}), "
        "losses / sigma^2 below 1e-12 of the first are cut; 95% intervals over seeds.",
        "",
    ]
    for family in sorted({row["family"] for row in table}):
        lines += [
            f"{'#' * (level + 1)} Family {family}: {summary['families'][family]['title']}",
            "",
            "| selector | seeds | c (per neuron) | p (power) | log(RMSE_exp/RMSE_pow) | verdict "
            "| c bound (st. 4) | n_eps slope (R^2) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in (r for r in table if r["family"] == family):
            if "error" in row:
                lines.append(f"| {row['method']} | {row['seeds']} | no fit: {row['error']} ||||||")
                continue
            lines.append(
                f"| {row['method']} | {row['seeds']} | {interval(*row['c'])} | "
                f"{interval(*row['p'])} | {interval(*row['log_ratio'])} | {row['verdict']} | "
                f"{bound(row['c_bound'], row['c_bound_upper'])} | "
                f"{_num(row['n_eps_slope']):.3g} ({_num(row['n_eps_r2']):.3f}) |"
            )
        lines += ["", *_neurons_needed(config["eps_grid"], table, family), ""]
    return "\n".join(lines)


def _neurons_needed(eps_grid: list[float], table: list[dict], family: int) -> list[str]:
    """Markdown table: median over seeds of the first n with loss / sigma^2 <= eps, per
    selector and eps (model-free, comparable across selectors; '> K' when half the seeds or
    more never got there in K steps)."""
    lines = [
        "Neurons needed (median over seeds of the first n with loss / sigma^2 <= eps):",
        "",
        "| selector | " + " | ".join(f"{e:g}" for e in eps_grid) + " |",
        "| --- |" + " --- |" * len(eps_grid),
    ]
    for row in (r for r in table if r["family"] == family):
        values = [_num(v) for v in row["n_eps"]]
        cells = [f"{v:.0f}" if np.isfinite(v) else f"> {row['steps']}" for v in values]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return lines
