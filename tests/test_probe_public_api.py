"""A probe of the public Python API with bad inputs a user may give: each is refused with a
ValueError or TypeError raised by the project's own code (its message naming the problem),
never by numpy, scipy, cvxpy or torch from deep inside."""

from __future__ import annotations

import importlib
import traceback
from pathlib import Path

import numpy as np
import pytest

from sims.config import from_dict, preset
from theory import LayerProblem, select, solve_simplex_qp
from theory.bounds import fixed_step_margin, greedy_local, linear_rate, random_expected
from theory.output_problem import OutputProblem

ROOT = Path(__file__).resolve().parent.parent
GEOMETRY = importlib.import_module("theory.geometry")
PSI = np.random.default_rng(0).normal(size=(6, 5, 2))
P = LayerProblem.from_features(PSI)
XX = np.eye(3)

PROBES = {
    # LayerProblem
    "psi a string": lambda: LayerProblem.from_features("psi"),
    "psi a scalar": lambda: LayerProblem.from_features(3.0),
    "psi 1-D": lambda: LayerProblem.from_features(np.ones(4)),
    "psi empty": lambda: LayerProblem.from_features(np.zeros((0, 3))),
    "psi complex": lambda: LayerProblem.from_features(PSI * 1j),
    "psi with NaN": lambda: LayerProblem.from_features(np.where(PSI > 1, np.nan, PSI)),
    "psi of objects": lambda: LayerProblem.from_features(np.array([[None, 1]], dtype=object)),
    "psi overflowing": lambda: LayerProblem.from_features(PSI * 1e200),
    "target of 5 for 6": lambda: LayerProblem.from_features(PSI, np.ones(5) / 5),
    "target negative": lambda: LayerProblem.from_features(PSI, np.r_[2.0, -1, 0, 0, 0, 0]),
    "target summing to 2": lambda: LayerProblem.from_features(PSI, np.ones(6) / 3),
    "target NaN": lambda: LayerProblem.from_features(PSI, np.full(6, np.nan)),
    "target a string": lambda: LayerProblem.from_features(PSI, "uniform"),
    "gram not square": lambda: LayerProblem.from_gram(np.ones((2, 3))),
    "gram asymmetric": lambda: LayerProblem.from_gram(np.array([[1.0, 0.2], [0.0, 1.0]])),
    "gram indefinite": lambda: LayerProblem.from_gram(np.array([[1.0, 3.0], [3.0, 1.0]])),
    "gram of strings": lambda: LayerProblem.from_gram([["a", "b"], ["c", "d"]]),
    "gram infinite": lambda: LayerProblem.from_gram(np.array([[np.inf]])),
    "loss of 4 weights": lambda: P.loss(np.ones(4)),
    "loss of NaN weights": lambda: P.loss(np.full(6, np.nan)),
    "loss of a string": lambda: P.loss("abc"),
    "gram_columns of floats": lambda: P.gram_columns(np.array([0.5])),
    "gram_columns out of range": lambda: P.gram_columns(np.array([10])),
    "gram_columns negative": lambda: P.gram_columns(np.array([-1])),
    # select
    "select n 0": lambda: select(P, 0),
    "select n a float": lambda: select(P, 2.5),
    "select n a string": lambda: select(P, "3"),
    "select n None": lambda: select(P, None),
    "select unknown method": lambda: select(P, 3, "best"),
    "select method a list": lambda: select(P, 3, ["omp"]),
    "select tol a string": lambda: select(P, 3, tol="small"),
    "select tol negative": lambda: select(P, 3, tol=-1.0),
    "select tol NaN": lambda: select(P, 3, tol=np.nan),
    "select size 0": lambda: select(P, 3, size=0),
    "select size above n": lambda: select(P, 3, size=4),
    "select seed -1": lambda: select(P, 3, "random", seed=-1),
    "select seed 1.5": lambda: select(P, 3, "random", seed=1.5),
    "select seed a string": lambda: select(P, 3, "random", seed="abc"),
    "select on_step 5": lambda: select(P, 3, on_step=5),
    "select unknown option": lambda: select(P, 3, speed=2),
    "select repeats a string": lambda: select(P, 3, "fixed-step", repeats="no"),
    "select allow_drop a string": lambda: select(P, 3, allow_drop="yes"),
    "select drop without repeats": lambda: select(P, 3, allow_drop=True, repeats=False),
    "select choice unknown": lambda: select(P, 3, "fully-corrective", choice="best"),
    "select solver unknown": lambda: select(P, 3, "fully-corrective", solver="gurobi"),
    "select n above N (omp)": lambda: select(P, 7, "omp"),
    "select a bare array": lambda: select(PSI, 3),
    "select an output problem": lambda: select(OutputProblem.from_moments(XX, np.ones(3), 1.0), 2),
    "select global without oracle": lambda: select(P, 3, "global-imitation"),
    "select candidates a float": lambda: select(P, 3, "global-imitation", candidates=2.5),
    # geometry
    "geometry of an array": lambda: GEOMETRY.geometry(PSI),
    "geometry exact_max_dim -1": lambda: GEOMETRY.geometry(P, exact_max_dim=-1),
    "diameter block 0": lambda: GEOMETRY.diameter(P, block=0),
    "sigma2 of None": lambda: GEOMETRY.sigma2(None),
    "margin of a string": lambda: GEOMETRY.margin("problem"),
    "spectrum of a dict": lambda: GEOMETRY.spectrum({}),
    # the gamma subproblem
    "qp c of 3 for 2": lambda: solve_simplex_qp(np.eye(2), np.zeros(3)),
    "qp c a scalar": lambda: solve_simplex_qp(np.eye(2), 0.5),
    "qp Q with NaN": lambda: solve_simplex_qp(np.array([[np.nan, 0], [0, 1.0]]), np.zeros(2)),
    "qp c infinite": lambda: solve_simplex_qp(np.eye(2), np.array([np.inf, 0.0])),
    "qp Q complex": lambda: solve_simplex_qp(np.eye(2) * 1j, np.zeros(2)),
    "qp Q asymmetric": lambda: solve_simplex_qp(np.array([[1.0, 1.0], [0.0, 1.0]]), np.zeros(2)),
    "qp Q indefinite": lambda: solve_simplex_qp(-np.eye(2), np.zeros(2)),
    "qp start off the simplex": lambda: solve_simplex_qp(np.eye(2), np.zeros(2), np.ones(2)),
    "qp start NaN": lambda: solve_simplex_qp(np.eye(2), np.zeros(2), np.array([np.nan, 1.0])),
    "qp solver unknown": lambda: solve_simplex_qp(np.eye(2), np.zeros(2), solver="gurobi"),
    # the whole-output problem
    "moments xy of 2 rows": lambda: OutputProblem.from_moments(XX, np.ones((2, 1)), 1.0),
    "moments yy negative": lambda: OutputProblem.from_moments(XX, np.ones(3), -1.0),
    "moments ridge NaN": lambda: OutputProblem.from_moments(XX, np.ones(3), 1.0, ridge=np.nan),
    "moments width 2 of 3": lambda: OutputProblem.from_moments(XX, np.ones(3), 1.0, width=2),
    "moments width a float": lambda: OutputProblem.from_moments(XX, np.ones(3), 1.0, width=1.5),
    "output solve channel 5": lambda: OutputProblem.from_moments(XX, np.ones(3), 1.0).solve([5]),
    "output solve repeated": lambda: OutputProblem.from_moments(XX, np.ones(3), 1.0).solve([1, 1]),
    # the bounds
    "bound sigma2 a string": lambda: random_expected("big", np.arange(1, 4)),
    "bound n of 0": lambda: random_expected(1.0, np.arange(0, 4)),
    "bound sigma2 negative": lambda: random_expected(-1.0, np.arange(1, 4)),
    "bound margin NaN": lambda: fixed_step_margin(1.0, np.nan, np.arange(1, 4)),
    "rate diameter a string": lambda: linear_rate("D", 0.1),
    "greedy bound n a string": lambda: greedy_local(1.0, 1.0, 0.1, "n"),
    # configurations
    "unknown preset": lambda: preset("fastest"),
    "configuration a list": lambda: from_dict([1, 2]),
    "configuration unknown key": lambda: from_dict({"speed": 3}),
    "configuration seeds a string": lambda: from_dict({"seeds": "0"}),
}


def _raised_by_the_project(error: BaseException) -> bool:
    """Whether the innermost frame of ``error``'s traceback is in the project's packages."""
    frames = traceback.extract_tb(error.__traceback__)
    where = Path(frames[-1].filename).resolve()
    return ROOT in where.parents and "site-packages" not in where.parts


@pytest.mark.parametrize("name", list(PROBES))
def test_bad_input_is_refused_by_the_project_in_one_line(name):
    with pytest.raises((ValueError, TypeError)) as caught:
        PROBES[name]()
    message = str(caught.value)
    assert message and "\n" not in message and len(message) < 400, message
    assert _raised_by_the_project(caught.value), traceback.format_exception(caught.value)[-3:]


def test_the_probe_is_large():
    assert len(PROBES) >= 60
