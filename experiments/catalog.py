"""Every experiment, by name."""

from __future__ import annotations

from experiments import effnet_compare, mnist_compare
from experiments.registry import Experiment

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for e in (effnet_compare.EXPERIMENT, mnist_compare.EXPERIMENT)
}


def experiment(name: str) -> Experiment:
    """The experiment ``name``; a clear error listing them otherwise."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}") from None
