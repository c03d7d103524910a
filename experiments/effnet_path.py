"""``effnet-path``: one chain of EfficientNet-Lite0 pruned alone, the output along each path.

Each selector runs on the chain's layer problem to round(keep N) channels, with repeats
allowed and without (only channels never picked compete) where it takes that choice; the
network's output loss on the first ``oracle_images`` calibration views is read every
``every`` steps (:func:`torchbridge.path.output_paths`). Units: one per selector and choice;
the figure draws every path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Le, MinLen

from experiments.effnet_data import effnet_setup
from sims.config import Named, RunName
from sims.experiment import Experiment, headline
from sims.schema import STRICT, about, check_fields
from theory.selectors import METHODS, spec
from torchbridge.chains import pick_chains
from torchbridge.path import output_paths, plot_paths

PICKS = ("repeats", "no-repeats")


@dataclass(frozen=True)
class EffnetPath(Named):
    """One chain's paths (see the module docstring)."""

    __pydantic_config__ = STRICT

    name: RunName = "effnet-path"
    chain: Annotated[int, Ge(0), about("the chain's position (0: nearest the input)")] = 7
    keep: Annotated[float, Gt(0), Le(1), about("the fraction of its channels kept")] = 0.775
    methods: Annotated[
        tuple[Literal[METHODS], ...], MinLen(1), about("the selectors, a path each")
    ] = ("greedy-local", "global-imitation", "combined", "taylor")
    picks: Annotated[
        tuple[Literal[PICKS], ...],
        MinLen(1),
        about("each selector with repeats allowed, without (only channels never picked), or "
              "both (a selector that never picks a channel twice runs once)"),
    ] = PICKS  # fmt: skip
    images: Annotated[int, Ge(1), about("calibration views of the 6 calibration photos")] = 96
    batch: Annotated[int, Ge(1), about("calibration images per batch")] = 32
    oracle_images: Annotated[
        int, Ge(1), about("the calibration views the output loss is read on")
    ] = 8
    candidates: Annotated[
        int | None, Ge(1), about("output-loss selectors: candidates scored per step")
    ] = None
    every: Annotated[int, Ge(1), about("read the output every this many steps")] = 1
    weights: Annotated[
        str | None, about("a file of EfficientNet-Lite0's weights (default: the package's)")
    ] = None

    def check(self, where: str = "the configuration", as_flags: bool = True) -> None:
        check_fields(self, where, as_flags)
        for name, values in (("methods", self.methods), ("picks", self.picks)):
            if len(set(values)) != len(values):
                raise ValueError(f"{name} listed twice in {', '.join(values)}")


def units(config: EffnetPath) -> list[str]:
    """METHOD (repeats where it may pick a channel again) or METHOD-no-repeats, for each
    method and pick; once for a method that cannot turn repeats off."""
    keys: list[str] = []
    for method in config.methods:
        optional = "repeats" in spec(method).options
        for pick in config.picks:
            key = f"{method}-no-repeats" if pick == "no-repeats" and optional else method
            keys += [key] if key not in keys else []
    return keys


def unit(config: EffnetPath, key: str, cache: dict) -> dict:
    """The path of one selector and pick."""
    if not cache:
        cache |= effnet_setup(config.weights, config.images)
        (cache["chain"],) = pick_chains(cache["chains"], [config.chain])
    method = key.removesuffix("-no-repeats")
    paths = output_paths(
        cache["model"], cache["chain"], list(cache["calibration"].split(config.batch)),
        (method,), config.keep, oracle_images=config.oracle_images,
        candidates=config.candidates, repeats=not key.endswith("-no-repeats"),
        every=config.every,
    )  # fmt: skip
    return paths[method] | {"producer": cache["chain"].producer}


def summary(config: EffnetPath, results: dict[str, dict]) -> dict:
    """Every path, by unit."""
    return {"producer": next(iter(results.values()))["producer"], "paths": results}


def text(found: dict) -> str:
    lines = [f"chain {found['config']['chain']} ({found['producer']}) alone, keep "
             f"{found['config']['keep']}"]  # fmt: skip
    for key, path in found["paths"].items():
        lines.append(
            f"  {key}: {path['step'][-1]} steps, {path['kept'][-1]} kept, layer error "
            f"{path['layer_rel'][-1]:.3g}, output {path['output'][-1]:.3g}, local choices "
            f"{path['local_share']:.2f}, {path['seconds']:.0f} s; weights re-solved: layer "
            f"{path['refit_layer_rel']:.3g}, output {path['refit_output']:.3g}"
        )
    return "\n".join(lines)


def markdown(found: dict) -> str:
    lines = [
        f"Chain {found['config']['chain']} ({found['producer']}) alone, keep "
        f"{found['config']['keep']}; output KL on {found['config']['oracle_images']} views.",
        "",
        "| path | steps | kept | layer error | output | local choices | re-solved: layer | "
        "re-solved: output |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, p in found["paths"].items():
        lines.append(
            f"| {key} | {p['step'][-1]} | {p['kept'][-1]} | {p['layer_rel'][-1]:.3g} | "
            f"{p['output'][-1]:.3g} | {p['local_share']:.2f} | {p['refit_layer_rel']:.3g} | "
            f"{p['refit_output']:.3g} |"
        )
    return "\n".join(lines) + "\n"


def figures(found: dict, folder: Path) -> list[Path]:
    config = found["config"]
    title = (
        f"EfficientNet-Lite0, chain {config['chain']} ({found['producer']}) alone, keep "
        f"{config['keep']}; output KL on {config['oracle_images']} calibration views"
    )
    return plot_paths(found["paths"], title, folder, f"path-chain{config['chain']}")


EXPERIMENT = Experiment(
    "effnet-path",
    headline(__doc__),
    EffnetPath,
    units,
    unit,
    summary,
    text,
    figures,
    markdown,
)
