"""Report and figure of a deep run: accuracy, output change and statement 7, per method."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from sims import store
from sims.plots import COLOURS, LABELS, _save, plt


def _mean_ci(values: list[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return f"{v.mean():.3f}"
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return f"{v.mean():.3f} [{v.mean() - half:.3f}, {v.mean() + half:.3f}]"


def deep_report(run_dir: Path) -> str:
    """Markdown: per method, test accuracy and agreement with the unpruned MLP (mean and 95%
    interval over seeds), output change / output RMS, and the worst ratio of the output
    change to statement 7's bound (must be <= 1)."""
    config = store.read_config(run_dir)["config"]
    _, metas = store.read_instances(run_dir)
    if not metas:
        raise ValueError(f"{run_dir} has no finished instances yet: run it first")
    lines = [
        f"# Report: {config['name']}",
        "",
        f"MLP widths {config['widths']} ({config['activation']}, "
        f"{'trained' if config['trained'] else 'random'}) on {config['inputs']}; every hidden "
        f"layer pruned to {config['keep']} neurons from the input side; no fine-tuning; "
        f"{len(metas)} seeds. Unpruned test accuracy "
        f"{_mean_ci([m['test_accuracy_unpruned'] for m in metas])}.",
        "",
        "| method | test accuracy | agreement | output change / output RMS | "
        "max change / st. 7 bound |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method in config["methods"]:
        runs = [m["methods"][method] for m in metas]
        change = [r["output_rms_change"] / r["output_rms"] for r in runs]
        ratio = max(r["output_rms_change"] / r["statement7_bound"] for r in runs)
        lines.append(
            f"| {method} | {_mean_ci([r['test_accuracy'] for r in runs])} | "
            f"{_mean_ci([r['test_agreement'] for r in runs])} | {_mean_ci(change)} | {ratio:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    store.atomic_write(run_dir / "report.md", text)
    return text


def deep_figure(run_dir: Path, out: Path) -> list[Path]:
    """Per hidden layer: the network's output loss (relative to the output's mean square)
    against the neurons kept in that layer, median over seeds, for every method."""
    config = store.read_config(run_dir)["config"]
    rows, _ = store.read_instances(run_dir)
    curves: dict[tuple[int, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        curves[(row["layer"], row["method"])][row["n"]].append(row["output_rel"])
    layers = sorted({layer for layer, _ in curves})
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 4), sharey=True)
    for ax, layer in zip(np.atleast_1d(axes), layers, strict=True):
        for method in config["methods"]:
            points = curves[(layer, method)]
            n = np.array(sorted(points))
            med = np.array([np.median(points[k]) for k in n])
            ax.semilogy(n, med, color=COLOURS.get(method), label=LABELS.get(method, method))
        ax.set_title(f"hidden layer {layer} (earlier layers already pruned)", fontsize=9)
        ax.set_xlabel("neurons kept in this layer")
        ax.grid(True, which="both", alpha=0.25)
    first = np.atleast_1d(axes)[0]
    first.set_ylabel("output loss / mean square output (dimensionless)")
    first.legend(fontsize=7)
    fig.suptitle(
        f"MLP {config['widths']} on {config['inputs']}: output error while each layer is pruned "
        f"(median over seeds)",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, out, "deep_layers")
