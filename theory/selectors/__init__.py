"""The selectors, one per module, behind one entry point: :func:`select`.

A selector module offers ``make(problem, rng, **options) -> (iterate, step)``; ``step(iterate)``
takes one step in place and returns a :class:`theory.trace.Step`, or None when it has no step
left (the line-search selectors: no step lowers the loss; fixed-step without repeats and
magnitude: every neuron is used). :func:`select` runs the steps, records the trace, and
applies the stopping rules. This small interface is the extension point: register a new
module in ``SELECTORS``. Selectors of another problem than the paper's layer problem are
registered in ``OUTPUT_SELECTORS`` (``whole-output``, on a consumer's
:class:`theory.output_problem.OutputProblem`); :func:`select` runs them the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated

import numpy as np
from annotated_types import Ge
from pydantic import AllowInfNan

from theory.arguments import check_keywords, checked
from theory.output_problem import OutputProblem
from theory.problem import LayerProblem
from theory.selectors import (
    away,
    fixed_step,
    frank_wolfe,
    fully_corrective,
    global_imitation,
    greedy_local,
    magnitude,
    omp,
    pairwise,
    random_subset,
    taylor,
    whole_output,
)
from theory.trace import Step, Trace


@dataclass(frozen=True)
class SelectorSpec:
    """A registered selector and what it promises."""

    module: ModuleType
    simplex: bool  # weights stay convex
    monotone: bool  # losses never increase
    repeats: bool  # runs may take more steps than there are neurons
    defaults: tuple[tuple[str, object], ...] = ()  # options fixed by this registration
    needs_oracle: bool = False  # the selector scores steps by a global loss through an oracle
    problem: type = LayerProblem  # the problem it selects on

    @property
    def options(self) -> tuple[str, ...]:
        params = list(inspect.signature(self.module.make).parameters)
        fixed = {name for name, _ in self.defaults}
        return tuple(p for p in params[2:] if p not in fixed)


SELECTORS: dict[str, SelectorSpec] = {
    "greedy-local": SelectorSpec(greedy_local, simplex=True, monotone=True, repeats=True),
    "frank-wolfe": SelectorSpec(frank_wolfe, simplex=True, monotone=True, repeats=True),
    "fixed-step": SelectorSpec(fixed_step, simplex=True, monotone=False, repeats=True),
    "away": SelectorSpec(away, simplex=True, monotone=True, repeats=True),
    "pairwise": SelectorSpec(pairwise, simplex=True, monotone=True, repeats=True),
    "fully-corrective": SelectorSpec(fully_corrective, simplex=True, monotone=True, repeats=False),
    "omp": SelectorSpec(omp, simplex=False, monotone=True, repeats=False),
    "random": SelectorSpec(random_subset, simplex=True, monotone=False, repeats=True),
    "magnitude": SelectorSpec(magnitude, simplex=True, monotone=False, repeats=False),
    "global-imitation": SelectorSpec(
        global_imitation, simplex=True, monotone=False, repeats=True, needs_oracle=True
    ),
    "combined": SelectorSpec(
        global_imitation,
        simplex=True,
        monotone=False,
        repeats=True,
        defaults=(("include_local", True),),
        needs_oracle=True,
    ),
    "taylor": SelectorSpec(taylor, simplex=True, monotone=False, repeats=True, needs_oracle=True),
}
# Selectors on a consumer's whole output, not on the paper's layer problem.
OUTPUT_SELECTORS: dict[str, SelectorSpec] = {
    "whole-output": SelectorSpec(
        whole_output, simplex=False, monotone=True, repeats=False, problem=OutputProblem
    ),
}
METHODS: tuple[str, ...] = tuple(SELECTORS)
LOCAL_METHODS: tuple[str, ...] = tuple(m for m, s in SELECTORS.items() if not s.needs_oracle)


def spec(method: str) -> SelectorSpec:
    """The registered selector called ``method``; ValueError listing the valid names if none."""
    try:
        return (SELECTORS | OUTPUT_SELECTORS)[method]
    except KeyError:
        valid = ", ".join((*METHODS, *OUTPUT_SELECTORS))
        raise ValueError(f"unknown method {method!r}; valid methods: {valid}") from None


@checked
def select(
    problem: LayerProblem | OutputProblem,
    n: int | np.integer,
    method: str = "greedy-local",
    *,
    tol: Annotated[float, Ge(0), AllowInfNan(False)] | None = None,
    size: int | np.integer | None = None,
    seed: Annotated[int, Ge(0)] | np.integer | None = 0,
    on_step: Callable[[Step], None] | None = None,
    **options: object,
) -> Trace:
    """Run ``method`` on ``problem`` for at most ``n`` steps, or until the loss is <= ``tol``,
    or until ``size`` neurons carry weight (a budget of kept neurons, for selectors that may
    pick a neuron again and so keep fewer neurons than steps).

    ``seed`` seeds the selectors that draw at random (``random``). ``options`` go to the
    selector (e.g. ``allow_drop=True`` for greedy-local, ``repeats=False`` for fixed-step,
    ``solver="cvxpy"`` for fully-corrective); an unknown option is a ValueError.
    ``on_step(step)`` is called after every step taken (a progress bar, say). Arguments and
    options of the wrong type or out of range are refused in one line
    (:mod:`theory.arguments`).
    """
    chosen = spec(method)
    if not isinstance(problem, chosen.problem):
        raise ValueError(
            f"{method} selects on a {chosen.problem.__name__}; got {type(problem).__name__}"
        )
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise ValueError(f"n must be a positive integer number of steps; got {n!r}")
    if n <= 0:
        raise ValueError(f"n must be a positive integer number of steps; got {n}")
    if not chosen.repeats and n > problem.n_neurons:
        raise ValueError(
            f"n={n} exceeds N={problem.n_neurons} neurons, and {method} never picks a neuron twice"
        )
    if size is not None and not (isinstance(size, int | np.integer) and 1 <= size <= n):
        raise ValueError(f"size must be an integer in [1, n={n}]; got {size!r}")
    unknown = sorted(set(options) - set(chosen.options))
    if unknown:
        valid = ", ".join(chosen.options) or "none"
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for {method}; valid: {valid}")
    check_keywords(method, chosen.module.make, options)

    iterate, step = chosen.module.make(
        problem, np.random.default_rng(seed), **dict(chosen.defaults), **options
    )
    losses, sizes, gaps, neurons, kinds, support_sizes = [], [], [], [], [], []
    stopped = "n"
    for _ in range(n):
        taken = step(iterate)
        if taken is None:
            stopped = "converged"
            break
        losses.append(iterate.loss())
        sizes.append(taken.step_size)
        gaps.append(iterate.gap())
        neurons.append(taken.neuron)
        kinds.append(taken.kind)
        support_sizes.append(len(iterate.support))
        if on_step is not None:
            on_step(taken)
        if tol is not None and losses[-1] <= tol:
            stopped = "tol"
            break
        if size is not None and support_sizes[-1] >= size:
            stopped = "size"
            break
    return Trace(
        method=method,
        options=dict(options),
        weights=iterate.weights.copy(),
        support=iterate.support,
        order=np.asarray(iterate.order, dtype=np.intp),
        losses=np.asarray(losses),
        step_sizes=np.asarray(sizes),
        gaps=np.asarray(gaps),
        neurons=np.asarray(neurons, dtype=np.intp),
        kinds=tuple(kinds),
        support_sizes=np.asarray(support_sizes, dtype=np.intp),
        stopped=stopped,
        loss=losses[-1] if losses else iterate.loss(),
        seed=seed,
    )
