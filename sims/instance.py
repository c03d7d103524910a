"""One instance: build a network and its layer problem from a seed, run every selector on it."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from sims.config import ExperimentConfig, NetworkSpec
from sims.data import load_inputs
from sims.networks import random_two_layer, teacher_targets, train_two_layer
from theory import LayerProblem, select
from theory.geometry import geometry_and_spectrum
from theory.selectors import SELECTORS

TRAIN_LR = 0.05
COLUMNS = ("method", "n", "loss", "loss_rel", "support_size", "kind", "step_size", "gap")


@dataclass(frozen=True)
class Instance:
    """Network family ``family`` (index into config.networks) with seed ``seed``."""

    family: int
    seed: int

    @property
    def key(self) -> str:
        return f"f{self.family:03d}-s{self.seed:06d}"


def instances(config: ExperimentConfig) -> list[Instance]:
    return [
        Instance(f, config.seed + k)
        for f in range(len(config.networks))
        for k in range(config.seeds)
    ]


def build_problem(spec: NetworkSpec, seed: int) -> LayerProblem:
    """The layer problem of a (possibly trained) two-layer network on spec.samples inputs.

    A trained network learns on spec.train_samples other inputs of the same kind (disjoint
    from the calibration samples for real data).
    """
    rng = np.random.default_rng(seed)
    trained = spec.training != "random"
    total = spec.samples + (spec.train_samples if trained else 0)
    x_all, labels_all = load_inputs(spec.inputs, total, spec.dim, rng)
    x = x_all[: spec.samples]
    net = random_two_layer(spec.neurons, x.shape[1], spec.n_outputs, spec.activation, rng)
    if trained:
        xt = x_all[spec.samples :]
        targets = (
            np.eye(10)[labels_all[spec.samples :]]
            if spec.training == "labels"
            else teacher_targets(xt, rng)
        )
        net, _ = train_two_layer(net, xt, targets, spec.train_steps, TRAIN_LR)
    return LayerProblem.from_features(net.features(x))


def run_instance(config: ExperimentConfig, instance: Instance) -> tuple[dict, dict]:
    """(rows, meta): per-step columns over all selectors (COLUMNS -> lists), and the geometry."""
    spec = config.networks[instance.family]
    start = time.perf_counter()
    problem = build_problem(spec, instance.seed)
    geo, eigenvalues = geometry_and_spectrum(problem)
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    timings = {}
    for method in config.methods:
        n = config.steps if SELECTORS[method].repeats else min(config.steps, problem.n_neurons)
        t0 = time.perf_counter()
        trace = select(problem, n, method, seed=instance.seed)
        timings[method] = time.perf_counter() - t0
        k = len(trace)
        rows["method"] += [method] * k
        rows["n"] += list(range(1, k + 1))
        rows["loss"] += trace.losses.tolist()
        rows["loss_rel"] += (trace.losses / geo.sigma2 if geo.sigma2 > 0 else trace.losses).tolist()
        rows["support_size"] += trace.support_sizes.tolist()
        rows["kind"] += list(trace.kinds)
        rows["step_size"] += trace.step_sizes.tolist()
        rows["gap"] += trace.gaps.tolist()
    meta = {
        "family": instance.family,
        "seed": instance.seed,
        "network": asdict(spec),
        "geometry": geo.as_dict(),
        "spectrum": eigenvalues.tolist(),
        "seconds": time.perf_counter() - start,
        "selector_seconds": timings,
    }
    return rows, meta
