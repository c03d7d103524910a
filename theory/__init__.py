"""logtickets numeric core: layer problems, selectors, the gamma subproblem, and bounds."""

from theory.geometry import Geometry, diameter, geometry, margin, sigma2
from theory.problem import LayerProblem
from theory.selectors import LOCAL_METHODS, METHODS, SELECTORS, select
from theory.simplex_qp import solve_simplex_qp
from theory.trace import Trace

__all__ = [
    "LOCAL_METHODS",
    "METHODS",
    "SELECTORS",
    "Geometry",
    "LayerProblem",
    "Trace",
    "diameter",
    "geometry",
    "margin",
    "select",
    "sigma2",
    "solve_simplex_qp",
]
