"""Diameter, sigma^2 and the margin r: exact values on known shapes, scans, and the bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sims.strategies import gaussian_points, instances
from theory import LayerProblem, diameter, geometry, margin, sigma2
from theory.geometry import affine_rank, facet_normal, margin_bound, margin_upper


def _points(xy) -> LayerProblem:
    return LayerProblem.from_features(np.asarray(xy, dtype=np.float64)[:, None, :])


def test_square_has_margin_one_and_diameter_two_root_two():
    geo = geometry(_points([(-1, -1), (1, -1), (1, 1), (-1, 1)]))
    assert geo.margin == pytest.approx(1.0, rel=1e-12)
    assert geo.diameter == pytest.approx(2.0 * np.sqrt(2.0), rel=1e-12)
    assert geo.sigma2 == pytest.approx(2.0, rel=1e-12)
    assert (geo.rank, geo.margin_exact) == (2, True)


def test_regular_hexagon_margin_is_the_apothem():
    angles = np.arange(6) * np.pi / 3
    geo = geometry(_points(np.c_[np.cos(angles), np.sin(angles)] * 3.0))
    assert geo.margin == pytest.approx(3.0 * np.cos(np.pi / 6), rel=1e-12)


def test_interval_margin_is_the_distance_to_the_nearer_end():
    geo = geometry(_points([(-1.0,), (3.0,), (3.0,), (3.0,)]))  # F = 2
    assert geo.margin == pytest.approx(1.0, rel=1e-12)
    assert geo.diameter == pytest.approx(4.0)
    assert geo.rank == 1


def test_margin_is_zero_when_the_target_is_a_vertex_or_on_an_edge():
    square = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    psi = np.asarray(square, dtype=np.float64)[:, None, :]
    vertex = LayerProblem.from_features(psi, target=np.array([1.0, 0, 0, 0]))
    edge = LayerProblem.from_features(psi, target=np.array([0.5, 0.5, 0, 0]))
    assert margin(vertex)[0] == pytest.approx(0.0, abs=1e-12)
    assert margin(edge)[0] == pytest.approx(0.0, abs=1e-12)


def test_identical_neurons_have_no_geometry():
    geo = geometry(LayerProblem.from_features(np.ones((5, 3, 2))))
    assert (geo.diameter, geo.margin, geo.sigma2, geo.rank) == (0.0, 0.0, 0.0, 0)


@given(psi=instances())
def test_diameter_and_sigma2_match_the_features(psi):
    problem = LayerProblem.from_features(psi)
    flat = psi.reshape(psi.shape[0], -1) / np.sqrt(psi.shape[1])
    pair = np.sqrt(((flat[:, None, :] - flat[None, :, :]) ** 2).sum(-1)).max()
    spread = ((flat - flat.mean(axis=0)) ** 2).sum(-1).mean()
    scale = float((flat**2).sum(-1).max()) + 1e-300
    assert diameter(problem) == pytest.approx(pair, rel=1e-6, abs=1e-7 * np.sqrt(scale))
    assert sigma2(problem) == pytest.approx(spread, rel=1e-8, abs=1e-12 * scale)


def _support_function_scan(points: np.ndarray, directions: np.ndarray) -> float:
    """min over the given unit directions u of max_i <x_i - F, u>: an upper bound on r."""
    centred = points - points.mean(axis=0)
    return float((centred @ directions.T).max(axis=0).min())


@given(psi=gaussian_points(max_dim=2))
def test_exact_margin_in_the_plane_matches_a_dense_direction_scan(psi):
    problem = LayerProblem.from_features(psi)
    r, exact = margin(problem)
    if affine_rank(np.linalg.eigvalsh(problem.centred)[::-1]) != 2:
        return
    angles = np.linspace(0.0, 2.0 * np.pi, 200_001)
    scan = _support_function_scan(psi[:, 0, :], np.c_[np.cos(angles), np.sin(angles)])
    d = diameter(problem)
    assert exact
    assert r <= scan + 1e-9 * d
    assert scan <= r + d * (angles[1] - angles[0])  # h(u) is d-Lipschitz in the angle


@given(psi=gaussian_points())
def test_exact_margin_below_every_sampled_support_value(psi):
    problem = LayerProblem.from_features(psi)
    r, _ = margin(problem)
    pts = psi[:, 0, :]
    basis = np.linalg.svd(pts - pts.mean(axis=0), full_matrices=False)[2]
    rank = affine_rank(np.linalg.eigvalsh(problem.centred)[::-1])
    if rank == 0:
        return
    u = np.random.default_rng(0).normal(size=(5000, rank)) @ basis[:rank]
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    assert r <= _support_function_scan(pts, u) + 1e-9 * diameter(problem)


@pytest.mark.parametrize("half_height", [1e-3, 1e-5, 1e-6])
def test_a_thin_prism_is_not_flattened(half_height):
    """A 2 x 2 square prism of half-height h: r = h, however thin (down to 3e-7 D)."""
    square = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    corners = [(x, y, z) for x, y in square for z in (-half_height, half_height)]
    geo = geometry(_points(corners))
    assert geo.rank == 3 and geo.margin_exact
    # The thin direction's eigenvalue h^2 carries round-off eps D^2: relative error ~1e-4 at 1e-6.
    assert geo.margin == pytest.approx(half_height, rel=1e-3)


@given(psi=instances(), weights=st.sampled_from(["uniform", "skewed", "zeros"]))
def test_certified_bounds_bracket_the_exact_margin(psi, weights):
    n = psi.shape[0]
    target = None
    if weights != "uniform":
        raw = np.random.default_rng(n).random(n) ** 4
        if weights == "zeros":
            raw[: n // 2] = 0.0
        target = raw / raw.sum() if raw.sum() > 0 else None
    problem = LayerProblem.from_features(psi, target)
    geo = geometry(problem)
    if geo.rank == 0:
        return
    bound = margin_bound(problem)
    assert 0.0 <= bound <= geo.margin + 1e-9 * geo.diameter
    assert geo.margin_upper == geo.margin  # exact: nothing to bracket
    assert margin_upper(problem) >= geo.margin - 1e-9 * geo.diameter


@pytest.mark.slow
def test_high_dimension_falls_back_to_the_bound_and_flags_it():
    problem = LayerProblem.from_features(np.random.default_rng(0).normal(size=(40, 12)))
    r, exact = margin(problem, exact_max_dim=6)
    assert not exact
    assert 0.0 < r == pytest.approx(margin_bound(problem))
    r_exact, is_exact = margin(problem, exact_max_dim=12)
    assert is_exact and r <= r_exact


def test_upper_bound_finds_the_nearest_facet_of_small_random_polytopes():
    """Gaussian clouds in 2-7 dimensions, exact r from qhull: the search's bound is r itself
    for most and within 5% for all."""
    rng = np.random.default_rng(7)
    ratios = []
    for d in (2, 3, 4, 5, 6, 7) * 6:
        pts = rng.normal(size=(int(rng.integers(d + 2, 80)), d)) * rng.uniform(0.1, 3.0, d)
        problem = LayerProblem.from_features(pts)
        r, exact = margin(problem, exact_max_dim=7)
        assert exact
        ratios.append(margin_upper(problem) / r)
    ratios = np.array(ratios)
    assert np.all(ratios >= 1 - 1e-9) and np.all(ratios <= 1.05)
    assert np.mean(ratios < 1 + 1e-9) >= 0.8


@pytest.mark.parametrize("dim", [20, 60])
def test_upper_bound_is_exact_on_the_cross_polytope_and_the_simplex(dim):
    """Beyond qhull's reach, shapes with a known r: the cross-polytope {+-e_i} in R^d has
    r = 1/sqrt(d) and the regular simplex {e_i} in R^(d+1) has r = circumradius / d (each
    divided by sqrt(m), the L2(D) norm over m = d or d + 1 samples)."""
    cross = geometry(LayerProblem.from_features(np.vstack([np.eye(dim), -np.eye(dim)])))
    assert not cross.margin_exact and cross.rank == dim
    assert cross.margin <= cross.margin_upper == pytest.approx(1 / dim, rel=1e-9)
    simplex = geometry(LayerProblem.from_features(np.eye(dim + 1)))
    circumradius = np.sqrt(1 - 1 / (dim + 1)) / np.sqrt(dim + 1)
    assert simplex.margin_upper == pytest.approx(circumradius / dim, rel=1e-9)


def test_facet_normals_solve_square_systems_and_fall_back_to_least_squares():
    """The facet through d points: LU where the square system is regular (the same v as
    least squares) or singular but consistent (a hyperplane through the points all the
    same), least squares where LU cannot pass through them, or the system is not square."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(6, 6))
    reference = np.linalg.lstsq(points, np.ones(6), rcond=None)[0]
    np.testing.assert_allclose(facet_normal(points), reference, rtol=1e-10)
    repeated = points.copy()
    repeated[5] = repeated[4]  # consistent: every solution is a hyperplane through the points
    np.testing.assert_allclose(repeated @ facet_normal(repeated), np.ones(6), rtol=1e-8)
    doubled = points.copy()
    doubled[5] = 2 * doubled[4]  # no hyperplane <y, v> = 1 passes through both
    reference = np.linalg.lstsq(doubled, np.ones(6), rcond=None)[0]
    np.testing.assert_allclose(facet_normal(doubled), reference, rtol=1e-8, atol=1e-10)
    tall = rng.normal(size=(8, 3))
    reference = np.linalg.lstsq(tall, np.ones(8), rcond=None)[0]
    np.testing.assert_allclose(facet_normal(tall), reference)
