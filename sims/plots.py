"""Figures of a run, as PNG and PDF, drawn from its summary (:mod:`sims.summary`), into
FIGURES/NAME/.

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
from collections.abc import Callable
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

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


def _values(values: list[float | None]) -> np.ndarray:
    """A summary's list of numbers (None for NaN) as an array."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def decay_figure(summary: dict, family: int, out: Path) -> list[Path]:
    methods = summary["curves"][str(family)]
    geometry = summary["geometry"][str(family)]
    fig, all_axes = plt.subplots(1, 3, figsize=(17, 4.8))
    axes, rate_ax = all_axes[:2], all_axes[2]
    for method, curve in methods.items():
        n = np.asarray(curve["n"])
        lo, mid, hi = (_values(curve[q]) for q in ("lo", "mid", "hi"))
        for ax in axes:
            ax.plot(n, np.where(mid > 0, mid, np.nan), color=COLOURS[method], label=LABELS[method])
            ax.fill_between(n, np.where(lo > 0, lo, np.nan), hi, color=COLOURS[method], alpha=0.2)
        rates = _values(curve["rate"])
        positive = rates > 0
        rate_ax.plot(np.asarray(curve["rate_at"])[positive], rates[positive], ".-",
                     color=COLOURS[method], ms=3)  # fmt: skip
    d, r, s2 = geometry["diameter"], geometry["margin"], geometry["sigma2"]
    steps = np.arange(1, max(c["n"][-1] for c in methods.values()) + 1)
    bounds = {"statement 1: E random = 1/n": random_expected(1.0, steps)}
    if r > 0:
        bounds["statement 3: fixed step"] = fixed_step_margin(d, r, steps) / s2
    if geometry["h1"] is not None:
        bounds["statement 4: greedy local"] = greedy_local(geometry["h1"], d, r, steps)
    for (name, values), style in zip(bounds.items(), (":", "--", "-."), strict=False):
        if values.min() > TOP:  # say so rather than draw nothing
            name += f" (above the axes: {values[0]:.1g} at n = 1)"
        for ax in axes:
            ax.plot(steps, values, "k", ls=style, lw=1, label=name)
    floors = [c["floor"] for c in methods.values() if c["floor"] is not None]
    for ax, scale in zip(axes, ("semi-log", "log-log"), strict=True):
        ax.set_yscale("log")
        if scale == "log-log":
            ax.set_xscale("log")
        ax.set_xlabel("n, neurons added (selector steps)")
        ax.set_ylabel("layer loss L(a_n) / sigma^2 (dimensionless)")
        ax.set_title(f"{scale}: median, 25-75% band over {geometry['seeds']} seeds")
        ax.grid(True, which="both", alpha=0.25)
        ax.set_ylim(max(min(floors, default=1e-16) / 3, 1e-16), TOP)
    axes[1].legend(fontsize=7, loc="lower left")
    _local_rate_axes(rate_ax, steps)
    kind = "exact" if geometry["exact"] else "certified lower bound"
    fig.suptitle(
        f"{summary['families'][family]['title']}\n(r/D = {r / d:.2g}, {kind}; "
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


def rate_vs_margin_figure(summary: dict, out: Path) -> list[Path]:
    """Per instance: the greedy-local exponential rate fitted on the run's window vs r^2/D^2.

    Filled markers: r exact (hull facets). Otherwise r is bracketed: a segment from the
    certified lower bound to the certified upper bound (hollow marker) of r^2/D^2; the true
    value lies on it. Instances whose fit fails or gives c <= 0 are counted.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ratios, rates, dropped, labelled = [], [], 0, set()
    families = summary["families"]
    samples = sorted({f["spec"]["samples"] for f in families})
    for point in summary["instances"]:
        m = families[point["family"]]["spec"]["samples"]
        colour = f"C{samples.index(m) % 10}"
        c, x, x_hi, exact = point["c"], point["x"], point["x_hi"], point["exact"]
        if c <= 0 or x_hi <= 0:
            dropped += 1
            continue
        x = x if x > 0 else x_hi
        ratios += [x, x_hi]
        rates.append(c)
        label = f"m={m}" + ("" if exact else " (r bracketed)")
        if x_hi > x:
            ax.plot([x, x_hi], [c, c], color=colour, lw=0.5, alpha=0.3)
        ax.scatter(
            [x_hi], [c], s=16, color=colour, facecolors=colour if exact else "none",
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


def rates_by_family_figure(summary: dict, out: Path) -> list[Path]:
    """The fitted exponential rate c (mean, 95% interval over seeds) of every selector with a
    linear-rate guarantee, family by family, each family named by how it differs from the
    first; filled markers where the verdict is exponential, hollow where it is not."""
    fitted = [r for r in summary["rows"] if r["method"] in LINEAR_RATE_METHODS and "c" in r]
    methods = [m for m in LINEAR_RATE_METHODS if any(r["method"] == m for r in fitted)]
    specs = [f["spec"] for f in summary["families"]]
    families = sorted(int(f) for f in summary["curves"])
    base = specs[families[0]]
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
    names = [_differences(specs[f], base) for f in families]
    names[0] = (
        f"base: {base['activation']}/{base['inputs']}/{base['training']} "
        f"N={base['neurons']} d={base['dim']} m={base['samples']}"
    )
    ax.set_yticks(range(len(families)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    window = tuple(summary["config"]["fit_window"])
    ax.set_xlabel(f"fitted rate c per neuron on n in {window} (mean, 95% interval over seeds)")
    ax.set_title("Exponential rates by family (filled: verdict exponential)", fontsize=10)
    ax.grid(True, which="both", axis="x", alpha=0.25)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, out, "rates_by_family")


VERDICT_COLOURS = {"exponential": "#4daf4a", "power": "#e41a1c", "unresolved": "#bbbbbb"}


def regime_map_figure(summary: dict, out: Path, method: str = "greedy-local") -> list[Path]:
    """One panel per combination of the grid's other axes: N (rows) against m (columns),
    each cell coloured by the verdict for ``method`` and labelled with its fitted rate."""
    verdicts = {r["family"]: r for r in summary["rows"] if r["method"] == method}
    specs = [f["spec"] for f in summary["families"]]
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
    window = tuple(summary["config"]["fit_window"])
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


def planned(summary: dict) -> dict[str, Callable[[Path], list[Path]]]:
    """Every figure of a run's summary, by file stem, each a function drawing it into a
    folder: a decay figure per family, the rates against the margin, the rates by family
    (several families), the regime maps (a grid of N against m)."""
    plan: dict[str, Callable[[Path], list[Path]]] = {}
    for family in sorted(int(f) for f in summary["curves"]):
        plan[f"decay_f{family:03d}"] = partial(decay_figure, summary, family)
    plan["rate_vs_margin"] = partial(rate_vs_margin_figure, summary)
    if len(summary["curves"]) > 1:
        plan["rates_by_family"] = partial(rates_by_family_figure, summary)
    specs = [f["spec"] for f in summary["families"]]
    if is_grid(specs, ("neurons", "samples")):
        for method in ("greedy-local", "fully-corrective"):
            if any(method in methods for methods in summary["curves"].values()):
                plan[f"regime_map_{method}"] = partial(regime_map_figure, summary, method=method)
    return plan


def plot_run(summary: dict, out: Path) -> list[Path]:
    """Every figure of a run's summary (:func:`planned`) into ``out``, as PNG and PDF."""
    return [path for draw in planned(summary).values() for path in draw(out)]
