"""The layer problem of a real network: the Gram matrix of channel contributions, batch by batch.

Channel i of a feature map h (B, N, H, W) reaches the next layer through the consumer's weights
W[:, i] (a dense convolution or a linear layer). In docs/theory.md's scaling its contribution is
psi_i(x) = N conv(h_i(x), W[:, i]): a stack of output maps. The Gram matrix

    G_ij = E_x <psi_i(x), psi_j(x)>      (sum over output channels and pixels, mean over images)

is exact without ever forming psi: with U the unfolded input (the k x k patch of every output
pixel, (C K) values) and V = W_flat^T W_flat ((C K) x (C K), W_flat the (C_out, C K) weight),

    G_ij = N^2 / B_total * sum_{k, k'} (sum_patches U U^T)[(i,k), (j,k')] V[(i,k), (j,k')].

Only U U^T is accumulated (float64, on the activations' device), nothing stored per image. A
1 x 1 convolution has K = 1 (one product of the pixels, no unfold); a linear layer is a 1 x 1
convolution on a 1 x 1 map; a stride-1 k x k consumer takes the row-correlation form of
:mod:`torchbridge.correlation` (k times fewer multiply-adds than the unfold); other strides
and dilations unfold.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from torchbridge.correlation import patch_products, self_product, skipped_rows


def conv_geometry(consumer: nn.Module) -> tuple[torch.Tensor, dict]:
    """(weight as (C_out, C_in, kh, kw), unfold keyword arguments) of a supported consumer."""
    if isinstance(consumer, nn.Linear):
        return consumer.weight[:, :, None, None], {"kernel_size": (1, 1)}
    if isinstance(consumer, nn.Conv2d):
        if type(consumer).forward is not nn.Conv2d.forward and consumer.kernel_size != (1, 1):
            raise ValueError(
                f"consumer {type(consumer).__name__} overrides Conv2d.forward (e.g. dynamic "
                "'same' padding): its patches are not those of its padding attribute"
            )
        if consumer.groups != 1:
            raise ValueError(
                f"consumer convolution has groups={consumer.groups}; only dense (groups=1) "
                "consumers define a channel Gram matrix"
            )
        if isinstance(consumer.padding, str) or consumer.padding_mode != "zeros":
            raise ValueError("consumer convolution must use explicit zero padding")
        return consumer.weight, {
            "kernel_size": consumer.kernel_size,
            "dilation": consumer.dilation,
            "padding": consumer.padding,
            "stride": consumer.stride,
        }
    raise ValueError(f"unsupported consumer {type(consumer).__name__}: use nn.Conv2d or nn.Linear")


class GramAccumulator:
    """Accumulates G for one consumer over batches of its input activations."""

    def __init__(self, consumer: nn.Module, *, unfold: bool = False) -> None:
        """``unfold``: take the general unfold form even where a cheaper one applies (the
        reference that tests and benchmarks compare the other forms with)."""
        weight, self._unfold = conv_geometry(consumer)
        self.n_channels = weight.shape[1]
        self._kernel = int(np.prod(weight.shape[2:]))
        trivial = (1, 1), (0, 0), (1, 1)
        options = tuple(self._unfold.get(k, d) for k, d in zip(("stride", "padding", "dilation"),
                                                                trivial, strict=True))  # fmt: skip
        if unfold:
            self.form = "unfold"
        elif self._kernel == 1 and options == trivial:
            self.form = "pointwise"  # a 1x1 consumer's patches are its input pixels: no unfold
        elif options[0] == options[2] == (1, 1):
            self.form = "correlation"  # stride 1, no dilation: torchbridge.correlation
        else:
            self.form = "unfold"
        flat = weight.detach().to(torch.float64).reshape(weight.shape[0], -1)  # (C_out, C K)
        self._weights = flat.T @ flat  # V, (C K, C K)
        self._patches: torch.Tensor | None = None  # sum over patches of U U^T
        self._sums: torch.Tensor | None = None  # sum over patches of U, for the mean input
        self._count = 0  # patches seen
        self.images = 0

    def update(self, activations: torch.Tensor) -> None:
        """Add a batch of consumer inputs: (B, N, H, W) for a convolution, (B, N) for linear."""
        h = activations.detach()
        if h.dim() == 2:
            h = h[:, :, None, None]
        if h.dim() != 4 or h.shape[1] != self.n_channels:
            raise ValueError(
                f"activations must be (B, {self.n_channels}, H, W) or (B, {self.n_channels}); "
                f"got {tuple(activations.shape)}"
            )
        if self.form == "pointwise":
            patches = h.permute(0, 2, 3, 1).to(torch.float64).reshape(-1, h.shape[1])  # (B P, C)
            product, sums, count = self_product(patches.T), patches.sum(dim=0), patches.shape[0]
        elif self.form == "correlation":
            product, sums, count = patch_products(
                h.to(torch.float64), self._unfold["kernel_size"], self._unfold["padding"]
            )
        else:
            unfolded = functional.unfold(h.to(torch.float64), **self._unfold)  # (B, C K, P)
            patches = unfolded.transpose(1, 2).reshape(-1, unfolded.shape[1])  # (B P, C K)
            product, sums, count = patches.T @ patches, patches.sum(dim=0), patches.shape[0]
        if not torch.isfinite(sums).all():  # a NaN or inf read by any patch reaches its sum
            raise ValueError("activations contain NaN or infinite values")
        if self._patches is None:
            self._patches, self._sums = product, sums
            self._weights = self._weights.to(product.device)
        else:
            self._patches += product
            self._sums += sums
        self._count += count
        self.images += h.shape[0]

    def multiply_adds(self, height: int, width: int) -> int:
        """Multiply-adds per image of :meth:`update` on an (N, height, width) input, in this
        accumulator's form, counted as general matrix products (the products only: no
        copies, no sums; on the CPU the products of a matrix with its own transpose run in
        syrk, which does about half of them)."""
        c = self.n_channels
        if self.form == "pointwise":
            return c * c * height * width
        geometry = {"padding": (0, 0), "stride": (1, 1), "dilation": (1, 1)} | self._unfold
        (kh, kw), (ph, pw) = geometry["kernel_size"], geometry["padding"]
        if self.form == "correlation":  # one (C k_w)^2 product per row lag over the gapped
            out_h, out_w = height + 2 * ph - kh + 1, width + 2 * pw - kw + 1  # rows, and the
            # edge rows per lag
            edges = len(set().union(*(skipped_rows(height, a, ph, out_h) for a in range(kh))))
            return kh * (kw * c) ** 2 * (height + kh - 1 + edges) * out_w
        (sh, sw), (dh, dw) = geometry["stride"], geometry["dilation"]
        out_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        out_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        return (kh * kw * c) ** 2 * out_h * out_w

    def gram(self) -> np.ndarray:
        """G (N, N) float64 with the N^2 scaling of docs/theory.md; needs at least one batch."""
        if self._patches is None:
            raise ValueError("no activations were accumulated: call update() with a batch first")
        c, k = self.n_channels, self._kernel
        blocks = (self._patches * self._weights).reshape(c, k, c, k).sum(dim=(1, 3))
        return (blocks * (c * c / self.images)).cpu().numpy()

    def mean_patch(self) -> np.ndarray:
        """The mean unfolded input patch (C K,) float64: channel-major, as the weight's
        columns; the consumer's mean output without bias is W_flat @ this."""
        if self._sums is None:
            raise ValueError("no activations were accumulated: call update() with a batch first")
        return (self._sums / self._count).cpu().numpy()


def mean_shift(consumer: nn.Module, mean_patch: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(C_out,) float64: the consumer's mean output minus that of its pruned version with
    input channels scaled by N a_i, the bias compensation of a selection ``weights`` (N,)."""
    weight, _ = conv_geometry(consumer)
    flat = weight.detach().to(torch.float64).reshape(weight.shape[0], -1).cpu().numpy()
    a = np.asarray(weights, dtype=np.float64)
    kernel = flat.shape[1] // a.size
    return flat @ (mean_patch * np.repeat(1.0 - a.size * a, kernel))


def consumer_gram(consumer: nn.Module, batches: Iterable[torch.Tensor]) -> np.ndarray:
    """G (N, N) of the N input channels of ``consumer`` over batches of its inputs."""
    accumulator = GramAccumulator(consumer)
    for batch in batches:
        accumulator.update(batch)
    return accumulator.gram()
