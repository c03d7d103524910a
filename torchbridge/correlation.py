"""The patch Gram of a stride-1 convolution, unfolded along columns and correlated along rows.

For a k_h x k_w consumer with stride 1 and dilation 1, the unfolded input holds, for kernel
offset a = (a_r, a_c) and output pixel p = (p_r, p_c), U_{i,a}(p) = h_i(p - pad + a). The full
unfold multiplies (C k_h k_w)-wide patch rows: (C k_h k_w)^2 multiply-adds per output pixel.
Unfolding only along columns, Z_{i,a_c}(r, p_c) = h_i(r, p_c - pad_c + a_c) on the input rows
r, gives

    S((i,a), (j,b)) = sum_p U_{i,a}(p) U_{j,b}(p)
                    = sum_{r in R(a_r)} sum_{p_c} Z_{i,a_c}(r, p_c) Z_{j,b_c}(r + d, p_c),

d = b_r - a_r, where R(a_r) is the set of input rows that kernel row a_r reads: all rows but
a few at the edges. So S(a_r, b_r) is the row correlation at lag d over all rows less the
products of the edge rows outside R(a_r); S(b_r, a_r) = S(a_r, b_r)^T. One (C k_w) by
(C k_w) product per lag d = 0 .. k_h - 1 over a copy of Z with k_h - 1 zero rows after each
image (so that a flat shift by d rows reads row r + d, or zeros past the image): for 3 x 3,
3 (C k_w)^2 against 9 (C k_w)^2 multiply-adds per pixel and a 3-wide copy instead of 9-wide.
"""

from __future__ import annotations

import torch
from torch.nn import functional


def self_product(x: torch.Tensor) -> torch.Tensor:
    """x x^T (R, R) of x (R, M): on the CPU through numpy, which hands a product with its
    own transpose to BLAS syrk (half the multiply-adds of torch's general product; measured
    1.8-2.1x faster for R = 480 to 4,096, but slower than torch on strided views such as the
    row lags of :func:`patch_products`, which therefore keep torch's product); torch's
    product elsewhere."""
    if x.device.type == "cpu":
        a = x.numpy()
        return torch.from_numpy(a @ a.T)
    return x @ x.T


def skipped_rows(size: int, offset: int, pad: int, out: int) -> list[int]:
    """Input rows (of ``size``) that kernel row ``offset`` never reads (``out`` output rows)."""
    low, high = offset - pad, offset - pad + out
    return [r for r in range(size) if not low <= r < high]


def patch_products(
    h: torch.Tensor, kernel: tuple[int, int], padding: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(sum over patches of U U^T (C K, C K), sum over patches of U (C K,), patches) for a
    batch h (B, C, H, W) and a stride-1, dilation-1 kernel; channel-major (C, k_h, k_w)
    order, as ``functional.unfold``. Computed in h's dtype."""
    b, c, height, width = h.shape
    (kh, kw), (ph, pw) = kernel, padding
    out_h, out_w = height + 2 * ph - kh + 1, width + 2 * pw - kw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"a {kh}x{kw} kernel with padding {padding} has no output on a {height}x{width} map"
        )
    rows = height + kh - 1  # each image's rows and the zero rows after it
    length = b * rows * out_w
    buffer = h.new_zeros(c, kw, length + (kh - 1) * out_w)  # the zeros past the last image
    padded = functional.pad(h, (pw, pw)).transpose(0, 1)  # (C, B, H, W + 2 pw)
    body = buffer[:, :, :length].view(c, kw, b, rows, out_w)
    for ac in range(kw):
        body[:, ac, :, :height] = padded[..., ac : ac + out_w]

    def lagged(d: int) -> torch.Tensor:  # (C k_w, B, rows, W_out): Z at row r + d
        return buffer[:, :, d * out_w : d * out_w + length].reshape(c * kw, b, rows, out_w)

    skipped = [skipped_rows(height, ar, ph, out_h) for ar in range(kh)]
    edges = sorted(set().union(*skipped))
    x = lagged(0)
    x_edges = x[:, :, edges].permute(2, 0, 1, 3).reshape(len(edges), c * kw, b * out_w)
    products = h.new_empty(c, kh, kw, c, kh, kw)
    for d in range(kh):
        y = lagged(d)
        whole = x.reshape(c * kw, -1) @ y.reshape(c * kw, -1).T  # all rows at lag d
        y_edges = y[:, :, edges].permute(2, 0, 1, 3).reshape(len(edges), c * kw, b * out_w)
        by_edge = torch.bmm(x_edges, y_edges.transpose(1, 2))  # (edges, C k_w, C k_w)
        for ar in range(kh - d):
            s = whole - by_edge[[edges.index(r) for r in skipped[ar]]].sum(dim=0)
            s = s.view(c, kw, c, kw)
            products[:, ar, :, :, ar + d, :] = s
            products[:, ar + d, :, :, ar, :] = s.permute(2, 3, 0, 1)
    total = h.sum(dim=0)  # (C, H, W)
    sums = h.new_empty(c, kh, kw)
    for ar in range(kh):
        for ac in range(kw):
            r0, r1 = max(0, ar - ph), max(0, ar - ph + out_h)
            c0, c1 = max(0, ac - pw), max(0, ac - pw + out_w)
            sums[:, ar, ac] = total[:, r0:r1, c0:c1].sum(dim=(1, 2))
    k = kh * kw
    return products.reshape(c * k, c * k), sums.reshape(c * k), b * out_h * out_w
