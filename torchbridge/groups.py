"""Channel groups of any CNN from Torch-Pruning's dependency graph.

Torch-Pruning traces a network once and, for any convolution's output channels, returns the
group of every module whose channels must go with them. :func:`graph_groups` reads each dense
convolution's group and keeps those that surgery can prune
(:class:`torchbridge.chains.Group`): dense convolutions that write or add into the channels
(the producers: one, or one per block of a residual stream), channel-wise modules that surgery
slices (batch norms, depthwise convolutions, squeeze-excitation blocks), and the layers that
read them (the consumers: dense convolutions, or linear layers after global pooling).
Activations, the squeeze-excitation's product and a residual addition are element-wise nodes
of the graph and need nothing. Every other group is kept whole, with the reason: a
concatenation or split, channels that are the network's output, a module surgery cannot slice.
:func:`graph_chains` keeps the groups that are one chain (one producer, one consumer).

Where Torch-Pruning cannot trace the network (torchvision's ShuffleNetV2: its channel shuffle
breaks the tracer's index mapping), :func:`local_chains` falls back to the chains that can be
proved channel-wise from the modules alone: inside a plain ``nn.Sequential`` (nested ones
flattened) each module's output is the next one's input, so a dense convolution followed by
batch norms, depthwise convolutions and channel-wise activations up to a dense convolution or
linear layer is a chain; every other convolution's channels are kept whole.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from torchbridge.chains import Chain, Group, chain_in, sequence_steps
from torchbridge.surgery import is_depthwise, is_squeeze_excitation, squeeze_parts


@dataclass(frozen=True)
class GraphChains:
    """The chains found, in network order, and every other group kept whole: {its first
    producer: why}."""

    chains: list[Chain]
    kept_whole: dict[str, str]


@dataclass(frozen=True)
class GraphGroups:
    """The groups surgery can prune, in network order (of their first producer), and every
    other group kept whole: {its first producer: why}."""

    groups: list[Group]
    kept_whole: dict[str, str]


NODES = {"_ConcatOp": "a concatenation", "_SplitOp": "a split", "_UnbindOp": "a split",
         "_OutputOp": "the network's output"}  # fmt: skip


def _in_squeeze(name: str, modules: dict[str, nn.Module], n: int | None = None) -> bool:
    """Whether module ``name`` is the reduction or expansion of a squeeze-excitation block
    (over ``n`` channels)."""
    parent, _, last = name.rpartition(".")
    return parent in modules and (is_squeeze_excitation(modules[parent], n)
                                  and last in squeeze_parts(modules[parent]))  # fmt: skip


def _dense(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups == 1


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
        if _in_squeeze(name, modules, n):
            between.add(parent)
        elif is_depthwise(module, n):  # its input and output channels are the same
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


def graph_groups(model: nn.Module, example: torch.Tensor) -> GraphGroups:
    """Every dense convolution's channel group of ``model`` (traced on ``example``, a batch of
    inputs): the groups surgery can prune, and those kept whole with the reason (see the
    module docstring)."""
    graph = dependency_graph(model, example)
    import torch_pruning as tp  # noqa: PLC0415

    modules = dict(model.named_modules())
    groups, kept_whole, seen = [], {}, set()
    for name, module in modules.items():
        if not _dense(module) or _in_squeeze(name, modules) or name in seen:
            continue
        group = graph.get_pruning_group(module, tp.prune_conv_out_channels, idxs=[0])
        n = module.out_channels
        producers, between, consumers, reasons = _classify(group, modules, n)
        seen.update(producers)
        if not consumers:
            reasons.append("no layer reads them")
        flat = [c for c in consumers if getattr(modules[c], "in_features", n) != n]
        reasons += [f"{c} reads {n} channels flattened with their pixels" for c in flat]
        if reasons:
            kept_whole[producers[0] if producers else name] = "; ".join(reasons)
        else:
            groups.append(Group(tuple(producers), tuple(between), tuple(consumers)))
    return GraphGroups(groups, kept_whole)


def as_chain(group: Group) -> Chain | Group:
    """A group of one producer and one consumer as a :class:`Chain`; any other as it is."""
    if len(group.producers) == len(group.consumers) == 1:
        return Chain(group.producer, group.between, group.consumers[0])
    return group


def pruning_groups(model: nn.Module, example: torch.Tensor) -> GraphChains:
    """Every group of :func:`graph_groups` (traced on ``example``), one of one producer and
    one consumer as a :class:`Chain`, and the groups kept whole."""
    found = graph_groups(model, example)
    return GraphChains([as_chain(g) for g in found.groups], found.kept_whole)


def graph_chains(model: nn.Module, example: torch.Tensor) -> GraphChains:
    """The groups of :func:`graph_groups` that are one chain (one producer, one consumer);
    every other group kept whole, with the reason."""
    found = graph_groups(model, example)
    chains, kept_whole = [], dict(found.kept_whole)
    for group in map(as_chain, found.groups):
        if isinstance(group, Chain):
            chains.append(group)
            continue
        reasons = []
        if len(group.producers) > 1:
            reasons.append(f"{len(group.producers)} producers add into it "
                           f"({', '.join(group.producers)})")  # fmt: skip
        if len(group.consumers) > 1:
            reasons.append(f"{len(group.consumers)} consumers ({', '.join(group.consumers)})")
        kept_whole[group.producer] = "; ".join(reasons)
    order = list(dict(model.named_modules())).index
    return GraphChains(chains, dict(sorted(kept_whole.items(), key=lambda kv: order(kv[0]))))


def local_chains(model: nn.Module, reason: str) -> GraphChains:
    """The chains inside the plain Sequentials of ``model`` (:func:`torchbridge.chains.chain_in`
    on their modules, nested ones flattened); every other dense convolution kept whole, with
    ``reason`` (why the graph was not used) and what ends its channels' chain."""
    found: dict[str, Chain] = {}
    broken: dict[str, str] = {}
    for name, module in model.named_modules():
        if type(module).forward is not nn.Sequential.forward:
            continue
        steps = sequence_steps(module, name)
        for i, (producer, conv) in enumerate(steps):
            if not _dense(conv) or producer in found:
                continue
            chain = chain_in(steps, i)
            if isinstance(chain, Chain):
                found[producer] = chain
            elif chain is not None:
                broken[producer] = chain
    modules = dict(model.named_modules())
    chains = [found[name] for name in modules if name in found]
    leave = "its channels leave the Sequential block they are made in"
    kept = {name: f"{reason}; {broken.get(name, leave)}"
            for name, m in modules.items()
            if _dense(m) and name not in found and not _in_squeeze(name, modules)}  # fmt: skip
    return GraphChains(chains, kept)
