"""Deep networks: MLPs pruned layer by layer from the input side, locally, globally, combined.

An MLP x -> z_1 = W_1 x + b_1 -> h_1 = act(z_1) -> ... -> z_L = W_L h_{L-1} + b_L (logits).
Pruning hidden layer l keeps neurons of h_l: neuron i contributes
psi_i(x) = n_l W_{l+1}[:, i] h_{l,i}(x) to z_{l+1}, so the layer problem is THEORY.md's with
F = z_{l+1} - b_{l+1} of the current network (earlier layers already pruned). The chosen convex
weights a are folded into the consumer: W_{l+1}[:, i] <- n_l a_i W_{l+1}[:, i].

Selectors: ``greedy-local`` (the layer loss), ``global-imitation`` and ``combined`` (the loss
on the whole network's output against the unpruned network, through an oracle that runs the
rest of the network for a batch of candidates), and baselines.

THEORY.md statement 7: with eps_l the layer loss left at layer l and Lip_l the Lipschitz
constant of the map from z_{l+1} to the output (products of spectral norms of the later weight
matrices and of the activation's Lipschitz constant), the output moves by at most
sum_l Lip_l sqrt(eps_l) in L2(D); every instance records both sides.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace

import numpy as np

from sims.config import REAL_SIZE, Named, _member, build, network_entries
from sims.data import REAL_DIMS, load_inputs
from sims.instance import Instance
from theory import LayerProblem, select
from theory.iterate import replay
from theory.selectors import SELECTORS

ACTIVATIONS = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(z.dtype), 1.0),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2, 1.0),
}
CLASSES = 10  # digits and MNIST-5k
DEEP_METHODS = ("greedy-local", "global-imitation", "combined", "fixed-step", "random")
ADAM = (0.9, 0.999, 1e-8)


@dataclass(frozen=True)
class MLP:
    """weights[l]: (n_{l+1}, n_l); biases[l]: (n_{l+1},); the last layer is linear."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activation: str

    def pre_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """[z_1, ..., z_L] on inputs x (m, d), each (m, n_l)."""
        act = ACTIVATIONS[self.activation][0]
        zs, h = [], x
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = h @ w.T + b
            zs.append(z)
            if layer < len(self.weights) - 1:
                h = act(z)
        return zs

    def output(self, x: np.ndarray) -> np.ndarray:
        return self.pre_activations(x)[-1]

    def forward_from(self, z: np.ndarray, layer: int) -> np.ndarray:
        """The output from the pre-activation z (..., n) of weight layer ``layer`` (0-based)."""
        act = ACTIVATIONS[self.activation][0]
        for w, b in zip(self.weights[layer + 1 :], self.biases[layer + 1 :], strict=True):
            z = act(z) @ w.T + b
        return z

    def lipschitz_after(self, layer: int) -> float:
        """Lipschitz constant of z_{layer+1} -> output: prod of later spectral norms x Lip(act)."""
        lip_act = ACTIVATIONS[self.activation][2]
        later = self.weights[layer + 1 :]
        return float(np.prod([lip_act * np.linalg.norm(w, 2) for w in later]))


def random_mlp(widths: tuple[int, ...], activation: str, rng: np.random.Generator) -> MLP:
    """He-initialised MLP with layer widths (d, n_1, ..., n_{L-1}, k)."""
    weights = tuple(
        rng.normal(size=(n_out, n_in)) * np.sqrt(2.0 / n_in)
        for n_in, n_out in itertools.pairwise(widths)
    )
    return MLP(weights, tuple(np.zeros(w.shape[0]) for w in weights), activation)


def cross_entropy_gradients(
    mlp: MLP, x: np.ndarray, labels: np.ndarray
) -> tuple[float, list[np.ndarray]]:
    """Mean softmax cross-entropy of the logits against labels (m,), and its gradients
    [dW_1, db_1, ..., dW_L, db_L] by backpropagation."""
    act, dact, _ = ACTIVATIONS[mlp.activation]
    zs = mlp.pre_activations(x)
    logits = zs[-1] - zs[-1].max(axis=1, keepdims=True)
    log_prob = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    m = x.shape[0]
    loss = -float(log_prob[np.arange(m), labels].mean())
    delta = np.exp(log_prob)
    delta[np.arange(m), labels] -= 1.0
    delta /= m  # d loss / d z_L
    grads: list[np.ndarray] = []
    for layer in range(len(mlp.weights) - 1, -1, -1):
        below = x if layer == 0 else act(zs[layer - 1])
        grads = [delta.T @ below, delta.sum(axis=0), *grads]
        if layer:
            delta = (delta @ mlp.weights[layer]) * dact(zs[layer - 1])
    return loss, grads


def train_mlp(mlp: MLP, x: np.ndarray, labels: np.ndarray, steps: int, lr: float) -> MLP:
    """Full-batch Adam on the softmax cross-entropy of the logits against integer labels (m,)."""
    params = [p.copy() for pair in zip(mlp.weights, mlp.biases, strict=True) for p in pair]
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    beta1, beta2, tiny = ADAM
    for t in range(1, steps + 1):
        net = MLP(tuple(params[0::2]), tuple(params[1::2]), mlp.activation)
        _, grads = cross_entropy_gradients(net, x, labels)
        for i, g in enumerate(grads):
            first[i] = beta1 * first[i] + (1 - beta1) * g
            second[i] = beta2 * second[i] + (1 - beta2) * g * g
            step = (first[i] / (1 - beta1**t)) / (np.sqrt(second[i] / (1 - beta2**t)) + tiny)
            params[i] = params[i] - lr * step
    return MLP(tuple(params[0::2]), tuple(params[1::2]), mlp.activation)


def layer_problem(mlp: MLP, x: np.ndarray, layer: int) -> tuple[LayerProblem, np.ndarray]:
    """(problem, psi (n_l, m, n_{l+1})) of hidden layer ``layer`` (1-based) on inputs x."""
    act = ACTIVATIONS[mlp.activation][0]
    h = act(mlp.pre_activations(x)[layer - 1])  # (m, n_l)
    consumer = mlp.weights[layer]  # (n_{l+1}, n_l)
    psi = h.shape[1] * h.T[:, :, None] * consumer.T[:, None, :]
    return LayerProblem.from_features(psi), psi


def output_losses(mlp: MLP, layer: int, z: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean squared output distance to reference (m, k) for K pre-activations z (K, m, n_{l+1})
    of hidden layer ``layer``'s consumer (without its bias): (K,)."""
    out = mlp.forward_from(z + mlp.biases[layer], layer)  # (K, m, k)
    return ((out - reference) ** 2).sum(axis=2).mean(axis=1)


def output_oracle(mlp: MLP, psi: np.ndarray, layer: int, reference: np.ndarray):
    """Oracle for global imitation at hidden layer ``layer``: the output loss of each
    candidate (1 - g) a + g e_j, for the whole batch of candidates at once."""

    def oracle(weights: np.ndarray, neurons: np.ndarray, steps: np.ndarray) -> np.ndarray:
        base = np.tensordot(weights, psi, axes=1)  # (m, n_{l+1}), sum_i a_i psi_i
        z = (1.0 - steps)[:, None, None] * base + steps[:, None, None] * psi[neurons]
        return output_losses(mlp, layer, z, reference)

    return oracle


def fold(mlp: MLP, layer: int, weights: np.ndarray) -> MLP:
    """Keep the neurons of hidden layer ``layer`` with non-zero weight; fold n_l a_i into W."""
    keep = np.flatnonzero(weights)
    n = weights.size
    ws, bs = list(mlp.weights), list(mlp.biases)
    ws[layer - 1], bs[layer - 1] = ws[layer - 1][keep], bs[layer - 1][keep]
    ws[layer] = ws[layer][:, keep] * (n * weights[keep])
    return replace(mlp, weights=tuple(ws), biases=tuple(bs))


@dataclass(frozen=True)
class MLPSpec:
    """One family of MLPs: layer widths (the data's dimension first, its 10 classes last),
    trained or random."""

    widths: tuple[int, ...] = (64, 96, 96, 96, 10)  # 3 hidden layers: a 4-layer MLP
    activation: str = "relu"
    inputs: str = "digits"
    trained: bool = True
    keep: int = 24  # neurons kept in every hidden layer

    def validate(self) -> None:
        _member("activation", self.activation, tuple(ACTIVATIONS))
        _member("inputs", self.inputs, ("digits", "mnist5k"))
        if len(self.widths) < 3 or min(self.widths) < 1:
            raise ValueError(f"widths must list >= 3 positive layer sizes; got {self.widths}")
        ends = (REAL_DIMS[self.inputs], CLASSES)
        if (self.widths[0], self.widths[-1]) != ends:
            raise ValueError(
                f"widths must start with the input dimension and end with the classes of "
                f"{self.inputs}, {ends}; got {self.widths}"
            )
        if not 1 <= self.keep <= min(self.widths[1:-1]):
            raise ValueError(f"keep must be in [1, {min(self.widths[1:-1])}]; got {self.keep}")


def _depths(trained: bool) -> tuple[MLPSpec, ...]:
    return tuple(MLPSpec(widths=(64, *[96] * hidden, 10), trained=trained) for hidden in (2, 3, 4))


@dataclass(frozen=True)
class DeepConfig(Named):
    """Families of MLPs (trained on a real data set, or random), every hidden layer pruned."""

    name: str = "deep"
    # 3-, 4- and 5-layer MLPs on digits, trained and random; a 4-layer MLP trained on MNIST-5k.
    networks: tuple[MLPSpec, ...] = (
        *_depths(True),
        *_depths(False),
        MLPSpec(widths=(784, 96, 96, 96, 10), inputs="mnist5k"),
    )
    train_samples: int = 1000
    calib_samples: int = 300
    test_samples: int = 497
    train_steps: int = 400
    lr: float = 0.01
    methods: tuple[str, ...] = DEEP_METHODS
    candidates: int = 50
    seeds: int = 10
    seed: int = 0

    def validate(self) -> None:
        if not self.networks:
            raise ValueError("networks is empty: an experiment needs at least one MLP family")
        for spec in self.networks:
            spec.validate()
        for method in self.methods:
            _member("method", method, tuple(SELECTORS))
        if self.seeds < 1 or self.train_steps < 0 or min(self.calib_samples, self.test_samples) < 1:
            raise ValueError("seeds, calib_samples and test_samples must be >= 1, train_steps >= 0")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0; got {self.seed}")
        if self.candidates < 1 or not self.lr > 0:
            raise ValueError(
                f"candidates must be >= 1 and lr > 0; got {self.candidates}, {self.lr}"
            )
        total = self.train_samples + self.calib_samples + self.test_samples
        for spec in self.networks:
            if total > REAL_SIZE[spec.inputs]:
                raise ValueError(
                    f"{spec.inputs} has {REAL_SIZE[spec.inputs]} images; train_samples + "
                    f"calib_samples + test_samples = {total}"
                )


def from_dict(data: dict) -> DeepConfig:
    """A DeepConfig from a plain mapping (as read from TOML or JSON); unknown keys are errors."""
    networks = tuple(
        build(MLPSpec, entry, "MLP family", ("widths",)) for entry in network_entries(data, [])
    )
    rest = {k: v for k, v in data.items() if k != "networks"}
    config = replace(build(DeepConfig, rest, "deep configuration", ("methods",)), networks=networks)
    config.validate()
    return config


def _accuracy(mlp: MLP, x: np.ndarray, labels: np.ndarray) -> float:
    return float((mlp.output(x).argmax(axis=1) == labels).mean())


def run_deep_instance(config: DeepConfig, instance: Instance) -> tuple[dict, dict]:
    """Prune one MLP of family ``instance.family`` with every method; rows: per layer, method
    and step."""
    spec = config.networks[instance.family]
    rng = np.random.default_rng(instance.seed)
    total = config.train_samples + config.calib_samples + config.test_samples
    x, labels = load_inputs(spec.inputs, total, None, rng)
    parts = np.split(np.arange(total), [config.train_samples, total - config.test_samples])
    (xt, yt), (xc, _), (xs, ys) = ((x[p], labels[p]) for p in parts)
    widths = (x.shape[1], *spec.widths[1:])
    mlp = random_mlp(widths, spec.activation, rng)
    if spec.trained:
        mlp = train_mlp(mlp, xt, yt, config.train_steps, config.lr)
    reference = mlp.output(xc)
    scale = float((reference**2).sum(axis=1).mean())
    rows: dict[str, list] = {
        k: [] for k in ("method", "layer", "n", "layer_loss_rel", "output_rel")
    }
    summary = {}
    for method in config.methods:
        net, layers = mlp, []
        for layer in range(1, len(widths) - 1):
            problem, psi = layer_problem(net, xc, layer)
            oracle = output_oracle(net, psi, layer, reference)
            options = {"oracle": oracle, "candidates": config.candidates}
            trace = select(
                problem, spec.keep, method, seed=instance.seed,
                **(options if SELECTORS[method].needs_oracle else {}),
            )  # fmt: skip
            weights, local_share = replay(problem, trace)
            z = np.tensordot(weights, psi, axes=1)  # (K, m, n_{l+1}) after each step
            per_step = output_losses(net, layer, z, reference)
            sigma2 = float(np.diag(problem.centred).mean())
            sigma2 = sigma2 if sigma2 > 0 else 1.0  # all neurons alike: every loss is 0
            k = len(trace)
            rows["method"] += [method] * k
            rows["layer"] += [layer] * k
            rows["n"] += list(range(1, k + 1))
            rows["layer_loss_rel"] += (trace.losses / sigma2).tolist()
            rows["output_rel"] += (per_step / scale).tolist()
            layers.append(
                {
                    "layer": layer,
                    "kept": int(trace.support.size),
                    "of": problem.n_neurons,
                    "eps": trace.loss,
                    "eps_rel": trace.loss / sigma2,
                    "lipschitz_after": net.lipschitz_after(layer),
                    "local_choice_share": local_share,
                }
            )
            net = fold(net, layer, trace.weights)
        moved = float(np.sqrt(((net.output(xc) - reference) ** 2).sum(axis=1).mean()))
        bound = sum(entry["lipschitz_after"] * np.sqrt(entry["eps"]) for entry in layers)
        summary[method] = {
            "layers": layers,
            "output_rms_change": moved,
            "statement7_bound": bound,
            "output_rms": float(np.sqrt(scale)),
            "test_accuracy": _accuracy(net, xs, ys),
            "test_agreement": float((net.output(xs).argmax(1) == mlp.output(xs).argmax(1)).mean()),
        }
    meta = {
        "family": instance.family,
        "seed": instance.seed,
        "network": asdict(spec),
        "test_accuracy_unpruned": _accuracy(mlp, xs, ys),
        "methods": summary,
    }
    return rows, meta
