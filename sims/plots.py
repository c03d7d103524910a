"""Figures of a run folder, as PNG and PDF, into figures/NAME/.

- ``decay_fFFF``: loss / sigma^2 against n for every selector (median over seeds, band from
  the 25th to 75th percentile), on semi-log axes (exp(-cn) is a straight line) and log-log axes
  (n^-p is a straight line), with docs/theory.md's predictions overlaid; and the local rate
  -d log h / dn of the median curve (flat under exp(-cn), falling like p/n under n^-p).
- ``rates_by_family``: the fitted c of each selector with a linear-rate guarantee, family by
  family (95% intervals; filled where the verdict is exponential).
- ``rate_vs_margin``: the fitted greedy-local rate c of each instance against r^2 / D^2, with
  statement 4's bound c >= -log(1 - r^2/D^2).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sims.curves import RunCurves, family_title, quantiles
from sims.fit import fit_curve, local_rates
from sims.report import rows
from theory.bounds import fixed_step_margin, greedy_local, linear_rate, random_expected

LABELS = {
    "greedy-local": "greedy local (Ye et al. 2020)",
    "global-imitation": "global imitation (output loss)",
    "combined": "combined: better of local and global",
    "frank-wolfe": "Frank-Wolfe, line search",
    "fixed-step": "GFS fixed step (Ye et al. 2020a)",
    "away": "away-step Frank-Wolfe",
    "pairwise": "pairwise Frank-Wolfe",
    "fully-corrective": "fully corrective",
    "omp": "OMP, least squares (ThiNet family)",
    "random": "random sampling",
    "magnitude": "magnitude (largest norm)",
}
COLOURS = dict(
    zip(
        LABELS, plt.get_cmap("tab20").colors[::2] + plt.get_cmap("tab20").colors[1::2], strict=False
    )
)


TOP = 3.0  # upper limit of the decay axes (loss / sigma^2)


def save_figure(fig: plt.Figure, out: Path, stem: str) -> list[Path]:
    """Write ``fig`` as OUT/STEM.png and OUT/STEM.pdf (no dates inside), close it, and
    return the two paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for path in paths:  # no creation date in the PDF: the same run gives the same bytes
        fig.savefig(path, dpi=130, metadata={"CreationDate": None} if path.suffix == ".pdf" else {})
    plt.close(fig)
    return paths


def drawn_points(size: int, most: int = 600) -> np.ndarray:
    """Indices (P,) of the points of a curve of ``size`` points to draw: all of them up to
    ``most``, else evenly spaced and log-spaced ones together (both axes stay faithful; files
    stay small)."""
    if size <= most:
        return np.arange(size)
    even = np.linspace(0, size - 1, most // 2)
    logs = np.geomspace(1, size, most // 2) - 1
    return np.unique(np.round(np.concatenate([even, logs])).astype(int))


def decay_figure(run: RunCurves, family: int, out: Path) -> list[Path]:
    methods = run.curves[family]
    fig, all_axes = plt.subplots(1, 3, figsize=(17, 4.8))
    axes, rate_ax = all_axes[:2], all_axes[2]
    for method, curves in methods.items():
        lo, mid, hi = quantiles(curves)
        n = np.arange(1, mid.size + 1)
        k = drawn_points(n.size)
        for ax in axes:
            ax.plot(n[k], np.where(mid > 0, mid, np.nan)[k], color=COLOURS[method],
                    label=LABELS[method])  # fmt: skip
            ax.fill_between(
                n[k], np.where(lo > 0, lo, np.nan)[k], hi[k], color=COLOURS[method], alpha=0.2
            )
        at, rates = local_rates(n, mid)  # above the round-off floor only
        positive = rates > 0
        rate_ax.plot(at[positive], rates[positive], ".-", color=COLOURS[method], ms=3)
    geos = [c.geometry for curves in methods.values() for c in curves]
    d = float(np.median([g["diameter"] for g in geos]))
    r = float(np.median([g["margin"] for g in geos]))
    s2 = float(np.median([g["sigma2"] for g in geos]))
    steps = np.arange(1, max(len(c.n) for cs in methods.values() for c in cs) + 1)
    bounds = {"statement 1: E random = 1/n": random_expected(1.0, steps)}
    if r > 0:
        bounds["statement 3: fixed step"] = fixed_step_margin(d, r, steps) / s2
    if "greedy-local" in methods:
        h1 = float(np.median([c.loss_rel[0] for c in methods["greedy-local"]]))
        bounds["statement 4: greedy local"] = greedy_local(h1, d, r, steps)
    for (name, values), style in zip(bounds.items(), (":", "--", "-."), strict=False):
        if values.min() > TOP:  # say so rather than draw nothing
            name += f" (above the axes: {values[0]:.1g} at n = 1)"
        for ax in axes:
            ax.plot(steps, values, "k", ls=style, lw=1, label=name)
    exact = all(g["margin_exact"] for g in geos)
    for ax, scale in zip(axes, ("semi-log", "log-log"), strict=True):
        ax.set_yscale("log")
        if scale == "log-log":
            ax.set_xscale("log")
        ax.set_xlabel("n, neurons added (selector steps)")
        ax.set_ylabel("layer loss L(a_n) / sigma^2 (dimensionless)")
        ax.set_title(f"{scale}: median, 25-75% band over {len(next(iter(methods.values())))} seeds")
        ax.grid(True, which="both", alpha=0.25)
        lows = [q for cs in methods.values() for q in quantiles(cs)[1] if q > 0]
        ax.set_ylim(max(min(lows) / 3, 1e-16), TOP)
    axes[1].legend(fontsize=7, loc="lower left")
    _local_rate_axes(rate_ax, steps)
    kind = "exact" if exact else "certified lower bound"
    fig.suptitle(
        f"{family_title(run.families[family])}\n(r/D = {r / d:.2g}, {kind}; "
        f"rate bound c >= {linear_rate(d, r):.2g})",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, out, f"decay_f{family:03d}")


def _local_rate_axes(ax: plt.Axes, steps: np.ndarray) -> None:
    """Log-log axes for local rates, with the p / n lines of power laws p = 1 and 2."""
    for p, style in ((1, ":"), (2, "--")):
        ax.plot(steps, p / steps, "k", ls=style, lw=0.8, label=f"n^-{p}: rate {p}/n")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n, neurons added (selector steps)")
    ax.set_ylabel("local rate -d log L / dn (per neuron)")
    ax.set_title("local rate of the median: flat = exp(-cn), falling = power law", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower left")


def rate_vs_margin_figure(run: RunCurves, out: Path) -> list[Path]:
    """Per instance: the greedy-local exponential rate fitted on the run's window vs r^2/D^2.

    Filled markers: r exact (hull facets). Otherwise r is bracketed: a segment from the
    certified lower bound to the certified upper bound (hollow marker) of r^2/D^2; the true
    value lies on it. Instances whose fit fails or gives c <= 0 are counted.
    """
    window = tuple(run.config["fit_window"])
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ratios, rates, dropped, labelled = [], [], 0, set()
    samples = sorted({spec["samples"] for spec in run.families})
    for family, methods in run.curves.items():
        m = run.families[family]["samples"]
        colour = f"C{samples.index(m) % 10}"
        for curve in methods.get("greedy-local", []):
            g = curve.geometry
            try:
                c = fit_curve(curve.n, curve.loss_rel, window).c
            except ValueError:
                c = 0.0
            upper = g.get("margin_upper", float("nan"))  # absent from older run folders
            if g["margin_exact"] or not upper > 0:
                upper = g["margin"]
            if c <= 0 or upper <= 0 or g["diameter"] <= 0:
                dropped += 1
                continue
            x_hi = (upper / g["diameter"]) ** 2
            x = (g["margin"] / g["diameter"]) ** 2 if g["margin"] > 0 else x_hi
            ratios += [x, x_hi]
            rates.append(c)
            label = f"m={m}" + ("" if g["margin_exact"] else " (r bracketed)")
            if x_hi > x:
                ax.plot([x, x_hi], [c, c], color=colour, lw=0.5, alpha=0.3)
            ax.scatter(
                [x_hi], [c], s=16, color=colour,
                facecolors=colour if g["margin_exact"] else "none",
                label=None if label in labelled else label,
            )  # fmt: skip
            labelled.add(label)
    if ratios:
        grid = np.geomspace(min(ratios), max(ratios), 60)
        ax.plot(grid, -np.log1p(-np.minimum(grid, 1 - 1e-16)), "k--", lw=1,
                label="statement 4: c >= -log(1 - r^2/D^2)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    if rates:  # the data, and the bound where it comes within 3 decades of them
        ax.set_ylim(min(rates) / 1e3, max(rates) * 3)
    ax.set_xlabel("r^2 / D^2 (dimensionless; segments: r between its certified bounds)")
    ax.set_ylabel("fitted rate c of greedy local (per neuron)")
    note = f"\n({dropped} instances without a positive fit or an r > 0)" if dropped else ""
    ax.set_title(f"Observed exponential rate against statement 4's bound{note}", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out, "rate_vs_margin")


LINEAR_RATE_METHODS = ("greedy-local", "frank-wolfe", "away", "pairwise", "fully-corrective")


def _differences(spec: dict, base: dict) -> str:
    changed = [f"{k}={v}" for k, v in spec.items() if v != base[k]]
    return ", ".join(changed) if changed else "base"


def rates_by_family_figure(run: RunCurves, out: Path) -> list[Path]:
    """The fitted exponential rate c (mean, 95% interval over seeds) of every selector with a
    linear-rate guarantee, family by family, each family named by how it differs from the
    first; filled markers where the verdict is exponential, hollow where it is not."""
    fitted = [r for r in rows(run) if r["method"] in LINEAR_RATE_METHODS and "c" in r]
    methods = [m for m in LINEAR_RATE_METHODS if any(r["method"] == m for r in fitted)]
    families = sorted(run.curves)
    base = run.families[families[0]]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(families) + 1.6))
    for k, method in enumerate(methods):
        offset = (k - (len(methods) - 1) / 2) * 0.12
        label = LABELS[method]
        for r in fitted:
            mean, (lo, hi) = r["c"]
            if r["method"] != method or mean <= 0:
                continue
            colour = COLOURS[method]
            ax.errorbar(
                [mean], [families.index(r["family"]) + offset],
                xerr=[[mean - max(lo, mean / 100)], [hi - mean]], fmt="o", ms=5, color=colour,
                mfc=colour if r["verdict"] == "exponential" else "white", label=label,
            )  # fmt: skip
            label = None
    names = [_differences(run.families[f], base) for f in families]
    names[0] = (
        f"base: {base['activation']}/{base['inputs']}/{base['training']} "
        f"N={base['neurons']} d={base['dim']} m={base['samples']}"
    )
    ax.set_yticks(range(len(families)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    window = tuple(run.config["fit_window"])
    ax.set_xlabel(f"fitted rate c per neuron on n in {window} (mean, 95% interval over seeds)")
    ax.set_title("Exponential rates by family (filled: verdict exponential)", fontsize=10)
    ax.grid(True, which="both", axis="x", alpha=0.25)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, out, "rates_by_family")


VERDICT_COLOURS = {"exponential": "#4daf4a", "power": "#e41a1c", "unresolved": "#bbbbbb"}


def regime_map_figure(run: RunCurves, out: Path, method: str = "greedy-local") -> list[Path]:
    """One panel per combination of the grid's other axes: N (rows) against m (columns),
    each cell coloured by the verdict for ``method`` and labelled with its fitted rate."""
    verdicts = {r["family"]: r for r in rows(run) if r["method"] == method}
    specs = run.families
    panel_keys = [k for k in specs[0] if k not in ("neurons", "samples")]
    panels = sorted({tuple(s[k] for k in panel_keys) for s in specs}, key=str)
    ns = sorted({s["neurons"] for s in specs})
    ms = sorted({s["samples"] for s in specs})
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for family, spec in enumerate(specs):
            if tuple(spec[k] for k in panel_keys) != panel:
                continue
            row = verdicts.get(family, {})
            verdict = row.get("verdict", "unresolved")
            i, j = ns.index(spec["neurons"]), ms.index(spec["samples"])
            ax.add_patch(plt.Rectangle((j, i), 1, 1, color=VERDICT_COLOURS[verdict]))
            if "c" in row:
                text = (
                    f"c={row['c'][0]:.2g}" if verdict == "exponential" else f"p={row['p'][0]:.2g}"
                )
                ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7)
        ax.set_xlim(0, len(ms))
        ax.set_ylim(0, len(ns))
        ax.set_xticks(np.arange(len(ms)) + 0.5, [str(m) for m in ms])
        ax.set_yticks(np.arange(len(ns)) + 0.5, [str(n) for n in ns])
        ax.set_xlabel("m, calibration samples")
        ax.set_ylabel("N, neurons")
        changing = [k for k in panel_keys if len({s[k] for s in specs}) > 1]
        ax.set_title(
            ", ".join(f"{k}={v}" for k, v in zip(panel_keys, panel, strict=True) if k in changing),
            fontsize=8,
        )
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in VERDICT_COLOURS.values()]
    fig.legend(handles, list(VERDICT_COLOURS), loc="upper right", fontsize=7)
    window = tuple(run.config["fit_window"])
    fig.suptitle(
        f"{LABELS[method]}: verdict by held-out extrapolation on n in {window}, 95% over seeds",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    return save_figure(fig, out, f"regime_map_{method}")


def is_grid(specs: list[dict], axes: tuple[str, ...]) -> bool:
    """Whether the families vary along every one of ``axes`` and form the full grid of those
    axes times the combinations of the other fields (a regime map needs every cell)."""
    values = [sorted({str(s[a]) for s in specs}) for a in axes]
    cells = [
        (tuple(str(s[a]) for a in axes), tuple((k, str(v)) for k, v in s.items() if k not in axes))
        for s in specs
    ]
    rests = {rest for _, rest in cells}
    full = {(point, rest) for point in itertools.product(*values) for rest in rests}
    return min(len(v) for v in values) > 1 and len(cells) == len(set(cells)) and set(cells) == full


def plot_run(run: RunCurves, out: Path) -> list[Path]:
    paths = []
    for family in sorted(run.curves):
        paths += decay_figure(run, family, out)
    paths += rate_vs_margin_figure(run, out)
    if len(run.curves) > 1:
        paths += rates_by_family_figure(run, out)
    if is_grid(run.families, ("neurons", "samples")):
        for method in ("greedy-local", "fully-corrective"):
            if any(method in methods for methods in run.curves.values()):
                paths += regime_map_figure(run, out, method)
    return paths
