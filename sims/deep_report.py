"""Summary, report and figures of a deep run: per MLP family and method, accuracy, output
change, layer losses, how often the step was the local one, and statement 7.

The report (:func:`deep_markdown`) and the figures (:func:`deep_figure`) are drawn from the
run's summary (:func:`summarize_deep`, kind ``sims-deep``; written and read by
:func:`sims.summary.dumps` and :func:`sims.summary.read`), never from the run folder directly,
so that a committed summary redraws the same report and figures. It holds:

- ``config``, ``run`` (the folder's name), ``commit``, ``dirty``, ``versions``, ``machine``,
  ``created``: the run's configuration and where it was made;
- ``families``: per family (in order) its index ``family``, ``label``, ``keep``, ``seeds``
  (S,), the unpruned test accuracies ``unpruned`` (S,), and ``methods``: per method the
  per-seed (S,) ``test_accuracy``, ``agreement``, ``change`` (output change / output RMS) and
  ``amplification`` (layer 1), ``fewer`` (seeds with less output change than greedy-local,
  paired; None without greedy-local), ``layer_loss`` (L,) (eps_l / sigma_l^2, mean over
  seeds), ``local_share`` and ``worst_bound`` (the largest output change / statement 7's
  bound);
- ``curves``: per family, hidden layer and method (string keys), the neurons kept ``n`` and
  the 25/50/75% quantiles over seeds ``lo``, ``mid``, ``hi`` of the output loss / mean
  square output (4 significant digits).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from scipy import stats

from sims import store
from sims.plots import COLOURS, LABELS, plt, save_figure
from sims.summary import plain, rounded


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
    """(config.json's record, rows, family -> metas) of a deep run folder, read once."""
    record = store.read_config(run_dir)
    config = record["config"]
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
    return record, rows, dict(sorted(families.items()))


def _ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom > 0 else float("nan")


def _method(metas: list[dict], method: str, methods: list[str], ends: list[dict]) -> dict:
    """One method's numbers of the report over a family's seeds (``ends``: each seed's last
    row of hidden layer 1)."""
    runs = [m["methods"][method] for m in metas]
    fewer = None
    if "greedy-local" in methods:
        local = [m["methods"]["greedy-local"]["output_rms_change"] for m in metas]
        pairs = zip(runs, local, strict=True)
        fewer = sum(r["output_rms_change"] < ref for r, ref in pairs)
    per_layer = np.array([[layer["eps_rel"] for layer in r["layers"]] for r in runs])
    return {
        "test_accuracy": [r["test_accuracy"] for r in runs],
        "agreement": [r["test_agreement"] for r in runs],
        "change": [r["output_rms_change"] / r["output_rms"] for r in runs],
        "amplification": [_ratio(e["output_rel"], e["layer_loss_rel"]) for e in ends],
        "fewer": fewer,
        "layer_loss": per_layer.mean(axis=0).tolist(),
        "local_share": np.mean(
            [[layer["local_choice_share"] for layer in r["layers"]] for r in runs]
        ),
        "worst_bound": np.nanmax(
            [_ratio(r["output_rms_change"], r["statement7_bound"]) for r in runs]
        ),
    }


def _quartiles(points: dict[int, list[float]]) -> dict[str, list]:
    """Neurons kept ``n`` (K,) and the 25/50/75% quantiles over seeds (K,) of their values."""
    n = sorted(points)
    q = np.array([np.quantile(points[k], (0.25, 0.5, 0.75)) for k in n]).reshape(-1, 3).T
    return {"n": n, "lo": rounded(q[0]), "mid": rounded(q[1]), "hi": rounded(q[2])}


def summarize_deep(run_dir: Path) -> dict:
    """The summary (kind ``sims-deep``; keys in the module's docstring) of a finished (or
    partly finished) deep run folder: plain JSON values, NaN as None."""
    record, rows, families = _read(run_dir)
    config = record["config"]
    last: dict[tuple[int, str, int], dict] = {}
    points: dict[tuple[int, int, str], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in rows:
        key = (row["family"], row["method"], row["seed"])
        if row["layer"] == 1 and row["n"] >= last.get(key, {"n": 0})["n"]:
            last[key] = row
        points[(row["family"], row["layer"], row["method"])][row["n"]].append(row["output_rel"])
    entries, curves = [], {}
    for family, metas in families.items():
        spec = config["networks"][family]
        entries.append({
            "family": family,
            "label": _label(spec),
            "keep": spec["keep"],
            "seeds": [m["seed"] for m in metas],
            "unpruned": [m["test_accuracy_unpruned"] for m in metas],
            "methods": {
                method: _method(
                    metas, method, config["methods"],
                    [last[(family, method, m["seed"])] for m in metas],
                )
                for method in config["methods"]
            },
        })  # fmt: skip
        curves[str(family)] = {
            str(layer): {
                method: _quartiles(points[(family, layer, method)]) for method in config["methods"]
            }
            for layer in range(1, len(spec["widths"]) - 1)
        }
    return plain({
        "kind": "sims-deep",
        "run": Path(run_dir).name,
        "config": config,
        **{key: record.get(key) for key in ("commit", "dirty", "versions", "machine", "created")},
        "families": entries,
        "curves": curves,
    })  # fmt: skip


def _number(value: float | None) -> float:
    """A summary's number: None (NaN, which JSON lacks) as NaN."""
    return float("nan") if value is None else float(value)


def deep_markdown(summary: dict, level: int = 1) -> str:
    """Markdown of a deep run's summary (:func:`summarize_deep`), headings at ``level``: one
    table per MLP family: per method, test accuracy and agreement with the unpruned MLP, output
    change / output RMS (means and 95% intervals over seeds); the layer losses eps_l / sigma_l^2
    (mean over seeds, layer by layer); in how many seeds the output moved less than with
    greedy-local (paired: same network); the share of steps whose neuron is the greedy local
    choice; the worst ratio of the output change to statement 7's bound (must be <= 1); and the
    amplification after the first hidden layer: output loss / layer loss, both relative, at the
    last step of layer 1 (how much of the layer's error reaches the output)."""
    config, top, sub = summary["config"], "#" * level, "#" * (level + 1)
    lines = [
        f"{top} Report: {config['name']}",
        "",
        "Every hidden layer pruned from the input side, no fine-tuning; means and 95% intervals "
        "over seeds.",
    ]
    for entry in summary["families"]:
        seeds = len(entry["seeds"])
        lines += [
            "",
            f"{sub} Family {entry['family']}: {entry['label']}, {entry['keep']} neurons kept per "
            "hidden layer",
            "",
            f"{seeds} seeds; unpruned test accuracy {_mean_ci(entry['unpruned'])}.",
            "",
            "| method | test accuracy | agreement | output change / output RMS | "
            "seeds with less change than greedy-local | layer loss / sigma^2, by layer | "
            "local choice share | amplification, layer 1 | max change / st. 7 bound |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for method in config["methods"]:
            m = entry["methods"][method]
            below = "n/a" if m["fewer"] is None else f"{m['fewer']}/{seeds}"
            eps = " / ".join(f"{_number(v):.3g}" for v in m["layer_loss"])
            lines.append(
                f"| {method} | {_mean_ci(m['test_accuracy'])} | {_mean_ci(m['agreement'])} | "
                f"{_mean_ci(m['change'])} | {below} | {eps} | {_number(m['local_share']):.2f} | "
                f"{_mean_ci(m['amplification'])} | {_number(m['worst_bound']):.3f} |"
            )
    return "\n".join(lines) + "\n"


def _family_figure(summary: dict, entry: dict, out: Path) -> list[Path]:
    """One MLP family's figure, one panel per hidden layer: the network's output loss
    (relative to the output's mean square) against the neurons kept in that layer, median and
    25-75% band over seeds, for every method."""
    config, family = summary["config"], entry["family"]
    spec = config["networks"][family]
    layers = range(1, len(spec["widths"]) - 1)
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 4), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, layer in zip(axes[0], layers, strict=True):
        for method in config["methods"]:
            curve = summary["curves"][str(family)][str(layer)][method]
            n = np.array(curve["n"])
            lo, mid, hi = (np.asarray(curve[q], dtype=np.float64) for q in ("lo", "mid", "hi"))
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
        f"(median, 25-75% band over {len(entry['seeds'])} seeds)",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, out, f"deep_layers_f{family:03d}")


def planned_deep(summary: dict) -> dict[str, Callable[[Path], list[Path]]]:
    """Every figure of a deep run's summary (:func:`summarize_deep`) by file stem, each a
    function drawing it into a folder: one per MLP family."""
    return {
        f"deep_layers_f{entry['family']:03d}": partial(_family_figure, summary, entry)
        for entry in summary["families"]
    }


def deep_figure(summary: dict, out: Path) -> list[Path]:
    """Every figure of a deep run's summary (:func:`planned_deep`) into ``out``."""
    return [path for draw in planned_deep(summary).values() for path in draw(out)]
