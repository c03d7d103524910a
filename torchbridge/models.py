"""The architectures the command line prunes, their weights (offline), and saved pruned models.

Weights: ``torchvision`` takes the file of torchvision's default weights enum from the user's
cache (``$TORCH_HOME/hub/checkpoints``, never downloaded); ``package`` the EfficientNet-Lite0
weights package; ``none`` a random initialisation (smoke tests); any other value is a path to a
state dict. A pruned model is saved as plain tensors, ints and strings (architecture, kept width
of every chain, state dict), so ``torch.load(..., weights_only=True)`` rebuilds it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

from torchbridge.chain_check import check_chains
from torchbridge.chains import Chain, block_chains, chain_widths
from torchbridge.checkpoints import (
    check_state,
    is_state_dict,
    read_checkpoint,
    read_state_dict,
    save_atomically,
)
from torchbridge.efficientnet import load_efficientnet_lite0
from torchbridge.groups import GraphChains, graph_chains, local_chains, pruning_groups
from torchbridge.images import IMAGENET, SYMMETRIC, Views
from torchbridge.prune import resize

# the networks whose chains the block finder knows (torchbridge.chains.block_chains); every other
# network's come from the dependency graph (torchbridge.groups.graph_chains)
BLOCKS = ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
          "mobilenet_v3_large", "efficientnet_lite0")  # fmt: skip
TORCHVISION = tuple(torchvision.models.list_models(module=torchvision.models))  # classifiers
ARCHS = (*TORCHVISION, "efficientnet_lite0")
TIMM = "timm:"  # timm:NAME, any of timm.list_models()
PY = "py:"  # py:MODULE:CALLABLE, a user's own network
ARCHS_IN_WORDS = (
    "a torchvision classifier's name (resnet18, efficientnet_b0, ...: "
    "torchvision.models.list_models() lists them), efficientnet_lite0, timm:NAME for any "
    "of timm.list_models(), or py:MODULE:CALLABLE for a network of your own"
)
TRACE_SIZE = 224  # the side of the image the dependency graph is traced on
FORMAT = "logtickets-pruned-1"


def _timm():
    try:
        import timm  # noqa: PLC0415 (optional: timm's networks only)
    except ImportError:
        raise ValueError("timm's networks need timm: pip install timm") from None
    return timm


def user_network(arch: str) -> Callable[[], nn.Module]:
    """The callable of py:MODULE:CALLABLE (MODULE imported from the Python path, the working
    directory first), with a clear error when it cannot be found."""
    module_name, _, name = arch.removeprefix(PY).partition(":")
    if not module_name or not name:
        raise ValueError(f"{arch!r}: a network of your own is py:MODULE:CALLABLE")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{arch!r}: cannot import {module_name}: {error}") from None
    make = getattr(module, name, None)
    if not callable(make):
        raise ValueError(f"{arch!r}: {module_name} has no callable {name}")
    return make


def check_arch(arch: object) -> None:
    """A clear error unless ``arch`` is one of ARCHS, timm:NAME with NAME a timm model, or
    py:MODULE:CALLABLE with such a callable."""
    if isinstance(arch, str) and arch in ARCHS:
        return
    if isinstance(arch, str) and arch.startswith(PY):
        user_network(arch)
        return
    if isinstance(arch, str) and arch.startswith(TIMM):
        name = arch.removeprefix(TIMM)
        if name not in _timm().list_models():
            raise ValueError(f"unknown timm model {name!r}: timm.list_models() lists them")
        return
    raise ValueError(f"unknown architecture {arch!r}; valid: {ARCHS_IN_WORDS}")


def build(arch: str, num_classes: int = 1000) -> nn.Module:
    """``arch`` with random weights, in eval mode."""
    check_arch(arch)
    if arch.startswith(PY):  # the user's callable decides its classes
        model = user_network(arch)()
        if not isinstance(model, nn.Module):
            raise ValueError(f"{arch!r} returned {type(model).__name__}, not an nn.Module")
        return model.eval()
    if arch.startswith(TIMM):
        model = _timm().create_model(arch.removeprefix(TIMM), pretrained=False,
                                     num_classes=num_classes)  # fmt: skip
        return model.eval()
    if arch == "efficientnet_lite0":
        return _timm().create_model("tf_efficientnet_lite0", num_classes=num_classes).eval()
    return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes).eval()


def found_chains(model: nn.Module, arch: str, groups: bool = False) -> GraphChains:
    """The chains of ``model``, an ``arch``, and the channels kept whole with the reason: the
    block finder's for the networks it knows (BLOCKS), else the dependency graph's, else
    (where it cannot be built) those inside plain Sequentials, each checked against the
    network (:mod:`torchbridge.chain_check`); with ``groups``, every group of the dependency
    graph (a group of one producer and one consumer as a chain); a clear error when there is
    none."""
    if arch in BLOCKS and not groups:
        return GraphChains(block_chains(model), {})
    weight = next(model.parameters())
    example = torch.randn(2, 3, TRACE_SIZE, TRACE_SIZE, generator=torch.Generator().manual_seed(0))
    example = example.to(weight)
    try:
        found = (pruning_groups if groups else graph_chains)(model, example[:1])
    except ValueError as error:
        found = local_chains(model, str(error))
        check_chains(model, found.chains, example)
    if not found.chains:
        reasons = sorted(set(found.kept_whole.values()))[:3]
        raise ValueError(
            f"{arch}: none of its {len(found.kept_whole)} channel groups is one chain "
            f"(producer, channel-wise modules, consumer); for example: {'; '.join(reasons)}"
        )
    return found


def chains_of(model: nn.Module, arch: str) -> list[Chain]:
    """The chains of :func:`found_chains`."""
    return found_chains(model, arch).chains


def views(arch: str, size: int = 224) -> Views:
    """The input convention of ``arch``'s pretrained weights."""
    if arch.startswith(TIMM):
        config = _timm().models.get_pretrained_cfg(arch.removeprefix(TIMM))
        if config is not None:
            return Views(size, tuple(config.mean), tuple(config.std))
    mean, std = SYMMETRIC if arch == "efficientnet_lite0" else IMAGENET
    return Views(size, mean, std)


def torchvision_weights_file(arch: str) -> Path:
    """Where torchvision's default weights for ``arch`` sit in the user's cache."""
    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def load(arch: str, weights: str) -> nn.Module:
    """``arch`` with ``weights`` ('torchvision', 'package', 'none' or a state-dict path)."""
    if weights == "none":
        return build(arch)
    if weights == "package":
        if arch != "efficientnet_lite0":
            raise ValueError("--weights package holds EfficientNet-Lite0 weights only")
        return load_efficientnet_lite0()
    if weights == "torchvision":
        if arch not in TORCHVISION:
            raise ValueError(
                f"torchvision has no weights for {arch}: give --weights PATH (a state dict) "
                "or none; nothing is downloaded"
            )
        path = torchvision_weights_file(arch)
        if not path.is_file():
            raise ValueError(
                f"torchvision weights for {arch} not found: put {path.name} into {path.parent} "
                "(set TORCH_HOME to use another cache); nothing is downloaded"
            )
    else:
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"weights file not found: {path}")
        if arch == "efficientnet_lite0":
            return load_efficientnet_lite0(path)
    model = build(arch)
    state = read_state_dict(path, f"{arch} weights")
    check_state(state, model, path, f"{arch} weights")
    model.load_state_dict(state)
    return model


def save_pruned(
    path: Path, arch: str, model: nn.Module, chains: list[Chain], groups: bool = False
) -> None:
    """Write the pruned ``model`` (an ``arch`` with the given chains, or with ``groups`` the
    dependency graph's groups, pruned) to ``path``."""
    widths = chain_widths(model, chains)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_atomically({"format": FORMAT, "arch": arch, "widths": widths, "groups": groups,
                     "state_dict": state}, path)  # fmt: skip


def pruned_metadata(path: Path) -> dict:
    """{"arch", "widths" (producer -> kept channels), "state_dict"} of a file written by
    :func:`save_pruned`, checked, without unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"pruned model not found: {path}")
    saved = read_checkpoint(path, "a pruned model")
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pruned model saved by logtickets ({FORMAT})")
    state, widths, arch = saved.get("state_dict"), saved.get("widths"), saved.get("arch")
    if (
        not (isinstance(arch, str) and (arch in ARCHS or arch.startswith((TIMM, PY))))
        or not is_state_dict(state)
        or not isinstance(widths, dict)
        or not all(isinstance(k, str) and isinstance(v, int) for k, v in widths.items())
    ):
        raise ValueError(
            f"{path} is damaged: it needs an arch, widths (chain -> int) and a state dict"
        )
    if not any(k.endswith("weight") for k in state):
        raise ValueError(f"{path} is damaged: its state dict holds no weights")
    groups = saved.get("groups", False)  # absent from files of earlier versions
    if not isinstance(groups, bool):
        raise ValueError(f"{path} is damaged: its groups flag is not true or false")
    return {"arch": arch, "widths": widths, "groups": groups, "state_dict": state}


def load_pruned(path: Path) -> nn.Module:
    """The pruned module (eval mode) of a file written by :func:`save_pruned`, rebuilt from
    its architecture and widths (:func:`pruned_metadata`), without unpickling code."""
    saved = pruned_metadata(path)
    arch, state = saved["arch"], saved["state_dict"]
    weights = [v for k, v in state.items() if k.endswith("weight")]
    model = build(arch, num_classes=weights[-1].shape[0])
    model = resize(model, found_chains(model, arch, saved["groups"]).chains, saved["widths"])
    modules = dict(model.named_modules())
    for key, value in state.items():  # biases added by --compensate, --refit, whole-output
        owner, _, name = key.rpartition(".")
        if name == "bias" and getattr(modules.get(owner), "bias", False) is None:
            modules[owner].bias = torch.nn.Parameter(torch.zeros_like(value))
    check_state(state, model, Path(path), f"a pruned {arch} of these widths")
    model.load_state_dict(state)
    return model.eval()
