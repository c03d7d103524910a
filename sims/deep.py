"""Deep networks: MLPs pruned layer by layer from the input side, locally, globally, combined.

Each instance draws (or trains) one MLP (:mod:`sims.mlp`), then every method prunes each hidden
layer in turn on the network pruned so far, through the layer problem and output oracle of
:mod:`sims.mlp_layers`.

Selectors: ``greedy-local`` (the layer loss), ``global-imitation`` and ``combined`` (the loss
on the whole network's output against the unpruned network, through an oracle that runs the
rest of the network for a batch of candidates), and baselines.

THEORY.md statement 7: with eps_l the layer loss left at layer l and Lip_l the Lipschitz
constant of the map from z_{l+1} to the output (products of spectral norms of the later weight
matrices and of the activation's Lipschitz constant), the output moves by at most
sum_l Lip_l sqrt(eps_l) in L2(D); every instance records both sides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from sims.activations import ACTIVATIONS
from sims.config import REAL_SIZE, Named, _member, build, network_entries
from sims.data import REAL_DIMS, load_inputs
from sims.instance import Instance
from sims.mlp import random_mlp, train_mlp
from sims.mlp_layers import fold, layer_problem, output_losses, output_oracle
from theory import select
from theory.iterate import replay
from theory.selectors import SELECTORS

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
        _member("activation", self.activation, tuple(ACTIVATIONS))
        _member("inputs", self.inputs, ("digits", "mnist5k"))
        if len(self.widths) < 3 or min(self.widths) < 1:
            raise ValueError(f"widths must list >= 3 positive layer sizes; got {self.widths}")
        ends = (REAL_DIMS[self.inputs], CLASSES)
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


def from_dict(data: dict) -> DeepConfig:
    """A DeepConfig from a plain mapping (as read from TOML or JSON); unknown keys are errors."""
    networks = tuple(
        build(MLPSpec, entry, "MLP family", ("widths",)) for entry in network_entries(data, [])
    )
    rest = {k: v for k, v in data.items() if k != "networks"}
    config = replace(build(DeepConfig, rest, "deep configuration", ("methods",)), networks=networks)
    config.validate()
    return config


def run_deep_instance(config: DeepConfig, instance: Instance) -> tuple[dict, dict]:
    """Prune one MLP of family ``instance.family`` with every method; rows: per layer, method
    and step."""
    spec = config.networks[instance.family]
    rng = np.random.default_rng(instance.seed)
    total = config.train_samples + config.calib_samples + config.test_samples
    x, labels = load_inputs(spec.inputs, total, None, rng)
    parts = np.split(np.arange(total), [config.train_samples, total - config.test_samples])
    (xt, yt), (xc, _), (xs, ys) = ((x[p], labels[p]) for p in parts)
    widths = (x.shape[1], *spec.widths[1:])
    mlp = random_mlp(widths, spec.activation, rng)
    if spec.trained:
        mlp = train_mlp(mlp, xt, yt, config.train_steps, config.lr)
    reference = mlp.output(xc)
    scale = float((reference**2).sum(axis=1).mean())
    rows: dict[str, list] = {
        k: [] for k in ("method", "layer", "n", "layer_loss_rel", "output_rel")
    }
    summary = {}
    for method in config.methods:
        net, layers = mlp, []
        for layer in range(1, len(widths) - 1):
            problem, psi = layer_problem(net, xc, layer)
            oracle = output_oracle(net, psi, layer, reference)
            options = {"oracle": oracle, "candidates": config.candidates}
            trace = select(
                problem, spec.keep, method, seed=instance.seed,
                **(options if SELECTORS[method].needs_oracle else {}),
            )  # fmt: skip
            weights, local_share = replay(problem, trace)
            z = np.tensordot(weights, psi, axes=1)  # (K, m, n_{l+1}) after each step
            per_step = output_losses(net, layer, z, reference)
            sigma2 = float(np.diag(problem.centred).mean())
            sigma2 = sigma2 if sigma2 > 0 else 1.0  # all neurons alike: every loss is 0
            k = len(trace)
            rows["method"] += [method] * k
            rows["layer"] += [layer] * k
            rows["n"] += list(range(1, k + 1))
            rows["layer_loss_rel"] += (trace.losses / sigma2).tolist()
            rows["output_rel"] += (per_step / scale).tolist()
            layers.append(
                {
                    "layer": layer,
                    "kept": int(trace.support.size),
                    "of": problem.n_neurons,
                    "eps": trace.loss,
                    "eps_rel": trace.loss / sigma2,
                    "lipschitz_after": net.lipschitz_after(layer),
                    "local_choice_share": local_share,
                }
            )
            net = fold(net, layer, trace.weights)
        moved = float(np.sqrt(((net.output(xc) - reference) ** 2).sum(axis=1).mean()))
        bound = sum(entry["lipschitz_after"] * np.sqrt(entry["eps"]) for entry in layers)
        summary[method] = {
            "layers": layers,
            "output_rms_change": moved,
            "statement7_bound": bound,
            "output_rms": float(np.sqrt(scale)),
            "test_accuracy": net.accuracy(xs, ys),
            "test_agreement": float((net.output(xs).argmax(1) == mlp.output(xs).argmax(1)).mean()),
        }
    meta = {
        "family": instance.family,
        "seed": instance.seed,
        "network": asdict(spec),
        "test_accuracy_unpruned": mlp.accuracy(xs, ys),
        "methods": summary,
    }
    return rows, meta
