"""Batch-norm statistics re-estimated on calibration data (torchbridge.batchnorm)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchbridge.batchnorm import recalibrate_batch_norms


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
    ).double().eval()  # fmt: skip


def _normalised(batch: torch.Tensor, eps: float) -> torch.Tensor:
    """A batch norm's training-mode output at unit weight and zero bias."""
    mean = batch.mean(dim=(0, 2, 3), keepdim=True)
    return (batch - mean) / torch.sqrt(batch.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + eps)


def test_running_statistics_are_the_averages_of_the_batch_statistics():
    model = _net()
    batches = [torch.randn(5, 3, 8, 8, dtype=torch.float64) * 3 + 2 for _ in range(3)]
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k
               and "num_batches" not in k}  # fmt: skip
    assert recalibrate_batch_norms(model, batches) == 2
    first = model[0]
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches])
    variances = torch.stack([b.transpose(0, 1).reshape(3, -1).var(dim=1) for b in batches])
    torch.testing.assert_close(first.running_mean, means.mean(dim=0))
    torch.testing.assert_close(first.running_var, variances.mean(dim=0))
    # the second norm saw the conv of the first norm's batch-normalised input, as in training
    with torch.no_grad():
        inputs = [model[1](_normalised(b, first.eps)) for b in batches]
    torch.testing.assert_close(
        model[2].running_mean, torch.stack([h.mean(dim=(0, 2, 3)) for h in inputs]).mean(dim=0)
    )
    assert not model.training and all(not m.training for m in model.modules())
    assert model[0].momentum == 0.1  # restored
    for key, value in weights.items():
        assert torch.equal(model.state_dict()[key], value)


def test_the_output_is_unchanged_when_the_data_are_those_the_statistics_came_from():
    """A batch norm whose statistics are re-estimated on one big batch normalises that batch
    in eval mode as it did in training mode (up to the unbiased variance's factor)."""
    model = nn.Sequential(nn.BatchNorm1d(4)).double()
    x = torch.randn(4000, 4, dtype=torch.float64) * 5 - 1
    recalibrate_batch_norms(model, [x])
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out.mean(dim=0), torch.zeros(4, dtype=torch.float64), atol=1e-9,
                               rtol=0)  # fmt: skip
    torch.testing.assert_close(out.std(dim=0), torch.ones(4, dtype=torch.float64), atol=1e-3,
                               rtol=0)  # fmt: skip


@pytest.mark.parametrize(
    ("batches", "message"),
    [([], "no calibration batches"), ([torch.randn(1, 3, 8, 8)], "batches of 2 images")],
)
def test_bad_calibration_is_named_before_any_statistic_is_reset(batches, message):
    model = _net().float()
    before = model[0].running_mean.clone()
    with pytest.raises(ValueError, match=message):
        recalibrate_batch_norms(model, batches)
    assert torch.equal(model[0].running_mean, before)
