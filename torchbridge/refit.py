"""Least-squares reconstruction of a consumer after its input channels were pruned.

Once a chain's channels are chosen, the consumer (a dense convolution or a linear layer) can
be refit on its kept input channels so that the pruned network's consumer reproduces the
unpruned network's consumer output (He et al. 2017; ThiNet, Luo et al. 2017). With X the
pruned network's input patches (M, C' K) with a column of ones for the bias, and Y the
unpruned consumer's output at the same positions (M, C_out), the refit weights solve the
ridge least squares

    min_[W b] ||X [W b]^T - Y||^2 + ridge * s * ||W||^2,     s = mean of diag(X^T X) over W's rows,

from the second moments X^T X and X^T Y alone, accumulated batch by batch in float64 on the
activations' device: nothing is stored per image. The ridge does not touch the bias. The
solve, and the choice of channels on these moments (the ``whole-output`` selector), are
:class:`theory.output_problem.OutputProblem`'s.

:func:`refit_chains` refits the consumers of a pruned network chain by chain from the input
side, so that each refit sees the errors left by the chains before it; it needs only the
pruned network and the unpruned one (module names shared), so it serves any selector,
Torch-Pruning's included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from theory.output_problem import OutputProblem
from torchbridge.chain_check import module_inputs
from torchbridge.chains import Chain, Group
from torchbridge.gram import conv_geometry
from torchbridge.walk import try_walk


def _patches(h: torch.Tensor, geometry: dict) -> torch.Tensor:
    """(B P, C K) float64 patches of a consumer input (B, C, H, W) or (B, C), channel-major."""
    if h.dim() == 2:
        h = h[:, :, None, None]
    unfolded = functional.unfold(h.to(torch.float64), **geometry)  # (B, C K, P)
    return unfolded.transpose(1, 2).reshape(-1, unfolded.shape[1])


class RefitMoments:
    """The moments of one consumer's refit: its pruned inputs against the unpruned output."""

    def __init__(self, consumer: nn.Module, kept: int, outputs: np.ndarray | None = None) -> None:
        """``consumer``: the unpruned consumer (its weight and bias give the target output);
        ``kept``: the input channels left to the pruned consumer; ``outputs``: its output
        channels left (indices; default all), where it is also a pruned group's producer."""
        weight, self._geometry = conv_geometry(consumer)
        self._linear = isinstance(consumer, nn.Linear)
        if not 1 <= kept <= weight.shape[1]:
            raise ValueError(f"kept must be in [1, {weight.shape[1]}] channels; got {kept}")
        rows = slice(None) if outputs is None else torch.as_tensor(outputs, dtype=torch.long)
        weight = weight.detach()[rows]
        self._shape = (weight.shape[0], kept, *weight.shape[2:])
        self._flat = weight.to(torch.float64).reshape(weight.shape[0], -1)  # (C_out, C K)
        bias = consumer.bias
        self._bias = None if bias is None else bias.detach()[rows].to(torch.float64)
        self.channels = weight.shape[1]
        self._xx: torch.Tensor | None = None  # (C' K + 1, C' K + 1)
        self._xy: torch.Tensor | None = None  # (C' K + 1, C_out)
        self._yy = 0.0  # sum of ||y||^2
        self._ff = 0.0  # sum of ||y - bias||^2: the energy of the output without its bias
        self.patches = 0

    def update(self, pruned: torch.Tensor, unpruned: torch.Tensor) -> None:
        """Add a batch: the pruned consumer's input (B, C', H, W) or (B, C') and the unpruned
        consumer's input on the same images (B, C, H, W) or (B, C)."""
        for name, h, c in (("pruned", pruned, self._shape[1]), ("unpruned", unpruned,
                                                                 self.channels)):  # fmt: skip
            if h.dim() not in (2, 4) or h.shape[1] != c:
                raise ValueError(f"{name} input must be (B, {c}, H, W) or (B, {c}); "
                                 f"got {tuple(h.shape)}")  # fmt: skip
        if pruned.shape[0] != unpruned.shape[0] or pruned.shape[2:] != unpruned.shape[2:]:
            raise ValueError(
                f"pruned and unpruned inputs must be of the same images and size; got "
                f"{tuple(pruned.shape)} and {tuple(unpruned.shape)}"
            )
        x = _patches(pruned.detach(), self._geometry)
        x = torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)
        f = _patches(unpruned.detach(), self._geometry) @ self._flat.to(x.device).T
        y = f if self._bias is None else f + self._bias.to(x.device)
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise ValueError("consumer inputs contain NaN or infinite values")
        self._yy += float((y * y).sum())
        self._ff += float((f * f).sum())
        if self._xx is None:
            self._xx, self._xy = x.T @ x, x.T @ y
        else:
            self._xx += x.T @ x
            self._xy += x.T @ y
        self.patches += x.shape[0]

    def problem(self, ridge: float = 1e-4, prior: torch.Tensor | None = None) -> OutputProblem:
        """The whole-output problem of the accumulated moments (float64, on the CPU): the
        pruned input's channels to choose from, the bias column always kept, relative errors
        against the output's energy without its bias. ``prior``: a weight shaped as
        :meth:`solve` returns it, toward which the ridge pulls (default 0)."""
        if self._xx is None:
            raise ValueError("no inputs were accumulated: call update() with a batch first")
        rows, outputs = self._xy.shape[0] - 1, self._xy.shape[1]
        pull = None
        if prior is not None:
            if prior.numel() != rows * outputs:
                raise ValueError(f"prior must have {self._shape} values; got {tuple(prior.shape)}")
            pull = prior.detach().to(torch.float64).reshape(outputs, rows).T.cpu().numpy()
        return OutputProblem.from_moments(
            self._xx.cpu().numpy(), self._xy.cpu().numpy(), self._yy,
            width=rows // self._shape[1], fixed=1, ridge=ridge, prior=pull, energy=self._ff,
            psd=True,
        )  # fmt: skip

    def as_weights(
        self, coefficients: np.ndarray, channels: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (C_out, channels, kh, kw) or (C_out, channels), bias (C_out,)), float64 on
        the activations' device, from an :class:`OutputProblem`'s coefficients
        (channels K + 1, C_out)."""
        solution = torch.from_numpy(np.ascontiguousarray(coefficients)).to(self._xy.device)
        weight = solution[:-1].T.reshape(self._shape[0], channels, *self._shape[2:])
        if self._linear:
            weight = weight.reshape(self._shape[0], channels)
        return weight, solution[-1]

    def solve(
        self, ridge: float = 1e-4, prior: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (C_out, C', kh, kw) or (C_out, C') for a linear consumer, bias (C_out,)),
        float64, on the activations' device: the refit on every channel of the pruned input.
        ``prior``: a weight of that shape toward which the ridge pulls
        (``ridge * s * ||W - prior||^2``; default 0), e.g. the selector's folded weights, so
        that directions the calibration data do not span keep them."""
        if not ridge >= 0:
            raise ValueError(f"ridge must be >= 0; got {ridge}")
        kept = self._shape[1]
        return self.as_weights(self.problem(ridge, prior).solve(np.arange(kept)), kept)

    def relative_error(self, weight: torch.Tensor, bias: torch.Tensor) -> float:
        """sum ||x [W b]^T - y||^2 / sum ||y - b_unpruned||^2 over the accumulated patches: the
        relative squared error of the consumer's output with ``weight`` and ``bias`` (shaped
        as :meth:`solve` returns them), against the energy of its output without bias."""
        if self._xx is None:
            raise ValueError("no inputs were accumulated: call update() with a batch first")
        w = torch.cat([weight.reshape(weight.shape[0], -1).T, bias[None, :]]).to(self._xx)
        residual = (w * (self._xx @ w)).sum() - 2 * (w * self._xy).sum() + self._yy
        return max(float(residual), 0.0) / self._ff if self._ff > 0 else 0.0

    @property
    def energy(self) -> float:
        """sum ||y - b_unpruned||^2 over the accumulated patches: the output's energy without
        bias, against which :meth:`relative_error` is relative."""
        return self._ff


TOWARD = ("zero", "selected")  # what the ridge pulls the refit weights toward


def consumer_input(model: nn.Module, name: str, batch: torch.Tensor) -> torch.Tensor:
    """The input of module ``name`` when ``model`` runs on ``batch``, the forward pass ended
    there (no grad)."""
    return module_inputs(model, [name], batch)[name]


class Inputs:
    """The consumer inputs of a network's chains (or groups), chain after chain, on the
    calibration batches, with the modules as they are when each chain is asked (earlier
    consumers may have been refit meanwhile): walked (about one forward pass in all) where
    ``walked`` and the network traces, else a forward pass up to the last consumer per chain
    and batch."""

    def __init__(
        self,
        model: nn.Module,
        chains: list[Chain | Group],
        batches: list[torch.Tensor],
        walked: bool,
    ) -> None:
        self.model, self.chains, self.batches = model, chains, batches
        self.walk = try_walk(model, chains) if walked else None
        self.states = [self.walk.start(b) for b in batches] if self.walk is not None else None

    def group_inputs(self, i: int, only: int | None = None) -> Iterable[tuple[torch.Tensor, ...]]:
        """Chain ``i``'s consumers' inputs (one per consumer; with ``only``, that consumer's
        alone) for each batch (chains asked in order)."""
        consumers = self.chains[i].consumers
        names = consumers if only is None else (consumers[only],)
        for b, batch in enumerate(self.batches):
            if self.walk is None:
                found = module_inputs(self.model, list(names), batch)
                yield tuple(found[name] for name in names)
            else:
                with torch.no_grad():
                    self.walk.advance(self.states[b], i)
                    yield self.walk.consumer_inputs(self.states[b], i, only)

    def consumer_inputs(self, i: int) -> Iterable[torch.Tensor]:
        """Chain ``i``'s consumer input for each batch (chains asked in order)."""
        for inputs in self.group_inputs(i):
            (only,) = inputs
            yield only


def refit_chains(
    pruned: nn.Module,
    reference: nn.Module,
    chains: list[Chain],
    batches: Iterable[torch.Tensor],
    ridge: float = 1e-4,
    toward: str = "zero",
) -> list[float]:
    """Refit, in place and in order from the input side, the consumer of every chain of a
    pruned network (any selector's, Torch-Pruning's included) so that it reproduces
    ``reference``'s consumer output (the unpruned network, same module names) on
    ``batches``; each refit sees the chains before it pruned and refit. Each consumer must
    keep all its output channels (a Bottleneck's middle convolution, pruned as the next
    chain's producer, is refit inside :func:`torchbridge.prune.prune_chains` instead).
    Returns each consumer's relative squared error after its refit."""
    batches = list(batches)
    for chain in chains:
        now, before = (m.get_submodule(chain.consumer).weight.shape[0] for m in (pruned, reference))
        if now != before:
            raise ValueError(
                f"consumer {chain.consumer} lost output channels ({before} -> {now}): its refit "
                "target is not known after the pruning"
            )
    modes = reference.training, pruned.training
    reference.eval()  # batch norms read their running statistics, and keep them
    pruned.eval()
    ours, theirs = (Inputs(m, chains, batches, walked=True) for m in (pruned, reference))
    try:
        errors = []
        for i, chain in enumerate(chains):

            def pairs(k: int, i: int = i) -> Iterable:
                return zip(ours.group_inputs(i, k), theirs.group_inputs(i, k), strict=True)

            errors.append(refit_consumers(pruned, reference, chain.consumers, pairs, ridge, toward))
        return errors
    finally:
        reference.train(modes[0])
        pruned.train(modes[1])


def refit_consumers(
    pruned: nn.Module,
    reference: nn.Module,
    consumers: tuple[str, ...],
    inputs: Callable[[int], Iterable[tuple[tuple[torch.Tensor], tuple[torch.Tensor]]]],
    ridge: float = 1e-4,
    toward: str = "zero",
    kept_outputs: dict[str, np.ndarray] | None = None,
) -> float:
    """Refit the ``consumers`` (of one chain or group, in the network's order) of ``pruned``
    in place, each in turn on its inputs after the earlier ones' refit (a residual stream's
    consumer reads what the blocks before it made of the stream): ``inputs(k)`` gives, per
    batch, ((consumer k's input in ``pruned``,), (its input in ``reference``,)), read when
    consumer k is refit, with the networks in eval mode. Returns their relative
    squared error: all residuals over all energies (for one consumer,
    :meth:`RefitMoments.relative_error`). The ridge pulls ``toward`` 0 ("zero") or the
    consumers' weights as the selector left them ("selected"). ``kept_outputs``: {name: the
    output channels kept} of consumers that are also pruned producers (their refit target is
    the reference's output on those channels)."""
    if toward not in TOWARD:
        raise ValueError(f"unknown toward {toward!r}; valid: {', '.join(TOWARD)}")
    kept_outputs = kept_outputs or {}
    residual, energy = 0.0, 0.0
    for k, name in enumerate(consumers):
        consumer = pruned.get_submodule(name)
        moments = RefitMoments(
            reference.get_submodule(name), in_channels(consumer), kept_outputs.get(name)
        )
        with torch.no_grad():  # the inputs may be computed lazily, as they are read
            for (ours,), (theirs,) in inputs(k):
                moments.update(ours, theirs)
        weight, bias = moments.solve(ridge, consumer.weight if toward == "selected" else None)
        like = {"dtype": consumer.weight.dtype, "device": consumer.weight.device}
        consumer.weight = nn.Parameter(weight.to(**like))
        consumer.bias = nn.Parameter(bias.to(**like))
        residual += moments.relative_error(weight, bias) * moments.energy
        energy += moments.energy
    return residual / energy if energy > 0 else 0.0


def in_channels(module: nn.Module) -> int:
    """The input channels (or features) a convolution (or linear layer) reads."""
    return module.in_features if isinstance(module, nn.Linear) else module.in_channels
