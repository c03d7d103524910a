"""What the comparison experiments share: the methods, the budget and settings every method
gets (declared as :class:`torchbridge.job.PruneConfig` declares them), the refit rows, and the
summary of rows over seeds."""

import typing
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from annotated_types import Ge, MinLen

from sims.config import Named, RunName
from sims.schema import STRICT, about, check_fields
from torchbridge.budget import ALLOCATIONS
from torchbridge.compare import variants
from torchbridge.job import METHOD_NAMES, PruneConfig

DEFAULT_FLOPS = 0.7
PRUNE = typing.get_type_hints(PruneConfig, include_extras=True)  # the declarations reused

# The columns of the terminal table, in order, where the rows have them.
COLUMNS = ("accuracy", "accuracy_tuned", "agreement", "agreement_tuned", "kl", "kl_tuned",
           "kl_calibration", "kl_oracle", "flops", "params", "seconds")  # fmt: skip


@dataclass(frozen=True)
class Comparison(Named):
    """Methods compared on one network at one budget, each a row (and a METHOD+refit row
    with ``refit``, a METHOD+groups row with ``groups``)."""

    __pydantic_config__ = STRICT

    name: RunName = "comparison"
    methods: Annotated[
        tuple[Literal[METHOD_NAMES], ...], MinLen(1), about("the methods compared, a row each")
    ] = ("greedy-local", "omp", "whole-output", "magnitude", "tp-taylor")
    keep: PRUNE["keep"] = None
    flops: Annotated[PRUNE["flops"], about("budget: the fraction of the FLOPs kept (0.7 "
                                           "where no budget is given)")] = None  # fmt: skip
    allocation: PRUNE["allocation"] = "uniform"
    refit: Annotated[
        bool, about("every method also with its consumers refit by least squares: METHOD+refit")
    ] = False
    ridge: PRUNE["ridge"] = 1e-4
    refit_toward: PRUNE["refit_toward"] = "zero"
    recalibrate_bn: PRUNE["recalibrate_bn"] = False
    compensate: PRUNE["compensate"] = False
    resolve: PRUNE["resolve"] = False
    no_repeats: PRUNE["no_repeats"] = False
    oracle_images: PRUNE["oracle_images"] = 64
    candidates: PRUNE["candidates"] = None
    chains: Annotated[
        tuple[Annotated[int, Ge(0)], ...] | None,
        about("prune only the chains at these positions (0: nearest the input); default: all"),
    ] = None
    groups: Annotated[
        bool | None,
        about(
            "every method that prunes channel groups also on every group of the dependency "
            "graph, residual streams included: METHOD+groups"
        ),
    ] = None  # off (None rather than False: the configurations of earlier runs are unchanged)

    allocations: Annotated[
        tuple[Literal[ALLOCATIONS], ...] | None,
        about(
            "with --flops, each of these allocations too, a row each for theory's methods: "
            "METHOD+ALLOCATION"
        ),
    ] = None  # none (None rather than (): the configurations of earlier runs are unchanged)

    def __post_init__(self) -> None:
        if self.keep is None and self.flops is None:  # the default budget, hashed as given
            object.__setattr__(self, "flops", DEFAULT_FLOPS)

    def check(self, where: str = "the configuration", as_flags: bool = True) -> None:
        """Every field against its declaration, then one budget and rows every method takes."""
        check_fields(self, where, as_flags)
        if (self.keep is None) == (self.flops is None):
            raise ValueError("give exactly one budget: --keep or --flops")
        if len(set(self.methods)) != len(self.methods):
            twice = sorted({m for m in self.methods if self.methods.count(m) > 1})
            raise ValueError(f"method(s) listed twice: {', '.join(twice)}")
        if self.allocations and self.flops is None:
            raise ValueError("--allocations share a FLOPs target: give --flops with them")
        if self.allocations and self.allocation in self.allocations:
            raise ValueError(f"--allocations repeats --allocation {self.allocation}")
        if self.groups and self.chains is not None:
            raise ValueError("--groups prunes every channel group: give no --chains with it")
        self.rows(seed=0)

    def budget(self) -> dict[str, object]:
        """The PruneConfig fields every method gets (each takes those it can use)."""
        budget = {"keep": self.keep} if self.keep is not None else {
            "flops": self.flops, "allocation": self.allocation
        }  # fmt: skip
        settings = ("compensate", "recalibrate_bn", "resolve", "no_repeats", "oracle_images",
                    "candidates")  # fmt: skip
        return budget | {k: getattr(self, k) for k in settings}

    def rows(self, seed: int) -> dict[str, PruneConfig]:
        """Every row's prune configuration, by row name (checked)."""
        refit = {"ridge": self.ridge, "refit_toward": self.refit_toward} if self.refit else None
        return variants(
            self.methods,
            self.budget(),
            refit,
            seed,
            bool(self.groups),
            tuple(self.allocations or ()),
        )


def over_seeds(rows: list[dict]) -> dict:
    """{column: {"mean", "std", "values"}} of the numeric columns of ``rows`` (one per seed)."""
    out = {}
    for column, value in rows[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [row[column] for row in rows]
            out[column] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                           "values": values}  # fmt: skip
    return out


def _cell(value: object) -> str:
    if isinstance(value, dict):
        return f"{value['mean']:.3f} +- {value['std']:.3f}"
    return f"{value:.3f}"


def markdown_table(rows: dict[str, dict]) -> str:
    """The rows ({name: {column: value, or {"mean", "std"}}}) as a Markdown table of COLUMNS."""
    first = next(iter(rows.values()))
    columns = [c for c in COLUMNS if c in first]
    lines = ["| method | " + " | ".join(columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def table(rows: dict[str, dict]) -> str:
    """The rows ({name: {column: value, or {"mean", "std"} over seeds}}) as a text table of
    COLUMNS."""
    first = next(iter(rows.values()))
    columns = [c for c in COLUMNS if c in first]
    lines = [f"{'method':<24}" + "".join(f"{c:>16}" for c in columns)]
    for name, row in rows.items():
        cells = [
            f"{row[c]['mean']:>9.3f} +-{row[c]['std']:.2f}" if isinstance(row[c], dict)
            else f"{row[c]:.3f}"
            for c in columns
        ]  # fmt: skip
        lines.append(f"{name:<24}" + "".join(f"{cell:>16}" for cell in cells))
    return "\n".join(lines)
