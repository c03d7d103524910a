"""Every experiment, by name."""

from __future__ import annotations

from experiments import effnet_compare, mnist_compare
from experiments.registry import Experiment

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for e in (effnet_compare.EXPERIMENT, mnist_compare.EXPERIMENT)
}
