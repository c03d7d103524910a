"""Every pruning method that ``prune`` and the comparisons accept, with what each can do:
theory's selectors and Torch-Pruning's baselines in one registry.

A setting that only some methods use is accepted or refused from the capabilities declared
here alone (:func:`check_settings`), so a flag means the same thing wherever it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from theory import LayerProblem
from theory.selectors import OUTPUT_SELECTORS, SELECTORS
from torchbridge.baselines import TP_METHODS


@dataclass(frozen=True)
class Method:
    """A pruning method and its capabilities.

    theory: one of theory's selectors (so a loss tolerance ``tol`` applies); folded: it keeps
    the consumer's weights, folded by its own (so bias compensation applies; not
    ``whole-output``, which refits them on its consumer's whole output); convex: its weights
    stay on the simplex (``resolve`` re-solves them); repeats: it may pick a channel again
    (``no_repeats`` turns that off); output_loss: it scores steps by the network's output
    (``candidates``, ``objective`` and ``oracle_images`` apply).
    """

    name: str
    theory: bool = False
    folded: bool = False
    convex: bool = False
    repeats: bool = False
    output_loss: bool = False
    groups: bool = False


def _from_theory(name: str) -> Method:
    spec = SELECTORS.get(name) or OUTPUT_SELECTORS[name]
    folded = spec.problem is LayerProblem
    return Method(name, theory=True, folded=folded, convex=spec.simplex,
                  repeats="repeats" in spec.options, output_loss=spec.needs_oracle,
                  groups=folded and not spec.needs_oracle)  # fmt: skip


METHODS: dict[str, Method] = (
    {name: _from_theory(name) for name in SELECTORS}
    | {name: _from_theory(name) for name in OUTPUT_SELECTORS}
    | {
        name: Method(name)  # Torch-Pruning's: none of the capabilities
        for name in TP_METHODS
    }
)

# A setting that only some methods use -> (the capability it needs, that capability in words).
NEEDS: dict[str, tuple[str, str]] = {
    "tol": ("theory", "choose channels by the layer loss"),
    "compensate": ("folded", "keep the consumer's folded weights"),
    "resolve": ("convex", "keep convex weights"),
    "no_repeats": ("repeats", "may pick a channel again"),
    "candidates": ("output_loss", "score steps by the network's output"),
    "groups": ("groups", "prune channel groups"),
}


def method(name: str) -> Method:
    """The registered method ``name``; a clear error listing them otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}") from None


def able(setting: str) -> tuple[str, ...]:
    """The methods that take ``setting`` (a key of :data:`NEEDS`)."""
    capability = NEEDS[setting][0]
    return tuple(m.name for m in METHODS.values() if getattr(m, capability))


def check_settings(name: str, given: dict[str, object]) -> None:
    """Refuse the settings in ``given`` (setting -> value; None or False: not given) that
    method ``name`` cannot use, naming the methods that can."""
    found = method(name)
    for setting, value in given.items():
        if value is None or value is False or setting not in NEEDS:
            continue
        capability, words = NEEDS[setting]
        if not getattr(found, capability):
            flag = "--" + setting.replace("_", "-")
            raise ValueError(
                f"{flag} is for methods that {words} ({', '.join(able(setting))}), not {name}"
            )


def usable(name: str, settings: dict[str, object]) -> dict[str, object]:
    """``settings`` without those that method ``name`` cannot use (for runs that give the
    same settings to several methods)."""
    found = method(name)
    return {k: v for k, v in settings.items() if k not in NEEDS or getattr(found, NEEDS[k][0])}
