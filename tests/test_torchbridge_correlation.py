"""The row-correlation form of a stride-1 consumer's patch products against the full unfold."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional  # noqa: E402

from torchbridge.correlation import patch_products  # noqa: E402
from torchbridge.gram import GramAccumulator  # noqa: E402

KERNELS = [(3, 3), (1, 1), (5, 3), (2, 2), (7, 7), (1, 4)]
PADDINGS = [(0, 0), (1, 1), (2, 0), (3, 1)]
MAPS = [(1, 1), (2, 5), (3, 3), (7, 6), (9, 9)]
GEOMETRIES = [
    (k, p, m)
    for k, p, m in itertools.product(KERNELS, PADDINGS, MAPS)
    if m[0] + 2 * p[0] - k[0] + 1 >= 1 and m[1] + 2 * p[1] - k[1] + 1 >= 1
]


def _unfolded(h, kernel_size, padding=0, stride=1, dilation=1):
    u = functional.unfold(h, kernel_size, dilation, padding, stride)  # (B, C K, P)
    return u.transpose(1, 2).reshape(-1, u.shape[1])  # (B P, C K)


@pytest.mark.parametrize(("kernel", "padding", "size"), GEOMETRIES)
def test_row_correlation_products_equal_the_unfolded_patch_products(kernel, padding, size):
    """Every geometry where kernel rows skip edge rows (maps smaller than the kernel, more
    padding than 'same', even and one-sided kernels) gives U^T U, sum U and the patch count."""
    torch.manual_seed(0)
    h = torch.randn(3, 4, *size, dtype=torch.float64)
    patches = _unfolded(h, kernel, padding)
    products, sums, count = patch_products(h, kernel, padding)
    reference = patches.T @ patches
    assert count == patches.shape[0]
    assert torch.allclose(products, reference, rtol=1e-12, atol=1e-12 * reference.abs().max())
    assert torch.allclose(sums, patches.sum(dim=0), rtol=1e-12, atol=1e-12)


def test_a_map_without_output_is_refused_by_name():
    with pytest.raises(ValueError, match="no output on a 2x2 map"):
        patch_products(torch.zeros(1, 1, 2, 2), (5, 5), (0, 0))


@pytest.mark.parametrize(
    ("consumer", "form"),
    [
        (nn.Conv2d(4, 3, 3, padding=1), "correlation"),
        (nn.Conv2d(4, 3, 1, padding=1), "correlation"),
        (nn.Conv2d(4, 3, 3, stride=2, padding=1), "unfold"),
        (nn.Conv2d(4, 3, 3, padding=2, dilation=2), "unfold"),
        (nn.Conv2d(4, 3, 1), "pointwise"),
        (nn.Linear(4, 3), "pointwise"),
    ],
)
def test_each_consumer_takes_the_form_its_geometry_allows(consumer, form):
    """The accumulator's choice of form, and its mean patch against the unfold's mean."""
    accumulator = GramAccumulator(consumer)
    assert accumulator.form == form
    h = torch.randn(5, 4) if isinstance(consumer, nn.Linear) else torch.randn(5, 4, 6, 7)
    accumulator.update(h[:2])
    accumulator.update(h[2:])
    if isinstance(consumer, nn.Linear):
        reference = h.double().mean(dim=0)
    else:
        geometry = ("kernel_size", "padding", "stride", "dilation")
        reference = _unfolded(h.double(), *(getattr(consumer, k) for k in geometry)).mean(dim=0)
    assert np.allclose(accumulator.mean_patch(), reference.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "consumer",
    [
        nn.Conv2d(6, 3, 3, padding=1),
        nn.Conv2d(6, 3, (2, 4), padding=(0, 2)),
        nn.Conv2d(6, 3, 3, stride=2, padding=1),
        nn.Conv2d(6, 3, 1),
        nn.Linear(6, 3),
    ],
)
def test_multiply_adds_equal_what_torch_counts_in_an_update(consumer, monkeypatch):
    """The accumulator's own count of its products against torch's flop counter (2 FLOPs a
    multiply-add) running one update on a single image, in every form. On the CPU the
    products of a matrix with its own transpose run in numpy's syrk, which the counter does
    not see: here torch's general product stands in for it."""
    from torch.utils.flop_counter import FlopCounterMode

    import torchbridge.correlation
    import torchbridge.gram

    def general(x):
        return x @ x.T

    monkeypatch.setattr(torchbridge.correlation, "self_product", general)
    monkeypatch.setattr(torchbridge.gram, "self_product", general)
    accumulator = GramAccumulator(consumer)
    shape = (1, 6) if isinstance(consumer, nn.Linear) else (1, 6, 9, 7)
    mode = FlopCounterMode(display=False)
    with mode:
        accumulator.update(torch.randn(shape))
    height, width = (1, 1) if isinstance(consumer, nn.Linear) else (9, 7)
    assert mode.get_total_flops() == 2 * accumulator.multiply_adds(height, width) > 0
