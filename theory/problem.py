"""The layer problem: N neuron contributions psi_i, a target point F, and the loss L(a).

Everything is stored *centred at the target output* F = sum_i t_i psi_i:

    centred[i, j] = E_x <psi_i(x) - F(x), psi_j(x) - F(x)>      (N, N)
    offset[i]     = E_x <psi_i(x) - F(x), F(x)>                 (N,)
    target_norm2  = E_x ||F(x)||^2                              scalar

so that the Gram matrix is ``gram = centred + offset 1^T + 1 offset^T + target_norm2``
and, for any weights a, the loss is

    L(a) = (a - t)^T gram (a - t)
         = (a - t)^T centred (a - t) + 2 (s - 1) a.offset + (s - 1)^2 target_norm2,  s = sum(a).

For convex weights (s = 1) only the centred matrix enters. Its entries are of the size of the
spread of the neurons (the diameter D squared), not of ||F||^2, so the loss keeps its relative
precision far below 1e-14 of the first loss when the problem is built from features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

# Relative size of asymmetry or negative curvature a float64 Gram matrix may have and still be
# accepted (a Gram matrix rounded in a lower precision gets 10 sqrt(N) of its epsilon).
GRAM_RTOL = 1e-10
SIMPLEX_ATOL = 1e-9


def check_finite(name: str, array: np.ndarray) -> None:
    """ValueError naming ``name`` and its count of NaN or infinite entries, if any."""
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} has {bad} NaN or infinite entries; all entries must be finite")


def check_memory(n_neurons: int) -> None:
    """ValueError when the (N, N) float64 matrices of a problem of ``n_neurons`` (the centred
    Gram matrix and a copy while it is built) need more memory than is available now."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux: not checked
        return
    needed = 2 * 8 * n_neurons**2
    if needed > available:
        fits = int(np.sqrt(available / 16))
        raise ValueError(
            f"N={n_neurons} neurons need {needed / 2**30:.3g} GiB for their (N, N) Gram "
            f"matrices, more than the {available / 2**30:.3g} GiB of memory available: at most "
            f"N={fits} fits"
        )


def check_target(target: np.ndarray | None, n_neurons: int) -> np.ndarray:
    """Target weights t as float64 (N,), uniform when None; ValueError if off the simplex."""
    if target is None:
        return np.full(n_neurons, 1.0 / n_neurons)
    return on_simplex("target", target, n_neurons)


def on_simplex(name: str, values: np.ndarray, n: int) -> np.ndarray:
    """``values`` as float64 (n,) weights on the simplex (clipped at 0, summing to 1);
    ValueError naming ``name`` unless they are real, finite, of that shape, >= 0 and sum to 1
    (within SIMPLEX_ATOL, n SIMPLEX_ATOL)."""
    t = np.asarray(values)
    if not np.issubdtype(t.dtype, np.number) or np.iscomplexobj(t):
        raise ValueError(f"{name} must be real numbers; got dtype {t.dtype}")
    t = t.astype(np.float64)
    if t.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one weight per neuron; got {t.shape}")
    check_finite(name, t)
    if np.any(t < -SIMPLEX_ATOL):
        raise ValueError(
            f"{name} is not on the simplex: it has negative weights (min {t.min():.3g})"
        )
    if abs(t.sum() - 1.0) > SIMPLEX_ATOL * n:
        raise ValueError(f"{name} is not on the simplex: its weights sum to {t.sum():.12g}, not 1")
    t = np.clip(t, 0.0, None)
    return t / t.sum()


@dataclass(frozen=True, eq=False)
class LayerProblem:
    """One layer's pruning problem, in centred form (see the module docstring).

    Build it with :meth:`from_features` (neuron contributions ``psi`` of shape (N, m, ...)) or
    :meth:`from_gram` (a PSD Gram matrix (N, N)).
    """

    centred: np.ndarray  # (N, N), E <psi_i - F, psi_j - F>
    offset: np.ndarray  # (N,), E <psi_i - F, F>
    target_norm2: float  # E ||F||^2
    target: np.ndarray  # (N,), t on the simplex
    centred_target: np.ndarray = field(
        init=False, repr=False
    )  # (N,), centred @ t (zero in exact arithmetic)

    def __post_init__(self) -> None:
        object.__setattr__(self, "centred_target", self.centred @ self.target)

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_features(cls, psi: np.ndarray, target: np.ndarray | None = None) -> LayerProblem:
        """Problem from neuron contributions psi of shape (N, m, ...): N neurons, m samples.

        Trailing axes (output units, channels, pixels) are summed in the inner product; the
        expectation is the mean over the m samples. Features are centred at F before the Gram
        product, which is what keeps small losses exact.
        """
        x = np.asarray(psi)
        if x.ndim < 2:
            raise ValueError(
                f"psi must have shape (N, m, ...): N neurons by m samples; got shape {x.shape}"
            )
        n_neurons, n_samples = x.shape[0], x.shape[1]
        if n_neurons == 0 or n_samples == 0 or x.size == 0:
            raise ValueError(f"psi is empty (shape {x.shape}); need at least one neuron and sample")
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise ValueError(f"psi must be real numbers; got dtype {x.dtype}")
        check_memory(n_neurons)
        x = x.reshape(n_neurons, -1).astype(np.float64, copy=False)
        check_finite("psi", x)
        t = check_target(target, n_neurons)
        with np.errstate(over="ignore", invalid="ignore"):
            output = t @ x  # F, flattened over samples and trailing axes
            spread = x - output  # psi_i - F
            centred = (spread @ spread.T) / n_samples
            centred = 0.5 * (centred + centred.T)
            offset = (spread @ output) / n_samples
            norm2 = float(output @ output) / n_samples
        if not (
            np.all(np.isfinite(centred)) and np.all(np.isfinite(offset)) and np.isfinite(norm2)
        ):
            raise ValueError(
                f"psi's inner products overflow float64 (|psi| up to {np.abs(x).max():.3g}): "
                "divide psi by a common factor (it changes no selection, only the losses' scale)"
            )
        return cls(centred, offset, norm2, t)

    @classmethod
    def from_gram(cls, gram: np.ndarray, target: np.ndarray | None = None) -> LayerProblem:
        """Problem from a Gram matrix G_ij = E <psi_i, psi_j> of shape (N, N), symmetric PSD."""
        g = check_gram(gram)
        t = check_target(target, g.shape[0])
        gt = g @ t
        norm2 = float(t @ gt)
        offset = gt - norm2
        centred = g - gt[:, None] - gt[None, :] + norm2
        centred = 0.5 * (centred + centred.T)
        return cls(centred, offset, norm2, t)

    # ---- views ----------------------------------------------------------------------------------

    @property
    def n_neurons(self) -> int:
        return self.centred.shape[0]

    @property
    def gram(self) -> np.ndarray:
        """The Gram matrix G (N, N), rebuilt from the centred form."""
        return self.gram_columns(np.arange(self.n_neurons))

    def gram_columns(self, idx: np.ndarray) -> np.ndarray:
        """Columns G[:, idx] of the Gram matrix, shape (N, len(idx)); ``idx``: neuron indices
        in [0, N)."""
        idx = np.asarray(idx)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"idx must be integer neuron indices; got dtype {idx.dtype}")
        idx = idx.astype(np.intp)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_neurons):
            raise ValueError(f"idx must be in [0, {self.n_neurons}); got {idx.min()}..{idx.max()}")
        return (
            self.centred[:, idx]
            + self.offset[:, None]
            + self.offset[idx][None, :]
            + self.target_norm2
        )

    def loss(self, weights: np.ndarray) -> float:
        """L(a) = E ||sum_i a_i psi_i - F||^2 for weights a (N,), in difference form, never < 0."""
        a = np.asarray(weights, dtype=np.float64)
        if a.shape != (self.n_neurons,):
            raise ValueError(f"weights must have shape ({self.n_neurons},); got {a.shape}")
        check_finite("weights", a)
        d = a - self.target
        s1 = a.sum() - 1.0
        value = d @ (self.centred @ d) + 2.0 * s1 * (a @ self.offset) + s1 * s1 * self.target_norm2
        return max(float(value), 0.0)


def check_gram(gram: np.ndarray, name: str = "gram") -> np.ndarray:
    """``gram`` as a symmetric float64 (N, N) matrix; ValueError naming ``name`` unless it is
    a real, finite, non-empty, square matrix, symmetric and positive semi-definite up to
    GRAM_RTOL of its scale (looser for a matrix rounded in a lower precision)."""
    g = np.asarray(gram)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix; got shape {g.shape}")
    if g.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 x 0); need at least one neuron")
    if not np.issubdtype(g.dtype, np.number) or np.iscomplexobj(g):
        raise ValueError(f"{name} must be real numbers; got dtype {g.dtype}")
    eps = float(np.finfo(g.dtype).eps) if np.issubdtype(g.dtype, np.floating) else 0.0
    rtol = max(GRAM_RTOL, 10.0 * np.sqrt(g.shape[0]) * eps)
    g = g.astype(np.float64, copy=False)
    check_finite(name, g)
    scale = max(float(np.abs(np.diag(g)).max()), np.finfo(float).tiny)
    asym = float(np.abs(g - g.T).max())
    if asym > rtol * scale:
        raise ValueError(
            f"{name} is not symmetric: max |G - G^T| = {asym:.3g} (relative {asym / scale:.3g})"
        )
    g = 0.5 * (g + g.T)
    _check_psd(g, scale, rtol, name)
    return g


def _check_psd(g: np.ndarray, scale: float, rtol: float, name: str) -> None:
    """Raise ValueError when g is clearly indefinite (by more than rtol of its scale)."""
    diag = np.diag(g)
    if diag.min() < -rtol * scale:
        i = int(diag.argmin())
        raise ValueError(f"{name} is not positive semi-definite: G[{i},{i}] = {diag[i]:.3g} < 0")
    try:
        np.linalg.cholesky(g + (rtol * scale) * np.eye(g.shape[0]))
    except np.linalg.LinAlgError:
        low = float(np.linalg.eigvalsh(g)[0])
        raise ValueError(
            f"{name} is not positive semi-definite: smallest eigenvalue {low:.3g} "
            f"(relative {low / scale:.3g})"
        ) from None
