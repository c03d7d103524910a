"""The gamma subproblem: min x^T Q x + 2 c^T x over the simplex {x >= 0, sum x = 1}.

Q (s, s) is positive semi-definite (a block of the centred Gram matrix: singular when neurons
repeat), c (s,). Two solvers that must agree:

- ``active-set``: a primal active-set method (Lawson-Hanson adapted to the simplex). On the free
  set P it solves the equality-constrained problem exactly in the null space of 1^T, through a
  spectral pseudo-inverse with a rank cut, so duplicate neurons are harmless. Warm-startable.
- ``cvxpy``: the reference, a conic solve of the same problem in factored form.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from theory.arguments import Array, checked
from theory.problem import check_finite, check_gram, on_simplex

SOLVERS = ("active-set", "cvxpy")
RANK_RTOL = 1e-12  # eigenvalues of the reduced Hessian below this (relative) are treated as zero
KKT_RTOL = 1e-12  # a free neuron enters only if its reduced gradient is below -KKT_RTOL * scale


def objective(quad: np.ndarray, lin: np.ndarray, x: np.ndarray) -> float:
    """x^T Q x + 2 c^T x."""
    return float(x @ (quad @ x) + 2.0 * (lin @ x))


@checked
def solve_simplex_qp(
    quad: Array,
    lin: Array,
    start: Array | None = None,
    solver: Literal[SOLVERS] = "active-set",
) -> np.ndarray:
    """Minimiser x (s,) of x^T Q x + 2 c^T x on the simplex; ``start`` (s,) warm-starts.
    Q must be a real, finite, symmetric positive semi-definite (s, s) matrix, c real and
    finite (s,), ``start`` on the simplex: each is refused in one line naming it otherwise."""
    quad = check_gram(quad, "Q")
    s = quad.shape[0]
    c = np.asarray(lin)
    if not np.issubdtype(c.dtype, np.number) or np.iscomplexobj(c):
        raise ValueError(f"c must be real numbers; got dtype {c.dtype}")
    if c.shape != (s,):
        raise ValueError(f"c must have shape ({s},), one entry per row of Q; got {c.shape}")
    c = c.astype(np.float64)
    check_finite("c", c)
    if start is not None:
        start = on_simplex("start", start, s)
    return minimise(quad, c, start, solver)


def minimise(
    quad: np.ndarray, lin: np.ndarray, start: np.ndarray | None, solver: str
) -> np.ndarray:
    """:func:`solve_simplex_qp` for callers that built Q (s, s) and c (s,) themselves (float64,
    as that function requires them; ``start`` >= 0 with a positive entry), unchecked."""
    if solver == "active-set":
        return _active_set(quad, lin, start)
    return _cvxpy(quad, lin)


def _null_basis(k: int) -> np.ndarray:
    """Orthonormal basis (k, k-1) of {y : sum y = 0}, from one Householder reflection."""
    v = np.full(k, 1.0 / np.sqrt(k))
    v[0] -= 1.0
    v /= np.linalg.norm(v)
    reflect = np.eye(k) - 2.0 * np.outer(v, v)
    return reflect[:, 1:]


def _face_step(quad: np.ndarray, lin: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, bool]:
    """Minimise the objective over {z : z_i = 0 off free, sum z = 1} (no sign constraint).

    Returns (z, True) with the minimiser (minimum-norm where the face Hessian is singular), or
    (d, False) with a descent direction (sum d = 0) along which the objective falls without
    bound: when the gradient has a component in the kernel of the face Hessian.
    """
    k = free.size
    if k == 1:
        return np.ones(1), True
    q = quad[np.ix_(free, free)]
    centre = np.full(k, 1.0 / k)
    basis = _null_basis(k)
    hess = basis.T @ q @ basis
    grad = basis.T @ (q @ centre + lin[free])
    vals, vecs = np.linalg.eigh(0.5 * (hess + hess.T))
    top = max(float(vals.max()), 0.0)
    keep = vals > RANK_RTOL * top
    flat = vecs[:, ~keep] @ (vecs[:, ~keep].T @ grad)  # gradient along the flat directions
    scale = max(top, float(np.abs(np.diag(q)).max()), float(np.abs(lin[free]).max()), 1e-300)
    if np.linalg.norm(flat) > KKT_RTOL * scale:
        return -(basis @ flat), False
    step = -(vecs[:, keep] @ ((vecs[:, keep].T @ grad) / vals[keep]))
    return centre + basis @ step, True


def _active_set(quad: np.ndarray, lin: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    s = lin.shape[0]
    if start is None:
        x = np.zeros(s)
        x[int(np.argmin(np.diag(quad) + 2.0 * lin))] = 1.0
    else:
        x = np.clip(np.asarray(start, dtype=np.float64), 0.0, None)
        if x.shape != (s,) or x.sum() <= 0:
            raise ValueError("start must be (s,) with a positive entry")
        x /= x.sum()
    scale = max(float(np.abs(np.diag(quad)).max()), float(np.abs(lin).max()), np.finfo(float).tiny)
    # Objective values closer than this are round-off: an admitted neuron that does not lower
    # the objective by more is a KKT violation of round-off size, and the search stops there
    # (without this, near-singular faces at the floor can cycle).
    noise = 16.0 * s * np.finfo(float).eps * scale
    best, best_value = x.copy(), np.inf
    free = x > 0
    added = -1
    for _ in range(10 * s + 100):
        idx = np.flatnonzero(free)
        z, bounded = _face_step(quad, lin, idx)
        if bounded and z.min() > 0.0:
            x[:] = 0.0
            x[idx] = z
            value = objective(quad, lin, x)
            if value > best_value - noise:
                return best
            best, best_value = x.copy(), value
            grad = quad @ x + lin  # half the gradient
            reduced = grad - x @ grad  # KKT: >= 0 off the face, 0 on it
            reduced[free] = np.inf
            i = int(np.argmin(reduced))
            if reduced[i] >= -KKT_RTOL * scale:
                return x
            free[i] = True
            added = i
            continue
        # Move from x toward z (or along the unbounded direction z) until the first free
        # weight hits zero; drop the blocking ones.
        xs = x[idx]
        move = z - xs if bounded else z
        blocking = move < 0.0 if not bounded else z <= 0.0
        ratios = xs[blocking] / -move[blocking]
        alpha = float(ratios.min())
        if bounded and alpha <= 0.0 and np.array_equal(idx[blocking][ratios <= 0.0], [added]):
            # The neuron just admitted cannot take weight: its KKT violation was round-off.
            free[added] = False
            return x
        x[idx] = xs + alpha * move
        x[idx[blocking][ratios <= alpha]] = 0.0
        x[x < 0.0] = 0.0
        x /= x.sum()
        free = x > 0.0
        added = -1
    raise RuntimeError(f"active-set simplex QP did not converge in {10 * s + 100} iterations")


def _cvxpy(quad: np.ndarray, lin: np.ndarray) -> np.ndarray:
    import cvxpy as cp  # noqa: PLC0415 (a second to import; only this fallback needs it)

    scale = max(float(np.abs(np.diag(quad)).max()), float(np.abs(lin).max()), np.finfo(float).tiny)
    vals, vecs = np.linalg.eigh(0.5 * (quad + quad.T) / scale)
    keep = vals > 0.0
    factor = np.sqrt(vals[keep])[:, None] * vecs[:, keep].T  # Q / scale = factor^T factor
    x = cp.Variable(lin.shape[0])
    problem = cp.Problem(
        cp.Minimize(cp.sum_squares(factor @ x) + 2.0 * (lin / scale) @ x),
        [x >= 0, cp.sum(x) == 1],
    )
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-14, tol_gap_rel=1e-14, tol_feas=1e-13)
    if x.value is None:
        raise RuntimeError(f"cvxpy could not solve the simplex QP: status {problem.status}")
    out = np.clip(np.asarray(x.value, dtype=np.float64), 0.0, None)
    return out / out.sum()
