"""Layer-by-layer pruning of a network's chains, from the input side, under one budget.

For each chain in order the consumer's inputs are captured on the calibration batches
(earlier chains already pruned) and their Gram matrix is accumulated
(:mod:`torchbridge.gram`); a selector of :mod:`theory` picks the channels and their weights
until the budget is met, and :mod:`torchbridge.surgery` removes the others. Budgets, per
chain: ``keep``, a fraction of its channels, or ``tol``, a bound on its relative output error
(the trace's loss over E ||F||^2, F the consumer's unpruned output without bias). A
whole-network FLOPs target is :mod:`torchbridge.budget`. The global selectors (``global-imitation``,
``combined``, ``taylor``) also get the network's output loss (:mod:`torchbridge.oracle`) on
the first ``oracle_images`` calibration images.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from theory import LayerProblem, select
from theory.output_problem import OutputProblem
from theory.selectors import spec
from theory.selectors.fully_corrective import resolved
from torchbridge.chain_check import check_chains
from torchbridge.chains import Chain, Group
from torchbridge.gram import GramAccumulator, mean_shift
from torchbridge.images import calibration_list
from torchbridge.oracle import OBJECTIVES, GlobalLoss, global_loss
from torchbridge.refit import TOWARD, Inputs, RefitMoments, in_channels, refit_consumers
from torchbridge.surgery import is_squeeze_excitation, prune_group, squeeze_parts

MAX_REPEATS = 20  # steps per kept channel allowed to the selectors that may pick one again

# Why a chain's selection ended, from the trace's ``stopped``: its width was reached, its
# tolerance met, the selector had no step left that lowers the loss, or its steps ran out.
STOPPED = {"size": "width", "tol": "tolerance", "converged": "stalled", "n": "steps"}


@dataclass(frozen=True)
class LayerReport:
    chain: Chain | Group
    kept: int
    total: int
    loss: float | None  # the consumer's output change, E ||.||^2 (the trace's final loss)
    output_rel: float | None  # loss / E ||F||^2: the relative squared error of that output
    seconds: float | None  # calibration pass, Gram matrix, selection and surgery of this chain
    # (None: not measured, as for the Torch-Pruning baselines)
    refit_rel: float | None = None  # after --refit: the consumer's relative squared error
    # (torchbridge.refit), as output_rel but with the refit weights
    channels: tuple[int, ...] | None = None  # the kept channels, numbered as in the unpruned
    # producer (None where the method does not say: Torch-Pruning's)
    stopped: str | None = None  # why the selection ended: see STOPPED

    def as_dict(self) -> dict:
        """The fields; the chain's (a group's with its first producer as ``producer``)."""
        return asdict(self) | {"chain": asdict(self.chain) | {"producer": self.chain.producer}}


def run_capturing(
    model: nn.Module, consumer: nn.Module, batches: Iterable[torch.Tensor], visit: Callable
) -> None:
    """Run ``model`` on every batch (no grad), calling ``visit(inputs)`` with each batch of
    ``consumer``'s inputs: one pass over the calibration data."""
    handle = consumer.register_forward_pre_hook(lambda _, args: visit(args[0]))
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        handle.remove()


def apply_weights(
    model: nn.Module,
    chain: Chain | Group,
    weights: np.ndarray,
    squeeze_means: dict[int, torch.Tensor] | None = None,
    bias_shifts: list[np.ndarray] | None = None,
) -> None:
    """Prune ``chain`` (or a group) of ``model`` in place to the channels with weights != 0,
    folded N a_i into every consumer (``squeeze_means``: see
    :func:`torchbridge.surgery.prune_chain`); ``bias_shifts`` (one (C_out,) per consumer) are
    added to the consumers' biases (created where there is none)."""
    names = (*chain.producers, *chain.between, *chain.consumers)
    producers, between, consumers = prune_group(
        [model.get_submodule(name) for name in chain.producers],
        [model.get_submodule(name) for name in chain.between],
        [model.get_submodule(name) for name in chain.consumers], weights, squeeze_means,
    )  # fmt: skip
    for consumer, shift in zip(consumers, bias_shifts or (), strict=bias_shifts is not None):
        shift = torch.as_tensor(shift, dtype=consumer.weight.dtype, device=consumer.weight.device)
        bias = consumer.bias.detach() if consumer.bias is not None else torch.zeros_like(shift)
        consumer.bias = nn.Parameter(bias + shift)
    for name, module in zip(names, (*producers, *between, *consumers), strict=True):
        model.set_submodule(name, module)


def resize(model: nn.Module, chains: list[Chain], widths: dict[str, int]) -> nn.Module:
    """A copy of ``model`` whose chains keep their first ``widths[producer]`` channels: the
    shapes of a pruned network, to load its state dict into."""
    model = copy.deepcopy(model)
    for chain in chains:
        total = model.get_submodule(chain.producer).out_channels
        kept = widths.get(chain.producer, total)
        if not 1 <= kept <= total:
            raise ValueError(f"width {kept} of {chain.producer} is not in [1, {total}]")
        apply_weights(model, chain, np.r_[np.ones(kept), np.zeros(total - kept)])
    return model


class SqueezeMeans:
    """Mean over calibration images of the pooled input (N,) of a chain's squeeze-excitation
    modules, gathered during the calibration pass by forward pre-hooks on their reduction (a
    leaf module: it is called whether the network runs whole or walked as a graph)."""

    def __init__(self, model: nn.Module, chain: Chain) -> None:
        self._sums: dict[int, torch.Tensor] = {}
        self._images: dict[int, int] = {}
        self._handles = []
        for i, name in enumerate(chain.between):
            module = model.get_submodule(name)
            if is_squeeze_excitation(module):
                hook = functools.partial(self._add, i)
                reduce = getattr(module, squeeze_parts(module)[0])
                self._handles.append(reduce.register_forward_pre_hook(hook))

    def _add(self, i: int, _module: nn.Module, args: tuple) -> None:
        pooled = args[0].detach().double().mean(dim=(2, 3)).sum(dim=0)
        self._sums[i] = self._sums.get(i, 0) + pooled
        self._images[i] = self._images.get(i, 0) + args[0].shape[0]

    def close(self) -> dict[int, torch.Tensor]:
        for handle in self._handles:
            handle.remove()
        return {i: (total / self._images[i]).cpu() for i, total in self._sums.items()}


def layer_problems(
    model: nn.Module, chains: list[Chain | Group], batches: Iterable[torch.Tensor]
) -> list[LayerProblem]:
    """Every chain's (or group's) layer problem on ``model`` as it is (nothing pruned), in one
    pass. A group's psi_i is channel i's contribution to every consumer's output, concatenated:
    its Gram matrix is the sum of the consumers' (each a mean over the images)."""
    accumulators, handles = [], []
    for chain in chains:
        accumulators.append([])
        for name in chain.consumers:
            accumulator = GramAccumulator(model.get_submodule(name))
            accumulators[-1].append(accumulator)
            hook = functools.partial(lambda acc, _, args: acc.update(args[0]), accumulator)
            handles.append(model.get_submodule(name).register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return [LayerProblem.from_gram(sum(a.gram() for a in each)) for each in accumulators]


def check_widths(model: nn.Module, chains: list[Chain], widths: dict[str, int]) -> None:
    """A clear error unless ``widths`` gives every chain (by producer name) 1 to N channels."""
    names = {c.producer for c in chains}
    if unknown := sorted(set(widths) - names):
        raise ValueError(f"widths name no chain's producer: {', '.join(unknown)}")
    if missing := [c.producer for c in chains if c.producer not in widths]:
        raise ValueError(f"widths give no width for the chains of {', '.join(missing)}")
    for chain in chains:
        total = model.get_submodule(chain.producer).out_channels
        if not (isinstance(widths[chain.producer], int) and 1 <= widths[chain.producer] <= total):
            raise ValueError(
                f"width of {chain.producer} must be an integer from 1 to its {total} channels; "
                f"got {widths[chain.producer]!r}"
            )


def may_repeat(method: str, options: dict) -> bool:
    """Whether ``method`` with ``options`` may pick a channel again (then a width of k may take
    up to MAX_REPEATS k steps; without repeats, k steps keep k)."""
    return spec(method).repeats and options.get("repeats") is not False


def scored_by(method: str, loss: GlobalLoss) -> dict:
    """The options that hand ``loss`` to a global selector: its oracle, and its gradient when
    the selector takes one."""
    options = {"oracle": loss.oracle}
    if "gradient" in spec(method).options:
        options["gradient"] = loss.gradient
    return options


def first_images(batches: list[torch.Tensor], images: int) -> list[torch.Tensor]:
    """The first ``images`` images of ``batches``, as batches (the global loss's images)."""
    out, count = [], 0
    for batch in batches:
        if count >= images:
            break
        out.append(batch[: images - count])
        count += out[-1].shape[0]
    return out


def prune_chains(
    model: nn.Module,
    chains: list[Chain | Group],
    batches: Iterable[torch.Tensor],
    *,
    keep: float | None = None,
    tol: float | None = None,
    widths: dict[str, int] | None = None,
    method: str = "greedy-local",
    seed: int = 0,
    objective: str = "kl",
    oracle_images: int = 64,
    progress: bool = False,
    walk_graph: bool = True,
    compensate: bool = False,
    resolve: bool = False,
    refit: bool = False,
    ridge: float = 1e-4,
    refit_toward: str = "zero",
    check: bool = True,
    **options: object,
) -> tuple[nn.Module, list[LayerReport]]:
    """A pruned copy of ``model`` (in eval mode) and a report per chain.

    ``check``: first check every chain against the network (:mod:`torchbridge.chain_check`);
    a caller that prunes the same chains many times checks them once itself.

    ``chains`` may hold channel groups (:class:`torchbridge.chains.Group`: residual streams,
    several consumers) among the chains: each group's layer problem sums its consumers' Gram
    matrices, theory's layer selectors prune it (not the global or whole-output ones), and
    ``compensate`` and ``refit`` act on every consumer.

    Exactly one budget: ``keep`` (each chain keeps k = round(keep N) channels: the selector
    runs until k channels carry weight, at most 20 k steps for the selectors that may pick a
    channel again), ``widths`` (k by producer name, for every chain) or ``tol`` (each chain
    stops once its relative output error is <= tol).
    ``batches``: calibration inputs. With ``walk_graph`` (where the network can be traced:
    :mod:`torchbridge.walk`) they pass through the network about twice in all; otherwise, or
    with ``walk_graph=False``, once per chain. ``method`` and ``options`` go to
    :func:`theory.select`; ``objective`` ("kl" or "mse") is the global selectors' loss.
    ``compensate``: add to each consumer's bias the mean over the calibration data of what
    the pruning changed in its output (the reports' losses are then the selector's, before
    that correction, which lowers the error by the squared mean change).
    ``resolve``: before the surgery, replace the selector's weights on each chain's kept
    channels by the least-loss weights on the simplex there (the gamma subproblem,
    :func:`theory.selectors.fully_corrective.resolved`); the reports give the loss of those.
    ``refit``: once a chain is pruned, refit its consumer on its kept channels by ridge least
    squares (``ridge``, pulling ``refit_toward`` 0 or the selector's weights) to the unpruned
    network's consumer output (:mod:`torchbridge.refit`),
    before the next chain is chosen, so that each chain sees the refit ones before it; the
    reports' ``refit_rel`` give each consumer's relative error after its refit.
    ``method="whole-output"`` chooses each chain's channels on its consumer's refit moments
    (:mod:`theory.selectors.whole_output`) and sets the consumer's least-squares weights on
    them (``ridge``, ``refit_toward``): the refit is part of the method, and the reports'
    ``output_rel`` and ``refit_rel`` are both that refit's relative error.
    """
    if sum(b is not None for b in (keep, tol, widths)) != 1:
        raise ValueError(
            "give exactly one budget: keep (a fraction), widths (channels per chain) or tol "
            "(a relative error)"
        )
    if widths is not None:
        check_widths(model, chains, widths)
    if keep is not None and not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be a fraction in (0, 1]; got {keep}")
    if tol is not None and not (np.isfinite(tol) and tol >= 0.0):
        raise ValueError(f"tol must be a finite relative error >= 0; got {tol}")
    chosen = spec(method)
    if resolve and not chosen.simplex:
        raise ValueError(f"resolve re-solves convex weights: {method}'s are not on the simplex")
    repeats = may_repeat(method, options)
    batches = calibration_list(batches)
    groups = [c for c in chains if not isinstance(c, Chain)]
    if check:
        check_chains(model, chains, batches[0][:2])
    if oracle_images < 1:
        raise ValueError(f"oracle_images must be >= 1; got {oracle_images}")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)}")
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0; got {ridge}")
    if refit_toward not in TOWARD:
        raise ValueError(f"unknown refit_toward {refit_toward!r}; valid: {', '.join(TOWARD)}")
    reference = copy.deepcopy(model).eval() if refit or chosen.problem is OutputProblem else None
    model = copy.deepcopy(model).eval()
    if chosen.needs_oracle:
        oracle_batches = first_images(batches, oracle_images)
        with torch.no_grad():
            references = [model(batch) for batch in oracle_batches]
    whole = chosen.problem is OutputProblem
    if whole and (compensate or options):
        given = sorted(options) or ["compensate"]
        raise ValueError(
            "whole-output refits each consumer's weights and bias: it takes no "
            f"compensate and no selector options; got {', '.join(given)}"
        )
    if groups and (whole or chosen.needs_oracle):
        raise ValueError(
            f"channel groups ({groups[0].producer}, ...) are pruned by the layer selectors of "
            "theory; the global and whole-output selectors take chains only"
        )

    def budget_of(chain: Chain, n: int, repeats: bool) -> tuple[int, int | float]:
        """(steps, the kept channels k, or the relative tolerance) of a chain of n channels."""
        if tol is not None:
            return (MAX_REPEATS * n if repeats else n), float(tol)
        k = widths[chain.producer] if widths is not None else max(1, round(keep * n))
        return (MAX_REPEATS * k if repeats else k), k

    reports = []
    kept_outputs: dict[str, np.ndarray] = {}  # producer: its output channels kept so far
    mine = Inputs(model, chains, batches, walk_graph)  # consumer inputs
    walked = mine.walk is not None
    unpruned = None if reference is None else Inputs(reference, chains, batches, walked)
    for i, chain in enumerate(tqdm(chains, desc=f"prune {method}", unit="chain",
                                   disable=not progress)):  # fmt: skip
        start = time.perf_counter()
        if whole:
            reports.append(_prune_whole_output(model, reference, chain, mine.consumer_inputs(i),
                                               unpruned.consumer_inputs(i), budget_of, seed,
                                               ridge, refit_toward, start))  # fmt: skip
            continue
        squeeze = SqueezeMeans(model, chain)
        try:  # one Gram matrix per consumer, summed (a group's psi_i concatenates them)
            accumulators = [GramAccumulator(model.get_submodule(c)) for c in chain.consumers]
            for inputs in mine.group_inputs(i):
                for accumulator, x in zip(accumulators, inputs, strict=True):
                    accumulator.update(x)
            problem = LayerProblem.from_gram(sum(a.gram() for a in accumulators))
        finally:
            means = squeeze.close()
        n, energy = problem.n_neurons, problem.target_norm2
        steps, stop = budget_of(chain, n, repeats)
        stop = {"tol": stop * energy} if tol is not None else {"size": stop}
        extra = dict(options)
        bar = tqdm(total=steps, desc=chain.producer, unit="step", leave=False,
                   disable=not (progress and chosen.needs_oracle))  # fmt: skip
        if chosen.needs_oracle:
            loss = global_loss(model, chain.consumer, oracle_batches, references, objective)
            extra |= scored_by(method, loss)
        with bar:
            trace = select(problem, steps, method, seed=seed,
                           on_step=lambda _, bar=bar: bar.update(), **stop, **extra)  # fmt: skip
        weights, error = trace.weights, trace.loss
        if resolve:
            weights = resolved(problem, weights)
            error = problem.loss(weights)
        shifts = None
        if compensate:
            shifts = [mean_shift(model.get_submodule(c), a.mean_patch(), weights)
                      for c, a in zip(chain.consumers, accumulators, strict=True)]  # fmt: skip
        apply_weights(model, chain, weights, means, shifts)
        kept_outputs |= {p: np.flatnonzero(weights) for p in chain.producers}
        refit_rel = None
        if refit:

            def pairs(k: int, i: int = i) -> Iterable:
                return zip(mine.group_inputs(i, k), unpruned.group_inputs(i, k), strict=True)

            refit_rel = refit_consumers(model, reference, chain.consumers, pairs, ridge,
                                        refit_toward, kept_outputs)  # fmt: skip
        reports.append(
            LayerReport(
                chain,
                int(np.count_nonzero(weights)),
                n,
                error,
                error / energy if energy > 0.0 else 0.0,
                time.perf_counter() - start,
                refit_rel,
                tuple(int(j) for j in np.flatnonzero(weights)),
                STOPPED[trace.stopped],
            )
        )
    return model, reports


def _prune_whole_output(
    model: nn.Module,
    reference: nn.Module,
    chain: Chain,
    ours: Iterable[torch.Tensor],
    theirs: Iterable[torch.Tensor],
    budget_of: Callable,
    seed: int,
    ridge: float,
    toward: str,
    start: float,
) -> LayerReport:
    """Prune ``chain`` of ``model`` in place by the ``whole-output`` selector: the refit
    moments of its consumer on every channel (``ours``: its inputs in ``model``, ``theirs``:
    in ``reference``, batch by batch), forward selection of the channels on them, the
    surgery, and the consumer's weights set to the least-squares ones on the kept channels
    (the ridge pulls toward 0 or, with ``toward="selected"``, the unpruned weights)."""
    consumer = model.get_submodule(chain.consumer)
    n = in_channels(consumer)
    moments = RefitMoments(reference.get_submodule(chain.consumer), n)
    squeeze = SqueezeMeans(model, chain)
    try:
        with torch.no_grad():
            for mine, unpruned in zip(ours, theirs, strict=True):
                moments.update(mine, unpruned)
    finally:
        means = squeeze.close()
    problem = moments.problem(ridge, consumer.weight if toward == "selected" else None)
    steps, stop = budget_of(chain, n, False)
    stop = {"size": stop} if isinstance(stop, int) else {"tol": stop * problem.energy}
    trace = select(problem, steps, "whole-output", seed=seed, **stop)
    kept = np.sort(trace.support)
    if kept.size == 0:  # nothing explains the output (it is constant): keep the strongest
        kept = np.array([int(np.argmax(np.diag(problem.xx)[: n * problem.width]) // problem.width)])
    apply_weights(model, chain, np.isin(np.arange(n), kept) / n, means)
    coefficients = problem.solve(kept)
    weight, bias = moments.as_weights(coefficients, kept.size)
    like = {"dtype": consumer.weight.dtype, "device": consumer.weight.device}
    pruned = model.get_submodule(chain.consumer)
    pruned.weight = nn.Parameter(weight.to(**like))
    pruned.bias = nn.Parameter(bias.to(**like))
    error = problem.relative(problem.loss(kept, coefficients))
    seconds = time.perf_counter() - start
    channels = tuple(int(j) for j in kept)
    return LayerReport(chain, int(kept.size), n, None, error, seconds, error, channels,
                       STOPPED[trace.stopped])  # fmt: skip
