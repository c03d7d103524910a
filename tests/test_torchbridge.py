"""The torch bridge: Gram matrices from activations against explicit psi; FLOP counts."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from psi_reference import explicit_psi  # noqa: E402
from torch import nn  # noqa: E402

from theory import LayerProblem  # noqa: E402
from torchbridge.counting import count  # noqa: E402
from torchbridge.gram import GramAccumulator, consumer_gram  # noqa: E402

CONSUMERS = {
    "conv3x3_stride2_pad1": lambda: nn.Conv2d(5, 4, 3, stride=2, padding=1),
    "conv1x1": lambda: nn.Conv2d(5, 7, 1),
    "conv3x3_same": lambda: nn.Conv2d(5, 4, 3, padding=1),
    "conv2x4_pad_1_2": lambda: nn.Conv2d(5, 3, (2, 4), padding=(1, 2)),
    "conv3x3_dilated": lambda: nn.Conv2d(5, 3, 3, padding=2, dilation=2),
    "conv5x3_no_pad": lambda: nn.Conv2d(5, 2, (5, 3)),
    "linear": lambda: nn.Linear(5, 6),
}


@pytest.mark.parametrize("name", sorted(CONSUMERS))
def test_gram_from_activations_equals_gram_ofexplicit_psi(name):
    torch.manual_seed(0)
    consumer = CONSUMERS[name]().double()
    shape = (7, 5) if name == "linear" else (7, 5, 9, 8)
    h = torch.randn(shape, dtype=torch.float64)
    batches = [h[:3], h[3:5], h[5:]]  # accumulated batch by batch
    gram = consumer_gram(consumer, batches)
    reference = LayerProblem.from_features(explicit_psi(consumer, h)).gram
    assert np.allclose(gram, reference, rtol=1e-8, atol=1e-8 * np.abs(reference).max())


def test_float32_activations_are_accumulated_in_float64():
    torch.manual_seed(1)
    consumer = nn.Conv2d(6, 4, 3, padding=1)
    h = torch.randn(4, 6, 10, 10) * 100 + 1000  # a large mean: float32 sums would lose digits
    gram = consumer_gram(consumer, [h])
    reference = LayerProblem.from_features(explicit_psi(consumer.double(), h.double())).gram
    assert np.allclose(gram, reference, rtol=1e-6)


def test_unsupported_consumers_and_bad_batches_are_named():
    with pytest.raises(ValueError, match="groups=4"):
        GramAccumulator(nn.Conv2d(4, 4, 3, groups=4))
    with pytest.raises(ValueError, match="unsupported consumer BatchNorm2d"):
        GramAccumulator(nn.BatchNorm2d(4))
    acc = GramAccumulator(nn.Conv2d(4, 2, 1))
    with pytest.raises(ValueError, match=r"activations must be \(B, 4, H, W\)"):
        acc.update(torch.zeros(2, 3, 5, 5))
    for bad in (float("nan"), float("inf"), -float("inf")):
        one = torch.ones(2, 4, 5, 5)
        one[1, 2, 4, 0] = bad
        for accumulator in (acc, GramAccumulator(nn.Conv2d(4, 2, 3)), GramAccumulator(
                nn.Conv2d(4, 2, 3, stride=2), unfold=True)):  # fmt: skip
            with pytest.raises(ValueError, match="NaN or infinite"):
                accumulator.update(one)
    with pytest.raises(ValueError, match="no activations were accumulated"):
        acc.gram()


def test_flops_of_a_conv_a_depthwise_conv_and_a_linear_layer():
    x = torch.zeros(2, 8, 16, 16)
    conv = count(nn.Conv2d(8, 16, 3, padding=1, bias=False), x)
    assert conv.macs == 2 * 16 * 8 * 9 * 16 * 16  # batch x out x in x k^2 x output pixels
    assert conv.flops == 2 * conv.macs and conv.params == 16 * 8 * 9
    depthwise = count(nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False), x)
    assert depthwise.macs == 2 * 8 * 9 * 8 * 8  # batch x channels x k^2 x (16/2)^2
    linear = count(nn.Linear(8, 10), torch.zeros(3, 8))
    assert linear.macs == 3 * 8 * 10 and linear.params == 8 * 10 + 10


def _chain():
    torch.manual_seed(3)
    producer = nn.Conv2d(3, 8, 3, padding=1).double()
    norm = nn.BatchNorm2d(8).double().eval()
    norm.running_mean.uniform_(-0.5, 0.5)
    norm.running_var.uniform_(0.5, 2.0)
    norm.weight.data.uniform_(0.5, 1.5)
    consumer = nn.Conv2d(8, 5, 3, padding=1).double()
    x = torch.randn(6, 3, 10, 10, dtype=torch.float64)
    return producer, norm, consumer, x


def _run(producer, norms, consumer, x, mask=None):
    h = producer(x)
    for norm in norms:
        h = norm(h)
    h = torch.relu(h)
    if mask is not None:
        h = h * torch.as_tensor(mask)[None, :, None, None]
    return consumer(h)


def test_keeping_every_channel_with_uniform_weights_changes_nothing():
    from torchbridge.surgery import prune_chain

    producer, norm, consumer, x = _chain()
    pruned = prune_chain(producer, [norm], consumer, np.full(8, 1 / 8))
    assert torch.allclose(_run(*pruned, x), _run(producer, [norm], consumer, x), atol=1e-12)


def test_pruned_chain_equals_the_masked_computation():
    """Keep channels 1, 4, 6 with convex weights a: the pruned modules compute what the
    original computes with consumer inputs scaled by N a_i."""
    from torchbridge.surgery import prune_chain

    producer, norm, consumer, x = _chain()
    a = np.zeros(8)
    a[[1, 4, 6]] = [0.5, 0.3, 0.2]
    new_producer, [new_norm], new_consumer = prune_chain(producer, [norm], consumer, a)
    assert new_producer.out_channels == new_norm.num_features == new_consumer.in_channels == 3
    expected = _run(producer, [norm], consumer, x, mask=8 * a)
    assert torch.allclose(_run(new_producer, [new_norm], new_consumer, x), expected, atol=1e-12)


def test_signed_least_squares_weights_fold_too():
    """omp's weights are free (negative ones included): the fold is the same masked identity."""
    from torchbridge.surgery import prune_chain

    producer, norm, consumer, x = _chain()
    a = np.zeros(8)
    a[[0, 2, 5]] = [0.9, -0.4, 0.6]
    pruned = prune_chain(producer, [norm], consumer, a)
    expected = _run(producer, [norm], consumer, x, mask=8 * a)
    assert torch.allclose(_run(*pruned, x), expected, atol=1e-12)


def test_layer_loss_from_the_gram_equals_the_measured_output_change():
    """The coupling theory <-> torch: select on the Gram accumulated from activations, prune,
    and the consumer's output moves by exactly the trace's loss (mean over images of the
    squared change summed over channels and pixels)."""
    from theory import select
    from torchbridge.surgery import prune_chain

    producer, norm, consumer, x = _chain()
    with torch.no_grad():
        h = torch.relu(norm(producer(x)))
        problem = LayerProblem.from_gram(consumer_gram(consumer, [h[:3], h[3:]]))
        trace = select(problem, 4, "greedy-local")
        pruned = prune_chain(producer, [norm], consumer, trace.weights)
        change = _run(*pruned, x) - _run(producer, [norm], consumer, x)
    measured = float((change**2).sum(dim=(1, 2, 3)).mean())
    assert measured == pytest.approx(trace.loss, rel=1e-8)
    assert pruned[2].in_channels == trace.support.size <= 4


def test_surgery_rejects_what_it_cannot_prune():
    from torchbridge.surgery import prune_chain

    producer, norm, consumer, _ = _chain()
    with pytest.raises(ValueError, match="weights have 7 entries"):
        prune_chain(producer, [norm], consumer, np.full(7, 1 / 7))
    with pytest.raises(ValueError, match="unsupported consumer ReLU"):
        prune_chain(producer, [norm], nn.ReLU(), np.full(8, 1 / 8))
    with pytest.raises(ValueError, match="finite and not all zero"):
        prune_chain(producer, [norm], consumer, np.zeros(8))
    depthwise = nn.Conv2d(8, 8, 3, groups=8)
    with pytest.raises(ValueError, match=r"dense nn\.Conv2d with 8 input channels"):
        prune_chain(producer, [norm], depthwise, np.full(8, 1 / 8))
    with pytest.raises(ValueError, match="only BatchNorm2d"):
        prune_chain(producer, [nn.Conv2d(8, 8, 1)], consumer, np.full(8, 1 / 8))


@pytest.fixture(scope="module")
def digits_cnn():
    """A small CNN trained briefly on digits (trained once per module; tests never mutate it:
    prune_sequential works on a copy)."""
    from sims.data import load_inputs

    torch.manual_seed(0)
    x, y = load_inputs("digits", 700, None, np.random.default_rng(0))
    x = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(12, 12, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 10),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(25):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:500]), torch.tensor(y[:500])).backward()
        opt.step()
    return model.eval(), x[500:]


def test_chains_of_a_sequential_cnn(digits_cnn):
    from torchbridge.chains import Chain, sequential_chains

    model, _ = digits_cnn
    assert sequential_chains(model) == [
        Chain("0", ("1",), "3"),
        Chain("3", ("4",), "7"),
        Chain("7", (), "11"),
    ]
    with pytest.raises(ValueError, match="Flatten of a spatial map"):
        sequential_chains(
            nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
        )
    with pytest.raises(ValueError, match="grouped convolution consumers"):
        sequential_chains(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, groups=2)))
    with pytest.raises(ValueError, match="unsupported module LSTM"):
        sequential_chains(nn.Sequential(nn.Conv2d(1, 4, 3), nn.LSTM(4, 4)))
    inner = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=4))
    nested = nn.Sequential(
        nn.Conv2d(1, 4, 3), inner, nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3),
    )  # fmt: skip
    assert sequential_chains(nested) == [Chain("0", ("1.0", "1.2", "2"), "3"), Chain("3", (), "6")]
    with pytest.raises(ValueError, match="layer 1 reads 3 features, not the 4 channels of 0"):
        sequential_chains(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(3, 4, 3)))


def _prune_sequential(model, batches, keep, method="greedy-local", **options):
    from torchbridge.chains import sequential_chains
    from torchbridge.prune import prune_chains

    chains = sequential_chains(model)
    return prune_chains(model, chains, batches, keep=keep, method=method, **options)


def test_prune_every_chain_from_the_input_side(digits_cnn):
    model, x = digits_cnn
    calib, test = [x[:100], x[100:]], x[:50]
    before = count(model, test)
    pruned, reports = _prune_sequential(model, calib, 0.5, "fully-corrective")
    after = count(pruned, test)
    assert [(r.kept <= r.total // 2) for r in reports] == [True] * 3
    assert [m.out_channels for m in pruned if isinstance(m, nn.Conv2d)] == [r.kept for r in reports]
    assert after.flops < 0.5 * before.flops and after.params < 0.5 * before.params
    assert pruned(test).shape == (50, 10)
    assert [type(m) for m in pruned] == [type(m) for m in model]  # plain modules, no masks
    everything, full = _prune_sequential(model, calib, 1.0, "fully-corrective")
    # every channel allowed: exact fits (a dead ReLU channel may be left out at no cost)
    assert all(r.output_rel < 1e-12 and r.kept >= r.total - 1 for r in full)
    assert torch.allclose(everything(test), model(test), atol=1e-4)


def test_prune_chains_rejects_bad_arguments(digits_cnn):
    from torchbridge.chains import sequential_chains
    from torchbridge.prune import prune_chains

    model, x = digits_cnn
    chains = sequential_chains(model)
    with pytest.raises(ValueError, match="keep must be a fraction"):
        prune_chains(model, chains, [x], keep=0.0)
    with pytest.raises(ValueError, match="no calibration batches"):
        prune_chains(model, chains, [], keep=0.5)
    with pytest.raises(ValueError, match=r"batch 1 is not a tensor of inputs.*loader_batches"):
        prune_chains(model, chains, [x, (x, torch.zeros(len(x)))], keep=0.5)
    with pytest.raises(ValueError, match="batch 0 holds NaN or infinite values"):
        prune_chains(model, chains, [torch.full_like(x, float("nan"))], keep=0.5)
    with pytest.raises(ValueError, match="give exactly one budget"):
        prune_chains(model, chains, [x], keep=0.5, tol=0.1)
    with pytest.raises(ValueError, match="tol must be a finite relative error"):
        prune_chains(model, chains, [x], tol=-1.0)
    with pytest.raises(ValueError, match="unknown method 'best'"):
        prune_chains(model, chains, [x], keep=0.5, method="best")
    with pytest.raises(ValueError, match=r"model must be an nn\.Sequential"):
        sequential_chains(nn.Linear(2, 2))


def test_a_shuffling_dataloader_gives_the_same_calibration_batches_for_a_seed(digits_cnn):
    from torch.utils.data import DataLoader, TensorDataset

    from torchbridge.chains import sequential_chains
    from torchbridge.images import loader_batches
    from torchbridge.prune import prune_chains

    model, x = digits_cnn
    labels = torch.arange(len(x))
    loader = DataLoader(TensorDataset(x, labels), batch_size=16, shuffle=True)
    first, again = loader_batches(loader, 3, seed=5), loader_batches(loader, 3, seed=5)
    other = loader_batches(loader, 3, seed=6)
    assert [b.shape for b in first] == [(16, *x.shape[1:])] * 3
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    rows = {tuple(r.tolist()) for r in x.flatten(1)}  # every batch holds images of the data
    assert all(tuple(r.tolist()) in rows for b in first for r in b.flatten(1))
    state = torch.random.get_rng_state()
    loader_batches(loader, 1, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator is kept
    _, reports = prune_chains(model, sequential_chains(model), first, keep=0.5)
    assert all(r.kept == round(0.5 * r.total) for r in reports)
    with pytest.raises(ValueError, match=r"the loader gave \d+ batches; 999 were asked for"):
        loader_batches(loader, 999)
    with pytest.raises(ValueError, match="calibration batch 0 is not a tensor of inputs"):
        loader_batches([["a", "b"]], 1)
    with pytest.raises(ValueError, match="calibration batch 0 holds NaN"):
        loader_batches([(torch.full((2, 1, 8, 8), float("nan")), torch.zeros(2))], 1)
    with pytest.raises(ValueError, match="batches must be a positive number"):
        loader_batches(loader, 0)


@pytest.mark.parametrize(
    ("arch", "chains"),
    [("resnet18", 8), ("resnet34", 16), ("resnet50", 32), ("mobilenet_v2", 16),
     ("mobilenet_v3_small", 10), ("mobilenet_v3_large", 14)],
)  # fmt: skip
@pytest.mark.slow
def test_torchvision_blocks_prune_and_keep_working(arch, chains):
    """Random-initialised torchvision models (nothing downloaded): uniform weights over every
    internal channel change nothing; half the internal channels cut FLOPs and still run."""
    import torchvision

    from torchbridge.chains import block_chains
    from torchbridge.prune import apply_weights, prune_chains

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    found = block_chains(model)
    assert len(found) == chains
    same = __import__("copy").deepcopy(model)
    for chain in found:
        n = same.get_submodule(chain.producer).out_channels
        apply_weights(same, chain, np.full(n, 1.0 / n))
    with torch.no_grad():
        assert torch.allclose(same(x), model(x), rtol=1e-4, atol=1e-5)
    pruned, reports = prune_chains(model, found, [x], keep=0.5)
    assert all(r.kept <= r.total // 2 for r in reports)
    assert count(pruned, x).flops < count(model, x).flops
    with torch.no_grad():
        assert pruned(x).shape == (2, 10)


@pytest.mark.parametrize(
    ("arch", "block"),
    [("resnet18", "BasicBlock"), ("resnet50", "Bottleneck"), ("mobilenet_v2", "InvertedResidual"),
     ("efficientnet_lite0", "timm InvertedResidual")],
)  # fmt: skip
def test_every_chain_pruned_at_once_equals_the_masked_computation(arch, block):
    """Every chain of the network keeps a random subset of its channels with convex weights a:
    the physically pruned network equals the original whose consumers see their inputs scaled
    by N a_i (dropped channels at 0), in float64. A Bottleneck's middle convolution is the
    consumer of one chain and the producer of the next, so both of its sides shrink."""
    from masked_reference import masked_and_pruned

    from torchbridge.chains import block_chains
    from torchbridge.models import build

    torch.manual_seed(0)
    model = build(arch, num_classes=10).double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    unmasked, masked, pruned = masked_and_pruned(model, block_chains(model), x)
    assert not torch.allclose(unmasked, masked)  # the masks do change the output
    with torch.no_grad():
        assert torch.allclose(pruned(x), masked, rtol=1e-10, atol=1e-10 * masked.abs().max())


def test_unknown_architecture_has_no_chains():
    from torchbridge.chains import block_chains

    with pytest.raises(ValueError, match="no supported block in Linear"):
        block_chains(nn.Linear(3, 3))


def test_efficientnet_lite0_real_weights_and_its_chains():
    """The real ImageNet weights (skip if the package is absent): skimage's coffee photo is an
    espresso (class 967) with p > 0.9; the 15 inverted residuals are chains, and uniform weights
    over all their expanded channels leave the logits unchanged."""
    pytest.importorskip("timm")
    pytest.importorskip("skimage")
    from torchbridge.chains import block_chains
    from torchbridge.efficientnet import load_efficientnet_lite0
    from torchbridge.images import photos
    from torchbridge.models import views
    from torchbridge.prune import apply_weights

    try:
        model = load_efficientnet_lite0()
    except ValueError as error:
        pytest.skip(str(error))
    x = views("efficientnet_lite0").centre(photos()["coffee"])[None]
    with torch.no_grad():
        p = model(x).softmax(dim=1)
    assert int(p.argmax()) == 967 and float(p.max()) > 0.9
    chains = block_chains(model)
    assert len(chains) == 15
    chain = chains[3]
    n = model.get_submodule(chain.producer).out_channels
    apply_weights(model, chain, np.full(n, 1.0 / n))
    with torch.no_grad():
        assert torch.allclose(model(x).softmax(dim=1), p, atol=1e-5)


def test_missing_or_foreign_weights_files_are_named(tmp_path):
    pytest.importorskip("timm")
    from torchbridge.efficientnet import load_efficientnet_lite0

    with pytest.raises(ValueError, match="weights file not found"):
        load_efficientnet_lite0(tmp_path / "missing.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"text\.pth cannot be read as EfficientNet-Lite0"):
        load_efficientnet_lite0(tmp_path / "text.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list\.pth is not a state dict of tensors"):
        load_efficientnet_lite0(tmp_path / "list.pth")
    torch.save({"a": torch.zeros(1)}, tmp_path / "small.pth")
    with pytest.raises(ValueError, match="does not match tf_efficientnet_lite0 tensor by tensor"):
        load_efficientnet_lite0(tmp_path / "small.pth")


def test_consumers_with_dynamic_padding_are_refused():
    class Same(nn.Conv2d):
        def forward(self, x):  # stands for TF-style 'same' padding computed at run time
            return super().forward(x)

    with pytest.raises(ValueError, match=r"overrides Conv2d\.forward"):
        GramAccumulator(Same(4, 4, 3))


def test_squeeze_excitation_chain_equals_its_masked_computation():
    """MobileNetV3: the pruned block equals the original with the consumer inputs scaled by
    N a_i and, inside the squeeze, the dropped channels' pooled values fixed at their
    calibration means (folded into fc1's bias)."""
    import copy

    import torchvision

    from torchbridge.chains import block_chains
    from torchbridge.prune import SqueezeMeans, apply_weights, run_capturing

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
    chain = next(c for c in block_chains(model) if len(c.between) == 4)
    squeeze = model.get_submodule(chain.between[3])
    consumer = model.get_submodule(chain.consumer)
    calibration, x = torch.randn(6, 3, 64, 64), torch.randn(3, 3, 64, 64)
    means = SqueezeMeans(model, chain)
    run_capturing(model, consumer, [calibration], lambda _: None)
    means = means.close()
    n = consumer.in_channels
    a = np.random.default_rng(0).dirichlet(np.ones(n))
    a[::3] = 0.0
    a /= a.sum()
    dropped = torch.as_tensor(a == 0.0)

    def fix_dropped(_, args):
        pooled = args[0].clone()
        pooled[:, dropped] = means[3][dropped].to(pooled)[:, None, None]
        return (pooled,)

    block = chain.producer.rsplit(".block", 1)[0]  # compare the block's output

    def output(net):
        seen = []
        handle = net.get_submodule(block).register_forward_hook(lambda *io: seen.append(io[2]))
        with torch.no_grad():
            net(x)
        handle.remove()
        return seen[0]

    gates = torch.as_tensor(n * a, dtype=torch.float32)[None, :, None, None]
    hooks = [
        squeeze.fc1.register_forward_pre_hook(fix_dropped),
        consumer.register_forward_pre_hook(lambda _, args: (args[0] * gates,)),
    ]
    masked = output(model)
    for hook in hooks:
        hook.remove()
    pruned = copy.deepcopy(model)
    apply_weights(pruned, chain, a, means)
    assert pruned.get_submodule(chain.between[3]).fc1.in_channels == int((a > 0).sum())
    assert torch.allclose(output(pruned), masked, rtol=1e-4, atol=1e-5)
    scale = float(masked.abs().max())
    assert float((output(pruned) - output(model)).abs().max()) > 1e-3 * scale  # it did change


def _output_of(net: nn.Module, name: str, batches: list[torch.Tensor]) -> torch.Tensor:
    """The output of ``net``'s module ``name`` on ``batches``, concatenated, in float64."""
    seen = []
    handle = net.get_submodule(name).register_forward_hook(lambda *io: seen.append(io[2].double()))
    with torch.no_grad():
        for batch in batches:
            net(batch)
    handle.remove()
    return torch.cat(seen)


@pytest.mark.parametrize("method", ["magnitude", "greedy-local"])
def test_bias_compensation_restores_the_mean_and_lowers_the_error(digits_cnn, method):
    """After pruning one chain, the consumer's mean output over the calibration images equals
    the unpruned one, and the mean squared change drops by exactly the squared mean change."""
    from torchbridge.chains import sequential_chains
    from torchbridge.prune import prune_chains

    model, x = digits_cnn
    chain = sequential_chains(model)[0]
    calib = [x[:100], x[100:200]]

    original = _output_of(model, chain.consumer, calib)
    plain, _ = prune_chains(model, [chain], calib, keep=0.5, method=method)
    fixed, _ = prune_chains(model, [chain], calib, keep=0.5, method=method, compensate=True)
    before = _output_of(plain, chain.consumer, calib) - original
    after = _output_of(fixed, chain.consumer, calib) - original
    per_channel = before.mean(dim=(0, 2, 3))
    assert torch.allclose(after.mean(dim=(0, 2, 3)), torch.zeros_like(per_channel), atol=1e-4)
    mse_before = float((before**2).sum(dim=1).mean())
    mse_after = float((after**2).sum(dim=1).mean())
    expected_drop = float((per_channel**2).sum())
    assert mse_after < mse_before
    assert mse_before - mse_after == pytest.approx(expected_drop, rel=1e-3)


def _kept_channels(model: nn.Module, pruned: nn.Module, producer: str) -> list[int]:
    """Which of ``model``'s producer channels ``pruned`` kept (their filters are unchanged)."""
    original = model.get_submodule(producer).weight.flatten(1)
    rows = pruned.get_submodule(producer).weight.flatten(1)
    return [int(torch.cdist(row[None], original).argmin()) for row in rows]


def test_resolve_gives_the_kept_channels_the_least_loss_convex_weights(digits_cnn):
    """``resolve=True`` on one chain: the same channels as the selector's (or fewer), and the
    consumer's output moves by the reported loss, which is cvxpy's minimum over the simplex on
    those channels, below the loss of the selector's own weights."""
    from theory.simplex_qp import solve_simplex_qp
    from torchbridge.chains import sequential_chains
    from torchbridge.prune import layer_problems, prune_chains

    model, x = digits_cnn
    chain = sequential_chains(model)[1]
    calib = [x[:100], x[100:200]]
    plain, [plain_report] = prune_chains(model, [chain], calib, keep=0.5)
    fixed, [report] = prune_chains(model, [chain], calib, keep=0.5, resolve=True)
    kept = _kept_channels(model, fixed, chain.producer)
    assert set(kept) <= set(_kept_channels(model, plain, chain.producer))
    assert report.kept == len(kept) and plain_report.kept == 6
    problem = layer_problems(model, [chain], calib)[0]
    best = solve_simplex_qp(
        problem.centred[np.ix_(kept, kept)], -problem.centred_target[kept], solver="cvxpy"
    )
    weights = np.zeros(problem.n_neurons)
    weights[kept] = best
    assert report.loss == pytest.approx(problem.loss(weights), rel=1e-6)
    assert report.loss < 0.9 * plain_report.loss

    change = _output_of(fixed, chain.consumer, calib) - _output_of(model, chain.consumer, calib)
    measured = float((change**2).sum(dim=(1, 2, 3)).mean())
    assert measured == pytest.approx(report.loss, rel=1e-3)
    with pytest.raises(ValueError, match="omp's are not on the simplex"):
        prune_chains(model, [chain], calib, keep=0.5, method="omp", resolve=True)
