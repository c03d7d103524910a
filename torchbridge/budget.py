"""A whole-network FLOPs target, reached by searching one per-chain tolerance shared by all
chains (:func:`torchbridge.prune.prune_chains` with ``tol``; ``allocation="tolerance"``), or
one kept fraction shared by all chains (``allocation="uniform"``: every chain keeps
round(keep N) channels, as Torch-Pruning's uniform ratio does, so that selectors can be
compared at equal widths; the fraction comes from FLOPs counts alone, then one pruning runs),
or the widths predicted at a shared tolerance (``allocation="predicted"``: the prediction
below, then one pruning to those widths; two calibration passes in all), or the widths that
remove, one channel at a time, the channel adding the least loss of the network's output per
FLOP saved (``allocation="marginal"``: the same selector runs, each chain's output loss
measured at a grid of widths, :mod:`torchbridge.output_curves`; then one pruning).

The FLOPs left fall as the shared tolerance grows. A full layer-by-layer pruning per probe
is the expensive part, so the search first predicts: every chain's layer problem on the
unpruned network (one calibration pass), one selector run per chain, and the width each
tolerance would give (for the global selectors and whole-output, greedy-local's widths),
counted for FLOPs without running anything but the counter; bisection of these predictions
gives a tolerance. Then real probes (whole prunings, later chains calibrated on the pruned
earlier ones) bisect log10(tol) within a decade either side of it. The result is the pruned
network with the most FLOPs at or under the target. A target below what cutting every chain
to one channel reaches is refused first, with that number.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from theory import LayerProblem, select
from theory.selectors import spec
from torchbridge.chain_check import check_chains
from torchbridge.chains import Chain, chain_widths
from torchbridge.counting import count, leaf_flops
from torchbridge.images import calibration_list
from torchbridge.output_curves import output_curves
from torchbridge.prune import (
    MAX_REPEATS,
    LayerReport,
    first_images,
    layer_problems,
    prune_chains,
    resize,
)
from torchbridge.surgery import squeeze_parts

LOWEST, HIGHEST = -8.0, 2.0  # log10 of the shared relative tolerances searched


ALLOCATIONS = ("tolerance", "predicted", "uniform", "marginal")


@dataclass(frozen=True)
class Probe:
    budget: str  # "tol" (a shared relative tolerance), "keep" (a shared kept fraction) or
    # "widths" (the marginal allocation's: value, the FLOPs they were chosen to keep)
    value: float
    flops: float  # fraction of the unpruned network's FLOPs
    predicted: bool  # counted without running a pruning (predicted widths, or uniform ones)


class LossCurves:
    """Each chain's relative layer loss against its width, from one selector run per chain
    on the unpruned network (its layer problem: one calibration pass for all chains; for
    the global selectors and whole-output, greedy-local's run).

    A run stopped at a relative loss ``floor`` is a prefix of the run stopped at any smaller
    one, so it answers every tol >= floor exactly. Each chain's run starts at a floor of 0.1
    and is redone down to the decade of a smaller tol only when one is asked: on real
    networks the last decades cost most of the steps (or are never reached)."""

    def __init__(
        self, model: nn.Module, chains: list[Chain], batches: list[torch.Tensor], method: str,
        seed: int,
    ) -> None:  # fmt: skip
        chosen = spec(method)
        self.method = (  # the selector run
            "greedy-local" if chosen.needs_oracle or chosen.problem is not LayerProblem else method
        )
        self._seed, self.chains = seed, chains
        self.problems = layer_problems(model, chains, batches)
        self._curves = [self._run(problem, 0.1) for problem in self.problems]

    def _run(self, problem: LayerProblem, floor: float) -> tuple[float, np.ndarray, np.ndarray]:
        """(the floor this run answers down to, relative losses, support sizes)."""
        n, energy = problem.n_neurons, problem.target_norm2
        steps = MAX_REPEATS * n if spec(self.method).repeats else n
        trace = select(problem, steps, self.method, tol=floor * energy, seed=self._seed)
        losses = trace.losses / energy if energy > 0 else np.zeros_like(trace.losses)
        whole = floor <= 10.0**LOWEST or not np.any(losses <= floor)  # stopped by its steps
        return (0.0 if whole else floor), losses, trace.support_sizes

    def _reaching(self, i: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
        if tol < self._curves[i][0]:
            floor = max(10.0**LOWEST, 10.0 ** np.floor(np.log10(max(tol, 10.0**LOWEST))))
            self._curves[i] = self._run(self.problems[i], floor)
        return self._curves[i][1], self._curves[i][2]

    def width(self, i: int, tol: float) -> int:
        """The channels chain ``i``'s run carries when its relative loss first is <= tol
        (its N where it never is)."""
        losses, sizes = self._reaching(i, tol)
        reached = np.flatnonzero(losses <= tol)
        return int(sizes[reached[0]]) if reached.size else self.problems[i].n_neurons

    def widths(self, tol: float) -> dict[str, int]:
        """{producer: :meth:`width` at ``tol``} of every chain."""
        return {c.producer: self.width(i, tol) for i, c in enumerate(self.chains)}

    def losses_by_width(self, i: int) -> np.ndarray:
        """(N + 1,): entry k the relative loss of chain ``i``'s run at the step where it first
        carries k channels (where a pruning to width k stops; its last step's where it never
        does); entry 0: 1, nothing kept; entry N: 0, the chain left whole."""
        losses, sizes = self._reaching(i, 0.0)
        n = self.problems[i].n_neurons
        first = np.searchsorted(np.maximum.accumulate(sizes), np.arange(1, n + 1))
        out = np.r_[1.0, losses[np.minimum(first, len(losses) - 1)]]
        out[n] = 0.0
        return out


def predicted_widths(
    model: nn.Module, chains: list[Chain], batches: list[torch.Tensor], method: str, seed: int
) -> Callable[[float], dict[str, int]]:
    """tol -> {producer: width} as each chain's selector run on the unpruned network gives
    (:class:`LossCurves`)."""
    return LossCurves(model, chains, batches, method, seed).widths


def marginal_widths(
    curves: list[np.ndarray], chains: list[Chain], flops: float, fraction_of: Callable
) -> dict[str, int]:
    """Widths at most ``flops`` of the FLOPs (``fraction_of``), reached from every chain at
    full width by removing, one channel at a time, the one whose removal adds the least loss
    per FLOP it saves; ``curves``: each chain's loss (N + 1,) at every width (entry N: 0)."""
    widths = {c.producer: len(curves[i]) - 1 for i, c in enumerate(chains)}
    now = fraction_of(widths)
    while now > flops:
        best, cost = None, np.inf
        for i, chain in enumerate(chains):
            k = widths[chain.producer]
            if k <= 1:
                continue
            saved = now - fraction_of(widths | {chain.producer: k - 1})
            if saved <= 0:
                continue
            added = (curves[i][k - 1] - curves[i][k]) / saved
            if added < cost:
                best, cost = chain.producer, added
        if best is None:
            raise ValueError(f"no channel left to remove: {flops:.3f} of the FLOPs not reached")
        widths[best] -= 1
        now = fraction_of(widths)
    return widths


def prune_to_flops(
    model: nn.Module,
    chains: list[Chain],
    batches: list[torch.Tensor],
    flops: float,
    *,
    allocation: str = "tolerance",
    iterations: int = 5,
    slack: float = 0.02,
    **options: object,
) -> tuple[nn.Module, list[LayerReport], list[Probe]]:
    """The pruned network with the most FLOPs <= ``flops`` (a fraction of ``model``'s) found
    in ``iterations`` real probes (stops early within ``slack`` under the target), its
    reports, and every probe. ``options`` go to :func:`prune_chains` (method, seed, ...)."""
    if not 0.0 < flops <= 1.0:
        raise ValueError(f"the FLOPs target must be a fraction in (0, 1]; got {flops}")
    if allocation not in ALLOCATIONS:
        raise ValueError(f"unknown allocation {allocation!r}; valid: {', '.join(ALLOCATIONS)}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1; got {iterations}")
    batches = calibration_list(batches)
    model = copy.deepcopy(model).eval()  # counting runs the model: never the caller's mode
    check_chains(model, chains, batches[0][:2])  # once: every pruning below skips it
    example = batches[0][:1]
    fraction_of = flops_fraction(model, chains, example)
    check_floor(fraction_of, chains, flops)
    options = {**options, "check": False}

    def reached(reports: list[LayerReport]) -> float:  # the FLOPs kept by a real pruning
        return fraction_of({r.chain.producer: r.kept for r in reports})

    if allocation == "uniform":
        keep, probes = uniform_keep(model, chains, flops, fraction_of)
        pruned, reports = prune_chains(model, chains, batches, keep=keep, **options)
        return pruned, reports, [*probes, Probe("keep", keep, reached(reports), predicted=False)]
    method = str(options.get("method", "greedy-local"))
    curves = LossCurves(model, chains, batches, method, int(options.get("seed", 0)))
    if allocation == "marginal":
        chosen = marginal_widths(marginal_curves(model, chains, batches, curves, options), chains,
                                 flops, fraction_of)  # fmt: skip
        pruned, reports = _prune_below_full(model, chains, batches, chosen, options)
        return pruned, reports, [Probe("widths", fraction_of(chosen), reached(reports), False)]
    widths = curves.widths
    probes, low, high = [], LOWEST, HIGHEST
    for decade in np.arange(HIGHEST - 1.0, LOWEST - 1.0, -1.0):  # down while under the target:
        fraction = fraction_of(widths(10.0**decade))  # no prediction asked below the answer's
        probes.append(Probe("tol", 10.0**decade, fraction, predicted=True))  # decade
        if fraction > flops:
            low = decade
            break
        high = decade
    for _ in range(30):  # predictions only: cheap
        middle = (low + high) / 2
        fraction = fraction_of(widths(10.0**middle))
        probes.append(Probe("tol", 10.0**middle, fraction, predicted=True))
        low, high = (low, middle) if fraction <= flops else (middle, high)
    if allocation == "predicted":
        chosen = widths(10.0**high)
        if fraction_of(chosen) > flops:
            raise ValueError(
                f"no predicted widths up to a tolerance of {10.0**HIGHEST:g} reach {flops:.3f} "
                f"of the FLOPs (they keep {fraction_of(chosen):.3f})"
            )
        pruned, reports = prune_chains(model, chains, batches, widths=chosen, **options)
        return pruned, reports, [*probes, Probe("tol", 10.0**high, reached(reports), False)]
    best = None

    def probe(log_tol: float) -> bool:
        """A real pruning at 10**log_tol; True when it meets the target."""
        nonlocal best
        pruned, reports = prune_chains(model, chains, batches, tol=10.0**log_tol, **options)
        fraction = reached(reports)
        probes.append(Probe("tol", 10.0**log_tol, fraction, predicted=False))
        if fraction <= flops and (best is None or fraction > best[2]):
            best = (pruned, reports, fraction)
        return fraction <= flops

    # the predicted tolerance first; if it keeps too much, a decade up at a time until one
    # meets the target (later chains calibrated on pruned earlier ones keep different widths)
    low, high, spent = high - 1.0, high, 1
    while not probe(high):
        if high >= HIGHEST:
            raise ValueError(
                f"no shared tolerance up to {10.0**HIGHEST:g} reaches {flops:.3f} of the FLOPs "
                f"(the last probe kept {probes[-1].flops:.3f})"
            )
        low, high, spent = high, min(high + 1.0, HIGHEST), spent + 1
    while spent < iterations and best[2] < flops - slack:  # bisect below the feasible one
        middle = (low + high) / 2
        if probe(middle):
            high = middle
        else:
            low = middle
        spent += 1
    return best[0], best[1], probes


def marginal_curves(
    model: nn.Module, chains: list[Chain], batches: list[torch.Tensor], curves: LossCurves,
    options: dict,
) -> list[np.ndarray]:  # fmt: skip
    """Each chain's loss of the network's output (N + 1,) against its width
    (:func:`torchbridge.output_curves.output_curves`) on the first ``oracle_images``
    calibration images, with ``options``' objective and refit."""
    if groups := [c.producer for c in chains if not isinstance(c, Chain)]:
        raise ValueError(
            f"the marginal allocation measures each chain's output loss through its one "
            f"consumer: channel groups ({groups[0]}, ...) take another allocation"
        )
    refit = None
    if options.get("refit"):
        refit = {k: options.get(k, d) for k, d in (("ridge", 1e-4), ("refit_toward", "zero"))}
    images = first_images(batches, int(options.get("oracle_images", 64)))
    layers = [curves.losses_by_width(i) for i in range(len(chains))]
    return output_curves(
        model, chains, curves.problems, layers, images, method=curves.method,
        seed=int(options.get("seed", 0)), objective=str(options.get("objective", "kl")),
        refit=refit,
    )  # fmt: skip


def _prune_below_full(
    model: nn.Module, chains: list[Chain], batches: list[torch.Tensor], widths: dict[str, int],
    options: dict,
) -> tuple[nn.Module, list[LayerReport]]:  # fmt: skip
    """``model`` pruned to ``widths``, the chains given all their channels left whole (a
    report each: nothing kept out, no loss) rather than re-weighted by a selector."""
    totals = chain_widths(model, chains)
    cut = [c for c in chains if widths[c.producer] < totals[c.producer]]
    kept = {c.producer: widths[c.producer] for c in cut}
    pruned, reports = prune_chains(model, cut, batches, widths=kept, **options)
    by_producer = {r.chain.producer: r for r in reports}
    whole = {c.producer: LayerReport(c, totals[c.producer], totals[c.producer], 0.0, 0.0, 0.0,
                                     channels=tuple(range(totals[c.producer])))
             for c in chains if c.producer not in by_producer}  # fmt: skip
    return pruned, [by_producer.get(c.producer) or whole[c.producer] for c in chains]


def flops_fraction(
    model: nn.Module, chains: list[Chain], example: torch.Tensor
) -> Callable[[dict[str, int]], float]:
    """widths -> FLOPs of ``model`` with its chains cut to those widths ({producer: k}; a
    chain left out keeps its N), over its own FLOPs; from one count of ``model``.

    Cutting chain c from N_c to k_c channels scales each convolution or linear layer that
    writes its channels (the producers: one, or a residual stream's every block), reads them
    (the consumers) or passes them along (a
    depthwise convolution, a squeeze-excitation's two layers) by k_c / N_c, once per chain it
    touches (a Bottleneck's middle convolution reads one chain and writes the next); no other
    layer's FLOPs change. Exact in integers; checked against a real count of a copy resized
    to one channel per chain (and tested on every architecture)."""
    total, leaves = leaf_flops(model, example)
    touched: dict[str, list[Chain]] = {}
    for chain in chains:
        names = [*chain.producers, *chain.consumers]
        for name in chain.between:
            module = model.get_submodule(name)
            parts = squeeze_parts(module)
            names += [f"{name}.{part}" for part in parts] if parts else [name]
        for name in names:
            touched.setdefault(name, []).append(chain)
    totals = chain_widths(model, chains)

    def fraction(widths: dict[str, int]) -> float:
        for name, k in widths.items():
            if name not in totals:
                raise ValueError(f"widths name no chain's producer: {name}")
            if not 1 <= k <= totals[name]:
                raise ValueError(f"width {k} of {name} is not in [1, {totals[name]}]")
        flops = total
        for name, touching in touched.items():
            full = leaves.get(name, 0)
            kept, whole = full, 1
            for chain in touching:
                kept *= widths.get(chain.producer, totals[chain.producer])
                whole *= totals[chain.producer]
            flops += kept // whole - full
        return flops / total

    floor = {c.producer: 1 for c in chains}
    counted = count(resize(model, chains, floor), example).flops / total
    if fraction(floor) != counted:
        raise ValueError(
            f"the FLOPs of these chains' layers do not scale with their widths: {counted} of "
            f"the FLOPs counted at one channel per chain, {fraction(floor)} predicted"
        )
    return fraction


def check_floor(fraction_of: Callable, chains: list[Chain], flops: float) -> None:
    """A clear error when even one channel per chain keeps more than ``flops``."""
    floor = fraction_of({c.producer: 1 for c in chains})
    if floor > flops:
        raise ValueError(
            f"a FLOPs target of {flops:.3f} cannot be met: with every chain cut to one channel "
            f"the network keeps {floor:.3f} of its FLOPs (layers outside the chains are not pruned)"
        )


def uniform_keep(
    model: nn.Module, chains: list[Chain], flops: float, fraction_of: Callable
) -> tuple[float, list[Probe]]:
    """The largest kept fraction shared by every chain (width max(1, round(keep N))) whose
    FLOPs (``fraction_of``, see :func:`flops_fraction`) are at most ``flops``; and the probes
    counted."""
    totals = chain_widths(model, chains)

    def widths(keep: float) -> dict[str, int]:
        return uniform_widths(totals, keep)

    probes, low, high = [], 0.0, 1.0
    if fraction_of(widths(1.0)) <= flops:
        return 1.0, probes
    for _ in range(30):
        middle = (low + high) / 2
        fraction = fraction_of(widths(middle))
        probes.append(Probe("keep", middle, fraction, predicted=True))
        low, high = (middle, high) if fraction <= flops else (low, middle)
    return max(low, min(1.0 / n for n in totals.values())), probes


def uniform_widths(totals: dict[str, int], keep: float) -> dict[str, int]:
    """max(1, round(keep N)) channels for each chain of N channels (by producer name)."""
    return {name: max(1, round(keep * n)) for name, n in totals.items()}
