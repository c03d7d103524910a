"""Run folders: atomic writes of finished instances, reading them back as tidy tables.

RUN_DIR/config.json             configuration, seed, versions, machine, git commit, creation time
RUN_DIR/instances/KEY.csv       one row per selector and step (written first)
RUN_DIR/instances/KEY.json      geometry and timings; its presence marks KEY as done
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("logtickets", "numpy", "scipy", "cvxpy", "scikit-learn", "joblib", "torch",
            "torchvision", "timm", "torch-pruning")  # fmt: skip
SOURCE = Path(__file__).resolve().parents[1]  # the checkout the code runs from


def atomic_write(path: Path, text: str) -> None:
    """Write text to path so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _git(*args: str) -> str | None:
    """The output of ``git args`` in the code's checkout; None where git or the checkout
    is missing."""
    try:
        done = subprocess.run(("git", "-C", str(SOURCE), *args), capture_output=True,
                              text=True, timeout=30, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance() -> dict[str, Any]:
    """The git commit the code runs at (None outside a git checkout), whether tracked files
    differ from it (``dirty``), and the machine."""
    commit = _git("rev-parse", "HEAD")
    changes = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "commit": commit,
        "dirty": None if changes is None else bool(changes),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """RUN_DIR/config.json: the configuration, package versions, machine, git commit and
    creation time, written once (a resumed run keeps the first record)."""
    path = run_dir / "config.json"
    if path.exists():
        return  # resume: the first run's record stands (same digest, same configuration)
    record = {
        "config": config,
        "versions": versions(),
        **provenance(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    atomic_write(path, json.dumps(record, indent=2))


def check_folder(path: Path, flag: str) -> None:
    """A clear error, before any work, when ``path`` or a folder above it is a file."""
    for above in (path, *path.parents):
        if above.exists():
            if not above.is_dir():
                raise ValueError(f"{flag} {path}: {above} is a file, not a folder")
            return


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as error:  # JSONDecodeError, bad bytes, unreadable
        raise ValueError(f"{path} cannot be read as JSON: {error}") from None


def read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    if not path.exists():
        raise ValueError(f"{run_dir} is not a run folder: {path.name} is missing")
    record = _read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError(f"{path} is damaged: it holds no configuration")
    return record


def is_done(run_dir: Path, key: str) -> bool:
    return (run_dir / "instances" / f"{key}.json").exists()


def write_instance(run_dir: Path, key: str, rows: dict[str, list], meta: dict[str, Any]) -> None:
    """KEY.csv: one row per entry of the equal-length columns ``rows`` (prefixed with the
    instance's family and seed from ``meta``); then KEY.json, which marks KEY as done."""
    columns = list(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(("family", "seed", *columns))
    family, seed = meta["family"], meta["seed"]
    for values in zip(*(rows[c] for c in columns), strict=True):
        writer.writerow((family, seed, *(repr(v) if isinstance(v, float) else v for v in values)))
    atomic_write(run_dir / "instances" / f"{key}.csv", buffer.getvalue())
    atomic_write(run_dir / "instances" / f"{key}.json", json.dumps(meta))


def read_instances(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, metas) of every finished instance; numbers in rows come back as int or float."""
    rows, metas = [], []
    for meta_path in sorted((run_dir / "instances").glob("*.json")):
        metas.append(_read_json(meta_path))
        table = meta_path.with_suffix(".csv")
        try:
            with table.open() as handle:
                read = list(csv.DictReader(handle))
        except OSError as error:
            raise ValueError(f"{table}, the rows of a finished instance: {error}") from None
        if not read or any(None in row or None in row.values() for row in read):
            raise ValueError(
                f"{table} is damaged (no rows, or rows of the wrong length): delete it and "
                f"{meta_path.name}, and run the same command to compute the instance again"
            )
        rows += [{k: _number(v) for k, v in row.items()} for row in read]
    return rows, metas


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
