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
- ``margin_upper``: when r is not exact, a certified upper bound, min h(u) over the unit
  directions a local search finds (r <= h(u) for every unit u: the ball of radius r about F
  lies inside M). With the lower bound it brackets r, so statement 4's bound on the rate can be
  bracketed too.

The spectrum comes from a rank-revealing pivoted Cholesky factor C = Y Y^T (LAPACK ``dpstrf``,
O(N^2 d) for rank d, against O(N^3) for an eigendecomposition), rotated so that the columns of
Y are the principal axes: Y holds the coordinates of the psi_i - F in the affine hull.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

import numpy as np
from annotated_types import Ge
from scipy.linalg import lapack
from scipy.spatial import ConvexHull, QhullError

from theory.arguments import checked
from theory.problem import LayerProblem

# Eigenvalues of C below this fraction of the largest count as zero: directions of the polytope
# thinner than about sqrt(RANK_RTOL) D = 3e-7 D are taken as flat. That is the round-off level
# of a Gram matrix; a larger cut would flatten genuinely thin polytopes and overstate r.
RANK_RTOL = 1e-13
EXACT_MAX_DIM = 6
UPPER_MAX_DIM = 1000  # the upper bound's search costs O(N d) per direction and iteration


@dataclass(frozen=True)
class Geometry:
    """The numbers of docs/theory.md's statements for one problem (see the module docstring)."""

    diameter: float  # D
    margin: float  # r (exact, or a certified lower bound)
    margin_exact: bool
    sigma2: float
    margin_upper: float  # r when exact, else a certified upper bound (nan: not searched)
    rank: int  # affine dimension of M
    n_neurons: int

    @property
    def ratio2(self) -> float:
        """r^2 / D^2, the constant of the linear rate (0 when D = 0)."""
        return (self.margin / self.diameter) ** 2 if self.diameter > 0 else 0.0

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


@checked
def sigma2(problem: LayerProblem) -> float:
    """sum_i t_i ||psi_i - F||^2."""
    t = problem.target
    return max(float(t @ np.diag(problem.centred) - t @ problem.centred_target), 0.0)


@checked
def diameter(problem: LayerProblem, block: Annotated[int, Ge(1)] = 1024) -> float:
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
    """Non-zero eigenvalues (descending, (d,)) of C and coordinates Y (N, d), C = Y Y^T."""
    c = problem.centred
    if not np.diag(c).max() > 0.0:
        return np.zeros(0), np.zeros((c.shape[0], 0))
    factor, piv, rank, _ = lapack.dpstrf(c, lower=1)  # C[piv][:, piv] = L L^T, rank-revealing
    factor = np.tril(factor)[:, :rank]
    lower = np.empty_like(factor)
    lower[piv - 1] = factor
    vals, vecs = np.linalg.eigh(lower.T @ lower)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    return np.maximum(vals, 0.0), lower @ vecs


@checked
def spectrum(problem: LayerProblem) -> np.ndarray:
    """Non-zero eigenvalues of the centred Gram matrix C, descending (d,), after the rank cut."""
    vals, _ = _spectrum(problem)
    return vals[: affine_rank(vals)]


def affine_rank(eigenvalues: np.ndarray) -> int:
    """The number of eigenvalues above RANK_RTOL of the largest (0 if all vanish)."""
    top = float(eigenvalues[0]) if eigenvalues.size else 0.0
    if top <= 0.0:
        return 0
    return int(np.count_nonzero(eigenvalues > RANK_RTOL * top))


@checked
def margin(
    problem: LayerProblem, exact_max_dim: Annotated[int, Ge(0)] = EXACT_MAX_DIM
) -> tuple[float, bool]:
    """(r, exact): exact when the affine dimension is at most ``exact_max_dim``, else a bound."""
    vals, coords = _spectrum(problem)
    return _margin(problem, coords, affine_rank(vals), exact_max_dim)


def _about_target(problem: LayerProblem, coords: np.ndarray, rank: int) -> np.ndarray:
    """The first ``rank`` principal coordinates (N, rank) of psi_i - F, shifted so that F is
    exactly the origin (removes the round-off of the factorisation)."""
    y = coords[:, :rank]
    return y - problem.target @ y


def _margin(
    problem: LayerProblem, coords: np.ndarray, rank: int, exact_max_dim: int
) -> tuple[float, bool]:
    if rank == 0:
        return 0.0, True
    coords = _about_target(problem, coords, rank)
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
    return _margin_bound(problem, coords, rank), False


@checked
def margin_bound(problem: LayerProblem) -> float:
    """The certified lower bound on r (see the module docstring), whatever the dimension."""
    vals, coords = _spectrum(problem)
    rank = affine_rank(vals)
    return _margin_bound(problem, coords, rank) if rank else 0.0


def _margin_bound(problem: LayerProblem, coords: np.ndarray, rank: int) -> float:
    """Certified lower bound lambda_d(T^1/2 C T^1/2) / max_{t_i > 0} ||psi_i - F||."""
    t = problem.target
    scaled = np.sqrt(t)[:, None] * coords[:, :rank]  # T^1/2 Y: same non-zero spectrum
    weighted = np.linalg.eigvalsh(scaled.T @ scaled)[::-1]
    if weighted[-1] <= RANK_RTOL * weighted[0]:
        return 0.0
    radius = float(np.sqrt(np.diag(problem.centred)[t > 0].max()))
    return float(weighted[rank - 1]) / radius if radius > 0 else 0.0


@checked
def margin_upper(problem: LayerProblem) -> float:
    """A certified upper bound on r by direction search (see ``_margin_upper``), whatever the
    dimension."""
    vals, coords = _spectrum(problem)
    return _margin_upper(_about_target(problem, coords, affine_rank(vals)))


def facet_normal(points: np.ndarray) -> np.ndarray:
    """v with <y_i, v> = 1 for the rows y_i of ``points`` (K, d): by LU where the system is
    square and LU solves it (residual below 1e-9 of its size; O(d^3) with a small constant),
    else the least-squares solution (an SVD, about ten times the cost)."""
    ones = np.ones(points.shape[0])
    if points.shape[0] == points.shape[1]:
        try:
            v = np.linalg.solve(points, ones)
        except np.linalg.LinAlgError:
            v = None
        passes = v is not None and np.all(np.isfinite(v))
        if passes and np.linalg.norm(points @ v - ones) <= 1e-9 * np.sqrt(ones.size):
            return v
    return np.linalg.lstsq(points, ones, rcond=None)[0]


def _margin_upper(
    coords: np.ndarray, starts: int = 32, iterations: int = 300, seed: int = 0
) -> float:
    """Certified upper bound on r: the least support function h(u) = max_i <y_i, u> found
    over unit directions u, for coordinates y_i = psi_i - F (N, d) whose columns are the
    principal axes, widest first (as ``_spectrum`` gives them).

    The search starts from the thinnest axes (both signs) and random directions, descends a
    smoothed h (temperature tau * log sum exp(<y_i, u> / tau), tau annealed from R / 10 to
    R / 1e4, R = max ||y_i||) along the sphere, and finally tries the facet through the d
    points most active at each final direction. The result is the least exact h(u) over the
    directions of the descent and the facet normals, so it is an upper bound whatever the
    search finds; it is tight when the search reaches the facet nearest to F.
    """
    y = np.asarray(coords, dtype=np.float64)
    d = y.shape[1]
    radius = float(np.sqrt((y**2).sum(axis=1).max()))
    if d == 0 or radius == 0.0:
        return 0.0
    rng = np.random.default_rng(seed)
    thin = np.eye(d)[:, ::-1][:, : max(1, min(d, starts // 4))]
    u = np.hstack([thin, -thin, rng.standard_normal((d, max(starts - 2 * thin.shape[1], 1)))])
    u /= np.linalg.norm(u, axis=0)
    best = float((y @ u).max(axis=0).min())
    for tau in np.geomspace(radius / 10, radius / 1e4, iterations):
        z = y @ u  # (N, S)
        best = min(best, float(z.max(axis=0).min()))
        w = np.exp((z - z.max(axis=0)) / tau)
        w /= w.sum(axis=0)
        grad = y.T @ w  # (d, S): gradient of the smoothed h
        grad -= u * (u * grad).sum(axis=0)  # along the sphere
        u = u - (tau / radius**2) * grad * 10.0
        u /= np.linalg.norm(u, axis=0)
    z = y @ u  # the last directions only pick the active points of the facets tried next
    for s in range(u.shape[1]):  # the facet through the d most active points
        active = np.argsort(z[:, s])[-d:]
        v = facet_normal(y[active])
        if np.linalg.norm(v) > 0:
            facet = v / np.linalg.norm(v)
            best = min(best, float((y @ facet).max()))
    return max(best, 0.0)


@checked
def geometry(
    problem: LayerProblem, exact_max_dim: Annotated[int, Ge(0)] = EXACT_MAX_DIM
) -> Geometry:
    """D, r, sigma^2 and the affine rank of one problem (O(N^2 d) for affine dimension d)."""
    return geometry_and_spectrum(problem, exact_max_dim)[0]


@checked
def geometry_and_spectrum(
    problem: LayerProblem, exact_max_dim: Annotated[int, Ge(0)] = EXACT_MAX_DIM
) -> tuple[Geometry, np.ndarray]:
    """:func:`geometry` and :func:`spectrum` from one factorisation."""
    vals, coords = _spectrum(problem)
    rank = affine_rank(vals)
    r, exact = _margin(problem, coords, rank, exact_max_dim)
    if exact:
        upper = r
    elif rank <= UPPER_MAX_DIM:
        upper = _margin_upper(_about_target(problem, coords, rank))
    else:
        upper = float("nan")
    geo = Geometry(
        diameter=diameter(problem),
        margin=r,
        margin_exact=exact,
        sigma2=sigma2(problem),
        margin_upper=upper,
        rank=rank,
        n_neurons=problem.n_neurons,
    )
    return geo, vals[:rank]
