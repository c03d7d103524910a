"""``mnist-folding``: does folding N a_i into the consumer hurt fine-tuning? (MNIST CNN)

Per seed, the CNN of :mod:`torchbridge.mnist` pruned to a FLOPs target; the same kept
channels with the folded weights and with the original consumer weights, each fine-tuned for
one epoch (:func:`torchbridge.folding.folding_row`). Units: one per seed; the summary gives
each accuracy's mean and standard deviation over the seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Le

from experiments.comparison import over_seeds
from sims.config import Named, RunName
from sims.experiment import Experiment, headline
from sims.schema import STRICT, about, check_fields
from theory.selectors import LOCAL_METHODS
from torchbridge.budget import ALLOCATIONS
from torchbridge.folding import folding_row


@dataclass(frozen=True)
class MnistFolding(Named):
    """Folded against original weights (see the module docstring)."""

    __pydantic_config__ = STRICT

    name: RunName = "mnist-folding"
    seeds: Annotated[int, Ge(1), about("seeds: splits, initialisations and calibrations")] = 3
    flops: Annotated[float, Gt(0), Le(1), about("the fraction of the FLOPs kept")] = 0.5
    allocation: Annotated[
        Literal[ALLOCATIONS], about("how the FLOPs target is shared among the chains")
    ] = "uniform"
    method: Annotated[Literal[LOCAL_METHODS], about("the selector")] = "greedy-local"

    def check(self, where: str = "the configuration", as_flags: bool = True) -> None:
        check_fields(self, where, as_flags)


def units(config: MnistFolding) -> list[str]:
    return [f"seed{s}" for s in range(config.seeds)]


def unit(config: MnistFolding, key: str, cache: dict) -> dict:
    return folding_row(int(key.removeprefix("seed")), config.flops, config.allocation,
                       config.method)  # fmt: skip


def summary(config: MnistFolding, results: dict[str, dict]) -> dict:
    return {"accuracy": over_seeds(list(results.values()))}


def markdown(found: dict) -> str:
    lines = ["| accuracy | mean +- standard deviation | per seed |", "| --- | --- | --- |"]
    for column, s in found["accuracy"].items():
        lines.append(f"| {column} | {s['mean']:.3f} +- {s['std']:.3f} | "
                     f"{', '.join(f'{v:.3f}' for v in s['values'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def text(found: dict) -> str:
    return "\n".join(f"{column:<16}{s['mean']:.3f} +-{s['std']:.3f}"
                     for column, s in found["accuracy"].items())  # fmt: skip


EXPERIMENT = Experiment(
    "mnist-folding",
    headline(__doc__),
    MnistFolding,
    units,
    unit,
    summary,
    text,
    markdown=markdown,
)
