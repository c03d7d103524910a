"""Spectrum summaries and the held-out explanation of decay by them."""

from __future__ import annotations

import numpy as np
import pytest

from sims import runner
from sims.__main__ import main
from sims.spectrum import explain, instance_table, summarise


def test_summaries_of_known_spectra():
    flat = summarise(np.ones(16))
    assert flat["log_rank"] == pytest.approx(np.log(16))
    assert flat["log_effective_rank"] == pytest.approx(np.log(16))
    assert flat["spectral_slope"] == pytest.approx(0.0, abs=1e-12)
    power = summarise(np.arange(1, 101, dtype=float) ** -2.0)
    assert power["spectral_slope"] == pytest.approx(2.0, rel=1e-9)
    # (sum k^-2)^2 / sum k^-4 = 2.49: a few directions carry the mass
    assert power["log_effective_rank"] == pytest.approx(np.log(2.49), rel=0.01)


def test_empty_spectrum_is_an_error():
    with pytest.raises(ValueError, match="spectrum is empty"):
        summarise(np.zeros(3))


def test_explain_recovers_a_linear_law_and_scores_held_out_rows():
    rng = np.random.default_rng(0)
    table = [
        {
            "log_rank": a,
            "log_effective_rank": b,
            "spectral_slope": c,
            "decades": 3 - 2 * a + 0.5 * c,
        }
        for a, b, c in rng.normal(size=(40, 3))
    ]
    train = np.arange(40) < 30
    e = explain(table, ("log_rank", "spectral_slope"), train)
    assert e.coefficients == pytest.approx((3.0, -2.0, 0.5), abs=1e-10)
    assert e.test_r2 == pytest.approx(1.0) and (e.n_train, e.n_test) == (30, 10)
    weak = explain(table, ("log_effective_rank",), train)
    assert weak.test_r2 < 0.5


def test_explain_on_a_tiny_run(tmp_path, capsys):
    from test_sims_pipeline import TINY

    run_dir = runner.run(TINY, tmp_path, jobs=1, progress=False)
    table, censored = instance_table(run_dir, "greedy-local", 10)
    assert len(table) == 6 and censored == [] and all(0 <= row["decades"] <= 16 for row in table)
    assert all(row["log_d_over_upper_r"] <= row["log_d_over_lower_r"] for row in table)
    assert main(["explain", str(run_dir), "--at", "10", "--holdout", "activation=tanh"]) == 0
    out = capsys.readouterr().out
    assert "| log_rank |" in out and "need more than 4 training rows" in out  # 3 rows each side
    assert main(["explain", str(run_dir), "--holdout", "colour=red"]) == 2


def test_log_n_eps_target_counts_the_instances_that_never_get_there(tmp_path, capsys):
    """log10 n_eps per instance equals the direct first-n computation; instances whose curve
    never reaches eps are left out and counted."""
    from test_sims_pipeline import TINY

    from sims.curves import load_curves
    from sims.fit import n_eps

    run_dir = runner.run(TINY, tmp_path, jobs=1, progress=False)
    curves = [c for f in (0, 1) for c in load_curves(run_dir).curves[f]["greedy-local"]]
    ends = sorted(c.loss_rel[-1] for c in curves)
    for eps, left_out in ((1.0, 0), (ends[2] * (1 + 1e-9), 3)):  # the 3 lowest reach ends[2]
        direct = [n_eps(c.n, c.loss_rel, eps) for c in curves]
        table, censored = instance_table(run_dir, "greedy-local", eps=eps)
        assert len(censored) == sum(np.isnan(direct)) == left_out
        assert sorted(row["log_n_eps"] for row in table) == pytest.approx(
            sorted(np.log10(v) for v in direct if np.isfinite(v))
        )
    assert main(["explain", str(run_dir), "--eps", "1e-3", "--holdout", "activation=tanh"]) == 0
    out = capsys.readouterr().out
    assert "log10 n_eps" in out and "| log_d_over_upper_r |" in out
    assert main(["explain", str(run_dir), "--at", "0"]) == 2  # a clear error, not a traceback
