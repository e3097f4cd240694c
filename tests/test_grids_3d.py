"""3-D rectangular grids (issue 18, point 5): coordinates, distances, adjacency, training,
prediction, metrics, persistence and the plots' refusal; hexagonal grids stay 2-D."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

import somlab
from somlab import SOM, SOMEnsemble
from somlab import plotting as P
from somlab.core.grids import Grid, grid_distance, make_grid, parse_grid, parse_grid_shape
from somlab.core.neighbourhoods import NEIGHBOURHOODS
from somlab.metrics import topographic_error


def test_parse_and_make_3d_grids():
    assert parse_grid_shape((4, 5, 6)) == (4, 5, 6) == parse_grid_shape("4x5x6")
    assert parse_grid_shape((7,)) == (7, 1) and parse_grid_shape(20) == (20, 20)
    g = make_grid((4, 5, 6))
    assert g.shape == (4, 5, 6) and g.ndim == 3 and g.n_nodes == 120
    for bad in ((4, 5, 6, 7), (4, 0, 6), (4, 5.0, 6), "4x5x6x7"):
        with pytest.raises(ValueError, match="2 or 3 positive integers|20x20 or 4x5x6"):
            parse_grid_shape(bad)
    with pytest.raises(ValueError, match="only topology='rectangular'"):
        make_grid((4, 5, 6), "hexagonal")
    with pytest.raises(ValueError, match="is 2-D"):
        Grid(4, 5, "hexagonal", layers=6)
    with pytest.raises(ValueError, match="grids of 3 dimensions are for SOM"):
        parse_grid((4, 5, 6))  # for 2-D-only callers


def test_3d_node_numbering_coordinates_and_distances():
    g = Grid(2, 3, layers=4)
    idx = g.indices()
    # row-major as numpy: node k sits at np.unravel_index(k, (2, 3, 4))
    np.testing.assert_array_equal(
        idx.numpy(), np.stack(np.unravel_index(np.arange(24), (2, 3, 4)), 1)
    )
    np.testing.assert_array_equal(g.unravel([23, 5]).numpy(), [[1, 2, 3], [0, 1, 1]])
    c = g.coordinates()
    assert c.shape == (24, 3)
    # node 0 = (0,0,0), node 23 = (1,2,3): distance sqrt(1 + 4 + 9)
    d = grid_distance(c, torch.tensor([0, 0]), torch.tensor([23, 1]))
    np.testing.assert_allclose(d.numpy(), [np.sqrt(14.0), 1.0])
    t = Grid(2, 3, toroidal=True, layers=4)
    assert t.periods() == (2.0, 3.0, 4.0)
    # on the torus (0,0,0) and (1,2,3) are one step apart on every axis
    d = grid_distance(c, torch.tensor([0]), torch.tensor([23]), t.periods())
    np.testing.assert_allclose(d.numpy(), [np.sqrt(3.0)])


def test_3d_adjacency_is_the_26_neighbourhood():
    g = Grid(3, 3, layers=3)
    r = g.adjacency_radius()
    edges = g.neighbours_within(r).numpy()
    centre = 13  # (1, 1, 1): every other node of the 3x3x3 cube is one step away
    assert sorted(set(edges[edges[:, 0] == centre, 1]) | set(edges[edges[:, 1] == centre, 0])) == [
        k for k in range(27) if k != centre
    ]
    # and the count over the cube matches a brute force over Chebyshev distance 1
    pts = list(itertools.product(range(3), repeat=3))
    brute = sum(
        1 for a, b in itertools.combinations(pts, 2) if max(abs(u - v) for u, v in zip(a, b)) == 1
    )
    assert len(edges) == brute
    assert Grid(3, 3).adjacency_radius() == 1.42  # 2-D unchanged (MiniSom's threshold)


def test_topographic_error_3d_known_values():
    g = Grid(2, 2, layers=2)
    W = g.coordinates().numpy().reshape(2, 2, 2, 3)  # prototype = its grid position
    # a point between corner (0,0,0) and the diagonal neighbour (1,1,1): adjacent in 26-conn.
    X_adj = np.array([[0.4, 0.4, 0.4], [0.6, 0.6, 0.6]])
    assert topographic_error(X_adj, W) == 0.0
    # swap two prototypes so that grid-distant nodes hold data-adjacent prototypes
    W3 = np.zeros((3, 1, 1, 3))
    W3[:, 0, 0, 0] = [0.0, 5.0, 1.0]  # node 0 and node 2 are two steps apart on the grid
    assert topographic_error(np.array([[0.4, 0.0, 0.0]]), W3) == 1.0
    assert topographic_error(np.array([[4.0, 0.0, 0.0]]), W3) == 0.0


@pytest.mark.parametrize("name", sorted(NEIGHBOURHOODS))
def test_neighbourhoods_take_3d_displacements(name):
    fn = NEIGHBOURHOODS[name]
    disp = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    h = fn(disp, 2.0)
    assert h.shape == (4,) and h[0] == h.max() > 0  # the winner weighs most
    # the third axis counts like the other two: (1,0,0) and (0,0,1) weigh the same
    assert h[1] == h[2]
    if name in ("gaussian", "triangle"):
        assert h[3] < h[1]


def _cube(n=1500, seed=0):
    return np.random.default_rng(seed).random((n, 3)).astype(np.float32)


@pytest.mark.parametrize("mode", ["batch", "minibatch", "online"])
def test_a_3d_map_unfolds_in_3d_data(mode):
    X = _cube()
    som = SOM((4, 5, 6), mode=mode, epochs=10, random_state=0).fit(X)
    assert som.weights_.shape == (4, 5, 6, 3)
    assert som.topographic_error(X) < 0.02
    # unfolded: each grid axis runs along one data axis (the prototypes' position along it
    # is monotone in the node's index on that grid axis), and the three axes are distinct
    W = som.weights_.reshape(-1, 3)
    idx = som.grid_.indices().numpy()
    corr = np.abs(np.corrcoef(np.c_[idx, W].T)[:3, 3:])
    assert (corr.max(1) > 0.75).all()  # a folded or shuffled map: ~0
    assert sorted(corr.argmax(1)) == [0, 1, 2]


def test_predict_coordinates_and_metrics_of_a_3d_map():
    X = _cube(600)
    som = SOM((3, 4, 5), epochs=5, random_state=0).fit(X)
    b = som.predict(X)
    xyz = som.bmu_coordinates(X)
    assert xyz.shape == (600, 3)
    np.testing.assert_array_equal(xyz, np.stack(np.unravel_index(b, (3, 4, 5)), 1))
    W = som.weights_.reshape(-1, 3)
    D = np.linalg.norm(X[:, None, :].astype(np.float64) - W[None], axis=-1)
    np.testing.assert_array_equal(b, D.argmin(1))
    np.testing.assert_allclose(som.quantization_error(X), D.min(1).mean(), rtol=1e-5)
    # the estimator's TE and the metrics function's TE (weights of shape (3, 4, 5, 3)) agree
    assert som.topographic_error(X) == pytest.approx(topographic_error(X, som.weights_))
    assert som.topographic_error_ == pytest.approx(som.history_["topographic_error"][-1])


def test_3d_toroidal_and_init_array_and_chain_sigma():
    X = _cube(400)
    som = SOM((3, 3, 4), toroidal=True, epochs=3, random_state=0).fit(X)
    assert som.weights_.shape == (3, 3, 4, 3)
    init = np.random.default_rng(1).random((2, 3, 4, 3))
    a = SOM((2, 3, 4), init=init, epochs=1, random_state=0).fit(X)
    b = SOM((2, 3, 4), init=init.reshape(24, 3), epochs=1, random_state=0).fit(X)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    with pytest.raises(somlab.DataError, match="init array must have shape"):
        SOM((2, 3, 4), init=init.reshape(6, 4, 3)).fit(X)


def test_pca_init_spans_three_axes_longest_first():
    X = np.random.default_rng(0).normal(size=(2000, 3)) * [1.0, 3.0, 9.0]
    W = SOM((2, 3, 8), init="pca").initialize(X)
    assert W.shape == (2, 3, 8, 3)

    def span(axis, feature):  # range of the feature along one grid axis (others averaged)
        others = tuple(a for a in range(3) if a != axis)
        return np.ptp(W.mean(axis=others)[..., feature])

    # PC1 (feature 2, std 9) runs along the longest grid axis (8 layers), PC2 (feature 1)
    # along the 3 columns, PC3 (feature 0) along the 2 rows: +-sqrt(eigenvalue) each
    assert span(2, 2) == pytest.approx(18, rel=0.1)
    assert span(1, 1) == pytest.approx(6, rel=0.1)
    assert span(0, 0) == pytest.approx(2, rel=0.1)
    assert span(2, 0) < 0.2 and span(0, 2) < 0.2


def test_3d_map_round_trips_through_a_file(tmp_path):
    X = _cube(500)
    som = SOM((3, 4, 5), epochs=3, random_state=0).fit(X)
    path = som.save(tmp_path / "cube.somlab")
    back = somlab.load(path)
    assert back.grid_.shape == (3, 4, 5)
    np.testing.assert_array_equal(back.weights_, som.weights_)
    np.testing.assert_array_equal(back.predict(X), som.predict(X))
    np.testing.assert_array_equal(back.bmu_coordinates(X), som.bmu_coordinates(X))


def test_plots_refuse_a_3d_map_in_one_line_and_the_data_space_plot_draws_it():
    X = _cube(300)
    som = SOM((2, 3, 4), epochs=2, random_state=0).fit(X)
    for plot in (P.plot_umatrix, P.plot_hits, P.plot_components, P.umatrix, P.hit_map):
        args = (som, X) if plot in (P.plot_hits, P.hit_map) else (som,)
        with pytest.raises(ValueError, match=r"is 3-D: use plot_data_space") as e:
            plot(*args)
        assert "\n" not in str(e.value)
    ax = P.plot_data_space(som, X)
    assert ax.name == "3d" and "2x3x4 map" in ax.get_title()
    # drawn edges: the lattice's 6-neighbourhood, 3 * (2*3*4) - (3*4 + 2*4 + 2*3) = 46
    assert len(P.grid_edges(som.grid_)) == 46


def test_hexagonal_3d_is_refused_clearly():
    X = _cube(100)
    with pytest.raises(ValueError, match="only topology='rectangular'"):
        SOM((3, 3, 3), topology="hexagonal").fit(X)
    with pytest.raises(ValueError, match="only topology='rectangular'"):
        SOMEnsemble((3, 3, 3), topology="hexagonal", sigma=[1.0, 2.0]).fit(X)
