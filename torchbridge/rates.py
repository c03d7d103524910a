"""The paper's rates on a real network's layers: for every chain, its layer problem from the
activations of the unpruned network, the selectors run on it, and the decay fitted.

The question is the one :mod:`sims` asks of generated networks: does greedy-local's layer
error h_n = L(a_n) / sigma^2 decay like exp(-c n) in the kept channels n, against n^-2 for the
fixed step and n^-1 for random sampling? The intervals come from R disjoint subsets of the
calibration images (:func:`resamples`): each gives every layer its own problem and so its own
curve, and :func:`sims.fit.fit_rates` fits each curve and takes the t interval over them, as
it does over the seeds of a simulation. Beside the fits, each layer's geometry (N, the affine
rank of its channels' outputs, D, the bracket of r, sigma^2, the dimension of the space psi
lives in) and statement 4's guaranteed rate -log(1 - r^2/D^2) (:func:`theory.bounds.linear_rate`);
and per resample the spectrum and geometry features and the decades bought by n = AT channels
that :mod:`sims.spectrum` fits on generated networks, so that each side predicts the other.

:func:`resample_layers` is one resample (one pass of its images through the network);
:func:`fit_layer` fits one layer over the resamples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from sims.fit import corrective_cap, fit_rates, n_eps_curve
from sims.report import CORRECTIVE
from sims.runner import unordered_map
from sims.spectrum import decades, geometry_features, summarise
from theory.bounds import linear_rate
from theory.geometry import geometry_and_spectrum
from theory.problem import LayerProblem
from theory.selectors import SELECTORS, select
from torchbridge.chains import Chain
from torchbridge.prune import layer_problems

# Selectors whose loss becomes exactly 0 at a known n, beyond which a fit would read the cliff
# as a huge rate: they are fitted below cap_fraction times it. The corrective ones
# (sims.report.CORRECTIVE) are exact once they hold the affine rank's channels; the ones with
# uniform weights over their picks are the layer itself once they have picked all N once.
UNIFORM = ("fixed-step", "magnitude")
MARGINS = ("margin", "margin_upper")  # r's lower and upper bounds (equal where r is exact)
AT = 50  # the n of the decades target, as in the simulations' summaries (sims.summary.EXPLAINED)


def resamples(images: torch.Tensor, count: int, seed: int) -> list[torch.Tensor]:
    """``count`` disjoint subsets of ``images`` (M, ...), of M // count images each, drawn by
    a permutation seeded by ``seed``."""
    if count < 2:
        raise ValueError(f"resamples must be >= 2 (an interval needs two curves), got {count}")
    if len(images) < count:
        raise ValueError(
            f"{len(images)} calibration images cannot make {count} disjoint resamples: give "
            f"at least {count} images, or fewer resamples"
        )
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(images)))
    size = len(images) // count
    return [images[order[k * size : (k + 1) * size]] for k in range(count)]


def layer_curves(
    problem: LayerProblem, methods: Sequence[str], depth: int | None, seed: int
) -> dict:
    """One layer problem's geometry and each selector's curve h_n = L(a_n) / sigma^2, n = 1,
    2, ... up to ``depth`` steps (None: the layer's width N; a selector that cannot repeat a
    channel stops at N), and the summaries of its spectrum (:func:`sims.spectrum.summarise`)."""
    geo, eigenvalues = geometry_and_spectrum(problem)
    steps = depth or problem.n_neurons
    scale = geo.sigma2 if geo.sigma2 > 0 else 1.0  # all channels alike: every loss is 0
    curves = {}
    for method in methods:
        n = steps if SELECTORS[method].repeats else min(steps, problem.n_neurons)
        curves[method] = (select(problem, n, method, seed=seed).losses / scale).tolist()
    spectrum = summarise(eigenvalues) if eigenvalues.size else {}
    return {"geometry": geo.as_dict(), "spectrum": spectrum, "curves": curves}


def psi_dimensions(model: nn.Module, chains: Sequence[Chain], image: torch.Tensor) -> list[int]:
    """Per chain, the size of its consumer's output for one image (C_out x H x W of a
    convolution): psi_i lives in that space times the images, as a generated layer's in
    samples x outputs."""
    sizes: list[int] = []
    hooks = [model.get_submodule(chain.consumer).register_forward_hook(
        lambda _, __, out: sizes.append(out[0].numel())) for chain in chains]  # fmt: skip
    try:
        with torch.no_grad():
            model(image[None])
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


def _layer_job(job: tuple) -> tuple[int, dict]:
    index, problem, methods, depth, seed = job
    return index, layer_curves(problem, methods, depth, seed)


def resample_layers(
    model: nn.Module,
    chains: Sequence[Chain],
    images: torch.Tensor,
    methods: Sequence[str],
    depth: int | None,
    batch: int,
    seed: int,
    jobs: int = 1,
    cluster: str | None = None,
) -> dict[str, dict]:
    """{producer: :func:`layer_curves`} of every chain, on one resample's ``images`` (one
    pass through the unpruned network); the layers' selectors and geometry in ``jobs``
    processes or on a cluster (:func:`sims.runner.unordered_map`: the same results), each
    with ``psi_dim``, the dimension of the space its psi lives in (:func:`psi_dimensions` times
    the images)."""
    problems = layer_problems(model, list(chains), images.split(batch))
    work = [(k, problem, tuple(methods), depth, seed) for k, problem in enumerate(problems)]
    with unordered_map(jobs, cluster) as each_done:
        found = dict(each_done(_layer_job, work))
    sizes = psi_dimensions(model, chains, images[0])
    return {chain.producer: found[k] | {"psi_dim": sizes[k] * len(images)}
            for k, chain in enumerate(chains)}  # fmt: skip


def _number(value: float) -> float | None:
    """A float for JSON: None where it is not finite (never reached, not searched)."""
    return float(value) if np.isfinite(value) else None


def _statement4(layers: Sequence[dict], margin: str) -> float:
    """The median over resamples of -log(1 - r^2/D^2), r the geometry's ``margin``."""
    return float(np.median([linear_rate(g["diameter"], g[margin]) for g in
                            (layer["geometry"] for layer in layers)]))  # fmt: skip


def _instance(layer: dict) -> dict:
    """One resample's features and target, as :func:`sims.spectrum.instance_table`'s rows."""
    h = layer["curves"].get("greedy-local", [])
    features = layer["spectrum"] | geometry_features(layer["geometry"])
    return {k: _number(v) for k, v in features.items()} | {
        "decades": decades(h[0], h[AT - 1]) if len(h) >= AT else None
    }


def fit_layer(
    layers: Sequence[dict], fit_from: int, eps_grid: Sequence[float], cap_fraction: float
) -> dict:
    """One layer over the resamples (each its :func:`layer_curves`): the geometry's medians,
    statement 4's rate (with r's lower and upper bounds), and per selector the fitted c and p
    with their 95% intervals over the resamples, the held-out verdict (exponential, power,
    unresolved) and the median n_eps at each eps of ``eps_grid``; a selector whose curves
    cannot be fitted gets the reason instead. The corrective selectors are fitted below
    ``cap_fraction`` times the affine rank, those with uniform weights below that of N.
    ``instances``: per resample, the spectrum and geometry features of
    :mod:`sims.spectrum` and greedy-local's decades at n = AT (None where it ran fewer
    steps)."""
    geometry = [layer["geometry"] for layer in layers]
    rank = min(g["rank"] for g in geometry)
    out = {
        "N": geometry[0]["n_neurons"],
        "rank": [g["rank"] for g in geometry],
        "diameter": float(np.median([g["diameter"] for g in geometry])),
        "sigma2": float(np.median([g["sigma2"] for g in geometry])),
        "margin": [_number(np.median([g[m] for g in geometry])) for m in MARGINS],
        "c_bound": [_number(_statement4(layers, m)) for m in MARGINS],
        "psi_dim": layers[0]["psi_dim"],
        "instances": [_instance(layer) for layer in layers],
        "methods": {},
    }
    for method in layers[0]["curves"]:
        pairs = [
            (np.arange(1, len(h) + 1), np.asarray(h))
            for h in (layer["curves"][method] for layer in layers)
        ]
        steps = min(len(h) for _, h in pairs)
        limit = rank if method in CORRECTIVE else out["N"] if method in UNIFORM else None
        cap = None if limit is None else corrective_cap(limit, cap_fraction)
        needed = n_eps_curve(pairs, np.asarray(eps_grid))[1]
        row: dict = {"steps": steps, "cap": cap, "n_eps": [_number(n) for n in needed]}
        try:
            fit = fit_rates(pairs, (fit_from, steps), cap=cap)
        except ValueError as error:
            out["methods"][method] = row | {"error": str(error)}
            continue
        out["methods"][method] = row | {
            "verdict": fit.verdict,
            "c": [fit.c_mean, list(fit.c_ci)],
            "p": [fit.p_mean, list(fit.p_ci)],
            "log_ratio": [fit.log_ratio_mean, list(fit.log_ratio_ci)],
        }
    return out
