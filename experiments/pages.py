"""Results pages written from templates whose numbers come from the committed summaries.

A template (``results/pages/PATH.md``) is Markdown whose measured numbers are placeholders,
filled from ``results/summaries/STEM.json`` into ``docs/PATH.md`` by ``make results``:

- ``{{ STEM PATH [FORMAT] }}``: the value at PATH in summary STEM; PATH's parts are separated
  by ``/``, each a key, a list index, ``FIELD=VALUE[,FIELD=VALUE]`` picking the one element
  of a list with those fields (``rows/family=0,method=omp/c/0``), or ``*``: every element (the
  path then gives a list); FORMAT a Python format spec (default ``.3g`` for a float);
- ``{{ STEM sum|len|mean|range PATH [FORMAT] }}``: the sum, number, mean, or smallest and
  largest (``0.08 to 0.15``) of the numbers at PATH (one, or a list, or lists of them);
- ``{{ STEM rate FAMILY METHOD }}``: a simulation's fitted rate in words: its verdict and the
  rate that goes with it (``exponential, c = 0.0163 [0.0139, 0.0186]``);
- ``{{ STEM needed FAMILY METHOD [EPS ...] }}``: the neurons a simulation's selector needed for
  each eps (median over seeds), ``32 / 185 / > 3000``;
- ``{{ STEM count METHOD VERDICT [FIELD=VALUE,...] }}``: in how many of a simulation's families
  (those whose specification has the given fields, or all) METHOD's verdict is VERDICT
  (``any`` counts the families);
- ``{{ STEM span METHOD SYMBOL VERDICT [FIELD=VALUE,...] }}``: the smallest and largest fitted
  SYMBOL (``c`` or ``p``) of METHOD over those families with that verdict, ``0.35 to 1.6``;
- ``{{ STEM above-bound [FIELD=VALUE,...] }}``: over a simulation's instances (of those
  families) with a positive fitted greedy-local c, the least and the median ratio of c to
  statement 4's guaranteed rate -log(1 - r^2/D^2) taken at the upper end of r's bracket,
  ``83 times (median 840 times; 180 instances)``;
- ``{{ STEM cell METHOD METRIC }}``: a comparison's METRIC for METHOD's row, ``0.956 +- 0.010``
  (mean +- standard deviation over seeds where the row has several, 3 decimals);
- ``{{ STEM table METRIC[,METRIC...] [METHOD,...] }}``: those columns of a comparison's rows
  (all rows, or the methods named) as a Markdown table;
- ``{{ STEM mlp-table METRIC METRIC }}``: a deep run's families (rows) against its methods
  (columns), each cell the two metrics' means over seeds, ``0.75 / 0.56``;
- ``{{ STEM explain KEY HOLDOUT FEATURE[+FEATURE...] }}``: the held-out R^2 of those spectrum
  and geometry features for greedy-local's decay (:mod:`sims.spectrum`), fitted on a
  simulation's instances without HOLDOUT (FIELD=VALUE) and scored on those with it, from the
  instance table KEY (``at50``, ``eps1e-06``) of its summary, ``0.69``;
- ``{{ STEM bench GROUP }}``: one timed group of a benchmark's summary (``bench-core``:
  steps, gram, gamma; ``bench-torch``: its row groups) as its Markdown table;
- ``verdicts``, ``layer-span``, ``needed-ratio``, ``layer-table``: views of a ``rates``
  summary; ``transfer``: a simulation's decay model carried to real layers and back
  (:mod:`experiments.layer_views`).

A decimal number written in a template outside a placeholder or code is refused
(:func:`typed_numbers`): every measured number on a results page comes from a summary.
"""

from __future__ import annotations

import inspect
import math
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments import bench_core, bench_torch, layer_views
from sims.spectrum import explain, held_out

PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+")


def _fields(text: str) -> dict[str, str]:
    """``FIELD=VALUE[,FIELD=VALUE...]`` as a mapping (empty text: no condition)."""
    return dict(pair.split("=", 1) for pair in text.split(",")) if text else {}


def _has(item: dict, wanted: dict[str, str]) -> bool:
    """Whether ``item`` has every field of ``wanted`` (values compared as text)."""
    return all(str(item.get(k)) == v for k, v in wanted.items())


def _part(value: Any, part: str) -> Any:
    if isinstance(value, list) and "=" in part:
        wanted = _fields(part)
        found = [
            item for item in value if isinstance(item, dict) and _has(item, wanted)
        ]  # fmt: skip
        if len(found) != 1:
            raise KeyError(f"{len(found)} elements with {part}")
        return found[0]
    if isinstance(value, list):
        return value[int(part)]
    if isinstance(value, dict):
        return value[part]
    raise KeyError(f"{part} below a {type(value).__name__}")


def _walk(value: Any, parts: list[str], path: str) -> Any:
    if not parts:
        return value
    part, rest = parts[0], parts[1:]
    if part == "*":
        items = value.values() if isinstance(value, dict) else value
        if not isinstance(items, list) and not isinstance(value, dict):
            raise ValueError(f"no {path!r}: '*' below a {type(value).__name__}")
        return [_walk(item, rest, path) for item in items]
    try:
        return _walk(_part(value, part), rest, path)
    except (KeyError, IndexError, ValueError) as error:
        if str(error).startswith("no "):
            raise
        raise ValueError(f"no {path!r}: at {part!r}: {error}") from None


def lookup(summary: dict, path: str) -> Any:
    """The value at ``path`` (``a/b/0/FIELD=VALUE/c``; ``*`` for every element) in
    ``summary``."""
    return _walk(summary, path.split("/"), path)


def _numbers(value: Any) -> list[float]:
    """Every number in ``value`` (a number, or nested lists of them); None left out."""
    if isinstance(value, list):
        return [number for item in value for number in _numbers(item)]
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    return [float(value)]


def _aggregate(kind: str) -> Callable[..., str]:
    def view(summary: dict, path: str, spec: str = ".3g") -> str:
        values = _numbers(lookup(summary, path))
        if kind == "len":
            return str(len(values))
        if not values:
            raise ValueError(f"no numbers at {path!r}")
        if kind == "range":
            return f"{format(min(values), spec)} to {format(max(values), spec)}"
        total = math.fsum(values)
        if kind == "sum":
            return format(total, spec) if total != int(total) else str(int(total))
        return format(total / len(values), spec)

    return view


def _shown(value: Any, spec: str | None = None) -> str:
    if value is None:
        return "n/a"
    if spec is not None:
        return format(value, spec)
    return format(value, ".3g") if isinstance(value, float) else str(value)


def _row(summary: dict, family: str, method: str) -> dict:
    return lookup(summary, f"rows/family={family},method={method}")


def _rate(summary: dict, family: str, method: str) -> str:
    row = _row(summary, family, method)
    if "error" in row:
        return "no fit"
    symbol = "c" if row["verdict"] == "exponential" else "p"
    mean, (lo, hi) = row[symbol]
    return f"{row['verdict']}, {symbol} = {mean:.3g} [{lo:.3g}, {hi:.3g}]"


def _needed(summary: dict, family: str, method: str, *eps: str) -> str:
    row = _row(summary, family, method)
    grid = summary["config"]["eps_grid"]
    wanted = [float(e) for e in eps] if eps else grid
    cells = []
    for e in wanted:
        if e not in grid:
            raise ValueError(f"eps {e:g} is not in the run's eps grid {grid}")
        n = row["n_eps"][grid.index(e)]
        cells.append(f"> {row['steps']}" if n is None or not math.isfinite(n) else f"{n:.0f}")
    return " / ".join(cells)


def _families(summary: dict, method: str, verdict: str, where: str = "") -> list[dict]:
    """METHOD's rows in the families whose specification has the fields of ``where``
    (``FIELD=VALUE,...``) and whose verdict is ``verdict`` (``any``: every verdict)."""
    wanted = _fields(where)
    specs = [family["spec"] for family in summary["families"]]
    for field in wanted:
        if field not in specs[0]:
            raise ValueError(f"the families have no field {field!r}")
    return [
        row for row in summary["rows"]
        if row["method"] == method
        and _has(specs[row["family"]], wanted)
        and (verdict == "any" or row.get("verdict") == verdict)
    ]  # fmt: skip


def _count(summary: dict, method: str, verdict: str, where: str = "") -> str:
    return str(len(_families(summary, method, verdict, where)))


def _span(summary: dict, method: str, symbol: str, verdict: str, where: str = "") -> str:
    if symbol not in ("c", "p"):
        raise ValueError(f"SYMBOL is c or p, got {symbol!r}")
    values = [row[symbol][0] for row in _families(summary, method, verdict, where)]
    if not values:
        raise ValueError(f"no family where {method}'s verdict is {verdict}")
    return f"{min(values):.2g} to {max(values):.2g}"


def _above_bound(summary: dict, where: str = "") -> str:
    wanted = _fields(where)
    specs = [family["spec"] for family in summary["families"]]
    ratios = [
        point["c"] / -math.log1p(-min(point["x_hi"], 1.0))
        for point in summary["instances"]
        if point["c"] > 0 and point["x_hi"] > 0
        and _has(specs[point["family"]], wanted)
    ]  # fmt: skip
    if not ratios:
        raise ValueError("no instance with a positive fitted c and r > 0")
    least, median = _round(min(ratios)), _round(statistics.median(ratios))
    return f"{least} times (median {median} times; {len(ratios)} instances)"


def _round(value: float) -> str:
    """Two significant digits, as a whole number with thousands separators from 100 on."""
    shown = float(f"{value:.2g}")
    return f"{shown:,.0f}" if shown >= 100 else f"{shown:g}"


def _cell(summary: dict, method: str, metric: str) -> str:
    value = lookup(summary, f"rows/{method}/{metric}")
    if isinstance(value, dict):
        if len(value.get("values", ())) > 1:
            return f"{value['mean']:.3f} +- {value['std']:.3f}"
        value = value["mean"]
    return _shown(value, ".3f")


def _table(summary: dict, metrics: str, methods: str = "") -> str:
    names = methods.split(",") if methods else list(summary["rows"])
    columns = metrics.split(",")
    lines = ["| method | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for name in names:
        cells = [_cell(summary, name, metric) for metric in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mlp_table(summary: dict, first: str, second: str) -> str:
    methods = summary["config"]["methods"]
    lines = ["| MLP family | " + " | ".join(methods) + " |", "| --- |" + " --- |" * len(methods)]
    for entry in summary["families"]:
        means = {
            m: [statistics.fmean(_numbers(entry["methods"][m][k])) for k in (first, second)]
            for m in methods
        }
        cells = [f"{means[m][0]:.2f} / {means[m][1]:.2f}" for m in methods]
        lines.append(f"| {entry['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _explain(summary: dict, key: str, holdout: str, features: str) -> str:
    found = lookup(summary, f"explain/{key}")
    table, names = found["table"], tuple(features.split("+"))
    target = "decades" if "decades" in table[0] else "log_n_eps"
    return f"{explain(table, names, ~held_out(table, holdout), target).test_r2:.2f}"


BENCH_TABLES = {"bench-core": bench_core.tables, "bench-torch": bench_torch.tables}


def _bench(summary: dict, group: str) -> str:
    name = summary.get("experiment")
    if name not in BENCH_TABLES:
        raise ValueError(f"not a benchmark's summary (its experiment is {name!r})")
    found = BENCH_TABLES[name](summary)
    if group not in found:
        raise ValueError(f"no group {group!r} in {name} (it has {', '.join(found)})")
    return found[group].rstrip("\n")


VIEWS = {
    "rate": _rate, "needed": _needed, "count": _count, "span": _span, "above-bound": _above_bound,
    "cell": _cell, "table": _table, "mlp-table": _mlp_table, "explain": _explain, "bench": _bench,
    **{kind: _aggregate(kind) for kind in ("sum", "len", "mean", "range")},
    **layer_views.VIEWS,
}  # fmt: skip


def placeholder(text: str, summaries: dict[str, dict]) -> str:
    """One placeholder's text (without braces) filled from ``summaries`` (stem -> summary)."""
    words = text.split()
    if len(words) < 2:
        raise ValueError("a placeholder is {{ STEM PATH [FORMAT] }} or {{ STEM VIEW ARGS }}")
    stem, what, *rest = words
    if stem not in summaries:
        raise ValueError(f"no summary {stem}.json")
    if what in VIEWS:
        view = VIEWS[what]
        # a view with a keyword ``summaries`` reads other summaries too (by the stems it is given)
        more = {"summaries": summaries} if "summaries" in inspect.signature(view).parameters else {}
        try:
            inspect.signature(view).bind(summaries[stem], *rest, **more)
        except TypeError:
            raise ValueError(f"view {what}: wrong arguments {rest} (experiments.pages)") from None
        return view(summaries[stem], *rest, **more)
    if len(rest) > 1:
        raise ValueError("a value takes one FORMAT at most")
    try:
        return _shown(lookup(summaries[stem], what), *rest)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{stem} {what}: {error}") from None


def fill(template: str, summaries: dict[str, dict], where: str) -> str:
    """``template`` with every placeholder filled; a clear error naming ``where`` and the
    placeholder when one cannot be."""

    def one(match: re.Match) -> str:
        try:
            return placeholder(match.group(1), summaries)
        except ValueError as error:
            raise ValueError(f"{where}: {{{{ {match.group(1)} }}}}: {error}") from None

    return PLACEHOLDER.sub(one, template)


def typed_numbers(template: str) -> list[str]:
    """The decimal numbers of ``template`` written outside placeholders and code."""
    bare = CODE.sub("", PLACEHOLDER.sub("", template))
    return DECIMAL.findall(bare)


def render_page(template: Path, summaries: dict[str, dict], where: str | None = None) -> str:
    """The page of ``template`` (``where``: its path under results/pages/, default its name):
    a notice that it is written, then the filled template."""
    text = template.read_text()
    typed = typed_numbers(text)
    if typed:
        raise ValueError(
            f"{template}: decimal numbers typed by hand ({', '.join(typed[:5])}): take them "
            "from a summary with a placeholder"
        )
    source = f"results/pages/{where or template.name}"
    notice = f"<!-- written by `make results` from {source}: edit that -->\n"
    return notice + fill(text, summaries, str(template))
