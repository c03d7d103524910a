"""``bench-torch``: the torch bridge's benchmarks on the CPU, each row against its baseline.

Units, each a row group of :mod:`torchbridge.bench` timed against its baseline in the same
unit: ``gram`` (the channel Gram matrix against a matrix product of its shape), ``forms``
(3x3 consumers: row correlation against the full unfold), ``local-NET`` (Gram +
greedy-local against GFS-style forward scoring of 50 candidates), ``work-NET`` (multiply-adds
of the Gram matrices against the forward pass), ``end-NET`` (pruning to a FLOPs target,
ours and Torch-Pruning's, against the calibration forward passes, each in a fresh process),
``scaling`` (EfficientNet-Lite0 against the calibration images), ``widths`` (the MNIST
ResNet-18 topology at 1, 2, 4 times its widths), ``flops-NET`` (FLOP counting of resized
copies against one count), ``surgery`` (ours against Torch-Pruning's). The GPU rows
(``python -m torchbridge.bench --rows device``) are not part of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Gt, Le, MinLen

from sims.config import Named, RunName
from sims.experiment import Experiment, headline
from sims.schema import STRICT, about, check_fields
from torchbridge.bench import (
    NETWORKS,
    SURGERY_NETWORKS,
    end_rows,
    flops_counting,
    gram_build,
    gram_work,
    kernel_forms,
    local_rows,
    scaling,
    surgery,
    width_scaling,
)

ROWS = ("gram", "forms", "local", "end", "scaling", "widths", "flops", "surgery")
PER_NETWORK = ("local", "work", "end", "flops")


@dataclass(frozen=True)
class BenchTorch(Named):
    """The torch bridge's CPU benchmarks (see the module docstring)."""

    __pydantic_config__ = STRICT

    name: RunName = "bench-torch"
    rows: Annotated[tuple[Literal[ROWS], ...], MinLen(1), about("the row groups timed")] = ROWS
    networks: Annotated[
        tuple[Literal[NETWORKS], ...], MinLen(1), about("the networks of the per-network rows")
    ] = NETWORKS
    keep: Annotated[float, Gt(0), Le(1), about("local rows: the fraction n / N chosen")] = 0.5
    flops: Annotated[float, Gt(0), Le(1), about("end-to-end rows: the FLOPs kept")] = 0.5

    def check(self, where: str = "the configuration", as_flags: bool = True) -> None:
        check_fields(self, where, as_flags)


def units(config: BenchTorch) -> list[str]:
    """Each row group, per network where it is timed per network (``end`` brings ``work``)."""
    keys = []
    for row in config.rows:
        groups = ("work", "end") if row == "end" else (row,)
        for group in groups:
            if group in PER_NETWORK:
                keys += [f"{group}-{network}" for network in config.networks]
            else:
                keys.append(group)
    return keys


def unit(config: BenchTorch, key: str, cache: dict) -> dict:
    group, _, network = key.partition("-")
    if group == "gram":
        return gram_build()
    if group == "forms":
        return {"rows": kernel_forms()}
    if group == "local":
        return local_rows([network], config.keep)[0]
    if group == "work":
        return gram_work(network)
    if group == "end":
        return {"rows": end_rows([network], config.flops)}
    if group == "scaling":
        rows, top = scaling((24, 48, 96))
        return {"rows": rows, "profile_top": top}
    if group == "widths":
        return {"rows": width_scaling()}
    if group == "flops":
        return flops_counting(network)
    return {"rows": [surgery(arch) for arch in SURGERY_NETWORKS]}


def summary(config: BenchTorch, results: dict[str, dict]) -> dict:
    """The rows by group: a list of rows (one per network, or the group's own, with their
    ratios to the forward passes, :func:`derived`), or one row."""
    found: dict = {}
    for key, result in results.items():
        group = key.partition("-")[0]
        rows = result.get("rows", [result])
        if group in PER_NETWORK or "rows" in result:
            found.setdefault(group, []).extend(rows)
        else:
            found[group] = result
        if "profile_top" in result:
            found["profile_top"] = result["profile_top"]
    return {"rows": {g: derived(g, rows) if isinstance(rows, list) else rows
                     for g, rows in found.items()}}  # fmt: skip


# Each group's columns: (header, key, format).
COLUMNS = {
    "gram": (("N", "N", ""), ("positions", "values", ""), ("float64 product s", "matmul64_s",
             ".2f"), ("float32 product s", "matmul32_s", ".2f"), ("Gram s", "gram_s", ".2f"),
             ("of the float64 product", "gram_vs_matmul64", ".0%"),
             ("of the float32 product", "gram_vs_matmul32", ".0%")),
    "forms": (("B", "B", ""), ("C", "C", ""), ("H", "H", ""), ("unfold s", "unfold_s", ".3f"),
              ("row correlation s", "correlation_s", ".3f"), ("speed-up", "speedup", ".1f"),
              ("correlation / conv", "correlation_over_conv", ".1f")),
    "local": (("network", "network", ""), ("chain", "chain", ""), ("N", "N", ""),
              ("n", "n", ""), ("images", "images", ""),
              ("Gram + greedy-local s", "gram_greedy_s", ".3f"),
              ("forward, 50 candidates s", "forward_50_s", ".1f"), ("speed-up", "speedup", ".0f"),
              ("loss ours", "gram_greedy_loss_rel", ".3f"),
              ("loss forward", "forward_50_loss_rel", ".3f")),
    "work": (("network", "network", ""), ("forward MACs", "forward_macs", ".3g"),
             ("Gram MACs", "gram_macs", ".3g"), ("ratio", "gram_over_forward", ".2f")),
    "end": (("network", "network", ""), ("task", "task", ""), ("seconds", "seconds", ".2f"),
            ("/ forward", "over_forward", ".1f"), ("peak MiB", "peak_rss_mib", ".0f"),
            ("FLOPs kept", "flops", ".3f"), ("agreement", "agreement", ".3f"),
            ("KL", "kl", ".2f"), ("accuracy", "accuracy", ".3f"),
            ("real probes", "real_probes", "")),
    "scaling": (("images", "images", ""), ("pruning s", "prune_s", ".2f"),
                ("forward s", "forward_s", ".2f"), ("ratio", "ratio", ".1f")),
    "widths": (("widest chain N", "largest_N", ""), ("pruning s", "prune_s", ".2f"),
               ("forward s", "forward_s", ".2f"), ("ratio", "ratio", ".1f")),
    "flops": (("network", "network", ""), ("widths", "widths", ""),
              ("resized copies s", "resized_copies_s", ".2f"), ("one count s", "one_count_s",
              ".3f"), ("speed-up", "speedup", ".1f"), ("equal", "equal", "")),
    "surgery": (("network", "network", ""), ("chains", "chains", ""), ("ours s", "ours_s",
                ".3f"), ("Torch-Pruning s", "torch_pruning_s", ".3f"),
                ("Torch-Pruning / ours", "torch_pruning_over_ours", ".1f"),
                ("same shapes", "same_shapes", "")),
}  # fmt: skip


def derived(group: str, rows: list[dict]) -> list[dict]:
    """The rows with their ratios to the forward passes (``end``: each network's own): the
    scaling rows' ``ratio``, the end-to-end rows' ``over_forward``."""
    if group in ("scaling", "widths"):
        return [row | {"ratio": row["prune_s"] / row["forward_s"]} for row in rows]
    if group == "end":
        forward = {r["network"]: r["seconds"] for r in rows if r["task"] == "forward passes"}
        return [row | {"over_forward": row["seconds"] / forward[row["network"]]} for row in rows]
    return rows


def _cell(value: object, spec: str) -> str:
    if value is None or value == "":
        return ""
    return format(value, spec) if spec and not isinstance(value, bool) else str(value)


def tables(found: dict) -> dict[str, str]:
    """Each timed group's rows as a Markdown table, by group."""
    out = {}
    for group, columns in COLUMNS.items():
        if group not in found["rows"]:
            continue
        rows = found["rows"][group]
        lines = ["| " + " | ".join(h for h, _, _ in columns) + " |",
                 "|" + " --- |" * len(columns)]  # fmt: skip
        lines += ["| " + " | ".join(_cell(row.get(k), f) for _, k, f in columns) + " |"
                  for row in (rows if isinstance(rows, list) else [rows])]  # fmt: skip
        out[group] = "\n".join(lines) + "\n"
    return out


def markdown(found: dict) -> str:
    return "\n".join(f"Rows `{group}`:\n\n{table}" for group, table in tables(found).items())


EXPERIMENT = Experiment(
    "bench-torch",
    headline(__doc__),
    BenchTorch,
    units,
    unit,
    summary,
    markdown,
    markdown=markdown,
)
