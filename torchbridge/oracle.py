"""The global loss of a chain's weights: how far the network's output moves from the unpruned
network's, for the global selectors of :mod:`theory` (their ``oracle`` and ``gradient``).

Weights a (N,) act as gates s = N a on the consumer's input channels: consumer(x * s) =
sum_i a_i psi_i + bias, docs/theory.md's layer output. A candidate step a' = (1 - g) a + g e_j is
the gate vector (1 - g) s + g N e_j, so K candidates are K gated copies of the cached consumer
inputs, run through the consumer and the rest of the network (:mod:`torchbridge.split`) as
one stacked batch (chunked). The loss is the mean over calibration images of KL(unpruned ||
pruned) of the softmax outputs (``objective="kl"``) or of the squared distance of the outputs
(``"mse"``). Its gradient in a is one backward pass through the gates: d/da = N d/ds.

Values carried past the cut (a residual identity) are repeated along their first dimension,
which must be the batch. For a chain through squeeze-excitation (MobileNetV3) the oracle
scores the gated network, in which the squeeze still sees every channel; the pruned network
fixes the dropped channels' pooled values at their means (:mod:`torchbridge.surgery`), so the
two differ by that approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn

from torchbridge.split import split_at

OBJECTIVES = ("kl", "mse")


def output_distance(output: torch.Tensor, reference: torch.Tensor, objective: str) -> torch.Tensor:
    """Per-image distance (..., B) of outputs (..., B, C) to the reference outputs (B, C)."""
    if objective == "mse":
        return ((output - reference) ** 2).sum(dim=-1)
    if objective == "kl":
        log_p = reference.log_softmax(dim=-1)
        return (log_p.exp() * (log_p - output.log_softmax(dim=-1))).sum(dim=-1)
    raise ValueError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)}")


@dataclass
class GlobalLoss:
    """The consumer, the rest of the network, and per calibration batch: the consumer's input
    (B, N, ...), the values the rest of the network also reads, and the reference output."""

    consumer: nn.Module
    tail: fx.GraphModule
    inputs: list[torch.Tensor]
    carried: list[tuple]
    references: list[torch.Tensor]
    objective: str
    rows: int = 256  # images per stacked forward pass of the candidates

    @property
    def n_channels(self) -> int:
        return self.inputs[0].shape[1]

    def _gated(self, x: torch.Tensor, gates: torch.Tensor, carried: tuple) -> torch.Tensor:
        """Outputs (K, B, C) for gate vectors (K, N) on consumer inputs x (B, N, ...)."""
        k, b = gates.shape[0], x.shape[0]
        shape = (k, 1, -1) + (1,) * (x.dim() - 2)
        stacked = (x[None] * gates.reshape(shape)).reshape(k * b, *x.shape[1:])
        repeated = [
            t.repeat(k, *([1] * (t.dim() - 1))) if torch.is_tensor(t) and t.dim() > 0 else t
            for t in carried
        ]
        return self.tail(self.consumer(stacked), *repeated).reshape(k, b, -1)

    def losses(self, weights: np.ndarray) -> np.ndarray:
        """Global loss (K,) of each row of ``weights`` (K, N) (a path of iterates, say)."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[1] != self.n_channels:
            raise ValueError(
                f"weights must be (K, {self.n_channels}), one row per weight vector; "
                f"got {weights.shape}"
            )
        x0 = self.inputs[0]
        gates = torch.as_tensor(self.n_channels * weights).to(dtype=x0.dtype, device=x0.device)
        losses = torch.zeros(len(weights), dtype=torch.float64)
        images = 0
        with torch.no_grad():
            for x, carried, reference in zip(
                self.inputs, self.carried, self.references, strict=True
            ):
                per = max(1, self.rows // x.shape[0])
                for start in range(0, len(weights), per):
                    out = self._gated(x, gates[start : start + per], carried)
                    distance = output_distance(out.double(), reference.double(), self.objective)
                    losses[start : start + per] += distance.sum(dim=1).cpu()
                images += x.shape[0]
        return (losses / images).numpy()

    def oracle(self, weights: np.ndarray, neurons: np.ndarray, step_sizes: np.ndarray):
        """Global loss (K,) of a' = (1 - g_k) a + g_k e_{j_k} for every candidate k."""
        g = np.asarray(step_sizes, dtype=np.float64)[:, None]
        candidates = (1.0 - g) * np.asarray(weights, dtype=np.float64)[None]
        candidates[np.arange(len(candidates)), np.asarray(neurons)] += g[:, 0]
        return self.losses(candidates)

    def gradient(self, weights: np.ndarray) -> np.ndarray:
        """d(global loss)/da (N,) at a = ``weights``, by backward passes through the gates."""
        n = self.n_channels
        x0 = self.inputs[0]
        s = torch.tensor(n * np.asarray(weights), dtype=x0.dtype, device=x0.device)
        s.requires_grad_(True)
        total = torch.zeros(n, dtype=torch.float64)
        images = 0
        with torch.enable_grad():
            for x, carried, reference in zip(
                self.inputs, self.carried, self.references, strict=True
            ):
                out = self._gated(x, s[None], carried)[0]
                loss = output_distance(out.double(), reference.double(), self.objective).sum()
                (grad,) = torch.autograd.grad(loss, s)
                total += grad.double().cpu()
                images += x.shape[0]
        return (n * total / images).numpy()


def global_loss(
    model: nn.Module,
    consumer: str,
    batches: list[torch.Tensor],
    references: list[torch.Tensor],
    objective: str = "kl",
) -> GlobalLoss:
    """The :class:`GlobalLoss` of ``model``'s consumer named ``consumer`` on ``batches``, with
    ``references`` the unpruned network's outputs on them."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)}")
    split = split_at(model, consumer)
    inputs, carried = [], []
    with torch.no_grad():
        for batch in batches:
            head = split.head(batch)
            inputs.append(head[0])
            carried.append(tuple(head[1:]))
    return GlobalLoss(
        model.get_submodule(consumer), split.tail, inputs, carried, list(references), objective
    )
