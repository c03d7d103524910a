"""Layer-by-layer channel pruning of CNNs, from the input side, chain by chain.

A chain is a dense convolution (the producer), the channel-wise modules after it (batch norms,
depthwise convolutions and squeeze-excitation blocks are sliced; activations, pooling, dropout
need nothing; a Flatten only after a global pooling), and the next dense convolution or linear
layer (the consumer), named by their dotted module names. Finders: :func:`sequential_chains`
(an nn.Sequential, nested ones flattened) and :func:`block_chains` (the internal channels of
torchvision's ResNet basic and bottleneck blocks, MobileNetV2's and MobileNetV3's inverted
residuals (with squeeze-excitation), and of timm's inverted residuals as in EfficientNet-Lite;
channels on residual paths are not touched); :mod:`torchbridge.groups` finds the chains and
groups of any network.

:mod:`torchbridge.prune` prunes the chains in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from torchbridge.surgery import is_depthwise, is_squeeze_excitation

CHANNELWISE = (
    nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.Tanh, nn.Identity, nn.Dropout,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
)  # fmt: skip


@dataclass(frozen=True)
class Chain:
    """Dotted module names: producer, the modules to slice in between, consumer."""

    producer: str
    between: tuple[str, ...]
    consumer: str

    @property
    def producers(self) -> tuple[str, ...]:
        """As a channel group's (:class:`Group`): the one producer."""
        return (self.producer,)

    @property
    def consumers(self) -> tuple[str, ...]:
        """As a channel group's (:class:`Group`): the one consumer."""
        return (self.consumer,)


@dataclass(frozen=True)
class Group:
    """A channel group: every convolution that writes or adds into its N channels
    (``producers``; a residual stream has one per block), the channel-wise modules to slice
    (``between``), and every layer that reads them (``consumers``). A :class:`Chain` is a
    group of one producer and one consumer."""

    producers: tuple[str, ...]
    between: tuple[str, ...]
    consumers: tuple[str, ...]

    @property
    def producer(self) -> str:
        """The first producer: the group's name."""
        return self.producers[0]


def chain_widths(model: nn.Module, chains: list[Chain]) -> dict[str, int]:
    """{producer: N}, the channels each chain has in ``model``."""
    return {c.producer: int(model.get_submodule(c.producer).out_channels) for c in chains}


def pick_chains(chains: list[Chain], positions: list[int] | None) -> list[Chain]:
    """The chains at ``positions`` of ``chains`` (0: the one nearest the input), in network
    order; every chain when ``positions`` is None. The others are left whole by pruning."""
    if positions is None:
        return list(chains)
    if bad := sorted(p for p in set(positions) if not 0 <= p < len(chains)):
        raise ValueError(
            f"chain position(s) {', '.join(map(str, bad))} out of range: this network has "
            f"{len(chains)} chains, positions 0 to {len(chains) - 1}"
        )
    if len(set(positions)) != len(positions):
        raise ValueError(f"chain positions given twice: {positions}")
    return [chains[p] for p in sorted(positions)]


def sequence_steps(sequence: nn.Sequential, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The modules a plain Sequential runs, in order, by dotted name (nested plain Sequentials
    flattened: each module's output is the next one's input)."""
    out = []
    for name, child in sequence.named_children():
        full = f"{prefix}.{name}" if prefix else name
        if type(child).forward is nn.Sequential.forward:  # runs its children in turn
            out += sequence_steps(child, full)
        else:
            out.append((full, child))
    return out


def chain_in(steps: list[tuple[str, nn.Module]], i: int) -> Chain | str | None:
    """The chain whose producer is ``steps[i]`` (a dense convolution) in a sequence of modules
    each fed by the one before: batch norms, depthwise convolutions and squeeze-excitation
    blocks over its N channels are sliced, channel-wise activations and pooling need nothing,
    a Flatten only after global pooling, up to the next dense convolution or linear layer
    reading N channels. The reason there is none where a module breaks it; None where the
    sequence ends first."""
    producer, conv = steps[i]
    n, between, pooled = conv.out_channels, [], False
    for name, module in steps[i + 1 :]:
        norm = isinstance(module, nn.BatchNorm2d) and module.num_features == n
        if norm or is_depthwise(module, n) or is_squeeze_excitation(module, n):
            between.append(name)
        elif isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            pooled = module.output_size in (1, (1, 1))
        elif isinstance(module, nn.Flatten):
            if not pooled:
                return (f"{name}: Flatten of a spatial map mixes channels with pixels; only a "
                        "Flatten after global pooling is supported")  # fmt: skip
        elif isinstance(module, CHANNELWISE):
            continue
        elif isinstance(module, nn.Conv2d) and module.groups != 1:
            return f"{name}: grouped convolution consumers are not supported"
        elif isinstance(module, nn.Conv2d | nn.Linear):
            reads = module.in_channels if isinstance(module, nn.Conv2d) else module.in_features
            if reads != n:
                return f"{name} reads {reads} features, not the {n} channels of {producer}"
            return Chain(producer, tuple(between), name)
        else:
            return f"{name}: unsupported module {type(module).__name__} in a chain"
    return None


def sequential_chains(model: nn.Sequential) -> list[Chain]:
    """Every producer -> consumer chain of a Sequential, in order (:func:`chain_in`); a clear
    error where a module breaks one."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be an nn.Sequential; got {type(model).__name__}")
    steps = sequence_steps(model)
    chains = []
    for i, (_, module) in enumerate(steps):
        if isinstance(module, nn.Conv2d) and module.groups == 1:
            found = chain_in(steps, i)
            if isinstance(found, str):
                raise ValueError(f"layer {found}")
            if found is not None:
                chains.append(found)
    return chains


def block_chains(model: nn.Module) -> list[Chain]:
    """Internal chains of torchvision ResNet (BasicBlock, Bottleneck), MobileNetV2 and
    MobileNetV3 (InvertedResidual with expansion; V3's squeeze-excitation is sliced with the
    chain) blocks, and of timm inverted residuals (EfficientNet-Lite; a squeeze-excitation is
    sliced with the chain), in module order."""
    chains = []
    for name, module in model.named_modules():
        kind = type(module).__name__
        if kind == "InvertedResidual" and hasattr(module, "conv_pw"):  # timm
            between = (f"{name}.bn1", f"{name}.conv_dw", f"{name}.bn2")
            if not isinstance(module.se, nn.Identity):
                between += (f"{name}.se",)  # squeeze-excitation
            chains.append(Chain(f"{name}.conv_pw", between, f"{name}.conv_pwl"))
        elif kind == "BasicBlock":
            chains.append(Chain(f"{name}.conv1", (f"{name}.bn1",), f"{name}.conv2"))
        elif kind == "Bottleneck":
            chains.append(Chain(f"{name}.conv1", (f"{name}.bn1",), f"{name}.conv2"))
            chains.append(Chain(f"{name}.conv2", (f"{name}.bn2",), f"{name}.conv3"))
        elif kind == "InvertedResidual" and hasattr(module, "conv") and len(module.conv) == 4:
            inner = f"{name}.conv"  # MobileNetV2: expand, depthwise, project conv, its norm
            between = (f"{inner}.0.1", f"{inner}.1.0", f"{inner}.1.1")
            chains.append(Chain(f"{inner}.0.0", between, f"{inner}.2"))
        elif kind == "InvertedResidual" and hasattr(module, "block"):  # MobileNetV3
            expand = module.block[0][0]
            if expand.groups != 1:  # no expansion: the block starts with its depthwise conv
                continue
            inner = f"{name}.block"
            between = [f"{inner}.0.1", f"{inner}.1.0", f"{inner}.1.1"]
            if len(module.block) == 4:
                between.append(f"{inner}.2")  # squeeze-excitation
            chains.append(
                Chain(f"{inner}.0.0", tuple(between), f"{inner}.{len(module.block) - 1}.0")
            )
    if not chains:
        raise ValueError(
            f"no supported block in {type(model).__name__}: block_chains knows ResNet "
            "BasicBlock/Bottleneck, MobileNetV2/V3 InvertedResidual and timm's InvertedResidual"
        )
    return chains
