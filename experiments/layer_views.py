"""Views of a ``rates`` summary (:mod:`torchbridge.rates_study`) for the results pages: every
layer's verdicts counted, fitted rates spanned, channels needed compared, and a compact table.

- ``{{ STEM verdicts METHOD }}``: ``exponential in 6, power law in 1, unresolved in 1 of 8
  layers`` (a layer without a fit counts as ``no fit``);
- ``{{ STEM layer-span METHOD SYMBOL [VERDICT] }}``: the smallest and largest fitted SYMBOL (c,
  p, or cN: c times the layer's width) of METHOD over the layers (with that verdict);
- ``{{ STEM needed-ratio METHOD BASE EPS }}``: the channels METHOD needs for h <= EPS over those
  BASE needs, median and range over the layers where both reach EPS;
- ``{{ STEM layer-table METHOD[,METHOD...] }}``: per layer, N, the affine rank and each
  method's verdict with its rate;
- ``{{ SIMS transfer KEY STEM[,STEM...] }}``: :mod:`sims.spectrum`'s least squares of
  greedy-local's decades at n = 50 on each set of spectrum and geometry features, fitted on
  the generated instances of simulation SIMS's table KEY (``at50``) and scored on the real
  layers' resamples of the ``rates`` summaries STEM, and the reverse, as a Markdown table;
- ``{{ SIMS transfer-r2 KEY STEM[,STEM...] FEATURE[+FEATURE...] to-real|to-generated }}``:
  one held-out R^2 of that table.
"""

from __future__ import annotations

import statistics

import numpy as np

from sims.spectrum import FEATURE_SETS, explain

VERDICTS = ("exponential", "power", "unresolved", "no fit")


def _verdict(row: dict) -> str:
    return row.get("verdict", "no fit")


def _rows(summary: dict, method: str) -> list[tuple[dict, dict]]:
    if "layers" not in summary:
        raise ValueError("not a rates summary (it has no layers)")
    found = [(layer, layer["methods"][method]) for layer in summary["layers"]
             if method in layer["methods"]]  # fmt: skip
    if not found:
        raise ValueError(f"no layer was run with {method!r}")
    return found


def verdicts(summary: dict, method: str) -> str:
    rows = _rows(summary, method)
    counts = {v: sum(_verdict(row) == v for _, row in rows) for v in VERDICTS}
    words = {"power": "power law"}
    parts = [f"{words.get(v, v)} in {n}" for v, n in counts.items() if n]
    return f"{', '.join(parts)} of {len(rows)} layers"


def layer_span(summary: dict, method: str, symbol: str, verdict: str = "") -> str:
    if symbol not in ("c", "p", "cN"):
        raise ValueError(f"SYMBOL is c, p or cN, got {symbol!r}")
    values = [
        row["c"][0] * layer["N"] if symbol == "cN" else row[symbol][0]
        for layer, row in _rows(summary, method)
        if "verdict" in row and verdict in ("", row["verdict"])
    ]  # fmt: skip
    if not values:
        raise ValueError(f"no layer where {method} has a fit{' ' + verdict if verdict else ''}")
    return f"{min(values):.2g} to {max(values):.2g}"


def needed_ratio(summary: dict, method: str, base: str, eps: str) -> str:
    grid = summary["eps_grid"]
    if float(eps) not in grid:
        raise ValueError(f"eps {eps} is not in the run's eps grid {grid}")
    k = grid.index(float(eps))
    bases = {layer["chain"]: row["n_eps"][k] for layer, row in _rows(summary, base)}
    ratios = [
        row["n_eps"][k] / bases[layer["chain"]]
        for layer, row in _rows(summary, method)
        if row["n_eps"][k] is not None and bases.get(layer["chain"]) is not None
    ]  # fmt: skip
    if not ratios:
        raise ValueError(f"no layer where both {method} and {base} reach {eps}")
    layers = f"{len(ratios)} layer{'s' if len(ratios) > 1 else ''}"
    return (f"{statistics.median(ratios):.2g} (from {min(ratios):.2g} to {max(ratios):.2g} "
            f"over {layers})")  # fmt: skip


def _rate(row: dict) -> str:
    verdict = _verdict(row)
    if verdict == "no fit":
        return "no fit"
    shown = {"exponential": ("c",), "power": ("p",)}.get(verdict, ("c", "p"))
    rates = (f"{s} = {row[s][0]:.2g} [{row[s][1][0]:.2g}, {row[s][1][1]:.2g}]" for s in shown)
    return f"{verdict}, {', '.join(rates)}"


def layer_table(summary: dict, methods: str) -> str:
    names = methods.split(",")
    for name in names:
        _rows(summary, name)
    lines = ["| layer | N | affine rank | " + " | ".join(names) + " |",
             "| --- | --- | --- |" + " --- |" * len(names)]  # fmt: skip
    for layer in summary["layers"]:
        low, high = min(layer["rank"]), max(layer["rank"])
        rank = str(low) if low == high else f"{low}-{high}"
        cells = [_rate(layer["methods"][m]) if m in layer["methods"] else "" for m in names]
        lines.append(f"| {layer['chain']} | {layer['N']} | {rank} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _finite(rows: list[dict], features: tuple[str, ...]) -> list[dict]:
    """The rows whose features and decades are all known and finite."""
    wanted = (*features, "decades")
    return [row for row in rows if all(row[f] is not None and np.isfinite(row[f]) for f in wanted)]


def _transfer_fits(summary: dict, key: str, stems: str, features: tuple[str, ...],
                   summaries: dict[str, dict]) -> tuple:  # fmt: skip
    """(generated -> real, real -> generated) :class:`sims.spectrum.Explanation` of
    ``features`` for greedy-local's decades at n = 50."""
    generated = summary.get("explain", {}).get(key, {}).get("table")
    if not generated or "decades" not in generated[0]:
        raise ValueError(f"no instance table {key!r} with the decades target in the summary")
    real = []
    for stem in stems.split(","):
        if stem not in summaries:
            raise ValueError(f"no summary {stem}.json")
        real += [row for layer in _rates(summaries[stem]) for row in layer["instances"]]
    ours, theirs = _finite(generated, features), _finite(real, features)
    train = np.arange(len(ours) + len(theirs)) < len(ours)
    return tuple(explain(ours + theirs, features, mask, "decades") for mask in (train, ~train))


def transfer(summary: dict, key: str, stems: str, *, summaries: dict[str, dict]) -> str:
    lines = ["| features | generated -> real: R^2 (rows) | real -> generated: R^2 (rows) |",
             "| --- | --- | --- |"]  # fmt: skip
    for features in FEATURE_SETS:
        fits = _transfer_fits(summary, key, stems, features, summaries)
        cells = [f"{fit.test_r2:.2f} ({fit.n_train} -> {fit.n_test})" for fit in fits]
        lines.append(f"| {' + '.join(features)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def transfer_r2(summary: dict, key: str, stems: str, features: str, direction: str, *,
                summaries: dict[str, dict]) -> str:  # fmt: skip
    if direction not in ("to-real", "to-generated"):
        raise ValueError(f"DIRECTION is to-real or to-generated, got {direction!r}")
    fits = _transfer_fits(summary, key, stems, tuple(features.split("+")), summaries)
    return f"{fits[direction == 'to-generated'].test_r2:.2f}"


def _rates(summary: dict) -> list[dict]:
    if "layers" not in summary or not all("instances" in layer for layer in summary["layers"]):
        raise ValueError("not a rates summary with each resample's features (rerun it)")
    return summary["layers"]


VIEWS = {"verdicts": verdicts, "layer-span": layer_span, "needed-ratio": needed_ratio,
         "layer-table": layer_table, "transfer": transfer, "transfer-r2": transfer_r2}  # fmt: skip
