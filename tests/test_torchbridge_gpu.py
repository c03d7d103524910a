"""The torch bridge on a CUDA GPU: the same Gram matrices and the same pruning as on the CPU.
These tests run where CUDA is present and are skipped elsewhere; the last one checks the
clear error on machines without it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from torchbridge.chains import block_chains  # noqa: E402
from torchbridge.gram import consumer_gram  # noqa: E402
from torchbridge.models import build  # noqa: E402
from torchbridge.prune import prune_chains  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
def test_gram_on_the_gpu_equals_the_cpu_gram():
    conv = torch.nn.Conv2d(24, 16, 3, padding=1)
    h = torch.randn(8, 24, 14, 14, generator=torch.Generator().manual_seed(0))
    cpu = consumer_gram(conv, [h[:4], h[4:]])
    gpu = consumer_gram(conv.cuda(), [h[:4].cuda(), h[4:].cuda()])
    assert np.allclose(gpu, cpu, rtol=1e-8, atol=1e-8 * np.abs(cpu).max())


@cuda
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_pruning_on_the_gpu_keeps_the_cpu_channels(arch):
    torch.manual_seed(0)
    model = build(arch, num_classes=10)
    x = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    chains = block_chains(model)
    cpu, cpu_reports = prune_chains(model, chains, [x[:4], x[4:]], keep=0.5)
    gpu, gpu_reports = prune_chains(model.cuda(), chains, [x[:4].cuda(), x[4:].cuda()], keep=0.5)
    assert [r.kept for r in gpu_reports] == [r.kept for r in cpu_reports]
    assert [r.loss for r in gpu_reports] == pytest.approx([r.loss for r in cpu_reports], rel=1e-3)
    with torch.no_grad():
        assert torch.allclose(gpu(x.cuda()).cpu(), cpu(x), rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error(tmp_path, capsys):
    from torchbridge.__main__ import main

    argv = ["prune", "--arch", "resnet18", "--weights", "none", "--keep", "0.5",
            "--device", "cuda", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    assert "--device cuda: CUDA is not available here" in capsys.readouterr().err
