"""``rates``: the decay of every layer of a real network, fitted with intervals over resamples.

``python -m torchbridge rates --network mnist-resnet18`` (or ``python -m experiments run
rates``): the network (an MNIST network trained here, cached, or an ImageNet one, torchvision's
or EfficientNet-Lite0, with its weights; or any at its random initialisation); its calibration
images split into disjoint resamples; per resample, every chain's layer problem and each
selector's curve (:func:`torchbridge.rates.resample_layers`); the summary fits each layer over
the resamples (:func:`torchbridge.rates.fit_layer`); the figures
(:mod:`torchbridge.rates_plots`). Units: one per resample, so a killed run keeps the
resamples it finished. ``--jobs`` and ``--cluster`` (how to run, not part of the
configuration) spread each resample's layers over processes or a cluster as ``sims run``
does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from annotated_types import Ge, Gt, Le, Lt, MinLen
from torch import nn

from sims.config import Named, RunName
from sims.experiment import Experiment, headline
from sims.report import bound, interval
from sims.schema import STRICT, about, check_fields
from sims.summary import drawn_points, rounded
from theory.selectors import LOCAL_METHODS
from torchbridge.chains import Chain, block_chains, sequential_chains
from torchbridge.images import folder_sets, photo_sets
from torchbridge.mnist import split, trained
from torchbridge.models import chains_of, check_arch, load, views
from torchbridge.rates import fit_layer, resample_layers, resamples
from torchbridge.rates_plots import FIGURES, plot_rates

MNIST = ("mnist-resnet18", "mnist-cnn")  # trained here; every other network is an --arch
TRAINING = ("trained", "random")


@dataclass(frozen=True)
class LayerRates(Named):
    """Every layer's decay (see the module docstring)."""

    __pydantic_config__ = STRICT

    name: RunName = "rates"
    network: Annotated[
        str,
        about(
            "an MNIST network (mnist-resnet18, mnist-cnn: trained on MNIST-5k here), or an "
            "ImageNet one: any --arch of prune (a torchvision classifier, efficientnet_lite0, "
            "timm:NAME, py:MODULE:CALLABLE)"
        ),
    ] = "mnist-resnet18"
    training: Annotated[
        Literal[TRAINING],
        about(
            "trained (MNIST: here, cached; ImageNet: its weights), or random: the network "
            "at its initialisation"
        ),
    ] = "trained"
    weights: Annotated[
        str | None,
        about(
            "ImageNet networks: a file of the weights (default: the package's for "
            "efficientnet_lite0, torchvision's cache for the others)"
        ),
    ] = None
    data: Annotated[
        str, about("ImageNet networks: photos (shipped inside packages) or an ImageFolder tree")
    ] = "photos"
    seed: Annotated[
        int, Ge(0), about("seed of the split, the training, the resamples and the selectors")
    ] = 0
    images: Annotated[
        int,
        Ge(2),
        about(
            "calibration images (MNIST: of the training split; photos: random-resized views "
            "of the 6 calibration photos)"
        ),
    ] = 512
    resamples: Annotated[
        int, Ge(2), about("disjoint subsets of the calibration images: one curve each per layer")
    ] = 4
    methods: Annotated[
        tuple[Literal[LOCAL_METHODS], ...], MinLen(1), about("the selectors run on every layer")
    ] = ("greedy-local", "fixed-step", "random", "omp")
    depth: Annotated[int | None, Ge(1), about("steps per layer (default: the layer's width N)")] = (
        None
    )
    fit_from: Annotated[int, Ge(1), about("the first n fitted")] = 2
    corrective_cap: Annotated[
        float,
        Gt(0),
        Le(1),
        about(
            "fit fully-corrective and omp only for n < cap * affine rank, fixed-step and "
            "magnitude for n < cap * N (where their loss becomes exactly 0)"
        ),
    ] = 0.5
    eps_grid: Annotated[
        tuple[Annotated[float, Gt(0), Lt(1)], ...],
        MinLen(1),
        about("the losses / sigma^2 at which the channels needed are read"),
    ] = (1e-1, 1e-2, 1e-3, 1e-4)
    batch: Annotated[int, Ge(1), about("calibration images per forward pass")] = 128

    def check(self, where: str = "the configuration", as_flags: bool = True) -> None:
        check_fields(self, where, as_flags)
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods listed twice in {', '.join(self.methods)}")
        if self.network not in MNIST:
            check_arch(self.network)
        elif self.weights is not None or self.data != "photos":
            raise ValueError(
                f"--weights and --data are for the ImageNet networks; {self.network} is "
                "trained here on MNIST-5k"
            )
        if self.images < self.resamples:
            raise ValueError(
                f"{self.images} calibration images cannot make {self.resamples} disjoint "
                "resamples: give at least as many images as resamples"
            )


def network(config: LayerRates) -> tuple[nn.Module, list[Chain], torch.Tensor]:
    """(the network in eval mode, its chains, the calibration images): an MNIST network
    trained here (cached) or at its initialisation under the seed, with images of its
    training split; an ImageNet network with its weights (``weights``: a file; by default
    the package's for EfficientNet-Lite0, torchvision's cache for the others) or at its
    initialisation under the seed, with views of ``data`` (the shipped photos or an
    ImageFolder tree)."""
    trained_here = config.training == "trained"
    if config.network not in MNIST:
        torch.manual_seed(config.seed)
        default = "package" if config.network == "efficientnet_lite0" else "torchvision"
        model = load(config.network, (config.weights or default) if trained_here else "none")
        transform = views(config.network)
        if config.data == "photos":
            images = photo_sets(transform, config.images, seed=config.seed)[0]
        else:
            images = folder_sets(Path(config.data), transform, config.images, 0, config.seed)[0]
        return model.eval(), chains_of(model, config.network), images
    net = config.network.removeprefix("mnist-")
    model = trained(net, config.seed, *(() if trained_here else (0,)))
    chains = sequential_chains(model) if net == "cnn" else block_chains(model)
    return model, chains, split(config.seed)[0][: config.images]


def _setup(config: LayerRates, cache: dict) -> dict:
    """The network, its chains and the resamples, made once per process."""
    if "model" not in cache:
        model, chains, images = network(config)
        cache.update(model=model, chains=chains,
                     subsets=resamples(images, config.resamples, config.seed))  # fmt: skip
    return cache


def units(config: LayerRates) -> list[str]:
    return [f"resample{k}" for k in range(config.resamples)]


def unit(config: LayerRates, key: str, cache: dict) -> dict:
    made, k = _setup(config, cache), int(key.removeprefix("resample"))
    layers = resample_layers(made["model"], made["chains"], made["subsets"][k], config.methods,
                             config.depth, config.batch, config.seed + k,
                             cache.get("jobs", 1), cache.get("cluster"))  # fmt: skip
    return {"layers": layers}


def summary(config: LayerRates, results: dict[str, dict]) -> dict:
    """Per layer (network order): :func:`torchbridge.rates.fit_layer` over the resamples,
    and each selector's median curve over them at n = ``curve_n`` (every step of a curve of
    up to 160, else 160 of them, as a simulation's summary keeps its curves; 4 digits)."""
    runs = [results[key]["layers"] for key in units(config)]
    layers = []
    for chain in runs[0]:
        each = [run[chain] for run in runs]
        row = {"chain": chain} | fit_layer(each, config.fit_from, config.eps_grid,
                                           config.corrective_cap)  # fmt: skip
        for method, found in row["methods"].items():
            curves = [layer["curves"][method] for layer in each]
            steps = min(len(h) for h in curves)
            kept = drawn_points(steps)  # all of a short curve, else 160 even and log-spaced
            found["curve_n"] = (kept + 1).tolist()
            found["median_curve"] = rounded(np.median([h[:steps] for h in curves], axis=0)[kept])
        layers.append(row)
    return {"layers": layers, "eps_grid": list(config.eps_grid)}


def _needed(values: list, steps: int) -> str:
    return " / ".join(f"> {steps}" if n is None else f"{n:.0f}" for n in values)


def markdown(found: dict) -> str:
    """One row per layer and selector: the verdict, c and p with their 95% intervals over the
    resamples, the channels needed at each eps, and statement 4's c for the layer."""
    eps = " / ".join(f"{e:g}" for e in found["eps_grid"])
    lines = [f"| layer | N | affine rank | selector | verdict | c | p | n at {eps} | "
             "statement 4's c |", "|" + " --- |" * 9]  # fmt: skip
    for layer in found["layers"]:
        low, high = min(layer["rank"]), max(layer["rank"])
        ranks = str(low) if low == high else f"{low}-{high}"
        for method, row in layer["methods"].items():
            fitted = (
                [row["verdict"], interval(*row["c"]), interval(*row["p"])]
                if "verdict" in row
                else ["no fit", "", ""]
            )
            cells = [layer["chain"], str(layer["N"]), ranks, method, *fitted,
                     _needed(row["n_eps"], row["steps"]), bound(*layer["c_bound"])]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


EXPERIMENT = Experiment(
    "rates",
    headline(__doc__),
    LayerRates,
    units,
    unit,
    summary,
    markdown,
    figures=plot_rates,
    markdown=markdown,
    figure_stems=FIGURES,
)
