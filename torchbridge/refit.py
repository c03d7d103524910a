"""Least-squares reconstruction of a consumer after its input channels were pruned.

Once a chain's channels are chosen, the consumer (a dense convolution or a linear layer) can
be refit on its kept input channels so that the pruned network's consumer reproduces the
unpruned network's consumer output (He et al. 2017; ThiNet, Luo et al. 2017). With X the
pruned network's input patches (M, C' K) with a column of ones for the bias, and Y the
unpruned consumer's output at the same positions (M, C_out), the refit weights solve the
ridge least squares

    min_[W b] ||X [W b]^T - Y||^2 + ridge * s * ||W||^2,     s = mean of diag(X^T X) over W's rows,

from the second moments X^T X and X^T Y alone, accumulated batch by batch in float64 on the
activations' device: nothing is stored per image. The ridge does not touch the bias.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from torchbridge.gram import conv_geometry


def _patches(h: torch.Tensor, geometry: dict) -> torch.Tensor:
    """(B P, C K) float64 patches of a consumer input (B, C, H, W) or (B, C), channel-major."""
    if h.dim() == 2:
        h = h[:, :, None, None]
    unfolded = functional.unfold(h.to(torch.float64), **geometry)  # (B, C K, P)
    return unfolded.transpose(1, 2).reshape(-1, unfolded.shape[1])


class RefitMoments:
    """The moments of one consumer's refit: its pruned inputs against the unpruned output."""

    def __init__(self, consumer: nn.Module, kept: int) -> None:
        """``consumer``: the unpruned consumer (its weight and bias give the target output);
        ``kept``: the input channels left to the pruned consumer."""
        weight, self._geometry = conv_geometry(consumer)
        self._linear = isinstance(consumer, nn.Linear)
        if not 1 <= kept <= weight.shape[1]:
            raise ValueError(f"kept must be in [1, {weight.shape[1]}] channels; got {kept}")
        self._shape = (weight.shape[0], kept, *weight.shape[2:])
        self._flat = weight.detach().to(torch.float64).reshape(weight.shape[0], -1)  # (C_out, C K)
        bias = consumer.bias
        self._bias = None if bias is None else bias.detach().to(torch.float64)
        self.channels = weight.shape[1]
        self._xx: torch.Tensor | None = None  # (C' K + 1, C' K + 1)
        self._xy: torch.Tensor | None = None  # (C' K + 1, C_out)
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
        y = _patches(unpruned.detach(), self._geometry) @ self._flat.to(x.device).T
        if self._bias is not None:
            y += self._bias.to(x.device)
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise ValueError("consumer inputs contain NaN or infinite values")
        if self._xx is None:
            self._xx, self._xy = x.T @ x, x.T @ y
        else:
            self._xx += x.T @ x
            self._xy += x.T @ y
        self.patches += x.shape[0]

    def solve(self, ridge: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (C_out, C', kh, kw) or (C_out, C') for a linear consumer, bias (C_out,)),
        float64, on the activations' device."""
        if self._xx is None:
            raise ValueError("no inputs were accumulated: call update() with a batch first")
        if not ridge >= 0:
            raise ValueError(f"ridge must be >= 0; got {ridge}")
        xx = self._xx.clone()
        rows = xx.shape[0] - 1  # the last row and column are the bias's
        scale = xx.diagonal()[:rows].mean()
        xx.diagonal()[:rows] += ridge * scale
        solution = torch.linalg.lstsq(xx, self._xy).solution  # (C' K + 1, C_out)
        weight = solution[:rows].T.reshape(self._shape)
        if self._linear:
            weight = weight.reshape(self._shape[:2])
        return weight, solution[rows]
