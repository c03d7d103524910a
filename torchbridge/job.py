"""The prune, eval and finetune jobs of the command line: load, calibrate, prune, count,
compare, fine-tune, save.

:func:`prune_job` writes ``pruned.pt`` (loadable with ``weights_only=True``, see
:mod:`torchbridge.models`) and ``report.json`` (configuration, seed, versions; per chain:
kept/total, relative output error, loss, seconds; whole network: FLOPs, MACs, parameters and
latency before and after, agreement and KL with the unpruned network on held-out images,
accuracy when the data folder has as many classes as the network has outputs (ImageNet's
1,000 folders in sorted order, as torchvision's ImageFolder reads them), timings).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt, Le
from torch import nn

from sims.schema import STRICT, about, check_fields
from sims.store import atomic_write, provenance, versions
from torchbridge.baselines import torch_pruning_prune
from torchbridge.batchnorm import recalibrate_batch_norms
from torchbridge.budget import (
    ALLOCATIONS,
    check_floor,
    flops_fraction,
    prune_to_flops,
    uniform_keep,
)
from torchbridge.chain_check import check_chains
from torchbridge.chains import Chain
from torchbridge.counting import count, latency
from torchbridge.evaluate import accuracy, compare
from torchbridge.finetune import Recipe, finetune
from torchbridge.images import folder_sets, photo_sets
from torchbridge.methods import METHODS, check_settings
from torchbridge.models import (
    ARCHS_IN_WORDS,
    check_arch,
    found_chains,
    load,
    load_pruned,
    pruned_metadata,
    save_pruned,
    views,
)
from torchbridge.oracle import OBJECTIVES
from torchbridge.prune import LayerReport, prune_chains
from torchbridge.refit import TOWARD, refit_chains


def resolve_device(device: str) -> str:
    """``device``, with 'auto' read as 'cuda' where CUDA is present and 'cpu' elsewhere."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_device(device: str) -> None:
    """A clear error unless ``device`` is the CPU or a CUDA device that this machine has."""
    try:
        parsed = torch.device(device)
    except RuntimeError:
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device!r} is not a device here (cpu, cuda, cuda:1)")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available here")
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"--device {device}: this machine has {count} CUDA device(s)")


METHOD_NAMES = tuple(METHODS)


@dataclass(frozen=True)
class PruneConfig:
    """One prune run: the network, its weights and data, the method, one budget (keep, tol,
    flops or widths), and the settings that some methods take (:mod:`torchbridge.methods`).
    Each field declares its type, range, valid values and help (:mod:`sims.schema`): the flags
    of ``prune``, its configuration files and the reference of keys come from them."""

    __pydantic_config__ = STRICT

    arch: Annotated[
        str | None,
        about(
            "the network: any torchvision classifier by name (the seven of the block finder, "
            "the others' chains from the dependency graph), efficientnet_lite0, timm:NAME "
            "(any of timm's models), or py:MODULE:CALLABLE (a function returning your own "
            "nn.Module); required by prune (none: a network given in Python)"
        ),
    ] = None
    weights: Annotated[
        str, about("torchvision (its cache), package (EfficientNet-Lite0's), none, or a path")
    ] = "torchvision"
    data: Annotated[str, about("photos (shipped inside packages) or an ImageFolder directory")] = (
        "photos"
    )
    groups: Annotated[
        bool,
        about(
            "prune every channel group of the dependency graph (residual streams and channels "
            "read by several layers included), not only the chains; theory's layer selectors "
            "(not the global or whole-output ones) with any budget, --refit and --compensate"
        ),
    ] = False
    method: Annotated[Literal[METHOD_NAMES], about("the pruning method")] = "greedy-local"
    keep: Annotated[
        float | None, Gt(0), Le(1), about("budget: the fraction of every chain's channels kept")
    ] = None
    tol: Annotated[
        float | None, Ge(0), about("budget: the layer loss / energy left in every chain")
    ] = None
    flops: Annotated[
        float | None, Gt(0), Le(1), about("budget: the fraction of the FLOPs kept")
    ] = None
    widths: Annotated[
        str | None,
        about("budget: a JSON file {producer: channels}, or the report.json of a prune run"),
    ] = None
    allocation: Annotated[
        Literal[ALLOCATIONS],
        about(
            "with --flops: one shared tolerance searched, the widths it predicts on the "
            "unpruned network (2 passes), one uniform fraction, or the widths that remove "
            "channels where the network's output loss added per FLOP saved, measured at 8 "
            "widths per chain on the --oracle-images, is least"
        ),
    ] = "tolerance"
    compensate: Annotated[
        bool, about("add the mean change of each consumer's output to its bias")
    ] = False
    resolve: Annotated[
        bool, about("re-solve each chain's convex weights on its kept channels (simplex QP)")
    ] = False
    refit: Annotated[
        bool,
        about(
            "after the selection, refit each consumer on its kept channels by ridge least "
            "squares to the unpruned consumer's output, chain by chain from the input side"
        ),
    ] = False
    ridge: Annotated[
        float, Ge(0), about("with --refit: the ridge, relative to the mean input energy")
    ] = 1e-4
    refit_toward: Annotated[
        Literal[TOWARD],
        about("with --refit: what the ridge pulls the weights toward: 0, or the selector's"),
    ] = "zero"
    recalibrate_bn: Annotated[
        bool,
        about("re-estimate every batch norm's statistics on the calibration images at the end"),
    ] = False
    images: Annotated[int, Ge(1), about("calibration images")] = 256
    test_images: Annotated[
        int, Ge(1), about("held-out images (ImageFolder data; photos: always 80 views)")
    ] = 256
    batch: Annotated[int, Ge(1), about("images per batch")] = 32
    size: Annotated[int, Ge(1), about("image side in pixels")] = 224
    seed: Annotated[
        int, Ge(0), about("seed of the image sample and of the randomised selectors")
    ] = 0
    device: Annotated[str, about("cpu, cuda or cuda:N; auto: cuda where present (reported)")] = (
        "auto"
    )
    candidates: Annotated[
        int | None, Ge(1), about("output-loss selectors: candidates scored per step")
    ] = None
    no_repeats: Annotated[
        bool,
        about(
            "only channels never picked compete, so k steps keep k (as in the GFS authors' "
            "code; with repeats a width may take up to 20 k steps)"
        ),
    ] = False
    objective: Annotated[
        Literal[OBJECTIVES],
        about("output-loss selectors and the marginal allocation: the loss on the output"),
    ] = "kl"
    oracle_images: Annotated[
        int,
        Ge(1),
        about("output-loss selectors and the marginal allocation: images of the output loss"),
    ] = 64

    def check(self, where: str = "prune", as_flags: bool = True) -> None:
        """Every field against its declaration, then the rules across fields: one budget,
        the settings the method takes, a device this machine has."""
        check_fields(self, where, as_flags)
        if self.arch is not None:
            check_arch(self.arch)
        given = [b for b in (self.keep, self.tol, self.flops, self.widths) if b is not None]
        if len(given) != 1:
            raise ValueError("give exactly one budget: --keep, --tol, --flops or --widths")
        check_settings(self.method, {"tol": self.tol, "compensate": self.compensate,
                                     "resolve": self.resolve, "no_repeats": self.no_repeats,
                                     "candidates": self.candidates,
                                     "groups": self.groups})  # fmt: skip
        check_device(resolve_device(self.device))


@dataclass(frozen=True)
class Data:
    """A run's images: calibration and test views, their labels where the data have them
    (class indices of the folder, None for the photos), and what they are."""

    calibration: torch.Tensor
    test: torch.Tensor
    calibration_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    about: dict


def _data(config: PruneConfig) -> Data:
    """The images of ``config.data`` (photos or an ImageFolder tree) for its arch."""
    transform = views(config.arch, config.size)
    if config.data == "photos":
        calibration, test, about = photo_sets(transform, config.images, config.seed)
        return Data(calibration, test, None, None, about)
    calibration, test, labels, about = folder_sets(
        Path(config.data), transform, config.images, config.test_images, config.seed
    )
    return Data(calibration, test, labels[: len(calibration)], labels[len(calibration) :], about)


def read_widths(path: Path) -> dict[str, int]:
    """Channels to keep per chain (by producer name) from a JSON file: a mapping, or the
    report.json of a prune run (its layers' kept counts)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--widths file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as error:
        raise ValueError(f"--widths {path} cannot be read as JSON: {error}") from None
    if isinstance(data, dict) and isinstance(data.get("layers"), list):
        try:
            return {layer["chain"]["producer"]: layer["kept"] for layer in data["layers"]}
        except (KeyError, TypeError):
            raise ValueError(f"--widths {path}: not the layers of a prune report") from None
    if not isinstance(data, dict):
        raise ValueError(f"--widths {path} must map chain producers to channel counts")
    return data


def prune_model(
    model: nn.Module,
    chains: list[Chain],
    calibration: list[torch.Tensor],
    config: PruneConfig,
) -> tuple[nn.Module, list, list]:
    """Prune with the config's method and budget: (pruned model, reports, FLOPs probes).
    With ``refit``, theory's selectors refit each consumer before the next chain is chosen
    (:func:`torchbridge.prune.prune_chains`); Torch-Pruning's pruned network is refit after.
    With ``recalibrate_bn``, the batch norms' statistics are re-estimated on the calibration
    batches at the end (:mod:`torchbridge.batchnorm`)."""
    pruned, reports, probes = _selected(model, chains, calibration, config)
    if config.recalibrate_bn:
        recalibrate_batch_norms(pruned, calibration)
    return pruned, reports, probes


def _selected(
    model: nn.Module, chains: list[Chain], calibration: list[torch.Tensor], config: PruneConfig
) -> tuple[nn.Module, list, list]:
    """The config's method at its budget, refit where asked: (pruned, reports, probes)."""
    widths = read_widths(Path(config.widths)) if config.widths is not None else None
    if not METHODS[config.method].theory:  # Torch-Pruning's baselines
        keep = config.keep
        if config.flops is not None:  # Torch-Pruning's widths are uniform: ours at that target
            fraction_of = flops_fraction(model, chains, calibration[0][:1])
            check_floor(fraction_of, chains, config.flops)
            keep, _ = uniform_keep(model, chains, config.flops, fraction_of)
        check_chains(model, chains, calibration[0][:2])
        pruned = torch_pruning_prune(model, chains, calibration, config.method, keep, widths)
        errors = [None] * len(chains)
        if config.refit:
            errors = refit_chains(
                pruned, model, chains, calibration, config.ridge, config.refit_toward
            )
        reports = [
            LayerReport(c, pruned.get_submodule(c.producer).out_channels,
                        model.get_submodule(c.producer).out_channels, None, None, None, e)
            for c, e in zip(chains, errors, strict=True)
        ]  # fmt: skip
        return pruned, reports, []
    options = {"method": config.method, "seed": config.seed, "compensate": config.compensate,
               "resolve": config.resolve, "refit": config.refit, "ridge": config.ridge,
               "refit_toward": config.refit_toward}  # fmt: skip
    if METHODS[config.method].output_loss or config.allocation == "marginal":
        options |= {"objective": config.objective, "oracle_images": config.oracle_images}
    if METHODS[config.method].output_loss and config.candidates is not None:
        options["candidates"] = config.candidates
    if config.no_repeats:
        options["repeats"] = False
    if config.flops is not None:
        return prune_to_flops(
            model, chains, calibration, config.flops, allocation=config.allocation,
            progress=True, **options,
        )  # fmt: skip
    budget = {"keep": config.keep, "tol": config.tol, "widths": widths}
    budget = {k: v for k, v in budget.items() if v is not None}
    pruned, reports = prune_chains(model, chains, calibration, progress=True, **budget, **options)
    return pruned, reports, []


def measure(
    model: nn.Module,
    reference: nn.Module,
    test: torch.Tensor,
    labels: torch.Tensor | None,
    batch: int,
) -> dict:
    """FLOPs, MACs, parameters, latency (s per batch of ``batch``) and, on ``test``, agreement
    and KL against ``reference``, and accuracy when ``labels`` (class indices of the
    network's outputs) are given."""
    counts = count(model, test[:1])
    row = asdict(counts) | {"latency_s": latency(model, test[:batch], repeats=5)}
    row |= compare(model, reference, test.split(batch))
    if labels is not None:
        row["accuracy"] = accuracy(model, test, labels, batch)
    return row


def _labels_of(model: nn.Module, test: torch.Tensor, labels, about: dict):
    """The folder's labels when its classes are the network's outputs (same count), else
    None: folder indices of other classes are not the network's classes."""
    if labels is None:
        return None
    with torch.no_grad():
        outputs = model(test[:1]).shape[1]
    return labels if about.get("classes") == outputs else None


def prune_job(config: PruneConfig, out: Path) -> dict:
    """Run one prune job; write ``out/pruned.pt`` and ``out/report.json``; return the report."""
    if config.arch is None:
        raise ValueError(f"prune: give --arch, {ARCHS_IN_WORDS}")
    config.check()
    config = replace(config, device=resolve_device(config.device))
    start = time.perf_counter()
    device = torch.device(config.device)
    model = load(config.arch, config.weights).to(device).eval()
    found = found_chains(model, config.arch, config.groups)
    chains = found.chains
    data = _data(config)
    calibration, test, about = data.calibration.to(device), data.test.to(device), data.about
    labels = _labels_of(model, test, data.test_labels, about)
    loaded = time.perf_counter()
    batches = list(calibration.split(config.batch))
    pruned, reports, probes = prune_model(model, chains, batches, config)
    pruned_at = time.perf_counter()
    before = measure(model, model, test, labels, config.batch)
    after = measure(pruned, model, test, labels, config.batch)
    report = {
        "config": asdict(config),
        "data": about | {"calibration_images": len(calibration), "test_images": len(test)},
        "versions": versions(),
        **provenance(),
        "layers": [r.as_dict() for r in reports],
        "kept_whole": found.kept_whole,
        "flops_search": [asdict(p) for p in probes],
        "before": before,
        "after": after,
        "ratios": {k: after[k] / before[k] for k in ("flops", "params", "latency_s")},
        "seconds": {"load": loaded - start, "prune": pruned_at - loaded},
    }
    save_pruned(out / "pruned.pt", config.arch, pruned.cpu(), chains, config.groups)
    atomic_write(out / "report.json", json.dumps(report, indent=2))
    return report


def eval_job(path: Path, data: str, weights: str | None, config: PruneConfig) -> dict:
    """Counts of a saved pruned model and, against the unpruned network with ``weights``
    (when given), agreement and KL on the data's held-out images."""
    arch, model = pruned_metadata(path)["arch"], load_pruned(path)
    config = replace(config, arch=arch, data=data, keep=1.0)
    config.check("eval")
    images = _data(config)
    test, about = images.test, images.about
    labels = _labels_of(model, test, images.test_labels, about)
    reference = load(arch, weights) if weights is not None else model
    return {"arch": arch, "data": about} | measure(model, reference, test, labels, config.batch)


DATA_FIELDS = ("images", "test_images", "size", "device")  # what finetune takes of a PruneConfig


def finetune_job(
    path: Path, weights: str, recipe: Recipe, config: PruneConfig, out: Path, progress: bool = True
) -> dict:
    """Fine-tune the pruned model saved at ``path`` by distillation against its unpruned
    network (``weights``) on the calibration images that ``config`` (data, images, size,
    seed, device) selects, with the labels' cross-entropy where the data's classes are the
    network's (:mod:`torchbridge.finetune`); resumes from ``out/checkpoint.pt``; writes
    ``out/pruned.pt`` (as prune does) and ``out/report.json`` (agreement, KL and accuracy
    on the held-out images before and after, the loss of each epoch)."""
    recipe.check()
    saved = pruned_metadata(path)
    arch = saved["arch"]
    config = replace(config, arch=arch, keep=1.0)
    config.check("finetune")
    config = replace(config, device=resolve_device(config.device))
    device = torch.device(config.device)
    model = load_pruned(path).to(device)
    reference = load(arch, weights).to(device).eval()
    images = _data(config)
    calibration, test = images.calibration.to(device), images.test.to(device)
    labels = _labels_of(model, test, images.test_labels, images.about)
    tuning = None if labels is None else images.calibration_labels.to(device)
    if recipe.labels > 0 and tuning is None:
        raise ValueError(
            "--labels weighs the labels' cross-entropy: give --data a folder whose classes "
            f"are the network's outputs (got {config.data})"
        )
    start = time.perf_counter()
    before = measure(model, reference, test, labels, config.batch)
    losses = finetune(model, reference, calibration, recipe, labels=tuning,
                      checkpoint=out / "checkpoint.pt", progress=progress)  # fmt: skip
    model.eval()
    after = measure(model, reference, test, labels, config.batch)
    report = {
        "model": str(path),
        "arch": arch,
        "weights": weights,
        "recipe": asdict(recipe),
        "config": {k: getattr(config, k) for k in ("data", "seed", *DATA_FIELDS)},
        "data": images.about | {"images": len(calibration), "test_images": len(test)},
        "versions": versions(),
        **provenance(),
        "losses": losses,
        "before": before,
        "after": after,
        "seconds": time.perf_counter() - start,
    }
    chains = found_chains(reference, arch, saved["groups"]).chains
    save_pruned(out / "pruned.pt", arch, model.cpu(), chains, saved["groups"])
    atomic_write(out / "report.json", json.dumps(report, indent=2))
    return report
