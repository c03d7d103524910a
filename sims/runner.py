"""Run an experiment: instances in parallel, each written atomically when it finishes.

Parallelism is joblib's: ``jobs`` local processes by default, or, with ``cluster`` (a Dask
scheduler address such as ``tcp://host:8786``), the same ``Parallel`` call on that cluster's
workers through joblib's Dask backend. Workers return results; only this process writes, so the
run folder need not be shared with a cluster. Instances already written are skipped: a run that
is killed resumes where it stopped and loses at most the instances in flight.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm

from sims import store
from sims.config import ExperimentConfig
from sims.instance import Instance, instances, run_instance

Work = Callable[[Any, Instance], tuple[dict, dict]]


def _work(config: Any, instance: Instance, work: Work | None) -> tuple[Instance, dict, dict]:
    rows, meta = (work or run_instance)(config, instance)
    return instance, rows, meta


@contextlib.contextmanager
def _backend(cluster: str | None) -> Iterator[None]:
    if cluster is None:
        yield
        return
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError(
            "--cluster needs dask.distributed on this machine: pip install 'dask[distributed]'"
        ) from None
    with Client(cluster), parallel_config(backend="dask"):
        yield


def run(
    config: ExperimentConfig,
    root: Path = Path("runs"),
    jobs: int = 1,
    cluster: str | None = None,
    progress: bool = True,
    work: Work | None = None,
) -> Path:
    """Run (or resume) ``config`` under ``root``; returns the run folder ``root/NAME-DIGEST``.

    ``config`` needs ``validate()``, ``as_dict()``, ``run_name``, ``networks`` and ``seeds``,
    ``seed``; ``work(config, instance) -> (rows, meta)`` computes one instance (default: the
    two-layer instance of :mod:`sims.instance`; :mod:`sims.deep` passes its own).
    """
    config.validate()
    if jobs == 0 or jobs < -1:
        raise ValueError(
            f"jobs must be a positive number of processes or -1 (all cores); got {jobs}"
        )
    run_dir = root / config.run_name
    store.write_config(run_dir, config.as_dict())
    every = instances(config)
    todo = [inst for inst in every if not store.is_done(run_dir, inst.key)]
    bar = tqdm(
        total=len(every),
        initial=len(every) - len(todo),
        desc=config.run_name,
        unit="instance",
        disable=not progress,
    )
    with bar, _backend(cluster):
        results = Parallel(n_jobs=jobs, return_as="generator_unordered")(
            delayed(_work)(config, inst, work) for inst in todo
        )
        for instance, rows, meta in results:
            store.write_instance(run_dir, instance.key, rows, meta)
            bar.update(1)
    return run_dir
