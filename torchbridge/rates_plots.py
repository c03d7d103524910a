"""Figures of a ``rates`` summary (:mod:`torchbridge.rates_study`): every layer's decay
curves (semi-log and log-log, each selector's median over the resamples, statement 4's
guarantee overlaid), the fitted rates against depth, and greedy-local's rate against the
layer's geometry; and the real layers of several summaries placed on a simulation's regime
map (:func:`regime_placement_figure`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sims.plots import COLOURS, LABELS, VERDICT_COLOURS, plt, save_figure
from theory.bounds import linear_rate

FIGURES = ("decay_semilog", "decay_loglog", "rate_depth", "rate_geometry")


def _grid(count: int) -> tuple[plt.Figure, np.ndarray]:
    columns = min(count, 4)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes.flat


def _floor(layer: dict) -> float:
    """The lowest point of the selectors' curves that do not fall to exactly 0 at the end
    (omp, fixed-step: their cliff is cut off), and not below 1e-10."""
    values = [v for method, row in layer["methods"].items() if row["cap"] is None
              for v in row["median_curve"] if v is not None and v > 0]  # fmt: skip
    return max(min(values, default=1e-10), 1e-10)


def decay_figure(summary: dict, out: Path, scale: str) -> list[Path]:
    """One panel per layer: h_n (loss / sigma^2) of each selector, the median over the
    resamples; dashed, statement 4's guarantee for greedy-local from its first step,
    h_1 exp(-c (n - 1)) with c from r's upper bound (the best the bound can say)."""
    layers = summary["layers"]
    fig, axes = _grid(len(layers))
    for ax, layer in zip(axes, layers, strict=False):
        for method, row in layer["methods"].items():
            h = np.array([np.nan if v is None else v for v in row["median_curve"]])
            ax.plot(row["curve_n"], h, color=COLOURS[method], lw=1, label=LABELS[method])
        first = layer["methods"].get("greedy-local")
        c = layer["c_bound"][1] if layer["c_bound"][1] is not None else layer["c_bound"][0]
        if first and c is not None:
            n = np.asarray(first["curve_n"])
            ax.plot(n, first["median_curve"][0] * np.exp(-c * (n - 1)), "k--", lw=0.8,
                    label="statement 4's guarantee")  # fmt: skip
        ax.set_yscale("log")
        if scale == "loglog":
            ax.set_xscale("log")
        ax.set_ylim(_floor(layer) / 3, 2)
        ax.set_title(f"{layer['chain']} (N = {layer['N']})", fontsize=8)
        ax.set_xlabel("n, steps", fontsize=7)
        ax.set_ylabel("loss / sigma^2", fontsize=7)
        ax.tick_params(labelsize=6)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=7)
    fig.suptitle(_title(summary, "layer error against the steps, median over resamples"),
                 fontsize=9)  # fmt: skip
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return save_figure(fig, out, f"decay_{scale}")


def _title(summary: dict, what: str) -> str:
    config = summary["config"]
    return (f"{config['network']} ({config['training']}): {what} "
            f"({config['resamples']} resamples of {config['images'] // config['resamples']} "
            "images)")  # fmt: skip


def _errorbars(ax: plt.Axes, x: np.ndarray, values: list, colour: str, label: str) -> None:
    """Means with their 95% intervals (``[mean, [low, high]]`` or None per x)."""
    shown = [(i, v) for i, v in zip(x, values, strict=True) if v is not None]
    if not shown:
        return
    xs = np.array([i for i, _ in shown], dtype=float)
    mean = np.array([v[0] for _, v in shown])
    low, high = (np.array([v[1][k] for _, v in shown]) for k in (0, 1))
    ax.errorbar(xs, mean, yerr=[mean - low, high - mean], fmt="o-", ms=3, lw=1, capsize=2,
                color=colour, label=label)  # fmt: skip


def rate_depth_figure(summary: dict, out: Path) -> list[Path]:
    """Left: each selector's fitted c against the layer's depth; right: its fitted p; with
    their 95% intervals over the resamples (a selector without a fit is left out there)."""
    layers = summary["layers"]
    x = np.arange(len(layers))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, symbol in zip(axes, ("c", "p"), strict=True):
        for method in layers[0]["methods"]:
            values = [layer["methods"][method].get(symbol) for layer in layers]
            _errorbars(ax, x, values, COLOURS[method], LABELS[method])
        ax.set_xticks(x, [layer["chain"] for layer in layers], rotation=60, ha="right",
                      fontsize=6)  # fmt: skip
        model = "log h = a - c n" if symbol == "c" else "log h = a - p log n"
        ax.set_ylabel(f"fitted {symbol} ({model})")
        ax.grid(True, alpha=0.25)
    axes[0].set_yscale("log")
    if axes[1].get_legend_handles_labels()[0]:  # a run too short to fit has nothing to label
        axes[1].legend(fontsize=7)
    fig.suptitle(_title(summary, "fitted rates by layer, 95% intervals"), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out, "rate_depth")


def rate_geometry_figure(summary: dict, out: Path) -> list[Path]:
    """Greedy-local's fitted c (95% interval) against r^2/D^2 (a segment from r's lower to its
    upper bound) and against the affine rank, with statement 4's c = -log(1 - r^2/D^2)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for layer in summary["layers"]:
        row = layer["methods"].get("greedy-local", {})
        if "c" not in row:
            continue
        mean, (low, high) = row["c"]
        ratios = [(r / layer["diameter"]) ** 2 for r in layer["margin"] if r is not None]
        if ratios and max(ratios) > 0:
            x = [v for v in ratios if v > 0] or [max(ratios)]
            axes[0].plot([min(x), max(x)], [mean, mean], color="C0", lw=0.8)
            axes[0].errorbar([max(x)], [mean], yerr=[[mean - low], [high - mean]], fmt="o",
                             ms=3, color="C0", capsize=2)  # fmt: skip
        rank = float(np.median(layer["rank"]))
        axes[1].errorbar([rank], [mean], yerr=[[mean - low], [high - mean]], fmt="o", ms=3,
                         color="C0", capsize=2)  # fmt: skip
        axes[1].annotate(layer["chain"], (rank, mean), fontsize=5)
    xs = [(r / layer["diameter"]) ** 2 for layer in summary["layers"]
          for r in layer["margin"] if r is not None and r > 0]  # fmt: skip
    if xs:
        grid = np.geomspace(min(xs), max(xs), 50)
        axes[0].plot(grid, [linear_rate(1.0, np.sqrt(v)) for v in grid], "k--", lw=0.8,
                     label="statement 4: c >= -log(1 - r^2/D^2)")  # fmt: skip
        axes[0].legend(fontsize=7)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("r^2 / D^2 (segment: r between its certified bounds)")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("affine rank of the layer's channels")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylabel("greedy-local's fitted c")
        ax.grid(True, which="both", alpha=0.25)
    fig.suptitle(_title(summary, "greedy-local's rate against the geometry"), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out, "rate_geometry")


MARKERS = {"mnist-resnet18": "o", "mnist-cnn": "^"}  # any other network: "D"


def regime_placement_figure(regimes: dict, rates: dict[str, dict], out: Path) -> list[Path]:
    """Greedy-local's verdict on the axes of a simulation's regime map (``regimes``, a sims
    summary over N and m): N, the neurons or channels, against the dimension of the space psi
    lives in (samples x outputs of a generated layer; images x the consumer's output of a
    real one). Squares: the generated families (those of one cell side by side); other
    markers: every layer of the ``rates`` summaries (hollow: at initialisation)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    verdicts = {r["family"]: r.get("verdict", "unresolved") for r in regimes["rows"]
                if r["method"] == "greedy-local"}  # fmt: skip
    cells: dict[tuple[int, int], int] = {}
    for family, entry in enumerate(regimes["families"]):
        spec = entry["spec"]
        x, y = spec["samples"] * (spec["outputs"] or 1), spec["neurons"]
        k = cells[x, y] = cells.get((x, y), -1) + 1
        ax.scatter(x * 1.3**k, y, marker="s", s=14, edgecolors="none",
                   color=VERDICT_COLOURS[verdicts.get(family, "unresolved")])  # fmt: skip
    kinds = {}
    for summary in rates.values():
        network, training = summary["config"]["network"], summary["config"]["training"]
        marker = kinds[network, training] = MARKERS.get(network, "D")
        for layer in summary["layers"]:
            colour = VERDICT_COLOURS[layer["methods"]["greedy-local"].get("verdict", "unresolved")]
            style = {"color": colour} if training == "trained" else {
                "facecolors": "none", "edgecolors": colour}  # fmt: skip
            ax.scatter(layer["psi_dim"], layer["N"], marker=marker, s=26, linewidths=0.9,
                       **style)  # fmt: skip
    for (network, training), marker in sorted(kinds.items()):
        ax.plot([], [], marker, color="0.2", mfc="0.2" if training == "trained" else "none",
                linestyle="none", label=f"{network} ({training})")  # fmt: skip
    ax.plot([], [], "s", color="0.5", linestyle="none",
            label=f"generated ({regimes['config']['name']})")  # fmt: skip
    for verdict, colour in VERDICT_COLOURS.items():
        ax.plot([], [], "o", color=colour, linestyle="none", label=verdict)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("dimension of psi: samples x outputs (generated), images x output size (real)")
    ax.set_ylabel("N, neurons or channels")
    ax.grid(True, which="major", alpha=0.25)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("greedy-local's verdict: real layers on the generated regime map", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out, "regime_map")


def plot_rates(summary: dict, out: Path) -> list[Path]:
    """Every figure of a ``rates`` summary into ``out``."""
    return [
        *decay_figure(summary, out, "semilog"),
        *decay_figure(summary, out, "loglog"),
        *rate_depth_figure(summary, out),
        *rate_geometry_figure(summary, out),
    ]
