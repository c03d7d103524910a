"""Deep networks: MLPs pruned layer by layer from the input side, locally, globally, combined.

Each instance draws (or trains) one MLP (:mod:`sims.mlp`), then every method prunes each hidden
layer in turn on the network pruned so far, through the layer problem and output oracle of
:mod:`sims.mlp_layers`.

Selectors: ``greedy-local`` (the layer loss), ``global-imitation`` and ``combined`` (the loss
on the whole network's output against the unpruned network, through an oracle that runs the
rest of the network for a batch of candidates), and baselines.

docs/theory.md statement 7: with eps_l the layer loss left at layer l and Lip_l the Lipschitz
constant of the map from z_{l+1} to the output (products of spectral norms of the later weight
matrices and of the activation's Lipschitz constant), the output moves by at most
sum_l Lip_l sqrt(eps_l) in L2(D); every instance records both sides.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from sims.config import DeepConfig
from sims.data import load_inputs
from sims.instance import Instance
from sims.mlp import random_mlp, train_mlp
from sims.mlp_layers import fold, layer_problem, output_losses, output_oracle
from theory import select
from theory.iterate import replay
from theory.selectors import SELECTORS


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
