"""Core kernels against plain references: grids, distances, neighbourhoods, schedules, updates."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from somlab.core import distances as D
from somlab.core import updates as U
from somlab.core.grids import Grid, grid_distance, parse_grid
from somlab.core.neighbourhoods import bubble, gaussian, mexican_hat, triangle
from somlab.core.schedules import decay


# ---------------------------------------------------------------- grids
def _dist_matrix(grid):
    c = grid.coordinates()
    return grid.displacements(c, c).norm(dim=-1)


def test_rect_coordinates_row_major():
    g = Grid(2, 3)
    assert g.coordinates().tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]


def test_hexagonal_six_neighbours_at_distance_one():
    g = Grid(6, 7, "hexagonal")
    d = _dist_matrix(g)
    interior = 3 * 7 + 3
    near = d[interior]
    assert int(((near - 1).abs() < 1e-9).sum()) == 6
    assert int((near < 1 - 1e-9).sum()) == 1  # only itself is closer than 1
    # every node's closest other node is at exactly distance 1
    d.fill_diagonal_(math.inf)
    assert torch.allclose(d.min(1).values, torch.ones(g.n_nodes, dtype=d.dtype))


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_toroidal_every_node_has_full_neighbourhood(topology):
    g = Grid(6, 8, topology, toroidal=True)
    d = _dist_matrix(g)
    want = 4 if topology == "rectangular" else 6
    counts = ((d - 1).abs() < 1e-9).sum(1)
    assert counts.tolist() == [want] * g.n_nodes
    # corners wrap: node 0 and the last node of its row are neighbours
    assert d[0, 7] == pytest.approx(1.0)


def test_hex_torus_needs_even_rows():
    with pytest.raises(ValueError, match="even number of rows"):
        Grid(5, 4, "hexagonal", toroidal=True)


def test_neighbours_within_block_by_block_matches_full():
    g = Grid(5, 6, "hexagonal")
    edges = g.neighbours_within()
    d = _dist_matrix(g)
    i, j = torch.nonzero((d <= 1 + 1e-6) & (d > 0), as_tuple=True)
    full = {(a, b) for a, b in zip(i.tolist(), j.tolist()) if a < b}
    assert {tuple(e) for e in edges.tolist()} == full


def test_grid_distance_wraps():
    g = Grid(4, 10, toroidal=True)
    c = g.coordinates()
    a, b = torch.tensor([0]), torch.tensor([9])
    assert float(grid_distance(c, a, b, g.periods())) == pytest.approx(1.0)
    assert float(grid_distance(c, a, b)) == pytest.approx(9.0)


def test_parse_grid():
    assert parse_grid("20x30") == (20, 30)
    assert parse_grid(7) == (7, 7)
    with pytest.raises(ValueError):
        parse_grid("20by3")


# ---------------------------------------------------------------- distances
@pytest.fixture
def xw():
    rng = np.random.default_rng(0)
    return rng.random((57, 5)), rng.random((13, 5))


@pytest.mark.parametrize(
    "metric,scipy_name",
    [
        ("euclidean", "euclidean"),
        ("sqeuclidean", "sqeuclidean"),
        ("manhattan", "cityblock"),
        ("chebyshev", "chebyshev"),
        ("cosine", "cosine"),
    ],
)
def test_pairwise_matches_scipy(xw, metric, scipy_name, monkeypatch):
    X, W = xw
    monkeypatch.setattr(D, "_ELEMENT_BUDGET", 50)  # force many tiny chunks
    got = D.pairwise_distances(torch.from_numpy(X), torch.from_numpy(W), metric).numpy()
    np.testing.assert_allclose(got, cdist(X, W, scipy_name), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "manhattan", "chebyshev"])
def test_missing_features_are_left_out(xw, metric):
    X, W = xw
    Xn = X.copy()
    Xn[3, [1, 4]] = np.nan
    got = D.pairwise_distances(torch.from_numpy(Xn), torch.from_numpy(W), metric, missing=True)
    keep = [0, 2, 3]
    name = {"manhattan": "cityblock"}.get(metric, metric)
    want = cdist(X[3:4, keep], W[:, keep], name)[0]
    np.testing.assert_allclose(got[3].numpy(), want, rtol=1e-6, atol=1e-7)
    # rows without NaN are unchanged
    np.testing.assert_allclose(got[0].numpy(), cdist(X[:1], W, name)[0], rtol=1e-6, atol=1e-7)


def test_bmu_ties_go_to_lowest_index():
    W = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [2.0, 2.0]])
    X = torch.tensor([[0.0, 0.0]])
    idx, dist = D.best_matching_units(X, W, k=2)
    assert idx.tolist() == [[1, 2]]
    assert dist.tolist() == [[0.0, 0.0]]


def test_bmu_respects_node_mask():
    W = torch.tensor([[0.0], [1.0], [5.0]])
    idx, _ = D.best_matching_units(torch.tensor([[0.1]]), W, node_mask=torch.tensor([0, 1, 1]) > 0)
    assert idx.item() == 1


def test_weighted_sq_distance_direct_form(xw, monkeypatch):
    X, C = xw
    omega = np.random.default_rng(1).random(C.shape)
    monkeypatch.setattr(D, "_ELEMENT_BUDGET", 100)
    got = D.weighted_sq_distances(*(torch.from_numpy(a) for a in (X, C, omega))).numpy()
    want = np.array([[np.sum(w * (x - c) ** 2) for c, w in zip(C, omega)] for x in X])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # exact zero at x = c (the matmul expansion would not guarantee it)
    z = D.weighted_sq_distances(
        torch.from_numpy(C[:2]).float(), torch.from_numpy(C).float(), torch.ones(C.shape)
    )
    assert z[0, 0] == 0 and z[1, 1] == 0


def test_relevance_activation():
    S = torch.tensor([[0.0, 4.0]])
    omega = torch.tensor([[1.0, 1.0], [0.5, 0.5]])
    a = D.relevance_activation(S, omega)
    assert a[0, 0] == pytest.approx(2 / (2 + 1e-7))
    assert a[0, 1] == pytest.approx(1 / (1 + 2 + 1e-7))


# ---------------------------------------------------------------- neighbourhoods, schedules
def test_neighbourhood_known_values():
    disp = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    np.testing.assert_allclose(gaussian(disp, 1.0), [1, math.exp(-1), math.exp(-2)])
    np.testing.assert_allclose(
        mexican_hat(disp, 1.0), [1, math.exp(-1) * (1 - 2), math.exp(-2) * (1 - 4)]
    )
    np.testing.assert_allclose(bubble(disp, 1.5), [1, 1, 0])
    np.testing.assert_allclose(triangle(disp, 2.0), [4, 1, 0])


def test_schedules_known_values():
    assert decay("asymptotic", 1.0, 0, 50, 100) == pytest.approx(0.5)
    assert decay("linear", 4.0, 1.0, 50, 100) == pytest.approx(2.5)
    assert decay("exponential", 1.0, 0.01, 50, 100) == pytest.approx(0.1)
    assert decay("inverse_time", 5.0, 1.0, 100, 100) == pytest.approx(1.0)
    assert decay("constant", 3.0, 1.0, 70, 100) == 3.0
    # MiniSom's inverse_decay_to_zero: lr * C / (C + t), C = T / 100
    T, t, lr = 1000, 123, 0.5
    assert decay("inverse_time", lr, lr / 101, t, T) == pytest.approx(
        lr * (T / 100) / (T / 100 + t)
    )
    with pytest.raises(ValueError, match="schedule"):
        decay("cosine", 1, 0, 1, 2)


# ---------------------------------------------------------------- accumulation
@pytest.mark.parametrize("toroidal", [False, True])
def test_accumulate_matches_full_neighbourhood_matrix(toroidal, monkeypatch):
    g = Grid(4, 6, "hexagonal", toroidal)
    rng = np.random.default_rng(3)
    X = torch.from_numpy(rng.random((40, 3)))
    bmus = torch.from_numpy(rng.integers(0, g.n_nodes, 40))
    coords = g.coordinates()
    monkeypatch.setattr(U, "_BLOCK_ELEMENTS", 30)  # one winner row at a time
    num, den = U.accumulate(coords, bmus, X, gaussian, 1.3, g.periods())
    H = gaussian(g.displacements(coords, coords), 1.3)  # [n_nodes, n_nodes], reference only
    Hs = H[bmus]  # [n, n_nodes]
    np.testing.assert_allclose(num.numpy(), (Hs.T @ X).numpy(), rtol=1e-12)
    np.testing.assert_allclose(den.numpy()[:, 0], Hs.sum(0).numpy(), rtol=1e-12)


def test_accumulate_with_missing_values_counts_observed_entries():
    g = Grid(1, 2)
    X = torch.tensor([[1.0, float("nan")], [3.0, 4.0]], dtype=torch.float64)
    num, den = U.accumulate(g.coordinates(), torch.tensor([0, 0]), X, bubble, 0.5)
    assert num[0].tolist() == [4.0, 4.0] and den[0].tolist() == [2.0, 1.0]
    assert den[1].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("weighted", [False, True])
def test_winner_sums_add_up_over_chunks_and_spread_to_accumulate(weighted):
    g = Grid(4, 3, "hexagonal", toroidal=True)
    rng = np.random.default_rng(4)
    X = torch.from_numpy(rng.random((50, 3)))
    X[30, 1] = float("nan")  # the first NaN is in the second chunk: counts go per feature there
    bmus = torch.from_numpy(rng.integers(0, g.n_nodes, 50))
    w = torch.from_numpy(rng.random(50)) if weighted else None
    S = C = None
    for rows in (slice(0, 20), slice(20, 35), slice(35, 50)):
        wr = None if w is None else w[rows]
        S, C = U.winner_sums(bmus[rows], X[rows], g.n_nodes, S, C, weights=wr)
    S1, C1 = U.winner_sums(bmus, X, g.n_nodes, weights=w)
    assert C.shape == C1.shape == (g.n_nodes, 3)
    # rows are added in the same order: the same sums to the last bit
    assert torch.equal(S, S1) and torch.equal(C, C1)
    num, den = U.spread(g.coordinates(), S, C, gaussian, 1.3, g.periods())
    ref_num, ref_den = U.accumulate(g.coordinates(), bmus, X, gaussian, 1.3, g.periods(), w)
    assert torch.equal(num, ref_num) and torch.equal(den, ref_den)
    ones = U.winner_sums(bmus[:20], X[:20], g.n_nodes)[1]  # no NaN: one count per node
    assert ones.shape == (g.n_nodes, 1) and ones.sum() == 20


def test_grouped_mean():
    keys = torch.tensor([2, 0, 2, 5])
    X = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    uniq, means, counts, inv = U.grouped_mean(keys, X)
    assert uniq.tolist() == [0, 2, 5]
    assert means.squeeze(1).tolist() == [2.0, 2.0, 4.0]
    assert counts.tolist() == [1, 2, 1] and inv.tolist() == [1, 0, 1, 2]
