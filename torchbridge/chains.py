"""Layer-by-layer channel pruning of CNNs, from the input side, chain by chain.

A chain is a dense convolution (the producer), the channel-wise modules after it (batch norms
and depthwise convolutions are sliced; activations, pooling, dropout need nothing; a Flatten
only after a global pooling), and the next dense convolution or linear layer (the consumer),
named by their dotted module names. In a Sequential only a batch norm right after the producer
is recognised (no depthwise convolutions); :func:`block_chains` knows the blocks that have
depthwise convolutions. Finders: :func:`sequential_chains` (an nn.Sequential) and
:func:`block_chains` (the internal channels of torchvision's ResNet basic and bottleneck
blocks and MobileNetV2's inverted residuals, and of timm's inverted residuals as in
EfficientNet-Lite; channels on residual paths are not touched).

For each chain in order the consumer's inputs are captured on the calibration batches
(earlier chains already pruned), their Gram matrix is accumulated (:mod:`torchbridge.gram`), a
selector of :mod:`theory` picks the channels and their weights, and
:mod:`torchbridge.surgery` removes the others.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from theory import LayerProblem, select
from theory.selectors import SELECTORS
from torchbridge.gram import GramAccumulator
from torchbridge.surgery import prune_chain

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


def sequential_chains(model: nn.Sequential) -> list[Chain]:
    """Every producer -> consumer chain of a Sequential, in order (see the module docstring)."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be an nn.Sequential; got {type(model).__name__}")
    layers = list(model)
    chains = []
    for i, layer in enumerate(layers):
        if not (isinstance(layer, nn.Conv2d) and layer.groups == 1):
            continue
        norm, pooled = None, False
        for j in range(i + 1, len(layers)):
            nxt = layers[j]
            if isinstance(nxt, nn.BatchNorm2d) and norm is None and j == i + 1:
                norm = j
            elif isinstance(nxt, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                pooled = nxt.output_size in (1, (1, 1))
            elif isinstance(nxt, nn.Flatten):
                if not pooled:
                    raise ValueError(
                        f"layer {j}: Flatten of a spatial map mixes channels with pixels; "
                        "only a Flatten after global pooling is supported"
                    )
            elif isinstance(nxt, CHANNELWISE):
                continue
            elif isinstance(nxt, nn.Conv2d | nn.Linear):
                if isinstance(nxt, nn.Conv2d) and nxt.groups != 1:
                    raise ValueError(f"layer {j}: grouped convolution consumers are not supported")
                chains.append(Chain(str(i), () if norm is None else (str(norm),), str(j)))
                break
            else:
                raise ValueError(f"layer {j}: unsupported module {type(nxt).__name__} in a chain")
    return chains


def block_chains(model: nn.Module) -> list[Chain]:
    """Internal chains of torchvision ResNet (BasicBlock, Bottleneck) and MobileNetV2
    (InvertedResidual with expansion) blocks, and of timm inverted residuals without
    squeeze-excitation (EfficientNet-Lite), in module order."""
    chains = []
    for name, module in model.named_modules():
        kind = type(module).__name__
        if kind == "InvertedResidual" and hasattr(module, "conv_pw"):  # timm
            if not isinstance(module.se, nn.Identity):
                raise ValueError(f"{name}: squeeze-excitation couples channels; not supported yet")
            between = (f"{name}.bn1", f"{name}.conv_dw", f"{name}.bn2")
            chains.append(Chain(f"{name}.conv_pw", between, f"{name}.conv_pwl"))
        elif kind == "BasicBlock":
            chains.append(Chain(f"{name}.conv1", (f"{name}.bn1",), f"{name}.conv2"))
        elif kind == "Bottleneck":
            chains.append(Chain(f"{name}.conv1", (f"{name}.bn1",), f"{name}.conv2"))
            chains.append(Chain(f"{name}.conv2", (f"{name}.bn2",), f"{name}.conv3"))
        elif kind == "InvertedResidual" and len(module.conv) == 4:  # expand, depthwise, project
            inner = f"{name}.conv"
            between = (f"{inner}.0.1", f"{inner}.1.0", f"{inner}.1.1")
            chains.append(Chain(f"{inner}.0.0", between, f"{inner}.2"))
    if not chains:
        raise ValueError(
            f"no supported block in {type(model).__name__}: block_chains knows ResNet "
            "BasicBlock/Bottleneck, MobileNetV2 InvertedResidual and timm's InvertedResidual"
        )
    return chains


@dataclass(frozen=True)
class LayerReport:
    chain: Chain
    kept: int
    total: int
    loss: float  # the consumer's output change, E ||.||^2 (the trace's final loss)
    output_rel: float  # loss / E ||F||^2: the relative squared error of the consumer's output


def channel_outputs(consumer: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """psi (N, B, ...) in float64: psi_i = N * (the consumer's output from input channel i
    alone, without bias), by one grouped convolution."""
    x = inputs.detach().to(torch.float64)
    w = consumer.weight.detach().to(torch.float64)
    n = w.shape[1]
    if isinstance(consumer, nn.Linear):
        return n * (x.T[:, :, None] * w.T[:, None, :])  # (N, B, C_out)
    grouped = w.transpose(0, 1).reshape(n * w.shape[0], 1, *w.shape[2:])
    out = nn.functional.conv2d(
        x, grouped, None, consumer.stride, consumer.padding, consumer.dilation, groups=n
    )
    out = out.reshape(x.shape[0], n, w.shape[0], *out.shape[2:])
    return n * out.transpose(0, 1)


def run_capturing(model: nn.Module, consumer: nn.Module, batches, visit) -> None:
    """Run ``model`` on every batch (no grad), calling ``visit(inputs)`` with each batch of
    ``consumer``'s inputs: one pass over the calibration data."""
    handle = consumer.register_forward_pre_hook(lambda _, args: visit(args[0]))
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch)
    finally:
        handle.remove()


def output_oracle(
    model: nn.Sequential, chain: Chain, inputs: torch.Tensor, reference: torch.Tensor
):
    """Oracle of :mod:`theory.selectors.global_imitation` for a chain of a Sequential: the
    logits' mean squared distance to ``reference`` (B_total, classes) when the consumer's
    output is (1 - g) sum_i a_i psi_i + g psi_j + bias, run through the layers after it.
    ``inputs``: the consumer's inputs on the calibration batches, concatenated."""
    index = int(chain.consumer)
    consumer = model[index]
    rest = model[index + 1 :]
    psi = channel_outputs(consumer, inputs)  # (N, B, ...)
    bias = 0.0 if consumer.bias is None else consumer.bias.detach().to(torch.float64)
    if consumer.bias is not None and psi.dim() == 5:
        bias = bias[:, None, None]
    dtype = consumer.weight.dtype

    def oracle(weights, neurons, steps):
        a = torch.as_tensor(weights, dtype=torch.float64)
        base = torch.tensordot(a, psi, dims=1)
        losses = []
        with torch.no_grad():
            for j, g in zip(neurons, steps, strict=True):
                z = (1.0 - g) * base + g * psi[int(j)] + bias
                logits = rest(z.to(dtype)).to(torch.float64)
                losses.append(float(((logits - reference) ** 2).sum(dim=1).mean()))
        return losses

    return oracle


def prune_chains(
    model: nn.Module,
    chains: list[Chain],
    batches: Iterable[torch.Tensor],
    keep: float,
    method: str = "greedy-local",
    seed: int = 0,
    **options: object,
) -> tuple[nn.Module, list[LayerReport]]:
    """A pruned copy of ``model``: every chain keeps at most k = round(keep * N) channels.

    ``batches``: calibration inputs (iterated once per chain). ``method``/``options`` go to
    :func:`theory.select`, which runs until k channels carry weight (``size=k``; at most 20 k
    steps for the selectors that may pick a channel again, k for the others). The global
    selectors (``global-imitation``, ``combined``) score candidates by the mean squared
    distance of the network's logits to the unpruned network's on the calibration inputs;
    they need an nn.Sequential, whose layers after the consumer can be run on their own.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be a fraction in (0, 1]; got {keep}")
    batches = list(batches)
    if not batches:
        raise ValueError("no calibration batches")
    oracle_needed = SELECTORS[method].needs_oracle if method in SELECTORS else False
    if oracle_needed and not isinstance(model, nn.Sequential):
        raise ValueError(f"{method} on a real network needs an nn.Sequential model")
    with torch.no_grad():
        reference = torch.cat([model(batch) for batch in batches]) if oracle_needed else None
    model = copy.deepcopy(model)
    reports = []
    for chain in chains:
        consumer = model.get_submodule(chain.consumer)
        accumulator = GramAccumulator(consumer)
        captured: list[torch.Tensor] = []

        def visit(inputs, acc=accumulator, keep_inputs=captured):
            acc.update(inputs)
            if oracle_needed:
                keep_inputs.append(inputs)

        run_capturing(model, consumer, batches, visit)
        problem = LayerProblem.from_gram(accumulator.gram())
        n = problem.n_neurons
        k = max(1, round(keep * n))
        steps = min(20 * k, 20 * n) if SELECTORS[method].repeats else k
        if oracle_needed:
            oracle = output_oracle(model, chain, torch.cat(captured), reference)
            options = options | {"oracle": oracle}
        trace = select(problem, steps, method, size=k, seed=seed, **options)
        between = [model.get_submodule(name) for name in chain.between]
        producer, between, consumer = prune_chain(
            model.get_submodule(chain.producer), between, consumer, trace.weights
        )
        for name, module in zip(
            (chain.producer, *chain.between, chain.consumer),
            (producer, *between, consumer),
            strict=True,
        ):
            model.set_submodule(name, module)
        energy = problem.target_norm2
        reports.append(
            LayerReport(chain, int(trace.support.size), n, trace.loss, trace.loss / energy)
        )
    return model, reports


def prune_sequential(
    model: nn.Sequential,
    batches: Iterable[torch.Tensor],
    keep: float,
    method: str = "greedy-local",
    seed: int = 0,
    **options: object,
) -> tuple[nn.Sequential, list[LayerReport]]:
    """:func:`prune_chains` over :func:`sequential_chains`."""
    return prune_chains(model, sequential_chains(model), batches, keep, method, seed, **options)


def accuracy(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == labels).float().mean())


def agreement(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == reference(x).argmax(dim=1)).float().mean())
