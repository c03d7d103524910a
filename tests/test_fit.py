"""sims.fit: rate fits of exp(-c n) and n^-p curves, held-out verdicts, traps, n_eps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sims.fit import (
    DEFAULT_MARGIN,
    fit_curve,
    fit_rates,
    local_rates,
    n_eps,
    n_eps_curve,
    n_eps_slope,
    usable_window,
)

N = np.arange(1, 201)


def _noisy(h: np.ndarray, seeds: int = 12, sigma: float = 0.2) -> list[tuple]:
    """Copies of the curve (N, h) times log-normal noise exp(sigma Z), one Generator per seed."""
    return [
        (N, h * np.exp(sigma * np.random.default_rng(seed).normal(size=h.size)))
        for seed in range(seeds)
    ]


def test_exact_exponential_gives_its_rate_and_verdict():
    h = 3 * np.exp(-0.25 * N)
    fit = fit_curve(N, h, (1, 100))
    assert abs(fit.c - 0.25) < 1e-9
    assert abs(fit.a_exp - np.log(3)) < 1e-9
    assert fit.rmse_exp < 1e-9 < 0.1 < fit.holdout_rmse_pow
    assert (fit.n_points, fit.n_train, fit.n_holdout) == (100, 67, 33)
    assert fit.window == (1, 100)
    assert fit.split == 68
    summary = fit_rates([(N, h)] * 3, (1, 100))
    assert summary.verdict == "exponential"
    assert summary.c_ci[0] <= 0.25 <= summary.c_ci[1]
    assert summary.frac_exponential == 1.0
    assert summary.frac_power == 0.0


@pytest.mark.parametrize(("scale", "p"), [(5.0, 2.0), (1.0, 1.0)])
def test_exact_power_law_gives_its_rate_and_verdict(scale, p):
    h = scale * N**-p
    fit = fit_curve(N, h, (1, 100))
    assert abs(fit.p - p) < 1e-9
    assert abs(fit.a_pow - np.log(scale)) < 1e-9
    assert fit.holdout_rmse_pow < 1e-9 < 0.1 < fit.holdout_rmse_exp
    assert fit_rates([(N, h)] * 3, (1, 100)).verdict == "power"


def test_noisy_exponential_over_12_seeds():
    summary = fit_rates(_noisy(3 * np.exp(-0.25 * N)), (1, 60))
    assert summary.n_seeds == 12
    assert summary.c_ci[0] <= 0.25 <= summary.c_ci[1]
    assert summary.c_ci[1] - summary.c_ci[0] < 0.01
    assert summary.verdict == "exponential"
    assert summary.log_ratio_ci[1] < -DEFAULT_MARGIN


def test_noisy_power_law_over_12_seeds():
    summary = fit_rates(_noisy(5 * N**-2.0), (1, 200))
    assert summary.p_ci[0] <= 2.0 <= summary.p_ci[1]
    assert summary.verdict == "power"
    assert summary.frac_power == 1.0


def test_the_floor_is_cut_and_the_fit_stays_exact():
    """exp decay down to n = 100 (h / h0 ~ 2e-11), then round-off at 1e-16 h0, then zeros."""
    h = 3 * np.exp(-0.25 * N)
    h[100:110] = 1e-16 * h[0]
    h[110:120] = 0.0
    mask = usable_window(N[:120], h[:120], (1, 120))
    assert np.array_equal(np.flatnonzero(mask), np.arange(100))
    fit = fit_curve(N[:120], h[:120], (1, 120))
    assert fit.window == (1, 100)
    assert abs(fit.c - 0.25) < 1e-9
    assert fit.rmse_exp < 1e-9


def test_the_cap_removes_the_points_at_or_above_it():
    h = 3 * np.exp(-0.25 * N)
    mask = usable_window(N, h, (5, 200), cap=30)
    assert np.array_equal(N[mask], np.arange(5, 30))
    fit = fit_curve(N, h, (5, 200), cap=30)
    assert fit.window == (5, 29)
    assert fit.n_points == 25


def test_a_window_too_short_to_tell_is_unresolved():
    """exp(-0.25 n) with log-noise 0.2, window n = 1..6: four points train, n = 5, 6 are held
    out. Two steps past the training data the exp and power fits differ by about as much as the
    noise, so each seed's winner is decided by the noise: both signs occur and the t interval
    of the log ratio straddles 0. The same seeds on n = 1..60 are called exponential."""
    curves = _noisy(3 * np.exp(-0.25 * N))
    short = fit_rates(curves, (1, 6))
    assert short.verdict == "unresolved"
    assert short.log_ratio_ci[0] < 0 < short.log_ratio_ci[1]
    assert 0 < short.frac_exponential < 1
    assert fit_rates(curves, (1, 60)).verdict == "exponential"


def test_a_ratio_within_the_margin_is_unresolved():
    """h = exp(-0.05 n) / n is neither model: on n = 1..60 both extrapolate about equally badly
    (log ratio ~ 0.15, below log 1.25), so even with little noise it is unresolved; margin 0
    calls it for the power law. By n = 200 the exp factor dominates and wins."""
    curves = _noisy(np.exp(-0.05 * N) / N, sigma=0.05)
    summary = fit_rates(curves, (1, 60))
    assert summary.verdict == "unresolved"
    assert 0 < summary.log_ratio_ci[0] < summary.log_ratio_ci[1] < DEFAULT_MARGIN
    assert fit_rates(curves, (1, 60), margin=0.0).verdict == "power"
    assert fit_rates(curves, (1, 200)).verdict == "exponential"


def test_n_eps_by_hand():
    n = np.arange(1, 6)
    h = np.array([1.0, 0.5, 0.6, 0.2, 0.1])
    assert n_eps(n, h, 2.0) == 1
    assert n_eps(n, h, 0.5) == 2  # h <= eps, equality counts
    assert n_eps(n, h, 0.55) == 2
    assert n_eps(n, h, 0.3) == 4
    assert np.isnan(n_eps(n, h, 0.05))
    never = np.ones(5)
    eps, median = n_eps_curve([(n, h), (n, h[::-1].copy()), (n, never)], [0.55, 0.3, 0.15])
    # 0.55: n_eps 2, 1, never -> median 2; 0.3: 4, 1, never -> 4; 0.15: 5, 1, never -> 5
    assert np.array_equal(eps, [0.55, 0.3, 0.15])
    assert np.array_equal(median, [2.0, 4.0, 5.0])
    _, median = n_eps_curve([(n, h), (n, never), (n, never)], [0.3])
    assert np.isnan(median[0])  # two of three seeds never get there: censored, not skipped


def test_n_eps_is_linear_in_log_inverse_eps_with_slope_1_over_c():
    """n_eps is a step function of eps; at levels the curve takes it is exact, so 67 such
    levels give slope 1/c to round-off. A generic geometric grid is off by up to one step."""
    h = 3 * np.exp(-0.25 * N)
    line = n_eps_slope(*n_eps_curve([(N, h)] * 3, h[::3]))
    assert line.n_levels == 67
    assert abs(line.slope - 4.0) < 1e-6
    assert line.r2 > 1 - 1e-12
    rough = n_eps_slope(*n_eps_curve([(N, h)], np.geomspace(0.1, 1e-20, 50)))
    assert abs(rough.slope - 4.0) < 1e-2


def test_n_eps_bends_under_a_power_law():
    h = 1.0 / N
    line = n_eps_slope(*n_eps_curve([(N, h)], np.geomspace(0.9, 1 / 200, 50)))
    assert line.r2 < 0.8
    h_exp = np.exp(-0.25 * N)
    reference = n_eps_slope(*n_eps_curve([(N, h_exp)], np.geomspace(0.9, 1e-20, 50)))
    assert reference.r2 > 0.999 > line.r2


def test_results_are_json_ready():
    summary = fit_rates(_noisy(3 * np.exp(-0.25 * N), seeds=3), (1, 60))
    line = n_eps_slope(*n_eps_curve([(N, 3 * np.exp(-0.25 * N))], np.geomspace(1, 1e-8, 9)))
    for result in (summary, summary.fits[0], line):
        as_dict = result.as_dict()
        assert json.loads(json.dumps(as_dict, allow_nan=False)) == as_dict
    assert isinstance(summary.as_dict()["fits"], list)
    assert summary.as_dict()["c_ci"] == list(summary.c_ci)


GOOD_H = 3 * np.exp(-0.25 * N)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fit_curve(N, GOOD_H[:-1], (1, 100)), "same length"),
        (lambda: fit_curve(N[None], GOOD_H[None], (1, 100)), "1-D"),
        (lambda: fit_curve(N[:0], GOOD_H[:0], (1, 100)), "empty"),
        (lambda: fit_curve(N, np.where(N == 7, np.nan, GOOD_H), (1, 100)), "NaN"),
        (lambda: fit_curve(N, np.where(N == 7, -1.0, GOOD_H), (1, 100)), ">= 0"),
        (lambda: fit_curve(N - 1, GOOD_H, (1, 100)), "steps >= 1"),
        (lambda: fit_curve(N + 0.5, GOOD_H, (1, 100)), "integer"),
        (lambda: fit_curve(N[::-1], GOOD_H, (1, 100)), "strictly increasing"),
        (lambda: fit_curve(N, GOOD_H, (100, 1)), "low <= high"),
        (lambda: fit_curve(N, GOOD_H, (1, 100), holdout=1.0), "holdout"),
        (lambda: usable_window(N, GOOD_H, (1, 100), floor_rel=-1.0), "floor_rel"),
        (lambda: fit_curve(N, GOOD_H, (1, 3)), r"only 3 usable points, need 4.*197 outside"),
        (lambda: fit_curve(N, GOOD_H, (1, 100), cap=3), r"only 2 .*98 more at or above cap 3"),
        (lambda: fit_curve(N, GOOD_H, (1, 200), floor_rel=0.9), r"only 1 .*199 more at the floor"),
        (lambda: fit_rates([(N, GOOD_H)], (1, 100)), "at least 2 curves"),
        (lambda: fit_rates([(N, GOOD_H)] * 2, (1, 100), margin=-1.0), "margin"),
        (lambda: fit_rates([(N, GOOD_H), (N, np.zeros(200))], (1, 100)), "curve 1: only 0"),
        (lambda: n_eps(N, GOOD_H, 0.0), "eps must be > 0"),
        (lambda: n_eps_curve([], [0.1]), "no curves"),
        (lambda: n_eps_curve([(N, GOOD_H)], []), "non-empty"),
        (lambda: n_eps_slope([0.1, 0.01], [1.0]), "same length"),
        (lambda: n_eps_slope([0.1, 0.01, 0.001], [1.0, np.nan, 5.0]), "3 distinct"),
    ],
)
def test_bad_input_is_refused_by_name(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_local_rates_are_flat_under_exp_and_fall_like_p_over_n_under_a_power_law():
    n = np.arange(1, 2001)
    mid, rates = local_rates(n, 5.0 * np.exp(-0.03 * n))
    assert mid.size >= 20 and np.allclose(rates, 0.03, rtol=1e-9)
    mid, rates = local_rates(n, 2.0 * n**-1.5)
    assert np.all(np.diff(rates) < 0)  # falls
    assert np.allclose(rates * mid, 1.5, rtol=0.1)  # about p / n
    assert np.all(mid[1:] > mid[:-1])


def test_local_rates_stop_at_the_floor():
    n = np.arange(1, 101)
    h = np.maximum(np.exp(-0.5 * n), 1e-14)  # at the floor from n = 65 on
    mid, rates = local_rates(n, h, floor_rel=1e-12)
    assert mid.max() < 56 and np.allclose(rates, 0.5, rtol=1e-9)
    with pytest.raises(ValueError, match="points must be"):
        local_rates(n, h, points=1)
