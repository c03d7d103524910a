"""``bench-core``: the numeric core's benchmarks, as ratios against baselines in the same unit.

Units (each times its row and its baseline in one process, :mod:`theory.bench`): ``steps``,
the per-step time of each step-wise selector at each N; ``gram``, the layer problem's build
against a plain matrix product of the same shape; ``gamma``, the active-set gamma solver
against cvxpy on the supports of one fully-corrective run. The summary keeps every row; the
benchmarks page reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, MinLen

from sims.config import Named, RunName
from sims.experiment import Experiment, headline
from sims.schema import STRICT, about, check_fields
from theory.bench import gamma_solver, gram_build, step_costs

UNITS = ("steps", "gram", "gamma")


@dataclass(frozen=True)
class BenchCore(Named):
    """The numeric core's benchmarks (see the module docstring)."""

    __pydantic_config__ = STRICT

    name: RunName = "bench-core"
    sizes: Annotated[
        tuple[Annotated[int, Ge(2)], ...], MinLen(1), about("neurons N of the per-step rows")
    ] = (1000, 4000)
    steps: Annotated[int, Ge(1), about("selector steps timed per run")] = 200
    repeat: Annotated[int, Ge(1), about("runs per timing; the fastest is kept")] = 3
    gram_n: Annotated[int, Ge(2), about("neurons of the Gram build")] = 4096
    gram_width: Annotated[int, Ge(2), about("values per neuron of the Gram build")] = 16384
    gamma_n: Annotated[int, Ge(2), about("neurons of the gamma subproblem's layer")] = 2000
    gamma_support: Annotated[
        int, Ge(2), about("fully-corrective steps whose supports are solved")
    ] = 60

    def check(self, where: str = "the configuration", as_flags: bool = True) -> None:
        check_fields(self, where, as_flags)


def units(config: BenchCore) -> list[str]:
    return list(UNITS)


def unit(config: BenchCore, key: str, cache: dict) -> dict:
    if key == "steps":
        rows = step_costs(list(config.sizes), config.steps, config.repeat)
        return {"rows": [r | {"us_per_step": 1e6 * r["seconds_per_step"]} for r in rows]}
    if key == "gram":
        return gram_build(config.gram_n, config.gram_width, config.repeat)
    return gamma_solver(config.gamma_n, config.gamma_support, config.repeat)


def summary(config: BenchCore, results: dict[str, dict]) -> dict:
    return {"step_costs": results["steps"]["rows"], "gram_build": results["gram"],
            "gamma_solver": results["gamma"]}  # fmt: skip


def tables(found: dict) -> dict[str, str]:
    """The three rows as Markdown tables: ``steps``, ``gram``, ``gamma``."""
    sizes = sorted({r["N"] for r in found["step_costs"]})
    methods = list(dict.fromkeys(r["method"] for r in found["step_costs"]))
    cell = {(r["method"], r["N"]): r for r in found["step_costs"]}
    steps = ["| us per step (ratio to the smallest N) | "
             + " | ".join(f"N = {n:,}" for n in sizes) + " |",
             "| --- |" + " --- |" * len(sizes)]  # fmt: skip
    for method in methods:
        steps.append(f"| {method} | " + " | ".join(
            f"{cell[method, n]['us_per_step']:.1f} (x{cell[method, n]['ratio_to_smallest_N']:.2f})"
            for n in sizes) + " |")  # fmt: skip
    g, q = found["gram_build"], found["gamma_solver"]
    gram = [
        "| Gram build | seconds | share of the matrix product's throughput |",
        "| --- | --- | --- |",
        f"| matrix product ({g['N']} x {g['values_per_neuron']}) @ ({g['values_per_neuron']} x "
        f"{g['N']}) | {g['matmul_seconds']:.3g} | 100% ({g['matmul_gflops']:.0f} GFLOP/s) |",
        f"| `LayerProblem.from_features` | {g['from_features_seconds']:.3g} | "
        f"{100 * g['throughput_vs_matmul']:.0f}% |",
    ]
    gamma = [
        f"| gamma subproblem: {q['supports']} supports up to {q['largest_support']}, "
        f"N = {q['N']} | seconds | speed-up |",
        "| --- | --- | --- |",
        f"| cvxpy | {q['cvxpy_seconds']:.3g} | 1 |",
        f"| active set, cold start | {q['active_set_cold_seconds']:.3g} | "
        f"{q['speedup_cold']:.0f} |",
        f"| active set, warm start | {q['active_set_warm_seconds']:.3g} | "
        f"{q['speedup_warm']:.0f} |",
    ]
    return {name: "\n".join(lines) + "\n"
            for name, lines in (("steps", steps), ("gram", gram), ("gamma", gamma))}  # fmt: skip


def markdown(found: dict) -> str:
    return "\n".join(tables(found).values())


EXPERIMENT = Experiment(
    "bench-core",
    headline(__doc__),
    BenchCore,
    units,
    unit,
    summary,
    markdown,
    markdown=markdown,
)
