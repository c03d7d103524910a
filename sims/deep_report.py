"""Report and figures of a deep run: per MLP family and method, accuracy, output change,
layer losses, how often the step was the local one, and statement 7."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from sims import store
from sims.plots import COLOURS, LABELS, plt, save_figure


def _mean_ci(values: list[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return f"{v.mean():.3f}"
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return f"{v.mean():.3f} [{v.mean() - half:.3f}, {v.mean() + half:.3f}]"


def _label(spec: dict) -> str:
    state = f"trained on {spec['inputs']}" if spec["trained"] else f"random, on {spec['inputs']}"
    hidden = "/".join(str(w) for w in spec["widths"][1:-1])
    return f"{len(spec['widths']) - 1}-layer {spec['activation']} MLP ({hidden} hidden), {state}"


def _read(run_dir: Path) -> tuple[dict, list[dict], dict[int, list[dict]]]:
    """(configuration, rows, family -> metas) of a deep run folder, read once."""
    config = store.read_config(run_dir)["config"]
    rows, metas = store.read_instances(run_dir)
    if not metas:
        raise ValueError(f"{run_dir} has no finished instances yet: run it first")
    if "widths" in config or "network" not in metas[0]:
        raise ValueError(
            f"{run_dir} was written by an older version (one MLP family, fewer records): "
            "run its configuration again"
        )
    families: dict[int, list[dict]] = defaultdict(list)
    for meta in metas:
        families[meta["family"]].append(meta)
    return config, rows, dict(sorted(families.items()))


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom > 0 else float("nan")


def deep_report(run_dir: Path) -> str:
    """Markdown, one table per MLP family: per method, test accuracy and agreement with the
    unpruned MLP, output change / output RMS (means and 95% intervals over seeds); the layer
    losses eps_l / sigma_l^2 (mean over seeds, layer by layer); in how many seeds the output
    moved less than with greedy-local (paired: same network); the share of steps whose neuron
    is the greedy local choice; the worst ratio of the output change to statement 7's bound
    (must be <= 1); and the amplification after the first hidden layer: output loss / layer
    loss, both relative, at the last step of layer 1 (how much of the layer's error reaches
    the output)."""
    config, rows, families = _read(run_dir)
    last: dict[tuple[int, str, int], dict] = {}
    for row in rows:
        key = (row["family"], row["method"], row["seed"])
        if row["layer"] == 1 and row["n"] >= last.get(key, {"n": 0})["n"]:
            last[key] = row
    lines = [
        f"# Report: {config['name']}",
        "",
        "Every hidden layer pruned from the input side, no fine-tuning; means and 95% intervals "
        "over seeds.",
    ]
    for family, metas in families.items():
        spec = config["networks"][family]
        lines += [
            "",
            f"## Family {family}: {_label(spec)}, {spec['keep']} neurons kept per hidden layer",
            "",
            f"{len(metas)} seeds; unpruned test accuracy "
            f"{_mean_ci([m['test_accuracy_unpruned'] for m in metas])}.",
            "",
            "| method | test accuracy | agreement | output change / output RMS | "
            "seeds with less change than greedy-local | layer loss / sigma^2, by layer | "
            "local choice share | amplification, layer 1 | max change / st. 7 bound |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for method in config["methods"]:
            runs = [m["methods"][method] for m in metas]
            change = [r["output_rms_change"] / r["output_rms"] for r in runs]
            if "greedy-local" in config["methods"]:
                local = [m["methods"]["greedy-local"]["output_rms_change"] for m in metas]
                pairs = zip(runs, local, strict=True)
                fewer = sum(r["output_rms_change"] < ref for r, ref in pairs)
                below = f"{fewer}/{len(runs)}"
            else:
                below = "n/a"
            ratio = np.nanmax([_ratio(r["output_rms_change"], r["statement7_bound"]) for r in runs])
            per_layer = np.array([[layer["eps_rel"] for layer in r["layers"]] for r in runs])
            share = np.mean([[layer["local_choice_share"] for layer in r["layers"]] for r in runs])
            eps = " / ".join(f"{v:.3g}" for v in per_layer.mean(axis=0))
            ends = [last[(family, method, m["seed"])] for m in metas]
            amplification = [_ratio(e["output_rel"], e["layer_loss_rel"]) for e in ends]
            lines.append(
                f"| {method} | {_mean_ci([r['test_accuracy'] for r in runs])} | "
                f"{_mean_ci([r['test_agreement'] for r in runs])} | {_mean_ci(change)} | "
                f"{below} | {eps} | {share:.2f} | {_mean_ci(amplification)} | "
                f"{ratio:.3f} |"
            )
    text = "\n".join(lines) + "\n"
    store.atomic_write(run_dir / "report.md", text)
    return text


def deep_figure(run_dir: Path, out: Path) -> list[Path]:
    """One figure per MLP family, one panel per hidden layer: the network's output loss
    (relative to the output's mean square) against the neurons kept in that layer, median and
    25-75% band over seeds, for every method."""
    config, rows, families = _read(run_dir)
    curves: dict[tuple[int, int, str], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in rows:
        curves[(row["family"], row["layer"], row["method"])][row["n"]].append(row["output_rel"])
    paths = []
    for family, metas in families.items():
        spec = config["networks"][family]
        layers = range(1, len(spec["widths"]) - 1)
        fig, axes = plt.subplots(
            1, len(layers), figsize=(4.2 * len(layers), 4), sharey=True, squeeze=False
        )
        for ax, layer in zip(axes[0], layers, strict=True):
            for method in config["methods"]:
                points = curves[(family, layer, method)]
                n = np.array(sorted(points))
                lo, mid, hi = np.array([np.quantile(points[k], (0.25, 0.5, 0.75)) for k in n]).T
                colour = COLOURS.get(method)
                ax.semilogy(n, mid, color=colour, label=LABELS.get(method, method))
                ax.fill_between(n, lo, hi, color=colour, alpha=0.15)
            ax.set_title(f"hidden layer {layer} (earlier layers already pruned)", fontsize=9)
            ax.set_xlabel(f"neurons kept in this layer (of {spec['widths'][layer]})")
            ax.grid(True, which="both", alpha=0.25)
        axes[0][0].set_ylabel("output loss / mean square output (dimensionless)")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(
            f"{_label(spec)}: output error while each layer is pruned "
            f"(median, 25-75% band over {len(metas)} seeds)",
            fontsize=10,
        )
        fig.tight_layout()
        paths += save_figure(fig, out, f"deep_layers_f{family:03d}")
    return paths
