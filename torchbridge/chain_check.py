"""Every chain, found or hand-written, checked once against the network it prunes.

Surgery is exact only if a chain's consumer reads the producer's channels through channel-wise
modules: consumer input channel k must depend on producer channel k alone. :func:`check_chains`
tests that on calibration images: for each chain it perturbs a random half S of the producer's
output channels and runs the network again; any consumer input channel outside S that moves
means something in between mixes channels (a channel shuffle, a concatenation that reorders,
a cross-channel gate), and the chain is refused with the channels that moved. A
squeeze-excitation block in between reads every channel by design (surgery folds it: see
:mod:`torchbridge.surgery`): during the check its pooled input is held at the unperturbed
value, so that only the channel-wise path is tested. A channel group
(:class:`torchbridge.chains.Group`) is checked the same way, every producer perturbed on the
same channels and every consumer's input compared.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from torchbridge.chains import Chain, Group
from torchbridge.surgery import is_squeeze_excitation, squeeze_parts

RTOL = 1e-5  # consumer inputs outside S must be unchanged to this relative tolerance


class _Reached(Exception):
    """Raised by a hook to end a forward pass once every module watched was reached."""


def module_inputs(
    model: nn.Module, names: list[str], images: torch.Tensor, outputs: bool = False
) -> dict[str, torch.Tensor]:
    """The inputs (or with ``outputs`` the outputs) of the modules ``names`` on ``images``
    (no grad; the pass ends once all were reached), by name; a clear error naming those the
    forward pass does not call."""
    found, hooks = {}, []

    def keep(name: str, value: torch.Tensor) -> None:
        found.setdefault(name, value.detach().clone())
        if len(found) == len(set(names)):
            raise _Reached

    for name in names:
        module = model.get_submodule(name)
        if outputs:
            hooks.append(module.register_forward_hook(
                lambda _, __, out, name=name: keep(name, out)))  # fmt: skip
        else:
            hooks.append(module.register_forward_pre_hook(
                lambda _, args, name=name: keep(name, args[0])))  # fmt: skip
    try:
        with torch.no_grad():
            model(images)
    except _Reached:
        pass
    finally:
        for hook in hooks:
            hook.remove()
    if missing := [name for name in names if name not in found]:
        raise ValueError(f"{', '.join(missing)} not called in the forward pass")
    return found


def _squeezes(model: nn.Module, chain: Chain) -> list[str]:
    """The names of the reductions of the squeeze-excitation blocks between ``chain``'s ends."""
    out = []
    for name in chain.between:
        module = model.get_submodule(name)
        if is_squeeze_excitation(module):
            out.append(f"{name}.{squeeze_parts(module)[0]}")
    return out


def check_chain(
    model: nn.Module, chain: Chain | Group, images: torch.Tensor, seed: int = 0
) -> None:
    """A clear error unless every consumer input channel k of ``chain`` (or of a group)
    depends on channel k of its producers alone on ``images`` (see the module docstring).
    Each producer's output is replaced by its unperturbed value plus noise on the chosen
    channels: what a group's consumers feed back into its producers (a residual block's
    first convolution into its last) cannot reach the check."""
    squeezes = _squeezes(model, chain)
    before = module_inputs(model, [*chain.consumers, *squeezes], images)
    produced = module_inputs(model, list(chain.producers), images, outputs=True)
    n = model.get_submodule(chain.producer).out_channels
    rng = np.random.default_rng(seed)
    chosen = torch.zeros(n, dtype=torch.bool)
    chosen[torch.as_tensor(rng.permutation(n)[: max(1, n // 2)])] = True
    hooks = []
    for k, name in enumerate(chain.producers):
        out = produced[name]
        noise = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + k))
        shape = (1, -1, *([1] * (out.dim() - 2)))
        value = out + noise.to(out) * chosen.to(out.device).reshape(shape)
        hooks.append(model.get_submodule(name).register_forward_hook(
            lambda _, __, ___, value=value: value))  # fmt: skip
    for name in squeezes:  # the squeeze reads every channel: hold it at the unperturbed input
        hooks.append(model.get_submodule(name).register_forward_pre_hook(
            lambda _, __, held=before[name]: (held,)))  # fmt: skip
    try:
        after = module_inputs(model, list(chain.consumers), images)
    finally:
        for hook in hooks:
            hook.remove()
    for consumer in chain.consumers:
        _compare(chain, consumer, before[consumer], after[consumer], chosen)


def _compare(chain: Chain | Group, consumer: str, reference: torch.Tensor,
             after: torch.Tensor, chosen: torch.Tensor) -> None:  # fmt: skip
    """A clear error where ``consumer``'s input moved outside the ``chosen`` channels."""
    n = chosen.numel()
    if reference.shape[1] != n:
        raise ValueError(
            f"chain {chain.producer} -> {consumer}: the consumer reads "
            f"{reference.shape[1]} channels, the producer writes {n}"
        )
    moved = (after - reference).abs().flatten(2).amax(dim=2) if after.dim() > 2 else (
        after - reference).abs()  # fmt: skip
    scale = reference.abs().max().clamp_min(1e-30)
    leaked = torch.nonzero((moved.amax(dim=0) > RTOL * scale) & ~chosen.to(moved.device))
    if leaked.numel():
        shown = ", ".join(str(int(k)) for k in leaked.flatten()[:5])
        raise ValueError(
            f"chain {chain.producer} -> {consumer} is not channel-wise: perturbing "
            f"producer channels moved consumer input channel(s) {shown}"
            f"{' ...' if leaked.numel() > 5 else ''} that were not perturbed (a channel "
            "shuffle, a reordering concatenation or a cross-channel gate in between); refused"
        )


def check_chains(model: nn.Module, chains: list[Chain | Group], images: torch.Tensor) -> None:
    """:func:`check_inputs` and :func:`check_names`, then :func:`check_chain` for every chain
    or group of ``model``, on ``images`` (a few suffice)."""
    check_inputs(model, images)
    check_names(model, chains)
    for chain in chains:
        check_chain(model, chain, images)


def check_inputs(model: nn.Module, images: torch.Tensor) -> None:
    """A clear error unless ``model`` runs on ``images`` (B, ...): of its weights' dtype, on
    its device, of a shape it takes (the first line of torch's error where it does not)."""
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    if weight is not None and images.dtype != weight.dtype:
        raise ValueError(
            f"the calibration images are {images.dtype} but the network's weights are "
            f"{weight.dtype}: convert one to the other (images.to({weight.dtype}))"
        )
    if weight is not None and images.device != weight.device:
        raise ValueError(
            f"the calibration images are on {images.device} but the network is on "
            f"{weight.device}: move one to the other"
        )
    try:
        with torch.no_grad():
            model(images[:1])
    except (RuntimeError, ValueError, IndexError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"the network does not run on calibration images of shape {tuple(images.shape[1:])} "
            f"each: {first}"
        ) from None


def check_names(model: nn.Module, chains: list[Chain | Group]) -> None:
    """A clear error unless every module a chain names is in ``model``, its producers
    convolutions and its consumers convolutions or linear layers."""
    modules = dict(model.named_modules())
    for chain in chains:
        for name in (*chain.producers, *chain.between, *chain.consumers):
            if name not in modules:
                raise ValueError(
                    f"chain {chain.producer} names {name!r}, which this network does not have "
                    "(chains of another network?)"
                )
        ends = (("producer", chain.producers, (nn.Conv2d,)),
                ("consumer", chain.consumers, (nn.Conv2d, nn.Linear)))  # fmt: skip
        for role, names, kinds in ends:
            for name in names:
                if not isinstance(modules[name], kinds):
                    allowed = " or ".join(k.__name__ for k in kinds)
                    kind = type(modules[name]).__name__
                    raise ValueError(
                        f"chain {chain.producer}: {role} {name} is a {kind}, not a {allowed}"
                    )
