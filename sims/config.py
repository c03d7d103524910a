"""Experiment configurations: dataclasses, named presets, TOML/JSON files, a stable hash.

An experiment is a grid of network families (:class:`NetworkSpec`) times seeds; every instance
(one family, one seed: a new network and new data) runs every selector for ``steps`` steps.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from sims.activations import ACTIVATIONS as ACTIVATION_TABLE
from sims.data import REAL_DIMS as REAL_DIM
from theory.selectors import LOCAL_METHODS, SELECTORS

INPUTS = ("gaussian", "sphere", "digits", "mnist5k")
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

    neurons: int = 1000
    dim: int = 3  # input dimension (set by the data for digits and mnist5k)
    samples: int = 100  # m, the calibration samples of the layer problem
    activation: str = "tanh"
    inputs: str = "gaussian"
    training: str = "random"  # random first layer, fit to a teacher, or fit to the labels
    train_steps: int = 300
    train_samples: int = 1000  # training set of a trained network, apart from the m samples
    outputs: int | None = None  # k, outputs per neuron; None: 10 when fit to labels, else 1

    @property
    def n_outputs(self) -> int:
        """k: psi_i(x) is in R^k, so the affine rank can reach k m."""
        if self.outputs is not None:
            return self.outputs
        return 10 if self.training == "labels" else 1

    def validate(self) -> None:
        for name in ("neurons", "dim", "samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)}")
        if self.neurons < 2:
            raise ValueError(f"neurons must be at least 2; got {self.neurons}")
        if self.train_steps < 0 or self.train_samples < 1:
            raise ValueError(
                f"train_steps must be >= 0 and train_samples >= 1; "
                f"got {self.train_steps} and {self.train_samples}"
            )
        if self.outputs is not None and self.outputs < 1:
            raise ValueError(f"outputs must be a positive integer or None; got {self.outputs}")
        needs = {"labels": 10, "teacher": 1}.get(self.training)
        if needs is not None and self.n_outputs != needs:
            raise ValueError(
                f"training={self.training!r} fits {needs} output(s); got outputs={self.outputs}"
            )
        _member("activation", self.activation, ACTIVATIONS)
        _member("inputs", self.inputs, INPUTS)
        _member("training", self.training, TRAINING)
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

    name: str = "custom"
    networks: tuple[NetworkSpec, ...] = (NetworkSpec(),)
    methods: tuple[str, ...] = ("greedy-local", "fixed-step", "random")
    steps: int = field(default=100, metadata={"help": "selector steps per instance (n_max)"})
    seeds: int = field(default=10, metadata={"help": "instances (seeds) per network family"})
    seed: int = field(
        default=0, metadata={"help": "base seed: instance k of a family uses seed + k"}
    )
    fit_window: tuple[int, int] = (2, 100)  # n range of the rate fits
    corrective_cap: float = field(
        default=0.5,
        metadata={"help": "fully-corrective and omp: fit only n < cap * min(m, rank), in (0, 1]"},
    )
    eps_grid: tuple[float, ...] = field(default=(1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-8))

    def validate(self) -> None:
        if not self.networks:
            raise ValueError("networks is empty: an experiment needs at least one network family")
        for spec in self.networks:
            spec.validate()
        for method in self.methods:
            if method not in LOCAL_METHODS:
                valid = ", ".join(LOCAL_METHODS)
                raise ValueError(f"unknown method {method!r} for a layer problem; valid: {valid}")
        if self.steps < 1 or self.seeds < 1:
            raise ValueError(f"steps and seeds must be >= 1; got {self.steps} and {self.seeds}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0; got {self.seed}")
        lo, hi = self.fit_window
        if not 1 <= lo < hi:
            raise ValueError(
                f"fit_window must be (lo, hi) with 1 <= lo < hi; got {self.fit_window}"
            )
        if not 0.0 < self.corrective_cap <= 1.0:
            raise ValueError(f"corrective_cap must be in (0, 1]; got {self.corrective_cap}")
        if not self.eps_grid or not all(0.0 < eps < float("inf") for eps in self.eps_grid):
            raise ValueError(f"eps_grid must list losses > 0; got {self.eps_grid}")


def _member(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


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

    widths: tuple[int, ...] = (64, 96, 96, 96, 10)  # 3 hidden layers: a 4-layer MLP
    activation: str = "relu"
    inputs: str = "digits"
    trained: bool = True
    keep: int = 24  # neurons kept in every hidden layer

    def validate(self) -> None:
        _member("activation", self.activation, ACTIVATIONS)
        _member("inputs", self.inputs, ("digits", "mnist5k"))
        if len(self.widths) < 3 or min(self.widths) < 1:
            raise ValueError(f"widths must list >= 3 positive layer sizes; got {self.widths}")
        ends = (REAL_DIM[self.inputs], CLASSES)
        if (self.widths[0], self.widths[-1]) != ends:
            raise ValueError(
                f"widths must start with the input dimension and end with the classes of "
                f"{self.inputs}, {ends}; got {self.widths}"
            )
        if not 1 <= self.keep <= min(self.widths[1:-1]):
            raise ValueError(f"keep must be in [1, {min(self.widths[1:-1])}]; got {self.keep}")


def _depths(trained: bool) -> tuple[MLPSpec, ...]:
    return tuple(MLPSpec(widths=(64, *[96] * hidden, 10), trained=trained) for hidden in (2, 3, 4))


@dataclass(frozen=True)
class DeepConfig(Named):
    """Families of MLPs (trained on a real data set, or random), every hidden layer pruned."""

    name: str = "deep"
    # 3-, 4- and 5-layer MLPs on digits, trained and random; a 4-layer MLP trained on MNIST-5k.
    networks: tuple[MLPSpec, ...] = (
        *_depths(True),
        *_depths(False),
        MLPSpec(widths=(784, 96, 96, 96, 10), inputs="mnist5k"),
    )
    train_samples: int = 1000
    calib_samples: int = 300
    test_samples: int = 497
    train_steps: int = 400
    lr: float = 0.01
    methods: tuple[str, ...] = DEEP_METHODS
    candidates: int = 50
    seeds: int = 10
    seed: int = 0

    def validate(self) -> None:
        if not self.networks:
            raise ValueError("networks is empty: an experiment needs at least one MLP family")
        for spec in self.networks:
            spec.validate()
        for method in self.methods:
            _member("method", method, tuple(SELECTORS))
        if self.seeds < 1 or self.train_steps < 0 or min(self.calib_samples, self.test_samples) < 1:
            raise ValueError("seeds, calib_samples and test_samples must be >= 1, train_steps >= 0")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0; got {self.seed}")
        if self.candidates < 1 or not self.lr > 0:
            raise ValueError(
                f"candidates must be >= 1 and lr > 0; got {self.candidates}, {self.lr}"
            )
        total = self.train_samples + self.calib_samples + self.test_samples
        for spec in self.networks:
            if total > REAL_SIZE[spec.inputs]:
                raise ValueError(
                    f"{spec.inputs} has {REAL_SIZE[spec.inputs]} images; train_samples + "
                    f"calib_samples + test_samples = {total}"
                )


def deep_from_dict(data: dict) -> DeepConfig:
    """A DeepConfig from a plain mapping (as read from TOML or JSON); unknown keys are errors."""
    networks = tuple(
        build(MLPSpec, entry, "MLP family", ("widths",)) for entry in network_entries(data, [])
    )
    rest = {k: v for k, v in data.items() if k != "networks"}
    config = replace(build(DeepConfig, rest, "deep configuration", ("methods",)), networks=networks)
    config.validate()
    return config


def preset(name: str) -> Any:
    """A named configuration: one of PRESETS, or ``deep`` (a :class:`DeepConfig`)."""
    if name == "deep":
        return DeepConfig()
    try:
        return PRESETS[name]
    except KeyError:
        names = ", ".join([*PRESETS, "deep"])
        raise ValueError(f"unknown preset {name!r}; valid presets: {names}") from None


KINDS = {"int": (int, "an integer"), "float": (int | float, "a number"), "str": (str, "a string"),
         "bool": (bool, "true or false")}  # fmt: skip


def _is(value: Any, kind: str) -> bool:
    """Whether ``value`` (from TOML or JSON) is of the annotation ``kind`` (a bool is no number)."""
    return isinstance(value, KINDS[kind][0]) and (kind == "bool") == isinstance(value, bool)


def build(cls: type, data: dict[str, Any], what: str, tuples: tuple[str, ...] = ()) -> Any:
    """``cls(**data)`` for a dataclass, naming unknown keys and values of the wrong type (by
    the fields' annotations: int, float, str, bool, X | None, tuple[X, ...], tuple[X, X]);
    the ``tuples`` keys become tuples."""
    if not isinstance(data, dict):
        raise ValueError(f"a {what} must be a table of keys; got {data!r}")
    annotations = {f.name: f.type for f in fields(cls)}
    unknown = sorted(set(data) - set(annotations))
    if unknown:
        valid = ", ".join(sorted(annotations))
        raise ValueError(f"unknown {what} key(s) {', '.join(unknown)}; valid: {valid}")
    for key, value in data.items():
        kind, *rest = annotations[key].split(" | ")
        if rest == ["None"] and value is None:
            continue
        if kind in KINDS and not _is(value, kind):
            raise ValueError(f"{what} key {key} must be {KINDS[kind][1]}; got {value!r}")
        if key in tuples:
            items = kind.removeprefix("tuple[").removesuffix("]").split(", ")
            size = None if items[-1] == "..." else len(items)
            if (
                not isinstance(value, list | tuple)
                or (size is not None and len(value) != size)
                or not all(_is(v, items[0]) for v in value)
            ):
                count = "a list" if size is None else f"a list of {size}"
                raise ValueError(
                    f"{what} key {key} must be {count} of {items[0]} values; got {value!r}"
                )
    return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


def network_entries(data: dict[str, Any], default: list) -> list:
    """The ``networks`` list of a configuration mapping: tables, one per family."""
    entries = data.get("networks", default)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"networks must be a list of tables, one per family; got {entries!r}")
    return entries


def from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """Configuration from a plain mapping (as read from TOML or JSON); unknown keys are errors."""
    networks = tuple(build(NetworkSpec, entry, "network") for entry in network_entries(data, [{}]))
    rest = {k: v for k, v in data.items() if k != "networks"}
    config = build(ExperimentConfig, rest, "configuration", ("methods", "fit_window", "eps_grid"))
    config = replace(config, networks=networks)
    config.validate()
    return config


def load(path: Path) -> Any:
    """Read a configuration from a .toml or .json file: an ExperimentConfig, or a DeepConfig
    when its network families are MLPs (they have ``widths``)."""
    if not path.is_file():
        raise ValueError(f"configuration file not found: {path}")
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"configuration must be a .toml or .json file; got {path.name}")
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:  # TOMLDecodeError, JSONDecodeError
        raise ValueError(f"{path} cannot be parsed: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a table of keys; got {type(data).__name__}")
    if is_deep(data):
        return deep_from_dict(data)
    return from_dict(data)


def is_deep(data: dict[str, Any]) -> bool:
    """Whether a configuration mapping describes MLPs: families with ``widths`` (or, in run
    folders of older versions, ``widths`` at the top level)."""
    entries = data.get("networks", [])
    families = entries if isinstance(entries, list | tuple) else ()
    return "widths" in data or any(isinstance(e, dict) and "widths" in e for e in families)


def dumps(config: Any, fmt: str = "toml") -> str:
    """The configuration as TOML or JSON text that :func:`load` reads back to an equal one
    (TOML has no null: fields that are None are left out, and read back as their default)."""
    data = config.as_dict()
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt != "toml":
        raise ValueError(f"format must be toml or json; got {fmt!r}")
    return tomli_w.dumps(drop_none(data))
