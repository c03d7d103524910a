"""``effnet-compare``: methods compared on EfficientNet-Lite0 with its real ImageNet weights.

Calibrated on ``images`` random-resized views of 6 photos shipped in packages (on
``device``), evaluated on 80 views of 5 other photos by top-1 agreement with the unpruned
network and KL(unpruned || pruned), before and after the same short fine-tune without labels
(the fine-tune command's default recipe: two epochs of distillation on the calibration views,
batch norms frozen). Units: the unpruned
network's measures, then one per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge

from experiments.comparison import Comparison, markdown_table, table
from experiments.effnet_data import effnet_setup
from sims.config import RunName
from sims.experiment import Experiment, headline
from sims.schema import about
from torchbridge import compare, finetune
from torchbridge.chains import pick_chains
from torchbridge.groups import pruning_groups
from torchbridge.job import check_device, measure

UNPRUNED = "unpruned"


@dataclass(frozen=True)
class EffnetCompare(Comparison):
    """The comparison on EfficientNet-Lite0 (see the module docstring)."""

    name: RunName = "effnet-compare"
    images: Annotated[int, Ge(1), about("calibration views of the 6 calibration photos")] = 96
    batch: Annotated[int, Ge(1), about("calibration images per batch")] = 32
    device: Annotated[str, about("cpu, cuda or cuda:N")] = "cpu"
    weights: Annotated[
        str | None, about("a file of EfficientNet-Lite0's weights (default: the package's)")
    ] = None

    def check(self, where: str = "the configuration", as_flags: bool = True) -> None:
        super().check(where, as_flags)
        check_device(self.device)


def units(config: EffnetCompare) -> list[str]:
    return [UNPRUNED, *config.rows(seed=0)]


def _setup(config: EffnetCompare, cache: dict) -> dict:
    """The network, its chains (those picked), the views and the unpruned measures, made
    once per process."""
    if not cache:
        cache |= effnet_setup(config.weights, config.images, config.device)
        cache["every"] = len(cache["chains"])
        cache["chains"] = pick_chains(cache["chains"], config.chains)
        cache["base"] = measure(cache["model"], cache["model"], cache["test"], None, 32)
        if config.groups:
            example = cache["calibration"][:1]
            cache["groups"] = pruning_groups(cache["model"], example).chains
    return cache


def unit(config: EffnetCompare, key: str, cache: dict) -> dict:
    """The unpruned network's measures (key ``unpruned``), or one row of the comparison."""
    made = _setup(config, cache)
    if key == UNPRUNED:
        return made["base"] | made["photos"] | {
            "chains": len(made["chains"]), "of_chains": made["every"],
            "test_images": len(made["test"]),
        } | ({"groups": len(made["groups"])} if config.groups else {})  # fmt: skip
    model, calibration, row = made["model"], made["calibration"], config.rows(seed=0)[key]
    return compare.compare_row(
        model, made["groups" if row.groups else "chains"], list(calibration.split(config.batch)),
        made["test"], None, row, lambda m: finetune.finetune(m, model, calibration), made["base"],
    )  # fmt: skip


def summary(config: EffnetCompare, results: dict[str, dict]) -> dict:
    """The unpruned measures and every row, as the units gave them (one seed)."""
    return {"unpruned": results[UNPRUNED],
            "rows": {k: v for k, v in results.items() if k != UNPRUNED}}  # fmt: skip


def _head(found: dict) -> str:
    base = found["unpruned"]
    return (
        f"EfficientNet-Lite0: {base['flops'] / 1e6:.0f} MFLOPs, {base['params'] / 1e6:.2f} M "
        f"parameters, {base['chains']} of {base['of_chains']} chains pruned; calibration: "
        f"{found['config']['images']} views; test: {base['test_images']} views of "
        f"{', '.join(base['test_photos'])}"
    )


def text(found: dict) -> str:
    return _head(found) + "\n" + table(found["rows"])


def markdown(found: dict) -> str:
    return _head(found) + ".\n\n" + markdown_table(found["rows"])


EXPERIMENT = Experiment(
    "effnet-compare",
    headline(__doc__),
    EffnetCompare,
    units,
    unit,
    summary,
    text,
    markdown=markdown,
)
