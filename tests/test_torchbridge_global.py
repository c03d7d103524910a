"""The global loss on real network graphs: the split at a consumer, the oracle and the gradient
against the network actually pruned, and the global selectors on residual networks."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from torch import nn  # noqa: E402

from torchbridge.chains import block_chains, sequential_chains  # noqa: E402
from torchbridge.oracle import global_loss, output_distance  # noqa: E402
from torchbridge.prune import apply_weights, prune_chains  # noqa: E402
from torchbridge.split import split_at  # noqa: E402


def _sequential() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).eval()  # fmt: skip


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    models = {
        "resnet18": torchvision.models.resnet18(num_classes=10),
        "mobilenet_v2": torchvision.models.mobilenet_v2(num_classes=10),
        "sequential": _sequential(),
    }
    try:
        import timm

        models["efficientnet_lite0"] = timm.create_model("tf_efficientnet_lite0", num_classes=10)
    except ImportError:
        pass
    return {name: model.eval() for name, model in models.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_lite0", "sequential"])
def test_head_then_consumer_then_tail_is_the_network(name):
    models = _models()
    if name not in models:
        pytest.skip("timm is not installed")
    model = models[name]
    chains = sequential_chains(model) if name == "sequential" else block_chains(model)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        expected = model(x)
        carried = []
        for chain in chains:
            split = split_at(model, chain.consumer)
            head = split.head(x)
            out = split.tail(model.get_submodule(chain.consumer)(head[0]), *head[1:])
            assert torch.equal(out, expected), chain
            carried.append(split.carried)
    # a residual connection's identity crosses the cut; nothing crosses in a Sequential
    assert (max(carried) >= 1) == (name != "sequential")


def test_split_refuses_what_it_cannot_cut():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.conv(self.conv(x))

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else x

    with pytest.raises(ValueError, match="must be called exactly once in forward; found 2"):
        split_at(Twice(), "conv")
    with pytest.raises(ValueError, match=r"Branchy cannot be traced by torch\.fx"):
        split_at(Branchy(), "conv")


def _pruned_output(model, chain, weights, x):
    pruned = copy.deepcopy(model)
    apply_weights(pruned, chain, weights)
    with torch.no_grad():
        return pruned(x)


@pytest.mark.parametrize("objective", ["kl", "mse"])
def test_oracle_equals_the_loss_of_the_network_actually_pruned(objective):
    """Coupling of the oracle with surgery, across a residual connection: for each candidate
    (1 - g) a + g e_j the oracle's loss is the measured loss of the physically pruned ResNet."""
    model = _models()["resnet18"]
    chain = block_chains(model)[2]
    x = torch.randn(6, 3, 40, 40)
    batches = [x[:4], x[4:]]
    with torch.no_grad():
        references = [model(b) for b in batches]
    loss = global_loss(model, chain.consumer, batches, references, objective)
    n = loss.n_channels
    a = np.zeros(n)
    a[[0, 5, 9, 30]] = [0.4, 0.3, 0.2, 0.1]
    neurons, sizes = np.array([5, 17, 40]), np.array([0.0, 0.25, 0.6])
    predicted = loss.oracle(a, neurons, sizes)
    for j, g, value in zip(neurons, sizes, predicted, strict=True):
        candidate = (1.0 - g) * a
        candidate[j] += g
        out = _pruned_output(model, chain, candidate, x)
        with torch.no_grad():
            expected = model(x).double()
        measured = float(output_distance(out.double(), expected, objective).mean())
        assert value == pytest.approx(measured, rel=1e-4, abs=1e-7)


def test_gradient_matches_finite_differences_of_the_oracle():
    model = _models()["resnet18"].double()
    chain = block_chains(model)[1]
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(x)
    loss = global_loss(model, chain.consumer, [x], [reference], "kl")
    n = loss.n_channels
    a = np.random.default_rng(0).dirichlet(np.ones(n))
    grad = loss.gradient(a)
    h = 1e-7  # small: a wider difference straddles ReLU kinks of some pixels
    for j in (0, 7, 33):
        up, down = loss.oracle(a, np.array([j, j]), np.array([h, -h]))
        directional = (up - down) / (2 * h)  # d/dg L((1 - g) a + g e_j) at g = 0
        assert grad[j] - a @ grad == pytest.approx(directional, rel=1e-6, abs=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["global-imitation", "combined", "taylor"])
def test_global_selectors_prune_a_resnet(method):
    model = _models()["resnet18"]
    chains = block_chains(model)[:3]
    x = torch.randn(8, 3, 32, 32)
    pruned, reports = prune_chains(
        model, chains, [x[:4], x[4:]], keep=0.25, method=method, candidates=4, oracle_images=4
    )
    assert [r.kept <= round(0.25 * r.total) for r in reports] == [True] * 3
    assert [pruned.get_submodule(c.producer).out_channels for c in chains] == [
        r.kept for r in reports
    ]
    with torch.no_grad():
        assert pruned(x).shape == (8, 10)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["global-imitation", "combined", "taylor"])
def test_without_repeats_the_global_selectors_keep_exactly_the_width(method):
    """Every step adds a channel never picked, so each chain ends at its width (the budget is
    met in k steps, not at most)."""
    model = _models()["resnet18"]
    chains = block_chains(model)[:3]
    x = torch.randn(8, 3, 32, 32)
    _, reports = prune_chains(model, chains, [x[:4], x[4:]], keep=0.25, method=method,
                              candidates=4, oracle_images=4, repeats=False)  # fmt: skip
    assert [r.kept for r in reports] == [round(0.25 * r.total) for r in reports]


def test_the_step_bar_counts_every_selector_step_up_to_the_width(monkeypatch):
    """The per-chain progress bar of a global selector: its total is the width k without
    repeats (20 k with), and it ends at k, one update a step."""
    import torchbridge.prune as prune_module

    bars = []

    class Recorder:
        def __init__(self, iterable=None, total=None, desc="", disable=False, **kwargs):
            self.iterable, self.total, self.desc, self.n = iterable, total, desc, 0
            bars.append(self)

        def __iter__(self):
            return iter(self.iterable)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n=1):
            self.n += n

    monkeypatch.setattr(prune_module, "tqdm", Recorder)
    model = _sequential()
    chains = sequential_chains(model)
    x = torch.randn(8, 3, 12, 12)
    widths = [3, 4]  # half of the 6 and 8 channels of the two chains
    for repeats, cap in ((False, 1), (True, 20)):
        bars.clear()
        prune_chains(model, chains, [x], keep=0.5, method="global-imitation", candidates=8,
                     oracle_images=4, repeats=repeats, progress=True)  # fmt: skip
        steps = [bar for bar in bars if bar.iterable is None]
        assert [bar.desc for bar in steps] == [chain.producer for chain in chains]
        assert [bar.total for bar in steps] == [cap * k for k in widths]
        counts = [bar.n for bar in steps]
        if repeats:
            assert all(c >= k for c, k in zip(counts, widths, strict=True))
        else:
            assert counts == widths


def test_the_global_choice_of_one_channel_is_best_by_the_network_loss():
    """With every channel a candidate and one channel to keep, global imitation takes the
    channel whose pruned network is closest to the unpruned one (by the KL it scores), so it
    can be no worse than the local rule's channel on that loss."""
    model = _models()["sequential"]
    chain = sequential_chains(model)[0]  # 6 channels
    x = torch.randn(16, 3, 12, 12)
    with torch.no_grad():
        reference = model(x)
    common = {"keep": 1 / 6, "oracle_images": 16}
    local, _ = prune_chains(model, [chain], [x], method="greedy-local", **common)
    glob, _ = prune_chains(model, [chain], [x], method="global-imitation", candidates=6, **common)

    def kl(net):
        with torch.no_grad():
            return float(output_distance(net(x).double(), reference.double(), "kl").mean())

    assert local.get_submodule(chain.producer).out_channels == 1
    assert glob.get_submodule(chain.producer).out_channels == 1
    assert kl(glob) <= kl(local) + 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_lite0"])
def test_walking_the_graph_prunes_as_running_the_network_per_chain(name, monkeypatch):
    """The one-pass walk gives the same channels and weights as a full forward pass per
    chain, and runs the stem once per batch instead of once per chain (the passes of the
    chain check, made once before the pruning, are not counted here)."""
    monkeypatch.setattr("torchbridge.prune.check_chains", lambda *_: None)
    models = _models() | {"mobilenet_v3_small": torchvision.models.mobilenet_v3_small()}
    if name not in models:
        pytest.skip("timm is not installed")
    model = models[name].eval()
    chains = block_chains(model)
    x = torch.randn(6, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    batches = [x[:3], x[3:]]
    stem = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    calls = []
    handle = stem.register_forward_pre_hook(lambda *_: calls.append(1))
    walked, walked_reports = prune_chains(model, chains, batches, keep=0.5)
    walked_calls = len(calls)
    calls.clear()
    full, full_reports = prune_chains(model, chains, batches, keep=0.5, walk_graph=False)
    handle.remove()
    # the copy pruned keeps the hook: the stem runs once per batch against once per chain
    assert walked_calls == len(batches) and len(calls) == len(chains) * len(batches)
    assert [r.kept for r in walked_reports] == [r.kept for r in full_reports]
    assert [r.loss for r in walked_reports] == pytest.approx(
        [r.loss for r in full_reports], rel=1e-6
    )
    for (key, a), b in zip(walked.state_dict().items(), full.state_dict().values(), strict=True):
        assert a.shape == b.shape, key
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), key


def test_the_walk_runs_the_network_about_twice():
    from torchbridge.walk import Walk

    model = _models()["resnet18"]
    chains = block_chains(model)
    walk = Walk(model, chains)
    stem_calls, last_producer, last_consumer = [], [], []
    model.conv1.register_forward_pre_hook(lambda *_: stem_calls.append(1))
    model.layer4[1].conv1.register_forward_pre_hook(lambda *_: last_producer.append(1))
    model.layer4[1].conv2.register_forward_pre_hook(lambda *_: last_consumer.append(1))
    state = walk.start(torch.randn(2, 3, 32, 32))
    with torch.no_grad():
        for i in range(len(chains)):
            walk.advance(state, i)
            walk.consumer_inputs(state, i)
    assert len(stem_calls) == 1 and len(last_producer) == 1
    assert not last_consumer  # nothing after the last consumer's input runs
    resnet50 = torchvision.models.resnet50()  # Bottleneck: a consumer is the next producer
    assert len(Walk(resnet50, block_chains(resnet50)).producers) == 32
    assert set(state.env) <= set(walk.nodes)
    assert len(state.env) <= 3  # only the values that cross the cut are kept


@pytest.mark.slow
def test_the_path_ends_at_the_output_loss_of_the_chain_actually_pruned(tmp_path):
    """Coupling of the path study with surgery: the last output loss of each path is the KL,
    on the oracle images, of the network whose one chain prune_chains prunes with the same
    method and options, and its re-solved end that of prune_chains with ``resolve``; the layer
    errors are the trace's; greedy-local's choices are all
    local and its layer error never rises; a method whose steps cannot be replayed as forward
    steps is a clear error; the paths are drawn in one figure, PNG and PDF."""
    from torchbridge.evaluate import compare
    from torchbridge.path import output_paths, plot_paths

    model = _models()["resnet18"]
    with torch.no_grad():
        model.fc.weight *= 10.0  # logits of order 1, so the output losses are far from 0
    x = torch.randn(8, 3, 32, 32)
    chain = block_chains(model)[0]
    batches = [x[:4], x[4:]]
    common = {"oracle_images": 5, "candidates": 3, "repeats": False}
    paths = output_paths(model, chain, batches, ("greedy-local", "global-imitation"), 0.2,
                         every=3, **common)  # fmt: skip
    n = model.get_submodule(chain.producer).out_channels
    for method, path in paths.items():
        assert path["kept"][-1] == round(0.2 * n) == path["step"][-1]  # no repeats: k steps
        assert path["step"][:3] == [3, 6, 9]
        scored = {"candidates": 3} if method == "global-imitation" else {}
        pruned, reports = prune_chains(model, [chain], batches, keep=0.2, method=method,
                                       oracle_images=5, repeats=False, **scored)  # fmt: skip
        kl = compare(pruned, model, [x[:5]])["kl"]
        assert path["output"][-1] == pytest.approx(kl, rel=1e-4, abs=1e-7)
        assert path["layer_rel"][-1] == pytest.approx(reports[0].output_rel, rel=1e-9)
        assert path["refit_layer_rel"] <= path["layer_rel"][-1] * (1 + 1e-9)  # the optimum
        resolved, [report] = prune_chains(model, [chain], batches, keep=0.2, method=method,
                                          oracle_images=5, repeats=False, resolve=True,
                                          **scored)  # fmt: skip
        assert path["refit_output"] == pytest.approx(
            compare(resolved, model, [x[:5]])["kl"], rel=1e-4, abs=1e-7
        )
        assert path["refit_layer_rel"] == pytest.approx(report.output_rel, rel=1e-6)
        assert path["refit_kept"] == report.kept
        assert 1 <= path["refit_kept"] <= path["kept"][-1] and path["refit_output"] > 1e-4
        assert min(path["output"]) > 1e-4  # a real loss, not round-off
    local = paths["greedy-local"]
    assert local["local_share"] == 1.0 and paths["global-imitation"]["local_share"] < 1.0
    assert np.all(np.diff(local["layer_rel"]) <= 1e-12)
    with pytest.raises(ValueError, match="vertex and forward steps only"):
        output_paths(model, chain, batches, ("omp",), 0.2)
    figures = plot_paths(paths, "one chain", tmp_path / "figures", "path-chain0")
    assert [f.name for f in figures] == ["path-chain0.png", "path-chain0.pdf"]
    assert all(f.stat().st_size > 1000 for f in figures)
