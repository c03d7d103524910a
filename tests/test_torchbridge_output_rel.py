"""What ``prune`` reports is what the pruned network does: on every kind of network the
toolkit prunes (torchvision's and timm's, residual, inverted residual, squeeze-excitation,
channel shuffle), each chain's reported ``output_rel`` equals a fresh measurement of its
consumer's output change, made by running networks rather than from the Gram matrices."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("torch_pruning")
pytest.importorskip("skimage")  # the photos

from torchbridge.__main__ import main
from torchbridge.chain_check import module_inputs
from torchbridge.images import photo_sets
from torchbridge.models import build, found_chains, views
from torchbridge.prune import prune_chains
from torchbridge.surgery import is_squeeze_excitation

IMAGES, SIZE = 4, 64
ARCHS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
         "shufflenet_v2_x1_0", "efficientnet_lite0", "timm:efficientnet_b0",
         "timm:mobilenetv3_small_050"]  # fmt: skip


def _fresh(model, chains, i, batches, images) -> float:
    """Chain ``i``'s consumer output change, measured: the network with chains 0..i-1
    pruned (as ``prune`` prunes them: same budget, seed and data) and the same with chain i
    pruned too, run on ``images``; the squared change of the consumer's output over the
    energy of its output without bias, in float64."""
    before = prune_chains(model, chains[:i], batches, keep=0.5, check=False)[0] if i else model
    after = prune_chains(before, [chains[i]], batches, keep=0.5, check=False)[0]
    (name,) = chains[i].consumers
    ours, theirs = before.get_submodule(name), after.get_submodule(name)
    with torch.no_grad():
        f = ours(module_inputs(before, [name], images)[name]).double()
        change = theirs(module_inputs(after, [name], images)[name]).double() - f
        if ours.bias is not None:
            f = f - ours.bias.double().view(-1, *[1] * (f.dim() - 2))
    return float((change**2).sum() / (f**2).sum())


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_each_reported_output_rel_is_a_fresh_measurement(arch, tmp_path):
    """``prune --arch ARCH --weights FILE --keep 0.5 --size 64`` on a network at its
    initialisation: the first, a middle and the last chain's ``output_rel`` equal the fresh
    measurement (1e-4), except where a squeeze-excitation block lies inside the chain: the
    pruned block reads the dropped channels' pooled values at their calibration means (the
    approximation :mod:`torchbridge.surgery` states), within 5% there."""
    if arch.startswith("timm:") or arch == "efficientnet_lite0":
        pytest.importorskip("timm")
    torch.manual_seed(0)
    model = build(arch).eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    out = tmp_path / "run"
    argv = ["prune", "--arch", arch, "--weights", str(tmp_path / "weights.pt"), "--keep",
            "0.5", "--size", str(SIZE), "--images", str(IMAGES), "--batch", "4", "--out",
            str(out)]  # fmt: skip
    assert main(argv) == 0
    layers = json.loads((out / "report.json").read_text())["layers"]
    chains = found_chains(model, arch).chains
    assert [layer["chain"]["producer"] for layer in layers] == [c.producer for c in chains]
    images, _, _ = photo_sets(views(arch, SIZE), IMAGES, seed=0)  # prune's calibration views
    for i in sorted({0, len(chains) // 2, len(chains) - 1}):
        fresh = _fresh(model, chains, i, list(images.split(4)), images)
        squeezed = any(is_squeeze_excitation(model.get_submodule(m)) for m in chains[i].between)
        reported = layers[i]["output_rel"]
        assert 0 < reported < 1
        assert fresh == pytest.approx(reported, rel=0.05 if squeezed else 1e-4), chains[i]
