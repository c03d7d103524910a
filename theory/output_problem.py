"""The whole-output problem of a consumer: which input channels to keep so that a least-squares
refit of all its weights on them reproduces its output.

Let X (M, C K + b) hold the consumer's input patches at M positions, channel j owning the K
columns X_j (channel-major, as torch's ``unfold`` orders them), then b in {0, 1} column of
ones (the bias: always kept), and let Y (M, C_out) be the unpruned consumer's output. For a
support S of channels (its columns and the fixed ones),

    loss(S) = min_W ||X_S W - Y||^2 + lam ||W_w - P_S||^2 + lam ||P_{not S}||^2,

W_w being W's weight rows (not the bias's), P (C K, C_out) a prior the ridge pulls toward (0,
or the unpruned weights: then dropping a channel costs lam times its weights' energy), and
lam = ridge * s with s the mean of diag(X^T X) over the weight columns. Only the moments are
kept:

    xx = X^T X + lam I_w  (d, d),    xy = X^T Y + lam [P; 0]  (d, C_out),
    yy = ||Y||^2 + lam ||P||^2,

so that loss(S) = yy - tr(xy_S^T xx_SS^-1 xy_S).

How it relates to the paper's layer problem (:mod:`theory.problem`): there the consumer's map
is fixed and channel j contributes psi_j = X_j W0_j; greedy-local weights the psi_j convexly,
omp freely (one number per channel). Here every kept channel's whole map W_j (K x C_out
numbers) is free, so on the same support, with no ridge, loss(S) is at most omp's least-squares
loss for the target F = sum_j psi_j (the output without its bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from theory.problem import check_finite, check_gram


@dataclass(frozen=True, eq=False)
class OutputProblem:
    """One consumer's whole-output problem, regularised (see the module docstring). Build it
    with :meth:`from_moments`."""

    xx: np.ndarray  # (d, d), d = C K + fixed: X^T X with the ridge on the weight diagonal
    xy: np.ndarray  # (d, C_out): X^T Y with the ridge's pull toward the prior
    yy: float  # ||Y||^2 + lam ||P||^2
    width: int  # K, the columns of one channel
    fixed: int  # trailing columns always kept (1: the bias)
    energy: float  # what relative errors are taken against (> 0, or 0 for a zero output)

    @classmethod
    def from_moments(
        cls,
        xx: np.ndarray,
        xy: np.ndarray,
        yy: float,
        *,
        width: int = 1,
        fixed: int = 0,
        ridge: float = 0.0,
        prior: np.ndarray | None = None,
        energy: float | None = None,
        psd: bool = False,
    ) -> OutputProblem:
        """From the unregularised moments X^T X (d, d), X^T Y (d, C_out) and ||Y||^2; ``prior``
        (C K, C_out) defaults to 0; ``energy`` (default ``yy``) divides the relative errors.
        ``psd=True``: xx is X^T X as accumulated (symmetric PSD by construction), so only its
        shape and values are checked, not its spectrum (a Cholesky factor of d x d)."""
        if psd:
            g = np.asarray(xx, dtype=np.float64)
            if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] == 0:
                raise ValueError(f"xx must be a square (d, d) matrix; got shape {g.shape}")
            check_finite("xx", g)
        else:
            g = check_gram(xx, "xx")
        d = g.shape[0]
        for name, value in (("width", width), ("fixed", fixed)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
        if width < 1 or (d - fixed) < width or (d - fixed) % width:
            raise ValueError(
                f"xx's {d} columns are not channels of width {width} and {fixed} fixed column(s)"
            )
        c = np.asarray(xy, dtype=np.float64)
        if c.ndim == 1:
            c = c[:, None]
        if c.ndim != 2 or c.shape[0] != d:
            raise ValueError(f"xy must be ({d}, C_out), one row per column of xx; got {c.shape}")
        check_finite("xy", c)
        if not (np.isfinite(yy) and yy >= 0):
            raise ValueError(f"yy must be a finite sum of squares >= 0; got {yy!r}")
        if not (np.isfinite(ridge) and ridge >= 0):
            raise ValueError(f"ridge must be a finite number >= 0; got {ridge!r}")
        energy = float(yy) if energy is None else float(energy)
        if not (np.isfinite(energy) and energy >= 0):
            raise ValueError(f"energy must be a finite number >= 0; got {energy!r}")
        g, c, yy = g.copy(), c.copy(), float(yy)
        w = d - fixed  # the weight columns
        lam = ridge * float(np.diag(g)[:w].mean())
        g[np.arange(w), np.arange(w)] += lam
        if prior is not None:
            p = np.asarray(prior, dtype=np.float64)
            if p.shape != (w, c.shape[1]):
                raise ValueError(f"prior must be ({w}, {c.shape[1]}); got {p.shape}")
            check_finite("prior", p)
            c[:w] += lam * p
            yy += lam * float((p * p).sum())
        return cls(g, c, yy, int(width), int(fixed), energy)

    @property
    def n_neurons(self) -> int:
        """C, the channels to choose from."""
        return (self.xx.shape[0] - self.fixed) // self.width

    def columns(self, channels: np.ndarray) -> np.ndarray:
        """The columns of ``channels`` (S,) in order, K each, then the fixed ones."""
        idx = np.asarray(channels, dtype=np.intp).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_neurons):
            raise ValueError(f"channels must be in [0, {self.n_neurons}); got {idx.tolist()}")
        if np.unique(idx).size != idx.size:
            raise ValueError(f"channels must be distinct; got {idx.tolist()}")
        own = (idx[:, None] * self.width + np.arange(self.width)).reshape(-1)
        return np.r_[own, np.arange(self.xx.shape[0] - self.fixed, self.xx.shape[0])]

    def solve(self, channels: np.ndarray) -> np.ndarray:
        """The least-loss coefficients (S K + fixed, C_out) on ``channels``' columns
        (:meth:`columns`' order); the least-norm ones where xx is singular there."""
        cols = self.columns(channels)
        a, b = self.xx[np.ix_(cols, cols)], self.xy[cols]
        if cols.size == 0:
            return b.copy()
        try:
            return cho_solve(cho_factor(a), b)
        except LinAlgError:  # singular (no ridge, dependent columns)
            return np.linalg.lstsq(a, b, rcond=None)[0]

    def loss(self, channels: np.ndarray, coefficients: np.ndarray | None = None) -> float:
        """loss(S) with the least-loss coefficients, or with ``coefficients`` (S K + fixed,
        C_out) given; never < 0."""
        cols = self.columns(channels)
        w = self.solve(channels) if coefficients is None else np.asarray(coefficients, float)
        if w.shape != (cols.size, self.xy.shape[1]):
            raise ValueError(f"coefficients must be {(cols.size, self.xy.shape[1])}; got {w.shape}")
        a, b = self.xx[np.ix_(cols, cols)], self.xy[cols]
        return max(float((w * (a @ w)).sum() - 2.0 * (w * b).sum() + self.yy), 0.0)

    def relative(self, loss: float) -> float:
        """``loss`` over the energy (0 where the energy is 0)."""
        return loss / self.energy if self.energy > 0 else 0.0
