"""One chain, many selectors: the network's output loss along each selector's path.

The chain is pruned alone (every other chain whole), so the output loss on the oracle's
images is exactly what the global selectors minimise step by step. Each selector runs on the
chain's layer problem (its Gram matrix on the calibration batches) to a width of k channels;
its weights after every step are replayed (:func:`theory.iterate.replay`: vertex and forward
steps) and the output loss of the network with those weights (:class:`GlobalLoss.losses`,
gates on the consumer's input) is read every ``every`` steps and at the end. This separates
the choices of one chain from how the chains combine, and shows at which width a rule that
scores steps by the output falls behind one that scores them by the layer loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sims.plots import plt, save_figure
from theory import select
from theory.iterate import replay
from theory.selectors import spec
from theory.selectors.fully_corrective import resolved
from torchbridge.chains import Chain
from torchbridge.oracle import global_loss
from torchbridge.prune import MAX_REPEATS, first_images, layer_problems, may_repeat, scored_by


def output_paths(
    model: nn.Module,
    chain: Chain,
    batches: list[torch.Tensor],
    methods: tuple[str, ...],
    keep: float,
    *,
    oracle_images: int = 8,
    objective: str = "kl",
    candidates: int | None = None,
    repeats: bool = True,
    every: int = 1,
    seed: int = 0,
    progress: bool = False,
    finished: Callable[[str, dict], None] | None = None,
) -> dict[str, dict]:
    """Per method, along its path to k = round(keep N) channels of ``chain``: the step index,
    the channels kept, the layer's relative error (loss over E ||F||^2) and the output loss
    on the first ``oracle_images`` calibration images, every ``every`` steps and at the end;
    with the share of steps that took greedy-local's choice, the seconds of the selector, and
    (prefix ``refit_``) the channels kept, layer error and output loss once the weights on
    the final support are re-solved for the least layer loss (the simplex QP of
    fully-corrective): how much of a path's result is its choice of channels, how much the
    weights its steps gave them.
    ``repeats=False`` goes to every method that takes it; ``candidates`` to the global ones.
    ``finished(method, path)`` is called as each method's path is done (to save it)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be a fraction in (0, 1]; got {keep}")
    if every < 1 or oracle_images < 1:
        raise ValueError("every and oracle_images must be >= 1")
    problem = layer_problems(model, [chain], batches)[0]
    seen = first_images(batches, oracle_images)
    with torch.no_grad():
        references = [model(batch) for batch in seen]
    loss = global_loss(model, chain.consumer, seen, references, objective)
    k = max(1, round(keep * problem.n_neurons))
    paths = {}
    for method in tqdm(methods, desc=f"paths of {chain.producer}", disable=not progress):
        chosen = spec(method)
        options: dict = {}
        if chosen.needs_oracle:
            options |= scored_by(method, loss) | ({"candidates": candidates} if candidates else {})
        if not repeats and "repeats" in chosen.options:
            options["repeats"] = False
        repeated = may_repeat(method, options)
        steps = MAX_REPEATS * k if repeated else k
        start = time.perf_counter()
        trace = select(problem, steps, method, seed=seed, size=k, **options)
        seconds = time.perf_counter() - start
        weights, local_share = replay(problem, trace, repeated)
        at = np.unique(np.r_[np.arange(every - 1, len(trace), every), len(trace) - 1])
        refit = resolved(problem, trace.weights)
        paths[method] = {
            "step": (at + 1).tolist(),
            "kept": trace.support_sizes[at].tolist(),
            "layer_rel": (trace.losses[at] / problem.target_norm2).tolist(),
            "output": loss.losses(weights[at]).tolist(),
            "local_share": local_share,
            "refit_kept": int(np.count_nonzero(refit)),
            "refit_layer_rel": problem.loss(refit) / problem.target_norm2,
            "refit_output": float(loss.losses(refit[None])[0]),
            "seconds": seconds,
        }
        if finished is not None:
            finished(method, paths[method])
    return paths


def plot_paths(paths: dict[str, dict], title: str, out: Path, stem: str) -> list[Path]:
    """Output loss and layer relative error against channels kept, one line per path
    (``paths``: label -> path of :func:`output_paths`); a star at the end of each line gives
    the same channels with their weights re-solved."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    colours = plt.get_cmap("tab10").colors
    for i, (label, path) in enumerate(paths.items()):
        style = {"color": colours[i % len(colours)]}
        axes[0].plot(path["kept"], path["output"], lw=1.3, label=label, **style)
        axes[1].plot(path["kept"], path["layer_rel"], lw=1.3, **style)
        axes[0].plot(path["refit_kept"], path["refit_output"], "*", ms=10, **style)
        axes[1].plot(path["refit_kept"], path["refit_layer_rel"], "*", ms=10, **style)
    axes[0].set_ylabel("output loss on the oracle images (KL, nats)")
    axes[1].set_ylabel("layer relative error  L(a) / E||F||^2")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("channels kept  (star: the final channels, weights re-solved)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out, stem)
