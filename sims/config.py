"""Experiment configurations: dataclasses, named presets, TOML/JSON files, a stable hash.

An experiment is a grid of network families (:class:`NetworkSpec`) times seeds; every instance
(one family, one seed: a new network and new data) runs every selector for ``steps`` steps.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import StringConstraints

from sims.activations import ACTIVATIONS as ACTIVATION_TABLE
from sims.data import REAL_DIMS as REAL_DIM
from sims.schema import STRICT, about, check, check_fields, read_mapping
from theory.selectors import LOCAL_METHODS, SELECTORS

INPUTS = ("gaussian", "sphere", "digits", "mnist5k")
REAL_INPUTS = tuple(REAL_DIM)  # the data sets of the MLPs
SELECTOR_NAMES = tuple(SELECTORS)
ACTIVATIONS = tuple(ACTIVATION_TABLE)  # the names of sims.activations' table
TRAINING = ("random", "teacher", "labels")
REAL_SIZE = {"digits": 1797, "mnist5k": 5000}


def drop_none(value: Any) -> Any:
    """``value`` with every None-valued dict entry removed, recursively (lists kept)."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [drop_none(v) for v in value]
    return value


# A run's name: part of its folder's name and of its figures' folder, never a path.
RunName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
    about("the run's name: its folder is NAME-HASH (letters, digits, '.', '_', '-')"),
]


class Named:
    """What a run needs of a configuration dataclass with a ``name``: a dict, a hash, a folder."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        """First 10 hex digits of the SHA-256 of the canonical JSON of this configuration,
        fields that are None left out (a field added later with a None default leaves the
        names of earlier run folders unchanged, so they still resume)."""
        text = json.dumps(drop_none(self.as_dict()), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def run_name(self) -> str:
        return f"{self.name}-{self.digest()}"


@dataclass(frozen=True)
class NetworkSpec:
    """One family of two-layer networks: psi_i(x) = c_i act(w_i . x + b_i) over m inputs."""

    __pydantic_config__ = STRICT

    neurons: Annotated[int, Ge(2), about("N, the neurons of the layer")] = 1000
    dim: Annotated[
        int, Ge(1), about("input dimension (digits: 64, mnist5k: 784, fixed by the data)")
    ] = 3
    samples: Annotated[int, Ge(1), about("m, the calibration samples of the layer problem")] = 100
    activation: Annotated[Literal[ACTIVATIONS], about("the activation of the layer")] = "tanh"
    inputs: Annotated[Literal[INPUTS], about("the input data")] = "gaussian"
    training: Annotated[
        Literal[TRAINING],
        about("the first layer: random, fit to a teacher function, or fit to the labels"),
    ] = "random"
    train_steps: Annotated[int, Ge(0), about("training steps of a trained first layer")] = 300
    train_samples: Annotated[
        int, Ge(1), about("training set of a trained network, apart from the m samples")
    ] = 1000
    outputs: Annotated[
        int | None, Ge(1), about("k, outputs per neuron; none: 10 when fit to labels, else 1")
    ] = None

    @property
    def n_outputs(self) -> int:
        """k: psi_i(x) is in R^k, so the affine rank can reach k m."""
        if self.outputs is not None:
            return self.outputs
        return 10 if self.training == "labels" else 1

    def validate(self) -> None:
        check_fields(self, "network")
        needs = {"labels": 10, "teacher": 1}.get(self.training)
        if needs is not None and self.n_outputs != needs:
            raise ValueError(
                f"training={self.training!r} fits {needs} output(s); got outputs={self.outputs}"
            )
        if self.training == "labels" and self.inputs not in REAL_DIM:
            raise ValueError(
                f"training='labels' needs real data (digits, mnist5k), not {self.inputs}"
            )
        needed = self.samples + (self.train_samples if self.training != "random" else 0)
        if self.inputs in REAL_SIZE and needed > REAL_SIZE[self.inputs]:
            raise ValueError(
                f"{self.inputs} has {REAL_SIZE[self.inputs]} images; samples + train_samples "
                f"= {needed}"
            )
        if self.inputs in REAL_DIM and self.dim != REAL_DIM[self.inputs]:
            fixed = REAL_DIM[self.inputs]
            raise ValueError(
                f"{self.inputs} fixes the input dimension to {fixed}; got dim={self.dim}"
            )

    @property
    def label(self) -> str:
        """A short readable name, e.g. ``tanh/gaussian/random N=1000 d=3 m=100``."""
        k = f" k={self.n_outputs}" if self.n_outputs != 1 else ""
        return (
            f"{self.activation}/{self.inputs}/{self.training} "
            f"N={self.neurons} d={self.dim} m={self.samples}{k}"
        )


@dataclass(frozen=True)
class ExperimentConfig(Named):
    """A grid of network families, the selectors to run on each, and the fitting window."""

    __pydantic_config__ = STRICT

    name: RunName = "custom"
    networks: Annotated[
        tuple[NetworkSpec, ...],
        MinLen(1),
        about("the network families, one [[networks]] table each"),
    ] = (NetworkSpec(),)
    methods: Annotated[
        tuple[Literal[LOCAL_METHODS], ...], MinLen(1), about("the selectors run on every instance")
    ] = ("greedy-local", "fixed-step", "random")
    steps: Annotated[int, Ge(1), about("selector steps per instance (n_max)")] = 100
    seeds: Annotated[int, Ge(1), about("instances (seeds) per family")] = 10
    seed: Annotated[int, Ge(0), about("base seed: instance k of a family uses seed + k")] = 0
    fit_window: Annotated[
        tuple[Annotated[int, Ge(1)], Annotated[int, Ge(1)]],
        about("the n range (lo, hi) of the rate fits, 1 <= lo < hi"),
    ] = (2, 100)
    corrective_cap: Annotated[
        float,
        Gt(0),
        Le(1),
        about("fully-corrective and omp: fit only n < cap * min(m, rank)"),
    ] = 0.5
    eps_grid: Annotated[
        tuple[Annotated[float, Gt(0), Lt(float("inf"))], ...],
        MinLen(1),
        about("the losses / sigma^2 at which the neurons needed are read"),
    ] = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-8)

    def validate(self) -> None:
        check_fields(self)
        for spec in self.networks:
            spec.validate()
        lo, hi = self.fit_window
        if not lo < hi:
            raise ValueError(f"fit_window must be (lo, hi) with lo < hi; got {self.fit_window}")


def grid(base: NetworkSpec, **axes: list[Any]) -> tuple[NetworkSpec, ...]:
    """Every combination of the given NetworkSpec fields over ``base``, in order."""
    names = list(axes)
    return tuple(
        replace(base, **dict(zip(names, values, strict=True)))
        for values in itertools.product(*(axes[n] for n in names))
    )


RATES_BASE = NetworkSpec(neurons=4000, dim=10, samples=50, activation="relu")

PRESETS: dict[str, ExperimentConfig] = {
    # The README's main job: well under a minute on 2 cores. Few samples (a polytope of low
    # affine dimension, margin exact) against more samples (thin directions, bound only).
    "quick": ExperimentConfig(
        name="quick",
        networks=grid(NetworkSpec(neurons=1000, dim=3), samples=[4, 20, 400], activation=["tanh"]),
        methods=("greedy-local", "frank-wolfe", "fixed-step", "fully-corrective", "omp", "random"),
        steps=80,
        seeds=10,
        fit_window=(2, 80),
    ),
    # The paper's headline comparison on two-layer networks, every selector, many seeds.
    "paper": ExperimentConfig(
        name="paper",
        networks=grid(
            NetworkSpec(neurons=2000, dim=10, samples=50),
            activation=["relu", "tanh", "gelu"],
        ),
        methods=LOCAL_METHODS,
        steps=150,
        seeds=20,
        fit_window=(2, 150),
    ),
    # Where exp(-cn) holds and where it fades: N against m, input dimension, activation.
    # Chosen to break the claim (m >= N, d = 1, relu) as well as to show it (N >> m).
    "regimes": ExperimentConfig(
        name="regimes",
        networks=grid(
            NetworkSpec(),
            activation=["relu", "tanh"],
            dim=[1, 10],
            neurons=[100, 1000, 4000],
            samples=[5, 50, 500],
        ),
        methods=("greedy-local", "fixed-step", "fully-corrective", "random"),
        steps=100,
        seeds=10,
        fit_window=(2, 100),
    ),
    # The asymptotic rate c (n up to 3,000, fits on n in [300, 3000]) and what it depends on:
    # one factor at a time around a base family (relu, Gaussian inputs, random first layer,
    # N = 4,000, d = 10, m = 50): N, input dimension, samples, activation, inputs, training.
    "rates": ExperimentConfig(
        name="rates",
        networks=(
            RATES_BASE,
            *(replace(RATES_BASE, neurons=n) for n in (500, 1000, 10_000)),
            *(replace(RATES_BASE, dim=d) for d in (1, 3, 100)),
            *(replace(RATES_BASE, samples=m) for m in (20, 100, 500)),
            *(replace(RATES_BASE, activation=a) for a in ("tanh", "gelu")),
            replace(RATES_BASE, inputs="sphere"),
            replace(RATES_BASE, training="teacher"),
            *(replace(RATES_BASE, inputs=k, dim=REAL_DIM[k]) for k in ("digits", "mnist5k")),
            # fit to the labels: 10 outputs, so against random layers with 10 outputs too
            *(
                replace(RATES_BASE, inputs=k, dim=REAL_DIM[k], training=t, outputs=10)
                for k in ("digits", "mnist5k")
                for t in ("random", "labels")
            ),
        ),
        methods=("greedy-local", "frank-wolfe", "fixed-step", "away", "pairwise", "random"),
        steps=3000,
        seeds=10,
        fit_window=(300, 3000),
        eps_grid=(1e-4, 1e-6, 1e-8, 1e-10),
    ),
    # Where does the exponential regime start? m from 10 to 200 at N = 4,000, n up to 3,000.
    "onset": ExperimentConfig(
        name="onset",
        networks=grid(
            NetworkSpec(neurons=4000, dim=10, activation="tanh"), samples=[10, 20, 50, 100, 200]
        ),
        methods=("greedy-local",),
        steps=3000,
        seeds=10,
        fit_window=(300, 3000),
        eps_grid=(1e-4, 1e-6, 1e-8, 1e-10),
    ),
    # The largest sizes the toolkit targets: N = 10,000 neurons, m = 5,000 samples (all of
    # MNIST-5k, 784 input dimensions). About 1 GiB per instance for the centred Gram matrix.
    "large": ExperimentConfig(
        name="large",
        networks=(
            NetworkSpec(neurons=10_000, dim=784, samples=5000, activation="relu", inputs="mnist5k"),
            NetworkSpec(neurons=10_000, dim=10, samples=5000, activation="tanh"),
        ),
        methods=("greedy-local", "fixed-step", "fully-corrective", "random"),
        steps=200,
        seeds=10,
        fit_window=(2, 200),
    ),
    # Trained against random first layers: a teacher function (1 output), and the labels of
    # real data (10 outputs, against random layers with 10 outputs: the same affine rank).
    "trained": ExperimentConfig(
        name="trained",
        networks=(
            NetworkSpec(neurons=1000, dim=10, samples=200, activation="tanh"),
            NetworkSpec(neurons=1000, dim=10, samples=200, activation="tanh", training="teacher"),
            *(
                NetworkSpec(
                    neurons=1000,
                    dim=REAL_DIM[k],
                    samples=200,
                    activation="relu",
                    inputs=k,
                    training=t,
                    outputs=10,
                    train_steps=300 if k == "digits" else 150,
                )
                for k in ("digits", "mnist5k")
                for t in ("random", "labels")
            ),
        ),
        methods=("greedy-local", "fixed-step", "fully-corrective", "omp", "random"),
        steps=100,
        seeds=10,
        fit_window=(2, 100),
    ),
}


CLASSES = 10  # digits and MNIST-5k
DEEP_METHODS = ("greedy-local", "global-imitation", "combined", "fixed-step", "random")


@dataclass(frozen=True)
class MLPSpec:
    """One family of MLPs: layer widths (the data's dimension first, its 10 classes last),
    trained or random."""

    __pydantic_config__ = STRICT

    widths: Annotated[
        tuple[Annotated[int, Ge(1)], ...],
        MinLen(3),
        about("layer widths, the data's dimension first and its 10 classes last"),
    ] = (64, 96, 96, 96, 10)  # 3 hidden layers: a 4-layer MLP
    activation: Annotated[Literal[ACTIVATIONS], about("the activation of every layer")] = "relu"
    inputs: Annotated[Literal[REAL_INPUTS], about("the data set")] = "digits"
    trained: Annotated[bool, about("trained on the labels (else random)")] = True
    keep: Annotated[int, Ge(1), about("neurons kept in every hidden layer")] = 24

    def validate(self) -> None:
        check_fields(self, "MLP family")
        ends = (REAL_DIM[self.inputs], CLASSES)
        if (self.widths[0], self.widths[-1]) != ends:
            raise ValueError(
                f"widths must start with the input dimension and end with the classes of "
                f"{self.inputs}, {ends}; got {self.widths}"
            )
        if self.keep > min(self.widths[1:-1]):
            raise ValueError(f"keep must be in [1, {min(self.widths[1:-1])}]; got {self.keep}")


def _depths(trained: bool) -> tuple[MLPSpec, ...]:
    return tuple(MLPSpec(widths=(64, *[96] * hidden, 10), trained=trained) for hidden in (2, 3, 4))


@dataclass(frozen=True)
class DeepConfig(Named):
    """Families of MLPs (trained on a real data set, or random), every hidden layer pruned."""

    __pydantic_config__ = STRICT

    name: RunName = "deep"
    # 3-, 4- and 5-layer MLPs on digits, trained and random; a 4-layer MLP trained on MNIST-5k.
    networks: Annotated[
        tuple[MLPSpec, ...], MinLen(1), about("the MLP families, one [[networks]] table each")
    ] = (
        *_depths(True),
        *_depths(False),
        MLPSpec(widths=(784, 96, 96, 96, 10), inputs="mnist5k"),
    )
    train_samples: Annotated[int, Ge(1), about("training images of a trained MLP")] = 1000
    calib_samples: Annotated[int, Ge(1), about("calibration images of every layer problem")] = 300
    test_samples: Annotated[int, Ge(1), about("held-out images of the output error")] = 497
    train_steps: Annotated[int, Ge(0), about("Adam steps of a trained MLP")] = 400
    lr: Annotated[float, Gt(0), about("Adam's learning rate")] = 0.01
    methods: Annotated[
        tuple[Literal[SELECTOR_NAMES], ...], MinLen(1), about("the selectors run on every instance")
    ] = DEEP_METHODS
    candidates: Annotated[int, Ge(1), about("global selectors: candidates scored per step")] = 50
    seeds: Annotated[int, Ge(1), about("instances (seeds) per family")] = 10
    seed: Annotated[int, Ge(0), about("base seed: instance k of a family uses seed + k")] = 0

    def validate(self) -> None:
        check_fields(self, "deep configuration")
        for spec in self.networks:
            spec.validate()
        total = self.train_samples + self.calib_samples + self.test_samples
        for spec in self.networks:
            if total > REAL_SIZE[spec.inputs]:
                raise ValueError(
                    f"{spec.inputs} has {REAL_SIZE[spec.inputs]} images; train_samples + "
                    f"calib_samples + test_samples = {total}"
                )


def preset(name: str) -> Any:
    """A named configuration: one of PRESETS, or ``deep`` (a :class:`DeepConfig`)."""
    if name == "deep":
        return DeepConfig()
    try:
        return PRESETS[name]
    except KeyError:
        names = ", ".join([*PRESETS, "deep"])
        raise ValueError(f"unknown preset {name!r}; valid presets: {names}") from None


def from_dict(data: dict[str, Any], where: str = "configuration") -> Any:
    """A configuration from a plain mapping (as read from TOML or JSON): a DeepConfig when its
    families are MLPs (they have ``widths``), else an ExperimentConfig; checked against the
    declaration, then by the configuration's own cross-field rules, errors naming ``where``."""
    cls = DeepConfig if isinstance(data, dict) and is_deep(data) else ExperimentConfig
    config = check(cls, data, where)
    try:
        config.validate()
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    return config


def load(path: Path) -> Any:
    """Read a configuration from a .toml or .json file: an ExperimentConfig, or a DeepConfig
    when its network families are MLPs (they have ``widths``)."""
    data = read_mapping(path)
    return from_dict(data, str(path))


def is_deep(data: dict[str, Any]) -> bool:
    """Whether a configuration mapping describes MLPs: families with ``widths`` (or, in run
    folders of older versions, ``widths`` at the top level)."""
    entries = data.get("networks", [])
    families = entries if isinstance(entries, list | tuple) else ()
    return "widths" in data or any(isinstance(e, dict) and "widths" in e for e in families)


def dumps(config: Any, fmt: str = "toml") -> str:
    """The configuration as TOML or JSON text that :func:`load` reads back to an equal one
    (TOML has no null: fields that are None are left out, and read back as their default)."""
    data = asdict(config)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt != "toml":
        raise ValueError(f"format must be toml or json; got {fmt!r}")
    return tomli_w.dumps(drop_none(data))
