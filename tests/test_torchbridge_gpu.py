"""The torch bridge on a CUDA GPU: the same Gram matrices and the same pruning as on the CPU.
These tests run where CUDA is present and are skipped elsewhere; the last ones check the
clear errors on machines without it. Comparisons with the CPU turn TF32 off (cuDNN uses it
for float32 convolutions by default on Ampere and later GPUs, a 1e-3 relative error that can
swap near-tied channels; the Gram matrix of such activations is still exact for them)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from torchbridge.chains import block_chains  # noqa: E402
from torchbridge.gram import GramAccumulator, consumer_gram  # noqa: E402
from torchbridge.models import build  # noqa: E402
from torchbridge.prune import prune_chains  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture
def exact_float32():
    """float32 convolutions and matrix products without TF32, restored afterwards."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@cuda
def test_gram_on_the_gpu_equals_the_cpu_gram():
    conv = torch.nn.Conv2d(24, 16, 3, padding=1)
    h = torch.randn(8, 24, 14, 14, generator=torch.Generator().manual_seed(0))
    cpu = consumer_gram(conv, [h[:4], h[4:]])
    gpu = consumer_gram(conv.cuda(), [h[:4].cuda(), h[4:].cuda()])
    assert np.allclose(gpu, cpu, rtol=1e-8, atol=1e-8 * np.abs(cpu).max())


@cuda
@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (5, 1), (3, 2)])
def test_each_gram_form_on_the_gpu_equals_the_unfold_on_the_cpu(kernel, stride):
    """The row-correlation form (stride 1) and the unfold (stride 2) on CUDA, in float64."""
    conv = torch.nn.Conv2d(16, 8, kernel, stride=stride, padding=kernel // 2)
    h = torch.randn(6, 16, 13, 11, generator=torch.Generator().manual_seed(2))
    reference = GramAccumulator(conv, unfold=True)
    reference.update(h)
    gpu = GramAccumulator(conv.cuda())
    gpu.update(h.cuda())
    assert gpu.form == ("correlation" if stride == 1 else "unfold")
    cpu = reference.gram()
    assert np.allclose(gpu.gram(), cpu, rtol=1e-10, atol=1e-10 * np.abs(cpu).max())
    assert np.allclose(gpu.mean_patch(), reference.mean_patch(), rtol=1e-10, atol=1e-12)


@cuda
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2", "mobilenet_v3_small"])
def test_pruning_on_the_gpu_keeps_the_cpu_channels(arch, exact_float32):
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


@cuda
@pytest.mark.parametrize("method", ["taylor", "tp-taylor"])
def test_global_and_tp_selectors_on_the_gpu_keep_the_cpu_channels(method):
    """The output-loss oracle (taylor: a backward pass through the gates, then exact scores)
    and Torch-Pruning's Taylor importance run on the GPU and choose as on the CPU, in
    float64: a random network's output losses of its candidates can differ by less than
    float32's round-off, which then orders them differently on two devices (seen with
    taylor on an H200, TF32 off)."""
    from torchbridge.job import PruneConfig, prune_model

    torch.manual_seed(0)
    model = build("resnet18", num_classes=10).double()
    x = torch.randn(16, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    chains = block_chains(model)[:3]
    config = PruneConfig(method=method, keep=0.25, candidates=4, oracle_images=4)
    cpu, cpu_reports, _ = prune_model(model, chains, [x[:8], x[8:]], config)
    gpu, gpu_reports, _ = prune_model(model.cuda(), chains, [x[:8].cuda(), x[8:].cuda()], config)
    assert [r.kept for r in gpu_reports] == [r.kept for r in cpu_reports]
    for chain in chains:  # the same channels: the same shapes and (nearly) the same weights
        a, b = gpu.get_submodule(chain.consumer).weight, cpu.get_submodule(chain.consumer).weight
        assert a.shape == b.shape
        assert torch.allclose(a.cpu(), b, rtol=1e-8, atol=1e-10)
    with torch.no_grad():
        assert torch.allclose(gpu(x.cuda()).cpu(), cpu(x), rtol=1e-8, atol=1e-10)


@cuda
def test_prune_command_on_the_gpu_saves_a_model_that_the_cpu_evaluates_alike(tmp_path):
    """prune --device cuda, then eval on the CPU: the same FLOPs, agreement and KL."""
    import json

    from torchbridge.__main__ import main
    from torchbridge.job import PruneConfig, eval_job

    argv = ["prune", "--arch", "mobilenet_v3_small", "--weights", "none", "--images", "16",
            "--batch", "8", "--size", "64", "--flops", "0.7", "--allocation", "predicted",
            "--device", "cuda", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["config"]["device"] == "cuda"
    assert report["after"]["flops"] <= 0.7 * report["before"]["flops"]
    config = PruneConfig(images=16, batch=8, size=64)
    row = eval_job(tmp_path / "pruned.pt", "photos", None, config)
    assert row["flops"] == report["after"]["flops"]
    assert row["params"] == report["after"]["params"]


@cuda
def test_device_benchmark_rows_run_on_the_gpu():
    from torchbridge.device_bench import device_rows

    row = device_rows("mobilenet_v3_small", "cuda", 16, batch=8, size=64, cpu_images=8)
    assert row["device"].startswith("cuda") and row["peak_device_mib"] > 0
    assert row["keep_half_cpu_s"] > 0 and row["keep_half_device_s"] > 0
    for task in ("greedy-local-predicted", "tp-magnitude", "tp-taylor"):
        assert row[task]["flops"] <= 0.8
        assert "agreement" not in row[task]  # random weights: timing only


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error(tmp_path, capsys):
    from torchbridge.__main__ import main

    argv = ["prune", "--arch", "resnet18", "--weights", "none", "--keep", "0.5",
            "--device", "cuda", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    assert "--device cuda: CUDA is not available here" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the errors without CUDA")
def test_effnet_and_bench_asked_for_cuda_without_it_give_clear_errors(capsys):
    from experiments.__main__ import main
    from torchbridge.bench import main as bench

    assert main(["run", "effnet-compare", "--keep", "0.5", "--device", "cuda"]) == 2
    assert "--device cuda: CUDA is not available here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench(["--rows", "device", "--device", "cuda"])
    assert "--device cuda: CUDA is not available here" in capsys.readouterr().err
