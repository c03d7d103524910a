"""The geometry of the marginal polytope M = conv{psi_i}, from the centred Gram matrix.

- ``diameter`` D = max_ij ||psi_i - psi_j||, exact.
- ``sigma2`` = sum_i t_i ||psi_i - F||^2, the Monte Carlo variance.
- ``margin`` r = distance from F to the relative boundary of M inside its affine hull: exact
  from the facets of the convex hull (qhull) when the affine dimension d is small; otherwise a
  certified lower bound. The bound: for a unit direction u in the hull's span, the values
  z_i = <psi_i - F, u> have t-weighted mean 0 and second moment >= lambda_d (the d-th
  eigenvalue of T^1/2 C T^1/2) and lie in [-R, h(u)], R = max_{t_i>0} ||psi_i - F||; the
  Bhatia-Davis inequality (variance <= (max - mean)(mean - min)) gives h(u) >= lambda_d / R,
  and r = min_u h(u).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from theory.problem import LayerProblem

RANK_RTOL = 1e-10  # eigenvalues of C below this fraction of the largest count as zero
EXACT_MAX_DIM = 6


@dataclass(frozen=True)
class Geometry:
    """Numbers of THEORY.md section 3 for one problem (see the module docstring)."""

    diameter: float  # D
    margin: float  # r (exact, or a certified lower bound)
    margin_exact: bool
    sigma2: float
    rank: int  # affine dimension of M
    n_neurons: int

    @property
    def ratio2(self) -> float:
        """r^2 / D^2, the constant of the linear rate (0 when D = 0)."""
        return (self.margin / self.diameter) ** 2 if self.diameter > 0 else 0.0

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def sigma2(problem: LayerProblem) -> float:
    """sum_i t_i ||psi_i - F||^2."""
    t = problem.target
    return max(float(t @ np.diag(problem.centred) - t @ problem.centred_target), 0.0)


def diameter(problem: LayerProblem, block: int = 1024) -> float:
    """D = max_ij ||psi_i - psi_j||, exact from the centred Gram matrix, in row blocks."""
    c = problem.centred
    diag = np.diag(c)
    best = 0.0
    for lo in range(0, c.shape[0], block):
        rows = slice(lo, lo + block)
        dist2 = diag[rows, None] + diag[None, :] - 2.0 * c[rows]
        best = max(best, float(dist2.max()))
    return float(np.sqrt(max(best, 0.0)))


def _spectrum(problem: LayerProblem) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (N, N) of the centred Gram matrix."""
    vals, vecs = np.linalg.eigh(problem.centred)
    return vals[::-1], vecs[:, ::-1]


def affine_rank(eigenvalues: np.ndarray) -> int:
    """The number of eigenvalues above RANK_RTOL of the largest (0 if all vanish)."""
    top = float(eigenvalues[0]) if eigenvalues.size else 0.0
    if top <= 0.0:
        return 0
    return int(np.count_nonzero(eigenvalues > RANK_RTOL * top))


def margin(problem: LayerProblem, exact_max_dim: int = EXACT_MAX_DIM) -> tuple[float, bool]:
    """(r, exact): exact when the affine dimension is at most ``exact_max_dim``, else a bound."""
    vals, vecs = _spectrum(problem)
    return _margin(problem, vals, vecs, affine_rank(vals), exact_max_dim)


def _margin(
    problem: LayerProblem, vals: np.ndarray, vecs: np.ndarray, rank: int, exact_max_dim: int
) -> tuple[float, bool]:
    if rank == 0:
        return 0.0, True
    coords = vecs[:, :rank] * np.sqrt(vals[:rank])  # (N, d); F sits at the origin
    coords -= problem.target @ coords  # remove round-off so that F is exactly the origin
    if rank == 1:
        y = coords[:, 0]
        return max(min(float(y.max()), float(-y.min())), 0.0), True
    if rank <= exact_max_dim:
        try:
            hull = ConvexHull(coords)
        except QhullError:
            pass
        else:
            return max(float(-hull.equations[:, -1].max()), 0.0), True
    return _margin_bound(problem, rank), False


def _margin_bound(problem: LayerProblem, rank: int) -> float:
    """Certified lower bound lambda_d(T^1/2 C T^1/2) / max_{t_i > 0} ||psi_i - F||."""
    t = problem.target
    root = np.sqrt(t)
    weighted = np.linalg.eigvalsh(root[:, None] * problem.centred * root[None, :])[::-1]
    if affine_rank(weighted) < rank:
        return 0.0
    radius = float(np.sqrt(np.diag(problem.centred)[t > 0].max()))
    return float(weighted[rank - 1]) / radius if radius > 0 else 0.0


def geometry(problem: LayerProblem, exact_max_dim: int = EXACT_MAX_DIM) -> Geometry:
    """D, r, sigma^2 and the affine rank of one problem (one eigendecomposition, O(N^3))."""
    vals, vecs = _spectrum(problem)
    rank = affine_rank(vals)
    r, exact = _margin(problem, vals, vecs, rank, exact_max_dim)
    return Geometry(
        diameter=diameter(problem),
        margin=r,
        margin_exact=exact,
        sigma2=sigma2(problem),
        rank=rank,
        n_neurons=problem.n_neurons,
    )
