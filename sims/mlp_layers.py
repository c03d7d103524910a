"""One hidden layer of an MLP as a layer problem: its neurons' contributions, the output
loss of a candidate step (the global selectors' oracle), and the folding of chosen weights.

Pruning hidden layer l keeps neurons of h_l: neuron i contributes
psi_i(x) = n_l W_{l+1}[:, i] h_{l,i}(x) to z_{l+1}, so the layer problem is the theory's with
F = z_{l+1} - b_{l+1} of the current network (earlier layers already pruned). The chosen convex
weights a are folded into the consumer: W_{l+1}[:, i] <- n_l a_i W_{l+1}[:, i].
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sims.activations import activation
from sims.mlp import MLP
from theory import LayerProblem


def layer_problem(mlp: MLP, x: np.ndarray, layer: int) -> tuple[LayerProblem, np.ndarray]:
    """(problem, psi (n_l, m, n_{l+1})) of hidden layer ``layer`` (1-based) on inputs x."""
    h = activation(mlp.activation).value(mlp.pre_activations(x)[layer - 1])  # (m, n_l)
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
