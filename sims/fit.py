"""Decay rates of loss curves: exp(-c n) against n^-p, judged by extrapolation.

The rates are those of docs/theory.md, statements 1-6.

A curve is a pair (n, h): n (K,) strictly increasing steps >= 1, h (K,) losses >= 0, already
divided by sigma^2 by the caller.

- ``usable_window`` picks the points worth fitting (window, cap, floating-point floor).
- ``fit_curve`` fits log h = a - c n and log h = a - p log n on the first part of the usable
  points and scores both by how well they extrapolate to the held-out rest.
- ``fit_rates`` does that per seed and turns the held-out error ratios into a verdict with a
  95% confidence interval over seeds.
- ``local_rates``: the model-free local rate -d log h / dn along the curve: flat at c under
  exp(-c n), falling like p / n under n^-p.
- ``n_eps`` / ``n_eps_curve`` / ``n_eps_slope``: the model-free view. n_eps, the first n with
  h <= eps, is linear in log(1/eps) (slope 1/c) under exp(-c n) decay and convex (like
  eps^(-1/p)) under a power law.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

MIN_POINTS = 4  # usable points a fit needs: at least 3 to train on and 1 to hold out
RMSE_FLOOR = 1e-12  # held-out log-RMSEs below this are round-off; floored before their ratio
CONFIDENCE = 0.95
DEFAULT_MARGIN = float(np.log(1.25))

Curve = tuple[np.ndarray, np.ndarray]


def _plain(value: object) -> object:
    """numpy scalars to Python numbers and tuples to lists, recursively (for JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


@dataclass(frozen=True)
class CurveFit:
    """Both models fitted to one curve.

    c, a_exp        log h = a_exp - c n, least squares on the training points
    p, a_pow        log h = a_pow - p log n, same points
    rmse_*          RMSE in log h on the training points
    holdout_rmse_*  RMSE in log h on the held-out points (extrapolation error)
    log_ratio       log(holdout_rmse_exp / holdout_rmse_pow), both floored at RMSE_FLOOR:
                    < 0 favours exponential decay, > 0 the power law
    n_points        usable points (n_train + n_holdout)
    window          (first, last) n actually used
    split           the first held-out n
    """

    c: float
    a_exp: float
    p: float
    a_pow: float
    rmse_exp: float
    rmse_pow: float
    holdout_rmse_exp: float
    holdout_rmse_pow: float
    log_ratio: float
    n_points: int
    n_train: int
    n_holdout: int
    window: tuple[int, int]
    split: int

    def as_dict(self) -> dict:
        return _plain(asdict(self))


@dataclass(frozen=True)
class RateSummary:
    """Per-seed fits and what they say together; *_ci are (low, high) 95% t intervals.

    verdict           "exponential" when log_ratio_ci lies below -margin, "power" when it lies
                      above +margin, else "unresolved"
    frac_exponential  fraction of seeds whose log_ratio < 0 (frac_power: > 0)
    window            the window asked for (each fit's ``window`` is the one it used)
    """

    n_seeds: int
    window: tuple[int, int]
    margin: float
    c_mean: float
    c_ci: tuple[float, float]
    p_mean: float
    p_ci: tuple[float, float]
    log_ratio_mean: float
    log_ratio_ci: tuple[float, float]
    verdict: str
    frac_exponential: float
    frac_power: float
    fits: tuple[CurveFit, ...]

    def as_dict(self) -> dict:
        return _plain(asdict(self))


@dataclass(frozen=True)
class NEpsSlope:
    """n_eps = intercept + slope log(1/eps) by least squares over the levels reached.

    Under h = A exp(-c n) the slope is 1/c and r2 is near 1; a power law bends the line.
    """

    slope: float
    intercept: float
    r2: float
    n_levels: int

    def as_dict(self) -> dict:
        return _plain(asdict(self))


def _check_curve(n: np.ndarray, h: np.ndarray) -> Curve:
    """Validated copies: n (K,) int64, h (K,) float64."""
    n, h = np.asarray(n), np.asarray(h, dtype=np.float64)
    if n.ndim != 1 or h.ndim != 1 or n.shape != h.shape:
        raise ValueError(f"n and h must be 1-D of the same length, got {n.shape} and {h.shape}")
    if n.size == 0:
        raise ValueError("empty curve")
    if not np.all(np.isfinite(n)) or not np.all(np.isfinite(h)):
        raise ValueError("n and h must be finite (no NaN or inf)")
    if np.any(n != np.round(n)) or np.any(n < 1):
        raise ValueError("n must hold integer steps >= 1")
    if np.any(np.diff(n) <= 0):
        raise ValueError("n must be strictly increasing")
    if np.any(h < 0):
        raise ValueError(f"losses must be >= 0, min is {h.min():.3g}")
    return n.astype(np.int64), h


def _check_window(window: tuple[int, int]) -> tuple[int, int]:
    lo, hi = window
    if lo > hi:
        raise ValueError(f"window must be (low, high) with low <= high, got {window}")
    return int(lo), int(hi)


def usable_window(
    n: np.ndarray,
    h: np.ndarray,
    window: tuple[int, int],
    floor_rel: float = 1e-12,
    cap: float | None = None,
) -> np.ndarray:
    """Mask (K,) of the points worth fitting, excluding three traps.

    - window: keep window[0] <= n <= window[1]. The first steps are a transient (the first
      neuron alone is far from F), so a rate fitted through them is not the asymptotic one.
    - cap: keep n < cap. Methods that re-solve the weights (fully corrective, OMP) interpolate
      F exactly once n nears the number of samples or the Gram rank: the loss falls off a
      cliff there, which any fit reads as a very fast rate. Pass a cap well below that rank.
    - floor: keep h > floor_rel * h[0]. Near 1e-16 of h[0] the losses are round-off, flat and
      noisy, and log h of them (-inf for h == 0) would drag the rate; h == 0 is always dropped.
    """
    n, h = _check_curve(n, h)
    return _mask(n, h, _check_window(window), floor_rel, cap)


def _mask(
    n: np.ndarray, h: np.ndarray, window: tuple[int, int], floor_rel: float, cap: float | None
) -> np.ndarray:
    """``usable_window`` on a validated curve (n (K,), h (K,))."""
    if floor_rel < 0:
        raise ValueError(f"floor_rel must be >= 0, got {floor_rel}")
    mask = (n >= window[0]) & (n <= window[1]) & (h > floor_rel * h[0]) & (h > 0)
    if cap is not None:
        mask &= n < cap
    return mask


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of y = intercept + slope x by least squares, x centred first."""
    dx = x - x.mean()
    slope = float(dx @ (y - y.mean()) / (dx @ dx))
    return slope, float(y.mean() - slope * x.mean())


def _rmse(residual: np.ndarray) -> float:
    return float(np.sqrt(np.mean(residual**2)))


def _too_few(
    n: np.ndarray, h: np.ndarray, window: tuple[int, int], floor_rel: float, cap: float | None
) -> str:
    """Why fewer than MIN_POINTS points survive: how many each trap removed, in order."""
    lo, hi = window
    inside = (n >= lo) & (n <= hi)
    below_cap = inside & (n < cap) if cap is not None else inside
    above_floor = below_cap & (h > floor_rel * h[0]) & (h > 0)
    return (
        f"only {int(above_floor.sum())} usable points, need {MIN_POINTS}: of {n.size} points, "
        f"{int((~inside).sum())} outside window [{lo}, {hi}], "
        f"{int((inside & ~below_cap).sum())} more at or above cap {cap}, "
        f"{int((below_cap & ~above_floor).sum())} more at the floor ({floor_rel:g} * h[0], or 0)"
    )


def fit_curve(
    n: np.ndarray,
    h: np.ndarray,
    window: tuple[int, int],
    holdout: float = 1 / 3,
    floor_rel: float = 1e-12,
    cap: float | None = None,
) -> CurveFit:
    """Fit both models to the usable points of one curve (n (K,), h (K,)).

    The usable points (``usable_window``) are split by n: the first (1 - holdout) fraction
    trains both fits, the rest (at least 1 point, leaving at least 3 to train) is held out.
    """
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    n, h = _check_curve(n, h)
    window = _check_window(window)
    mask = _mask(n, h, window, floor_rel, cap)
    if mask.sum() < MIN_POINTS:
        raise ValueError(_too_few(n, h, window, floor_rel, cap))
    x, y = n[mask].astype(np.float64), np.log(h[mask])
    n_holdout = min(max(1, round(holdout * x.size)), x.size - 3)
    k = x.size - n_holdout
    slope_e, a_exp = _line(x[:k], y[:k])
    slope_p, a_pow = _line(np.log(x[:k]), y[:k])
    res_e = y - (a_exp + slope_e * x)
    res_p = y - (a_pow + slope_p * np.log(x))
    holdout_e, holdout_p = _rmse(res_e[k:]), _rmse(res_p[k:])
    return CurveFit(
        c=-slope_e,
        a_exp=a_exp,
        p=-slope_p,
        a_pow=a_pow,
        rmse_exp=_rmse(res_e[:k]),
        rmse_pow=_rmse(res_p[:k]),
        holdout_rmse_exp=holdout_e,
        holdout_rmse_pow=holdout_p,
        log_ratio=float(np.log(max(holdout_e, RMSE_FLOOR) / max(holdout_p, RMSE_FLOOR))),
        n_points=int(x.size),
        n_train=int(k),
        n_holdout=int(n_holdout),
        window=(int(x[0]), int(x[-1])),
        split=int(x[k]),
    )


def _mean_ci(values: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Mean of values (S,), S >= 2, and its CONFIDENCE Student t interval."""
    mean = float(values.mean())
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, values.size - 1) * values.std(ddof=1)
    half /= np.sqrt(values.size)
    return mean, (float(mean - half), float(mean + half))


def fit_rates(
    curves: Sequence[Curve],
    window: tuple[int, int],
    margin: float = DEFAULT_MARGIN,
    holdout: float = 1 / 3,
    floor_rel: float = 1e-12,
    cap: float | None = None,
) -> RateSummary:
    """``fit_curve`` on each seed's curve (n, h), then means and t intervals over seeds.

    Needs at least 2 curves; use 10 or more; with fewer the t interval is too wide to
    resolve anything. The verdict compares the interval of log(holdout_rmse_exp /
    holdout_rmse_pow) with +-margin (default log 1.25: one model must extrapolate 25% better).
    """
    if len(curves) < 2:
        raise ValueError(f"need at least 2 curves (seeds), got {len(curves)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    fits = []
    for i, (n, h) in enumerate(curves):
        try:
            fits.append(fit_curve(n, h, window, holdout, floor_rel, cap))
        except ValueError as err:
            raise ValueError(f"curve {i}: {err}") from err
    ratios = np.array([f.log_ratio for f in fits])
    c_mean, c_ci = _mean_ci(np.array([f.c for f in fits]))
    p_mean, p_ci = _mean_ci(np.array([f.p for f in fits]))
    ratio_mean, ratio_ci = _mean_ci(ratios)
    if ratio_ci[1] < -margin:
        verdict = "exponential"
    elif ratio_ci[0] > margin:
        verdict = "power"
    else:
        verdict = "unresolved"
    return RateSummary(
        n_seeds=len(fits),
        window=_check_window(window),
        margin=float(margin),
        c_mean=c_mean,
        c_ci=c_ci,
        p_mean=p_mean,
        p_ci=p_ci,
        log_ratio_mean=ratio_mean,
        log_ratio_ci=ratio_ci,
        verdict=verdict,
        frac_exponential=float(np.mean(ratios < 0)),
        frac_power=float(np.mean(ratios > 0)),
        fits=tuple(fits),
    )


def corrective_cap(limit: int, fraction: float) -> int:
    """Where a corrective selector's fit stops: n < fraction * limit, at least 2. ``limit``
    is where its loss becomes exactly 0 (the affine rank, or the samples): beyond, the exact
    interpolation is a cliff that a fit would read as a huge rate."""
    return max(int(fraction * limit), 2)


def n_eps(n: np.ndarray, h: np.ndarray, eps: float) -> float:
    """The smallest n with h <= eps (eps > 0); nan when the curve never gets there."""
    n, h = _check_curve(n, h)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    reached = np.flatnonzero(h <= eps)
    return float(n[reached[0]]) if reached.size else float("nan")


def n_eps_curve(curves: Sequence[Curve], eps_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eps_grid (E,), median n_eps over the seeds (E,)).

    A seed that never reaches eps counts as n_eps = +inf (it is censored, not missing), so the
    median is finite when more than half the seeds get there and nan otherwise.
    """
    eps_grid = np.asarray(eps_grid, dtype=np.float64)
    if eps_grid.ndim != 1 or eps_grid.size == 0:
        raise ValueError(f"eps_grid must be a non-empty 1-D array, got shape {eps_grid.shape}")
    if not curves:
        raise ValueError("no curves")
    table = np.array([[n_eps(n, h, eps) for eps in eps_grid] for n, h in curves])
    median = np.median(np.where(np.isnan(table), np.inf, table), axis=0)
    return eps_grid, np.where(np.isinf(median), np.nan, median)


def n_eps_slope(eps: np.ndarray, n_eps_values: np.ndarray) -> NEpsSlope:
    """Least-squares line of n_eps (E,) against log(1/eps) (E,), over the levels reached.

    Takes the output of ``n_eps_curve``; nan levels (not reached) are left out.
    """
    eps, values = np.asarray(eps, dtype=np.float64), np.asarray(n_eps_values, dtype=np.float64)
    if eps.ndim != 1 or eps.shape != values.shape:
        raise ValueError(
            f"eps and n_eps must be 1-D of the same length, got {eps.shape}, {values.shape}"
        )
    if np.any(~(eps > 0)):
        raise ValueError("eps must be > 0")
    keep = np.isfinite(values)
    x, y = np.log(1 / eps[keep]), values[keep]
    if np.unique(x).size < 3:
        raise ValueError(f"need at least 3 distinct eps levels reached, got {np.unique(x).size}")
    slope, intercept = _line(x, y)
    ss_res = float(np.sum((y - intercept - slope * x) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    return NEpsSlope(slope=slope, intercept=intercept, r2=r2, n_levels=int(x.size))


def local_rates(
    n: np.ndarray, h: np.ndarray, points: int = 40, floor_rel: float = 1e-12
) -> tuple[np.ndarray, np.ndarray]:
    """Local decay rate of one curve (n (K,), h (K,)) between log-spaced steps.

    With n_1 < n_2 < ... taken from the curve at about ``points`` log-spaced values of n, the
    rate between neighbours is (log h(n_k) - log h(n_{k+1})) / (n_{k+1} - n_k), placed at their
    geometric mean. Returns (n_mid (P,), rates (P,)); points at or below the floor
    (``floor_rel * h[0]``, or 0) are left out. Under h = A exp(-c n) every rate is c; under
    h = A n^-p it is p log(n_{k+1} / n_k) / (n_{k+1} - n_k), about p / n.
    """
    n, h = _check_curve(n, h)
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    keep = _mask(n, h, (int(n[0]), int(n[-1])), floor_rel, None)
    n, h = n[keep], h[keep]
    if n.size < 2:
        return np.empty(0), np.empty(0)
    wanted = np.geomspace(n[0], n[-1], points)
    index = np.unique(np.searchsorted(n, wanted).clip(0, n.size - 1))
    n_k, log_h = n[index].astype(np.float64), np.log(h[index])
    rates = -np.diff(log_h) / np.diff(n_k)
    return np.sqrt(n_k[:-1] * n_k[1:]), rates
