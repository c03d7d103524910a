"""Fine-tuning a pruned network by distillation against the unpruned one.

The loss of a step is the mean over its images of KL(unpruned || pruned) of the softmax
outputs, plus, where the images have labels of the network's classes and ``labels`` > 0,
that weight times the cross-entropy with the labels ((1 - labels) times the KL). AdamW,
the learning rate constant or on a cosine to 0 over all steps; batch norms frozen (the
network in eval mode throughout: running statistics and dropout as in use). Each epoch
visits the images in an order drawn from ``seed`` and the epoch alone, so a run resumed
from a checkpoint (the network, the optimiser and the schedule, written atomically every
``every`` steps and at the end) continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt, Le
from torch import nn
from torch.nn import functional
from tqdm import tqdm

from sims.schema import STRICT, about, check_fields
from torchbridge.checkpoints import read_checkpoint, save_atomically
from torchbridge.oracle import output_distance

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Recipe:
    """How a pruned network is fine-tuned (see the module docstring)."""

    __pydantic_config__ = STRICT

    epochs: Annotated[int, Ge(1), about("passes over the fine-tuning images")] = 2
    lr: Annotated[float, Gt(0), Le(1), about("AdamW's learning rate")] = 1e-4
    schedule: Annotated[
        Literal[SCHEDULES], about("the learning rate over the steps: constant, or cosine to 0")
    ] = "constant"
    batch: Annotated[int, Ge(1), about("images per step")] = 32
    weight_decay: Annotated[float, Ge(0), about("AdamW's decoupled weight decay")] = 0.0
    labels: Annotated[
        float,
        Ge(0),
        Le(1),
        about("weight of the labels' cross-entropy where the images have the network's classes"),
    ] = 0.0
    seed: Annotated[int, Ge(0), about("seeds the order of the images in each epoch")] = 0

    def check(self, where: str = "finetune", as_flags: bool = True) -> None:
        check_fields(self, where, as_flags)


def epoch_order(images: int, seed: int, epoch: int) -> torch.Tensor:
    """(images,): the order in which ``epoch`` visits the images (from ``seed`` and the epoch
    alone)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(images, generator=generator)


def _resume(path: Path, recipe: Recipe, model: nn.Module, optimiser, schedule, total: int) -> list:
    """The step losses so far of the checkpoint at ``path`` (its state loaded into ``model``,
    ``optimiser`` and ``schedule``), after checking it is this recipe's."""
    saved = read_checkpoint(path, "a fine-tuning checkpoint")
    if not isinstance(saved, dict) or saved.get("recipe") != asdict(recipe):
        raise ValueError(
            f"{path} is not a checkpoint of this fine-tuning (another recipe, or another "
            "file): remove it, or give its recipe"
        )
    losses = saved["losses"]
    if len(losses) > total:
        raise ValueError(f"{path} has {len(losses)} steps; this fine-tuning has {total}")
    model.load_state_dict(saved["model"])
    optimiser.load_state_dict(saved["optimiser"])
    schedule.load_state_dict(saved["schedule"])
    return list(losses)


def finetune(
    model: nn.Module,
    reference: nn.Module,
    images: torch.Tensor,
    recipe: Recipe = Recipe(),
    *,
    labels: torch.Tensor | None = None,
    checkpoint: Path | None = None,
    every: int = 20,
    progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Fine-tune ``model`` in place against ``reference`` on ``images`` (B, 3, H, W), with
    ``labels`` (B,) where the images have the network's classes; resumes from ``checkpoint``
    where it exists (and writes it every ``every`` steps and at the end). ``on_step(step,
    loss)`` is called after each step. Returns the mean loss of each epoch (the last one's
    steps taken so far where the run resumes mid-way, all of its steps otherwise)."""
    recipe.check()
    if images.dim() != 4 or len(images) == 0:
        raise ValueError(f"images must be a batch (B, C, H, W); got {tuple(images.shape)}")
    if labels is not None and labels.shape != (len(images),):
        raise ValueError(f"labels must be ({len(images)},), one per image; got {labels.shape}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a whole number of steps >= 1; got {every!r}")
    per_epoch = math.ceil(len(images) / recipe.batch)
    total = recipe.epochs * per_epoch
    optimiser = torch.optim.AdamW(model.parameters(), recipe.lr, weight_decay=recipe.weight_decay)

    def factor(step: int) -> float:  # of the learning rate, at ``step``
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / total))
        return 1.0 if recipe.schedule == "constant" else cosine

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
    losses: list[float] = []
    if checkpoint is not None and Path(checkpoint).exists():
        losses = _resume(Path(checkpoint), recipe, model, optimiser, schedule, total)
    reference.eval()
    model.eval()  # batch norms frozen
    weight = recipe.labels if labels is not None else 0.0
    with tqdm(total=total, initial=len(losses), desc="finetune", unit="step",
              disable=not progress) as bar:  # fmt: skip
        while len(losses) < total:
            epoch, i = divmod(len(losses), per_epoch)
            idx = epoch_order(len(images), recipe.seed, epoch)[i * recipe.batch :][: recipe.batch]
            x = images[idx.to(images.device)]
            with torch.no_grad():
                target = reference(x)
            output = model(x)
            loss = output_distance(output, target, "kl").mean()
            if weight > 0:
                cross = functional.cross_entropy(output, labels[idx.to(labels.device)])
                loss = (1.0 - weight) * loss + weight * cross
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
            if checkpoint is not None and (len(losses) % every == 0 or len(losses) == total):
                state = {"recipe": asdict(recipe), "losses": losses,
                         "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                         "schedule": schedule.state_dict()}  # fmt: skip
                save_atomically(state, Path(checkpoint))
            if on_step is not None:
                on_step(len(losses), losses[-1])
    return [
        sum(part) / len(part)
        for part in (losses[e * per_epoch : (e + 1) * per_epoch] for e in range(recipe.epochs))
        if part
    ]
