"""Every experiment, by name."""

from __future__ import annotations

from experiments import (
    bench_core,
    bench_torch,
    effnet_compare,
    effnet_path,
    mnist_compare,
    mnist_folding,
)
from sims.experiment import Experiment
from torchbridge import rates_study

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        effnet_compare.EXPERIMENT,
        mnist_compare.EXPERIMENT,
        effnet_path.EXPERIMENT,
        mnist_folding.EXPERIMENT,
        bench_core.EXPERIMENT,
        bench_torch.EXPERIMENT,
        rates_study.EXPERIMENT,
    )
}
