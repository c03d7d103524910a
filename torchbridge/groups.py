"""Channel groups of any CNN from Torch-Pruning's dependency graph.

Torch-Pruning traces a network once and, for any convolution's output channels, returns the
group of every module whose channels must go with them. :func:`graph_chains` reads each dense
convolution's group and keeps those that are one chain (:class:`torchbridge.chains.Chain`):
one producer (the convolution), channel-wise modules that surgery slices (batch norms,
depthwise convolutions, squeeze-excitation blocks), and one consumer (a dense convolution, or
a linear layer after global pooling). Activations and the squeeze-excitation's product are
element-wise nodes of the graph and need nothing. Every other group is kept whole, with the
reason: several producers (a residual stream: each block's last convolution adds into it),
several consumers, a concatenation or split, or a module surgery cannot slice.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from torchbridge.chains import Chain
from torchbridge.surgery import is_squeeze_excitation


@dataclass(frozen=True)
class GraphChains:
    """The chains found, in network order, and every other group kept whole: {its first
    producer: why}."""

    chains: list[Chain]
    kept_whole: dict[str, str]


NODES = {"_ConcatOp": "a concatenation", "_SplitOp": "a split", "_UnbindOp": "a split",
         "_OutputOp": "the network's output"}  # fmt: skip


def _dense(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups == 1


def _depthwise(module: nn.Module, n: int) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups == module.in_channels == n


def dependency_graph(model: nn.Module, example: torch.Tensor):
    """Torch-Pruning's dependency graph of ``model`` traced on ``example`` (a batch)."""
    try:
        import torch_pruning as tp  # noqa: PLC0415 (optional: graph chains only)
    except ImportError:
        raise ValueError("channel groups need Torch-Pruning: pip install torch-pruning") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Torch-Pruning warns about unwrapped parameters
        try:
            return tp.DependencyGraph().build_dependency(model, example_inputs=example)
        except Exception as error:  # its tracer fails in many ways (ShuffleNet: ZeroDivision)
            raise ValueError(
                f"Torch-Pruning cannot build the dependency graph of {type(model).__name__}: "
                f"{type(error).__name__}: {error}"
            ) from None


def _classify(group, modules: dict[str, nn.Module], n: int) -> tuple[list, list, list, list]:
    """(producers, between, consumers, reasons the group is not a chain) of one group;
    ``modules``: the model's, by name, in module order."""
    import torch_pruning as tp  # noqa: PLC0415

    out_fns = (tp.prune_conv_out_channels, tp.prune_batchnorm_out_channels)
    names = {id(m): name for name, m in modules.items()}
    producers, between, consumers, reasons = [], set(), [], []
    for dep, _ in group:
        module, fn = dep.target.module, dep.pruning_fn
        name = names.get(id(module))
        if name is None:  # a node of the graph, not a module
            kind = type(module).__name__
            if kind not in ("_ElementWiseOp", "_ReshapeOp"):
                reasons.append(NODES.get(kind, f"a {kind.strip('_').removesuffix('Op')} node"))
            continue
        parent = name.rpartition(".")[0]
        if name.endswith((".fc1", ".fc2")) and is_squeeze_excitation(modules[parent], n):
            between.add(parent)
        elif _depthwise(module, n):  # its input and output channels are the same
            between.add(name)
        elif fn == tp.prune_conv_out_channels and _dense(module):
            producers.append(name)
        elif fn in out_fns and isinstance(module, nn.BatchNorm2d):
            between.add(name)
        elif fn in (tp.prune_conv_in_channels, tp.prune_linear_in_channels) and (
            _dense(module) or isinstance(module, nn.Linear)
        ):
            consumers.append(name)
        else:
            reasons.append(f"{name} ({type(module).__name__}) cannot be sliced")
    order = list(modules).index
    return (
        sorted(producers, key=order),
        sorted(between, key=order),
        sorted(consumers, key=order),
        reasons,
    )


def graph_chains(model: nn.Module, example: torch.Tensor) -> GraphChains:
    """Every dense convolution's channel group of ``model`` (traced on ``example``, a batch of
    inputs): the chains, and the groups kept whole with the reason (see the module
    docstring)."""
    graph = dependency_graph(model, example)
    import torch_pruning as tp  # noqa: PLC0415

    modules = dict(model.named_modules())
    chains, kept_whole, seen = [], {}, set()
    for name, module in modules.items():
        inside = name.endswith((".fc1", ".fc2")) and is_squeeze_excitation(
            modules[name.rpartition(".")[0]])  # fmt: skip
        if not _dense(module) or inside or name in seen:
            continue
        group = graph.get_pruning_group(module, tp.prune_conv_out_channels, idxs=[0])
        n = module.out_channels
        producers, between, consumers, reasons = _classify(group, modules, n)
        seen.update(producers)
        if len(producers) > 1:
            reasons.append(f"{len(producers)} producers add into it ({', '.join(producers)})")
        if len(consumers) != 1:
            reasons.append(f"{len(consumers)} consumers ({', '.join(consumers) or 'none'})")
        elif (
            isinstance(modules[consumers[0]], nn.Linear) and modules[consumers[0]].in_features != n
        ):
            reasons.append(f"{consumers[0]} reads {n} channels flattened with their pixels")
        if reasons:
            kept_whole[name] = "; ".join(reasons)
        else:
            chains.append(Chain(name, tuple(between), consumers[0]))
    return GraphChains(chains, kept_whole)
