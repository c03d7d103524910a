"""Reading and writing torch checkpoints safely: ``weights_only`` loads that name the file
when it holds something else, checks that a state dict fits a model, atomic saves."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn


def read_checkpoint(path: Path, what: str) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU; a clear error naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors of many types, zip errors, ...
        raise ValueError(
            f"{path} cannot be read as {what} ({type(error).__name__}: {error})"
        ) from None


def is_state_dict(obj: object) -> bool:
    return isinstance(obj, dict) and all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()
    )


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """The state dict in ``path``; a clear error naming the file if it holds anything else."""
    state = read_checkpoint(path, what)
    if not is_state_dict(state):
        raise ValueError(f"{path} is not a state dict of tensors ({what})")
    return state


def check_state(state: dict, model: nn.Module, path: Path, what: str) -> None:
    """That the state dict ``state`` (read from ``path``) fits ``model``'s names and shapes;
    otherwise a short error counting what does not fit."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        first = (missing or unexpected or shapes)[0]
        raise ValueError(
            f"{path} does not hold {what}: {len(missing)} tensors missing, {len(unexpected)} "
            f"unexpected, {len(shapes)} of another shape (first: {first})"
        )


def save_atomically(obj: object, path: Path) -> None:
    """torch.save to a unique temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".partial")
    os.close(handle)
    try:
        torch.save(obj, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
