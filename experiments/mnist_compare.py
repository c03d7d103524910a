"""``mnist-compare``: methods compared on a network trained here on the real MNIST-5k digits.

Per seed (a new split of 4,000 training and 1,000 held-out images, a new initialisation; the
trained network is cached, :mod:`torchbridge.mnist`), calibrated on 512 training images:
held-out accuracy and agreement with the unpruned network after pruning and after the same
short fine-tune (one epoch of Adam on the training images), FLOPs, parameters, latency, time.
Units: per seed, the unpruned network's measures, then one per row; the summary gives each
column's mean and standard deviation over the seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Ge

from experiments.comparison import Comparison, markdown_table, over_seeds, table
from sims.config import RunName
from sims.experiment import Experiment, headline
from sims.schema import about
from torchbridge import compare
from torchbridge.chains import block_chains, pick_chains, sequential_chains
from torchbridge.groups import pruning_groups
from torchbridge.job import measure
from torchbridge.mnist import NETS, split, train, trained

UNPRUNED = "unpruned"
CALIBRATION = 512  # training images the pruning is calibrated on, in batches of 128


@dataclass(frozen=True)
class MnistCompare(Comparison):
    """The comparison on an MNIST network (see the module docstring)."""

    name: RunName = "mnist-compare"
    net: Annotated[Literal[NETS], about("the network trained on MNIST-5k")] = "resnet18"
    seeds: Annotated[int, Ge(1), about("seeds: splits, initialisations and calibrations")] = 3


def _key(seed: int, row: str) -> str:
    return f"seed{seed}-{row}"


def units(config: MnistCompare) -> list[str]:
    return [_key(s, row) for s in range(config.seeds) for row in (UNPRUNED, *config.rows(s))]


def _setup(config: MnistCompare, seed: int, cache: dict) -> dict:
    """Seed's trained network, its chains (and groups), its split and unpruned measures,
    made once."""
    if seed not in cache:
        model = trained(config.net, seed)
        xt, yt, xs, ys = split(seed)
        chains = sequential_chains(model) if config.net == "cnn" else block_chains(model)
        groups = pruning_groups(model, xt[:1]).chains if config.groups else None
        cache[seed] = {"model": model, "chains": pick_chains(chains, config.chains), "xt": xt,
                       "yt": yt, "xs": xs, "ys": ys, "groups": groups,
                       "base": measure(model, model, xs, ys, 32)}  # fmt: skip
    return cache[seed]


def unit(config: MnistCompare, key: str, cache: dict) -> dict:
    """Seed's unpruned measures, or one row of the comparison on seed's network."""
    seed_text, row = key.split("-", 1)
    seed = int(seed_text.removeprefix("seed"))
    made = _setup(config, seed, cache)
    if row == UNPRUNED:
        return made["base"]
    xt, yt, settings = made["xt"], made["yt"], config.rows(seed)[row]
    return compare.compare_row(
        made["model"], made["groups" if settings.groups else "chains"],
        list(xt[:CALIBRATION].split(128)), made["xs"], made["ys"], settings,
        lambda m: train(m, xt, yt, 1, seed), made["base"],
    )  # fmt: skip


def summary(config: MnistCompare, results: dict[str, dict]) -> dict:
    """Each row's columns over the seeds (mean, standard deviation, the values per seed)."""
    names = (UNPRUNED, *config.rows(0))
    per = {n: over_seeds([results[_key(s, n)] for s in range(config.seeds)]) for n in names}
    return {"unpruned": per[UNPRUNED], "rows": {n: per[n] for n in names[1:]}}


def _head(found: dict) -> str:
    base, config = found["unpruned"], found["config"]
    return (
        f"{config['net']}: unpruned accuracy {base['accuracy']['mean']:.3f} "
        f"+-{base['accuracy']['std']:.3f} ({config['seeds']} seeds), "
        f"{base['flops']['mean']:.0f} FLOPs/image"
    )


def text(found: dict) -> str:
    return _head(found) + "\n" + table(found["rows"])


def markdown(found: dict) -> str:
    return (
        _head(found)
        + "; mean +- standard deviation over seeds.\n\n"
        + markdown_table(found["rows"])
    )


EXPERIMENT = Experiment(
    "mnist-compare",
    headline(__doc__),
    MnistCompare,
    units,
    unit,
    summary,
    text,
    markdown=markdown,
)
