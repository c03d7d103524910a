"""Run an experiment: instances in parallel, each written atomically when it finishes.

Instances go through one "unordered map" (results come back as they finish) chosen by
``cluster``:

- ``None``: joblib, ``jobs`` local processes;
- a Dask scheduler address (``tcp://host:8786``): the same joblib ``Parallel`` call, on that
  cluster's workers through joblib's Dask backend;
- a Ray cluster, ``ray:auto``, ``ray:HOST:6379`` (a cluster this machine belongs to) or
  ``ray://HOST:10001`` (Ray Client): ``ray.util.multiprocessing.Pool.imap_unordered`` (joblib's
  Ray backend cannot return results before the whole batch ends, which would lose them on a
  kill).

The loop that writes results is the same for all three. Workers return results; only this
process writes, so the run folder need not be shared with a cluster. Instances already written
are skipped: a run that is killed resumes where it stopped and loses at most the instances in
flight.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm

from sims import store
from sims.config import ExperimentConfig
from sims.instance import Instance, instances, run_instance

Work = Callable[[Any, Instance], tuple[dict, dict]]


UnorderedMap = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]


def _work(config: Any, work: Work | None, instance: Instance) -> tuple[Instance, dict, dict]:
    rows, meta = (work or run_instance)(config, instance)
    return instance, rows, meta


def add_parallel_flags(parser: argparse.ArgumentParser, jobs: int) -> None:
    """``--jobs`` (default ``jobs``) and ``--cluster``: where :func:`unordered_map` runs."""
    parser.add_argument("--jobs", type=int, default=jobs, help="local processes (-1: all cores)")
    parser.add_argument(
        "--cluster",
        default=None,
        help="a Dask scheduler (tcp://host:8786) or a Ray cluster (ray:auto, ray:HOST:6379, "
        "ray://HOST:10001)",
    )


@contextlib.contextmanager
def unordered_map(jobs: int, cluster: str | None) -> Iterator[UnorderedMap]:
    """``map(f, items)`` yielding f(item) as each finishes, locally (``jobs`` processes of
    joblib, -1: all cores) or on a cluster (a Dask scheduler's address, or ``ray:ADDRESS``)."""
    if cluster is not None and cluster.startswith("ray:"):
        with _ray_pool(cluster) as pool:
            yield pool.imap_unordered
        return

    def joblib_map(f: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        return Parallel(n_jobs=jobs, return_as="generator_unordered")(delayed(f)(i) for i in items)

    if cluster is None:
        yield joblib_map
        return
    try:
        from dask.distributed import Client  # noqa: PLC0415 (optional: --cluster only)
    except ImportError:
        raise ValueError(
            "--cluster needs dask.distributed on this machine: pip install 'dask[distributed]'"
        ) from None
    try:
        client = Client(cluster, timeout="10s")
    except (OSError, TimeoutError) as error:
        raise ValueError(f"cannot reach the Dask scheduler at {cluster}: {error}") from None
    with client, parallel_config(backend="dask"):
        yield joblib_map


@contextlib.contextmanager
def _ray_pool(cluster: str) -> Iterator[Any]:
    """A Ray process pool on the cluster ``ray:ADDRESS`` or ``ray://HOST:PORT``."""
    try:
        import ray  # noqa: PLC0415 (optional: --cluster ray:... only)
        from ray.util.multiprocessing import Pool  # noqa: PLC0415
    except ImportError:
        raise ValueError(f"--cluster {cluster} needs ray here: pip install ray") from None
    address = cluster if cluster.startswith("ray://") else cluster.removeprefix("ray:")
    if not address:
        raise ValueError("a Ray cluster address is ray:auto, ray:HOST:PORT or ray://HOST:PORT")
    try:
        ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError) as error:
        raise ValueError(f"cannot reach the Ray cluster at {address}: {error}") from None
    try:
        with Pool() as pool:
            yield pool
    finally:
        ray.shutdown()


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
    with bar, unordered_map(jobs, cluster) as each_done:
        for instance, rows, meta in each_done(functools.partial(_work, config, work), todo):
            store.write_instance(run_dir, instance.key, rows, meta)
            bar.update(1)
    return run_dir
